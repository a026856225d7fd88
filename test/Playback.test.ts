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
    "one audio_start held up among two or more, or early among three or more, does not move the playout delay",
    [
      FastCheck.integer({ min: 20, max: 400 }),
      FastCheck.integer({ min: 2, max: 12 }),
      FastCheck.nat(),
      FastCheck.integer({ min: -400, max: 2000 })
    ],
    ([delay, count, where, off]) => {
      // an early one needs two others to outvote it
      const n = off < 0 ? Math.max(3, count) : count
      const samples = Array.from({ length: n }, () => delay)
      samples[where % n] = Math.max(0, delay + off)
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
      measure(playback, [...Array.from({ length: earlier }, () => before), after])
      // one is not enough against two or more
      if (earlier > 1 && before !== after) expect(playback.delayMs).toBe(before)
      measure(playback, [after, after], earlier + 1)
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

  /** What happens to an utterance's `audio_start`: it comes, the server sends none, or the connection drops first. */
  const fate = FastCheck.constantFrom("sent", "not sent", "dropped")

  /** An utterance: a burst of frames, more written while it plays (when, as a fraction of how long it can), and its event. */
  const utterance = FastCheck.tuple(
    FastCheck.integer({ min: 1, max: 30 }),
    FastCheck.integer({ min: 0, max: 20 }),
    FastCheck.double({ min: 0, max: 1, noNaN: true }),
    fate
  )

  it.prop(
    "utterances far apart, each a burst and more while it plays, some audio_starts never coming (none sent, or lost with a drop): each that comes is attributed to its own utterance, and an interrupt at any point says what the server played",
    [
      FastCheck.integer({ min: 20, max: 400 }),
      FastCheck.integer({ min: 0, max: 150 }),
      FastCheck.array(utterance, { minLength: 1, maxLength: 5 }),
      FastCheck.integer({ min: 0, max: 2500 })
    ],
    ([delay, oneWay, utterances, cutAfter]) => {
      const playback = new Playback(100)
      playback.roundTrip(2 * oneWay)
      let index = 0
      let measured = false
      utterances.forEach(([burst, more, when, what], u) => {
        // far apart: everything before has played and settled, by the server and by the model
        const writtenAt = 10_000 * (u + 1)
        playback.settle(writtenAt)
        const t = track(`u${u}`)
        const serverStart = writtenAt + oneWay + delay
        // the rest is written while the server still plays the burst: it follows without a gap
        const moreAt = writtenAt + Math.floor(when * (40 * burst + delay))
        const sentAt = writtenAt + cutAfter
        const actions: Array<[number, () => void]> = []
        const burstThenConfirm = (at: number, frames: number) => () => {
          for (let f = 0; f < frames; f++) playback.written(t, 40, ++index, at)
          const mark = index
          // the ping after them, answered as the server reads it
          actions.push([at + 2 * oneWay, () => playback.confirmed(mark, at + 2 * oneWay)])
        }
        actions.push([writtenAt, burstThenConfirm(writtenAt, burst)])
        if (more > 0) actions.push([moreAt, burstThenConfirm(moreAt, more)])
        if (what === "dropped") actions.push([writtenAt + 2 * oneWay + 1, () => playback.lost()])
        if (what === "sent") {
          actions.push([
            serverStart + oneWay,
            () => {
              measured = true
              expect(playback.started(serverStart + oneWay)?.id).toBe(t.id)
            }
          ])
        }
        // An interrupt sent at `sentAt`, read one way later, answered two ways later: what it
        // would say (nothing is cut). Not claimed: without any measurement the model has only
        // the configured delay, and a drop loses what it had not confirmed (never heard).
        actions.push([
          sentAt + 2 * oneWay,
          () => {
            if (!measured || what === "dropped") return
            const truth = Math.min(Math.max(0, sentAt + oneWay - serverStart), 40 * (burst + more))
            expect(t.playedBy(playback.readAt(sentAt, sentAt + 2 * oneWay))).toBeCloseTo(truth, 6)
          }
        ])
        // in time order, with what an action adds
        while (actions.length > 0) {
          actions.sort((x, y) => x[0] - y[0])
          actions.shift()![1]()
        }
        t.finished = true
      })
    },
    { fastCheck: { numRuns: 1000 } }
  )

  describe("which utterance an audio_start belongs to, in the cases a property rarely reaches", () => {
    const W = 10_000

    it("a drop before an utterance's audio_start: the next connection's first one belongs to the utterance it carries", () => {
      const playback = new Playback(100)
      const a = track("a")
      for (let i = 1; i <= 5; i++) playback.written(a, 40, i, 0)
      playback.confirmed(5, 10)
      // a is still being spoken (its producer goes on): its event went with the connection
      playback.lost()
      const b = track("b")
      for (let i = 6; i <= 10; i++) playback.written(b, 40, i, 2000)
      playback.confirmed(10, 2010)
      expect(playback.started(2110)?.id).toBe("b")
      expect(playback.delayMs).toBe(100)
    })

    it("after the delay is corrected, frames that follow without a gap start no stretch: the next utterance's audio_start is its own, before its pong", () => {
      const playback = new Playback(100)
      playback.roundTrip(0)
      const t = track("t")
      for (let i = 1; i <= 5; i++) playback.written(t, 40, i, W)
      playback.confirmed(5, W)
      // the avatar is slower than configured: the burst moves 200 ms later, to end at W + 500
      expect(playback.started(W + 300)?.id).toBe("t")
      // written while it plays: they follow it
      for (let i = 6; i <= 10; i++) playback.written(t, 40, i, W + 350)
      const u = track("u")
      for (let i = 11; i <= 12; i++) playback.written(u, 40, i, W + 2000)
      // u's audio_start comes before the pong that confirms any of this
      expect(playback.started(W + 2300)?.id).toBe("u")
    })

    it("a stretch the writer expected but the confirmation shows followed without a gap takes no audio_start", () => {
      const playback = new Playback(100)
      playback.roundTrip(0)
      const t = track("t")
      playback.written(t, 40, 1, W)
      // a slow answer: the link seems to hold frames 500 ms
      playback.confirmed(1, W + 500)
      expect(playback.started(W + 600)?.id).toBe("t")
      // so the next frame is expected to arrive late, after a gap; its quick answer shows it did not
      playback.written(t, 40, 2, W + 520)
      playback.confirmed(2, W + 530)
      const u = track("u")
      playback.written(u, 40, 3, W + 3000)
      expect(playback.started(W + 3110)?.id).toBe("u")
    })
  })
})
