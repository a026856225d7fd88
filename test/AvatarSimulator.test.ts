import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import WebSocket from "ws"
import * as AvatarSimulator from "../src/AvatarSimulator.js"
import * as Protocol from "../src/Protocol.js"

const KEY = "test-key-4f1c"

// ---------------------------------------------------------------------------
// a plain `ws` client, as a foreign client would be
// ---------------------------------------------------------------------------

interface Closed {
  readonly code: number
  readonly reason: string
}

/** A server message as it arrived on the wire. */
interface Wire {
  readonly v: number
  readonly type: string
  readonly mid: string
  readonly pld: { readonly [key: string]: unknown }
}

/** A server frame as it arrived, for a client that must see frames that are not JSON. */
interface RawFrame {
  readonly binary: boolean
  readonly data: Buffer
}

interface Client {
  readonly ws: WebSocket
  /** Resolves with `undefined` when the socket opened, or with the HTTP status of a refused upgrade. */
  readonly opened: Effect.Effect<number | undefined>
  readonly next: Effect.Effect<Wire>
  /** Only with `raw: true`, where `next` gets nothing. */
  readonly nextRaw: Effect.Effect<RawFrame>
  readonly pending: Effect.Effect<number>
  readonly closed: Effect.Effect<Closed>
  readonly send: (message: unknown) => Effect.Effect<void>
  readonly close: (code?: number) => Effect.Effect<Closed>
}

const connect = (
  instance: { readonly host: string; readonly port: number },
  options: {
    readonly key?: string | null
    readonly sessionId?: string
    readonly avatarId?: string
    readonly raw?: boolean
  } = {}
) =>
  Effect.gen(function* () {
    const messages = yield* Queue.unbounded<Wire>()
    const rawFrames = yield* Queue.unbounded<RawFrame>()
    const opened = yield* Deferred.make<number | undefined>()
    const closed = yield* Deferred.make<Closed>()
    const query = new URLSearchParams({
      session_id: options.sessionId ?? "session-1",
      avatar_id: options.avatarId ?? AvatarSimulator.DEFAULT_AVATAR_ID
    })
    const key = options.key === undefined ? KEY : options.key
    const ws = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const ws = new WebSocket(
          `ws://${instance.host}:${instance.port}${AvatarSimulator.WEBSOCKET_PATH}?${query}`,
          key === null ? {} : { headers: { api_key: key } }
        )
        ws.on("open", () => Deferred.unsafeDone(opened, Exit.succeed(undefined)))
        ws.on("unexpected-response", (request, response) => {
          Deferred.unsafeDone(opened, Exit.succeed(response.statusCode))
          request.destroy()
        })
        ws.on("message", (data, binary) => {
          if (options.raw === true) Queue.unsafeOffer(rawFrames, { binary, data: data as Buffer })
          else Queue.unsafeOffer(messages, JSON.parse(String(data)))
        })
        ws.on("close", (code, reason) => Deferred.unsafeDone(closed, Exit.succeed({ code, reason: String(reason) })))
        ws.on("error", () => {})
        return ws
      }),
      (ws) => Effect.sync(() => ws.terminate())
    )
    const client: Client = {
      ws,
      opened: Deferred.await(opened),
      next: Queue.take(messages),
      nextRaw: Queue.take(rawFrames),
      pending: Effect.zipWith(Queue.size(messages), Queue.size(rawFrames), (a, b) => a + b),
      closed: Deferred.await(closed),
      send: (message) =>
        Effect.sync(() =>
          ws.send(typeof message === "string" || message instanceof Uint8Array ? message : JSON.stringify(message))
        ),
      close: (code) =>
        Effect.zipRight(
          Effect.sync(() => ws.close(code)),
          Deferred.await(closed)
        )
    }
    return client
  })

/** Connects and waits for `websocket_connected`. */
const ready = (instance: { readonly host: string; readonly port: number }, sessionId = "session-1") =>
  Effect.gen(function* () {
    const client = yield* connect(instance, { sessionId })
    expect(yield* client.opened).toBeUndefined()
    const first = yield* client.next
    expect(first).toMatchObject({ v: 2, type: "system", pld: { status: "websocket_connected" } })
    return client
  })

const discover = (url: string, key: string | null, query = "") =>
  Effect.promise(async () => {
    const response = await fetch(`${url}${query}`, key === null ? {} : { headers: { api_key: key } })
    return { status: response.status, body: (await response.json()) as { readonly [key: string]: unknown } }
  })

/** Polls on the real clock: the simulator sees a close a moment after the client does. */
const eventually = <A>(effect: Effect.Effect<A>, predicate: (a: A) => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 400; i++) {
      const value = yield* effect
      if (predicate(value)) return value
      yield* Effect.sleep("5 millis")
    }
    return yield* Effect.dieMessage("condition not reached within 2 s")
  })

/** Waits, on the real clock, until `n` fibers sleep on the TestClock. */
const untilSleeping = (n = 1) =>
  Effect.gen(function* () {
    for (let i = 0; i < 400; i++) {
      if (Chunk.size(yield* TestClock.sleeps()) >= n) return
      yield* Effect.sleep("5 millis").pipe(TestServices.provideLive)
    }
    return yield* Effect.dieMessage(`${n} sleeping fiber(s) not reached within 2 s`)
  })

/**
 * Fails with "hung" instead of hanging when the effect takes more than two seconds. Left
 * behind rather than interrupted: a close that hangs cannot be interrupted.
 */
const promptly = <A, E>(effect: Effect.Effect<A, E>) =>
  effect.pipe(Effect.disconnect, Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "hung" }))

/** A moment of real time for what should not happen to show up. */
const settle = Effect.sleep("30 millis").pipe(TestServices.provideLive)

const chat = (mid: string, bytes: Uint8Array) => Protocol.encodeChat(mid, Buffer.from(bytes).toString("base64"))

/** What a hostile frame is, told from the outside. */
const kindOf = (frame: RawFrame): string => {
  if (frame.binary) return "binary"
  const text = frame.data.toString("utf8")
  let json: { readonly type?: string; readonly pld?: { readonly [key: string]: unknown } }
  try {
    json = JSON.parse(text)
  } catch {
    return text === "{this is not json" ? "not-json" : `unparsable ${text.slice(0, 20)}`
  }
  if (Array.isArray(json)) return text === "[1,2,3]" ? "not-an-object" : "array"
  if (json.type === undefined) return "no-type"
  if (json.type === "ack") return json.pld?.status === 17 ? "wrong-shape" : "unknown-ack"
  if (json.type === "x-simulator-unknown") {
    return typeof json.pld?.text === "string" && json.pld.text.length >= 2 * 1024 * 1024 ? "huge" : "unknown-type"
  }
  return json.type
}

const agora = { appId: "app", channel: "channel-42", token: "rtc-token", uid: 7 }

// ---------------------------------------------------------------------------

describe("AvatarSimulator", () => {
  describe("discovery", () => {
    it.scopedLive("answers with the code shape and records the query", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({
          apiKey: KEY,
          instances: [{ avatarId: "dvp_A" }, { avatarId: "dvp_B", status: "busy", healthy: false }]
        })
        expect(sim.discoveryUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/streamingAvatar\/service_status$/)
        const { status, body } = yield* discover(sim.discoveryUrl, KEY, "?group_name=WEBSOCKET_GROUP_TEST")
        expect(status).toBe(200)
        expect(body).toEqual({
          code: 1000,
          msg: "ok",
          data: {
            instances: [
              {
                ip: "127.0.0.1",
                port: sim.instances[0]!.port,
                avatar_id: "dvp_A",
                status: "available",
                healthy: true,
                index: 0
              },
              {
                ip: "127.0.0.1",
                port: sim.instances[1]!.port,
                avatar_id: "dvp_B",
                status: "busy",
                healthy: false,
                index: 1
              }
            ]
          }
        })
        yield* discover(sim.discoveryUrl, KEY)
        expect(yield* sim.discoveryRequests).toEqual([
          {
            path: "/streamingAvatar/service_status",
            query: { group_name: "WEBSOCKET_GROUP_TEST" },
            keyAccepted: true
          },
          { path: "/streamingAvatar/service_status", query: {}, keyAccepted: true }
        ])
      })
    )

    it.scopedLive("answers with the readme shape", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({
          discoveryShape: "readme",
          instances: [{}, { status: "busy" }, { healthy: false }]
        })
        const { status, body } = yield* discover(sim.discoveryUrl, "any-key")
        expect(status).toBe(200)
        expect(body).toEqual({
          success: true,
          data: {
            services: [
              { host: "127.0.0.1", port: sim.instances[0]!.port, status: "active" },
              { host: "127.0.0.1", port: sim.instances[1]!.port, status: "busy" },
              { host: "127.0.0.1", port: sim.instances[2]!.port, status: "unhealthy" }
            ]
          }
        })
      })
    )

    it.scopedLive("answers 401 with code 4001 to a wrong, empty or missing key, and never records it", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ apiKey: KEY })
        for (const key of ["wrong-key", "", null]) {
          const { status, body } = yield* discover(sim.discoveryUrl, key)
          expect(status).toBe(401)
          expect(body.code).toBe(4001)
          expect(typeof body.msg).toBe("string")
        }
        const requests = yield* sim.discoveryRequests
        expect(requests.map((r) => r.keyAccepted)).toEqual([false, false, false])
        // without apiKey, any non-empty key goes
        const open = yield* AvatarSimulator.make()
        expect((yield* discover(open.discoveryUrl, "whatever")).status).toBe(200)
        expect((yield* discover(open.discoveryUrl, "")).status).toBe(401)
        const everything = JSON.stringify([requests, yield* sim.sessions, yield* sim.report])
        expect(everything).not.toContain(KEY)
        expect(everything).not.toContain("wrong-key")
      })
    )

    it.scopedLive("setDiscovery overrides the answer and {} restores it", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ apiKey: KEY })
        yield* sim.setDiscovery({ status: 503 })
        expect(yield* discover(sim.discoveryUrl, KEY)).toEqual({
          status: 503,
          body: { code: 503, msg: "simulated HTTP 503" }
        })
        yield* sim.setDiscovery({ body: { code: 4001, msg: "token expired" } })
        expect(yield* discover(sim.discoveryUrl, KEY)).toEqual({
          status: 200,
          body: { code: 4001, msg: "token expired" }
        })
        yield* sim.setDiscovery({})
        expect((yield* discover(sim.discoveryUrl, KEY)).body.code).toBe(1000)
      })
    )

    it.scoped("a discovery delay runs on the simulator's clock", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        yield* sim.setDiscovery({ delay: "20 seconds" })
        const answer = yield* Effect.fork(discover(sim.discoveryUrl, KEY))
        // the request must have arrived before the clock moves
        yield* eventually(sim.discoveryRequests, (r) => r.length === 1).pipe(TestServices.provideLive)
        expect(answer.unsafePoll()).toBeNull()
        yield* TestClock.adjust("20 seconds")
        expect((yield* Fiber.join(answer)).status).toBe(200)
      })
    )
  })

  describe("instances", () => {
    it.scopedLive("speaks the protocol: connected, pong, acks, agora_connected, audio", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ apiKey: KEY })
        const client = yield* ready(sim.instances[0]!, "s-audio")
        const ids = Protocol.makeMessageIds("t")

        const ping = ids.next()
        yield* client.send(Protocol.ping(ping))
        expect(yield* client.next).toMatchObject({ v: 2, type: "pong", pld: {} })

        const setParams = ids.next()
        yield* client.send(Protocol.encodeClientMessage(Protocol.setParams(setParams, { agora })))
        const ack = yield* client.next
        expect(ack).toMatchObject({ v: 2, type: "ack", pld: { original_mid: setParams, status: "success" } })
        expect(yield* client.next).toMatchObject({
          v: 2,
          type: "system",
          pld: { status: "agora_connected", channel_id: "channel-42" }
        })

        // audio: odd chunk sizes, byte-exact
        const audio = new Uint8Array(10_000).map((_, i) => (i * 7919) % 256)
        const chunkMids: Array<string> = []
        for (let at = 0; at < audio.length; at += 1_234) {
          const mid = ids.next()
          chunkMids.push(mid)
          yield* client.send(Protocol.encodeChat(mid, Buffer.from(audio.subarray(at, at + 1_234)).toString("base64")))
        }
        const interrupt = ids.next()
        yield* client.send(Protocol.interrupt(interrupt))
        expect(yield* client.next).toMatchObject({ type: "ack", pld: { original_mid: interrupt } })

        const leave = ids.next()
        yield* client.send(Protocol.leaveChannel(leave))
        expect(yield* client.next).toMatchObject({ type: "ack", pld: { original_mid: leave, status: "success" } })

        expect(yield* sim.audio("s-audio")).toEqual(audio)
        expect(yield* sim.audio("unknown")).toEqual(new Uint8Array(0))
        const [session] = yield* sim.sessions
        expect(session).toMatchObject({
          id: 1,
          instance: 0,
          sessionId: "s-audio",
          avatarId: AvatarSimulator.DEFAULT_AVATAR_ID,
          audioBytes: 10_000,
          frameCount: chunkMids.length,
          pings: 1,
          invalid: 0,
          open: true,
          closeCode: undefined
        })
        expect(session!.frames.map((f) => f.mid)).toEqual(chunkMids)
        expect(session!.mids).toEqual([ping, setParams, ...chunkMids, interrupt, leave])
        expect(session!.commands.map((c) => [c.cmd, c.mid])).toEqual([
          ["set-params", setParams],
          ["interrupt", interrupt],
          ["leave_channel", leave]
        ])
        expect(session!.commands[0]!.pld).toMatchObject({ metadata: { agora_data: { channel_id: "channel-42" } } })

        // server mids are unique
        const serverMids = [ack.mid]
        yield* client.send(Protocol.ping(ids.next()))
        serverMids.push((yield* client.next).mid)
        expect(new Set(serverMids).size).toBe(2)

        const report = yield* sim.report
        expect(report).toContain("session s-audio: 0.31 s of audio (10000 bytes), 9 frame(s), 3 command(s)")
        expect(report).toContain("2 ping(s)")
      })
    )

    it.scopedLive("counts what does not decode as a client message, judging chat like the Schema does", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        const client = yield* ready(sim.instances[0]!)
        const samples: ReadonlyArray<unknown> = [
          { v: 2, type: "chat", mid: "a", pld: { audio: "AAAA" } },
          { v: 2, type: "chat", mid: "b", pld: { audio: "AAAA", extra: 1 }, extra: true },
          { v: 1, type: "chat", mid: "c", pld: { audio: "AAAA" } },
          { v: 2, type: "chat", pld: { audio: "AAAA" } },
          { v: 2, type: "chat", mid: 3, pld: { audio: "AAAA" } },
          { v: 2, type: "chat", mid: "d", pld: { audio: 12 } },
          { v: 2, type: "chat", mid: "e", pld: null },
          { v: 2, type: "chat", mid: "f" },
          { v: 2, type: "chat", mid: "g", pld: [] },
          { v: 2, type: "ping", mid: "h" },
          { v: 2, type: "command", mid: "i", pld: { cmd: "set-params" } },
          { v: 2, type: "mystery", mid: "j", pld: {} },
          [1, 2],
          "just a string",
          null
        ]
        const schema = Schema.decodeUnknownEither(Protocol.ClientMessage)
        const expectedInvalid = samples.filter((s) => Either.isLeft(schema(s))).length
        for (const sample of samples) yield* client.send(JSON.stringify(sample))
        yield* client.send("{not json")
        yield* client.send(new Uint8Array([1, 2, 3]))
        yield* client.send(Protocol.ping("last"))
        yield* client.next // pong: everything before it has been handled
        const [session] = yield* sim.sessions
        expect(session!.invalid).toBe(expectedInvalid + 2)
        expect(session!.mids).toEqual(["a", "b", "last"])
      })
    )

    it.scopedLive("refuses with 4001 a wrong, empty or missing key, or when rejectKey is set", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ apiKey: KEY })
        for (const key of ["wrong", "", null]) {
          const client = yield* connect(sim.instances[0]!, { key })
          expect(yield* client.opened).toBeUndefined()
          expect((yield* client.closed).code).toBe(4001)
          expect(yield* client.pending).toBe(0) // no websocket_connected
        }
        yield* sim.setFaults(0, { rejectKey: true })
        const client = yield* connect(sim.instances[0]!)
        expect(yield* client.closed).toEqual({ code: 4001, reason: "authentication failed" })
        const sessions = yield* eventually(sim.sessions, (s) => s.every((r) => !r.open))
        expect(sessions.map((s) => [s.refusedWith, s.closeCode])).toEqual([
          [4001, 4001],
          [4001, 4001],
          [4001, 4001],
          [4001, 4001]
        ])
      })
    )

    it.scopedLive("allows one connection per instance: the second gets 4003, as with occupied", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ instances: 2 })
        const first = yield* ready(sim.instances[0]!, "first")
        const second = yield* connect(sim.instances[0]!, { sessionId: "second" })
        expect((yield* second.closed).code).toBe(4003)
        // the other instance is free
        yield* ready(sim.instances[1]!, "elsewhere")

        // once the first leaves, the instance takes a new session
        yield* first.close(1000)
        yield* eventually(sim.openConnections, (n) => n === 1)
        const third = yield* ready(sim.instances[0]!, "third")

        yield* sim.setFaults(1, { occupied: true })
        const fourth = yield* connect(sim.instances[1]!)
        expect((yield* fourth.closed).code).toBe(4003)
        yield* third.send(Protocol.ping("p"))
        expect((yield* third.next).type).toBe("pong")
      })
    )

    it.scopedLive("tooSoon closes the next N attempts with 4004, then accepts", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ instances: [{ faults: { tooSoon: 2 } }] })
        for (let i = 0; i < 2; i++) {
          const client = yield* connect(sim.instances[0]!)
          expect((yield* client.closed).code).toBe(4004)
        }
        yield* ready(sim.instances[0]!)
        yield* sim.setFaults(0, { tooSoon: 1 })
        // busy wins over tooSoon and does not use up an attempt
        expect((yield* (yield* connect(sim.instances[0]!)).closed).code).toBe(4003)
      })
    )

    it.scopedLive("refuseUpgrade answers the upgrade with an HTTP status", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ instances: [{ faults: { refuseUpgrade: 503 } }] })
        expect(yield* (yield* connect(sim.instances[0]!)).opened).toBe(503)
        yield* sim.setFaults(0, { refuseUpgrade: 401 })
        expect(yield* (yield* connect(sim.instances[0]!)).opened).toBe(401)
        expect(yield* sim.sessions).toEqual([])
        yield* sim.setFaults(0, {})
        yield* ready(sim.instances[0]!)
      })
    )

    it.scopedLive("openConnections falls to 0 when clients close, and when the scope closes", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ instances: 2 })
        const a = yield* ready(sim.instances[0]!, "a")
        const b = yield* ready(sim.instances[1]!, "b")
        expect(yield* sim.openConnections).toBe(2)
        yield* a.close(1000)
        // a client that vanishes: its close code is known once it has sent something
        yield* b.send(Protocol.ping("p"))
        yield* b.next
        b.ws.terminate()
        yield* eventually(sim.openConnections, (n) => n === 0)
        const sessions = yield* sim.sessions
        expect(sessions.map((s) => [s.sessionId, s.open, s.closeCode])).toEqual([
          ["a", false, 1000],
          ["b", false, 1006]
        ])

        const scope = yield* Scope.make()
        const inner = yield* AvatarSimulator.make().pipe(Scope.extend(scope))
        const c = yield* ready(inner.instances[0]!, "c")
        expect(yield* inner.openConnections).toBe(1)
        yield* Scope.close(scope, Exit.void)
        expect(yield* inner.openConnections).toBe(0)
        expect((yield* c.closed).code).toBe(1001) // going away
        // the servers are gone
        const refused = yield* Effect.promise(() =>
          fetch(inner.discoveryUrl).then(
            () => false,
            () => true
          )
        )
        expect(refused).toBe(true)
      })
    )

    it.scopedLive("dropAll closes every connection with its code and frees the instances at once", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ instances: 2 })
        const a = yield* ready(sim.instances[0]!, "a")
        const b = yield* ready(sim.instances[1]!, "b")
        yield* sim.dropAll({ code: 1012 })
        expect(yield* sim.openConnections).toBe(0)
        expect((yield* a.closed).code).toBe(1012)
        expect((yield* b.closed).code).toBe(1012)
        yield* ready(sim.instances[0]!, "a")
        yield* sim.dropAll()
        expect((yield* sim.sessions).map((s) => s.closeCode)).toEqual([1012, 1012, 1011])
      })
    )
  })

  describe("faults", () => {
    it.scopedLive("noWebsocketConnected, noPong, noAck, noAgoraConnected", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ instances: [{ faults: { noWebsocketConnected: true } }] })
        // faults are read when a message arrives: wait until the simulator has seen each one
        const sent = (client: Client, message: Protocol.ClientMessage) =>
          Effect.zipRight(
            client.send(Protocol.encodeClientMessage(message)),
            eventually(sim.sessions, (s) => s[0]!.mids.includes(message.mid))
          )
        const client = yield* connect(sim.instances[0]!)
        expect(yield* client.opened).toBeUndefined()
        yield* sim.setFaults(0, { noPong: true })
        yield* sent(client, Protocol.ping("p1"))
        yield* sim.setFaults(0, { noAgoraConnected: true })
        yield* sent(client, Protocol.setParams("s1", { agora }))
        // the first message to reach the client is the ack of s1: no websocket_connected, no pong
        expect(yield* client.next).toMatchObject({ type: "ack", pld: { original_mid: "s1" } })
        yield* sim.setFaults(0, { noAck: true })
        yield* sent(client, Protocol.setParams("s2", { agora }))
        yield* sent(client, Protocol.interrupt("i1"))
        yield* sent(client, Protocol.leaveChannel("l1"))
        yield* sim.setFaults(0, {})
        yield* sent(client, Protocol.ping("p2"))
        // no agora_connected after s1, no ack of s2, i1 or l1; agora_connected after s2 still comes
        expect(yield* client.next).toMatchObject({ type: "system", pld: { status: "agora_connected" } })
        expect(yield* client.next).toMatchObject({ type: "pong" })
      })
    )

    it.scopedLive("commandError answers commands with an error that names them; errorAfterFrames sends one error", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({
          instances: [
            {
              faults: {
                commandError: { code: 5001, message: "no capacity" },
                errorAfterFrames: { frames: 3, code: 4100, message: "stream broken" }
              }
            }
          ]
        })
        const client = yield* ready(sim.instances[0]!)
        yield* client.send(Protocol.setParams("s1", { agora }))
        expect(yield* client.next).toEqual({
          v: 2,
          type: "error",
          mid: expect.any(String),
          pld: { error_code: 5001, error_message: "no capacity", original_mid: "s1" }
        })
        yield* client.send(Protocol.interrupt("i1"))
        expect(yield* client.next).toMatchObject({ type: "error", pld: { original_mid: "i1" } })
        yield* client.send(Protocol.leaveChannel("l1"))
        expect(yield* client.next).toMatchObject({ type: "ack", pld: { original_mid: "l1" } })
        for (let i = 0; i < 5; i++) yield* client.send(Protocol.encodeChat(`c${i}`, "AAAA"))
        yield* client.send(Protocol.ping("p"))
        const error = yield* client.next
        expect(error).toMatchObject({ type: "error", pld: { error_code: 4100, error_message: "stream broken" } })
        expect(error.pld.original_mid).toBeUndefined()
        expect(yield* client.next).toMatchObject({ type: "pong" })
        expect(Protocol.decodeServerMessage(JSON.stringify(error)).type).toBe("error")
      })
    )

    it.scoped("ackDelay and arrival times follow the simulator's clock", () =>
      Effect.gen(function* () {
        // (no audio events: the frame below would otherwise announce itself before the ack)
        const sim = yield* AvatarSimulator.make({
          instances: [{ faults: { ackDelay: "10 seconds", noAudioEvents: true } }]
        })
        const client = yield* ready(sim.instances[0]!)
        yield* TestClock.adjust("5 seconds")
        yield* client.send(Protocol.setParams("slow", { agora }))
        yield* client.send(Protocol.encodeChat("c1", "AAAA"))
        yield* client.send(Protocol.ping("fast"))
        expect((yield* client.next).type).toBe("pong")
        expect(yield* client.pending).toBe(0)
        yield* TestClock.adjust("10 seconds")
        expect(yield* client.next).toMatchObject({ type: "ack", pld: { original_mid: "slow" } })
        expect(yield* client.next).toMatchObject({ type: "system", pld: { status: "agora_connected" } })
        const [session] = yield* sim.sessions
        expect(session!.frames[0]!.at).toBe(5_000)
        expect(session!.commands[0]!.at).toBe(5_000)
      })
    )

    it.scopedLive(
      "dropAfterFrames closes with 1011 after exactly N frames, counted per connection; terminate gives 1006",
      () =>
        Effect.gen(function* () {
          const sim = yield* AvatarSimulator.make({ instances: [{ faults: { dropAfterFrames: { frames: 50 } } }] })
          const frame = (i: number) => new Uint8Array(640).fill(i)
          const first = yield* ready(sim.instances[0]!, "s-drop")
          for (let i = 0; i < 80; i++) yield* first.send(chat(`a${i}`, frame(i)))
          expect(yield* first.closed).toEqual({ code: 1011, reason: "dropped after 50 chat frames" })
          const [one] = yield* eventually(sim.sessions, (s) => !s[0]!.open)
          expect(one).toMatchObject({ frameCount: 50, audioBytes: 32_000, dropped: true, closeCode: 1011 })
          expect(one!.frames.map((f) => f.mid)).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`))
          expect(one!.mids).toHaveLength(50)

          // the instance is free again and the count starts over on the new connection
          yield* sim.setFaults(0, { dropAfterFrames: { frames: 50, mode: "terminate" } })
          const second = yield* ready(sim.instances[0]!, "s-drop")
          for (let i = 0; i < 60; i++) yield* second.send(chat(`b${i}`, frame(100 + i)))
          expect((yield* second.closed).code).toBe(1006)
          const sessions = yield* eventually(sim.sessions, (s) => s.length === 2 && !s[1]!.open)
          expect(sessions[1]).toMatchObject({ frameCount: 50, dropped: true, closeCode: 1006 })
          const expected = Buffer.concat([
            ...Array.from({ length: 50 }, (_, i) => frame(i)),
            ...Array.from({ length: 50 }, (_, i) => frame(100 + i))
          ])
          // (compared as buffers: a deep equality of 64,000 elements is slow)
          expect(Buffer.from(yield* sim.audio("s-drop")).equals(expected)).toBe(true)
          expect(yield* sim.report).toContain("2 connection(s) [1011 dropped, 1006 dropped]")

          // a code of its own; a code a server may not send is a defect
          yield* sim.setFaults(0, { dropAfterFrames: { frames: 1, code: 4100 } })
          const third = yield* ready(sim.instances[0]!, "s-other")
          yield* third.send(chat("c0", frame(0)))
          expect((yield* third.closed).code).toBe(4100)
          const bad = yield* Effect.exit(sim.setFaults(0, { dropAfterFrames: { frames: 1, code: 1006 } }))
          expect(Exit.isFailure(bad) && bad.cause._tag === "Die").toBe(true)
        })
    )

    it.scopedLive("drop ends the connection of one instance, by close or terminate; so does dropAll", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ instances: 3 })
        const a = yield* ready(sim.instances[0]!, "a")
        const b = yield* ready(sim.instances[1]!, "b")
        const c = yield* ready(sim.instances[2]!, "c")
        yield* sim.drop(1, { code: 4000 })
        expect(yield* b.closed).toEqual({ code: 4000, reason: "dropped by the simulator" })
        expect(a.ws.readyState).toBe(WebSocket.OPEN)
        yield* sim.drop(0, { mode: "terminate" })
        expect((yield* a.closed).code).toBe(1006)
        expect(c.ws.readyState).toBe(WebSocket.OPEN)
        yield* sim.dropAll({ mode: "terminate" })
        expect((yield* c.closed).code).toBe(1006)
        // a client that leaves by itself was not dropped
        const d = yield* ready(sim.instances[0]!, "d")
        yield* d.close(1000)
        const sessions = yield* eventually(sim.sessions, (s) => s.every((r) => !r.open))
        expect(sessions.map((s) => [s.sessionId, s.closeCode, s.dropped])).toEqual([
          ["a", 1006, true],
          ["b", 4000, true],
          ["c", 1006, true],
          ["d", 1000, false]
        ])
      })
    )

    it.scopedLive("stall stops reading and answering: the client's sends back up, and resuming drains them", () =>
      Effect.gen(function* () {
        // (a playout delay that outlasts the test: no audio event joins the messages counted here)
        const sim = yield* AvatarSimulator.make({ instances: 2, playoutDelay: "1 hour" })
        const client = yield* ready(sim.instances[0]!, "s-stall")
        yield* sim.setFaults(0, { stall: true })
        yield* client.send(Protocol.ping("p1"))
        const audio = new Uint8Array(75_000).fill(3) // 100,000 characters of base64
        for (let i = 0; i < 200; i++) yield* client.send(chat(`c${i}`, audio)) // 20 MB
        // a new connection gets no answer to its upgrade while the stall lasts
        yield* sim.setFaults(1, { stall: true })
        const late = yield* connect(sim.instances[1]!, { sessionId: "late" })
        yield* Effect.sleep("150 millis")
        expect(client.ws.bufferedAmount).toBeGreaterThan(10_000_000)
        expect(yield* client.pending).toBe(0) // no pong
        expect(late.ws.readyState).toBe(WebSocket.CONNECTING)
        const [stalled] = yield* sim.sessions
        expect(stalled).toMatchObject({ open: true, pings: 0, frameCount: 0 })

        yield* sim.setFaults(0, {})
        expect(yield* client.next).toMatchObject({ type: "pong" })
        yield* eventually(
          Effect.sync(() => client.ws.bufferedAmount),
          (n) => n === 0
        )
        yield* eventually(sim.sessions, (s) => s[0]!.frameCount === 200)
        yield* sim.setFaults(1, {})
        expect(yield* late.opened).toBeUndefined()
        expect(yield* late.next).toMatchObject({ type: "system", pld: { status: "websocket_connected" } })

        // drop still ends a stalled connection promptly, with its close handshake
        yield* sim.setFaults(0, { stall: true })
        yield* client.send(Protocol.ping("p2"))
        yield* sim.drop(0)
        expect((yield* client.closed).code).toBe(1011)
        expect(yield* client.pending).toBe(0)
      })
    )

    it.scopedLive("closing the simulator does not wait for a stall to end", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const sim = yield* AvatarSimulator.make({ instances: 2 }).pipe(Scope.extend(scope))
        const open = yield* ready(sim.instances[0]!)
        yield* sim.setFaults(0, { stall: true })
        yield* sim.setFaults(1, { stall: true })
        const waiting = yield* connect(sim.instances[1]!)
        yield* Effect.sleep("20 millis")
        yield* Scope.close(scope, Exit.void).pipe(Effect.timeoutFail({ duration: "1 second", onTimeout: () => "hung" }))
        expect((yield* open.closed).code).toBe(1001)
        // the upgrade that waited is answered as the server goes away
        expect(yield* waiting.opened).toBe(503)
      })
    )

    it.scopedLive("closing the simulator does not wait on the sockets of clients that left a stalled instance", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const sim = yield* AvatarSimulator.make({ instances: 1 }).pipe(Scope.extend(scope))
        const gone = yield* ready(sim.instances[0]!, "gone")
        yield* sim.setFaults(0, { stall: true })
        // the client sees the stall and drops the socket itself
        gone.ws.terminate()
        yield* gone.closed
        // it tries the stalled instance again, and gives up on the upgrade held back
        const aborted = yield* connect(sim.instances[0]!, { sessionId: "aborted" })
        yield* Effect.sleep("50 millis")
        expect(aborted.ws.readyState).toBe(WebSocket.CONNECTING)
        aborted.ws.close()
        yield* aborted.closed
        yield* Effect.sleep("20 millis")
        yield* sim.setFaults(0, {})
        yield* promptly(Scope.close(scope, Exit.void))
        // the upgrade nobody waited for any more never became a connection
        expect((yield* sim.sessions).map((s) => [s.sessionId, s.open])).toEqual([["gone", false]])
      })
    )

    it.scopedLive("drop, dropAll and closing do not wait on a peer that is gone or does not read", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const sim = yield* AvatarSimulator.make({ instances: 3 }).pipe(Scope.extend(scope))
        const gone = yield* ready(sim.instances[0]!, "gone")
        const deaf = yield* ready(sim.instances[1]!, "deaf")
        const deafToo = yield* ready(sim.instances[2]!, "deaf-too")
        // a stalled socket whose client has left
        yield* sim.setFaults(0, { stall: true })
        gone.ws.terminate()
        yield* promptly(sim.drop(0))
        // clients that stop reading never answer the close
        deaf.ws.pause()
        deafToo.ws.pause()
        yield* promptly(sim.dropAll())
        // the close was sent, and the socket cut when no answer came
        deaf.ws.resume()
        expect(yield* deaf.closed).toEqual({ code: 1011, reason: "dropped by the simulator" })
        const late = yield* ready(sim.instances[2]!, "late")
        late.ws.pause()
        yield* promptly(Scope.close(scope, Exit.void))
        const sessions = yield* sim.sessions
        expect(sessions.map((s) => [s.sessionId, s.open, s.closeCode, s.dropped])).toEqual([
          ["gone", false, 1011, true],
          ["deaf", false, 1011, true],
          ["deaf-too", false, 1011, true],
          ["late", false, 1001, false]
        ])
      })
    )

    it.scoped("websocketConnectedDelay holds websocket_connected back, on the simulator's clock", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ instances: [{ faults: { websocketConnectedDelay: "3 seconds" } }] })
        const client = yield* connect(sim.instances[0]!)
        expect(yield* client.opened).toBeUndefined()
        yield* untilSleeping()
        yield* TestClock.adjust("2999 millis")
        yield* settle
        expect(yield* client.pending).toBe(0)
        yield* TestClock.adjust("1 millis")
        expect(yield* client.next).toMatchObject({ type: "system", pld: { status: "websocket_connected" } })
      })
    )

    it.scoped("agoraConnectedDelay sends agora_connected that long after the ack", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({
          instances: [{ faults: { ackDelay: "1 second", agoraConnectedDelay: "2 seconds" } }]
        })
        const client = yield* ready(sim.instances[0]!)
        yield* client.send(Protocol.setParams("s1", { agora }))
        yield* untilSleeping()
        yield* TestClock.adjust("1 second")
        expect(yield* client.next).toMatchObject({ type: "ack", pld: { original_mid: "s1" } })
        yield* untilSleeping()
        yield* TestClock.adjust("1999 millis")
        yield* settle
        expect(yield* client.pending).toBe(0)
        yield* TestClock.adjust("1 millis")
        expect(yield* client.next).toMatchObject({ type: "system", pld: { status: "agora_connected" } })
      })
    )

    it.scopedLive("refuseFirst refuses the next attempts on the instance with its code, whatever the session", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({
          instances: [{ faults: { refuseFirst: { code: 4004, attempts: 2 } } }]
        })
        expect(yield* (yield* connect(sim.instances[0]!, { sessionId: "a" })).closed).toEqual({
          code: 4004,
          reason: "reconnecting too soon"
        })
        expect((yield* (yield* connect(sim.instances[0]!, { sessionId: "b" })).closed).code).toBe(4004)
        const c = yield* ready(sim.instances[0]!, "c")
        // a bad key is refused with 4001 and uses no attempt
        yield* sim.setFaults(0, { refuseFirst: { code: 4003, attempts: 1 } })
        expect((yield* (yield* connect(sim.instances[0]!, { key: null })).closed).code).toBe(4001)
        yield* c.close(1000)
        yield* eventually(sim.openConnections, (n) => n === 0)
        expect((yield* (yield* connect(sim.instances[0]!, { sessionId: "d" })).closed).code).toBe(4003)
        yield* ready(sim.instances[0]!, "e")
        const sessions = yield* sim.sessions
        expect(sessions.map((s) => [s.sessionId, s.refusedWith, s.dropped])).toEqual([
          ["a", 4004, false],
          ["b", 4004, false],
          ["c", undefined, false],
          ["session-1", 4001, false],
          ["d", 4003, false],
          ["e", undefined, false]
        ])
      })
    )

    it.scopedLive(
      "malformed sends hostile messages once after N frames, cycling through the kinds; so does sendMalformed",
      () =>
        Effect.gen(function* () {
          const sim = yield* AvatarSimulator.make({
            instances: [{ faults: { malformed: { afterFrames: 3, count: 10 } } }, {}]
          })
          const client = yield* connect(sim.instances[0]!, { raw: true })
          expect(kindOf(yield* client.nextRaw)).toBe("system")
          const sent: Array<string> = []
          for (let i = 0; i < 5; i++) {
            sent.push(`c${i}`)
            yield* client.send(chat(`c${i}`, new Uint8Array(640)))
          }
          yield* client.send(Protocol.ping("p1"))
          const frames: Array<RawFrame> = []
          for (let i = 0; i < 11; i++) frames.push(yield* client.nextRaw)
          expect(frames.map(kindOf)).toEqual([...AvatarSimulator.MALFORMED_KINDS, "not-json", "binary", "pong"])
          const unknownAck = JSON.parse(frames[6]!.data.toString("utf8"))
          expect(unknownAck).toMatchObject({ v: 2, type: "ack", pld: { status: "success" } })
          expect([...sent, "p1"]).not.toContain(unknownAck.pld.original_mid)
          expect(JSON.parse(frames[4]!.data.toString("utf8"))).toEqual({
            v: 2,
            type: "ack",
            mid: expect.any(String),
            pld: { status: 17 }
          })

          // the stand-in for an unknown type is a name no real message will ever have
          expect(JSON.parse(frames[5]!.data.toString("utf8"))).toEqual({
            v: 2,
            type: "x-simulator-unknown",
            mid: expect.any(String),
            pld: { text: "hi" }
          })

          expect(yield* sim.sendMalformed(0, 3, ["huge", "unknown-ack", "no-type"])).toBe(1)
          expect(yield* sim.sendMalformed(1, 3)).toBe(0)
          const more = [yield* client.nextRaw, yield* client.nextRaw, yield* client.nextRaw]
          expect(more.map(kindOf)).toEqual(["huge", "unknown-ack", "no-type"])
          // the session carries on
          yield* client.send(Protocol.ping("p2"))
          expect(kindOf(yield* client.nextRaw)).toBe("pong")
          expect((yield* sim.sessions)[0]).toMatchObject({ frameCount: 5, invalid: 0, open: true })
        })
    )

    it.scopedLive("a fault value a server cannot act on is a defect of make and setFaults, naming its field", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make()
        const defect = (faults: AvatarSimulator.Faults) =>
          Effect.map(Effect.exit(sim.setFaults(0, faults)), (exit) =>
            Exit.isFailure(exit) && exit.cause._tag === "Die" ? String(exit.cause.defect) : "accepted"
          )
        expect(yield* defect({ tooSoon: 1.5 })).toContain("tooSoon: 1.5 is not a whole number >= 0")
        expect(yield* defect({ refuseUpgrade: 42 })).toContain(
          "refuseUpgrade: 42 is not a whole number from 100 to 599"
        )
        expect(yield* defect({ ackDelay: -5 })).toContain("ackDelay: -5 is not a duration")
        expect(yield* defect({ errorAfterFrames: { frames: 0, code: 1, message: "m" } })).toContain(
          "errorAfterFrames.frames: 0 is not a whole number >= 1"
        )
        expect(
          yield* defect({ malformed: { afterFrames: 1, count: 1, kinds: ["nope" as AvatarSimulator.MalformedKind] } })
        ).toContain('malformed.kinds: "nope" is not a malformed kind')
        expect(yield* defect({ dropAfterFrames: { frames: 1, code: 1005 } })).toContain(
          "dropAfterFrames.code: 1005 is not a close code a server may send"
        )
        expect(yield* defect({ ackDelay: "1 second", tooSoon: 0, dropAfterFrames: { frames: 1, code: 4100 } })).toBe(
          "accepted"
        )
        const bad = yield* Effect.exit(
          Effect.scoped(AvatarSimulator.make({ instances: [{}, { faults: { tooSoon: -1 } }] }))
        )
        expect(Exit.isFailure(bad) && bad.cause._tag === "Die" && String(bad.cause.defect)).toContain(
          "AvatarSimulator.make: instance 1: tooSoon: -1 is not a whole number >= 0"
        )
      })
    )

    it.scopedLive("recordAudio: false counts frames and bytes without keeping them", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ recordAudio: false })
        const client = yield* ready(sim.instances[0]!)
        yield* client.send(Protocol.encodeChat("c1", Buffer.alloc(1_280, 1).toString("base64")))
        yield* client.send(Protocol.encodeChat("c2", Buffer.alloc(641, 1).toString("base64")))
        yield* client.send(Protocol.ping("p"))
        yield* client.next
        const [session] = yield* sim.sessions
        expect(session).toMatchObject({ frameCount: 2, audioBytes: 1_921, frames: [] })
        expect(yield* sim.audio("session-1")).toEqual(new Uint8Array(0))
      })
    )

    it.scopedLive("recordAudio: false keeps nothing per chat frame, so a long load test does not grow the record", () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ recordAudio: false })
        const client = yield* ready(sim.instances[0]!)
        const audio = Buffer.alloc(640, 1).toString("base64")
        const sendFrames = (from: number, to: number) =>
          Effect.gen(function* () {
            for (let i = from; i < to; i++) yield* client.send(Protocol.encodeChat(`c${i}`, audio))
          })
        yield* client.send(Protocol.ping("p1"))
        yield* sendFrames(0, 10)
        const early = (yield* eventually(sim.sessions, (s) => s[0]!.frameCount === 10))[0]!
        yield* sendFrames(10, 2_000)
        yield* client.send(Protocol.ping("p2"))
        const late = (yield* eventually(sim.sessions, (s) => s[0]!.pings === 2))[0]!
        expect(late).toMatchObject({ frameCount: 2_000, audioBytes: 2_000 * 640, frames: [] })
        // 1,990 more frames: only the digits of the counts (and the one more mid) grew
        expect(JSON.stringify(late).length - JSON.stringify(early).length).toBeLessThan(20)
        // the mids of the other messages are still kept: they are not per frame
        expect(late.mids).toEqual(["p1", "p2"])
      })
    )
  })

  describe("saving audio as WAV", () => {
    /** A fresh directory, removed with the scope. */
    const tempDir = Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "akool-sim-wav-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )

    /** Reads a file as a 16 kHz mono 16-bit PCM WAV: fails the test unless every header field says so. */
    const readWav = (path: string): Uint8Array => {
      const file = readFileSync(path)
      expect(file.toString("ascii", 0, 4)).toBe("RIFF")
      expect(file.toString("ascii", 8, 12)).toBe("WAVE")
      expect(file.toString("ascii", 12, 16)).toBe("fmt ")
      expect(file.readUInt32LE(16)).toBe(16)
      expect({
        format: file.readUInt16LE(20),
        channels: file.readUInt16LE(22),
        sampleRate: file.readUInt32LE(24),
        byteRate: file.readUInt32LE(28),
        blockAlign: file.readUInt16LE(32),
        bitsPerSample: file.readUInt16LE(34)
      }).toStrictEqual({
        format: 1,
        channels: 1,
        sampleRate: 16_000,
        byteRate: 32_000,
        blockAlign: 2,
        bitsPerSample: 16
      })
      expect(file.toString("ascii", 36, 40)).toBe("data")
      const dataSize = file.readUInt32LE(40)
      // the sizes match the file: RIFF counts everything after its own 8 bytes, the pad byte of an odd chunk too
      expect(file.readUInt32LE(4)).toBe(file.length - 8)
      expect(file.length).toBe(44 + dataSize + (dataSize % 2))
      return new Uint8Array(file.subarray(44, 44 + dataSize))
    }

    const pcmOf = (bytes: number, seed: number) => new Uint8Array(bytes).map((_, i) => (i * 7919 + seed) % 256)

    it.scopedLive(
      "saveDir writes each session's audio as it arrives, a valid WAV at every moment, across reconnects",
      () =>
        Effect.gen(function* () {
          const dir = yield* tempDir
          const sim = yield* AvatarSimulator.make({ saveDir: join(dir, "made") })
          const first = yield* ready(sim.instances[0]!, "session-a")
          yield* first.send(chat("a1", pcmOf(1_280, 1)))
          yield* first.send(chat("a2", pcmOf(641, 2)))
          const path = join(dir, "made", "session-a.wav")
          // while the session is still open, what arrived so far is already a complete WAV
          yield* eventually(
            Effect.sync(() => existsSync(path) && readFileSync(path).length >= 44 + 1_921),
            (written) => written
          )
          expect(readWav(path)).toStrictEqual(yield* sim.audio("session-a"))
          yield* first.close(1000)
          yield* eventually(sim.openConnections, (open) => open === 0)

          // the same session again, after another's: appended to its own file, in arrival order
          const other = yield* ready(sim.instances[0]!, "session-b")
          yield* other.send(chat("b1", pcmOf(320, 3)))
          yield* other.close(1000)
          yield* eventually(sim.openConnections, (open) => open === 0)
          const again = yield* ready(sim.instances[0]!, "session-a")
          yield* again.send(chat("a3", pcmOf(999, 4)))
          yield* again.send(chat("a4", pcmOf(1_280, 5)))
          yield* eventually(sim.sessions, (s) => s[2]?.frameCount === 2)
          const audio = yield* sim.audio("session-a")
          expect(audio.byteLength).toBe(1_280 + 641 + 999 + 1_280)
          expect(readWav(path)).toStrictEqual(audio)
          expect(readWav(join(dir, "made", "session-b.wav"))).toStrictEqual(pcmOf(320, 3))
          expect(yield* sim.report).toContain(`saved to ${path}`)
        })
    )

    it.scopedLive("saveDir writes the audio also when recordAudio is off, and names unsafe session ids safely", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sim = yield* AvatarSimulator.make({ saveDir: dir, recordAudio: false })
        const client = yield* ready(sim.instances[0]!, "../up/é")
        yield* client.send(chat("c1", pcmOf(640, 6)))
        yield* eventually(sim.sessions, (s) => s[0]?.frameCount === 1)
        // the id is percent-encoded: no file outside the directory, none hidden
        expect(readdirSync(dir)).toStrictEqual(["%2E.%2Fup%2F%C3%A9.wav"])
        expect(readWav(join(dir, "%2E.%2Fup%2F%C3%A9.wav"))).toStrictEqual(pcmOf(640, 6))
        expect(yield* sim.audio("../up/é")).toStrictEqual(new Uint8Array(0))
      })
    )

    it.scopedLive("saveWav writes what was received so far as a complete WAV", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sim = yield* AvatarSimulator.make()
        const client = yield* ready(sim.instances[0]!, "s-save")
        yield* client.send(chat("c1", pcmOf(1_280, 7)))
        yield* client.send(chat("c2", pcmOf(333, 8)))
        yield* eventually(sim.sessions, (s) => s[0]?.frameCount === 2)
        yield* sim.saveWav("s-save", join(dir, "out.wav"))
        const saved = readWav(join(dir, "out.wav"))
        expect(saved).toStrictEqual(yield* sim.audio("s-save"))
        expect(saved.byteLength).toBe(1_613)
        // a session that sent nothing: a valid WAV with no samples
        yield* sim.saveWav("nobody", join(dir, "empty.wav"))
        expect(readWav(join(dir, "empty.wav"))).toStrictEqual(new Uint8Array(0))
        // a path that cannot be written fails with the reason and the path
        const error = yield* Effect.flip(sim.saveWav("s-save", join(dir, "missing", "out.wav")))
        expect(error).toMatchObject({ _tag: "SimulatorError", reason: "save" })
        expect(error.message).toContain(join(dir, "missing", "out.wav"))
      })
    )

    it.scopedLive("a saveDir that cannot be created is a SimulatorError of make", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        writeFileSync(join(dir, "file"), "not a directory")
        const error = yield* Effect.flip(AvatarSimulator.make({ saveDir: join(dir, "file", "wav") }))
        expect(error).toMatchObject({ _tag: "SimulatorError", reason: "save" })
        expect(error.message).toContain(join(dir, "file", "wav"))
      })
    )
  })

  it.scopedLive("fails with SimulatorError when the port is taken", () =>
    Effect.gen(function* () {
      const first = yield* AvatarSimulator.make()
      const port = Number(new URL(first.discoveryUrl).port)
      const error = yield* Effect.flip(AvatarSimulator.make({ port }))
      expect(error._tag).toBe("SimulatorError")
      expect(error.message).toContain(`127.0.0.1:${port}`)
    })
  )

  it.scopedLive("the layer provides the service", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.AvatarSimulator
      expect(sim.instances.map((i) => i.avatarId)).toEqual(["x", AvatarSimulator.DEFAULT_AVATAR_ID])
      expect((yield* discover(sim.discoveryUrl, KEY)).status).toBe(200)
      expect((yield* discover(sim.discoveryUrl, "other")).status).toBe(401)
      const refused = yield* connect(sim.instances[0]!, { key: "other" })
      expect((yield* refused.closed).code).toBe(4001)
    }).pipe(Effect.provide(AvatarSimulator.layer({ apiKey: Redacted.make(KEY), instances: [{ avatarId: "x" }, {}] })))
  )
})
