import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { AudioStreamError } from "../../AvatarError.js"
import * as AvatarMetrics from "../../AvatarMetrics.js"

const BYTES_PER_MS = 32

/**
 * A corked batch holds at most this much PCM (about 1 s, some 44 KB of messages): the default
 * lead of an utterance leaves in two writes (its first frame, then the rest), and a longer
 * `lead` in writes of this size.
 */
const CORK_LIMIT_BYTES = 32 * 1024

/**
 * What an unpaced writer may write between two turns of the event loop (some 8 s of audio, a
 * few milliseconds of work). Unbounded, one unpaced file held the loop for 221 to 451 ms at a time,
 * and every other session of the process with it: producer and writer resume each other in
 * microtasks, which run before any timer or socket.
 */
export const BATCH_LIMIT_BYTES = 256 * 1024

/** Where frames go: the live connection's socket and its message ids. */
export interface Target {
  readonly socket: { readonly bufferedAmount: number }
  /** Sends one frame as a `chat` message with the next message id. */
  readonly sendChat: (frame: Uint8Array) => void
  /** Holds writes back until `uncork`: what is sent in between reaches the kernel in one write. */
  readonly cork: () => void
  readonly uncork: () => void
  readonly isOpen: () => boolean
  /** Called when unsent bytes stayed above the high-water mark for `stallMs`: the peer stopped reading. */
  readonly onStall: (bufferedBytes: number) => void
  /** Asks the server to confirm what was written so far (a ping; its pong confirms). */
  readonly requestConfirmation: () => void
}

/** How a waiting producer or caller is resumed (the callback `Effect.async` hands out). */
type Resume = (result: Effect.Effect<void, AudioStreamError>) => void

export interface OutboxOptions {
  readonly capacity: number
  readonly pacing: "realtime" | "none"
  readonly leadMs: number
  /** The writer holds back while the socket has more than this many bytes unsent. */
  readonly highWaterBytes: number
  /** How long the socket may stay above the high-water mark before the peer counts as stalled. */
  readonly stallMs: number
  /** Frames written between two confirmation requests. */
  readonly confirmEvery: number
  /**
   * Real-time frames leave on this grid of the clock (the frame duration): every session of a
   * client writes on the same ticks, one batch per frame period.
   */
  readonly gridMs: number
  /** Hears of each frame as it is written (the `written`-th frame): the playback model. */
  readonly onWritten?: ((owner: unknown, bytes: number, written: number, now: number) => void) | undefined
  /** Hears of each frame an interrupt dropped. */
  readonly onDropped?: ((owner: unknown, bytes: number) => void) | undefined
}

/**
 * The bounded queue between producers and the socket, and the writer that drains it.
 *
 * Everything on the per-frame path is synchronous: `offer` and `pump` move frames without
 * an Effect, a fiber or a timer. Effects appear only where somebody has to wait: a producer
 * for space, a caller for its frames to be written.
 *
 * Accounting: every accepted frame is written (`written`), dropped by an interrupt
 * (`dropped`), or still queued (`depth`), which `fail` reports as unsent.
 */
export class Outbox {
  private readonly ring: Array<Uint8Array | undefined>
  /** Whose each queued frame is (its utterance), beside `ring`. */
  private readonly owners: Array<unknown>
  private head = 0
  private size = 0
  /** When the last written frame ends in playback, on the clock's grid. */
  private playheadEnd = 0
  /** `bytesWritten` when the event loop last had a turn: an unpaced batch is measured from it. */
  private batchFrom = 0
  /** An unpaced batch reached its limit: nothing more is written before the event loop has a turn. */
  private held = false
  private stalledSince: number | undefined = undefined
  private lastConfirmationRequest = 0
  private spaceWaiters: Array<Resume> = []
  private settleWaiters: Array<{ readonly seq: number; readonly resume: Resume }> = []

  /** The depth last added to `akool_avatar_outbox_frames`. */
  private depthReported = 0
  /** When pacing next lets a frame out; 0 when the next tick should look. */
  nextPumpAt = 0
  accepted = 0
  written = 0
  dropped = 0
  bytesWritten = 0
  interrupts = 0
  private current: Target | undefined = undefined
  failure: AudioStreamError | undefined = undefined
  /** Set when the session starts closing: frames already taken are flushed, no new ones are taken. */
  sealed = false

  /** Producers waiting for space resume once the outbox holds this few frames. */
  private readonly lowWater: number

  constructor(readonly options: OutboxOptions) {
    this.ring = new Array(options.capacity)
    this.owners = new Array(options.capacity)
    // Producers resume once a quarter to three quarters of the outbox is free (not after every
    // frame), and confirmations start at a random point of their cycle: sessions that started
    // together then do not all wake, or all ping, on the same tick of the shared clock.
    this.lowWater = Math.floor(options.capacity * (0.25 + 0.5 * Math.random()))
    this.lastConfirmationRequest = -Math.floor(Math.random() * options.confirmEvery)
  }

  get target(): Target | undefined {
    return this.current
  }

  /** Points the writer at a connection (or at none while reconnecting). */
  set target(target: Target | undefined) {
    this.current = target
    this.stalledSince = undefined
  }

  get depth(): number {
    return this.size
  }

  get settled(): number {
    return this.written + this.dropped
  }

  /** Queues a frame if there is room; returns whether it was taken. */
  offer(frame: Uint8Array, owner?: unknown): boolean {
    const capacity = this.options.capacity
    if (this.size >= capacity) return false
    const at = (this.head + this.size) % capacity
    this.ring[at] = frame
    this.owners[at] = owner
    this.size++
    this.accepted++
    return true
  }

  /**
   * Writes what pacing, the socket and the batch limit allow right now; returns whether frames
   * are left. `turn` says the event loop has had a turn since the last call (the clock's ticks):
   * it renews the batch limit.
   *
   * Pacing: the playhead is where the last written frame ends in playback. A frame may leave once
   * its slot (from the playhead) starts no more than `lead` ahead of the last grid point; a frame
   * written after an underrun starts playing at that grid point. So frames leave on the grid, one
   * per frame period at any lead, and a tick that runs late does not move the playhead off it.
   */
  pump(now: number, turn = false): boolean {
    this.nextPumpAt = 0
    if (turn) this.newBatch()
    const target = this.target
    if (this.size === 0 || target === undefined || !target.isOpen()) {
      this.reportDepth()
      return this.size > 0
    }
    const { capacity, leadMs, highWaterBytes, gridMs } = this.options
    const realtime = this.options.pacing === "realtime"
    // Real-time frames leave on a grid of the clock (the frame duration) that every session of
    // the client shares: pacing sees the time as of the last grid point, so a frame due between
    // two points leaves on the next one, and all real-time sessions write in one batch per frame
    // period. (Four smaller batches, one per 10 ms tick, cost about 8 % more CPU at 1,000 sessions.)
    const paceNow = realtime ? Math.floor(now / gridMs) * gridMs : now
    const socket = target.socket
    if (socket.bufferedAmount > highWaterBytes) {
      // the peer has not taken what was written: hold back, and past `stallMs` give it up
      this.reportDepth()
      if (this.stalledSince === undefined) this.stalledSince = now
      else if (now - this.stalledSince >= this.options.stallMs) {
        this.stalledSince = undefined
        // the connection drops, and what is queued waits for the next one
        target.onStall(socket.bufferedAmount)
      }
      return true
    }
    this.stalledSince = undefined
    const writtenBefore = this.written
    const bytesBefore = this.bytesWritten
    let corkedBytes = 0
    // Real time, more than one message goes out in one write: the frames of a burst (the lead
    // at the start of an utterance, the queue after a reconnect), and a frame with the ping that
    // follows it. A lone frame, the usual case, is written as it is. Unpaced audio is written
    // frame by frame: corked, it went faster, and V8 grew its young generation to match (one
    // hour unpaced: RSS growth 15 to 30 MB against 7 to 9 MB; corked with the young generation
    // capped at 2 MB, none, so it was heap sizing, not buffers held).
    let corked = realtime && this.confirmationDue(this.written + 1)
    if (corked) target.cork()
    try {
      while (this.size > 0) {
        if (socket.bufferedAmount > highWaterBytes) {
          // what this pump holds back counts in `bufferedAmount`: let it go before judging the socket
          if (corkedBytes > 0) {
            target.uncork()
            target.cork()
            corkedBytes = 0
          }
          if (socket.bufferedAmount > highWaterBytes) {
            this.stalledSince = now
            break
          }
        }
        const frame = this.ring[this.head]!
        if (realtime) {
          if (this.playheadEnd - leadMs > paceNow) {
            // it may leave at the first grid point its slot is no more than `lead` ahead of
            this.nextPumpAt = Math.ceil((this.playheadEnd - leadMs) / gridMs) * gridMs
            break
          }
          this.playheadEnd = Math.max(this.playheadEnd, paceNow) + frame.byteLength / BYTES_PER_MS
        } else if (this.held || this.bytesWritten + frame.byteLength - this.batchFrom > BATCH_LIMIT_BYTES) {
          // the rest waits for the event loop's next turn: the clock's next tick, or a producer's
          // wait (pacing bounds a real-time batch already: the lead, or the queue after a reconnect)
          this.held = true
          break
        }
        if (!corked) {
          if (realtime && this.written - writtenBefore === 1) {
            corked = true
            target.cork()
          }
        } else if (corkedBytes + frame.byteLength > CORK_LIMIT_BYTES) {
          target.uncork()
          target.cork()
          corkedBytes = 0
        }
        target.sendChat(frame)
        if (corked) corkedBytes += frame.byteLength
        this.options.onWritten?.(this.owners[this.head], frame.byteLength, this.written + 1, now)
        this.owners[this.head] = undefined
        this.ring[this.head] = undefined
        this.head = (this.head + 1) % capacity
        this.size--
        this.written++
        this.bytesWritten += frame.byteLength
      }
      // a drop can only lose what was written since the last confirmation: keep that short
      if (this.written > writtenBefore && this.confirmationDue(this.written)) {
        this.lastConfirmationRequest = this.written
        target.requestConfirmation()
      }
    } finally {
      if (corked) target.uncork()
    }
    if (this.written > writtenBefore) {
      AvatarMetrics.framesSent.unsafeUpdate(this.written - writtenBefore, [])
      AvatarMetrics.bytesSent.unsafeUpdate(this.bytesWritten - bytesBefore, [])
      this.wake()
    }
    this.reportDepth()
    return this.size > 0
  }

  /** The event loop has had a turn: an unpaced writer may write a whole batch again. */
  private newBatch(): void {
    this.batchFrom = this.bytesWritten
    this.held = false
  }

  /** Whether a confirmation is due once `written` frames have been written. */
  private confirmationDue(written: number): boolean {
    return written - this.lastConfirmationRequest >= this.options.confirmEvery
  }

  /** Brings `akool_avatar_outbox_frames` up to date, once per batch. */
  private reportDepth(): void {
    if (this.failure !== undefined) return
    const change = this.size - this.depthReported
    if (change !== 0) {
      AvatarMetrics.outboxDepth.unsafeUpdate(change, [])
      this.depthReported = this.size
    }
  }

  seal(): void {
    this.sealed = true
  }

  /** Drops every queued frame and restarts the pacing clock; returns how many were dropped. */
  interrupt(now: number): number {
    const dropped = this.size
    for (let i = 0; i < this.size; i++) {
      const at = (this.head + i) % this.options.capacity
      this.options.onDropped?.(this.owners[at], this.ring[at]!.byteLength)
      this.ring[at] = undefined
      this.owners[at] = undefined
    }
    this.head = 0
    this.size = 0
    this.dropped += dropped
    AvatarMetrics.framesDropped.unsafeUpdate(dropped, [])
    this.reportDepth()
    this.interrupts++
    // playback stops where it stands: the next utterance may start at once
    this.playheadEnd = Math.floor(now / this.options.gridMs) * this.options.gridMs
    this.nextPumpAt = 0
    this.wake()
    return dropped
  }

  /** Ends the outbox: waiting and later producers fail with `error`. Returns the frames left unsent. */
  fail(error: AudioStreamError): number {
    if (this.failure === undefined) {
      this.failure = error
      // what is left will never be written: it leaves the gauge of waiting frames
      AvatarMetrics.outboxDepth.unsafeUpdate(-this.depthReported, [])
      this.depthReported = 0
    }
    const spaceWaiters = this.spaceWaiters
    const settleWaiters = this.settleWaiters
    this.spaceWaiters = []
    this.settleWaiters = []
    const failed = Effect.fail(this.failure)
    for (const resume of spaceWaiters) resume(failed)
    for (const waiter of settleWaiters) waiter.resume(failed)
    return this.size
  }

  /**
   * Waits until there is room for at least one frame. It looks when it starts (the failure,
   * then the room), so it is right whenever it runs, and it is one value for every wait: a
   * producer that fills the outbox waits about once a second, and a wait made of a `Deferred`
   * and its `await` lived that second and so was copied to the old generation (with 500
   * streaming sessions, what survived scavenges in 6 s fell from 14.1 to 4.8 MB when the waits
   * became this). A waiter that is interrupted stays in the list until producers are next woken
   * (or the outbox fails), and resuming it then does nothing.
   *
   * A full outbox whose writer has spent its batch limit makes room only after the event loop
   * has had a turn (a timer of 0 ms): that turn renews the limit, and the producer's next pump
   * writes again. This is where an unpaced stream lets the rest of the process run.
   */
  readonly awaitSpace: Effect.Effect<void, AudioStreamError> = Effect.async((resume) => {
    if (this.failure) resume(Effect.fail(this.failure))
    else if (this.size < this.options.capacity) resume(Effect.void)
    else if (this.held) resume(this.nextTurn)
    else this.spaceWaiters.push(resume)
  })

  private readonly nextTurn: Effect.Effect<void> = Effect.zipRight(
    Effect.sleep(Duration.zero),
    Effect.sync(() => this.newBatch())
  )

  /** Waits until frames up to `seq` (an `accepted` count) are written or dropped. */
  awaitSettled(seq: number): Effect.Effect<void, AudioStreamError> {
    return Effect.async<void, AudioStreamError>((resume) => {
      if (this.settled >= seq) resume(Effect.void)
      else if (this.failure) resume(Effect.fail(this.failure))
      else this.settleWaiters.push({ seq, resume })
    })
  }

  private wake(): void {
    if (this.spaceWaiters.length > 0 && this.size <= this.lowWater) {
      const waiters = this.spaceWaiters
      this.spaceWaiters = []
      for (const resume of waiters) resume(Effect.void)
    }
    if (this.settleWaiters.length > 0) {
      const settled = this.settled
      const still: typeof this.settleWaiters = []
      for (const waiter of this.settleWaiters) {
        if (waiter.seq <= settled) waiter.resume(Effect.void)
        else still.push(waiter)
      }
      this.settleWaiters = still
    }
  }
}
