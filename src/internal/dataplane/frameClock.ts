import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as AvatarSession from "../../AvatarSession.js"

/** Something the clock wakes: a session's writer. `pump` is synchronous and cheap; it returns whether work is left. */
export interface Pumpable {
  /** `turn`: the event loop has had a turn (timers, sockets) since the clock last called. */
  readonly pump: (now: number, turn: boolean) => boolean
  /** Before this time a pump would write nothing (pacing holds it back): the clock does not call it. */
  readonly nextPumpAt: number
}

/** Something the clock calls at a time: a session's heartbeat. */
export interface Timer {
  /** When `fire` is due. */
  readonly dueAt: number
  /** Does what is due at `now`; returns when it is due next, or `undefined` when it is done. */
  readonly fire: (now: number) => number | undefined
}

export interface FrameClockService extends AvatarSession.Clock {
  /** Wakes `writer` on every tick until its `pump` reports nothing left. */
  readonly schedule: (writer: Pumpable) => void
  /** Stops waking `writer`. */
  readonly cancel: (writer: Pumpable) => void
  /** Calls `timer` when it is due, and again at each time it returns; the result stops it. */
  readonly addTimer: (timer: Timer) => () => void
}

/**
 * One clock for every session of a client. A timer (or an `Effect.sleep` loop) per session
 * is what breaks at a few hundred sessions; one loop that wakes every writer with queued
 * audio keeps a thousand on time. The same loop fires the sessions' heartbeats, so a session
 * holds no fiber of its own while it is idle. It ticks while some writer has work, sleeps
 * until the next timer otherwise, and on nothing when there is neither; it runs on the Effect
 * `Clock`, so tests drive it with the TestClock.
 *
 * Its public face is `AvatarSession.Clock`, which shows only `now`: the rest is this module's.
 */
export const FrameClock = Context.GenericTag<AvatarSession.Clock>("akool-streaming-avatar/AvatarSession/Clock")

/** The clock in context, with the members only the SDK's own code uses (every `Clock` is made by `make`). */
export const get: Effect.Effect<FrameClockService, never, AvatarSession.Clock> = Effect.map(
  FrameClock,
  (clock) => clock as FrameClockService
)

export const DEFAULT_TICK = Duration.millis(10)

interface TimerEntry {
  dueAt: number
  readonly fire: (now: number) => number | undefined
}

export const make = (tick: Duration.DurationInput = DEFAULT_TICK) =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const active = new Set<Pumpable>()
    const timers = new Set<TimerEntry>()
    /** The earliest `dueAt` of the timers (a lower bound: a removed timer may have set it). */
    let nextTimerAt = Number.POSITIVE_INFINITY
    /** Completed to end a wait early: a writer has work, or a timer is due before the wait ends. */
    let wake = Deferred.unsafeMake<void>(FiberId.none)
    /**
     * While the loop waits on `wake`: when its wait ends on its own (never, when no timer is set).
     * It starts as a wait, as the first step is not one that followed a sleep.
     */
    let waitingUntil: number | undefined = Number.POSITIVE_INFINITY
    const now = () => clock.unsafeCurrentTimeMillis()

    const tickMs = Duration.toMillis(tick)

    const fireTimers = (at: number) => {
      if (at < nextTimerAt) return
      let next = Number.POSITIVE_INFINITY
      // a timer added while this runs is visited too (Set iteration includes it)
      for (const timer of timers) {
        if (timer.dueAt <= at) {
          const again = timer.fire(at)
          if (again === undefined) {
            timers.delete(timer)
            continue
          }
          timer.dueAt = again
        }
        if (timer.dueAt < next) next = timer.dueAt
      }
      nextTimerAt = next
    }

    const pumpWriters = (at: number, turn: boolean) => {
      for (const writer of active) {
        // a real-time writer is due once every frame, a few ticks apart: the ticks between cost
        // a comparison, not a visit to its socket
        if (writer.nextPumpAt > at) continue
        if (!writer.pump(at, turn)) active.delete(writer)
      }
    }

    /** Waits on `wake`, or until `at + ms` when a timer is set (a sleeping child fiber completes it). */
    const waitForWake = (at: number) => {
      const deferred = Deferred.unsafeMake<void>(FiberId.none)
      wake = deferred
      if (timers.size === 0) {
        waitingUntil = Number.POSITIVE_INFINITY
        return Deferred.await(deferred)
      }
      waitingUntil = Math.max(nextTimerAt, at + 1)
      const sleeper = Effect.zipRight(
        Effect.sleep(Duration.millis(waitingUntil - at)),
        Effect.sync(() => Deferred.unsafeDone(deferred, Effect.void))
      )
      return Effect.flatMap(Effect.fork(sleeper), (fiber) =>
        Effect.zipRight(Deferred.await(deferred), Fiber.interruptFork(fiber))
      )
    }

    const step = Effect.suspend(() => {
      // a step that follows a tick's sleep runs in a timer of its own; one that a writer woke
      // runs in the microtasks of whoever woke it, which the event loop has not left yet
      const turn = waitingUntil === undefined
      waitingUntil = undefined
      const at = now()
      fireTimers(at)
      pumpWriters(at, turn)
      if (active.size === 0) return waitForWake(at)
      // ticks fall on multiples of the tick in clock time (a tick that overran skips to the next
      // one), so every session's writer wakes on the same ticks: a grid point of the usual frame
      // durations (multiples of 10 ms) is a tick, any other one is served on the tick after it.
      // Each sleep is a real timer, which lets I/O in between ticks. While it ticks, timers fire
      // on the tick after they fall due (a heartbeat a few milliseconds late is harmless; a wake
      // of its own for each one is not, with a thousand sessions)
      const due = (Math.floor(at / tickMs) + 1) * tickMs
      return Effect.sleep(Duration.millis(due - at))
    })
    yield* Effect.forkScoped(Effect.forever(step))

    const wakeUp = () => {
      if (waitingUntil !== undefined) Deferred.unsafeDone(wake, Effect.void)
    }

    return {
      schedule: (writer: Pumpable) => {
        if (active.has(writer)) return
        active.add(writer)
        wakeUp()
      },
      cancel: (writer: Pumpable) => {
        active.delete(writer)
      },
      addTimer: (timer: Timer) => {
        const entry: TimerEntry = { dueAt: timer.dueAt, fire: timer.fire }
        timers.add(entry)
        if (entry.dueAt < nextTimerAt) nextTimerAt = entry.dueAt
        // a wait that would end after this timer is due ends now, and the loop waits again
        if (waitingUntil !== undefined && entry.dueAt < waitingUntil) wakeUp()
        return () => {
          timers.delete(entry)
        }
      },
      now
    } satisfies FrameClockService
  })
