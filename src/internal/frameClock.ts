import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"

/** Something the clock wakes: a session's writer. `pump` is synchronous and cheap; it returns whether work is left. */
export interface Pumpable {
  readonly pump: (now: number) => boolean
  /** Before this time a pump would write nothing (pacing holds it back): the clock does not call it. */
  readonly nextPumpAt: number
}

export interface FrameClockService {
  /** Wakes `writer` on every tick until its `pump` reports nothing left. */
  readonly schedule: (writer: Pumpable) => void
  /** Stops waking `writer`. */
  readonly cancel: (writer: Pumpable) => void
  readonly now: () => number
}

/**
 * One clock for every session of a client. A timer (or an `Effect.sleep` loop) per session
 * is what breaks at a few hundred sessions; one loop that wakes every writer with queued
 * audio keeps a thousand on time. It sleeps on nothing while no writer has work, and runs
 * on the Effect `Clock`, so tests drive it with the TestClock.
 */
export class FrameClock extends Context.Tag("akool-streaming-avatar/internal/FrameClock")<
  FrameClock,
  FrameClockService
>() {}

export const DEFAULT_TICK = Duration.millis(10)

export const make = (tick: Duration.DurationInput = DEFAULT_TICK) =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const active = new Set<Pumpable>()
    let wake = Deferred.unsafeMake<void>(FiberId.none)
    const now = () => clock.unsafeCurrentTimeMillis()

    const tickMs = Duration.toMillis(tick)
    /** When the next tick is due: ticks keep a fixed rate, the time a tick's work took is not added to it. */
    let due = 0
    const idle = Effect.suspend(() => {
      if (active.size > 0) return Effect.void
      wake = Deferred.unsafeMake<void>(FiberId.none)
      return Deferred.await(wake)
    })
    const sleep = Effect.suspend(() => {
      const at = now()
      // after an idle spell, or a tick that overran, the rate restarts from now; a real sleep
      // of at least 1 ms every time lets I/O in even when ticks overrun
      due = Math.max(due + tickMs, at + 1)
      return Effect.sleep(Duration.millis(due - at))
    })
    const tickAll = Effect.sync(() => {
      const at = now()
      for (const writer of active) {
        // a real-time writer is due once every frame, a few ticks apart: the ticks between cost
        // a comparison, not a visit to its socket
        if (writer.nextPumpAt > at) continue
        if (!writer.pump(at)) active.delete(writer)
      }
    })
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(idle, Effect.zipRight(sleep, tickAll))))

    return {
      schedule: (writer: Pumpable) => {
        if (active.has(writer)) return
        active.add(writer)
        Deferred.unsafeDone(wake, Effect.void)
      },
      cancel: (writer: Pumpable) => {
        active.delete(writer)
      },
      now
    } satisfies FrameClockService
  })
