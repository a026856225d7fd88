/**
 * The managed session: connects with retry and failover across instances, keeps the
 * heartbeat, correlates command acks, publishes server events and state, and streams audio
 * through a bounded, paced outbox.
 *
 * @since 0.1.0
 */
import type * as Socket from "@effect/platform/Socket"
import type * as Context from "effect/Context"
import type * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import type * as Stream from "effect/Stream"
import type * as SubscriptionRef from "effect/SubscriptionRef"
import type { AvatarConfig } from "./AvatarConfig.js"
import type { AudioStreamError, AvatarError, ConfigurationError, ConnectError, ServerError } from "./AvatarError.js"
import type * as Discovery from "./Discovery.js"
import * as FrameClock from "./internal/dataplane/frameClock.js"
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
  /**
   * How long after a frame reaches the service the avatar speaks it: its jitter buffer and
   * rendering (default 100 milliseconds). The playback model starts from it; once the server
   * sends `audio_start` events, the session measures the real delay and uses that instead.
   */
  readonly playoutDelay?: Duration.DurationInput | undefined
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
  readonly playback: {
    /** The playout delay the playback model uses, in milliseconds. */
    readonly playoutDelayMs: number
    /** Whether it was measured from the server's `audio_start` events (else it is the `playoutDelay` option). */
    readonly measured: boolean
  }
}

/**
 * Whether the avatar is speaking, and which utterance. Driven by the server's `audio_start`
 * and `audio_end` events when it sends them, and by the playback model otherwise. `since` is
 * the clock time (milliseconds) at which it began.
 *
 * @since 0.2.0
 * @category turn-taking
 */
export type Speaking = Data.TaggedEnum<{
  Silent: {}
  Speaking: { readonly utterance: string; readonly since: number }
}>

/**
 * @since 0.2.0
 * @category turn-taking
 */
export const Speaking: Data.TaggedEnum.Constructor<Speaking> = state.Speaking

/**
 * How an utterance ended in the avatar's playback. `playedMs` counts only audio the server
 * confirmed it had received and that had played by the end; gaps where the producer fell
 * behind are silence and count in neither figure.
 *
 * @since 0.2.0
 * @category turn-taking
 */
export interface Played {
  /** An interrupt cut it before its end. */
  readonly interrupted: boolean
  readonly playedMs: number
  /** Its audio, in milliseconds (what was written, and what an interrupt dropped). */
  readonly durationMs: number
}

/**
 * What an interrupt cut: the utterance being spoken (or, when none was, the first one
 * waiting), how much of it had been heard, and how much of it and of the utterances queued
 * behind it never was. A voice agent truncates its transcript at `playedMs`.
 *
 * @since 0.2.0
 * @category turn-taking
 */
export interface Interrupted {
  /** The id of that utterance; `undefined` when nothing was playing or waiting. */
  readonly utterance: string | undefined
  readonly playedMs: number
  readonly unplayedMs: number
  /** Frames dropped from the outbox before they were written. */
  readonly droppedFrames: number
}

/**
 * An utterance started with `session.say`: it runs in the session's scope while the caller
 * goes on.
 *
 * @since 0.2.0
 * @category turn-taking
 */
export interface Utterance<E = never> {
  readonly id: string
  /** Every frame has left the process (what `Stream.run(speech, session.audio)` completing means). */
  readonly written: Effect.Effect<void, AudioStreamError | E>
  /** The avatar has finished speaking it, or an interrupt cut it. */
  readonly played: Effect.Effect<Played, AudioStreamError | E>
  /** Interrupts the session if this utterance is still to be heard; otherwise does nothing and says so. */
  readonly interrupt: Effect.Effect<Interrupted, AvatarError>
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
  /**
   * Starts an utterance in the session's scope and returns at once: its `written` and
   * `played` can be awaited, and it can be interrupted on its own.
   */
  readonly say: <E, R>(speech: Stream.Stream<Uint8Array, E, R>) => Effect.Effect<Utterance<E>, never, R>
  /**
   * Barge-in: drops queued audio, ends the utterance being streamed, sends `interrupt` and
   * awaits its ack; then says what the listener had heard.
   */
  readonly interrupt: Effect.Effect<Interrupted, AvatarError>
  /** Whether the avatar is speaking now; `.changes` is a Stream of every change. */
  readonly speaking: SubscriptionRef.SubscriptionRef<Speaking>
  /**
   * The server's `error` messages that answer no command (one that answers a command fails
   * that command instead); each subscriber sees those that arrive after it subscribes.
   */
  readonly errors: Stream.Stream<ServerError>
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
export type Requirements = AvatarConfig | Discovery.Discovery | Socket.WebSocketConstructor | Clock

/**
 * The pacing clock that the sessions of one client share: one loop wakes every session's
 * writer and heartbeat, so that a thousand sessions keep time where a timer each would not.
 * It runs on Effect's `Clock` (tests drive it with the `TestClock`). `AvatarClient` makes one
 * per client; {@link layerClock} makes one for sessions opened with {@link make} directly.
 *
 * @since 0.2.0
 * @category clock
 */
export interface Clock {
  /** The clock's time, in milliseconds. */
  readonly now: () => number
}

/**
 * @since 0.2.0
 * @category clock
 */
export const Clock: Context.Tag<Clock, Clock> = FrameClock.FrameClock

/**
 * A pacing clock for as long as the layer lives.
 *
 * @since 0.2.0
 * @category clock
 */
export const layerClock: Layer.Layer<Clock> = Layer.scoped(Clock, FrameClock.make())

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
