/**
 * The simulator's virtual player, over real sockets with a plain `ws` client: what it plays,
 * when it says `audio_start` and `audio_end`, and what it records. The timings are measured
 * on the real clock, against the moments the simulator itself recorded.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import WebSocket from "ws"
import * as AvatarSimulator from "../src/AvatarSimulator.js"
import * as Protocol from "../src/Protocol.js"

/** 40 ms of PCM s16le at 16 kHz. */
const FRAME = 1280
const FRAME_MS = 40
/**
 * How far an event may arrive from the moment it describes: a timer, a tick, loopback, on a
 * machine that may be busy (the figures printed are typically 0 to 5 ms).
 */
const SLACK_MS = 50

interface Arrived {
  readonly type: string
  readonly event: string | undefined
  /** `Date.now()` when it arrived: the simulator's live clock is the same one. */
  readonly at: number
}

interface Client {
  readonly received: ReadonlyArray<Arrived>
  /** The `audio_start` and `audio_end` events, in order. */
  readonly events: () => ReadonlyArray<Arrived>
  /** Sends `frames` chat frames of 40 ms at once; returns `Date.now()` before the first. */
  readonly chat: (frames: number) => Effect.Effect<number>
  readonly interrupt: Effect.Effect<number>
  readonly ws: WebSocket
}

let mids = 0

/** A plain client, as a foreign one would be, ready once `websocket_connected` has come. */
const connect = (sim: AvatarSimulator.Service, sessionId: string, instance = 0) =>
  Effect.gen(function* () {
    const received: Array<Arrived> = []
    const info = sim.instances[instance]!
    const ws = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const query = new URLSearchParams({ session_id: sessionId, avatar_id: info.avatarId })
        const ws = new WebSocket(`ws://${info.host}:${info.port}${AvatarSimulator.WEBSOCKET_PATH}?${query}`, {
          headers: { api_key: "playback-test-key" }
        })
        ws.on("message", (data) => {
          const json = JSON.parse(String(data)) as { type: string; pld: { event?: string } }
          received.push({ type: json.type, event: json.pld.event, at: Date.now() })
        })
        ws.on("error", () => {})
        return ws
      }),
      (ws) => Effect.sync(() => ws.terminate())
    )
    yield* until(() => received.some((m) => m.type === "system"))
    const send = (message: string) => Effect.sync(() => ws.send(message))
    const client: Client = {
      received,
      events: () => received.filter((m) => m.type === "event"),
      chat: (frames) =>
        Effect.gen(function* () {
          const at = Date.now()
          for (let i = 0; i < frames; i++) {
            yield* send(Protocol.encodeChat(`m${++mids}`, Buffer.alloc(FRAME, i).toString("base64")))
          }
          return at
        }),
      interrupt: Effect.suspend(() => {
        const at = Date.now()
        return Effect.as(send(JSON.stringify(Protocol.interrupt(`m${++mids}`))), at)
      }),
      ws
    }
    return client
  })

/** Polls on the real clock until `check` holds, for at most five seconds. */
const holds = <R>(check: Effect.Effect<boolean, never, R>, timeoutMs = 5000) =>
  Effect.gen(function* () {
    const start = Date.now()
    while (!(yield* check)) {
      if (Date.now() - start > timeoutMs) return yield* Effect.dieMessage(`not reached within ${timeoutMs} ms`)
      yield* Effect.sleep("2 millis").pipe(TestServices.provideLive)
    }
  })

const until = (check: () => boolean) => holds(Effect.sync(check))

const sleep = (millis: number) => Effect.sleep(`${millis} millis`).pipe(TestServices.provideLive)

/** When the simulator read the session's chat frames, from its record. */
const arrivals = (sim: AvatarSimulator.Service, sessionId: string) =>
  Effect.map(sim.sessions, (sessions) =>
    sessions.filter((s) => s.sessionId === sessionId).flatMap((s) => s.frames.map((f) => f.at))
  )

/** The measured figures, printed for the record. */
const report = (name: string, figures: Record<string, number>) =>
  Effect.sync(() =>
    console.log(
      `[playback accuracy] ${name}: ${Object.entries(figures)
        .map(([k, v]) => `${k} ${Math.round(v * 10) / 10}`)
        .join(", ")}`
    )
  )

const names = (events: ReadonlyArray<Arrived>) => events.map((e) => e.event)

describe("the simulator's player", () => {
  it.scopedLive("plays 1 s sent at once from first arrival + playoutDelay, at real time, and says so", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* connect(sim, "one-second")
      const sentAt = yield* client.chat(25)
      yield* until(() => client.events().length === 2)
      const [start, end] = client.events()
      expect(names(client.events())).toEqual(["audio_start", "audio_end"])
      const [first] = yield* arrivals(sim, "one-second")
      const [segment, ...more] = yield* sim.playback("one-second")
      expect(more).toEqual([])
      expect(segment).toMatchObject({ interrupted: false, playing: false, frames: 25 })
      // the player's own accuracy: the audio received, played where it was due
      expect(Math.abs(segment!.playedMs - 1000)).toBeLessThanOrEqual(FRAME_MS)
      expect(segment!.playedMs).toBe(1000)
      expect(segment!.startedAt - (first! + 100)).toBeGreaterThanOrEqual(0)
      expect(segment!.startedAt - (first! + 100)).toBeLessThanOrEqual(3)
      expect(segment!.endedAt).toBe(segment!.startedAt + 1000)
      // and said when it happened: about playoutDelay after the first frame, then 1 s later
      expect(Math.abs(start!.at - (sentAt + 100))).toBeLessThanOrEqual(SLACK_MS)
      expect(Math.abs(end!.at - start!.at - 1000)).toBeLessThanOrEqual(SLACK_MS)
      expect(start!.at).toBeGreaterThanOrEqual(Math.floor(segment!.startedAt))
      expect(end!.at).toBeGreaterThanOrEqual(Math.floor(segment!.endedAt))
      yield* report("1 s at once", {
        "startedAt - (first arrival + 100)": segment!.startedAt - (first! + 100),
        "first arrival - client send": first! - sentAt,
        "audio_start arrival - startedAt": start!.at - segment!.startedAt,
        "audio_end arrival - endedAt": end!.at - segment!.endedAt,
        playedMs: segment!.playedMs
      })
    })
  )

  it.scopedLive("two bursts with a 500 ms gap are two segments, each announced", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* connect(sim, "two-bursts")
      const firstAt = yield* client.chat(10) // 400 ms, plays until about firstAt + 500
      yield* sleep(firstAt + 900 - Date.now()) // the second then plays from about firstAt + 1000
      yield* client.chat(5)
      yield* until(() => client.events().length === 4)
      expect(names(client.events())).toEqual(["audio_start", "audio_end", "audio_start", "audio_end"])
      const segments = yield* sim.playback("two-bursts")
      expect(segments.map((s) => [s.playedMs, s.frames, s.interrupted])).toEqual([
        [400, 10, false],
        [200, 5, false]
      ])
      const gap = segments[1]!.startedAt - segments[0]!.endedAt
      expect(Math.abs(gap - 500)).toBeLessThanOrEqual(SLACK_MS)
      const [, end1, start2] = client.events()
      expect(Math.abs(start2!.at - end1!.at - gap)).toBeLessThanOrEqual(SLACK_MS)
      yield* report("two bursts", { "silence between segments": gap })
    })
  )

  it.scopedLive("a frame that arrives while audio plays follows it; after the buffer ran dry, the delay again", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* connect(sim, "jitter")
      const firstAt = yield* client.chat(10) // 400 ms, plays until about firstAt + 500
      // read while the first still plays: it follows at once, in the same segment
      yield* sleep(firstAt + 450 - Date.now())
      yield* client.chat(5)
      // read after all of it played (about firstAt + 700): a new segment, a playout delay later
      yield* sleep(firstAt + 800 - Date.now())
      const thirdAt = yield* client.chat(5)
      yield* until(() => client.events().length === 4)
      expect(names(client.events())).toEqual(["audio_start", "audio_end", "audio_start", "audio_end"])
      const segments = yield* sim.playback("jitter")
      expect(segments.map((s) => [s.playedMs, s.frames])).toEqual([
        [600, 15],
        [200, 5]
      ])
      expect(Math.abs(segments[1]!.startedAt - (thirdAt + 100))).toBeLessThanOrEqual(SLACK_MS)
      yield* report("jitter buffer", { "second segment starts after its arrival": segments[1]!.startedAt - thirdAt })
    })
  )

  it.scopedLive("paced in real time (a frame every 40 ms) it is one segment, ending after the last frame", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* connect(sim, "paced")
      // Like the SDK's outbox it keeps a lead, here one frame: frames 0 and 1 at once, then
      // one every 40 ms, on absolute deadlines so that lateness does not add up.
      const t0 = yield* client.chat(2)
      for (let i = 2; i < 25; i++) {
        yield* sleep(t0 + (i - 1) * FRAME_MS - Date.now())
        yield* client.chat(1)
      }
      yield* until(() => client.events().length >= 2)
      yield* sleep(150) // a segment that split would have announced itself by now
      expect(names(client.events())).toEqual(["audio_start", "audio_end"])
      const at = yield* arrivals(sim, "paced")
      const [segment, ...more] = yield* sim.playback("paced")
      expect(more).toEqual([])
      expect(segment).toMatchObject({ playedMs: 1000, frames: 25, interrupted: false })
      expect(segment!.startedAt).toBe(at[0]! + 100)
      expect(segment!.endedAt).toBeGreaterThanOrEqual(at[24]! + FRAME_MS)
      const end = client.events()[1]!
      expect(end.at).toBeGreaterThanOrEqual(Math.floor(segment!.endedAt))
      expect(end.at - segment!.endedAt).toBeLessThanOrEqual(SLACK_MS)
      const lateness = at.slice(1).map((a, i) => a - (at[0]! + i * FRAME_MS))
      yield* report("paced", {
        "latest frame vs its schedule": Math.max(...lateness),
        "buffer left at the last frame": segment!.endedAt - FRAME_MS - at[24]!,
        "audio_end arrival - endedAt": end.at - segment!.endedAt
      })
    })
  )

  it.scopedLive("an interrupt half way cuts the segment where it stands and discards the jitter buffer", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* connect(sim, "cut")
      yield* client.chat(25)
      yield* until(() => client.events().length === 1)
      const heardAt = client.events()[0]!.at
      yield* sleep(heardAt + 480 - Date.now())
      const interruptAt = yield* client.interrupt
      yield* until(() => client.events().length === 2)
      const end = client.events()[1]!
      expect(end.event).toBe("audio_end")
      const [cut] = yield* sim.playback("cut")
      const [record] = yield* sim.sessions
      const readAt = record!.commands.find((c) => c.cmd === "interrupt")!.at
      expect(cut).toMatchObject({ interrupted: true, playing: false, endedAt: readAt })
      expect(cut!.playedMs).toBe(readAt - cut!.startedAt)
      // what the client saw: from audio_start to its interrupt, within a frame
      expect(Math.abs(cut!.playedMs - (interruptAt - heardAt))).toBeLessThanOrEqual(FRAME_MS)
      // the frames played, the cut one included; the rest were discarded
      expect(cut!.frames).toBe(Math.ceil(cut!.playedMs / FRAME_MS))
      expect(end.at - readAt).toBeLessThanOrEqual(SLACK_MS)
      // what the buffer held never plays: no second audio_end at the segment's old end
      yield* sleep(cut!.startedAt + 1000 + 100 - Date.now())
      expect(client.events()).toHaveLength(2)
      expect(yield* sim.playback("cut")).toHaveLength(1)
      // what comes after the interrupt plays normally, in a segment of its own
      yield* client.chat(5)
      yield* until(() => client.events().length === 4)
      const segments = yield* sim.playback("cut")
      expect(segments).toHaveLength(2)
      expect(segments[1]).toMatchObject({ playedMs: 200, frames: 5, interrupted: false })
      const after = (yield* arrivals(sim, "cut"))[25]!
      expect(segments[1]!.startedAt).toBe(after + 100)
      yield* report("interrupt", {
        playedMs: cut!.playedMs,
        "client's view (interrupt sent - audio_start arrival)": interruptAt - heardAt,
        "audio_end arrival - interrupt read": end.at - readAt,
        frames: cut!.frames
      })
    })
  )

  it.scopedLive("noAudioEvents plays and records without a word; audioEventDelay says it 200 ms late", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { noAudioEvents: true } }, {}] })
      const quiet = yield* connect(sim, "quiet", 0)
      yield* quiet.chat(5)
      yield* holds(Effect.map(sim.playback("quiet"), (played) => played.some((s) => !s.playing)))
      yield* sleep(50)
      expect(quiet.events()).toEqual([])
      expect(yield* sim.playback("quiet")).toMatchObject([{ playedMs: 200, frames: 5, interrupted: false }])

      yield* sim.setFaults(1, { audioEventDelay: 200 })
      const late = yield* connect(sim, "late", 1)
      yield* late.chat(5)
      yield* until(() => late.events().length === 2)
      const [segment] = yield* sim.playback("late")
      const [start, end] = late.events()
      expect(Math.abs(start!.at - segment!.startedAt - 200)).toBeLessThanOrEqual(SLACK_MS)
      expect(Math.abs(end!.at - segment!.endedAt - 200)).toBeLessThanOrEqual(SLACK_MS)
      expect(start!.at).toBeGreaterThanOrEqual(Math.floor(segment!.startedAt + 200))
      yield* report("audioEventDelay 200", {
        "audio_start arrival - startedAt": start!.at - segment!.startedAt,
        "audio_end arrival - endedAt": end!.at - segment!.endedAt
      })
    })
  )

  it.scopedLive("the player is the session's: it survives a reconnect and speaks on the new connection", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ recordAudio: false })
      const first = yield* connect(sim, "moving")
      yield* first.chat(15) // 600 ms
      yield* until(() => first.events().length === 1)
      yield* sim.dropAll()
      const second = yield* connect(sim, "moving")
      yield* until(() => second.events().length === 1)
      expect(names(second.events())).toEqual(["audio_end"])
      expect(names(first.events())).toEqual(["audio_start"])
      // recordAudio off keeps no frame, and changes nothing in the player
      expect((yield* sim.sessions)[0]!.frames).toEqual([])
      expect(yield* sim.playback("moving")).toMatchObject([{ playedMs: 600, frames: 15, interrupted: false }])
      expect(yield* sim.playback("never-seen")).toEqual([])
    })
  )

  it.scoped("runs on the simulator's clock: under the TestClock it plays in test time, exactly", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ playoutDelay: "250 millis" })
      const client = yield* connect(sim, "test-time")
      yield* TestClock.adjust("1 second")
      yield* client.chat(25)
      yield* holds(Effect.map(sim.sessions, (s) => s[0]!.frameCount === 25))
      yield* holds(Effect.map(TestClock.sleeps(), (sleeps) => Chunk.size(sleeps) > 0))
      expect(yield* sim.playback("test-time")).toEqual([])
      yield* TestClock.adjust("250 millis")
      yield* until(() => client.events().length === 1)
      expect(yield* sim.playback("test-time")).toEqual([
        { startedAt: 1250, endedAt: 2250, playedMs: 0, interrupted: false, frames: 25, playing: true }
      ])
      yield* TestClock.adjust("400 millis")
      expect((yield* sim.playback("test-time"))[0]).toMatchObject({ playedMs: 400, playing: true })
      yield* TestClock.adjust("600 millis")
      yield* until(() => client.events().length === 2)
      expect(yield* sim.playback("test-time")).toEqual([
        { startedAt: 1250, endedAt: 2250, playedMs: 1000, interrupted: false, frames: 25, playing: false }
      ])
    })
  )

  it.scoped("an interrupt discards a segment waiting in the jitter buffer, and counts only the frames played", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* connect(sim, "queued")
      const read = (frames: number) => holds(Effect.map(sim.sessions, (s) => s[0]!.frameCount === frames))
      yield* client.chat(5) // read at 0: plays 100 to 300
      yield* read(5)
      yield* TestClock.adjust("210 millis")
      yield* client.chat(2) // read at 210: due at 310, after a gap of 10 ms: a segment of its own
      yield* read(7)
      yield* TestClock.adjust("20 millis")
      yield* client.interrupt // read at 230: frames started at 100, 140, 180 and 220 have played
      yield* holds(Effect.map(sim.sessions, (s) => s[0]!.commands.length === 1))
      yield* until(() => client.events().length === 2)
      // the buffer is empty: what comes next plays a playout delay after it is read
      yield* TestClock.adjust("10 millis")
      yield* client.chat(1) // read at 240: plays 340 to 380
      yield* read(8)
      yield* TestClock.adjust("1 second")
      yield* until(() => client.events().length === 4)
      yield* sleep(30)
      expect(names(client.events())).toEqual(["audio_start", "audio_end", "audio_start", "audio_end"])
      expect(yield* sim.playback("queued")).toEqual([
        { startedAt: 100, endedAt: 230, playedMs: 130, interrupted: true, frames: 4, playing: false },
        { startedAt: 340, endedAt: 380, playedMs: 40, interrupted: false, frames: 1, playing: false }
      ])
    })
  )

  it.scopedLive("judges its switches like the other faults: a value it cannot act on is a defect", () =>
    Effect.gen(function* () {
      const dies = <A, E>(effect: Effect.Effect<A, E>, message: string) =>
        Effect.map(Effect.exit(effect), (exit) => {
          expect(Exit.isFailure(exit) && exit.cause._tag === "Die").toBe(true)
          expect(String(Exit.isFailure(exit) && exit.cause._tag === "Die" ? exit.cause.defect : "")).toContain(message)
        })
      yield* dies(
        Effect.scoped(AvatarSimulator.make({ playoutDelay: -1 })),
        "AvatarSimulator.make: playoutDelay: -1 is not a duration"
      )
      const sim = yield* AvatarSimulator.make()
      yield* dies(sim.setFaults(0, { audioEventDelay: -5 }), "audioEventDelay: -5 is not a duration")
      yield* dies(
        sim.setFaults(0, { noAudioEvents: "yes" as unknown as boolean }),
        'noAudioEvents: "yes" is not true or false'
      )
      yield* sim.setFaults(0, { noAudioEvents: false, audioEventDelay: "1 second" })
    })
  )
})
