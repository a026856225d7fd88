/**
 * One test per fault of the simulator: what a user sees (the state sequence, the typed
 * error) and the exact audio that arrived (bytes, order, nothing twice, nothing missing but
 * the frames the session reported as unconfirmed).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { type AvatarClient, type AvatarSession, AvatarSimulator } from "../src/index.js"
import { agora, clientFor, drained, eventually, expectOrderedSubset, fastRetry, pcm } from "./support.js"

const AVATAR = AvatarSimulator.DEFAULT_AVATAR_ID

/** Opens a session and records every state it goes through. */
const open = (client: AvatarClient.Service, options: AvatarSession.Options) =>
  Effect.gen(function* () {
    const session = yield* client.session({ avatarId: AVATAR, retry: fastRetry(4), ...options })
    const states: Array<AvatarSession.SessionState> = []
    yield* session.state.changes.pipe(
      Stream.runForEach((s) => Effect.sync(() => states.push(s))),
      Effect.forkScoped
    )
    return { session, states, tags: () => states.map((s) => s._tag) }
  })

/** Streams `seconds` of distinct frames and returns what was sent. */
const speak = (session: AvatarSession.AvatarSession, seconds: number, seed = 1) =>
  Effect.gen(function* () {
    const audio = pcm(32_000 * seconds, seed)
    yield* Stream.run(Stream.make(audio), session.audio)
    return audio
  })

describe("resilience: drops", () => {
  for (const mode of ["close", "terminate"] as const) {
    it.live(`a drop after N frames (${mode}) reconnects and resumes; queued frames go out in order`, () =>
      Effect.gen(function* () {
        // both instances drop every connection after 30 frames: 75 frames need three connections
        const faults = { dropAfterFrames: { frames: 30, mode } }
        const sim = yield* AvatarSimulator.make({ instances: [{ faults }, { faults }] })
        const client = yield* clientFor(sim)
        const { session, tags, states } = yield* open(client, { lead: "200 millis", outboxCapacity: 100 })
        yield* session.setParams({ agora })
        const audio = yield* speak(session, 3)
        const info = yield* session.info
        expect(tags()).toContain("Reconnecting")
        expect(tags().at(-1)).toBe("Ready")
        const reconnecting = states.find((s) => s._tag === "Reconnecting")
        expect(reconnecting).toMatchObject({
          cause: { _tag: "ConnectionError", reason: "closed", code: mode === "close" ? 1011 : 1006 }
        })
        expect(info.reconnects).toBe(2)
        expect(info.agoraConnected).toBe(true)
        expect(info.audio).toMatchObject({ framesAccepted: 75, framesWritten: 75, framesQueued: 0 })
        const received = yield* drained(sim, session)
        expectOrderedSubset(received, audio, info.audio.framesUnconfirmed)
        const records = yield* sim.sessions
        expect(records[0]!.frameCount).toBe(30)
        expect(records[0]!.dropped).toBe(true)
        // the params were applied again on every new connection
        for (const record of records.slice(1)) expect(record.commands[0]?.cmd).toBe("set-params")
      }).pipe(Effect.scoped)
    )
  }

  it.live("a clean close never reconnects", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const { session } = yield* open(client, { pacing: "none" })
          yield* speak(session, 1)
        })
      )
      yield* Effect.sleep("100 millis")
      expect(yield* sim.sessions).toHaveLength(1)
      expect((yield* sim.sessions)[0]!.closeCode).toBe(1000)
    }).pipe(Effect.scoped)
  )

  it.live("a reconnect refused with 4001 ends the session with an authentication error, without retrying", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const { session, tags } = yield* open(client, { lead: "200 millis" })
      const speaking = yield* Effect.fork(speak(session, 3))
      yield* eventually(session.info, (i) => i.audio.framesWritten > 5)
      yield* sim.setFaults(0, { refuseFirst: { code: 4001, attempts: 10 } })
      yield* sim.drop(0, { code: 1011 })
      const error = yield* Effect.flip(Fiber.join(speaking))
      expect(error).toMatchObject({ _tag: "AudioStreamError", reason: "session-closed" })
      expect(yield* Effect.flip(session.await)).toMatchObject({ _tag: "AuthenticationError" })
      expect(tags()).toStrictEqual(["Ready", "Streaming", "Reconnecting", "Closed"])
      expect(yield* sim.sessions).toHaveLength(2)
    }).pipe(Effect.scoped)
  )

  it.live("a command in flight when the connection drops fails with a typed, readable error", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { noAck: true } }] })
      const client = yield* clientFor(sim, { leaveTimeout: "50 millis" })
      const { session } = yield* open(client, {})
      const waiting = yield* Effect.fork(session.interrupt)
      yield* eventually(sim.sessions, (s) => s[0]!.commands.length === 1)
      yield* sim.drop(0, { code: 1011 })
      const error = yield* Effect.flip(Fiber.join(waiting))
      expect(error).toMatchObject({ _tag: "CommandError", reason: "disconnected", command: "interrupt" })
      expect(error.message).toContain("1011")
    }).pipe(Effect.scoped)
  )

  it.live("commands issued while reconnecting wait for the new connection", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const { session } = yield* open(client, {
        retry: Schedule.intersect(Schedule.spaced("150 millis"), Schedule.recurs(5))
      })
      yield* sim.setFaults(0, { refuseFirst: { code: 4004, attempts: 2 } })
      yield* sim.drop(0, { mode: "terminate" })
      yield* eventually(SubscriptionRef.get(session.state), (s) => s._tag === "Reconnecting")
      // issued mid-reconnect: it is sent on the new connection once that is up
      yield* session.interrupt
      const info = yield* session.info
      expect(info.reconnects).toBe(1)
      const records = yield* sim.sessions
      expect(records.map((r) => r.refusedWith)).toStrictEqual([undefined, 4004, 4004, undefined])
      expect(records[3]!.commands.map((c) => c.cmd)).toStrictEqual(["interrupt"])
    }).pipe(Effect.scoped)
  )
})

describe("resilience: dead and stalled peers", () => {
  it.live("a peer that stops reading is a stall: the writer holds back, then fails over", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: 2 })
      const client = yield* clientFor(sim)
      const { session, states } = yield* open(client, {
        pacing: "none",
        highWaterBytes: 64 * 1024,
        stallTimeout: "300 millis",
        outboxCapacity: 50,
        // a reconnect may pick the stalled instance again: it must give up on it quickly
        connectionTimeout: "500 millis"
      })
      const first = (yield* session.info).currentService!.port
      const index = sim.instances.findIndex((i) => i.port === first)
      yield* sim.setFaults(index, { stall: true })
      // more than the loopback's kernel buffers hold, so the unsent bytes pile up in the socket
      const audio = yield* speak(session, 400)
      const info = yield* session.info
      expect(states.find((s) => s._tag === "Reconnecting")).toMatchObject({
        cause: { _tag: "ConnectionError", reason: "stalled" }
      })
      expect(info.currentService!.port).not.toBe(first)
      expect(info.audio.framesWritten).toBe(10_000)
      // what the stalled peer never read is among the unconfirmed frames, not silently lost
      expect(info.audio.framesUnconfirmed).toBeGreaterThan(0)
      expectOrderedSubset(yield* drained(sim, session), audio, info.audio.framesUnconfirmed)
      yield* sim.setFaults(index, {})
    }).pipe(Effect.scoped)
  )

  it.live("a peer that stops answering is detected within heartbeatInterval + heartbeatTimeout", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const { session, states } = yield* open(client, {
        heartbeatInterval: "150 millis",
        heartbeatTimeout: "100 millis"
      })
      yield* Effect.sleep("200 millis")
      yield* sim.setFaults(0, { noPong: true })
      const start = Date.now()
      yield* eventually(SubscriptionRef.get(session.state), (s) => s._tag !== "Ready" || states.length > 1)
      const detected = Date.now() - start
      expect(detected).toBeLessThan(2000) // generous: the bound itself is 250 ms; CI machines are slow
      yield* sim.setFaults(0, {})
      yield* eventually(session.info, (i) => i.reconnects === 1)
      expect(states.find((s) => s._tag === "Reconnecting")).toMatchObject({ cause: { reason: "heartbeat" } })
    }).pipe(Effect.scoped)
  )
})

describe("resilience: slow and refusing service", () => {
  it.live("slow discovery beyond discoveryTimeout is retried, and typed when it persists", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim, { discoveryTimeout: "100 millis" })
      yield* sim.setDiscovery({ delay: "300 millis" })
      const error = yield* Effect.flip(Effect.scoped(client.session({ avatarId: AVATAR, retry: fastRetry(2) })))
      expect(error).toMatchObject({
        _tag: "RetryError",
        attempts: 2,
        lastError: { _tag: "ServiceDiscoveryError", reason: "timeout" }
      })
      yield* sim.setDiscovery({ delay: "20 millis" })
      const { session } = yield* open(client, {})
      expect((yield* session.info).connected).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.live("a late websocket_connected is waited for, within connectionTimeout", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { websocketConnectedDelay: "150 millis" } }] })
      const client = yield* clientFor(sim)
      const start = Date.now()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const { session } = yield* open(client, { connectionTimeout: "1 second" })
          expect(Date.now() - start).toBeGreaterThanOrEqual(140)
          expect((yield* session.info).connected).toBe(true)
        })
      )
      // the instance is free again; this time the wait is shorter than the delay
      const late = yield* Effect.flip(
        Effect.scoped(client.session({ avatarId: AVATAR, connectionTimeout: "50 millis", retry: fastRetry(1) }))
      )
      expect(late).toMatchObject({ _tag: "RetryError", lastError: { reason: "timeout" } })
    }).pipe(Effect.scoped)
  )

  it.live("a late agora_connected is waited for, within connectionTimeout", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { agoraConnectedDelay: "150 millis" } }] })
      const client = yield* clientFor(sim)
      const { session } = yield* open(client, { connectionTimeout: "1 second" })
      const start = Date.now()
      yield* session.setParams({ agora })
      expect(Date.now() - start).toBeGreaterThanOrEqual(140)
      expect((yield* session.info).agoraConnected).toBe(true)
      const slow = yield* AvatarSimulator.make({ instances: [{ faults: { agoraConnectedDelay: "2 seconds" } }] })
      const { session: impatient } = yield* open(yield* clientFor(slow), { connectionTimeout: "100 millis" })
      const error = yield* Effect.flip(impatient.setParams({ agora }))
      expect(error).toMatchObject({ _tag: "CommandError", reason: "agora-timeout" })
    }).pipe(Effect.scoped)
  )

  it.live("refusals for the first attempts: 4004 waits and retries, 4003 moves on, 4001 stops", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { refuseFirst: { code: 4004, attempts: 2 } } }] })
      const client = yield* clientFor(sim)
      const { session } = yield* open(client, {})
      expect((yield* sim.sessions).map((r) => r.refusedWith)).toStrictEqual([4004, 4004, undefined])
      expect((yield* session.info).connected).toBe(true)

      const busy = yield* AvatarSimulator.make({
        instances: [{ faults: { refuseFirst: { code: 4003, attempts: 1 } } }, {}]
      })
      const busyClient = yield* clientFor(busy)
      yield* open(busyClient, {})
      const records = yield* busy.sessions
      expect(records.filter((r) => r.refusedWith === undefined)).toHaveLength(1)

      const locked = yield* AvatarSimulator.make({
        instances: [{ faults: { refuseFirst: { code: 4001, attempts: 1 } } }]
      })
      const error = yield* Effect.flip(
        Effect.scoped((yield* clientFor(locked)).session({ avatarId: AVATAR, retry: fastRetry(4) }))
      )
      expect(error._tag).toBe("AuthenticationError")
      expect(yield* locked.sessions).toHaveLength(1)
    }).pipe(Effect.scoped)
  )
})

describe("resilience: hostile server messages", () => {
  it.live("malformed messages and server errors mid-stream reach events and never break the session", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({
        instances: [
          {
            faults: {
              malformed: { afterFrames: 10, count: 40 },
              errorAfterFrames: { frames: 20, code: 1500, message: "transient glitch" }
            }
          }
        ]
      })
      const client = yield* clientFor(sim)
      const { session, tags } = yield* open(client, { pacing: "none" })
      const seen = yield* session.events.pipe(
        Stream.filter((m) => m.type === "invalid" || m.type === "unknown" || m.type === "error" || m.type === "ack"),
        Stream.take(41),
        Stream.runCollect,
        Effect.fork
      )
      const audio = yield* speak(session, 2)
      const messages = [...(yield* Fiber.join(seen))]
      expect(messages.filter((m) => m.type === "invalid").length).toBeGreaterThan(10)
      expect(messages.filter((m) => m.type === "unknown").length).toBeGreaterThan(0)
      expect(messages.find((m) => m.type === "error")).toMatchObject({
        pld: { error_code: 1500, error_message: "transient glitch" }
      })
      expect(tags()).not.toContain("Reconnecting")
      expect((yield* session.info).reconnects).toBe(0)
      expect(yield* drained(sim, session)).toStrictEqual(audio)
      yield* session.interrupt
    }).pipe(Effect.scoped)
  )
})

describe("resilience: closing", () => {
  it.live("a drop during the closing flush ends the close at once and counts the frames in doubt", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const start = Date.now()
      const session = yield* Effect.scoped(
        Effect.gen(function* () {
          const { session } = yield* open(client, { lead: "200 millis", outboxCapacity: 100 })
          // no pong confirms what is written from now on (left to chance, the last confirmation
          // may have come just before the drop, with nothing written since)
          yield* sim.setFaults(0, { noPong: true })
          // 2 s of speech, most of it still queued when the scope closes; the link dies 150 ms into the flush
          yield* Effect.forkDaemon(Stream.run(Stream.make(pcm(32_000 * 2)), session.audio))
          yield* eventually(session.info, (i) => i.audio.framesAccepted === 50)
          yield* Effect.forkDaemon(Effect.delay(sim.dropAll({ mode: "terminate" }), "150 millis"))
          return session
        })
      )
      // far below flushTimeout (10 s): the flush stopped when the connection went away
      expect(Date.now() - start).toBeLessThan(3000)
      const info = yield* session.info
      // the frames written since the last confirmation are reported, not counted as delivered
      expect(info.audio.framesUnconfirmed).toBe(info.audio.framesWritten)
      expect(info.audio.framesWritten).toBeGreaterThan(0)
      expect(info.audio.framesWritten).toBeLessThan(50)
      const [record] = yield* sim.sessions
      expect(record!.commands.map((c) => c.cmd)).not.toContain("leave_channel")
    }).pipe(Effect.scoped)
  )

  it.live("nothing is written after leave_channel, and the events stream ends with the session", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const events = yield* Effect.scoped(
        Effect.gen(function* () {
          const { session } = yield* open(client, { pacing: "none" })
          const events = yield* Effect.forkDaemon(Stream.runCount(session.events))
          // a producer that never stops: the close must cut it off cleanly
          yield* Effect.forkDaemon(Stream.run(Stream.repeatEffect(Effect.succeed(new Uint8Array(1280))), session.audio))
          yield* eventually(session.info, (i) => i.audio.framesWritten > 200)
          return events
        })
      )
      const [record] = yield* sim.sessions
      const leave = record!.mids.indexOf(record!.commands.find((c) => c.cmd === "leave_channel")!.mid)
      expect(leave).toBe(record!.mids.length - 1)
      expect(yield* Fiber.join(events).pipe(Effect.timeout("2 seconds"))).toBeGreaterThan(0)
    }).pipe(Effect.scoped)
  )

  it.live("a server error without original_mid fails the command that waits for an answer", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({
        instances: [{ faults: { noAck: true, errorAfterFrames: { frames: 1, code: 1302, message: "bad params" } } }]
      })
      const client = yield* clientFor(sim, { leaveTimeout: "50 millis" })
      const { session } = yield* open(client, { pacing: "none" })
      const waiting = yield* Effect.fork(session.interrupt)
      yield* eventually(sim.sessions, (s) => s[0]!.commands.length === 1)
      yield* session.sendAudio(pcm(1280))
      expect(yield* Effect.flip(Fiber.join(waiting))).toMatchObject({
        _tag: "ServerError",
        code: 1302,
        message: "bad params"
      })
    }).pipe(Effect.scoped)
  )
})
