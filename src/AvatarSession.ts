/**
 * The managed session: connects with retry and failover across instances, keeps the
 * heartbeat, correlates command acks, publishes server events and state, and streams audio
 * through a bounded, paced outbox.
 *
 * @since 0.1.0
 */
import type * as Socket from "@effect/platform/Socket"
import type * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import type * as Stream from "effect/Stream"
import type * as SubscriptionRef from "effect/SubscriptionRef"
import type { AvatarConfig } from "./AvatarConfig.js"
import type { AudioStreamError, AvatarError, ConfigurationError, ConnectError } from "./AvatarError.js"
import type * as Discovery from "./Discovery.js"
import type { FrameClock } from "./internal/dataplane/frameClock.js"
import * as options from "./internal/session/options.js"
import * as internal from "./internal/session/session.js"
import * as state from "./internal/session/state.js"
import type * as Protocol from "./Protocol.js"

/**
 * Where a session is. `Closed` carries the error that ended it, if one did.
 *
 * @since 0.1.0
 * @category models
 */
export type SessionState = Data.TaggedEnum<{
  Connecting: { readonly attempt: number }
  Ready: { readonly instance: string }
  Streaming: { readonly instance: string }
  Reconnecting: { readonly attempt: number; readonly cause: AvatarError; readonly unconfirmedFrames: number }
  Closed: { readonly error: Option.Option<AvatarError> }
}>

/**
 * @since 0.1.0
 * @category models
 */
export const SessionState: Data.TaggedEnum.Constructor<SessionState> = state.SessionState

/**
 * @since 0.1.0
 * @category models
 */
export type Pacing = "realtime" | "none"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The avatar to drive; defaults to the client's `avatarId` (`AKOOL_AVATAR_ID`). */
  readonly avatarId?: string | undefined
  /** Defaults to a fresh UUID v4. */
  readonly sessionId?: string | undefined
  /** `realtime` (default) keeps the writer at most `lead` ahead of playback; `none` sends as fast as the socket takes it. */
  readonly pacing?: Pacing | undefined
  /** Frame duration in milliseconds (default 40, 1,280 bytes). */
  readonly frameMs?: number | undefined
  /** How far ahead of real-time playback the writer may run (default 1 second). */
  readonly lead?: Duration.DurationInput | undefined
  /** Frames the outbox holds before producers are held back (default 64, 2.56 s at 40 ms). */
  readonly outboxCapacity?: number | undefined
  /** The socket's unsent bytes above which the writer waits (default 1 MiB). */
  readonly highWaterBytes?: number | undefined
  /** Connect retry schedule; default: exponential from 500 ms with jitter, `maxRetryAttempts` attempts overall. */
  readonly retry?: Schedule.Schedule<unknown, ConnectError> | undefined
  readonly connectionTimeout?: Duration.DurationInput | undefined
  readonly commandTimeout?: Duration.DurationInput | undefined
  readonly heartbeatInterval?: Duration.DurationInput | undefined
  readonly heartbeatTimeout?: Duration.DurationInput | undefined
  /**
   * How long the socket may hold more than `highWaterBytes` unsent before the peer counts as
   * stalled and the connection as dropped (default 10 seconds).
   */
  readonly stallTimeout?: Duration.DurationInput | undefined
  /** Sent right after connecting; the session is returned once they are acknowledged and Agora is connected. */
  readonly params?: Protocol.AvatarParams | undefined
}

/**
 * The reference SDK's `get_connection_info`, plus the audio accounting.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionInfo {
  readonly connected: boolean
  readonly agoraConnected: boolean
  readonly sessionId: string
  readonly avatarId: string
  readonly currentService: {
    readonly ip: string
    readonly port: number
    readonly status: string
    readonly healthy: boolean
  } | null
  readonly availableServicesCount: number
  /** How many times the session reconnected after a drop. */
  readonly reconnects: number
  readonly audio: {
    /** Frames taken from producers. */
    readonly framesAccepted: number
    /** Frames handed to the socket. */
    readonly framesWritten: number
    /** Frames dropped by an `interrupt` the caller asked for. */
    readonly framesDropped: number
    /** Frames waiting in the outbox. */
    readonly framesQueued: number
    /**
     * Frames written to a connection that then dropped before a pong or an ack confirmed
     * them: they may not have arrived. Never re-sent (that could repeat speech).
     */
    readonly framesUnconfirmed: number
    readonly bytesWritten: number
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface AvatarSession {
  readonly sessionId: string
  readonly avatarId: string
  /** Sends `set-params` and waits for its ack and `agora_connected`. */
  readonly setParams: (params: Protocol.AvatarParams) => Effect.Effect<void, AvatarError>
  /**
   * Streams speech: any chunk sizes, 16 kHz 16-bit mono PCM. Completes once every frame it
   * took has been written to the socket (or dropped by an `interrupt`, which ends it early).
   */
  readonly audio: Sink.Sink<void, Uint8Array, unknown, AudioStreamError>
  /**
   * Streams an utterance: the same as `Stream.run(speech, session.audio)`, at less memory. A
   * session that speaks for minutes holds its stream open all that time, and `Stream.run`
   * keeps a stack of channel executors for it; this pulls the stream directly (about 13 KB
   * less per speaking session, measured in `npm run bench`). Use the sink to compose, this
   * to serve many sessions in one process.
   */
  readonly speak: <E, R>(speech: Stream.Stream<Uint8Array, E, R>) => Effect.Effect<void, AudioStreamError | E, R>
  /** One-off audio, through the same outbox; completes once written. */
  readonly sendAudio: (bytes: Uint8Array) => Effect.Effect<void, AudioStreamError>
  /** Drops queued audio, ends the utterance being streamed, sends `interrupt` and awaits its ack. */
  readonly interrupt: Effect.Effect<void, AvatarError>
  /** Decoded server messages; each subscriber sees every message after it subscribes. */
  readonly events: Stream.Stream<Protocol.ServerMessage>
  readonly state: SubscriptionRef.SubscriptionRef<SessionState>
  readonly info: Effect.Effect<ConnectionInfo>
  /** Completes when the session ends: with success when its scope closed it, with the error that ended it otherwise. */
  readonly await: Effect.Effect<void, AvatarError>
}

/**
 * What a session needs from its environment; `AvatarClient` provides all of it.
 *
 * @since 0.1.0
 * @category models
 */
export type Requirements = AvatarConfig | Discovery.Discovery | Socket.WebSocketConstructor | FrameClock

/**

/**
 * The default connect schedule: exponential from 500 ms with jitter, `maxRetryAttempts`
 * attempts overall (so `maxRetryAttempts - 1` retries).
 *
 * @since 0.1.0
 * @category retry
 */
export const defaultRetry: (maxRetryAttempts: number) => Schedule.Schedule<unknown, ConnectError> = options.defaultRetry

/**
 * Checks `set-params` input before it reaches the wire: every field, whatever a JavaScript
 * caller passed, with a `ConfigurationError` that names the one that cannot work.
 *
 * @since 0.1.0
 * @category validation
 */
export const validateParams: (
  params: Protocol.AvatarParams
) => Effect.Effect<Protocol.AvatarParams, ConfigurationError> = options.validateParams

/**
 * Opens a session. It lives until the scope closes: then it flushes the outbox (bounded by
 * `flushTimeout`), sends `leave_channel`, waits briefly for its ack, and closes the socket.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<AvatarSession, AvatarError, Scope.Scope | Requirements> =>
  internal.make(options)
