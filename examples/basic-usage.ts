/**
 * The reference Python SDK's `examples/basic_usage.py`, ported: callbacks, connect, Agora
 * parameters, two seconds of audio in 64 ms chunks, then the context-manager variant as
 * `await using`. Against the built-in simulator (no `AKOOL_API_KEY`) it checks what arrived.
 *
 *     node --import tsx examples/basic-usage.ts
 */
import { StreamingAvatarClient } from "akool-streaming-avatar"
import { AVATAR_ID, agora, fail, type Target, target } from "./support/target.js"

const log = (line: string) => console.log(line)

const basicExample = async (t: Target) => {
  const client = new StreamingAvatarClient({
    apiKey: t.apiKey,
    discoveryUrl: t.discoveryUrl,
    avatarId: AVATAR_ID,
    maxRetryAttempts: 3,
    env: t.env ?? "test" // "test" adds group_name=WEBSOCKET_GROUP_TEST to discovery
  })

  client.onConnected = () => log("🎉 Connected to streaming avatar service!")
  client.onAgoraConnected = (channelId) => log(`🎥 Agora connected to channel: ${channelId}`)
  client.onError = (error) => log(`❌ Error occurred: ${error.message}`)
  client.onDisconnected = () => log("👋 Disconnected from streaming avatar service")

  try {
    log("🔗 Connecting to streaming avatar service...")
    await client.connect()

    log("⚙️ Setting Agora parameters...")
    await client.setAgoraParams({ ...agora, language: "en", voiceId: "1" })

    log("🎵 Sending sample audio data...")
    const sent = await sendSampleAudio(client)

    // the reference keeps the connection for 10 s; a moment is enough to show it stays up
    log("⏳ Keeping connection alive for a second...")
    await new Promise((resolve) => setTimeout(resolve, 1000))
    if (!client.isConnected) fail("the connection did not stay up")
    return sent
  } finally {
    log("🔌 Disconnecting...")
    await client.disconnect()
  }
}

/** Two seconds of silence in 1,024-sample (64 ms) chunks. */
const sendSampleAudio = async (client: StreamingAvatarClient) => {
  const totalSamples = 16_000 * 2
  const chunkSize = 1024
  let samplesSent = 0
  while (samplesSent < totalSamples) {
    const chunkSamples = Math.min(chunkSize, totalSamples - samplesSent)
    // no sleep as in the reference: sendAudio paces to real time itself
    await client.sendAudio(new Uint8Array(chunkSamples * 2))
    samplesSent += chunkSamples
  }
  log(`✅ Sent ${samplesSent} audio samples (silence)`)
  return { sessionId: client.sessionId, bytes: samplesSent * 2 }
}

const contextManagerExample = async (t: Target) => {
  await using client = await StreamingAvatarClient.connect({
    apiKey: t.apiKey,
    discoveryUrl: t.discoveryUrl,
    avatarId: AVATAR_ID,
    env: t.env ?? "test"
  })
  log("🎉 Using await using - connected!")
  const info = client.getConnectionInfo()
  log(`📊 Connection info: ${JSON.stringify({ ...info, audio: undefined })}`)
  if (!info.connected || info.currentService === null) fail("getConnectionInfo says not connected")
  return client.sessionId
  // the client is disconnected when the block ends
}

log("🚀 Starting Akool Streaming Avatar SDK Basic Example")
const t = await target()
try {
  const sent = await basicExample(t)
  log(`\n${"=".repeat(50)}\n🔄 Running await using example`)
  const second = await contextManagerExample(t)
  if (t.simulator) {
    const received = await t.simulator.audio(sent.sessionId)
    if (received.byteLength !== sent.bytes || received.some((b) => b !== 0)) {
      fail(`the simulator received ${received.byteLength} bytes, expected ${sent.bytes} bytes of silence`)
    }
    const sessions = await t.simulator.sessions()
    if (sessions.some((s) => s.open)) fail("a connection is still open")
    if (!sessions.some((s) => s.sessionId === second)) fail("the await using client never connected")
    log(`OK: ${received.byteLength} bytes of silence arrived; both clients closed their connections`)
  } else {
    log("OK: examples completed")
  }
} finally {
  await t.close()
}
