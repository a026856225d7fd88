/**
 * The whole reconnect policy in one place: which instance the next attempt goes to, when to
 * discover again, how many attempts the `Schedule` allows, and what a connection needs
 * before it can take over (the heartbeat, the last `set-params` again).
 */
import type * as Socket from "@effect/platform/Socket"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import type * as PubSub from "effect/PubSub"
import type * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type { AvatarConfig } from "../../AvatarConfig.js"
import { type AvatarError, RetryError, type ServerError } from "../../AvatarError.js"
import * as Connection from "../../Connection.js"
import * as Discovery from "../../Discovery.js"
import * as Heartbeat from "../../Heartbeat.js"
import type * as Protocol from "../../Protocol.js"
import type { FrameClockService } from "../dataplane/frameClock.js"
import type { Link } from "./lifecycle.js"
import type { Resolved } from "./options.js"

export interface ConnectorOptions {
  readonly options: Resolved
  readonly discovery: Discovery.Discovery["Type"]
  /** What `Connection.make` needs, picked from the client's context (not the caller's Scope). */
  readonly context: Context.Context<AvatarConfig | Socket.WebSocketConstructor>
  readonly clock: FrameClockService
  readonly messages: PubSub.PubSub<Protocol.ServerMessage>
  /** The count of frames written so far: what a ping or an ack confirms. */
  readonly mark: () => number
  readonly onMessage: (message: Protocol.ServerMessage) => void
  /** An `error` message that answers no command. */
  readonly onServerError: (error: ServerError) => void
  /** A connection dropped by itself (called synchronously, once). */
  readonly onDrop: (link: Link) => void
  /** Each heartbeat round trip, in milliseconds. */
  readonly onRoundTrip: (ms: number) => void
  /** Before a reconnected connection takes over: the last `set-params` again, if there were any. */
  readonly reapply: (connection: Connection.Connection) => Effect.Effect<void, AvatarError>
  /** Each attempt, before it is made (the first connect announces none but retries). */
  readonly announce: (
    phase: "connect" | "reconnect",
    attempt: number,
    cause: AvatarError | undefined
  ) => Effect.Effect<void>
}

/** Where the next attempt goes: another instance, unless the service only asked us to wait. */
const movesOn = (error: AvatarError) =>
  error._tag !== "ServiceDiscoveryError" && !(error._tag === "ConnectionError" && error.reason === "too-soon")

export class Connector {
  private instances: ReadonlyArray<Discovery.Instance> = []
  private index = 0
  /** A connection being set up, not yet live: closing the session closes it too. */
  private pending: Link | undefined = undefined

  constructor(private readonly deps: ConnectorOptions) {}

  /** How many instances the last discovery offered. */
  get available(): number {
    return this.instances.length
  }

  /** The connection being set up, if one is; it is no longer pending once taken. */
  takePending(): Link | undefined {
    const link = this.pending
    this.pending = undefined
    return link
  }

  /**
   * Connects, retrying on the session's `Schedule` while the errors allow it, and returns the
   * new link (not yet live). A reconnect discovers again first: the instance may be gone.
   */
  connect(phase: "connect" | "reconnect", cause?: AvatarError): Effect.Effect<Link, AvatarError> {
    const { options } = this.deps
    if (phase === "reconnect") this.instances = []
    let attempts = 0
    const attempt = Effect.suspend(() => {
      attempts++
      const announce = phase === "connect" && attempts === 1 ? Effect.void : this.deps.announce(phase, attempts, cause)
      return Effect.zipRight(announce, this.once(phase === "reconnect"))
    })
    return attempt.pipe(
      // only retryable errors reach the schedule, and those are the `ConnectError`s it is typed for
      Effect.retry({
        schedule: options.retry as Schedule.Schedule<unknown, AvatarError>,
        while: (error: AvatarError) => error.retryable
      }),
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
      ),
      Effect.tap((link) =>
        Effect.annotateCurrentSpan({
          "akool.instance": Discovery.label(link.connection.instance),
          "akool.attempts": attempts
        })
      ),
      Effect.withSpan(phase === "connect" ? "AvatarSession.connect" : "AvatarSession.reconnect", {
        attributes: {
          "akool.session_id": options.sessionId,
          "akool.avatar_id": options.avatarId,
          ...(cause ? { "akool.reconnect.cause": cause.message } : {})
        }
      })
    )
  }

  /** After a drop: a new connection, unless the drop says that no attempt can help (a refused key). */
  reconnect(dropped: AvatarError): Effect.Effect<Link, AvatarError> {
    return dropped.retryable ? this.connect("reconnect", dropped) : Effect.fail(dropped)
  }

  /** One attempt on the next instance. */
  private once(reapply: boolean): Effect.Effect<Link, AvatarError> {
    return Effect.gen(this, function* () {
      const { options, clock } = this.deps
      if (this.instances.length === 0) {
        this.instances = yield* this.deps.discovery.instances(options.avatarId)
        this.index = 0
      }
      const instance = this.instances[this.index % this.instances.length]!
      // not a child of the session scope: the session's finalizer must still hold the
      // connection to flush and send leave_channel, and it closes this scope itself
      const scope = yield* Scope.make(ExecutionStrategy.sequential)
      const holder: { link?: Link } = {}
      const connection = yield* Connection.make({
        instance,
        sessionId: options.sessionId,
        avatarId: options.avatarId,
        messages: this.deps.messages,
        connectionTimeout: options.connectionTimeout,
        mark: this.deps.mark,
        onMessage: this.deps.onMessage,
        onServerError: this.deps.onServerError,
        onDrop: () => {
          if (holder.link !== undefined) this.deps.onDrop(holder.link)
        }
      }).pipe(
        Scope.extend(scope),
        Effect.provide(this.deps.context),
        Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
      )
      const link: Link = { connection, scope, writtenBefore: this.deps.mark() }
      holder.link = link
      this.pending = link
      // the heartbeat runs on the client's shared clock, not on a fiber of this session
      const beat = Heartbeat.make(
        connection,
        { interval: options.heartbeatInterval, timeout: options.heartbeatTimeout },
        clock.now(),
        this.deps.onRoundTrip
      )
      yield* Scope.addFinalizer(scope, Effect.sync(clock.addTimer(beat)))
      if (reapply) {
        yield* this.deps.reapply(connection).pipe(
          Effect.onError((cause) =>
            Effect.zipRight(
              Effect.sync(() => this.takePending()),
              Scope.close(scope, Exit.failCause(cause))
            )
          )
        )
      }
      return link
    }).pipe(Effect.tapError((error) => Effect.sync(() => this.advance(error))))
  }

  private advance(error: AvatarError): void {
    if (movesOn(error)) this.index++
    if (error._tag === "ServiceDiscoveryError" || this.index >= this.instances.length) this.instances = []
  }
}
