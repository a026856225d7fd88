/**
 * Effect quickstart: a scoped session, the Agora channel, a Stream of speech into
 * `session.audio`, and the close that flushes it.
 *
 * With `AKOOL_API_KEY` (and `AKOOL_AGORA_*`) it talks to Akool; without it, to the built-in
 * simulator, and then checks that the simulator received the audio byte for byte.
 *
 *     node --import tsx examples/quickstart-effect.ts
 */
import { AvatarClient, AvatarSimulator } from "akool-streaming-avatar"
import { Chunk, Config, Console, Effect, Option, Redacted, Stream } from "effect"

// one second of a 220 Hz tone: 16 kHz, 16-bit, mono PCM, in 100 ms chunks
const speech = Stream.range(0, 9).pipe(
  Stream.map((chunk) => {
    const bytes = new Uint8Array(3200)
    const view = new DataView(bytes.buffer)
    for (let i = 0; i < 1600; i++) {
      view.setInt16(i * 2, Math.round(Math.sin((2 * Math.PI * 220 * (chunk * 1600 + i)) / 16_000) * 6000), true)
    }
    return bytes
  })
)

const agora = Config.all({
  appId: Config.string("AKOOL_AGORA_APP_ID").pipe(Config.withDefault("example-app")),
  channel: Config.string("AKOOL_AGORA_CHANNEL").pipe(Config.withDefault("example-channel")),
  token: Config.string("AKOOL_AGORA_TOKEN").pipe(Config.withDefault("")),
  uid: Config.string("AKOOL_AGORA_UID").pipe(Config.withDefault("12345"))
})

/** Opens a session, speaks, and closes it (leave_channel) when the scope ends. */
const speak = Effect.gen(function* () {
  const avatarId = yield* Config.string("AKOOL_AVATAR_ID").pipe(Config.withDefault("dvp_Tristan_cloth2_1080P"))
  const session = yield* AvatarClient.session({ avatarId })
  yield* Console.log(`connected, session ${session.sessionId}`)
  // waits for the ack and for `agora_connected`
  yield* session.setParams({ agora: yield* agora })
  // completes once every frame has been written to the socket, paced to real time
  yield* Stream.run(speech, session.audio)
  const info = yield* session.info
  yield* Console.log(`sent ${info.audio.bytesWritten} bytes in ${info.audio.framesWritten} frames`)
  return session.sessionId
}).pipe(Effect.scoped)

const program = Effect.gen(function* () {
  const apiKey = yield* Config.option(Config.redacted("AKOOL_API_KEY"))
  if (Option.isSome(apiKey)) {
    // AKOOL_API_KEY, AKOOL_DISCOVERY_URL, AKOOL_ENV and AKOOL_AVATAR_ID
    yield* speak.pipe(Effect.provide(AvatarClient.layerNodeConfig))
    return yield* Console.log("OK: spoke one second of audio")
  }
  const simulator = yield* AvatarSimulator.make()
  const sessionId = yield* speak.pipe(
    Effect.provide(
      AvatarClient.layerNode({ apiKey: Redacted.make("simulated-key"), discoveryUrl: simulator.discoveryUrl })
    )
  )
  const received = yield* simulator.audio(sessionId)
  const sent = Buffer.concat(Chunk.toReadonlyArray(yield* Stream.runCollect(speech)))
  if (!sent.equals(received)) {
    return yield* Effect.dieMessage(`the simulator received ${received.byteLength} of ${sent.byteLength} bytes`)
  }
  yield* Console.log(`OK: the simulator received all ${received.byteLength} bytes, byte for byte`)
}).pipe(
  Effect.scoped,
  Effect.catchTag("AuthenticationError", (e) => Effect.dieMessage(`the key was refused: ${e.message}`))
)

Effect.runPromise(program).catch((error) => {
  console.error(String(error))
  process.exitCode = 1
})
