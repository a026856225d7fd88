/**
 * The errors a session can fail with. Every class is a `Schema.TaggedError`, so it can be
 * matched with `Effect.catchTag`, serialised, and caught with `instanceof`; every one
 * carries a `message` a person can act on and says, through `retryable`, whether trying
 * again can help.
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("akool-streaming-avatar/AvatarError")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * The key was refused: by discovery (HTTP 401 or `code` 4001) or by the WebSocket
 * (close code 4001, refused upgrade 401/403). Never retried.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthenticationError extends Schema.TaggedError<AuthenticationError>(
  "akool-streaming-avatar/AuthenticationError"
)("AuthenticationError", {
  source: Schema.Literal("discovery", "websocket"),
  message: Schema.String
}) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  get retryable(): boolean {
    return false
  }
}

/**
 * Service discovery did not produce a usable instance.
 *
 * - `timeout`: no answer within `discoveryTimeout`
 * - `transport`: the request itself failed (DNS, refused, reset)
 * - `status`: a non-200 answer other than 401
 * - `rejected`: a 200 answer whose `code` is not 1000 (or `success: false`)
 * - `decode`: a body that is not one of the documented shapes
 * - `empty`: no healthy, available instance
 *
 * @since 0.1.0
 * @category errors
 */
export class ServiceDiscoveryError extends Schema.TaggedError<ServiceDiscoveryError>(
  "akool-streaming-avatar/ServiceDiscoveryError"
)("ServiceDiscoveryError", {
  reason: Schema.Literal("timeout", "transport", "status", "rejected", "decode", "empty"),
  message: Schema.String,
  status: Schema.optional(Schema.Number)
}) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  get retryable(): boolean {
    return this.reason !== "decode"
  }
}

/**
 * The WebSocket to an instance could not be opened, or ended.
 *
 * - `timeout`: no `websocket_connected` within `connectionTimeout`
 * - `refused`: the TCP connection or the HTTP upgrade was refused
 * - `occupied`: close code 4003, the instance already has a session (another instance may serve)
 * - `too-soon`: close code 4004, reconnecting too soon (wait, then retry)
 * - `closed`: the connection ended without being asked to
 * - `heartbeat`: no `pong` (nor any other message) within `heartbeatTimeout` of a `ping`
 * - `stalled`: the peer stopped reading: unsent bytes stayed above the high-water mark for `stallTimeout`
 * - `not-connected`: a call of the Promise facade (`StreamingAvatarClient`) that needs a session,
 *   made before `connect()` or after `disconnect()`
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionError extends Schema.TaggedError<ConnectionError>("akool-streaming-avatar/ConnectionError")(
  "ConnectionError",
  {
    reason: Schema.Literal(
      "timeout",
      "refused",
      "occupied",
      "too-soon",
      "closed",
      "heartbeat",
      "stalled",
      "not-connected"
    ),
    message: Schema.String,
    instance: Schema.optional(Schema.String),
    code: Schema.optional(Schema.Number)
  }
) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  get retryable(): boolean {
    return true
  }
}

/**
 * Audio could not be taken or delivered: a stream that ended in the middle of a sample,
 * data that is not raw PCM, or frames left unsent when the session ended.
 *
 * @since 0.1.0
 * @category errors
 */
export class AudioStreamError extends Schema.TaggedError<AudioStreamError>("akool-streaming-avatar/AudioStreamError")(
  "AudioStreamError",
  {
    reason: Schema.Literal("odd-length", "not-pcm", "session-closed"),
    message: Schema.String,
    unsentFrames: Schema.optional(Schema.Number)
  }
) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  get retryable(): boolean {
    return false
  }
}

/**
 * Audio that is not what it claims to be, or that this SDK cannot decode. `source` names
 * the file (or `stdin`) when there is one.
 *
 * - `unknown-format`: neither WAV nor MPEG audio (the message says what it looks like: Ogg,
 *   FLAC, MP4, text...)
 * - `unsupported-codec`: a WAV file whose samples are compressed (ADPCM, µ-law, MP3 in WAV...)
 *   or stored in a way no decoder here reads (big-endian RIFX)
 * - `truncated`: the file ends before its header says it does, or in the middle of a sample
 * - `malformed`: a header that contradicts itself (no `fmt ` chunk, zero channels, a block
 *   size that does not match the sample size), or MPEG data no frame of which decodes
 * - `not-raw`: input declared as raw PCM starts with a container header (WAV, MP3, Ogg...)
 *
 * @since 0.1.0
 * @category errors
 */
export class AudioDecodeError extends Schema.TaggedError<AudioDecodeError>("akool-streaming-avatar/AudioDecodeError")(
  "AudioDecodeError",
  {
    reason: Schema.Literal("unknown-format", "unsupported-codec", "truncated", "malformed", "not-raw"),
    message: Schema.String,
    source: Schema.optional(Schema.String)
  }
) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  get retryable(): boolean {
    return false
  }
}

/**
 * Options that cannot work: an empty avatar id, a negative duration, a missing key.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigurationError extends Schema.TaggedError<ConfigurationError>(
  "akool-streaming-avatar/ConfigurationError"
)("ConfigurationError", {
  option: Schema.String,
  message: Schema.String
}) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  get retryable(): boolean {
    return false
  }
}

/**
 * The server sent an `error` message (`error_code`, `error_message`).
 *
 * @since 0.1.0
 * @category errors
 */
export class ServerError extends Schema.TaggedError<ServerError>("akool-streaming-avatar/ServerError")("ServerError", {
  code: Schema.Number,
  message: Schema.String
}) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  get retryable(): boolean {
    return this.code !== 4001
  }
}

/**
 * A command was not acknowledged: no `ack` within the command timeout (`timeout`), an
 * ack whose status is not `success` (`rejected`), the `agora_connected` that follows
 * `set-params` did not come (`agora-timeout`), or the connection ended while waiting
 * (`disconnected`).
 *
 * @since 0.1.0
 * @category errors
 */
export class CommandError extends Schema.TaggedError<CommandError>("akool-streaming-avatar/CommandError")(
  "CommandError",
  {
    reason: Schema.Literal("timeout", "rejected", "agora-timeout", "disconnected"),
    command: Schema.String,
    mid: Schema.String,
    message: Schema.String
  }
) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  get retryable(): boolean {
    return this.reason !== "rejected"
  }
}

/**
 * Connecting failed on every attempt the retry schedule allowed. `lastError` is the cause
 * of the last attempt.
 *
 * @since 0.1.0
 * @category errors
 */
export class RetryError extends Schema.TaggedError<RetryError>("akool-streaming-avatar/RetryError")("RetryError", {
  attempts: Schema.Number,
  message: Schema.String,
  lastError: Schema.Union(ServiceDiscoveryError, ConnectionError, CommandError, ServerError)
}) {
  /** @since 0.1.0 */
  readonly [TypeId]: TypeId = TypeId
  /** @since 0.1.0 */
  get retryable(): boolean {
    return false
  }
}

/**
 * Every error this SDK fails with.
 *
 * @since 0.1.0
 * @category errors
 */
export type AvatarError =
  | AuthenticationError
  | ServiceDiscoveryError
  | ConnectionError
  | AudioStreamError
  | AudioDecodeError
  | ConfigurationError
  | ServerError
  | CommandError
  | RetryError

/**
 * The errors a connection attempt can end with; the retry loop decides on them. A
 * `ConfigurationError` is a command that does not encode (the params a reconnect re-applies).
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectError =
  | AuthenticationError
  | ServiceDiscoveryError
  | ConnectionError
  | ServerError
  | CommandError
  | ConfigurationError

/**
 * @since 0.1.0
 * @category refinements
 */
export const isAvatarError = (u: unknown): u is AvatarError => Predicate.hasProperty(u, TypeId)
