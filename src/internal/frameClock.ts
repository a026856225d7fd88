import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** Something the clock wakes: a session's writer. `pump` must be synchronous and cheap. */
export interface Pumpable {
  readonly pump: (now: number) => void
}

export interface FrameClockService {
  /** Wakes `writer` on every tick until the returned function is called. */
  readonly register: (writer: Pumpable) => () => void
  readonly now: () => number
  readonly tickMs: number
}

/**
 * One clock for every session in the process. A timer (or an `Effect.sleep` loop) per
 * session is what breaks at a few hundred sessions; one loop that wakes every writer keeps
 * a thousand on time. It runs on the Effect `Clock`, so tests drive it with the TestClock.
 */
export class FrameClock extends Context.Tag("akool-streaming-avatar/internal/FrameClock")<
  FrameClock,
  FrameClockService
>() {}

export const DEFAULT_TICK = Duration.millis(10)

export const make = (tick: Duration.DurationInput = DEFAULT_TICK) =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const writers = new Set<Pumpable>()
    const now = () => clock.unsafeCurrentTimeMillis()
    const tickAll = Effect.sync(() => {
      if (writers.size === 0) return
      const at = now()
      for (const writer of writers) writer.pump(at)
    })
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(tick), tickAll)))
    return {
      register: (writer: Pumpable) => {
        writers.add(writer)
        return () => {
          writers.delete(writer)
        }
      },
      now,
      tickMs: Duration.toMillis(tick)
    } satisfies FrameClockService
  })

export const layer = (tick?: Duration.DurationInput) => Layer.scoped(FrameClock, make(tick))
