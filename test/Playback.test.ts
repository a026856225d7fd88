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
})
