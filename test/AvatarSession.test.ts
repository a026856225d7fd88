import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { type AvatarSession, AvatarSimulator } from "../src/index.js"
import { agora, clientFor, drained, eventually, expectOrderedSubset, fastRetry, pcm, unevenChunks } from "./support.js"

const AVATAR = "dvp_Tristan_cloth2_1080P"

/** The two ways to stream an utterance, which must behave the same. */
const ways = [
  [
    "Stream.run into session.audio",
    <E>(session: AvatarSession.AvatarSession, speech: Stream.Stream<Uint8Array, E>) => Stream.run(speech, session.audio)
  ],
  [
    "session.speak",
    <E>(session: AvatarSession.AvatarSession, speech: Stream.Stream<Uint8Array, E>) => session.speak(speech)
  ]
] as const

describe("AvatarSession", () => {
  for (const [way, say] of ways) {
    it.live(`10 s of audio in uneven chunks arrives byte for byte and in order (${way})`, () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        const client = yield* clientFor(sim)
        const audio = pcm(32_000 * 10)
        const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
        yield* session.setParams({ agora })
        yield* say(session, Stream.fromIterable(unevenChunks(audio)))
        const info = yield* session.info
        expect(info.audio).toMatchObject({ framesAccepted: 250, framesWritten: 250, framesDropped: 0, framesQueued: 0 })
        const received = yield* eventually(sim.audio(session.sessionId), (a) => a.byteLength === audio.byteLength)
        expect(received).toStrictEqual(audio)
        const [record] = yield* sim.sessions
        // every frame is 40 ms of whole samples, each in its own chat message with its own id
        expect(record!.frames.every((f) => f.bytes.byteLength === 1280)).toBe(true)
        expect(new Set(record!.mids).size).toBe(record!.mids.length)
        expect(record!.invalid).toBe(0)
      }).pipe(Effect.scoped)
    )
  }

  it.live("the session goes Connecting, Ready, Streaming, Ready, Closed", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const seen: Array<string> = []
      const final = yield* Effect.scoped(
        Effect.gen(function* () {
          const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
          yield* session.state.changes.pipe(
            Stream.runForEach((s) => Effect.sync(() => seen.push(s._tag))),
            Effect.forkDaemon
          )
          yield* eventually(
            Effect.sync(() => seen.length),
            (n) => n >= 1
          )
          yield* session.sendAudio(pcm(6400))
          yield* eventually(
            Effect.sync(() => seen.at(-1)),
            (t) => t === "Ready"
          )
          return session.state
        })
      )
      expect((yield* SubscriptionRef.get(final))._tag).toBe("Closed")
      yield* eventually(
        Effect.sync(() => seen.length),
        (n) => n === 4
      )
      expect(seen).toStrictEqual(["Ready", "Streaming", "Ready", "Closed"])
    }).pipe(Effect.scoped)
  )

  it.live("closing the scope flushes queued audio, sends leave_channel and leaves no socket open", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const audio = pcm(32_000 * 3)
      const sessionId = yield* Effect.scoped(
        Effect.gen(function* () {
          // realtime pacing with a short lead: most frames are still queued when the scope closes
          const session = yield* client.session({ avatarId: AVATAR, lead: "100 millis", outboxCapacity: 200 })
          yield* Effect.fork(Stream.run(Stream.make(audio), session.audio))
          yield* eventually(session.info, (i) => i.audio.framesAccepted === 75)
          return session.sessionId
        })
      )
      // the scope closed only after everything was written
      expect(yield* sim.audio(sessionId)).toStrictEqual(audio)
      const [record] = yield* sim.sessions
      expect(record!.commands.map((c) => c.cmd)).toStrictEqual(["leave_channel"])
      expect(record!.commands[0]!.pld).toStrictEqual({ event: "leave_channel", reason: "client_disconnect" })
      yield* eventually(sim.openConnections, (n) => n === 0)
    }).pipe(Effect.scoped)
  )

  it.live("setParams sends the reference fields and waits for the ack and agora_connected", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR })
      expect((yield* session.info).agoraConnected).toBe(false)
      yield* session.setParams({ agora: { ...agora, uid: 7 }, voiceId: "voice-1", language: "de" })
      expect((yield* session.info).agoraConnected).toBe(true)
      const [record] = yield* sim.sessions
      expect(record!.commands[0]).toMatchObject({
        cmd: "set-params",
        pld: {
          cmd: "set-params",
          data: { vid: "voice-1", lang: "de", mode: 3, bgurl: "" },
          metadata: { agora_data: { appid: "app-id", channel_id: "channel-1", token: "agora-token", uid: "7" } }
        }
      })
    }).pipe(Effect.scoped)
  )

  it.live("params given at open are applied before the session is handed over", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, params: { agora } })
      expect((yield* session.info).agoraConnected).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.live("concurrent commands each get their own ack", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { ackDelay: "50 millis" } }] })
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR })
      yield* Effect.all([session.interrupt, session.interrupt, session.setParams({ agora }), session.interrupt], {
        concurrency: "unbounded"
      })
      const [record] = yield* sim.sessions
      expect(record!.commands.map((c) => c.cmd).sort()).toStrictEqual([
        "interrupt",
        "interrupt",
        "interrupt",
        "set-params"
      ])
      expect(new Set(record!.commands.map((c) => c.mid)).size).toBe(4)
    }).pipe(Effect.scoped)
  )

  it.live("a command without an ack fails with a typed timeout", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { noAck: true } }] })
      const client = yield* clientFor(sim, { leaveTimeout: "50 millis" })
      const session = yield* client.session({ avatarId: AVATAR, commandTimeout: "150 millis" })
      const error = yield* Effect.flip(session.interrupt)
      expect(error).toMatchObject({ _tag: "CommandError", reason: "timeout", command: "interrupt" })
      expect(error.message).toContain("did not acknowledge interrupt")
    }).pipe(Effect.scoped)
  )

  it.live("set-params acknowledged without agora_connected fails after the bound", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { noAgoraConnected: true } }] })
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, connectionTimeout: "200 millis" })
      const error = yield* Effect.flip(session.setParams({ agora }))
      expect(error).toMatchObject({ _tag: "CommandError", reason: "agora-timeout", command: "set-params" })
      expect((yield* session.info).agoraConnected).toBe(false)
    }).pipe(Effect.scoped)
  )

  it.live("a server error answering a command fails it and reaches events", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({
        instances: [{ faults: { commandError: { code: 1302, message: "invalid agora token" } } }]
      })
      const client = yield* clientFor(sim, { leaveTimeout: "50 millis" })
      const session = yield* client.session({ avatarId: AVATAR })
      const errors = yield* session.events.pipe(
        Stream.filter((m) => m.type === "error"),
        Stream.take(1),
        Stream.runCollect,
        Effect.fork
      )
      const error = yield* Effect.flip(session.setParams({ agora }))
      expect(error).toMatchObject({ _tag: "ServerError", code: 1302, message: "invalid agora token" })
      const [event] = Chunk.toReadonlyArray(yield* Fiber.join(errors))
      expect(event).toMatchObject({ type: "error", pld: { error_code: 1302, error_message: "invalid agora token" } })
    }).pipe(Effect.scoped)
  )

  for (const [way, say] of ways) {
    it.live(`interrupt drops queued frames, ends the utterance early and awaits its ack (${way})`, () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        const client = yield* clientFor(sim)
        const session = yield* client.session({ avatarId: AVATAR, lead: "200 millis", outboxCapacity: 500 })
        const audio = pcm(32_000 * 10)
        const speaking = yield* Effect.fork(say(session, Stream.fromIterable(unevenChunks(audio))))
        yield* eventually(session.info, (i) => i.audio.framesWritten >= 5)
        yield* session.interrupt
        // the utterance ends (successfully) instead of playing on
        yield* Fiber.join(speaking)
        const info = yield* session.info
        expect(info.audio.framesQueued).toBe(0)
        expect(info.audio.framesDropped).toBeGreaterThan(200)
        expect(info.audio.framesWritten + info.audio.framesDropped).toBe(info.audio.framesAccepted)
        const [record] = yield* sim.sessions
        expect(record!.commands.map((c) => c.cmd)).toContain("interrupt")
        // what arrived is exactly the written prefix of the speech
        const received = yield* eventually(
          sim.audio(session.sessionId),
          (a) => a.byteLength === info.audio.bytesWritten
        )
        expect(received).toStrictEqual(audio.subarray(0, info.audio.bytesWritten))
        // the next utterance plays normally
        yield* session.sendAudio(pcm(3200, 9))
        expect((yield* session.info).audio.framesWritten).toBe(info.audio.framesWritten + 3)
      }).pipe(Effect.scoped)
    )
  }

  for (const [way, say] of ways) {
    it.live(
      `a stream ending in the middle of a sample sends every whole sample and names the stray byte (${way})`,
      () =>
        Effect.gen(function* () {
          const sim = yield* AvatarSimulator.make()
          const client = yield* clientFor(sim)
          const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
          const audio = pcm(3001)
          const error = yield* Effect.flip(say(session, Stream.fromIterable(unevenChunks(audio, 3))))
          expect(error).toMatchObject({ _tag: "AudioStreamError", reason: "odd-length" })
          expect(error.message).toContain("offset 3000")
          expect(yield* eventually(sim.audio(session.sessionId), (a) => a.byteLength === 3000)).toStrictEqual(
            audio.subarray(0, 3000)
          )
        }).pipe(Effect.scoped)
    )
  }

  for (const [way, say] of ways) {
    it.live(`empty chunks and one-byte chunks change nothing (${way})`, () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        const client = yield* clientFor(sim)
        const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
        const audio = pcm(2_000)
        const chunks = [
          new Uint8Array(0),
          audio.subarray(0, 1),
          new Uint8Array(0),
          audio.subarray(1, 3),
          audio.subarray(3)
        ]
        yield* say(session, Stream.fromIterable([...chunks, new Uint8Array(0)]))
        expect(yield* eventually(sim.audio(session.sessionId), (a) => a.byteLength === 2_000)).toStrictEqual(audio)
      }).pipe(Effect.scoped)
    )
  }

  it.live("session.speak fails with the stream's own error, and an interrupt releases the stream", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{}, {}] })
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
      class TtsError extends Data.TaggedError("TtsError")<{ readonly at: number }> {}
      const audio = pcm(6_400)
      const failing = Stream.concat(Stream.make(audio), Stream.fail(new TtsError({ at: 6_400 })))
      const error = yield* Effect.flip(session.speak(failing))
      expect(error).toStrictEqual(new TtsError({ at: 6_400 }))
      // what came before the failure went out
      expect(yield* eventually(sim.audio(session.sessionId), (a) => a.byteLength === 6_400)).toStrictEqual(audio)

      // an endless stream, ended by an interrupt: speak completes and the stream's finalizer ran
      let released = false
      const endless = Stream.repeatValue(pcm(1_280, 3)).pipe(
        Stream.ensuring(
          Effect.sync(() => {
            released = true
          })
        )
      )
      const slow = yield* client.session({ avatarId: AVATAR, lead: "200 millis" })
      const speaking = yield* Effect.fork(slow.speak(endless))
      yield* eventually(slow.info, (i) => i.audio.framesWritten >= 5)
      yield* slow.interrupt
      yield* Fiber.join(speaking)
      expect(released).toBe(true)
      expect((yield* SubscriptionRef.get(slow.state))._tag).toBe("Ready")
    }).pipe(Effect.scoped)
  )

  it.live("WAV bytes passed as raw PCM are refused before anything is sent", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
      const wav = new Uint8Array(4000)
      wav.set(new TextEncoder().encode("RIFF\x24\x0f\x00\x00WAVEfmt "), 0)
      const error = yield* Effect.flip(session.sendAudio(wav))
      expect(error).toMatchObject({ _tag: "AudioStreamError", reason: "not-pcm" })
      expect((yield* session.info).audio.framesAccepted).toBe(0)
    }).pipe(Effect.scoped)
  )

  it.live("invalid options are configuration errors, before any connection", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const cases: ReadonlyArray<[AvatarSession.Options, string]> = [
        [{ avatarId: "" }, "avatarId"],
        [{ avatarId: AVATAR, frameMs: 7 }, "frameMs"],
        [{ avatarId: AVATAR, lead: -5 }, "lead"],
        [{ avatarId: AVATAR, commandTimeout: -1 }, "commandTimeout"],
        [{ avatarId: AVATAR, outboxCapacity: 0 }, "outboxCapacity"]
      ]
      for (const [options, option] of cases) {
        const error = yield* Effect.flip(Effect.scoped(client.session(options)))
        expect(error).toMatchObject({ _tag: "ConfigurationError", option })
      }
      expect(yield* sim.discoveryRequests).toHaveLength(0)
      const session = yield* client.session({ avatarId: AVATAR })
      const bad = yield* Effect.flip(session.setParams({ agora: { ...agora, channel: "" } }))
      expect(bad).toMatchObject({ _tag: "ConfigurationError", option: "agora.channel" })
    }).pipe(Effect.scoped)
  )
})

describe("AvatarSession connecting", () => {
  it.live("close code 4001 is an authentication error and is never retried", () =>
    Effect.gen(function* () {
      // both instances refuse the key: whichever is tried first, nothing is tried after it
      const sim = yield* AvatarSimulator.make({
        instances: [{ faults: { rejectKey: true } }, { faults: { rejectKey: true } }]
      })
      const client = yield* clientFor(sim)
      const error = yield* Effect.flip(Effect.scoped(client.session({ avatarId: AVATAR, retry: fastRetry(3) })))
      expect(error).toMatchObject({ _tag: "AuthenticationError", source: "websocket" })
      expect(error.message).toContain("4001")
      expect(yield* sim.sessions).toHaveLength(1)
    }).pipe(Effect.scoped)
  )

  it.live("a refused upgrade maps by its HTTP status", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { refuseUpgrade: 401 } }] })
      const client = yield* clientFor(sim)
      const auth = yield* Effect.flip(Effect.scoped(client.session({ avatarId: AVATAR, retry: fastRetry(3) })))
      expect(auth).toMatchObject({ _tag: "AuthenticationError" })
      expect(auth.message).toContain("HTTP 401")

      yield* sim.setFaults(0, { refuseUpgrade: 503 })
      const busy = yield* Effect.flip(Effect.scoped(client.session({ avatarId: AVATAR, retry: fastRetry(2) })))
      expect(busy).toMatchObject({
        _tag: "RetryError",
        attempts: 2,
        lastError: { _tag: "ConnectionError", reason: "refused", code: 503 }
      })
    }).pipe(Effect.scoped)
  )

  it.live("an occupied instance (4003) fails over to the next one", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({
        instances: [{ avatarId: AVATAR, faults: { occupied: true } }, { avatarId: "other" }]
      })
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, retry: fastRetry(3) })
      expect((yield* session.info).currentService?.port).toBe(sim.instances[1]!.port)
      const records = yield* sim.sessions
      expect(records.map((r) => [r.instance, r.refusedWith])).toStrictEqual([
        [0, 4003],
        [1, undefined]
      ])
    }).pipe(Effect.scoped)
  )

  it.live("too soon (4004) backs off and retries the same instance", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { tooSoon: 2 } }] })
      const client = yield* clientFor(sim)
      const states: Array<string> = []
      const session = yield* client.session({ avatarId: AVATAR, retry: fastRetry(3) })
      states.push((yield* SubscriptionRef.get(session.state))._tag)
      const records = yield* sim.sessions
      expect(records.map((r) => r.refusedWith)).toStrictEqual([4004, 4004, undefined])
      expect(records.every((r) => r.instance === 0 && r.sessionId === session.sessionId)).toBe(true)
      expect(states).toStrictEqual(["Ready"])
    }).pipe(Effect.scoped)
  )

  it.live("when every attempt fails, a Retry error carries the last cause", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { occupied: true } }] })
      const client = yield* clientFor(sim)
      const error = yield* Effect.flip(Effect.scoped(client.session({ avatarId: AVATAR, retry: fastRetry(3) })))
      expect(error).toMatchObject({
        _tag: "RetryError",
        attempts: 3,
        lastError: { _tag: "ConnectionError", reason: "occupied" }
      })
      expect(error.message).toContain("after 3 attempts")
      expect(yield* sim.sessions).toHaveLength(3)
    }).pipe(Effect.scoped)
  )

  it.live("waits for websocket_connected, bounded by connectionTimeout", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ faults: { noWebsocketConnected: true } }] })
      const client = yield* clientFor(sim)
      const error = yield* Effect.flip(
        Effect.scoped(client.session({ avatarId: AVATAR, connectionTimeout: "150 millis", retry: fastRetry(1) }))
      )
      expect(error).toMatchObject({ _tag: "RetryError", lastError: { _tag: "ConnectionError", reason: "timeout" } })
      expect(error.message).toContain("websocket_connected")
      yield* eventually(sim.openConnections, (n) => n === 0)
    }).pipe(Effect.scoped)
  )

  it.live("a refused TCP connection is a typed connection error", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      // discovery lists an instance on a port where nothing listens
      yield* sim.setDiscovery({
        status: 200,
        body: {
          code: 1000,
          msg: "ok",
          data: { instances: [{ ip: "127.0.0.1", port: 1, avatar_id: AVATAR, status: "available", healthy: true }] }
        }
      })
      const error = yield* Effect.flip(Effect.scoped(client.session({ avatarId: AVATAR, retry: fastRetry(2) })))
      expect(error).toMatchObject({
        _tag: "RetryError",
        attempts: 2,
        lastError: { _tag: "ConnectionError", reason: "refused" }
      })
      expect(error.message).toContain("127.0.0.1:1")
    }).pipe(Effect.scoped)
  )
})

describe("AvatarSession when the connection drops", () => {
  it.live("it reconnects with the same session id, re-applies params and resumes the audio in order", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({
        avatarId: AVATAR,
        lead: "200 millis",
        outboxCapacity: 100,
        retry: fastRetry(3)
      })
      yield* session.setParams({ agora })
      const states: Array<string> = []
      yield* session.state.changes.pipe(
        Stream.runForEach((s) => Effect.sync(() => states.push(s._tag))),
        Effect.forkScoped
      )
      const audio = pcm(32_000 * 2)
      const speaking = yield* Effect.fork(Stream.run(Stream.make(audio), session.audio))
      yield* eventually(session.info, (i) => i.audio.framesWritten >= 10)
      yield* sim.dropAll({ code: 1011 })
      yield* Fiber.join(speaking)
      const info = yield* session.info
      expect(info.reconnects).toBe(1)
      expect(info.agoraConnected).toBe(true)
      expect(states).toContain("Reconnecting")
      expect(states.at(-1)).toBe("Ready")
      const records = yield* sim.sessions
      expect(records).toHaveLength(2)
      expect(records.every((r) => r.sessionId === session.sessionId)).toBe(true)
      // the last params were applied again on the new connection
      expect(records[1]!.commands.map((c) => c.cmd)).toStrictEqual(["set-params"])
      // in order, no frame twice; only frames the server never confirmed may be missing
      expectOrderedSubset(yield* drained(sim, session), audio, info.audio.framesUnconfirmed)
      expect(info.audio.framesWritten).toBe(50)
    }).pipe(Effect.scoped)
  )

  it.live("when reconnecting fails, the session ends with a Retry error and the sink reports unsent frames", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({
        avatarId: AVATAR,
        lead: "200 millis",
        outboxCapacity: 100,
        retry: fastRetry(2)
      })
      const speaking = yield* Effect.fork(Stream.run(Stream.make(pcm(32_000 * 5)), session.audio))
      yield* eventually(session.info, (i) => i.audio.framesWritten >= 5)
      yield* sim.setFaults(0, { occupied: true })
      yield* sim.dropAll({ code: 1011 })
      const error = yield* Effect.flip(Fiber.join(speaking))
      expect(error).toMatchObject({ _tag: "AudioStreamError", reason: "session-closed" })
      expect(error.unsentFrames).toBeGreaterThan(0)
      expect(error.message).toContain("4003")
      const state = yield* SubscriptionRef.get(session.state)
      expect(state).toMatchObject({
        _tag: "Closed",
        error: { _tag: "Some", value: { _tag: "RetryError", attempts: 2, lastError: { reason: "occupied" } } }
      })
      expect(yield* Effect.flip(session.await)).toMatchObject({ _tag: "RetryError" })
      expect(yield* Effect.flip(session.interrupt)).toMatchObject({ _tag: "RetryError" })
      const info = yield* session.info
      expect(info.connected).toBe(false)
      // accounting: every accepted frame was written or is reported unsent
      expect(info.audio.framesWritten + error.unsentFrames!).toBe(info.audio.framesAccepted)
      yield* eventually(sim.openConnections, (n) => n === 0)
    }).pipe(Effect.scoped)
  )
})
