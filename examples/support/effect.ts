/**
 * The Effect examples' target: `AvatarClient.layerNodeConfig` when `AKOOL_API_KEY` is set,
 * else a simulator in the current scope and a client pointed at it.
 */
import {
  Audio,
  AvatarClient,
  type AvatarConfig,
  type AvatarError,
  AvatarSimulator,
  type Protocol
} from "akool-streaming-avatar"
import { Config, type ConfigError, Console, Effect, type Layer, Option, Redacted, type Scope, Stream } from "effect"

export interface Target {
  readonly layer: Layer.Layer<
    AvatarClient.AvatarClient | AvatarConfig.AvatarConfig,
    AvatarError.ConfigurationError | ConfigError.ConfigError
  >
  readonly simulator: Option.Option<AvatarSimulator.Service>
  readonly avatarId: string
  readonly params: Protocol.AvatarParams
}

export const target = (
  simulatorOptions: AvatarSimulator.Options = {}
): Effect.Effect<Target, AvatarSimulator.SimulatorError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const env = (name: string, fallback: string) => Config.string(name).pipe(Config.withDefault(fallback))
    const avatarId = yield* env("AKOOL_AVATAR_ID", "dvp_Tristan_cloth2_1080P")
    const params: Protocol.AvatarParams = {
      agora: {
        appId: yield* env("AKOOL_AGORA_APP_ID", "example-app"),
        channel: yield* env("AKOOL_AGORA_CHANNEL", "example-channel"),
        token: yield* env("AKOOL_AGORA_TOKEN", ""),
        uid: yield* env("AKOOL_AGORA_UID", "12345")
      }
    }
    if (Option.isSome(yield* Config.option(Config.string("AKOOL_API_KEY")))) {
      return { layer: AvatarClient.layerNodeConfig, simulator: Option.none(), avatarId, params }
    }
    const simulator = yield* AvatarSimulator.make(simulatorOptions)
    yield* Console.log(`(no AKOOL_API_KEY: using the built-in simulator at ${simulator.discoveryUrl})`)
    const layer = AvatarClient.layerNode({
      apiKey: Redacted.make("simulated-key"),
      discoveryUrl: simulator.discoveryUrl
    })
    return { layer, simulator: Option.some(simulator), avatarId, params }
  })

// the same tone the Promise examples use
export { tone } from "./target.js"

/** A failed check: the example exits with 1 and says why. */
export const check = (ok: boolean, message: string): Effect.Effect<void> =>
  ok ? Effect.void : Effect.dieMessage(`CHECK FAILED: ${message}`)

/** Runs an example's program: exit code 1 on any failure, with the cause on standard error. */
export const main = <A, E>(program: Effect.Effect<A, E>): void => {
  Effect.runPromiseExit(program).then((exit) => {
    if (exit._tag === "Failure") {
      console.error(String(exit.cause._tag === "Die" ? exit.cause.defect : exit.cause))
      process.exitCode = 1
    }
  })
}

/**
 * Streams `speech` (`what` it is, for the messages) into a session of `target`, and, against
 * the simulator, checks that it received every byte that went in, in order.
 */
export const speakAndCheck = <E, R>(
  { avatarId, layer, params, simulator }: Target,
  speech: Stream.Stream<Uint8Array, E, R>,
  what: string
) =>
  Effect.gen(function* () {
    // what went into the session, to compare with what the simulator received
    const sent: Array<Uint8Array> = []
    const sessionId = yield* Effect.gen(function* () {
      const session = yield* AvatarClient.session({ avatarId })
      yield* session.setParams(params)
      yield* speech.pipe(
        Stream.tap((bytes) => Effect.sync(() => sent.push(bytes))),
        Stream.run(session.audio)
      )
      return session.sessionId
    }).pipe(Effect.scoped, Effect.provide(layer)) // closing the session flushes its audio

    const converted = Buffer.concat(sent)
    const seconds = (converted.byteLength / Audio.BYTES_PER_SECOND).toFixed(2)
    if (Option.isNone(simulator)) return yield* Console.log(`OK: spoke ${seconds} s of ${what}`)
    const received = yield* simulator.value.audio(sessionId)
    yield* check(converted.byteLength > 0, `${what}: no audio came`)
    yield* check(
      converted.equals(received),
      `the simulator received ${received.byteLength} of ${converted.byteLength} bytes`
    )
    yield* Console.log(`OK: the simulator received ${seconds} s of ${what}, byte for byte as converted`)
  })
