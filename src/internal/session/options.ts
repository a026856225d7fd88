/**
 * Checks what a caller passes to a session, once, for both front doors: `AvatarSession.make`
 * and the Promise client's constructor. A JavaScript caller can pass anything the types
 * forbid (a number for a string, `null` for an object, `"-1 seconds"` for a lead), so every
 * check looks at the runtime value and names the option it refuses.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Audio from "../../Audio.js"
import * as AvatarConfig from "../../AvatarConfig.js"
import { ConfigurationError, type ConnectError } from "../../AvatarError.js"
import type * as AvatarSession from "../../AvatarSession.js"
import type * as Protocol from "../../Protocol.js"

/** A session's options, checked and with every default filled in. */
export interface Resolved {
  readonly avatarId: string
  readonly sessionId: string
  readonly pacing: AvatarSession.Pacing
  readonly frameMs: number
  readonly frameBytes: number
  readonly leadMs: number
  readonly capacity: number
  readonly highWaterBytes: number
  readonly connectionTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
  readonly heartbeatInterval: Duration.Duration
  readonly heartbeatTimeout: Duration.Duration
  readonly stallMs: number
  readonly playoutDelay: Duration.Duration
  readonly retry: Schedule.Schedule<unknown, ConnectError>
}

const refuse = (option: string, message: string) => new ConfigurationError({ option, message })

/** How a value looks in a message: what a person passed, without dumping an object. */
export const describe = (value: unknown): string =>
  value === null
    ? "null"
    : Array.isArray(value)
      ? "an array"
      : typeof value === "string"
        ? JSON.stringify(value)
        : typeof value === "object" || typeof value === "function"
          ? `a${typeof value === "object" ? "n object" : " function"}`
          : `${typeof value} ${String(value)}`

/** A string option that must not be blank; `undefined` means it was left out. */
const text = (option: string, value: unknown, blank: string): Either.Either<string | undefined, ConfigurationError> => {
  if (value === undefined) return Either.right(undefined)
  if (typeof value !== "string")
    return Either.left(refuse(option, `${option} must be a string (got ${describe(value)})`))
  if (value.trim() === "") return Either.left(refuse(option, blank))
  return Either.right(value)
}

/** The avatar id: the caller's, else the configured one; it must be there. */
export const checkAvatarId = (value: unknown, configured?: string): Either.Either<string, ConfigurationError> =>
  Either.flatMap(
    text("avatarId", value, "avatarId is empty: pass the id of an avatar, or leave it out to use AKOOL_AVATAR_ID"),
    (given) => {
      const avatarId = given ?? configured
      return avatarId === undefined || avatarId.trim() === ""
        ? Either.left(refuse("avatarId", "avatarId is missing or empty: pass it to session() or set AKOOL_AVATAR_ID"))
        : Either.right(avatarId)
    }
  )

/** A caller's session id, or `undefined` for a fresh one. */
export const checkSessionId = (value: unknown): Either.Either<string | undefined, ConfigurationError> =>
  text("sessionId", value, "sessionId is empty: leave it out for a fresh UUID")

export const checkPacing = (value: unknown): Either.Either<AvatarSession.Pacing, ConfigurationError> =>
  value === undefined || value === "realtime" || value === "none"
    ? Either.right(value ?? "realtime")
    : Either.left(refuse("pacing", `pacing must be "realtime" or "none" (got ${describe(value)})`))

/**
 * `Duration.decode` turns a negative input into zero, so a negative lead would pass as "no
 * lead" unnoticed: look for the sign before decoding.
 */
const negative = (input: unknown): boolean =>
  (typeof input === "number" && input < 0) ||
  (typeof input === "bigint" && input < 0n) ||
  (typeof input === "string" && input.trim().startsWith("-")) ||
  (Array.isArray(input) && input.some((part) => typeof part === "number" && part < 0))

/**
 * A duration of zero or more, in milliseconds, for options where zero means "none" (so
 * `AvatarConfig.validDuration`, which wants more than zero, does not fit): `fallbackMs` when
 * left out.
 */
const nonNegativeMs = (
  option: string,
  input: unknown,
  fallbackMs: number
): Either.Either<number, ConfigurationError> => {
  if (input === undefined) return Either.right(fallbackMs)
  const decoded =
    negative(input) || (typeof input === "number" && Number.isNaN(input))
      ? Option.none()
      : Duration.decodeUnknown(input)
  return Option.isSome(decoded) && Duration.isFinite(decoded.value)
    ? Either.right(Duration.toMillis(decoded.value))
    : Either.left(
        refuse(
          option,
          `${option} must be a finite duration of zero or more, such as 200 or "200 millis" (got ${describe(input)})`
        )
      )
}

/** Until `audio_start` events measure it: a server's jitter buffer and rendering. */
export const DEFAULT_PLAYOUT_DELAY_MS = 100

/** The lead in milliseconds (default 1 second). */
export const checkLead = (input: unknown): Either.Either<number, ConfigurationError> =>
  nonNegativeMs("lead", input, 1000)

const count = (option: string, value: unknown, fallback: number, least: number, whole: boolean) => {
  if (value === undefined) return Either.right(fallback)
  const ok =
    typeof value === "number" && Number.isFinite(value) && value >= least && (!whole || Number.isInteger(value))
  return ok
    ? Either.right(value as number)
    : Either.left(
        refuse(
          option,
          `${option} must be ${whole ? "a whole number of at least" : "a number of"} ${least}${whole ? "" : " or more"} (got ${describe(value)})`
        )
      )
}

/**
 * The default connect schedule: exponential from 500 ms with jitter, `maxRetryAttempts`
 * attempts overall (so `maxRetryAttempts - 1` retries).
 */
export const defaultRetry = (maxRetryAttempts: number): Schedule.Schedule<unknown, ConnectError> =>
  Schedule.exponential(Duration.millis(500), 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(Math.max(0, maxRetryAttempts - 1)))
  )

export const validate = (
  input: AvatarSession.Options | undefined,
  config: AvatarConfig.Resolved
): Effect.Effect<Resolved, ConfigurationError> =>
  Effect.gen(function* () {
    if (input !== undefined && (typeof input !== "object" || input === null)) {
      return yield* refuse("options", `session options must be an object (got ${describe(input)})`)
    }
    const options: AvatarSession.Options = input ?? {}
    if (options.retry !== undefined && !Schedule.isSchedule(options.retry)) {
      return yield* refuse("retry", `retry must be a Schedule (got ${describe(options.retry)})`)
    }
    const frameMs = yield* Audio.validateFrameMs(options.frameMs ?? Audio.DEFAULT_FRAME_MS)
    // a session option that overrides the client's value of the same name
    const override = (key: "connectionTimeout" | "commandTimeout" | "heartbeatInterval" | "heartbeatTimeout") =>
      AvatarConfig.validDuration(key, options[key], config[key])
    return {
      avatarId: yield* checkAvatarId(options.avatarId, Option.getOrUndefined(config.avatarId)),
      sessionId: (yield* checkSessionId(options.sessionId)) ?? globalThis.crypto.randomUUID(),
      pacing: yield* checkPacing(options.pacing),
      frameMs,
      frameBytes: Audio.frameBytes(frameMs),
      leadMs: yield* checkLead(options.lead),
      capacity: yield* count("outboxCapacity", options.outboxCapacity, 64, 1, true),
      highWaterBytes: yield* count("highWaterBytes", options.highWaterBytes, 1024 * 1024, 0, false),
      connectionTimeout: yield* override("connectionTimeout"),
      commandTimeout: yield* override("commandTimeout"),
      heartbeatInterval: yield* override("heartbeatInterval"),
      heartbeatTimeout: yield* override("heartbeatTimeout"),
      stallMs: Duration.toMillis(
        yield* AvatarConfig.validDuration("stallTimeout", options.stallTimeout, Duration.seconds(10))
      ),
      playoutDelay: Duration.millis(
        yield* nonNegativeMs("playoutDelay", options.playoutDelay, DEFAULT_PLAYOUT_DELAY_MS)
      ),
      retry: options.retry ?? defaultRetry(config.maxRetryAttempts)
    }
  })

const optionalText = (option: string, value: unknown): ConfigurationError | undefined =>
  value === undefined || typeof value === "string"
    ? undefined
    : refuse(option, `${option} must be a string when given (got ${describe(value)})`)

/** `set-params` input, checked field by field before anything reaches the wire. */
export const validateParams = (params: unknown): Effect.Effect<Protocol.AvatarParams, ConfigurationError> => {
  if (typeof params !== "object" || params === null) {
    return Effect.fail(
      refuse(
        "params",
        `params must be an object: setParams takes { agora: { appId, channel, token, uid }, voiceId?, language?, backgroundUrl? } (got ${describe(params)})`
      )
    )
  }
  const { agora, voiceId, language, backgroundUrl } = params as Record<string, unknown>
  if (typeof agora !== "object" || agora === null) {
    return Effect.fail(refuse("agora", "setParams needs agora: { appId, channel, token, uid }"))
  }
  const fields = agora as Record<string, unknown>
  for (const key of ["appId", "channel"] as const) {
    const value = fields[key]
    if (typeof value !== "string" || value.trim() === "") {
      return Effect.fail(
        refuse(
          `agora.${key}`,
          `agora.${key} is missing or empty${value === undefined ? "" : ` (got ${describe(value)})`}`
        )
      )
    }
  }
  if (typeof fields.token !== "string") {
    return Effect.fail(
      refuse(
        "agora.token",
        `agora.token must be a string, empty for a channel without tokens (got ${describe(fields.token)})`
      )
    )
  }
  const uid = fields.uid
  if (!(typeof uid === "string" || (typeof uid === "number" && Number.isInteger(uid) && uid >= 0))) {
    return Effect.fail(
      refuse("agora.uid", `agora.uid must be a string or a non-negative whole number (got ${describe(uid)})`)
    )
  }
  const wrong =
    optionalText("voiceId", voiceId) ??
    optionalText("language", language) ??
    optionalText("backgroundUrl", backgroundUrl)
  return wrong ? Effect.fail(wrong) : Effect.succeed(params as Protocol.AvatarParams)
}
