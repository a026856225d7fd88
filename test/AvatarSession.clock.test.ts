/**
 * Time-driven behaviour on the TestClock: the simulator and the client are built inside
 * the test, so the heartbeat, the pacing clock and the simulator's arrival times all run
 * on test time, while the sockets do real I/O on loopback.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as TestClock from "effect/TestClock"
import { type AvatarSession, AvatarSimulator } from "../src/index.js"
import { clientFor, eventually, io, pcm } from "./support.js"

const AVATAR = "dvp_Tristan_cloth2_1080P"
const FRAME_MS = 40

describe("AvatarSession on the TestClock", () => {
  it.scoped("pings every heartbeatInterval; a pong later than heartbeatTimeout ends the session", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({
        avatarId: AVATAR,
        heartbeatInterval: "30 seconds",
        heartbeatTimeout: "10 seconds"
      })
      const pings = sim.sessions.pipe(Effect.map((s) => s[0]!.pings))
      const states: Array<AvatarSession.SessionState> = []
      yield* session.state.changes.pipe(
        Stream.runForEach((s) => Effect.sync(() => states.push(s))),
        Effect.forkScoped
      )

      yield* TestClock.adjust("29 seconds")
      yield* io()
      expect(yield* pings).toBe(0)
      yield* TestClock.adjust("1 second")
      yield* eventually(pings, (n) => n === 1)
      yield* io(50) // the pong comes back over the socket
      yield* TestClock.adjust("30 seconds")
      yield* eventually(pings, (n) => n === 2)
      yield* io(50)
      expect((yield* SubscriptionRef.get(session.state))._tag).toBe("Ready")

      // the peer stops answering: the next ping goes unanswered
      yield* sim.setFaults(0, { noPong: true })
      yield* TestClock.adjust("30 seconds")
      yield* eventually(pings, (n) => n === 3)
      yield* TestClock.adjust("9 seconds")
      yield* io()
      expect((yield* SubscriptionRef.get(session.state))._tag).toBe("Ready")
      yield* sim.setFaults(0, {})
      yield* TestClock.adjust("1 second")
      // detected within heartbeatInterval + heartbeatTimeout, and treated as a drop: a new connection
      yield* eventually(session.info, (i) => i.reconnects === 1)
      expect(states.map((s) => s._tag)).toStrictEqual(["Ready", "Reconnecting", "Ready"])
      expect(states[1]).toMatchObject({ cause: { _tag: "ConnectionError", reason: "heartbeat" }, attempt: 1 })
      expect((yield* SubscriptionRef.get(session.state))._tag).toBe("Ready")
      const records = yield* sim.sessions
      expect(records).toHaveLength(2)
      expect(records[0]!.open).toBe(false)
    })
  )

  it.scoped(
    "with a timeout longer than the interval, pings keep their rate and the oldest unanswered one decides",
    () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        const client = yield* clientFor(sim)
        const session = yield* client.session({
          avatarId: AVATAR,
          heartbeatInterval: "5 seconds",
          heartbeatTimeout: "12 seconds"
        })
        const pings = sim.sessions.pipe(Effect.map((s) => s[0]!.pings))
        yield* sim.setFaults(0, { noPong: true })
        for (const expected of [1, 2, 3]) {
          // the clock's loop must be asleep on test time before it moves, or the move is missed
          yield* io()
          yield* TestClock.adjust("5 seconds")
          yield* eventually(pings, (n) => n === expected)
        }
        // the first ping (at 5 s) is 10 s old: not yet late
        yield* io()
        expect((yield* SubscriptionRef.get(session.state))._tag).toBe("Ready")
        // at 17 s its deadline passes with nothing heard since: the peer is unresponsive
        yield* TestClock.adjust("2 seconds")
        const state = yield* eventually(SubscriptionRef.get(session.state), (s) => s._tag !== "Ready")
        expect(state).toMatchObject({ _tag: "Reconnecting", cause: { _tag: "ConnectionError", reason: "heartbeat" } })
      })
  )

  it.scoped("sessions of one client share its clock: a later session with a shorter interval pings on time", () =>
    Effect.gen(function* () {
      // an instance serves one session at a time
      const sim = yield* AvatarSimulator.make({ instances: [{}, {}] })
      const client = yield* clientFor(sim)
      // the clock waits for the first session's ping, a minute away, when the second one opens
      yield* client.session({ avatarId: AVATAR, heartbeatInterval: "60 seconds" })
      yield* io()
      // instance 0 is taken (4003): the next attempt, at once, goes to instance 1
      yield* client.session({ avatarId: AVATAR, heartbeatInterval: "5 seconds", retry: Schedule.recurs(2) })
      // the sessions' records: the first, the refused attempt, the second
      const pings = sim.sessions.pipe(Effect.map((s) => s.filter((r) => r.open).map((r) => r.pings)))
      for (const expected of [1, 2, 3]) {
        yield* TestClock.adjust("5 seconds")
        yield* eventually(pings, (p) => p[1] === expected)
      }
      expect((yield* pings)[0]).toBe(0)
      yield* TestClock.adjust("45 seconds")
      yield* eventually(pings, (p) => p[0] === 1 && p[1] === 12)
    })
  )

  // with `highWaterBytes: 0` the frames a pump holds corked must not count as unsent: the lead
  // still leaves at once, not a frame or two per tick
  for (const highWaterBytes of [undefined, 0]) {
    it.scoped(
      `a lead of several corked batches leaves at once, whole and in order (highWaterBytes ${highWaterBytes ?? "default"})`,
      () =>
        Effect.gen(function* () {
          const sim = yield* AvatarSimulator.make()
          const client = yield* clientFor(sim)
          // 3 s of lead is 76 frames in one pump (the one that plays now, and the 75 whose slots
          // start within 3 s): a first frame, then corked batches of at most 32 KiB of PCM
          const session = yield* client.session({
            avatarId: AVATAR,
            lead: "3 seconds",
            outboxCapacity: 400,
            highWaterBytes
          })
          const audio = pcm(32_000 * 4)
          const speaking = yield* Effect.fork(session.speak(Stream.make(audio)))
          const frames = sim.sessions.pipe(Effect.map((s) => s[0]!.frames))
          yield* eventually(frames, (f) => f.length === 76)
          yield* io()
          expect((yield* frames).length).toBe(76)
          yield* TestClock.adjust("1 second")
          yield* Fiber.join(speaking)
          expect((yield* frames).length).toBe(100)
          expect(yield* sim.audio(session.sessionId)).toStrictEqual(audio)
        })
    )
  }

  // the measurements: at no lead and at one frame's, pacing ran at half speed
  for (const leadMs of [0, 40, 200, 1000]) {
    it.scoped(`real-time pacing at a lead of ${leadMs} ms stays within lead of playback and keeps up with it`, () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        const client = yield* clientFor(sim)
        const session = yield* client.session({ avatarId: AVATAR, lead: `${leadMs} millis`, outboxCapacity: 400 })
        const audio = pcm(32_000 * 5)
        const start = yield* TestClock.currentTimeMillis
        const speaking = yield* Effect.fork(Stream.run(Stream.make(audio), session.audio))
        const frames = sim.sessions.pipe(Effect.map((s) => s[0]!.frames))
        // frame k may leave once its slot, k * 40 ms, starts no more than `lead` ahead
        const due = (elapsed: number) => Math.min(125, Math.floor((elapsed + leadMs) / FRAME_MS) + 1)

        // at once: the frame that plays now and those whose slots start within the lead
        yield* eventually(frames, (f) => f.length === due(0))
        yield* io()
        expect((yield* frames).length).toBe(due(0))

        for (let step = 1; step <= 25; step++) {
          yield* TestClock.adjust("200 millis")
          const elapsed = step * 200
          yield* eventually(frames, (f) => f.length >= due(elapsed))
          // never more than `lead` ahead of playback, never behind it
          expect((yield* session.info).audio.framesWritten).toBe(due(elapsed))
        }
        yield* Fiber.join(speaking)
        const all = yield* frames
        expect(all).toHaveLength(125)
        all.forEach((frame, k) => {
          // frame k starts playing at k * 40 ms; it never arrives more than `lead` before that
          expect(frame.at - start).toBeGreaterThanOrEqual(k * FRAME_MS - leadMs)
        })
        expect(yield* sim.audio(session.sessionId)).toStrictEqual(audio)
      })
    )
  }

  it.scoped("a producer faster than the wire is held back, not buffered without bound", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const capacity = 10
      const session = yield* client.session({ avatarId: AVATAR, lead: "200 millis", outboxCapacity: capacity })
      let pulled = 0
      // 30 s of speech, one 40 ms chunk at a time, produced as fast as it is pulled
      const speech = Stream.range(1, 750).pipe(
        Stream.rechunk(1),
        Stream.map((i) => pcm(1280, i)),
        Stream.tap(() => Effect.sync(() => pulled++))
      )
      const speaking = yield* Effect.fork(Stream.run(speech, session.audio))
      yield* eventually(session.info, (i) => i.audio.framesWritten === 6)
      yield* io(50)
      // written (6: the frame that plays, and 200 ms of lead) + queued (capacity) + the chunk waiting for space
      expect(pulled).toBeLessThanOrEqual(6 + capacity + 1)
      expect((yield* session.info).audio.framesQueued).toBe(capacity)

      yield* TestClock.adjust("2 seconds")
      yield* eventually(session.info, (i) => i.audio.framesWritten >= 56)
      yield* io(50)
      expect(pulled).toBeLessThanOrEqual(56 + capacity + 1)
      expect((yield* session.info).audio.framesQueued).toBeLessThanOrEqual(capacity)
      yield* Fiber.interrupt(speaking)
      // closing flushes queued audio in real time; drop it instead, so the test clock need not run
      yield* session.interrupt
    })
  )
})
