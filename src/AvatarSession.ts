/**
 * The managed session: connects with retry and failover across instances, keeps the
 * heartbeat, correlates command acks, publishes server events and state, and streams audio
 * through a bounded, paced outbox.
 *
 * @since 0.1.0
 */
import * as Socket from "@effect/platform/Socket"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Audio from "./Audio.js"
import * as AvatarConfigModule from "./AvatarConfig.js"
import { AvatarConfig } from "./AvatarConfig.js"
import {
  AudioStreamError,
  type AvatarError,
  CommandError,
  ConfigurationError,
  type ConnectError,
  ConnectionError,
  RetryError
} from "./AvatarError.js"
import * as AvatarMetrics from "./AvatarMetrics.js"
import * as Connection from "./Connection.js"
import * as Discovery from "./Discovery.js"
import * as Heartbeat from "./Heartbeat.js"
import { FrameClock } from "./internal/dataplane/frameClock.js"
import { Framer } from "./internal/dataplane/framer.js"
import { Outbox } from "./internal/dataplane/outbox.js"
import * as Protocol from "./Protocol.js"

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
export const SessionState = Data.taggedEnum<SessionState>()

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
 * The default connect schedule: exponential from 500 ms with jitter, `maxRetryAttempts`
 * attempts overall (so `maxRetryAttempts - 1` retries).
 *
 * @since 0.1.0
 * @category retry
 */
export const defaultRetry = (maxRetryAttempts: number): Schedule.Schedule<unknown, ConnectError> =>
  Schedule.exponential(Duration.millis(500), 2).pipe(
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(Math.max(0, maxRetryAttempts - 1)))
  )

const validate = (options: Options, config: AvatarConfigModule.Resolved) =>
  Effect.gen(function* () {
    const avatarId = options.avatarId ?? Option.getOrUndefined(config.avatarId)
    if (avatarId === undefined || avatarId.trim() === "") {
      return yield* new ConfigurationError({
        option: "avatarId",
        message: "avatarId is missing or empty: pass it to session() or set AKOOL_AVATAR_ID"
      })
    }
    if (options.sessionId !== undefined && options.sessionId.trim() === "") {
      return yield* new ConfigurationError({
        option: "sessionId",
        message: "sessionId is empty: leave it out for a fresh UUID"
      })
    }
    const pacing = options.pacing ?? "realtime"
    if (pacing !== "realtime" && pacing !== "none") {
      return yield* new ConfigurationError({
        option: "pacing",
        message: `pacing must be "realtime" or "none" (got ${JSON.stringify(pacing)})`
      })
    }
    const frameMs = yield* Audio.validateFrameMs(options.frameMs ?? Audio.DEFAULT_FRAME_MS)
    const lead =
      options.lead === undefined
        ? Duration.seconds(1)
        : typeof options.lead === "number" && !(options.lead >= 0)
          ? undefined
          : Duration.decodeUnknown(options.lead).pipe(Option.getOrUndefined)
    if (lead === undefined || !Duration.isFinite(lead) || Duration.toMillis(lead) < 0) {
      return yield* new ConfigurationError({
        option: "lead",
        message: "lead must be a finite duration of zero or more"
      })
    }
    const capacity = options.outboxCapacity ?? 64
    if (!Number.isInteger(capacity) || capacity < 1) {
      return yield* new ConfigurationError({
        option: "outboxCapacity",
        message: `outboxCapacity must be a whole number of at least 1 (got ${capacity})`
      })
    }
    // a session option that overrides the client's value of the same name
    const override = (key: "connectionTimeout" | "commandTimeout" | "heartbeatInterval" | "heartbeatTimeout") =>
      AvatarConfigModule.validDuration(key, options[key], config[key])
    const highWaterBytes = options.highWaterBytes ?? 1024 * 1024
    if (!Number.isFinite(highWaterBytes) || highWaterBytes < 0) {
      return yield* new ConfigurationError({
        option: "highWaterBytes",
        message: `highWaterBytes must be zero or more (got ${highWaterBytes})`
      })
    }
    return {
      avatarId,
      sessionId: options.sessionId ?? globalThis.crypto.randomUUID(),
      pacing,
      frameMs,
      leadMs: Duration.toMillis(lead),
      capacity,
      highWaterBytes,
      connectionTimeout: yield* override("connectionTimeout"),
      commandTimeout: yield* override("commandTimeout"),
      heartbeatInterval: yield* override("heartbeatInterval"),
      heartbeatTimeout: yield* override("heartbeatTimeout"),
      stallMs: Duration.toMillis(
        yield* AvatarConfigModule.validDuration("stallTimeout", options.stallTimeout, Duration.seconds(10))
      )
    }
  })

/**
 * Checks `set-params` input before it reaches the wire.
 *
 * @since 0.1.0
 * @category validation
 */
export const validateParams = (
  params: Protocol.AvatarParams
): Effect.Effect<Protocol.AvatarParams, ConfigurationError> => {
  const agora = params?.agora
  if (agora === undefined || agora === null) {
    return Effect.fail(
      new ConfigurationError({ option: "agora", message: "setParams needs agora: { appId, channel, token, uid }" })
    )
  }
  for (const key of ["appId", "channel"] as const) {
    if (typeof agora[key] !== "string" || agora[key].trim() === "") {
      return Effect.fail(
        new ConfigurationError({ option: `agora.${key}`, message: `agora.${key} is missing or empty` })
      )
    }
  }
  if (typeof agora.token !== "string") {
    return Effect.fail(
      new ConfigurationError({
        option: "agora.token",
        message: "agora.token must be a string (empty for a channel without tokens)"
      })
    )
  }
  if (
    !(typeof agora.uid === "string" || (typeof agora.uid === "number" && Number.isInteger(agora.uid) && agora.uid >= 0))
  ) {
    return Effect.fail(
      new ConfigurationError({
        option: "agora.uid",
        message: "agora.uid must be a string or a non-negative whole number"
      })
    )
  }
  return Effect.succeed(params)
}

/**
 * Opens a session. It lives until the scope closes: then it flushes the outbox (bounded by
 * `flushTimeout`), sends `leave_channel`, waits briefly for its ack, and closes the socket.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<AvatarSession, AvatarError, Scope.Scope | Requirements> =>
  Effect.gen(function* () {
    const config = yield* AvatarConfig
    const discovery = yield* Discovery.Discovery
    const frameClock = yield* FrameClock
    const opts = yield* validate(options, config)
    const { avatarId, sessionId } = opts
    // picked, not the whole context: that would carry the caller's Scope along
    const connectionContext = Context.pick(
      AvatarConfig,
      Socket.WebSocketConstructor
    )(yield* Effect.context<AvatarConfig | Socket.WebSocketConstructor>())

    const state = yield* SubscriptionRef.make<SessionState>(SessionState.Connecting({ attempt: 1 }))
    const events = yield* PubSub.unbounded<Protocol.ServerMessage>()
    const ended = yield* Deferred.make<void, AvatarError>()
    const outbox = new Outbox({
      capacity: opts.capacity,
      pacing: opts.pacing,
      leadMs: opts.leadMs,
      highWaterBytes: opts.highWaterBytes,
      stallMs: opts.stallMs,
      // about a second of audio: what a drop can leave in doubt
      confirmEvery: Math.max(1, Math.round(1000 / opts.frameMs)),
      gridMs: opts.frameMs
    })
    const frameBytes = Audio.frameBytes(opts.frameMs)

    /** A connection in use, and how much audio had been written when it took over. */
    interface Live {
      readonly connection: Connection.Connection
      readonly scope: Scope.CloseableScope
      readonly writtenBefore: number
    }

    let current: Live | undefined
    // completes when a connection is usable; a new one replaces it at every drop
    let ready = Deferred.unsafeMake<Connection.Connection, AvatarError>(FiberId.none)
    let instances: ReadonlyArray<Discovery.Instance> = []
    let instanceIndex = 0
    let agoraConnected = false
    /** Whether this session is counted in `akool_avatar_sessions_active`. */
    let counted = false
    /** The set-params waiting for `agora_connected`, if one is. */
    let agoraWaiter: Deferred.Deferred<void> | undefined
    let closing = false
    let producers = 0
    let reconnects = 0
    let unconfirmed = 0
    let lastParams: Protocol.AvatarParams | undefined
    let finished = false
    // a connection being set up (not yet `current`): the session finalizer closes it too
    let connecting: Live | undefined

    const setState = (next: SessionState) => SubscriptionRef.set(state, next)
    const instanceLabel = () => (current ? Discovery.label(current.connection.instance) : "")

    // ------------------------------------------------------------------
    // commands
    // ------------------------------------------------------------------

    /** The open connection; while (re)connecting, waits for the next one, bounded by `timeout`. */
    const awaitConnection = (
      command: string,
      timeout: Duration.Duration
    ): Effect.Effect<Connection.Connection, AvatarError> => {
      const attempt: Effect.Effect<Connection.Connection, AvatarError> = Effect.suspend(() => {
        if (current?.connection.isOpen()) return Effect.succeed(current.connection)
        return Deferred.await(ready).pipe(
          // a connection that dropped a moment ago, before its replacement was announced
          Effect.flatMap((connection) =>
            connection.isOpen()
              ? Effect.succeed(connection)
              : Effect.zipRight(Effect.sleep(Duration.millis(5)), attempt)
          )
        )
      })
      return attempt.pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new CommandError({
              reason: "timeout",
              command,
              mid: "",
              message: `${command} waited ${Duration.format(timeout)} for the session to reconnect`
            })
        })
      )
    }

    /** Sends a command on the open connection and awaits its ack; the ack confirms the audio written before it. */
    const command = (name: string, build: (mid: string) => Protocol.ClientMessage) =>
      Effect.gen(function* () {
        const start = frameClock.now()
        const connection = yield* awaitConnection(name, opts.commandTimeout)
        // one deadline for the wait and the ack together
        const left = Duration.millis(Math.max(1, Duration.toMillis(opts.commandTimeout) - (frameClock.now() - start)))
        return yield* connection.request(build(connection.ids.next()), left)
      })

    /** set-params on one connection: its ack, then agora_connected. */
    const applyParams = (connection: Connection.Connection, params: Protocol.AvatarParams) =>
      Effect.suspend(() => {
        // waiting before sending, so agora_connected cannot slip past (`observe` completes it)
        const agora = Deferred.unsafeMake<void>(FiberId.none)
        agoraWaiter = agora
        agoraConnected = false
        const message = Protocol.setParams(connection.ids.next(), params)
        return connection.request(message, opts.commandTimeout).pipe(
          Effect.zipRight(
            Deferred.await(agora).pipe(
              Effect.timeoutFail({
                duration: opts.connectionTimeout,
                onTimeout: () =>
                  new CommandError({
                    reason: "agora-timeout",
                    command: "set-params",
                    mid: message.mid,
                    message: `set-params was acknowledged but Agora did not connect within ${Duration.format(opts.connectionTimeout)}`
                  })
              })
            )
          ),
          Effect.ensuring(
            Effect.sync(() => {
              if (agoraWaiter === agora) agoraWaiter = undefined
            })
          )
        )
      })

    const setParams = (params: Protocol.AvatarParams): Effect.Effect<void, AvatarError> =>
      validateParams(params).pipe(
        Effect.flatMap((valid) =>
          Effect.gen(function* () {
            const previous = lastParams
            // remembered before the answer: a reconnect in between re-applies them
            lastParams = valid
            const connection = yield* awaitConnection("set-params", opts.commandTimeout)
            yield* applyParams(connection, valid).pipe(
              Effect.tapError((error) =>
                Effect.sync(() => {
                  if (error._tag === "ServerError" || (error._tag === "CommandError" && error.reason === "rejected")) {
                    lastParams = previous
                  }
                })
              )
            )
          })
        ),
        Effect.withSpan("AvatarSession.setParams", {
          attributes: {
            "akool.session_id": sessionId,
            "akool.agora.channel": params?.agora?.channel,
            "akool.language": params?.language ?? "en"
          }
        })
      )

    const interrupt: Effect.Effect<void, AvatarError> = Effect.gen(function* () {
      const dropped = outbox.interrupt(frameClock.now())
      yield* Effect.annotateCurrentSpan("akool.frames_dropped", dropped)
      yield* command("interrupt", Protocol.interrupt)
    }).pipe(Effect.withSpan("AvatarSession.interrupt", { attributes: { "akool.session_id": sessionId } }))

    // ------------------------------------------------------------------
    // connecting
    // ------------------------------------------------------------------

    // What the SDK itself learns from the messages, as they arrive; odd ones are logged, on
    // a fiber of their own (rare: a hostile server's flood is a warning once per kind, then debug).
    const runtime = yield* Effect.runtime<never>()
    const seen = new Set<string>()
    const level = (kind: string) => {
      if (seen.has(kind)) return LogLevel.Debug
      seen.add(kind)
      return LogLevel.Warning
    }
    const minimumLevel = FiberRefs.getOrDefault(runtime.fiberRefs, FiberRef.currentMinimumLogLevel)
    const log = (logLevel: LogLevel.LogLevel, message: string, annotations: Record<string, unknown>) => {
      if (LogLevel.lessThan(logLevel, minimumLevel)) return
      Runtime.runFork(runtime, Effect.logWithLevel(logLevel, message).pipe(Effect.annotateLogs(annotations)))
    }
    const observe = (message: Protocol.ServerMessage) => {
      switch (message.type) {
        case "system":
          if (message.pld.status === "agora_connected") {
            agoraConnected = true
            if (agoraWaiter !== undefined) Deferred.unsafeDone(agoraWaiter, Effect.void)
          }
          return
        case "error":
          return log(LogLevel.Warning, "Avatar service sent an error", {
            sessionId,
            code: message.pld.error_code,
            error: message.pld.error_message
          })
        case "unknown":
          return log(LogLevel.Debug, "Avatar service sent a message of unknown type", {
            sessionId,
            type: message.messageType
          })
        case "invalid":
          return log(level(`invalid:${message.reason}`), "Avatar service sent an invalid message", {
            sessionId,
            reason: message.reason,
            detail: message.detail,
            excerpt: message.excerpt
          })
      }
    }

    const connectOnce = (reapply: boolean) =>
      Effect.gen(function* () {
        if (instances.length === 0) {
          instances = yield* discovery.instances(avatarId)
          instanceIndex = 0
        }
        const instance = instances[instanceIndex % instances.length]!
        // not a child of the session scope: the session finalizer must still hold the connection
        // to flush and send leave_channel, and it closes this scope itself
        const scope = yield* Scope.make(ExecutionStrategy.sequential)
        let live: Live | undefined
        const connection = yield* Connection.make({
          instance,
          sessionId,
          avatarId,
          messages: events,
          connectionTimeout: opts.connectionTimeout,
          mark: () => outbox.written,
          onMessage: observe,
          onDrop: () => {
            if (live !== undefined && current === live) recover(live)
          }
        }).pipe(
          Scope.extend(scope),
          Effect.provide(connectionContext),
          Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
        )
        live = { connection, scope, writtenBefore: outbox.written }
        connecting = live
        // the heartbeat runs on the client's shared clock, not on a fiber of this session
        const beat = Heartbeat.make(
          connection,
          { interval: opts.heartbeatInterval, timeout: opts.heartbeatTimeout },
          frameClock.now()
        )
        const removeBeat = frameClock.addTimer(beat)
        yield* Scope.addFinalizer(scope, Effect.sync(removeBeat))
        if (reapply && lastParams !== undefined) {
          yield* applyParams(connection, lastParams).pipe(
            Effect.onError((cause) =>
              Effect.zipRight(
                Effect.sync(() => {
                  connecting = undefined
                }),
                Scope.close(scope, Exit.failCause(cause))
              )
            )
          )
        }
        return live
      }).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            // where the next attempt goes: another instance, unless the service only asked us to wait
            if (
              error._tag !== "ServiceDiscoveryError" &&
              !(error._tag === "ConnectionError" && error.reason === "too-soon")
            ) {
              instanceIndex++
            }
            if (error._tag === "ServiceDiscoveryError" || instanceIndex >= instances.length) instances = []
          })
        )
      )

    const connect = (phase: "connect" | "reconnect", cause?: AvatarError) =>
      Effect.gen(function* () {
        let attempts = 0
        const attempt = Effect.suspend(() => {
          attempts++
          const announce =
            phase === "reconnect"
              ? setState(
                  SessionState.Reconnecting({ attempt: attempts, cause: cause!, unconfirmedFrames: unconfirmed })
                )
              : attempts > 1
                ? setState(SessionState.Connecting({ attempt: attempts }))
                : Effect.void
          return Effect.zipRight(announce, connectOnce(phase === "reconnect"))
        })
        const schedule = options.retry ?? defaultRetry(config.maxRetryAttempts)
        const live = yield* attempt.pipe(
          Effect.retry({ schedule, while: (error) => error.retryable }),
          Effect.catchAll(
            (error): Effect.Effect<never, AvatarError> =>
              error.retryable
                ? Effect.fail(
                    new RetryError({
                      attempts,
                      lastError: error as RetryError["lastError"],
                      message: `Could not ${phase} after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${error.message}`
                    })
                  )
                : Effect.fail(error)
          )
        )
        yield* Effect.annotateCurrentSpan({
          "akool.instance": Discovery.label(live.connection.instance),
          "akool.attempts": attempts
        })
        return live
      }).pipe(
        Effect.withSpan(phase === "connect" ? "AvatarSession.connect" : "AvatarSession.reconnect", {
          attributes: {
            "akool.session_id": sessionId,
            "akool.avatar_id": avatarId,
            ...(cause ? { "akool.reconnect.cause": cause.message } : {})
          }
        })
      )

    /** Makes a connection the one the writer and the commands use. */
    const activate = (live: Live) =>
      Effect.suspend(() => {
        current = live
        connecting = undefined
        const connection = live.connection
        outbox.target = {
          socket: connection.socket,
          sendChat: connection.unsafeSendChat,
          cork: connection.unsafeCork,
          uncork: connection.unsafeUncork,
          isOpen: connection.isOpen,
          requestConfirmation: connection.unsafePing,
          onStall: (bufferedBytes) =>
            connection.unsafeAbort(
              new ConnectionError({
                reason: "stalled",
                instance: Discovery.label(connection.instance),
                message: `The instance ${Discovery.label(connection.instance)} stopped reading: ${bufferedBytes} bytes stayed unsent for ${opts.stallMs} ms`
              })
            )
        }
        Deferred.unsafeDone(ready, Effect.succeed(connection))
        // frames that waited through a reconnect go out first, in order
        if (outbox.pump(frameClock.now())) frameClock.schedule(outbox)
        const instance = Discovery.label(connection.instance)
        return Effect.zipRight(
          setState(producers > 0 ? SessionState.Streaming({ instance }) : SessionState.Ready({ instance })),
          // a connection that dropped before it took over is recovered from at once
          Effect.sync(() => {
            if (connection.dropped() !== undefined && current === live) recover(live)
          })
        )
      })

    // ------------------------------------------------------------------
    // audio
    // ------------------------------------------------------------------

    const beginProducing = Effect.suspend(() => {
      producers++
      return current && producers === 1 ? setState(SessionState.Streaming({ instance: instanceLabel() })) : Effect.void
    })
    const endProducing = Effect.suspend(() => {
      producers--
      return current && producers === 0 && !closing && outbox.failure === undefined
        ? setState(SessionState.Ready({ instance: instanceLabel() }))
        : Effect.void
    })

    interface SinkState {
      readonly framer: Framer
      readonly epoch: number
      /** Bytes taken from the producer, for the odd-length message. */
      total: number
      /** A frame cut but not yet taken by the full outbox. */
      next: Uint8Array | undefined
      stopped: boolean
      checked: boolean
    }

    /**
     * Cuts `input` into frames and queues them as the outbox has room, waiting for room as
     * needed; `false` when an interrupt ended the utterance. Frames are cut only as they are
     * queued, so a long chunk costs no more memory than the outbox holds.
     */
    const offerAll = (s: SinkState, input: Chunk.Chunk<Uint8Array>): Effect.Effect<boolean, AudioStreamError> => {
      let index = 0
      const step: Effect.Effect<boolean, AudioStreamError> = Effect.suspend(() => {
        if (outbox.failure) return Effect.fail(outbox.failure)
        if (outbox.interrupts !== s.epoch) return Effect.succeed(false)
        if (outbox.sealed) {
          let bytes = (s.next?.byteLength ?? 0) + s.framer.unread
          for (let i = index; i < input.length; i++) bytes += Chunk.unsafeGet(input, i).byteLength
          const unsent = Math.ceil(bytes / frameBytes)
          return Effect.fail(
            new AudioStreamError({
              reason: "session-closed",
              unsentFrames: unsent,
              message: `The session is closing: ${unsent} frame(s) offered after it began closing were not taken`
            })
          )
        }
        while (true) {
          if (s.next === undefined) {
            s.next = s.framer.take()
            if (s.next === undefined) {
              if (index >= input.length) break
              const bytes = Chunk.unsafeGet(input, index++)
              s.total += bytes.byteLength
              s.framer.feed(bytes)
              continue
            }
          }
          if (!s.checked) {
            s.checked = true
            if (Audio.looksLikeWav(s.next)) return Effect.fail(Audio.wavHeaderError())
          }
          if (!outbox.offer(s.next)) {
            // what cannot go out now goes out on the shared clock's next ticks
            if (outbox.pump(frameClock.now())) frameClock.schedule(outbox)
            return Effect.zipRight(outbox.awaitSpace, step)
          }
          s.next = undefined
        }
        if (outbox.pump(frameClock.now())) frameClock.schedule(outbox)
        return Effect.succeed(true)
      })
      return step
    }

    /** The end of an utterance: the last, shorter frame, then the wait until every frame is written. */
    const finishUtterance = (s: SinkState): Effect.Effect<void, AudioStreamError> =>
      Effect.suspend(() => {
        if (s.stopped) return Effect.void
        const { frame, strayByte } = s.framer.flush()
        s.next = frame
        return Effect.flatMap(frame ? offerAll(s, Chunk.empty()) : Effect.succeed(true), (more) =>
          more
            ? Effect.zipRight(
                outbox.awaitSettled(outbox.accepted),
                strayByte ? Audio.strayByteError(s.total) : Effect.void
              )
            : Effect.void
        )
      })

    const newUtterance = (): SinkState => ({
      framer: new Framer(frameBytes),
      epoch: outbox.interrupts,
      total: 0,
      next: undefined,
      stopped: false,
      checked: false
    })

    /** Queues one chunk of an utterance; `false` (and the utterance stopped) when an interrupt ended it. */
    const offerChunk = (s: SinkState, chunk: Chunk.Chunk<Uint8Array>): Effect.Effect<boolean, AudioStreamError> =>
      Effect.map(
        Effect.suspend(() => (outbox.interrupts !== s.epoch ? Effect.succeed(false) : offerAll(s, chunk))),
        (more) => {
          // an interrupt ended the utterance: the rest of the stream is not wanted
          if (!more) s.stopped = true
          return more
        }
      )

    // One channel, not a stack of Sink combinators: every real-time session holds one of
    // these open for as long as it speaks, and its cost per session counts.
    const audio: Sink.Sink<void, Uint8Array, unknown, AudioStreamError> = Sink.fromChannel(
      Channel.suspend(() => {
        const s = newUtterance()
        const loop: Channel.Channel<
          never,
          Chunk.Chunk<Uint8Array>,
          AudioStreamError,
          never,
          void,
          unknown
        > = Channel.readWithCause({
          onInput: (chunk: Chunk.Chunk<Uint8Array>) =>
            Channel.flatMap(Channel.fromEffect(offerChunk(s, chunk)), (more) => (more ? loop : Channel.void)),
          onFailure: Channel.failCause,
          onDone: () => Channel.fromEffect(finishUtterance(s))
        })
        return Channel.acquireUseRelease(
          beginProducing,
          () => loop,
          () => endProducing
        )
      })
    )

    /** One utterance outside a sink: the session streams while it runs. */
    const utterance = <E, R>(body: (s: SinkState) => Effect.Effect<void, E, R>): Effect.Effect<void, E, R> =>
      Effect.acquireUseRelease(
        beginProducing,
        () => Effect.suspend(() => body(newUtterance())),
        () => endProducing
      )

    /** The pull loop of `speak`: no channel executors beyond the one that `toPull` runs the stream on. */
    const speak = <E, R>(speech: Stream.Stream<Uint8Array, E, R>): Effect.Effect<void, AudioStreamError | E, R> =>
      utterance((s) =>
        Effect.scoped(
          Effect.flatMap(Stream.toPull(speech), (pull) => {
            const loop: Effect.Effect<void, AudioStreamError | E, R> = Effect.matchEffect(pull, {
              // the stream's end (None), or its own failure
              onFailure: (end): Effect.Effect<void, AudioStreamError | E> =>
                Option.isNone(end) ? finishUtterance(s) : Effect.fail(end.value),
              onSuccess: (chunk) => Effect.flatMap(offerChunk(s, chunk), (more) => (more ? loop : Effect.void))
            })
            return loop
          })
        )
      )

    /** One buffer as a whole utterance, without building a stream for it. */
    const sendAudio = (bytes: Uint8Array): Effect.Effect<void, AudioStreamError> =>
      utterance((s) =>
        Effect.flatMap(offerChunk(s, Chunk.of(bytes)), (more) => (more ? finishUtterance(s) : Effect.void))
      )

    // ------------------------------------------------------------------
    // lifecycle
    // ------------------------------------------------------------------

    const endSession = (error: Option.Option<AvatarError>) =>
      Effect.gen(function* () {
        finished = true
        if (counted) AvatarMetrics.sessionsActive.unsafeUpdate(-1, [])
        counted = false
        const queued = outbox.depth
        const doubt = unconfirmed > 0 ? ` (${unconfirmed} written frame(s) were never confirmed by the server)` : ""
        outbox.fail(
          new AudioStreamError({
            reason: "session-closed",
            unsentFrames: queued,
            message: Option.match(error, {
              onNone: () => `The session was closed; ${queued} queued frame(s) were not sent${doubt}`,
              onSome: (e) => `The session ended (${e.message}); ${queued} queued frame(s) were not sent${doubt}`
            })
          })
        )
        yield* Effect.annotateCurrentSpan("akool.frames_unsent", queued)
        outbox.target = undefined
        agoraConnected = false
        frameClock.cancel(outbox)
        const reason = Option.getOrElse(
          error,
          (): AvatarError => new ConnectionError({ reason: "closed", message: "The session was closed" })
        )
        Deferred.unsafeDone(ready, Effect.fail(reason))
        yield* setState(SessionState.Closed({ error }))
        yield* Option.match(error, {
          onNone: () => Deferred.succeed(ended, undefined),
          onSome: (e) => Deferred.fail(ended, e)
        })
      })

    /**
     * Set as the session's scope starts closing, before anything else its finalizers do (so
     * before `closing`): a drop from then on is not recovered from.
     */
    let ending = false

    /**
     * After the connection in use dropped: reconnects and resumes, or ends the session. Nothing
     * waits for a drop: the connection reports it (`onDrop`) and `recover` starts this on a
     * fiber of its own, so a session that is not recovering holds no fiber.
     */
    const recovery = (live: Live, dropped: Connection.DropError): Effect.Effect<void> =>
      Effect.gen(function* () {
        if (ending || current !== live) return
        outbox.target = undefined
        frameClock.cancel(outbox)
        agoraConnected = false
        current = undefined
        ready = Deferred.unsafeMake<Connection.Connection, AvatarError>(FiberId.none)
        const doubtful = yield* retire(live)
        yield* Effect.logWarning("Avatar session connection dropped").pipe(
          Effect.annotateLogs({
            sessionId,
            instance: Discovery.label(live.connection.instance),
            reason: dropped.message,
            queuedFrames: outbox.depth,
            unconfirmedFrames: doubtful
          })
        )
        if (!dropped.retryable) return yield* endSession(Option.some(dropped))
        // discover again: the instance may be gone
        instances = []
        const next = yield* Effect.either(connect("reconnect", dropped))
        if (Either.isLeft(next)) return yield* endSession(Option.some(next.left))
        reconnects++
        AvatarMetrics.reconnects.unsafeUpdate(1, [])
        yield* activate(next.right)
      })

    /** The recovery running, if one is; closing the session interrupts it first. */
    let recovering: Fiber.RuntimeFiber<void> | undefined
    const recover = (live: Live) => {
      const dropped = live.connection.dropped()
      if (ending || finished || dropped === undefined) return
      recovering = Runtime.runFork(runtime, recovery(live, dropped))
    }

    /**
     * Closes a connection's scope. What it wrote after the last pong or ack may not have
     * arrived: that is added to `unconfirmed`, and returned.
     */
    const retire = (live: Live) =>
      Effect.suspend(() => {
        const doubtful = Math.max(0, outbox.written - Math.max(live.writtenBefore, live.connection.confirmed()))
        unconfirmed += doubtful
        AvatarMetrics.framesUnconfirmed.unsafeUpdate(doubtful, [])
        return Effect.as(Effect.zipRight(live.connection.close, Scope.close(live.scope, Exit.void)), doubtful)
      })

    yield* Effect.addFinalizer(() => {
      const live = current
      // audio handed to the SDK goes out before the channel is left; what producers offer from
      // now on is refused, and nothing is written after leave_channel
      const graceful = Effect.gen(function* () {
        outbox.seal()
        if (!live?.connection.isOpen()) return
        yield* Effect.interruptible(outbox.awaitSettled(outbox.accepted)).pipe(
          // a connection that drops meanwhile cannot finish the flush: stop waiting at once
          Effect.raceFirst(Effect.interruptible(Effect.ignore(Deferred.await(live.connection.closed)))),
          Effect.timeout(config.flushTimeout),
          Effect.exit
        )
        closing = true
        outbox.target = undefined
        yield* live.connection
          .request(Protocol.leaveChannel(live.connection.ids.next()), config.leaveTimeout)
          .pipe(Effect.exit)
      })
      // whatever happened above, the session ends and every connection it opened is closed
      const cleanup = Effect.gen(function* () {
        closing = true
        current = undefined
        for (const other of [live, connecting]) if (other) yield* retire(other)
        connecting = undefined
        yield* endSession(Option.none())
        yield* PubSub.shutdown(events)
      })
      return Effect.suspend(() => (finished ? PubSub.shutdown(events) : Effect.ensuring(graceful, cleanup))).pipe(
        Effect.withSpan("AvatarSession.close", { attributes: { "akool.session_id": sessionId } })
      )
    })

    const established = yield* connect("connect").pipe(Effect.tapError((error) => endSession(Option.some(error))))
    yield* activate(established)
    counted = true
    AvatarMetrics.sessionsOpened.unsafeUpdate(1, [])
    AvatarMetrics.sessionsActive.unsafeUpdate(1, [])
    // added after the finalizer above, so it runs first: a recovery in progress stops before closing
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        ending = true
        return recovering ? Fiber.interrupt(recovering) : Effect.void
      })
    )

    if (options.params) yield* setParams(options.params)

    const info = Effect.sync((): ConnectionInfo => {
      const instance = current?.connection.instance
      return {
        connected: current?.connection.isOpen() ?? false,
        agoraConnected,
        sessionId,
        avatarId,
        currentService: instance
          ? { ip: instance.host, port: instance.port, status: instance.status, healthy: instance.healthy }
          : null,
        availableServicesCount: instances.length,
        reconnects,
        audio: {
          framesAccepted: outbox.accepted,
          framesWritten: outbox.written,
          framesDropped: outbox.dropped,
          framesQueued: outbox.depth,
          framesUnconfirmed: unconfirmed,
          bytesWritten: outbox.bytesWritten
        }
      }
    })

    return {
      sessionId,
      avatarId,
      setParams,
      audio,
      speak,
      sendAudio,
      interrupt,
      events: Stream.fromPubSub(events),
      state,
      info,
      await: Deferred.await(ended)
    } satisfies AvatarSession
  })
