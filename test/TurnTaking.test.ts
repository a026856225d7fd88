/**
 * Turn-taking against the simulator's player, over real sockets on the real clock: the SDK's
 * estimates (`speaking`, `played`, what an interrupt says was heard) compared with what the
 * simulator recorded as played, which is the truth here. Tolerances are a frame (40 ms) plus
 * room for a loaded machine; each test says which.
 */
import * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { type AvatarSession, AvatarSimulator } from "../src/index.js"
import { clientFor, eventLoopLag, eventually, pcm } from "./support.js"

const AVATAR = "dvp_Tristan_cloth2_1080P"
const FRAME = 40
/** What a loaded CI machine adds to a socket round trip or a timer, on top of a frame. */
const SLACK = 60

/**
 * What an estimate compared with the simulator's truth may be off by beyond the test's own
 * tolerance: twice what held this process's event loop (the simulator's and the SDK's ends
 * each can move it), at least 20 ms, and at most 100 ms, so that a test still catches an
 * error of a few hundred ms however busy the machine is.
 */
const allowance = (lag: { readonly maxMs: () => number }) => Math.min(100, Math.max(20, 2 * lag.maxMs()))

interface Change {
  readonly tag: AvatarSession.Speaking["_tag"]
  readonly utterance: string | undefined
  readonly at: number
}

/** Every change of `speaking`, with the wall-clock time the SDK saw it. */
const watchSpeaking = (session: AvatarSession.AvatarSession) =>
  Effect.gen(function* () {
    const seen: Array<Change> = []
    yield* session.speaking.changes.pipe(
      Stream.runForEach((s) =>
        Effect.sync(() =>
          seen.push({ tag: s._tag, utterance: s._tag === "Speaking" ? s.utterance : undefined, at: Date.now() })
        )
      ),
      Effect.forkScoped
    )
    return seen
  })

const segmentsOf = (sim: AvatarSimulator.Service, session: AvatarSession.AvatarSession) =>
  sim.playback(session.sessionId)

/** The simulator's segments once `count` of them have ended. */
const ended = (sim: AvatarSimulator.Service, session: AvatarSession.AvatarSession, count: number) =>
  eventually(
    segmentsOf(sim, session),
    (s) => s.length >= count && s.slice(0, count).every((segment) => !segment.playing),
    8000
  )

const within = (actual: number, expected: number, tolerance: number) =>
  expect(Math.abs(actual - expected), `${actual} against ${expected}`).toBeLessThanOrEqual(tolerance)

describe("turn-taking against the simulator's player", () => {
  for (const [name, faults] of [
    ["events on", {}],
    ["events off", { noAudioEvents: true }]
  ] as const) {
    it.live(`speaking follows the avatar's playback, with ${name}`, () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ instances: [{ faults }] })
        const client = yield* clientFor(sim)
        const session = yield* client.session({ avatarId: AVATAR, lead: "200 millis" })
        const seen = yield* watchSpeaking(session)
        const utterance = yield* session.say(Stream.make(pcm(32_000)))
        yield* utterance.played
        const [segment] = yield* ended(sim, session, 1)
        const start = seen.find((c) => c.tag === "Speaking")!
        yield* eventually(
          Effect.sync(() => seen.at(-1)!.tag),
          (tag) => tag === "Silent" && seen.length > 2
        )
        const stop = seen.at(-1)!
        expect(start.utterance).toBe(utterance.id)
        within(start.at, segment!.startedAt, FRAME + SLACK)
        within(stop.at, segment!.endedAt, FRAME + SLACK)
        // one stretch of speech: no flicker in between
        expect(seen.filter((c) => c.tag === "Speaking")).toHaveLength(1)
      }).pipe(Effect.scoped)
    )
  }

  it.live("with events delayed, speaking follows them once they come, and the measured delay includes theirs", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { audioEventDelay: "200 millis" } }] })
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR })
      const events: Array<{ readonly event: string; readonly at: number }> = []
      yield* session.events.pipe(
        Stream.runForEach((m) =>
          Effect.sync(() => {
            if (m.type === "event") events.push({ event: m.pld.event, at: Date.now() })
          })
        ),
        Effect.forkScoped
      )
      // before the first audio_start the model speaks for the avatar; the events take over then
      yield* (yield* session.say(Stream.make(pcm(16_000)))).played
      yield* eventually(
        Effect.sync(() => events.length),
        (n) => n >= 2
      )
      const seen = yield* watchSpeaking(session)
      const second = yield* session.say(Stream.make(pcm(16_000, 2)))
      yield* second.played
      yield* eventually(
        Effect.sync(() => events.length),
        (n) => n >= 4
      )
      yield* eventually(
        Effect.sync(() => seen.length),
        (n) => n >= 3
      )
      const start = seen.find((c) => c.tag === "Speaking")!
      expect(start.utterance).toBe(second.id)
      within(start.at, events[2]!.at, FRAME)
      within(seen[2]!.at, events[3]!.at, FRAME)
      const info = yield* session.info
      expect(info.playback.measured).toBe(true)
      // the simulator's 100 ms jitter buffer and the 200 ms the events were held back
      within(info.playback.playoutDelayMs, 300, SLACK)
    }).pipe(Effect.scoped)
  )

  for (const pacing of ["realtime", "none"] as const) {
    it.live(`played completes when the avatar has spoken the last frame (pacing ${pacing})`, () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        const client = yield* clientFor(sim)
        const session = yield* client.session({ avatarId: AVATAR, pacing })
        const utterance = yield* session.say(Stream.make(pcm(48_000)))
        const outcome = yield* utterance.played
        const doneAt = Date.now()
        expect(outcome).toStrictEqual({ interrupted: false, playedMs: 1500, durationMs: 1500 })
        const [segment] = yield* segmentsOf(sim, session)
        // not before the avatar finished, and within a frame (and the slack) of it
        expect(doneAt).toBeGreaterThanOrEqual(segment!.endedAt - FRAME)
        within(doneAt, segment!.endedAt, FRAME + SLACK)
      }).pipe(Effect.scoped)
    )
  }

  it.live("two utterances with a gap between them: two stretches of speech, each played in turn", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, lead: "200 millis" })
      const seen = yield* watchSpeaking(session)
      const first = yield* session.say(Stream.make(pcm(19_200)))
      expect(yield* first.played).toMatchObject({ interrupted: false, playedMs: 600 })
      yield* Effect.sleep("300 millis")
      const second = yield* session.say(Stream.make(pcm(12_800, 2)))
      expect(yield* second.played).toMatchObject({ interrupted: false, playedMs: 400 })
      const segments = yield* ended(sim, session, 2)
      expect(segments.map((s) => s.playedMs)).toStrictEqual([600, 400])
      const starts = seen.filter((c) => c.tag === "Speaking")
      expect(starts.map((c) => c.utterance)).toStrictEqual([first.id, second.id])
      within(starts[1]!.at, segments[1]!.startedAt, FRAME + SLACK)
    }).pipe(Effect.scoped)
  )

  for (const [name, faults] of [
    ["events on", {}],
    ["events off", { noAudioEvents: true }]
  ] as const) {
    it.live(`what an interrupt says was heard is what the avatar played, at several points (${name})`, () =>
      Effect.gen(function* () {
        const lag = yield* eventLoopLag
        const sim = yield* AvatarSimulator.make({ instances: [{ faults }] })
        const client = yield* clientFor(sim)
        const session = yield* client.session({ avatarId: AVATAR, lead: "200 millis" })
        for (const [i, after] of [300, 900, 1500].entries()) {
          const utterance = yield* session.say(Stream.make(pcm(64_000, i + 1)))
          yield* Effect.sleep(`${after} millis`)
          const heard = yield* session.interrupt
          const segments = yield* ended(sim, session, i + 1)
          const truth = segments[i]!
          expect(truth.interrupted).toBe(true)
          expect(heard.utterance).toBe(utterance.id)
          // A frame and the allowance, at least 20 ms: before a heartbeat has measured the
          // one-way time, the first confirmation counts its own return trip as link delay (up
          // to 24 ms seen under load).
          const tolerance = FRAME + allowance(lag)
          within(heard.playedMs, truth.playedMs, tolerance)
          within(heard.unplayedMs, 2000 - truth.playedMs, tolerance)
          expect(yield* utterance.played).toMatchObject({ interrupted: true, playedMs: heard.playedMs })
          expect((yield* SubscriptionRef.get(session.speaking))._tag).toBe("Silent")
        }
      }).pipe(Effect.scoped)
    )
  }

  it.live(
    "a service slower than the configured playout delay: the first audio_start corrects the first utterance already",
    () =>
      Effect.gen(function* () {
        const lag = yield* eventLoopLag
        // the avatar starts 350 ms after the audio arrives; the session expects 100 ms
        const sim = yield* AvatarSimulator.make({ playoutDelay: "350 millis" })
        const client = yield* clientFor(sim)
        const session = yield* client.session({ avatarId: AVATAR, lead: "200 millis" })
        const utterance = yield* session.say(Stream.make(pcm(64_000)))
        yield* Effect.sleep("1 second")
        const heard = yield* session.interrupt
        const [truth] = yield* ended(sim, session, 1)
        expect(truth!.interrupted).toBe(true)
        expect(heard.utterance).toBe(utterance.id)
        within(heard.playedMs, truth!.playedMs, FRAME + allowance(lag))
        const info = yield* session.info
        expect(info.playback.measured).toBe(true)
        within(info.playback.playoutDelayMs, 350, allowance(lag))
      }).pipe(Effect.scoped)
  )

  it.live(
    "a drop before an utterance's audio_start: the next utterance, on the new connection, is placed by its own event",
    () =>
      Effect.gen(function* () {
        const lag = yield* eventLoopLag
        const sim = yield* AvatarSimulator.make({ playoutDelay: "300 millis" })
        const client = yield* clientFor(sim)
        const session = yield* client.session({ avatarId: AVATAR, playoutDelay: "300 millis" })
        const first = yield* session.say(Stream.make(pcm(3200)))
        yield* first.written
        // the connection dies before the avatar begins it: its audio_start goes with the connection
        yield* Effect.sleep("30 millis")
        yield* sim.setFaults(0, { tooSoon: 1 })
        yield* sim.dropAll({ mode: "terminate" })
        yield* eventually(session.info, (i) => i.reconnects >= 1 && i.connected)
        const second = yield* session.say(Stream.make(pcm(64_000, 2)))
        yield* Effect.sleep("800 millis")
        const heard = yield* session.interrupt
        const segments = yield* eventually(segmentsOf(sim, session), (s) => s.some((x) => x.interrupted))
        const truth = segments.find((x) => x.interrupted)!
        expect(heard.utterance).toBe(second.id)
        within(heard.playedMs, truth.playedMs, FRAME + allowance(lag))
      }).pipe(Effect.scoped)
  )

  it.live("the producer stalls for 500 ms: silent in the gap, speaking again after, the duration only audio", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      // a lead of a few frames, so that a late timer on a loaded machine is no underrun of its own
      const session = yield* client.session({ avatarId: AVATAR, lead: "200 millis" })
      const seen = yield* watchSpeaking(session)
      const speech = Stream.concat(
        Stream.make(pcm(15_360)),
        Stream.fromEffect(Effect.sleep("1 second").pipe(Effect.as(pcm(15_360, 2))))
      )
      const utterance = yield* session.say(speech)
      expect(yield* utterance.played).toStrictEqual({ interrupted: false, playedMs: 960, durationMs: 960 })
      const segments = yield* ended(sim, session, 2)
      expect(segments.map((s) => s.playedMs)).toStrictEqual([480, 480])
      yield* eventually(
        Effect.sync(() => seen.length),
        (n) => n >= 5
      )
      expect(seen.map((c) => c.tag)).toStrictEqual(["Silent", "Speaking", "Silent", "Speaking", "Silent"])
      within(seen[2]!.at, segments[0]!.endedAt, FRAME + SLACK)
      within(seen[3]!.at, segments[1]!.startedAt, FRAME + SLACK)
    }).pipe(Effect.scoped)
  )

  it.live("across a reconnect, frames the server never confirmed are not counted as played", () =>
    Effect.gen(function* () {
      // the connection dies after 30 frames, without a close frame: what followed them is lost
      const sim = yield* AvatarSimulator.make({
        instances: [{ faults: { dropAfterFrames: { frames: 30, mode: "terminate" } } }]
      })
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
      const utterance = yield* session.say(Stream.make(pcm(32_000 * 3)))
      const outcome = yield* utterance.played
      const info = yield* eventually(session.info, (i) => i.reconnects >= 1)
      const segments = yield* eventually(segmentsOf(sim, session), (s) => s.length > 0 && s.every((x) => !x.playing))
      // the utterance is over only once what the avatar may still have been playing has ended
      expect(Date.now()).toBeGreaterThanOrEqual(segments.at(-1)!.endedAt - FRAME - SLACK)
      const truth = segments.reduce((ms, s) => ms + s.playedMs, 0)
      // never more than the avatar really played; less by at most what was never confirmed
      expect(outcome.playedMs).toBeLessThanOrEqual(truth)
      expect(truth - outcome.playedMs).toBeLessThanOrEqual(info.audio.framesUnconfirmed * FRAME)
      // everything was written; what was lost with the connection counts as written, not heard
      expect(outcome.durationMs).toBe(3000)
    }).pipe(Effect.scoped)
  )
})

/** A TCP proxy to `port` that lets at most `bytesPerSecond` through towards the server. */
const slowLink = (port: number, bytesPerSecond: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly server: Net.Server }>((resume) => {
      const server = Net.createServer((client) => {
        const upstream = Net.connect(port, "127.0.0.1")
        const queue: Array<Buffer> = []
        const tick = 10
        const timer = setInterval(() => {
          let budget = (bytesPerSecond * tick) / 1000
          while (budget > 0 && queue.length > 0) {
            const head = queue[0]!
            const take = head.subarray(0, budget)
            upstream.write(take)
            budget -= take.byteLength
            if (take.byteLength === head.byteLength) queue.shift()
            else queue[0] = head.subarray(take.byteLength)
          }
        }, tick)
        client.on("data", (data) => queue.push(data))
        upstream.pipe(client)
        const end = () => {
          clearInterval(timer)
          client.destroy()
          upstream.destroy()
        }
        client.on("close", end)
        upstream.on("close", end)
        client.on("error", end)
        upstream.on("error", end)
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({ port: (server.address() as Net.AddressInfo).port, server }))
      )
    }),
    ({ server }) => Effect.sync(() => server.close())
  )

/** A simulator whose discovery sends sessions through a link of `bytesPerSecond`, and an unpaced session through it. */
const throughSlowLink = (bytesPerSecond: number) =>
  Effect.gen(function* () {
    const sim = yield* AvatarSimulator.make()
    const [instance] = sim.instances
    const proxy = yield* slowLink(instance!.port, bytesPerSecond)
    yield* sim.setDiscovery({
      body: {
        code: 1000,
        msg: "ok",
        data: {
          instances: [{ ip: "127.0.0.1", port: proxy.port, avatar_id: AVATAR, status: "available", healthy: true }]
        }
      }
    })
    const client = yield* clientFor(sim)
    const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
    return { sim, session }
  })

describe("turn-taking on a slow link", () => {
  it.live("what the kernel held back is not heard early: played follows the server, not the writer", () =>
    Effect.gen(function* () {
      const { sim, session } = yield* throughSlowLink(25_000)
      const utterance = yield* session.say(Stream.make(pcm(32_000)))
      yield* utterance.written
      const writtenAt = Date.now()
      const outcome = yield* utterance.played
      const doneAt = Date.now()
      // the link is slower than real time: the avatar plays what trickles in, with gaps
      const segments = yield* eventually(
        segmentsOf(sim, session),
        (s) => s.reduce((ms, x) => ms + x.playedMs, 0) >= 1000 && s.every((x) => !x.playing),
        8000
      )
      const last = segments.at(-1)!
      // about 43 KB of messages at 25 KB/s: the avatar finished long after the writer did
      expect(last.endedAt - writtenAt).toBeGreaterThan(1500)
      expect(outcome).toMatchObject({ interrupted: false, playedMs: 1000 })
      // the arrival of frames inside a batch is estimated (evenly spread): a frame's worth of error
      expect(doneAt).toBeGreaterThanOrEqual(last.endedAt - FRAME - SLACK)
      within(doneAt, last.endedAt, 4 * FRAME + SLACK)
    }).pipe(Effect.scoped)
  )

  it.live("an interrupt behind what the kernel still holds: what it says was heard is what the avatar played", () =>
    Effect.gen(function* () {
      const lag = yield* eventLoopLag
      // twice real time: the avatar plays without a gap while the link is still busy
      const { sim, session } = yield* throughSlowLink(90_000)
      // three seconds, about 130 KB of messages: all written at once, a second and a half to go through
      const utterance = yield* session.say(Stream.make(pcm(96_000)))
      yield* utterance.written
      yield* Effect.sleep("500 millis")
      // the interrupt reaches the server behind what the kernel and the link still hold
      const heard = yield* session.interrupt
      const segments = yield* ended(sim, session, 1)
      const truth = segments.reduce((ms, s) => ms + s.playedMs, 0)
      expect(segments.at(-1)!.interrupted).toBe(true)
      expect(heard.utterance).toBe(utterance.id)
      // the arrival of frames inside a batch is estimated (evenly spread): a frame's worth of error
      within(heard.playedMs, truth, 2 * FRAME + allowance(lag))
      expect(heard.playedMs + heard.unplayedMs).toBe(3000)
    }).pipe(Effect.scoped)
  )
})

describe("an utterance when the session closes under it", () => {
  it.live("written and played end with session-closed, and session.errors ends", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const scope = yield* Scope.make()
      const session = yield* Scope.extend(client.session({ avatarId: AVATAR }), scope)
      const errors = yield* Effect.fork(Stream.runCollect(session.errors))
      const utterance = yield* session.say(Stream.make(pcm(32_000 * 5)))
      yield* Effect.sleep("300 millis")
      yield* Scope.close(scope, Exit.void)
      const written = yield* Effect.flip(utterance.written).pipe(Effect.timeout("2 seconds"))
      expect(written).toMatchObject({ _tag: "AudioStreamError", reason: "session-closed" })
      const played = yield* Effect.flip(utterance.played).pipe(Effect.timeout("2 seconds"))
      expect(played).toMatchObject({ _tag: "AudioStreamError", reason: "session-closed" })
      expect(Chunk.size(yield* Fiber.join(errors).pipe(Effect.timeout("2 seconds")))).toBe(0)
      expect((yield* SubscriptionRef.get(session.speaking))._tag).toBe("Silent")
    }).pipe(Effect.scoped)
  )
})
