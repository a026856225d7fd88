import * as v8 from "node:v8"
import * as vm from "node:vm"
import * as Socket from "@effect/platform/Socket"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { WebSocket, WebSocketServer } from "ws"
import {
  AvatarClient,
  AvatarConfig,
  AvatarError,
  AvatarSimulator,
  Connection,
  Heartbeat,
  Protocol
} from "../src/index.js"
import { API_KEY, eventually, io } from "./support.js"

/**
 * A hand-written peer for what the simulator does not do on purpose: it confirms the
 * connection, records each upgrade's headers, every message it receives, in order, and the
 * code each connection closed with, and, given `reverseAcks`, acknowledges that many commands in the reverse order of their arrival.
 */
const handPeer = (options: { readonly reverseAcks?: number } = {}) =>
  Effect.acquireRelease(
    Effect.async<{
      readonly port: number
      readonly server: WebSocketServer
      readonly headers: Array<Record<string, unknown>>
      readonly received: Array<string>
      readonly closeCodes: Array<number>
    }>((resume) => {
      const headers: Array<Record<string, unknown>> = []
      const received: Array<string> = []
      const closeCodes: Array<number> = []
      const server: WebSocketServer = new WebSocketServer({ host: "127.0.0.1", port: 0 }, () => {
        resume(
          Effect.succeed({ port: (server.address() as { port: number }).port, server, headers, received, closeCodes })
        )
      })
      server.on("connection", (socket, request) => {
        headers.push({ ...request.headers, url: request.url })
        socket.on("close", (code) => closeCodes.push(code))
        socket.send(JSON.stringify({ v: 2, type: "system", mid: "s0", pld: { status: "websocket_connected" } }))
        const mids: Array<string> = []
        socket.on("message", (data) => {
          const raw = String(data)
          received.push(raw)
          const message = JSON.parse(raw)
          if (message.type !== "command") return
          mids.push(message.mid)
          if (mids.length === options.reverseAcks) {
            for (const mid of mids.reverse()) {
              socket.send(
                JSON.stringify({ v: 2, type: "ack", mid: `a-${mid}`, pld: { original_mid: mid, status: "success" } })
              )
            }
          }
        })
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        for (const client of server.clients) client.terminate()
        server.close(() => resume(Effect.void))
      })
  )

const connectionLayer = AvatarClient.layerWebSocketConstructorNode.pipe(
  Layer.provideMerge(AvatarConfig.layer({ apiKey: Redacted.make(API_KEY) }))
)

/** A connection to the hand-written peer on `port`, through the Node constructor unless given another. */
const connectTo = (
  port: number,
  ids: { readonly sessionId: string; readonly avatarId: string },
  layer: Layer.Layer<Socket.WebSocketConstructor | AvatarConfig.AvatarConfig, unknown> = connectionLayer
) =>
  Effect.flatMap(Layer.build(layer), (context) =>
    Connection.make({
      instance: { host: "127.0.0.1", port, avatarId: "a", status: "available", healthy: true, scheme: "ws" },
      ...ids
    }).pipe(Effect.provide(context))
  )

/** A WebSocket constructor that knows nothing of this SDK: only the standard interface. */
const standardLayer = Layer.succeed(
  Socket.WebSocketConstructor,
  (url: string) => new WebSocket(url) as unknown as globalThis.WebSocket
).pipe(Layer.provideMerge(AvatarConfig.layer({ apiKey: Redacted.make(API_KEY) })))

const dropReason = new AvatarError.ConnectionError({ reason: "stalled", message: "the test gave up on the peer" })

describe("Connection", () => {
  it.live("acks that come back in reverse order still answer the right commands", () =>
    Effect.gen(function* () {
      const peer = yield* handPeer({ reverseAcks: 3 })
      const connection = yield* connectTo(peer.port, { sessionId: "session one/ä", avatarId: "avatar&id" })
      const messages = [1, 2, 3].map(() => Protocol.interrupt(connection.ids.next()))
      const acks = yield* Effect.all(
        messages.map((m) => connection.request(m, "2 seconds")),
        { concurrency: "unbounded" }
      )
      expect(acks.map((a) => a.pld.original_mid)).toStrictEqual(messages.map((m) => m.mid))
      // the header carries the key, and the query is URL-encoded
      expect(peer.headers[0]!.api_key).toBe(API_KEY)
      expect(peer.headers[0]!.url).toBe("/streamingAvatar/ws/v1?session_id=session+one%2F%C3%A4&avatar_id=avatar%26id")
    }).pipe(Effect.scoped)
  )

  it.live("messages sent while corked reach the kernel in one write, whole and in order", () =>
    Effect.gen(function* () {
      const peer = yield* handPeer()
      const connection = yield* connectTo(peer.port, { sessionId: "s", avatarId: "a" })
      // count what the socket under `ws` hands to the kernel
      const transport = (
        connection.socket as unknown as { _socket: Record<string, (...args: Array<unknown>) => unknown> }
      )._socket
      const calls = { write: 0, writev: 0 }
      for (const method of ["_write", "_writev"] as const) {
        const original = transport[method]!.bind(transport)
        transport[method] = (...args: Array<unknown>) => {
          calls[method === "_write" ? "write" : "writev"]++
          return original(...args)
        }
      }
      const frames = Array.from({ length: 5 }, (_, i) => new Uint8Array(1280).fill(i + 1))
      connection.unsafeCork()
      for (const frame of frames) connection.unsafeSendChat(frame)
      connection.unsafePing()
      connection.unsafeUncork()
      expect(calls).toStrictEqual({ write: 0, writev: 1 })
      // uncorked, each message is a write of its own again
      connection.unsafeSendChat(frames[0]!)
      expect(calls.write + calls.writev).toBe(2)

      yield* eventually(
        Effect.sync(() => peer.received.length),
        (n) => n >= 7
      )
      const decoded = peer.received.map((raw) => JSON.parse(raw) as { type: string; pld: { audio?: string } })
      expect(decoded.map((m) => m.type)).toStrictEqual(["chat", "chat", "chat", "chat", "chat", "ping", "chat"])
      const audio = decoded.filter((m) => m.type === "chat").map((m) => Buffer.from(m.pld.audio!, "base64"))
      expect(audio.map((bytes) => bytes[0])).toStrictEqual([1, 2, 3, 4, 5, 1])
      expect(audio.every((bytes, i) => bytes.equals(Buffer.from(frames[i === 5 ? 0 : i]!)))).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.live("any standard WebSocket works: chat messages as strings, cork does nothing, an abort closes with 4000", () =>
    Effect.gen(function* () {
      const peer = yield* handPeer({ reverseAcks: 1 })
      const connection = yield* connectTo(peer.port, { sessionId: "s", avatarId: "a" }, standardLayer)
      const frame = new Uint8Array(1280).fill(7)
      connection.unsafeCork()
      connection.unsafeSendChat(frame)
      connection.unsafeUncork()
      yield* connection.request(Protocol.interrupt(connection.ids.next()), "2 seconds")
      const chat = JSON.parse(peer.received[0]!) as { type: string; pld: { audio: string } }
      expect(chat.type).toBe("chat")
      expect(Buffer.from(chat.pld.audio, "base64").equals(Buffer.from(frame))).toBe(true)

      connection.unsafeAbort(dropReason)
      expect(yield* Effect.flip(Deferred.await(connection.closed))).toBe(dropReason)
      expect(connection.dropped()).toBe(dropReason)
      expect(connection.isOpen()).toBe(false)
      yield* eventually(
        Effect.sync(() => peer.closeCodes),
        (codes) => codes.length === 1
      )
      expect(peer.closeCodes).toStrictEqual([4000])
    }).pipe(Effect.scoped)
  )

  it.live("on the Node constructor's sockets an abort does not wait for a closing handshake", () =>
    Effect.gen(function* () {
      const peer = yield* handPeer()
      const connection = yield* connectTo(peer.port, { sessionId: "s", avatarId: "a" })
      connection.unsafeAbort(dropReason)
      expect(yield* Effect.flip(Deferred.await(connection.closed))).toBe(dropReason)
      yield* eventually(
        Effect.sync(() => peer.closeCodes),
        (codes) => codes.length === 1
      )
      // the TCP socket was destroyed: no close frame reached the peer
      expect(peer.closeCodes).toStrictEqual([1006])
    }).pipe(Effect.scoped)
  )

  it.live("a message that does not encode fails with a ConfigurationError naming the field, and nothing is sent", () =>
    Effect.gen(function* () {
      const peer = yield* handPeer()
      const connection = yield* connectTo(peer.port, { sessionId: "s", avatarId: "a" })
      // what untyped JavaScript can hand over: a voice id that is a number
      const params = Protocol.setParams(connection.ids.next(), {
        agora: { appId: "a", channel: "c", token: "t", uid: 1 }
      })
      const bad = {
        ...params,
        pld: { ...params.pld, data: { ...params.pld.data, vid: 123 } }
      } as unknown as Protocol.ClientMessage
      const requested = yield* Effect.flip(connection.request(bad, "1 second"))
      expect(requested).toMatchObject({ _tag: "ConfigurationError", option: "data.vid" })
      expect(requested.message).toContain("set-params data.vid must be a string (got 123)")
      const sent = yield* Effect.flip(connection.send(bad))
      expect(sent).toMatchObject({ _tag: "ConfigurationError", option: "data.vid" })
      const garbage = yield* Effect.flip(connection.send(null as unknown as Protocol.ClientMessage))
      expect(garbage).toMatchObject({ _tag: "ConfigurationError" })

      // the connection is still usable, and the peer saw only the good message
      yield* connection.send(Protocol.ping(connection.ids.next()))
      yield* eventually(
        Effect.sync(() => peer.received.length),
        (n) => n >= 1
      )
      yield* io(50)
      expect(peer.received.map((raw) => JSON.parse(raw).type)).toStrictEqual(["ping"])
      expect(connection.isOpen()).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.live("connections closed as a session's reconnects close them are garbage, not a chain", () =>
    Effect.gen(function* () {
      v8.setFlagsFromString("--expose-gc")
      const gc = vm.runInNewContext("gc") as () => void
      const peer = yield* handPeer()
      const context = yield* Layer.build(connectionLayer)
      const instance = { host: "127.0.0.1", port: peer.port, avatarId: "a", status: "available", healthy: true }
      const opened: Array<WeakRef<Connection.Connection>> = []
      // As a session recovers: a fiber of its own closes the scope of the connection that dropped,
      // then opens the next one in a scope of its own, in a span that ends with the new connection.
      const generation = (previous: Scope.CloseableScope | undefined) =>
        Effect.gen(function* () {
          if (previous) yield* Scope.close(previous, Exit.void)
          const scope = yield* Scope.make()
          const connection = yield* Connection.make({
            instance: { ...instance, scheme: "ws" },
            sessionId: `s-${opened.length}`,
            avatarId: "a"
          }).pipe(Scope.extend(scope), Effect.provide(context))
          opened.push(new WeakRef(connection))
          return { scope, connection }
        }).pipe(Effect.withSpan("generation"))
      const next = (fiber: Fiber.RuntimeFiber<{ readonly scope: Scope.CloseableScope }, unknown>) =>
        Effect.flatMap(Fiber.join(fiber), ({ scope }) => Effect.fork(generation(scope)))
      let last = yield* Effect.fork(generation(undefined))
      for (let i = 1; i < 6; i++) last = yield* next(last)
      yield* Fiber.await(last)
      yield* Effect.promise(async () => {
        for (let i = 0; i < 4; i++) {
          gc()
          await new Promise((resolve) => setTimeout(resolve, 10))
        }
      })
      // the last fiber is still reachable, as a session keeps its last recovery, and so is the
      // connection it opened; every one before it is gone
      expect(opened.map((ref) => ref.deref() !== undefined)).toStrictEqual([false, false, false, false, false, true])
      yield* Effect.flatMap(Fiber.join(last), ({ scope }) => Scope.close(scope, Exit.void))
    }).pipe(Effect.scoped)
  )

  it.scoped("Heartbeat.start pings on the TestClock, reports round trips, and aborts on a missed pong", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const context = yield* Layer.build(connectionLayer)
      const { host, port } = sim.instances[0]!
      const connection = yield* Connection.make({
        instance: { host, port, avatarId: "a", status: "available", healthy: true, scheme: "ws" },
        sessionId: "beating",
        avatarId: "a"
      }).pipe(Effect.provide(context))
      const roundTrips: Array<number> = []
      yield* Heartbeat.start(connection, {
        interval: "10 seconds",
        timeout: "4 seconds",
        onRoundTrip: (millis) => Effect.sync(() => roundTrips.push(millis))
      })
      const pings = sim.sessions.pipe(Effect.map((s) => s[0]!.pings))

      yield* TestClock.adjust("9 seconds")
      yield* io()
      expect(yield* pings).toBe(0)
      yield* TestClock.adjust("1 second")
      yield* eventually(pings, (n) => n === 1)
      yield* io(50) // the pong comes back over the socket, at test time 10 s
      // the round trip is recorded when the heartbeat next wakes, at the next ping
      yield* TestClock.adjust("10 seconds")
      yield* eventually(pings, (n) => n === 2)
      expect(roundTrips).toStrictEqual([0])

      // the peer stops answering: 4 s after the third ping, with nothing heard, the connection ends
      yield* io(50) // the second pong arrives first
      yield* sim.setFaults(0, { noPong: true })
      yield* TestClock.adjust("10 seconds")
      yield* eventually(pings, (n) => n === 3)
      yield* TestClock.adjust("3 seconds")
      yield* io()
      expect(connection.isOpen()).toBe(true)
      yield* TestClock.adjust("1 second")
      const dropped = yield* Effect.flip(Deferred.await(connection.closed))
      expect(dropped).toMatchObject({ _tag: "ConnectionError", reason: "heartbeat" })
      expect(roundTrips).toStrictEqual([0, 0])
    })
  )
})
