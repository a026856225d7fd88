/**
 * The reference Python SDK's `examples/error_handling.py`, ported: the same `instanceof`
 * checks on the same error classes, connection monitoring, and the discovery error demo.
 * Against the built-in simulator (no `AKOOL_API_KEY`) each failure is produced for real and
 * the example checks that it arrives as the class the reference names.
 *
 *     node --import tsx examples/error-handling.ts
 */
import {
  AvatarError,
  AvatarSimulator,
  StreamingAvatarClient,
  type StreamingAvatarClientOptions
} from "akool-streaming-avatar"
import { Effect } from "effect"
import { AVATAR_ID, fail } from "./support/target.js"

const { AudioStreamError, AuthenticationError, ConnectionError, RetryError, ServiceDiscoveryError } = AvatarError
const log = (line: string) => console.log(line)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const real = Boolean(process.env.AKOOL_API_KEY)

// the simulator accepts only this key, so the example's "test_api_key" is refused for real
const simulator = real ? undefined : await AvatarSimulator.start({ apiKey: "the-right-key" })
const discoveryUrl = simulator?.discoveryUrl ?? process.env.AKOOL_DISCOVERY_URL
const goodKey = process.env.AKOOL_API_KEY ?? "the-right-key"

/** What each section ended with, to check at the end. */
const outcomes: Record<string, string> = {}

const describe = (error: unknown): string => {
  if (error instanceof AuthenticationError) return "AuthenticationError"
  if (error instanceof ServiceDiscoveryError) return "ServiceDiscoveryError"
  if (error instanceof RetryError) return `RetryError(${error.lastError._tag})`
  if (error instanceof ConnectionError) return "ConnectionError"
  if (error instanceof AudioStreamError) return "AudioStreamError"
  return `unexpected: ${String(error)}`
}

const errorHandlingExample = async () => {
  const client = new StreamingAvatarClient({
    apiKey: "test_api_key", // this might be invalid: it is, here
    discoveryUrl,
    avatarId: AVATAR_ID,
    maxRetryAttempts: 3,
    connectionTimeout: 10_000, // milliseconds: the reference's 10 (seconds)
    discoveryTimeout: 5_000
  })
  client.onError = (error) => {
    if (error instanceof AuthenticationError) log(`🔐 Authentication failed: ${error.message}`)
    else if (error instanceof ConnectionError) log(`🔌 Connection failed: ${error.message}`)
    else log(`❌ Unexpected error: ${error.message}`)
  }
  try {
    log("🔗 Attempting to connect with error handling...")
    await client.connect()
    log("✅ Connection successful!")
    await sendAudioWithRetry(client)
    outcomes.basic = "connected"
  } catch (error) {
    outcomes.basic = describe(error)
    if (error instanceof AuthenticationError) {
      log(`🔐 Authentication failed permanently: ${error.message}`)
      log("💡 Solution: Verify your API key is correct")
    } else if (error instanceof ServiceDiscoveryError) {
      log(`🔍 No services available: ${error.message}`)
    } else if (error instanceof RetryError) {
      log(`🔄 All retry attempts failed: ${error.message}`)
    } else if (error instanceof ConnectionError) {
      log(`🔌 Connection failed: ${error.message}`)
    } else {
      log(`❌ Unexpected error: ${String(error)}`)
    }
  } finally {
    if (client.isConnected) await client.disconnect()
  }
}

const sendAudioWithRetry = async (client: StreamingAvatarClient, maxRetries = 3) => {
  const audioChunk = new Uint8Array(1024) // 1024 bytes of silence
  for (let attempt = 0; attempt <= maxRetries; attempt++) {
    try {
      log(`🎵 Sending audio (attempt ${attempt + 1}/${maxRetries + 1})...`)
      await client.sendAudio(audioChunk)
      log("✅ Audio sent successfully!")
      return
    } catch (error) {
      // the session reconnects by itself; an AudioStreamError means it ended for good
      if (error instanceof AudioStreamError && attempt < maxRetries) {
        log(`⚠️ Audio send failed (attempt ${attempt + 1}): ${error.message}`)
        await client.disconnect()
        await client.connect()
      } else {
        throw error
      }
    }
  }
}

const connectionMonitoringExample = async () => {
  const client = new StreamingAvatarClient({
    apiKey: goodKey,
    discoveryUrl,
    avatarId: AVATAR_ID,
    heartbeatInterval: 10_000 // shorter interval for monitoring
  })
  const state = { connected: false, lastError: undefined as string | undefined, drops: 0 }
  client.onConnected = () => {
    log("✅ Connection established")
    state.connected = true
  }
  client.onDisconnected = () => {
    log("⚠️ Connection lost")
    state.connected = false
    state.drops++
  }
  client.onError = (error) => {
    log(`❌ Connection error: ${error.message}`)
    state.lastError = error._tag
  }
  try {
    log("🔗 Starting connection monitoring...")
    await client.connect()
    for (let second = 1; second <= 3; second++) {
      // the network goes away once: this SDK reconnects by itself, so no manual connect() here
      if (second === 2 && simulator) await Effect.runPromise(simulator.service.dropAll({ mode: "terminate" }))
      await sleep(500)
      if (client.isConnected) log(`💚 Connection healthy (check ${second})`)
      else log("💔 Connection unhealthy (reconnecting)")
    }
    for (let i = 0; i < 50 && !client.isConnected; i++) await sleep(100)
    const info = client.getConnectionInfo()
    outcomes.monitoring = `reconnects=${info.reconnects} connected=${client.isConnected} drops=${state.drops} error=${state.lastError}`
  } finally {
    await client.disconnect()
  }
}

const serviceDiscoveryErrorDemo = async () => {
  const cases: Array<{ name: string; options: Partial<StreamingAvatarClientOptions> }> = [
    { name: "Invalid API Key", options: { apiKey: "invalid_key" } },
    // port 1 on loopback refuses at once (the reference uses an unknown host name)
    { name: "Invalid Discovery URL", options: { discoveryUrl: "http://127.0.0.1:1" } },
    { name: "Non-existent Avatar ID", options: { avatarId: "nonexistent_avatar" } }
  ]
  for (const testCase of cases) {
    log(`\n🧪 Testing: ${testCase.name}`)
    const client = new StreamingAvatarClient({
      apiKey: goodKey,
      discoveryUrl,
      avatarId: AVATAR_ID,
      maxRetryAttempts: 1, // quick failure for demo
      discoveryTimeout: 3000,
      ...testCase.options
    })
    try {
      await client.connect()
      // as in the reference: any usable instance serves an avatar id it does not list
      log("✅ Unexpected success - this test should have failed")
      outcomes[testCase.name] = "connected"
    } catch (error) {
      outcomes[testCase.name] = describe(error)
      if (error instanceof AuthenticationError) log(`🔐 Expected authentication error: ${error.message}`)
      else if (error instanceof ServiceDiscoveryError) log(`🔍 Expected service discovery error: ${error.message}`)
      // a failure that could pass is retried: when the attempts run out it is a RetryError
      else if (error instanceof RetryError) log(`🔄 Expected retry error, last: ${error.lastError.message}`)
      else if (error instanceof ConnectionError) log(`🔌 Expected connection error: ${error.message}`)
      else log(`⚠️ Unexpected error type: ${String(error)}`)
    } finally {
      await client.disconnect()
    }
  }
}

try {
  log("🚀 Starting Error Handling Examples")
  log(`\n${"=".repeat(50)}\n📋 1. Basic Error Handling`)
  await errorHandlingExample()
  log(`\n${"=".repeat(50)}\n📊 2. Connection Monitoring`)
  await connectionMonitoringExample()
  log(`\n${"=".repeat(50)}\n🔍 3. Service Discovery Error Demo`)
  await serviceDiscoveryErrorDemo()
  log(`\noutcomes: ${JSON.stringify(outcomes)}`)
  if (simulator) {
    const expected: Record<string, string> = {
      basic: "AuthenticationError",
      monitoring: "reconnects=1 connected=true drops=1 error=ConnectionError",
      "Invalid API Key": "AuthenticationError",
      "Invalid Discovery URL": "RetryError(ServiceDiscoveryError)",
      "Non-existent Avatar ID": "connected"
    }
    for (const [key, value] of Object.entries(expected)) {
      if (outcomes[key] !== value) fail(`${key}: expected ${value}, got ${outcomes[key]}`)
    }
    if ((await simulator.sessions()).some((s) => s.open)) fail("a connection is still open")
    log("OK: every failure arrived as the error class the reference names, and the drop was survived")
  } else {
    log("OK: error handling examples completed")
  }
} finally {
  await simulator?.close()
}
