/**
 * Client-wide options, with the reference SDK's defaults. The API key is a `Redacted`
 * value: it is unwrapped only where a request header is built.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { ConfigurationError } from "./AvatarError.js"

/**
 * The discovery endpoint the reference SDK uses by default.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_DISCOVERY_URL = "http://sa-websocekt.akool.io:8051/streamingAvatar/service_status"

/**
 * `test` adds `group_name=WEBSOCKET_GROUP_TEST` to discovery; `prod` adds nothing.
 *
 * @since 0.1.0
 * @category models
 */
export type Environment = "test" | "prod"

/**
 * What a caller may set. Durations accept anything `Duration.decode` does (`"30 seconds"`,
 * milliseconds as a number, a `Duration`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly apiKey: Redacted.Redacted<string>
  readonly discoveryUrl?: string | undefined
  readonly env?: Environment | undefined
  readonly avatarId?: string | undefined
  readonly maxRetryAttempts?: number | undefined
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  readonly heartbeatTimeout?: Duration.DurationInput | undefined
  readonly connectionTimeout?: Duration.DurationInput | undefined
  readonly discoveryTimeout?: Duration.DurationInput | undefined
  readonly commandTimeout?: Duration.DurationInput | undefined
  readonly leaveTimeout?: Duration.DurationInput | undefined
  readonly flushTimeout?: Duration.DurationInput | undefined
}

/**
 * The resolved options.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved {
  readonly apiKey: Redacted.Redacted<string>
  readonly discoveryUrl: string
  readonly env: Environment
  readonly avatarId: Option.Option<string>
  readonly maxRetryAttempts: number
  readonly heartbeatInterval: Duration.Duration
  readonly heartbeatTimeout: Duration.Duration
  readonly connectionTimeout: Duration.Duration
  readonly discoveryTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
  readonly leaveTimeout: Duration.Duration
  readonly flushTimeout: Duration.Duration
}

/**
 * @since 0.1.0
 * @category tags
 */
export class AvatarConfig extends Context.Tag("akool-streaming-avatar/AvatarConfig")<AvatarConfig, Resolved>() {}

/**
 * The reference SDK's defaults (PROTOCOL.md section 6), plus the ones it lacks: a pong
 * deadline, a bound on the flush at close and on the wait for the `leave_channel` ack.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  discoveryUrl: DEFAULT_DISCOVERY_URL,
  env: "test" as Environment,
  maxRetryAttempts: 3,
  heartbeatInterval: Duration.seconds(30),
  heartbeatTimeout: Duration.seconds(10),
  connectionTimeout: Duration.seconds(30),
  discoveryTimeout: Duration.seconds(10),
  commandTimeout: Duration.seconds(10),
  leaveTimeout: Duration.seconds(5),
  flushTimeout: Duration.seconds(10)
} as const

/**
 * Checks a duration option: it must be finite and positive.
 *
 * @since 0.1.0
 * @category validation
 */
export const validDuration = (
  option: string,
  input: Duration.DurationInput | undefined,
  fallback: Duration.Duration
): Effect.Effect<Duration.Duration, ConfigurationError> => {
  if (input === undefined) return Effect.succeed(fallback)
  // Duration clamps negative numbers to zero: refuse them before they are decoded
  if (typeof input === "number" && !(input > 0)) {
    return Effect.fail(
      new ConfigurationError({ option, message: `${option} must be a positive, finite duration (got ${input})` })
    )
  }
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded)) {
    return Effect.fail(
      new ConfigurationError({
        option,
        message: `${option} is not a duration (got ${JSON.stringify(input)}); use milliseconds or a string like "10 seconds"`
      })
    )
  }
  const d = decoded.value
  if (!Duration.isFinite(d) || Duration.toMillis(d) <= 0) {
    return Effect.fail(
      new ConfigurationError({
        option,
        message: `${option} must be a positive, finite duration (got ${Duration.format(d)})`
      })
    )
  }
  return Effect.succeed(d)
}

const positiveInt = (option: string, n: number | undefined, fallback: number) =>
  n === undefined
    ? Effect.succeed(fallback)
    : Number.isInteger(n) && n >= 1
      ? Effect.succeed(n)
      : Effect.fail(
          new ConfigurationError({ option, message: `${option} must be a whole number of at least 1 (got ${n})` })
        )

/**
 * Resolves and validates options.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Resolved, ConfigurationError> =>
  Effect.gen(function* () {
    // what a JavaScript caller passes is checked by its runtime value: a wrong type is our error, never a TypeError
    if (typeof options !== "object" || options === null) {
      return yield* new ConfigurationError({ option: "options", message: "the client options must be an object" })
    }
    if (!Redacted.isRedacted(options.apiKey)) {
      return yield* new ConfigurationError({
        option: "apiKey",
        message: "apiKey must be a Redacted value: pass Redacted.make(key) so the key never reaches a log"
      })
    }
    const key: unknown = Redacted.value(options.apiKey)
    if (typeof key !== "string") {
      return yield* new ConfigurationError({
        option: "apiKey",
        message: `apiKey must hold a string: Redacted.make("your key") (it holds a ${typeof key})`
      })
    }
    if (key.trim() === "") {
      return yield* new ConfigurationError({
        option: "apiKey",
        message: "apiKey is empty: set AKOOL_API_KEY or pass apiKey"
      })
    }
    const discoveryUrl = options.discoveryUrl ?? defaults.discoveryUrl
    if (!URL.canParse(discoveryUrl) || !/^https?:$/.test(new URL(discoveryUrl).protocol)) {
      return yield* new ConfigurationError({
        option: "discoveryUrl",
        message: `discoveryUrl must be an http(s) URL (got ${JSON.stringify(discoveryUrl)})`
      })
    }
    const env = options.env ?? defaults.env
    if (env !== "test" && env !== "prod") {
      return yield* new ConfigurationError({
        option: "env",
        message: `env must be "test" or "prod" (got ${JSON.stringify(env)})`
      })
    }
    if (options.avatarId !== undefined && typeof options.avatarId !== "string") {
      return yield* new ConfigurationError({
        option: "avatarId",
        message: `avatarId must be a string (got ${typeof options.avatarId})`
      })
    }
    if (options.avatarId !== undefined && options.avatarId.trim() === "") {
      return yield* new ConfigurationError({
        option: "avatarId",
        message: "avatarId is empty: pass the id of an avatar, or set AKOOL_AVATAR_ID"
      })
    }
    return {
      apiKey: options.apiKey,
      discoveryUrl,
      env,
      avatarId: Option.fromNullable(options.avatarId),
      maxRetryAttempts: yield* positiveInt("maxRetryAttempts", options.maxRetryAttempts, defaults.maxRetryAttempts),
      heartbeatInterval: yield* validDuration(
        "heartbeatInterval",
        options.heartbeatInterval,
        defaults.heartbeatInterval
      ),
      heartbeatTimeout: yield* validDuration("heartbeatTimeout", options.heartbeatTimeout, defaults.heartbeatTimeout),
      connectionTimeout: yield* validDuration(
        "connectionTimeout",
        options.connectionTimeout,
        defaults.connectionTimeout
      ),
      discoveryTimeout: yield* validDuration("discoveryTimeout", options.discoveryTimeout, defaults.discoveryTimeout),
      commandTimeout: yield* validDuration("commandTimeout", options.commandTimeout, defaults.commandTimeout),
      leaveTimeout: yield* validDuration("leaveTimeout", options.leaveTimeout, defaults.leaveTimeout),
      flushTimeout: yield* validDuration("flushTimeout", options.flushTimeout, defaults.flushTimeout)
    }
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<AvatarConfig, ConfigurationError> =>
  Layer.effect(AvatarConfig, make(options))

/**
 * The environment variable each option falls back to when it is left out.
 *
 * @since 0.1.0
 * @category config
 */
export const variables = {
  apiKey: "AKOOL_API_KEY",
  discoveryUrl: "AKOOL_DISCOVERY_URL",
  env: "AKOOL_ENV",
  avatarId: "AKOOL_AVATAR_ID"
} as const

/**
 * {@link Options} in which the API key may be left out as well, to be read from
 * `AKOOL_API_KEY`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PartialOptions extends Omit<Options, "apiKey"> {
  readonly apiKey?: Redacted.Redacted<string> | undefined
}

/** The caller's value when there is one; the variable is not read then. */
const given = <A>(value: A | undefined, variable: Config.Config<A>): Config.Config<A | undefined> =>
  value !== undefined ? Config.succeed(value) : Config.option(variable).pipe(Config.map(Option.getOrUndefined))

/**
 * The options given, with each of `apiKey`, `discoveryUrl`, `env` and `avatarId` that was
 * left out read from its variable ({@link variables}): explicit options win. Without an
 * `apiKey`, `AKOOL_API_KEY` is required; it is read as a `Redacted`.
 *
 * @since 0.1.0
 * @category config
 */
export const fromEnvWith = (options: PartialOptions): Config.Config<Options> =>
  Config.all({
    apiKey: options.apiKey !== undefined ? Config.succeed(options.apiKey) : Config.redacted(variables.apiKey),
    discoveryUrl: given(options.discoveryUrl, Config.string(variables.discoveryUrl)),
    env: given(options.env, Config.literal("test", "prod")(variables.env)),
    avatarId: given(options.avatarId, Config.string(variables.avatarId))
  }).pipe(Config.map((read): Options => ({ ...options, ...read })))

/**
 * Reads `AKOOL_API_KEY` (as a `Redacted`), `AKOOL_DISCOVERY_URL`, `AKOOL_ENV` and
 * `AKOOL_AVATAR_ID`.
 *
 * @since 0.1.0
 * @category config
 */
export const fromEnv: Config.Config<Options> = fromEnvWith({})

const optionOf = (variable: string): string =>
  Object.entries(variables).find(([, name]) => name === variable)?.[0] ?? "config"

type Leaf = Exclude<ConfigError.ConfigError, ConfigError.And | ConfigError.Or>

const firstLeaf = (error: ConfigError.ConfigError): Leaf =>
  error._op === "And" || error._op === "Or" ? firstLeaf(error.left) : error

/** The first thing that went wrong, named by option and variable (never by the key's value). */
const fromConfigError = (error: ConfigError.ConfigError): ConfigurationError => {
  const leaf = firstLeaf(error)
  const variable = leaf.path.join(".")
  const option = optionOf(variable)
  if (leaf._op === "MissingData") {
    return new ConfigurationError({ option, message: `${option} is missing: pass ${option}, or set ${variable}` })
  }
  // Config.redacted keeps its own messages secret too: say no more than that it failed
  const detail = option === "apiKey" || leaf._op !== "InvalidData" ? "it cannot be read" : leaf.message
  return new ConfigurationError({ option, message: `${variable} cannot be used for ${option}: ${detail}` })
}

/**
 * {@link fromEnvWith} read through the current `ConfigProvider` (the environment, unless
 * one is provided), then {@link make}. A variable that is missing or invalid is a
 * `ConfigurationError` that names the option and the variable, so that code outside
 * Effect has one error class to catch; the Promise client resolves its options this way.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFromEnv = (options: PartialOptions): Effect.Effect<Resolved, ConfigurationError> =>
  fromEnvWith(options).pipe(Effect.mapError(fromConfigError), Effect.flatMap(make))

/**
 * Builds the configuration from a `Config` (by default {@link fromEnv}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config<Options> = fromEnv
): Layer.Layer<AvatarConfig, ConfigurationError | ConfigError.ConfigError> =>
  Layer.effect(AvatarConfig, Effect.flatMap(config, make))
