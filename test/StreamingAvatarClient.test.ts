/**
 * The Promise facade against the simulator, over real sockets: each method and callback,
 * our own error classes on real failures, abort, and `await using` cleanup.
 */
import { execFileSync } from "node:child_process"
import { inspect } from "node:util"
import { afterEach, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import {
  AvatarError,
  AvatarSimulator,
  createClient,
  StreamingAvatarClient,
  type StreamingAvatarClientOptions
} from "../src/index.js"
import { API_KEY, concat, pcm, unevenChunks } from "./support.js"

const AVATAR = "dvp_Tristan_cloth2_1080P"
const AGORA = { agoraAppId: "app-id", agoraChannel: "channel-1", agoraToken: "agora-token", agoraUid: "42" }

const scopes: Array<Scope.CloseableScope> = []
afterEach(async () => {
  for (const scope of scopes.splice(0)) await Effect.runPromise(Scope.close(scope, Exit.void))
})

/** A simulator that lives until the end of the test. */
const simulator = async (options: AvatarSimulator.Options = {}) => {
  const scope = Effect.runSync(Scope.make())
  scopes.push(scope)
  return Effect.runPromise(Scope.extend(AvatarSimulator.make({ apiKey: API_KEY, ...options }), scope))
}

const run = <A>(effect: Effect.Effect<A>) => Effect.runPromise(effect)

const optionsFor = (
  sim: AvatarSimulator.Service,
  extra: Partial<StreamingAvatarClientOptions> = {}
): StreamingAvatarClientOptions => ({
  apiKey: API_KEY,
  avatarId: AVATAR,
  discoveryUrl: sim.discoveryUrl,
  pacing: "none",
  ...extra
})

/** Polls until `check` holds (5 s at most). */
const until = async <A>(read: () => Promise<A> | A, check: (a: A) => boolean): Promise<A> => {
  for (let i = 0; i < 500; i++) {
    const value = await read()
    if (check(value)) return value
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error("condition not met within 5 s")
}

const rejection = async (promise: Promise<unknown>): Promise<unknown> => {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error("expected the promise to reject")
}

describe("StreamingAvatarClient", () => {
  it("connects, sets the Agora params, sends audio three ways, interrupts and disconnects", async () => {
    const sim = await simulator()
    const seen: Array<string> = []
    const client = new StreamingAvatarClient({
      ...optionsFor(sim),
      onConnected: () => seen.push("connected"),
      onDisconnected: () => seen.push("disconnected"),
      onAgoraConnected: (channel) => seen.push(`agora:${channel}`),
      onStateChange: (state) => seen.push(`state:${state._tag}`)
    })
    const messages: Array<string> = []
    client.onMessage = (message) => messages.push(message.type)

    expect(client.isConnected).toBe(false)
    expect(client.getConnectionInfo()).toMatchObject({ connected: false, currentService: null })
    await client.connect()
    expect(client.isConnected).toBe(true)
    expect(client.isAgoraConnected).toBe(false)

    await client.setAgoraParams({ ...AGORA, voiceId: "v1", language: "de", backgroundUrl: "https://x.test/bg.png" })
    expect(client.isAgoraConnected).toBe(true)
    const info = client.getConnectionInfo()
    expect(info).toMatchObject({
      connected: true,
      agoraConnected: true,
      sessionId: client.sessionId,
      avatarId: AVATAR,
      currentService: { ip: "127.0.0.1", port: sim.instances[0].port, status: "available", healthy: true },
      availableServicesCount: 1
    })

    const one = pcm(3200, 1)
    const array = unevenChunks(pcm(9000, 2))
    const iterable = unevenChunks(pcm(7000, 3), 11)
    const readable = unevenChunks(pcm(5000, 4), 13)
    await client.sendAudio(one)
    await client.sendAudioStream(array)
    await client.sendAudioStream(
      (async function* () {
        yield* iterable
      })()
    )
    await client.sendAudioStream(
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of readable) controller.enqueue(chunk)
          controller.close()
        }
      })
    )
    const expected = concat([one, ...array, ...iterable, ...readable])
    const received = await until(
      () => run(sim.audio(client.sessionId)),
      (a) => a.byteLength === expected.byteLength
    )
    expect(received).toStrictEqual(expected)

    await client.interrupt()
    await client.disconnect()
    expect(client.isConnected).toBe(false)
    await client.disconnect() // twice is fine

    const [record] = await run(sim.sessions)
    expect(record.sessionId).toBe(client.sessionId)
    expect(record.open).toBe(false)
    expect(record.commands.map((c) => c.cmd)).toStrictEqual(["set-params", "interrupt", "leave_channel"])
    expect(record.commands[0].pld).toMatchObject({
      data: { vid: "v1", lang: "de", mode: 3, bgurl: "https://x.test/bg.png" },
      metadata: { agora_data: { appid: "app-id", channel_id: "channel-1", token: "agora-token", uid: "42" } }
    })
    expect(seen).toStrictEqual([
      "state:Ready",
      "connected",
      "agora:channel-1",
      "state:Streaming",
      "state:Ready",
      "state:Streaming",
      "state:Ready",
      "state:Streaming",
      "state:Ready",
      "state:Streaming",
      "state:Ready",
      "state:Closed",
      "disconnected"
    ])
    expect(messages).toContain("ack")
    expect(messages).toContain("system")
    // the last session's figures stay readable
    expect(client.getConnectionInfo().audio.bytesWritten).toBe(expected.byteLength)
  })

  it("events() iterates the server's messages and ends with the session", async () => {
    const sim = await simulator()
    const client = await StreamingAvatarClient.connect(optionsFor(sim))
    const collected: Array<string> = []
    const reading = (async () => {
      for await (const message of client.events()) {
        collected.push(message.type === "system" ? `system:${message.pld.status}` : message.type)
      }
    })()
    await client.setAgoraParams(AGORA)
    await client.interrupt()
    await client.disconnect()
    await reading
    expect(collected).toStrictEqual(["ack", "system:agora_connected", "ack", "ack"])
  })

  it("a reconnect is reported: onDisconnected, onError with the cause, onConnected again", async () => {
    const sim = await simulator()
    const seen: Array<string> = []
    await using client = await createClient({
      ...optionsFor(sim),
      onConnected: () => seen.push("connected"),
      onDisconnected: () => seen.push("disconnected"),
      onError: (error) => seen.push(`error:${error._tag}`)
    })
    await client.setAgoraParams(AGORA)
    await run(sim.dropAll({ mode: "terminate" }))
    await until(
      () => client.getConnectionInfo(),
      (i) => i.reconnects === 1 && i.agoraConnected
    )
    expect(seen).toStrictEqual(["connected", "disconnected", "error:ConnectionError", "connected"])
    await client.sendAudio(pcm(1280))
    expect(client.isConnected).toBe(true)
  })

  it("onError hears of a drop once, however many attempts the reconnect takes", async () => {
    const sim = await simulator()
    const seen: Array<string> = []
    await using client = await createClient({
      ...optionsFor(sim, { maxRetryAttempts: 5 }),
      onError: (error) => seen.push(error._tag),
      onStateChange: (state) => {
        if (state._tag === "Reconnecting") seen.push(`attempt ${state.attempt}`)
      }
    })
    // the first two reconnect attempts are refused: three attempts in all for one drop
    await run(sim.setFaults(0, { refuseFirst: { code: 4004, attempts: 2 } }))
    await run(sim.dropAll({ mode: "terminate" }))
    await until(
      () => client.getConnectionInfo(),
      (i) => i.reconnects === 1
    )
    expect(seen).toStrictEqual(["attempt 1", "ConnectionError", "attempt 2", "attempt 3"])
  })

  it("onError hears of server errors that answer no command, and not of those a call throws", async () => {
    const sim = await simulator()
    const errors: Array<string> = []
    await using client = await createClient({
      ...optionsFor(sim),
      onError: (error) => errors.push(`${error._tag}: ${error.message}`)
    })
    await run(sim.setFaults(0, { commandError: { code: 4100, message: "no such voice" } }))
    const thrown = await rejection(client.setAgoraParams(AGORA))
    expect(thrown).toBeInstanceOf(AvatarError.ServerError)
    await run(sim.setFaults(0, { errorAfterFrames: { frames: 1, code: 5000, message: "render failed" } }))
    await client.sendAudio(pcm(1280 * 3))
    await until(
      () => errors,
      (e) => e.length > 0
    )
    // a moment for a second (wrong) report to arrive, if one were coming
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(errors).toStrictEqual(["ServerError: render failed"])
  })

  it("await using closes the session and leaves no socket open", async () => {
    const sim = await simulator()
    {
      await using client = await StreamingAvatarClient.connect(optionsFor(sim))
      await client.sendAudio(pcm(2560))
      expect(await run(sim.openConnections)).toBe(1)
    }
    expect(await run(sim.openConnections)).toBe(0)
    const [record] = await run(sim.sessions)
    expect(record.open).toBe(false)
    expect(record.audioBytes).toBe(2560)
    expect(record.commands.map((c) => c.cmd)).toStrictEqual(["leave_channel"])
  })

  describe("throws our own error classes", () => {
    it("a refused key: AuthenticationError, without the key anywhere", async () => {
      const sim = await simulator()
      const client = new StreamingAvatarClient(optionsFor(sim, { apiKey: "sk-wrong-key-0123456789" }))
      const error = await rejection(client.connect())
      expect(error).toBeInstanceOf(AvatarError.AuthenticationError)
      expect(error).toBeInstanceOf(Error)
      expect(String(error)).not.toContain("sk-wrong-key")
      expect(inspect(client, { depth: 5 })).not.toContain("sk-wrong-key")
      expect(client.isConnected).toBe(false)
      expect(await run(sim.openConnections)).toBe(0)
    })

    it("a discovery answer of unknown shape: ServiceDiscoveryError", async () => {
      const sim = await simulator()
      await run(sim.setDiscovery({ body: { hello: "world" } }))
      const error = await rejection(StreamingAvatarClient.connect(optionsFor(sim)))
      expect(error).toBeInstanceOf(AvatarError.ServiceDiscoveryError)
      expect(error).toMatchObject({ reason: "decode" })
    })

    it("every attempt refused: RetryError whose lastError is a ConnectionError", async () => {
      const sim = await simulator({ instances: [{ faults: { occupied: true } }] })
      const error = await rejection(StreamingAvatarClient.connect(optionsFor(sim, { maxRetryAttempts: 2 })))
      expect(error).toBeInstanceOf(AvatarError.RetryError)
      const retry = error as AvatarError.RetryError
      expect(retry.attempts).toBe(2)
      expect(retry.lastError).toBeInstanceOf(AvatarError.ConnectionError)
      expect(retry.lastError).toMatchObject({ reason: "occupied" })
    })

    it("a call before connect(): ConnectionError (not-connected)", async () => {
      const client = new StreamingAvatarClient({ apiKey: API_KEY, avatarId: AVATAR })
      for (const call of [
        () => client.sendAudio(pcm(640)),
        () => client.sendAudioStream([pcm(640)]),
        () => client.setAgoraParams(AGORA),
        () => client.interrupt()
      ]) {
        let error: unknown
        try {
          await call()
        } catch (e) {
          error = e
        }
        expect(error).toBeInstanceOf(AvatarError.ConnectionError)
        expect(error).toMatchObject({ reason: "not-connected" })
      }
    })

    it("options that cannot work: ConfigurationError from the constructor, naming the option", () => {
      const bad: Array<[Partial<StreamingAvatarClientOptions>, string]> = [
        [{ apiKey: "" }, "apiKey"],
        [{ avatarId: " " }, "avatarId"],
        [{ discoveryUrl: "ftp://x" }, "discoveryUrl"],
        [{ heartbeatInterval: -1 }, "heartbeatInterval"],
        [{ connectionTimeout: "soon" }, "connectionTimeout"],
        [{ maxRetryAttempts: 0 }, "maxRetryAttempts"],
        [{ env: "staging" as "prod" }, "env"]
      ]
      for (const [override, option] of bad) {
        let error: unknown
        try {
          new StreamingAvatarClient({ apiKey: API_KEY, avatarId: AVATAR, ...override })
        } catch (e) {
          error = e
        }
        expect(error).toBeInstanceOf(AvatarError.ConfigurationError)
        expect(error).toMatchObject({ option })
      }
    })

    it("bad audio and bad params: AudioStreamError and ConfigurationError; the source's own error as it was", async () => {
      const sim = await simulator()
      await using client = await StreamingAvatarClient.connect(optionsFor(sim))
      expect(await rejection(client.sendAudio(pcm(641)))).toMatchObject({
        _tag: "AudioStreamError",
        reason: "odd-length"
      })
      const wav = new TextEncoder().encode("RIFF\x24\x00\x00\x00WAVEfmt ")
      const notPcm = await rejection(client.sendAudioStream([wav, pcm(640)]))
      expect(notPcm).toBeInstanceOf(AvatarError.AudioStreamError)
      expect(notPcm).toMatchObject({ reason: "not-pcm" })
      const notBytes = await rejection(client.sendAudioStream(["hello" as unknown as Uint8Array]))
      expect(notBytes).toBeInstanceOf(AvatarError.ConfigurationError)
      expect(await rejection(client.setAgoraParams({ ...AGORA, agoraChannel: "" }))).toBeInstanceOf(
        AvatarError.ConfigurationError
      )
      const failure = new Error("the text-to-speech engine failed")
      const thrown = await rejection(
        client.sendAudioStream(
          (async function* () {
            yield pcm(1280)
            throw failure
          })()
        )
      )
      expect(thrown).toBe(failure)
      // the session is still usable
      await client.sendAudio(pcm(640))
      expect(client.isConnected).toBe(true)
    })
  })

  describe("abort", () => {
    it("an aborted connect() rejects with the signal's reason and leaves nothing open", async () => {
      const sim = await simulator()
      await run(sim.setDiscovery({ delay: "20 seconds" }))
      const client = new StreamingAvatarClient(optionsFor(sim))
      const controller = new AbortController()
      const connecting = client.connect({ signal: controller.signal })
      await until(
        () => run(sim.discoveryRequests),
        (r) => r.length === 1
      )
      controller.abort()
      const error = await rejection(connecting)
      expect(error).toBe(controller.signal.reason)
      expect((error as Error).name).toBe("AbortError")
      expect(client.isConnected).toBe(false)
      // an already aborted signal: nothing starts
      expect(await rejection(client.connect({ signal: AbortSignal.abort("stop") }))).toBe("stop")
      expect(await run(sim.discoveryRequests)).toHaveLength(1)
      // a later connect works
      await run(sim.setDiscovery({}))
      await client.connect()
      expect(client.isConnected).toBe(true)
      await client.disconnect()
    })

    it("disconnect() during connect() stops it", async () => {
      const sim = await simulator()
      await run(sim.setDiscovery({ delay: "20 seconds" }))
      const client = new StreamingAvatarClient(optionsFor(sim))
      const connecting = client.connect()
      await until(
        () => run(sim.discoveryRequests),
        (r) => r.length === 1
      )
      await client.disconnect()
      const error = await rejection(connecting)
      expect(error).toBeInstanceOf(AvatarError.ConnectionError)
      expect(client.isConnected).toBe(false)
      expect(await run(sim.openConnections)).toBe(0)
    })

    it("an aborted sendAudioStream stops reading its source; the session goes on", async () => {
      const sim = await simulator()
      await using client = await StreamingAvatarClient.connect(optionsFor(sim, { pacing: "realtime" }))
      const controller = new AbortController()
      let pulled = 0
      const endless = (async function* () {
        while (true) {
          pulled++
          yield pcm(1280)
        }
      })()
      const sending = client.sendAudioStream(endless, { signal: controller.signal })
      await until(
        () => pulled,
        (n) => n > 30
      )
      controller.abort(new Error("user stopped"))
      const error = await rejection(sending)
      expect(error).toMatchObject({ message: "user stopped" })
      const stoppedAt = pulled
      await client.interrupt()
      await client.sendAudio(pcm(640))
      expect(pulled).toBe(stoppedAt)
      expect(client.isConnected).toBe(true)
    })
  })
})

describe("turn-taking", () => {
  /** The callbacks' reports, in order, as `started ID` and `ended ID interrupted playedMs`. */
  const speakingLog = () => {
    const seen: Array<string> = []
    const ended: Array<{ id: string; interrupted: boolean; playedMs: number; at: number }> = []
    return {
      seen,
      ended,
      onSpeakingStarted: (id: string) => seen.push(`started ${id}`),
      onSpeakingEnded: (id: string, e: { interrupted: boolean; playedMs: number }) => {
        seen.push(`ended ${id}`)
        ended.push({ id, ...e, at: Date.now() })
      }
    }
  }

  it.for([
    ["with the server's audio_start / audio_end", {}],
    ["without them (the playback model)", { noAudioEvents: true }]
  ] as const)("onSpeakingStarted / onSpeakingEnded for two utterances in turn, %s", async ([, faults]) => {
    const sim = await simulator({ instances: [{ faults }] })
    const log = speakingLog()
    await using client = await StreamingAvatarClient.connect({
      ...optionsFor(sim, { pacing: "realtime" }),
      onSpeakingStarted: log.onSpeakingStarted
    })
    // assigned later, like the other callbacks
    client.onSpeakingEnded = log.onSpeakingEnded
    const first = await client.sendAudio(pcm(16_000, 1), { waitForPlayout: true })
    await until(
      () => log.ended.length,
      (n) => n === 1
    )
    const second = await client.sendAudioStream(unevenChunks(pcm(24_000, 2)), { waitForPlayout: true })
    await until(
      () => log.ended.length,
      (n) => n === 2
    )
    expect(first).toStrictEqual({ interrupted: false, playedMs: 500, durationMs: 500 })
    expect(second).toStrictEqual({ interrupted: false, playedMs: 750, durationMs: 750 })
    const [a, b] = log.ended.map((e) => e.id)
    expect(a).not.toBe(b)
    expect(log.seen).toStrictEqual([`started ${a}`, `ended ${a}`, `started ${b}`, `ended ${b}`])
    expect(log.ended.map(({ interrupted, playedMs }) => ({ interrupted, playedMs }))).toStrictEqual([
      { interrupted: false, playedMs: 500 },
      { interrupted: false, playedMs: 750 }
    ])
    // the avatar spoke each of them once, in that order (the model may call the end a
    // millisecond before the player reaches it: let the player finish)
    const segments = await until(
      () => run(sim.playback(client.sessionId)),
      (s) => s.every((segment) => !segment.playing)
    )
    expect(segments.map((s) => Math.round(s.playedMs))).toStrictEqual([500, 750])
  })

  it("sendAudio with waitForPlayout resolves once the avatar has finished speaking, not when written", async () => {
    const sim = await simulator()
    await using client = await StreamingAvatarClient.connect(optionsFor(sim, { pacing: "realtime" }))
    const writtenAt = await client.sendAudio(pcm(1280 * 5)).then(() => Date.now())
    const [short] = await until(
      () => run(sim.playback(client.sessionId)),
      (s) => s.length === 1 && !s[0].playing
    )
    // without the option it resolves once written: before the avatar has even begun
    expect(writtenAt).toBeLessThan(short.startedAt)

    const played = await client.sendAudio(pcm(32_000, 2), { waitForPlayout: true })
    const resolvedAt = Date.now()
    expect(played).toStrictEqual({ interrupted: false, playedMs: 1000, durationMs: 1000 })
    const segments = await run(sim.playback(client.sessionId))
    expect(segments).toHaveLength(2)
    const segment = segments[1]
    expect(segment).toMatchObject({ interrupted: false, playing: false })
    // not before the player finished (1 ms for its fractional times), and within a frame of it
    // (plus slack for a loaded machine)
    expect(resolvedAt).toBeGreaterThanOrEqual(segment.endedAt - 1)
    expect(resolvedAt - segment.endedAt).toBeLessThan(40 + 60)
  })

  it("interrupt() half way resolves with what was heard, as the simulator's player played it", async () => {
    const sim = await simulator()
    const log = speakingLog()
    await using client = await StreamingAvatarClient.connect({
      ...optionsFor(sim, { pacing: "realtime" }),
      ...log
    })
    const playing = client.sendAudioStream(unevenChunks(pcm(64_000, 3)), { waitForPlayout: true })
    await until(
      () => run(sim.playback(client.sessionId)),
      (s) => s.length === 1 && s[0].playedMs >= 900
    )
    const cut = await client.interrupt()
    const [segment] = await run(sim.playback(client.sessionId))
    expect(segment.interrupted).toBe(true)
    expect(cut.utterance).toBe(log.seen[0]?.slice("started ".length))
    // within a frame or two of what the player played before the cut
    expect(Math.abs(cut.playedMs - segment.playedMs)).toBeLessThanOrEqual(80)
    // each figure is rounded on its own
    expect(Math.abs(cut.playedMs + cut.unplayedMs - 2000)).toBeLessThanOrEqual(1)
    // the call waiting for playout hears the same (unrounded), and so does the callback
    const played = await playing
    expect(played).toMatchObject({ interrupted: true, durationMs: 2000 })
    expect(Math.abs(played.playedMs - cut.playedMs)).toBeLessThanOrEqual(0.5)
    await until(
      () => log.ended.length,
      (n) => n === 1
    )
    expect(log.ended[0]).toMatchObject({ id: cut.utterance, interrupted: true, playedMs: cut.playedMs })
    expect(log.seen).toHaveLength(2)
  })

  it("an underrun: the stretch ends with what was heard so far, the utterance speaks again, and its last end is its outcome", async () => {
    const sim = await simulator()
    const log = speakingLog()
    await using client = await StreamingAvatarClient.connect({
      ...optionsFor(sim, { pacing: "realtime" }),
      ...log
    })
    const speech = (async function* () {
      yield pcm(15_360, 4) // 480 ms
      await new Promise((resolve) => setTimeout(resolve, 1000)) // the producer falls behind
      yield pcm(15_360, 5)
    })()
    const played = await client.sendAudioStream(speech, { waitForPlayout: true })
    expect(played).toStrictEqual({ interrupted: false, playedMs: 960, durationMs: 960 })
    await until(
      () => log.ended.length,
      (n) => n === 2
    )
    const id = log.ended[0].id
    expect(log.seen).toStrictEqual([`started ${id}`, `ended ${id}`, `started ${id}`, `ended ${id}`])
    expect(log.ended[0].interrupted).toBe(false)
    expect(Math.abs(log.ended[0].playedMs - 480)).toBeLessThanOrEqual(40)
    expect(log.ended[1]).toMatchObject({ interrupted: false, playedMs: 960 })
    const segments = await until(
      () => run(sim.playback(client.sessionId)),
      (s) => s.every((segment) => !segment.playing)
    )
    expect(segments.map((s) => Math.round(s.playedMs))).toStrictEqual([480, 480])
    // the first end was reported during the gap, not once the audio resumed
    expect(log.ended[0].at).toBeLessThan(segments[1].startedAt - 200)
  })

  it("aborting a call that waits for playout stops the wait; what was sent plays on", async () => {
    const sim = await simulator()
    await using client = await StreamingAvatarClient.connect(optionsFor(sim))
    const controller = new AbortController()
    const started = Date.now()
    const waiting = client.sendAudio(pcm(96_000), { waitForPlayout: true, signal: controller.signal })
    await new Promise((resolve) => setTimeout(resolve, 300))
    controller.abort()
    const error = await rejection(waiting)
    expect((error as Error).name).toBe("AbortError")
    expect(Date.now() - started).toBeLessThan(1500)
    const [segment] = await until(
      () => run(sim.playback(client.sessionId)),
      (s) => s.length === 1 && !s[0].playing
    )
    expect(segment).toMatchObject({ interrupted: false, playedMs: 3000 })
  })

  it("an aborted call stops reading its source by itself, though its utterance runs on the session", async () => {
    const sim = await simulator()
    // unpaced: the outbox drains as fast as the socket takes it, and would be refilled as fast
    await using client = await StreamingAvatarClient.connect(optionsFor(sim))
    const controller = new AbortController()
    let pulled = 0
    const endless = (async function* () {
      while (true) {
        pulled++
        yield pcm(1280 * 10)
      }
    })()
    const sending = client.sendAudioStream(endless, { waitForPlayout: true, signal: controller.signal })
    await until(
      () => pulled,
      (n) => n > 10
    )
    controller.abort()
    await rejection(sending)
    const stoppedAt = pulled
    // no interrupt(): nothing more is read to refill the outbox
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(pulled).toBe(stoppedAt)
    const info = client.getConnectionInfo()
    // at most the frames queued when the abort came, and the one being offered, were taken after it
    expect(info.audio.framesAccepted).toBeLessThanOrEqual(stoppedAt * 10)
  })

  it("disconnect() while a call waits for playout: it rejects (session-closed) rather than waiting on", async () => {
    const sim = await simulator()
    const client = await StreamingAvatarClient.connect(optionsFor(sim))
    const waiting = rejection(client.sendAudio(pcm(96_000), { waitForPlayout: true }))
    await new Promise((resolve) => setTimeout(resolve, 200))
    await client.disconnect()
    const error = await waiting
    expect(error).toBeInstanceOf(AvatarError.AudioStreamError)
    expect(error).toMatchObject({ reason: "session-closed" })
  })

  it("a bad playoutDelay throws from the constructor, naming it", () => {
    let error: unknown
    try {
      new StreamingAvatarClient({ apiKey: API_KEY, avatarId: AVATAR, playoutDelay: -5 })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(AvatarError.ConfigurationError)
    expect(error).toMatchObject({ option: "playoutDelay" })
  })
})

describe("the package's side effects", () => {
  it("importing it changes no global (package.json says sideEffects: false)", () => {
    // a fresh process: what is on globalThis and on Symbol before and after the import; the
    // libraries it builds on load first, so that what they keep globally is not counted
    const script = `
      const names = (o) => Object.getOwnPropertyNames(o).concat(Object.getOwnPropertySymbols(o).map(String)).sort()
      for (const dependency of ["effect", "@effect/platform-node/NodeHttpClient", "ws"]) await import(dependency)
      const before = { global: names(globalThis), symbol: names(Symbol) }
      await import(${JSON.stringify(new URL("../src/index.ts", import.meta.url).href)})
      const after = { global: names(globalThis), symbol: names(Symbol) }
      process.stdout.write(JSON.stringify({ before, after }))
    `
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8"
    })
    const { before, after } = JSON.parse(out)
    expect(after).toStrictEqual(before)
  })
})
