/**
 * Promise quickstart: the reference SDK's calls, with `await using`.
 *
 * With `AKOOL_API_KEY` it talks to the service that `AKOOL_DISCOVERY_URL`, `AKOOL_ENV` and
 * `AKOOL_AVATAR_ID` configure (Akool's, by default; `AKOOL_AGORA_APP_ID`,
 * `AKOOL_AGORA_CHANNEL`, `AKOOL_AGORA_TOKEN` and `AKOOL_AGORA_UID` name the channel): the
 * client reads them for the options left out. Without it, it starts the built-in simulator
 * and then checks that the simulator received the audio byte for byte.
 *
 *     node --import tsx examples/quickstart-promise.ts
 */
import { AvatarSimulator, StreamingAvatarClient } from "akool-streaming-avatar"

const env = process.env
const simulator = env.AKOOL_API_KEY ? undefined : await AvatarSimulator.start()

// one second of a 220 Hz tone: 16 kHz, 16-bit, mono PCM, in 100 ms chunks
const speech: Array<Uint8Array> = []
for (let chunk = 0; chunk < 10; chunk++) {
  const bytes = new Uint8Array(3200)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < 1600; i++) {
    view.setInt16(i * 2, Math.round(Math.sin((2 * Math.PI * 220 * (chunk * 1600 + i)) / 16_000) * 6000), true)
  }
  speech.push(bytes)
}

try {
  // what is left out comes from AKOOL_API_KEY, AKOOL_AVATAR_ID, AKOOL_DISCOVERY_URL and AKOOL_ENV
  const target = simulator
    ? { apiKey: "simulated-key", avatarId: "dvp_Tristan_cloth2_1080P", discoveryUrl: simulator.discoveryUrl }
    : {}
  await using client = await StreamingAvatarClient.connect({
    ...target,
    onAgoraConnected: (channel) => console.log(`avatar joined Agora channel ${channel}`),
    onError: (error) => console.error(`background error: ${error.message}`)
  })
  console.log(`connected, session ${client.sessionId}`)

  await client.setAgoraParams({
    agoraAppId: env.AKOOL_AGORA_APP_ID ?? "example-app",
    agoraChannel: env.AKOOL_AGORA_CHANNEL ?? "example-channel",
    agoraToken: env.AKOOL_AGORA_TOKEN ?? "",
    agoraUid: env.AKOOL_AGORA_UID ?? "12345"
  })

  // resolves once every chunk has been written to the socket, paced to real time
  await client.sendAudioStream(speech)
  const info = client.getConnectionInfo()
  console.log(`sent ${info.audio.bytesWritten} bytes in ${info.audio.framesWritten} frames`)

  if (simulator) {
    // `await using` closes the client at the end of this block; flush first, then check
    await client.disconnect()
    const received = await simulator.audio(client.sessionId)
    const sent = Buffer.concat(speech)
    if (!sent.equals(received))
      throw new Error(`the simulator received ${received.byteLength} of ${sent.byteLength} bytes`)
    console.log(`OK: the simulator received all ${received.byteLength} bytes, byte for byte`)
  } else {
    console.log("OK: spoke one second of audio")
  }
} finally {
  await simulator?.close()
}
