import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import type * as AvatarSimulator from "../../AvatarSimulator.js"
import type * as Connection from "./connection.js"
import * as Faults from "./faults.js"
import type * as Messages from "./messages.js"

/** @internal `Options.playoutDelay` when it is not given, in milliseconds. */
export const DEFAULT_PLAYOUT_DELAY_MS = 100

/** PCM s16le, 16 kHz, mono: 32 bytes a millisecond (PROTOCOL.md section 4). */
const BYTES_PER_MS = 32

/**
 * The jitter buffer's rule, where a frame read at `at` starts playing after audio that ends
 * at `end`: a frame that arrives while audio still plays follows it; one that arrives after
 * the buffer ran dry waits out the playout delay again.
 *
 * @internal
 */
export const frameStart = (end: number, at: number, playoutDelayMs: number): number =>
  at <= end ? end : at + playoutDelayMs

/** @internal What the players of one simulator share. */
export interface PlayerHost {
  /** Forks into the simulator's scope, on the simulator's clock: nothing outlives it. */
  readonly run: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
  readonly clock: Clock.Clock
  readonly messages: Messages.ServerMessages
  readonly playoutDelayMs: number
}

type AudioEvent = "audio_start" | "audio_end"

/** An event the player owes the client, and when it is due to leave. */
interface Outgoing {
  readonly at: number
  readonly event: AudioEvent
}

/** The session's current connection, and how to send on it (held back while it stalls). */
interface Sink {
  readonly connection: Connection.Connection
  readonly send: Connection.Send
}

/** One speaking segment, while it is scheduled or playing and once it has ended. */
class Segment {
  frames = 1
  interrupted = false
  constructor(
    readonly startedAt: number,
    public endedAt: number
  ) {}
}

/**
 * The start times of the frames in the jitter buffer (not yet started), in order: what an
 * interrupt needs to tell the frames it discards from those that played. Nothing else is
 * kept per frame, and a frame leaves as soon as it starts.
 */
class Waiting {
  private starts: Array<number> = []
  private head = 0

  push(start: number): void {
    this.starts.push(start)
  }

  /** Forgets the frames that started before `t`. */
  dropBefore(t: number): void {
    while (this.head < this.starts.length && this.starts[this.head]! < t) this.head++
    // Compacted now and then, so that a long stream does not keep what has long played.
    if (this.head > 256 && this.head * 2 > this.starts.length) {
      this.starts = this.starts.slice(this.head)
      this.head = 0
    }
  }

  get size(): number {
    return this.starts.length - this.head
  }

  clear(): void {
    this.starts = []
    this.head = 0
  }
}

/**
 * The virtual player of one session: a jitter buffer of `playoutDelay`, playing frames
 * back to back at real time, speaking from the start of a frame that follows silence to the
 * end of the last frame when none follows at once. Segments are placed when their frames
 * arrive; one fiber (only while something is scheduled) announces their starts and ends at
 * the moments they describe.
 *
 * @internal
 */
export class Player {
  private readonly segments: Array<Segment> = []
  /** The first segment whose end has not been announced. */
  private next = 0
  /** The start of `segments[next]` has been announced. */
  private speaking = false
  /** Where the last frame placed ends: the next one cannot start before it. */
  private end = Number.NEGATIVE_INFINITY
  private readonly waiting = new Waiting()
  private readonly outbox: Array<Outgoing> = []
  private sink: Sink | undefined = undefined
  private wake: Deferred.Deferred<void> | undefined = undefined
  private running = false

  constructor(private readonly host: PlayerHost) {}

  /** A new accepted connection of the session: the events go there from now on. */
  unsafeAttach(connection: Connection.Connection, send: Connection.Send): void {
    this.sink = { connection, send }
  }

  /** A chat frame of `bytes` bytes read at `at`. */
  unsafeFrame(bytes: number, at: number): void {
    const duration = bytes / BYTES_PER_MS
    const start = frameStart(this.end, at, this.host.playoutDelayMs)
    this.waiting.dropBefore(at)
    // Back to back with the last frame, whose end has not been announced: the same segment.
    // Any gap, or an end already announced (possible only without a playout delay), starts
    // a new one.
    const last = this.segments[this.segments.length - 1]
    if (last !== undefined && this.next < this.segments.length && start === this.end) {
      last.endedAt = start + duration
      last.frames++
    } else {
      this.segments.push(new Segment(start, start + duration))
    }
    this.end = start + duration
    this.waiting.push(start)
    // A new frame starts after everything scheduled, and its events leave after theirs:
    // a sleeping fiber wakes in time for it and is left to sleep.
    if (!this.running) this.start()
  }

  /**
   * `interrupt` read at `at`: the frame playing is cut where it stands, the jitter buffer is
   * emptied, and a segment that was speaking ends here, interrupted.
   */
  unsafeInterrupt(at: number): void {
    this.advance(at, true)
    const discarded = this.waiting.size
    const current = this.speaking ? this.segments[this.next] : undefined
    const kept = current === undefined ? this.next : this.next + 1
    let discardedLater = 0
    for (let i = kept; i < this.segments.length; i++) discardedLater += this.segments[i]!.frames
    this.segments.length = kept
    if (current !== undefined) {
      current.endedAt = at
      current.interrupted = true
      current.frames -= discarded - discardedLater
      this.speaking = false
      this.next++
      this.announce("audio_end", at)
    }
    this.waiting.clear()
    this.end = at
    if (!this.running) this.start()
    else if (this.wake !== undefined) Deferred.unsafeDone(this.wake, Exit.void)
  }

  /** The segments that have started by `now`, in order. */
  snapshot(now: number): ReadonlyArray<AvatarSimulator.PlayedSegment> {
    const played: Array<AvatarSimulator.PlayedSegment> = []
    for (const s of this.segments) {
      if (s.startedAt > now) break
      played.push({
        startedAt: s.startedAt,
        endedAt: s.endedAt,
        playedMs: Math.min(now, s.endedAt) - s.startedAt,
        interrupted: s.interrupted,
        frames: s.frames,
        playing: s.endedAt > now
      })
    }
    return played
  }

  /**
   * Announces every start and end up to `now`, in order. For an interrupt at `now`, a
   * segment that would start at that very moment has not started: it is discarded unheard.
   */
  private advance(now: number, cutting: boolean): void {
    this.waiting.dropBefore(now)
    while (this.next < this.segments.length) {
      const segment = this.segments[this.next]!
      if (!this.speaking) {
        if (segment.startedAt > now || (cutting && segment.startedAt === now)) return
        this.speaking = true
        this.announce("audio_start", segment.startedAt)
      } else {
        if (segment.endedAt > now) return
        this.speaking = false
        this.next++
        this.announce("audio_end", segment.endedAt)
      }
    }
  }

  /** Queues the event of a moment, as the faults of the session's current instance say. */
  private announce(event: AudioEvent, at: number): void {
    const faults = this.sink?.connection.instance.faults
    if (faults === undefined || faults.noAudioEvents === true) return
    const delay = faults.audioEventDelay === undefined ? 0 : Duration.toMillis(Duration.decode(faults.audioEventDelay))
    this.outbox.push({ at: at + delay, event })
  }

  /** Sends what is due, in the order it was announced, on the connection open now. */
  private flush(now: number): void {
    while (this.outbox.length > 0 && this.outbox[0]!.at <= now) {
      const { event } = this.outbox.shift()!
      const sink = this.sink
      // An event due while the session has no open connection is lost, as it would be.
      if (sink === undefined || !sink.connection.record.isOpen || sink.connection.ending) continue
      // Forked: a stalled instance holds its messages back, but not the player.
      this.host.run(sink.send(this.host.messages.encode("event", { event })))
    }
  }

  private deadline(): number | undefined {
    const segment = this.segments[this.next]
    const transition = segment === undefined ? undefined : this.speaking ? segment.endedAt : segment.startedAt
    const due = this.outbox[0]?.at
    return due === undefined ? transition : transition === undefined ? due : Math.min(due, transition)
  }

  private start(): void {
    this.running = true
    this.host.run(this.loop)
  }

  /**
   * What the fiber does next: the wait until the next deadline (cut short by an interrupt),
   * or nothing when the player has nothing scheduled, and the fiber ends.
   */
  private step(): Effect.Effect<void> | undefined {
    const now = this.host.clock.unsafeCurrentTimeMillis()
    this.advance(now, false)
    this.flush(now)
    const deadline = this.deadline()
    if (deadline === undefined) {
      this.running = false
      this.wake = undefined
      return undefined
    }
    const wake = Deferred.unsafeMake<void>(FiberId.none)
    this.wake = wake
    return Effect.raceFirst(this.host.clock.sleep(Duration.millis(deadline - now)), Deferred.await(wake))
  }

  private readonly loop: Effect.Effect<void> = Effect.gen(this, function* () {
    while (true) {
      const wait = this.step()
      if (wait === undefined) return
      yield* wait
    }
  })
}

/**
 * The players of one simulator, one per session id: a session's player outlives its
 * connections, as the avatar does.
 *
 * @internal
 */
export class Players {
  private readonly bySession = new Map<string, Player>()

  constructor(private readonly host: PlayerHost) {}

  /** An accepted connection: its session's events go there from now on. */
  unsafeAttach(connection: Connection.Connection, send: Connection.Send): void {
    this.of(connection.record.sessionId).unsafeAttach(connection, send)
  }

  unsafeFrame(connection: Connection.Connection, base64: string, at: number): void {
    this.of(connection.record.sessionId).unsafeFrame(Buffer.byteLength(base64, "base64"), at)
  }

  unsafeInterrupt(connection: Connection.Connection, at: number): void {
    this.of(connection.record.sessionId).unsafeInterrupt(at)
  }

  /** The jitter buffer every player keeps, in milliseconds. */
  get playoutDelayMs(): number {
    return this.host.playoutDelayMs
  }

  playback(sessionId: string): ReadonlyArray<AvatarSimulator.PlayedSegment> {
    return this.bySession.get(sessionId)?.snapshot(this.host.clock.unsafeCurrentTimeMillis()) ?? []
  }

  private of(sessionId: string): Player {
    const found = this.bySession.get(sessionId)
    if (found !== undefined) return found
    const created = new Player(this.host)
    this.bySession.set(sessionId, created)
    return created
  }
}

/**
 * The players of a simulator, in its scope and on its clock; a `playoutDelay` the simulator
 * cannot play with (a negative one) is `invalid`'s.
 *
 * @internal
 */
export const make = (
  playoutDelay: Duration.DurationInput | undefined,
  messages: Messages.ServerMessages,
  invalid: (problem: Faults.Problem) => Effect.Effect<never>
): Effect.Effect<Players, never, Scope.Scope> =>
  Effect.gen(function* () {
    const problem = playoutDelay === undefined ? undefined : Faults.durationProblem("playoutDelay", playoutDelay)
    if (problem !== undefined) return yield* invalid(problem)
    return new Players({
      run: yield* FiberSet.makeRuntime<never, void, never>(),
      clock: yield* Effect.clock,
      messages,
      playoutDelayMs:
        playoutDelay === undefined ? DEFAULT_PLAYOUT_DELAY_MS : Duration.toMillis(Duration.decode(playoutDelay))
    })
  })
