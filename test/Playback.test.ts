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

  /**
   * One stretch of speech per sample, far apart: a frame written and confirmed at once (a link
   * of no delay), and its `audio_start` `measuredMs` later. Returns what the histogram saw.
   */
  const measure = (playback: Playback, samples: ReadonlyArray<number>, from = 0) =>
    samples.forEach((measuredMs, n) => {
      const i = from + n
      const at = 10_000 * (i + 1)
      playback.written(track(`s${i}`), 40, i + 1, at)
      playback.confirmed(i + 1, at)
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
      const seen: Array<number> = []
      const playback = new Playback(100, (ms) => seen.push(ms))
      measure(playback, samples)
      expect(playback.measured).toBe(true)
      expect(playback.delayMs).toBe(delay)
      // the histogram sees each measurement as it came
      expect(seen).toStrictEqual(samples)
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

  it.prop(
    "once an audio_start has measured the delay, an interrupt's played is what the server played: the first stretch too, any one-way time, measured by a heartbeat or not, the event before or after the confirmation",
    [
      FastCheck.integer({ min: 20, max: 400 }),
      FastCheck.integer({ min: 0, max: 150 }),
      FastCheck.boolean(),
      FastCheck.array(FastCheck.boolean(), { minLength: 1, maxLength: 4 }),
      FastCheck.integer({ min: 1, max: 25 }),
      FastCheck.integer({ min: 0, max: 1500 })
    ],
    ([delay, oneWay, heartbeat, eventFirst, frames, cutAfter]) => {
      // the configured delay is wrong on purpose: the events must correct it
      const playback = new Playback(100)
      if (heartbeat) playback.roundTrip(2 * oneWay)
      let index = 0
      const stretches = eventFirst.length
      let checked = true
      let last: { track: Track; serverStart: number; sentAt: number } | undefined
      eventFirst.forEach((first, s) => {
        const writtenAt = 10_000 * (s + 1)
        const t = track(`s${s}`)
        // a burst, read by the server one way later; its ping's pong back one way after that
        for (let f = 0; f < frames; f++) playback.written(t, 40, ++index, writtenAt)
        const serverStart = writtenAt + oneWay + delay
        // the interrupt leaves at `sentAt`; its answer comes two ways later
        const sentAt = writtenAt + cutAfter
        const confirm = () => playback.confirmed(index, writtenAt + 2 * oneWay)
        // an audio_start that comes after the interrupt's answer is not seen before the cut
        const seen = s < stretches - 1 || serverStart + oneWay <= sentAt + 2 * oneWay
        const event = () => {
          if (seen) playback.started(serverStart + oneWay)
        }
        if (first) {
          event()
          confirm()
        } else {
          confirm()
          event()
        }
        // with no event at all yet, the model has only the configured delay
        if (!seen && s === 0) checked = false
        // Before a heartbeat, a round trip longer than the burst looks like a backlog (frames
        // spread over it, with gaps): the model claims exactness only once one has measured it,
        // or for bursts that outlast the round trip (a lead of a second against any real link).
        if (!heartbeat && 40 * frames < 2 * oneWay) checked = false
        last = { track: t, serverStart, sentAt }
      })
      const { track: spoken, serverStart, sentAt } = last!
      const truth = Math.min(Math.max(0, sentAt + oneWay - serverStart), 40 * frames)
      const readAt = playback.readAt(sentAt, sentAt + 2 * oneWay)
      if (checked) expect(spoken.playedBy(readAt)).toBeCloseTo(truth, 6)
    }
  )
})
