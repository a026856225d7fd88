/**
 * Real-time pacing of the outbox at every lead and frame duration, and the bound on what one
 * unpaced pump writes. The outbox is driven by the real FrameClock on the TestClock (and, for
 * a clock whose timers fire late, by a loop that calls it the way the FrameClock does), into a
 * target that records when each frame was sent.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { AvatarSimulator } from "../src/index.js"
import * as FrameClock from "../src/internal/dataplane/frameClock.js"
import { BATCH_LIMIT_BYTES, Outbox, type OutboxOptions, type Target } from "../src/internal/dataplane/outbox.js"
import { clientFor, eventually, pcm } from "./support.js"

const TICK_MS = 10
const BYTES_PER_MS = 32
/** Room for float rounding in times that are sums of frame durations (multiples of 1/16 ms). */
const EPSILON = 1e-6

interface Sent {
  readonly at: number
  readonly frame: Uint8Array
}

/** A socket that takes everything at once and records when each frame went. */
const recorder = (now: () => number) => {
  const sent: Array<Sent> = []
  const target: Target = {
    socket: { bufferedAmount: 0 },
    sendChat: (frame) => sent.push({ at: now(), frame }),
    cork: () => {},
    uncork: () => {},
    isOpen: () => true,
    onStall: () => {},
    requestConfirmation: () => {}
  }
  return { sent, target }
}

/** `bytes` of audio cut into frames of `frameMs`, the last one shorter when it does not divide. */
const utterance = (frameMs: number, bytes: number): Array<Uint8Array> => {
  const frameBytes = frameMs * BYTES_PER_MS
  const frames: Array<Uint8Array> = []
  for (let offset = 0; offset < bytes; offset += frameBytes) {
    frames.push(new Uint8Array(Math.min(frameBytes, bytes - offset)))
  }
  return frames
}

const realtime = (frameMs: number, leadMs: number, capacity: number): OutboxOptions => ({
  capacity,
  pacing: "realtime",
  leadMs,
  highWaterBytes: 1024 * 1024,
  stallMs: 60_000,
  confirmEvery: 1_000_000,
  gridMs: frameMs
})

interface Case {
  readonly frameMs: number
  readonly leadMs: number
  /** How late after its time a tick of the clock may run. */
  readonly jitterMs: number
}

/**
 * What pacing promises, checked on the sends of one utterance that was available at once:
 *
 * - every frame, once, in order;
 * - no frame leaves more than `lead` ahead of its slot, where a frame's slot starts when the
 *   previous one's ends or, after an underrun, at the grid point at or before its write; against
 *   the wall clock (a slot starts at the write itself) that is `lead` plus how far the write
 *   was past its grid point: the first frame's offset, or a late tick;
 * - two sends are never more than a frame and a tick (and the clock's lateness) apart;
 * - the last frame leaves between its slot start less `lead`, less the first frame's offset
 *   from the grid, and that plus a grid point and a tick: real time on average.
 */
const checkPacing = (sent: ReadonlyArray<Sent>, frames: ReadonlyArray<Uint8Array>, c: Case) => {
  expect(sent.length).toBe(frames.length)
  expect(sent.every((s, k) => s.frame === frames[k])).toBe(true)
  const gridFloor = (t: number) => Math.floor(t / c.frameMs) * c.frameMs
  const first = sent[0]!.at
  const offset = first - gridFloor(first)
  // a grid point that is not a tick is written on the tick after it
  const late = (c.frameMs % TICK_MS === 0 ? 0 : TICK_MS) + c.jitterMs
  let modelEnd = Number.NEGATIVE_INFINITY
  let wallEnd = Number.NEGATIVE_INFINITY
  const problems: Array<string> = []
  sent.forEach(({ at, frame }, k) => {
    const duration = frame.byteLength / BYTES_PER_MS
    const modelSlot = Math.max(modelEnd, gridFloor(at))
    const wallSlot = Math.max(wallEnd, at)
    modelEnd = modelSlot + duration
    wallEnd = wallSlot + duration
    if (modelSlot - at > c.leadMs + EPSILON) problems.push(`frame ${k} at ${at} is ${modelSlot - at} ms ahead`)
    if (wallSlot - at > c.leadMs + Math.max(offset, late) + EPSILON)
      problems.push(`frame ${k} at ${at} is ${wallSlot - at} ms ahead of the wall clock`)
    const gap = k === 0 ? 0 : at - sent[k - 1]!.at
    if (gap > c.frameMs + TICK_MS + c.jitterMs + EPSILON)
      problems.push(`frame ${k} at ${at} came ${gap} ms after the one before`)
  })
  expect(problems.slice(0, 3).join("; ")).toBe("")
  const lastSlot = (frames.length - 1) * c.frameMs
  const took = sent[sent.length - 1]!.at - first
  expect(took).toBeGreaterThanOrEqual(Math.max(0, lastSlot - c.leadMs - offset) - EPSILON)
  expect(took).toBeLessThanOrEqual(Math.max(0, lastSlot - c.leadMs) + c.frameMs + TICK_MS + c.jitterMs + EPSILON)
}

/** Frame durations that hold whole samples at 16 kHz, 10 to 1,000 ms, many not a multiple of the tick. */
const frameMs = FastCheck.oneof(
  FastCheck.constantFrom(10, 20, 25, 40, 60, 100, 1000),
  FastCheck.integer({ min: 160, max: 16_000 }).map((samples) => samples / 16)
)

/** Leads: none, exactly one frame (`-1`, resolved against the frame), whole and fractional milliseconds. */
const lead = FastCheck.oneof(
  FastCheck.constant(0),
  FastCheck.constant(-1),
  FastCheck.integer({ min: 0, max: 1500 }),
  FastCheck.double({ min: 0, max: 1500, noNaN: true })
)

const caseOf = (frame: number, leadOrFrame: number, jitterMs: number): Case => ({
  frameMs: frame,
  leadMs: leadOrFrame < 0 ? frame : leadOrFrame,
  jitterMs
})

/**
 * One utterance, available at once from `startMs`, through an outbox the real FrameClock drives
 * on the TestClock; the sends are checked against what pacing promises.
 */
const onFrameClock = (c: Case, samples: number, startMs: number) =>
  Effect.gen(function* () {
    const clock = yield* FrameClock.make()
    const frames = utterance(c.frameMs, samples * 2)
    const outbox = new Outbox(realtime(c.frameMs, c.leadMs, frames.length))
    const { sent, target } = recorder(clock.now)
    outbox.target = target
    yield* TestClock.adjust(startMs)
    // as the session does: queue what it was given, write what may go now, let the clock do the rest
    for (const f of frames) expect(outbox.offer(f)).toBe(true)
    if (outbox.pump(clock.now())) clock.schedule(outbox)
    // long enough for pacing at half speed to finish: a slow clock shows in the timings, not as missing frames
    yield* TestClock.adjust(2 * frames.length * c.frameMs + 100)
    checkPacing(sent, frames, c)
    return sent
  })

describe("real-time pacing", () => {
  // the measurements: 5 s of 40 ms frames at leads of none, one frame, 200 ms and 1 s
  for (const leadMs of [0, 40, 200, 1000]) {
    it.scoped(`5 s of 40 ms frames at a lead of ${leadMs} ms leave in 5 s less the lead, a frame every 40 ms`, () =>
      Effect.gen(function* () {
        const sent = yield* onFrameClock({ frameMs: 40, leadMs, jitterMs: 0 }, 80_000, 0)
        // the ideal: the last frame (slot 4,960 ms) leaves `lead` before its slot, on the grid
        expect(sent[sent.length - 1]!.at - sent[0]!.at).toBe(Math.max(0, 4960 - Math.floor(leadMs / 40) * 40))
        const gaps = sent.slice(Math.floor(leadMs / 40) + 1).map((s, k) => s.at - sent[k + Math.floor(leadMs / 40)]!.at)
        expect(new Set(gaps)).toStrictEqual(new Set([40]))
      })
    )
  }

  it.scoped.prop(
    "on the FrameClock: at real time, never more than lead ahead, no gap over a frame and a tick",
    {
      frame: frameMs,
      lead,
      // up to 2 s of audio, in whole samples
      samples: FastCheck.integer({ min: 1, max: 32_000 }),
      // the utterance starts anywhere between grid points
      startMs: FastCheck.integer({ min: 0, max: 999 })
    },
    ({ frame, lead, samples, startMs }) => Effect.asVoid(onFrameClock(caseOf(frame, lead, 0), samples, startMs)),
    { timeout: 120_000, fastCheck: { numRuns: 40 } }
  )

  it.prop(
    "on a clock whose ticks fire late: the lateness does not accumulate",
    {
      frame: frameMs,
      lead,
      samples: FastCheck.integer({ min: 1, max: 80_000 }),
      startMs: FastCheck.integer({ min: 0, max: 999 }),
      jitterMs: FastCheck.integer({ min: 1, max: 5 }),
      seed: FastCheck.integer()
    },
    ({ frame, lead, samples, startMs, jitterMs, seed }) => {
      const c = caseOf(frame, lead, jitterMs)
      // a tick later than a whole frame after its grid point is an underrun the avatar hears: that
      // time is lost (with no lead to refill, pacing does not catch up by sending ahead)
      FastCheck.pre((c.frameMs % TICK_MS === 0 ? 0 : TICK_MS) + jitterMs < c.frameMs)
      const frames = utterance(c.frameMs, samples * 2)
      const outbox = new Outbox(realtime(c.frameMs, c.leadMs, frames.length))
      let now = startMs
      const { sent, target } = recorder(() => now)
      outbox.target = target
      for (const f of frames) outbox.offer(f)
      let more = outbox.pump(now)
      // the FrameClock's loop: a tick every TICK_MS of clock time, each running up to `jitterMs` late
      let random = seed
      let tick = Math.floor(startMs / TICK_MS) + 1
      while (more && tick < 1_000_000) {
        random = (random * 1103515245 + 12345) & 0x7fffffff
        now = Math.max(now, tick * TICK_MS + (random % (jitterMs * 16 + 1)) / 16)
        if (outbox.nextPumpAt <= now) more = outbox.pump(now)
        tick = Math.floor(now / TICK_MS) + 1
      }
      checkPacing(sent, frames, c)
    },
    { fastCheck: { numRuns: 300 } }
  )
})

const unpaced = (capacity: number): OutboxOptions => ({ ...realtime(40, 0, capacity), pacing: "none" })

/** Bytes sent at each distinct time, in order. */
const bytesByTime = (sent: ReadonlyArray<Sent>) => {
  const totals = new Map<number, number>()
  for (const { at, frame } of sent) totals.set(at, (totals.get(at) ?? 0) + frame.byteLength)
  return [...totals.values()]
}

describe("unpaced sending", () => {
  it("writes at most the batch limit until the event loop has had a turn, in order", () => {
    const frames = utterance(40, 4 * 1024 * 1024)
    const outbox = new Outbox(unpaced(frames.length))
    const { sent, target } = recorder(() => 0)
    outbox.target = target
    for (const f of frames) outbox.offer(f)
    // the producer's own pump, and again before any turn: one batch between them
    expect(outbox.pump(0)).toBe(true)
    expect(outbox.pump(0)).toBe(true)
    const first = sent.reduce((n, s) => n + s.frame.byteLength, 0)
    expect(first).toBeGreaterThan(BATCH_LIMIT_BYTES - 1280)
    expect(first).toBeLessThanOrEqual(BATCH_LIMIT_BYTES)
    let turns = 0
    while (outbox.pump(0, true)) turns++
    expect(turns).toBeGreaterThanOrEqual(Math.ceil((4 * 1024 * 1024) / BATCH_LIMIT_BYTES) - 2)
    expect(sent.length).toBe(frames.length)
    expect(sent.every((s, k) => s.frame === frames[k])).toBe(true)
  })

  it.scoped("on the FrameClock, no tick writes more than the batch limit, and everything goes out in order", () =>
    Effect.gen(function* () {
      const clock = yield* FrameClock.make()
      const frames = utterance(40, 4 * 1024 * 1024)
      const outbox = new Outbox(unpaced(frames.length))
      const { sent, target } = recorder(clock.now)
      outbox.target = target
      for (const f of frames) outbox.offer(f)
      if (outbox.pump(clock.now())) clock.schedule(outbox)
      yield* TestClock.adjust("1 second")
      expect(sent.length).toBe(frames.length)
      expect(sent.every((s, k) => s.frame === frames[k])).toBe(true)
      const batches = bytesByTime(sent)
      expect(batches.length).toBeGreaterThan(1)
      expect(Math.max(...batches)).toBeLessThanOrEqual(BATCH_LIMIT_BYTES)
    })
  )

  it.scopedLive(
    "a large unpaced stream through a session leaves the event loop to timers and sockets",
    () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        const client = yield* clientFor(sim)
        // a peer as fast as the socket: the simulator shares this process, so a full socket would
        // hold the writer back and hide what it does to the event loop
        const session = yield* client.session({
          avatarId: "dvp_Tristan_cloth2_1080P",
          pacing: "none",
          highWaterBytes: 64 * 1024 * 1024
        })
        const audio = pcm(16 * 1024 * 1024)
        // a timer due every 5 ms, as another session's tick would be: the longest time between two
        // firings, and from the last one to the end (a loop blocked throughout fires none)
        let last = Date.now()
        let longest = 0
        let fired = 0
        const ticker = yield* Effect.fork(
          Effect.forever(
            Effect.map(Effect.sleep("5 millis"), () => {
              const at = Date.now()
              longest = Math.max(longest, at - last)
              last = at
              fired++
            })
          )
        )
        const started = Date.now()
        yield* Stream.run(Stream.make(audio), session.audio)
        const tookMs = Date.now() - started
        longest = Math.max(longest, Date.now() - last)
        yield* Fiber.interrupt(ticker)
        const written = (yield* session.info).audio.framesWritten
        expect(written).toBe(Math.ceil(audio.byteLength / 1280))
        const [record] = yield* eventually(sim.sessions, (s) => s[0]!.frames.length === written)
        expect(Buffer.concat(record!.frames.map((f) => f.bytes)).equals(audio)).toBe(true)
        // Before the batch limit, the timer waited for the whole send (about 400 ms) and fired once
        // at most. The simulator shares the process and does its own share of blocking, and the
        // machine may be busy, so the bound is on the shape, not on milliseconds.
        const seen = `a 5 ms timer fired ${fired} times and waited ${longest} ms at most while the send took ${tookMs} ms`
        expect(longest, seen).toBeLessThan(tookMs / 2)
        expect(fired, seen).toBeGreaterThanOrEqual(10)
      }),
    60_000
  )
})
