/**
 * The Effect examples' target: `AvatarClient.layerNodeConfig` when `AKOOL_API_KEY` is set,
 * else a simulator in the current scope and a client pointed at it.
 */
import {
  AvatarClient,
  type AvatarConfig,
  type AvatarError,
  AvatarSimulator,
  type Protocol
} from "akool-streaming-avatar"
import { Config, type ConfigError, Console, Effect, type Layer, Option, Redacted, type Scope } from "effect"

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
