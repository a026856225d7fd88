/**
 * Effect quickstart: a scoped session, the Agora channel, a Stream of speech into
 * `session.audio`, and the close that flushes it.
 *
 * With `AKOOL_API_KEY` it talks to the service that `AKOOL_DISCOVERY_URL`, `AKOOL_ENV` and
 * `AKOOL_AVATAR_ID` configure (Akool's, by default; `AKOOL_AGORA_*` name the channel), through
 * `AvatarClient.layerNodeConfig`. Without it, it starts the built-in simulator and then checks
 * that the simulator received the audio byte for byte.
 *
 *     node --import tsx examples/quickstart-effect.ts
 */
import { NodeRuntime } from "@effect/platform-node"
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
  // the client's avatar: AKOOL_AVATAR_ID, or the avatarId given to its layer
  const session = yield* AvatarClient.session()
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
  if (Option.isSome(yield* Config.option(Config.redacted("AKOOL_API_KEY")))) {
    // AKOOL_API_KEY, AKOOL_DISCOVERY_URL, AKOOL_ENV and AKOOL_AVATAR_ID
    yield* speak.pipe(Effect.provide(AvatarClient.layerNodeConfig))
    return yield* Console.log("OK: spoke one second of audio")
  }
  const simulator = yield* AvatarSimulator.make()
  const sessionId = yield* speak.pipe(
    Effect.provide(
      AvatarClient.layerNode({
        apiKey: Redacted.make("simulated-key"),
        discoveryUrl: simulator.discoveryUrl,
        avatarId: "dvp_Tristan_cloth2_1080P"
      })
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

// logs a failure and exits with code 1; Ctrl-C interrupts, which closes the session cleanly
NodeRuntime.runMain(program)
