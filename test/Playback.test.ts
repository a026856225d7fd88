/**
 * The playback model on its own: many frames in flight at once (more than its ring starts
 * with, and wrapping around it), confirmed in pieces, land where the jitter-buffer rule says.
 */
import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { Playback, Track } from "../src/internal/session/playback.js"

const track = (id: string) =>
  new Track(
    id,
    () => {},
    () => {}
  )

/** A frame: its duration, and which of two utterances it belongs to. */
const frame = FastCheck.tuple(FastCheck.constantFrom(20, 40, 60), FastCheck.boolean())

describe("the playback model", () => {
  it.prop(
    "frames written back to back and confirmed in any pieces play back to back from the playout delay, each as its own",
    [
      FastCheck.array(FastCheck.array(frame, { minLength: 1, maxLength: 90, size: "max" }), {
        minLength: 1,
        maxLength: 6
      }),
      FastCheck.integer({ min: 0, max: 40 })
    ],
    ([batches, warmup]) => {
      const playback = new Playback(100)
      let index = 0
      // frames already confirmed move the ring's start: later batches wrap around it
      const earlier = track("earlier")
      for (let i = 0; i < warmup; i++) playback.written(earlier, 40, ++index, 0)
      playback.confirmed(index, 0)
      const start = 100 + 40 * warmup
      const tracks = [track("a"), track("b")] as const
      let total = 0
      for (const batch of batches) {
        for (const [ms, second] of batch) playback.written(tracks[second ? 1 : 0], ms, ++index, 0)
        total += batch.reduce((sum, [ms]) => sum + ms, 0)
        // confirmed in two pieces: the first half, then the rest
        playback.confirmed(index - Math.floor(batch.length / 2), 0)
        playback.confirmed(index, 0)
      }
      const end = start + total
      for (const t of tracks) {
        expect(t.inFlight).toBe(0)
        expect(t.playedBy(start)).toBe(0)
        // what each utterance is heard for is its own frames' durations, placed in order
        expect(t.playedBy(end)).toBe(t.durationMs)
      }
      expect(tracks[0].playedBy(end) + tracks[1].playedBy(end)).toBe(total)
      expect(Math.max(tracks[0].end ?? 0, tracks[1].end ?? 0)).toBe(end)
    }
  )

  /** One stretch of speech per sample, far apart, and its `audio_start` after `measuredMs`. */
  const measure = (playback: Playback, samples: ReadonlyArray<number>, from = 0) =>
    samples.forEach((measuredMs, n) => {
      const i = from + n
      const at = 10_000 * (i + 1)
      playback.written(track(`s${i}`), 40, i + 1, at)
      playback.started(at + measuredMs)
    })

  it.prop(
    "one audio_start held up (or early) among three or more does not move the playout delay",
    [
      FastCheck.integer({ min: 20, max: 400 }),
      FastCheck.integer({ min: 3, max: 12 }),
      FastCheck.nat(),
      FastCheck.integer({ min: -400, max: 2000 })
    ],
    ([delay, count, where, off]) => {
      const samples = Array.from({ length: count }, () => delay)
      samples[where % count] = Math.max(0, delay + off)
      const playback = new Playback(100)
      measure(playback, samples)
      expect(playback.measured).toBe(true)
      expect(playback.delayMs).toBe(delay)
      // the metric sees each measurement as it came
      expect(playback.sample).toBe(samples.at(-1))
    }
  )

  it.prop(
    "a real change of the playout delay is followed within three audio_starts",
    [FastCheck.integer({ min: 20, max: 400 }), FastCheck.integer({ min: 20, max: 400 }), FastCheck.nat(10)],
    ([before, after, earlier]) => {
      const playback = new Playback(100)
      measure(playback, [...Array.from({ length: earlier }, () => before), after, after])
      if (earlier > 1 && before !== after) expect(playback.delayMs).not.toBe(after)
      measure(playback, [after], earlier + 2)
      expect(playback.delayMs).toBe(after)
    }
  )
})
