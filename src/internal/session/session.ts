/**
 * The managed session, assembled from its parts: the lifecycle's phase, the connector (which
 * instance, and the retry schedule), the commands, the utterances, and what inbound messages
 * teach. This file holds what only the whole session knows: how a connection takes over,
 * what a drop does, and how the session closes.
 */
import * as Socket from "@effect/platform/Socket"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { AvatarConfig } from "../../AvatarConfig.js"
import { AudioStreamError, type AvatarError, ConnectionError, type ServerError } from "../../AvatarError.js"
import * as AvatarMetrics from "../../AvatarMetrics.js"
import type * as AvatarSession from "../../AvatarSession.js"
import type * as Connection from "../../Connection.js"
import * as Discovery from "../../Discovery.js"
import * as Protocol from "../../Protocol.js"
import type { FrameClockService } from "../dataplane/frameClock.js"
import * as FrameClock from "../dataplane/frameClock.js"
import { Outbox } from "../dataplane/outbox.js"
import { Commands } from "./commands.js"
import { Connector } from "./connector.js"
import { Inbound } from "./inbound.js"
import { Lifecycle, type Link } from "./lifecycle.js"
import { type Resolved, validate } from "./options.js"
import { SessionState } from "./state.js"
import { Turns } from "./turns.js"
import * as Utterance from "./utterance.js"

const { Closed, Connecting, Ready, Reconnecting, Streaming } = SessionState

/**
 * A PubSub made on its first subscriber: nothing is published to nobody, and most sessions of
 * a busy process never subscribe (an unbounded PubSub costs a few KB).
 */
class OnDemand<A> {
  private pubsub: PubSub.PubSub<A> | undefined = undefined
  private ended = false

  offer(a: A): void {
    this.pubsub?.unsafeOffer(a)
  }

  readonly stream: Stream.Stream<A> = Stream.suspend(() => {
    if (this.ended) return Stream.empty
    this.pubsub ??= Effect.runSync(PubSub.unbounded<A>())
    return Stream.fromPubSub(this.pubsub)
  })

  readonly shutdown: Effect.Effect<void> = Effect.suspend(() => {
    this.ended = true
    return this.pubsub === undefined ? Effect.void : PubSub.shutdown(this.pubsub)
  })
}

interface Parts {
  readonly options: Resolved
  readonly outbox: Outbox
  readonly clock: FrameClockService
  readonly state: SubscriptionRef.SubscriptionRef<AvatarSession.SessionState>
  readonly events: PubSub.PubSub<Protocol.ServerMessage>
  readonly errors: OnDemand<ServerError>
  readonly ended: Deferred.Deferred<void, AvatarError>
  readonly lifecycle: Lifecycle
  readonly inbound: Inbound
  readonly turns: Turns
  readonly runtime: Runtime.Runtime<never>
  readonly flushTimeout: AvatarConfig["Type"]["flushTimeout"]
  readonly leaveTimeout: AvatarConfig["Type"]["leaveTimeout"]
}

/**
 * How connections take over and leave: activation, a drop and the recovery from it, and the
 * session's end. The phase itself is the `Lifecycle`'s; this is what each change of it does.
 */
class Driver {
  connector!: Connector
  reconnects = 0
  /** Frames written to a connection that dropped before a pong or an ack confirmed them. */
  unconfirmed = 0
  private producers = 0
  /** The connection that dropped, until its recovery has closed it (closing the session closes it otherwise). */
  private dropped: Link | undefined = undefined
  private readonly retired = new WeakSet<Link>()

  constructor(private readonly parts: Parts) {}

  private setState(next: AvatarSession.SessionState) {
    return SubscriptionRef.set(this.parts.state, next)
  }

  private label(): string {
    const link = this.parts.lifecycle.link
    return link ? Discovery.label(link.connection.instance) : ""
  }

  readonly beginProducing: Effect.Effect<void> = Effect.suspend(() => {
    this.producers++
    return this.parts.lifecycle.phase._tag === "Live" && this.producers === 1
      ? this.setState(Streaming({ instance: this.label() }))
      : Effect.void
  })

  readonly endProducing: Effect.Effect<void> = Effect.suspend(() => {
    this.producers--
    return this.parts.lifecycle.phase._tag === "Live" && this.producers === 0 && this.parts.outbox.failure === undefined
      ? this.setState(Ready({ instance: this.label() }))
      : Effect.void
  })

  /** Makes a connection the one the writer and the commands use. */
  activate(link: Link): Effect.Effect<void> {
    return Effect.suspend(() => {
      const { lifecycle, outbox, clock, options, turns } = this.parts
      // the session began closing while this connection was made: it is not needed
      if (!lifecycle.goLive(link)) return Effect.asVoid(this.retire(link))
      const connection = link.connection
      outbox.target = {
        socket: connection.socket,
        sendChat: connection.unsafeSendChat,
        cork: connection.unsafeCork,
        uncork: connection.unsafeUncork,
        isOpen: connection.isOpen,
        requestConfirmation: () => {
          // Its round trip is not the link's own: the ping queues behind the audio it confirms
          // (on a slow link, by seconds). Only heartbeats measure the one-way time.
          const mark = outbox.written
          connection.unsafePing((at) => turns.confirmed(mark, at))
        },
        onStall: (bufferedBytes) =>
          connection.unsafeAbort(
            new ConnectionError({
              reason: "stalled",
              instance: Discovery.label(connection.instance),
              message: `The instance ${Discovery.label(connection.instance)} stopped reading: ${bufferedBytes} bytes stayed unsent for ${options.stallMs} ms`
            })
          )
      }
      // frames that waited through a reconnect go out first, in order
      if (outbox.pump(clock.now())) clock.schedule(outbox)
      const instance = Discovery.label(connection.instance)
      return Effect.zipRight(
        this.setState(this.producers > 0 ? Streaming({ instance }) : Ready({ instance })),
        // a connection that dropped before it took over is recovered from at once
        Effect.sync(() => {
          if (connection.dropped() !== undefined) this.onDrop(link)
        })
      )
    })
  }

  /**
   * The connection reports its own drop, synchronously: nothing waits for one, so a session
   * that is not recovering holds no fiber. The recovery starts on a fiber of its own.
   */
  readonly onDrop = (link: Link): void => {
    const { lifecycle, outbox, clock, inbound, runtime } = this.parts
    const reason = link.connection.dropped()
    if (reason === undefined || !lifecycle.drop(link)) return
    outbox.target = undefined
    clock.cancel(outbox)
    inbound.disconnected()
    this.parts.turns.lost(clock.now())
    this.dropped = link
    lifecycle.recoveringOn(Runtime.runFork(runtime, this.recover(link, reason)))
  }

  /** After the connection in use dropped: reconnects and resumes, or ends the session. */
  private recover(link: Link, reason: Connection.DropError): Effect.Effect<void> {
    return Effect.gen(this, function* () {
      const { outbox, options } = this.parts
      const doubtful = yield* this.retire(link)
      this.dropped = undefined
      yield* Effect.logWarning("Avatar session connection dropped").pipe(
        Effect.annotateLogs({
          sessionId: options.sessionId,
          instance: Discovery.label(link.connection.instance),
          reason: reason.message,
          queuedFrames: outbox.depth,
          unconfirmedFrames: doubtful
        })
      )
      const next = yield* Effect.either(this.connector.reconnect(reason))
      if (Either.isLeft(next)) return yield* this.end(Option.some(next.left))
      this.connector.takePending()
      this.reconnects++
      AvatarMetrics.reconnects.unsafeUpdate(1, [])
      yield* this.activate(next.right)
    })
  }

  /**
   * Closes a connection's scope, once. What it wrote after the last pong or ack may not have
   * arrived: that is added to `unconfirmed`, and returned.
   */
  retire(link: Link): Effect.Effect<number> {
    return Effect.suspend(() => {
      if (this.retired.has(link)) return Effect.succeed(0)
      this.retired.add(link)
      const doubtful = Math.max(
        0,
        this.parts.outbox.written - Math.max(link.writtenBefore, link.connection.confirmed())
      )
      this.unconfirmed += doubtful
      AvatarMetrics.framesUnconfirmed.unsafeUpdate(doubtful, [])
      // Closed on a fiber of its own, awaited but not joined: the scope's finalizers run with the
      // fiber refs of the fiber that opened it, and Effect leaves those refs (a stack that grows
      // by an entry per connection, holding every earlier connection's span and socket) in the
      // fiber that runs them. Joined, each reconnect kept about 30 KB of its predecessors.
      const close = Effect.zipRight(link.connection.close, Scope.close(link.scope, Exit.void))
      return Effect.as(Effect.flatMap(Effect.forkDaemon(close), Fiber.await), doubtful)
    })
  }

  /** Ends the session, once: what is still queued is reported unsent, and `await` completes. */
  end(error: Option.Option<AvatarError>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const { lifecycle, outbox, clock, inbound, ended } = this.parts
      const reason = Option.getOrElse(
        error,
        (): AvatarError => new ConnectionError({ reason: "closed", message: "The session is closed" })
      )
      if (!lifecycle.close(reason)) return Effect.void
      const queued = outbox.depth
      const doubt =
        this.unconfirmed > 0 ? ` (${this.unconfirmed} written frame(s) were never confirmed by the server)` : ""
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
      outbox.target = undefined
      inbound.disconnected()
      clock.cancel(outbox)
      this.parts.turns.stop()
      return Effect.all([
        Effect.annotateCurrentSpan("akool.frames_unsent", queued),
        this.setState(Closed({ error })),
        Option.match(error, {
          onNone: () => Deferred.succeed(ended, undefined),
          onSome: (e) => Deferred.fail(ended, e)
        })
      ])
    })
  }

  /**
   * The scope's finalizer. Audio handed to the SDK goes out before the channel is left (bounded
   * by `flushTimeout`); what producers offer from now on is refused; nothing is written after
   * `leave_channel`. Whatever happens, every connection the session opened is closed.
   */
  close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const { lifecycle, outbox, events } = this.parts
      if (lifecycle.phase._tag === "Closed") return Effect.zipRight(PubSub.shutdown(events), this.parts.errors.shutdown)
      const recovering = lifecycle.beginClosing()
      const graceful = Effect.gen(this, function* () {
        if (recovering) yield* Fiber.interrupt(recovering)
        outbox.seal()
        const link = lifecycle.link
        if (!link?.connection.isOpen()) return
        yield* Effect.interruptible(outbox.awaitSettled(outbox.accepted)).pipe(
          // a connection that drops meanwhile cannot finish the flush: stop waiting at once
          Effect.raceFirst(Effect.interruptible(Effect.ignore(Deferred.await(link.connection.closed)))),
          Effect.timeout(this.parts.flushTimeout),
          Effect.exit
        )
        outbox.target = undefined
        yield* link.connection
          .request(Protocol.leaveChannel(link.connection.ids.next()), this.parts.leaveTimeout)
          .pipe(Effect.exit)
      })
      const cleanup = Effect.gen(this, function* () {
        const links = [lifecycle.link, this.dropped, this.connector.takePending()]
        lifecycle.detach()
        for (const link of links) if (link) yield* this.retire(link)
        yield* this.end(Option.none())
        yield* PubSub.shutdown(events)
        yield* this.parts.errors.shutdown
      })
      return Effect.ensuring(graceful, cleanup)
    }).pipe(
      Effect.withSpan("AvatarSession.close", { attributes: { "akool.session_id": this.parts.options.sessionId } })
    )
  }

  info(): AvatarSession.ConnectionInfo {
    const { lifecycle, inbound, outbox, options } = this.parts
    const connection = lifecycle.link?.connection
    const instance = connection?.instance
    return {
      connected: connection?.isOpen() ?? false,
      agoraConnected: inbound.agoraConnected,
      sessionId: options.sessionId,
      avatarId: options.avatarId,
      currentService: instance
        ? { ip: instance.host, port: instance.port, status: instance.status, healthy: instance.healthy }
        : null,
      availableServicesCount: this.connector.available,
      reconnects: this.reconnects,
      audio: {
        framesAccepted: outbox.accepted,
        framesWritten: outbox.written,
        framesDropped: outbox.dropped,
        framesQueued: outbox.depth,
        framesUnconfirmed: this.unconfirmed,
        bytesWritten: outbox.bytesWritten
      },
      playback: {
        playoutDelayMs: this.parts.turns.playback.delayMs,
        measured: this.parts.turns.playback.measured
      }
    }
  }
}

/** The session's parts, before any connection. */
const makeParts = (options: Resolved, config: AvatarConfig["Type"], clock: FrameClockService) =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    const holder: { outbox?: Outbox } = {}
    const turns = new Turns(options.sessionId, Duration.toMillis(options.playoutDelay), clock, runtime, () =>
      holder.outbox?.target?.requestConfirmation()
    )
    const outbox = new Outbox({
      capacity: options.capacity,
      pacing: options.pacing,
      leadMs: options.leadMs,
      highWaterBytes: options.highWaterBytes,
      stallMs: options.stallMs,
      // about a second of audio: what a drop can leave in doubt
      confirmEvery: Math.max(1, Math.round(1000 / options.frameMs)),
      gridMs: options.frameMs,
      onWritten: turns.written as (owner: unknown, bytes: number, written: number, now: number) => void,
      onDropped: turns.dropped as (owner: unknown, bytes: number) => void
    })
    holder.outbox = outbox
    const parts: Parts = {
      options,
      outbox,
      clock,
      state: yield* SubscriptionRef.make<AvatarSession.SessionState>(Connecting({ attempt: 1 })),
      events: yield* PubSub.unbounded<Protocol.ServerMessage>(),
      errors: new OnDemand<ServerError>(),
      ended: yield* Deferred.make<void, AvatarError>(),
      lifecycle: new Lifecycle(),
      inbound: new Inbound(options.sessionId, runtime, (event) => turns.onEvent(event, clock.now())),
      turns,
      runtime,
      flushTimeout: config.flushTimeout,
      leaveTimeout: config.leaveTimeout
    }
    return parts
  })

export const make = (
  input: AvatarSession.Options | undefined
): Effect.Effect<AvatarSession.AvatarSession, AvatarError, Scope.Scope | AvatarSession.Requirements> =>
  Effect.gen(function* () {
    const config = yield* AvatarConfig
    const discovery = yield* Discovery.Discovery
    const clock = yield* FrameClock.get
    const options = yield* validate(input, config)
    const parts = yield* makeParts(options, config, clock)
    const { outbox, turns } = parts
    const commands = new Commands(options, parts.lifecycle, parts.inbound, outbox, turns, clock.now)
    const driver = new Driver(parts)
    driver.connector = new Connector({
      options,
      discovery,
      // picked, not the whole context: that would carry the caller's Scope along
      context: Context.pick(
        AvatarConfig,
        Socket.WebSocketConstructor
      )(yield* Effect.context<AvatarConfig | Socket.WebSocketConstructor>()),
      clock,
      messages: parts.events,
      mark: () => outbox.written,
      onMessage: parts.inbound.observe,
      onServerError: (error) => parts.errors.offer(error),
      onDrop: driver.onDrop,
      onRoundTrip: (ms) => turns.roundTrip(ms),
      reapply: commands.reapply,
      announce: (phase, attempt, cause) =>
        SubscriptionRef.set(
          parts.state,
          phase === "reconnect"
            ? Reconnecting({ attempt, cause: cause!, unconfirmedFrames: driver.unconfirmed })
            : Connecting({ attempt })
        )
    })
    yield* Effect.addFinalizer(() => driver.close())
    const established = yield* driver.connector
      .connect("connect")
      .pipe(Effect.tapError((error) => driver.end(Option.some(error))))
    driver.connector.takePending()
    yield* driver.activate(established)
    if (input?.params) yield* commands.setParams(input.params)
    const interrupt = commands.interrupt()
    const { audio, speak, sendAudio, say } = Utterance.make({
      outbox,
      clock,
      frameBytes: options.frameBytes,
      turns,
      begin: driver.beginProducing,
      end: driver.endProducing,
      interrupt,
      scope: yield* Effect.scope
    })
    return {
      sessionId: options.sessionId,
      avatarId: options.avatarId,
      setParams: (params) => commands.setParams(params),
      audio,
      speak,
      sendAudio,
      say,
      interrupt,
      get speaking() {
        return turns.speaking
      },
      events: Stream.fromPubSub(parts.events),
      errors: parts.errors.stream,
      state: parts.state,
      info: Effect.sync(() => driver.info()),
      await: Deferred.await(parts.ended)
    } satisfies AvatarSession.AvatarSession
  })
