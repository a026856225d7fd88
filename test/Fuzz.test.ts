/**
 * Hostile input: generated and mutated inbound frames, through the decoder and through a
 * live session over a real socket. Nothing may throw, no frame may kill the session, and
 * the session must still carry audio and commands afterwards.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { WebSocketServer } from "ws"
import { AvatarClient, AvatarConfig, Discovery, Protocol } from "../src/index.js"
import { API_KEY, eventually, pcm } from "./support.js"

const valid = [
  { v: 2, type: "system", mid: "s1", pld: { status: "agora_connected", channel_id: "c" } },
  { v: 2, type: "ack", mid: "s2", pld: { original_mid: "abc-1", status: "success" } },
  { v: 2, type: "pong", mid: "s3", pld: {} },
  { v: 2, type: "error", mid: "s4", pld: { error_code: 1500, error_message: "x" } }
]

/** A frame: a valid message mutated at random, arbitrary JSON, text that is almost JSON, or binary. */
const hostileFrame: FastCheck.Arbitrary<string | Uint8Array> = FastCheck.oneof(
  FastCheck.tuple(
    FastCheck.constantFrom(...valid),
    FastCheck.constantFrom("v", "type", "mid", "pld"),
    FastCheck.jsonValue()
  ).map(([message, key, value]) => JSON.stringify({ ...message, [key]: value })),
  FastCheck.tuple(FastCheck.constantFrom(...valid), FastCheck.jsonValue()).map(([message, value]) =>
    JSON.stringify({ ...message, pld: { ...message.pld, [Object.keys(message.pld)[0] ?? "x"]: value } })
  ),
  FastCheck.jsonValue().map((value) => JSON.stringify(value)),
  FastCheck.tuple(FastCheck.constantFrom(...valid), FastCheck.nat(80)).map(([message, cut]) =>
    JSON.stringify(message).slice(0, cut)
  ),
  FastCheck.string({ maxLength: 60 }),
  FastCheck.uint8Array({ maxLength: 64 })
)

// sampled once, used by both tests: generating them costs more than decoding them
const frames = FastCheck.sample(hostileFrame, { numRuns: 100_000, seed: 42 })

describe("hostile input", () => {
  it("100,000 generated and mutated frames decode without throwing", () => {
    const kinds = new Map<string, number>()
    for (const frame of frames) {
      const message = Protocol.decodeServerMessage(frame)
      const kind = message.type === "invalid" ? `invalid:${message.reason}` : message.type
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
    }
    expect(frames).toHaveLength(100_000)
    // the generator reaches every outcome
    for (const kind of [
      "system",
      "ack",
      "pong",
      "error",
      "unknown",
      "invalid:not-json",
      "invalid:binary",
      "invalid:wrong-shape",
      "invalid:not-an-object"
    ]) {
      expect(kinds.get(kind) ?? 0, kind).toBeGreaterThan(0)
    }
  })

  it.live("a session survives 100,000 hostile frames and still carries audio and commands", () =>
    Effect.gen(function* () {
      const peer = yield* hostilePeer(frames)
      const client = yield* Layer.build(
        AvatarClient.layer.pipe(
          Layer.provide(Discovery.layerStatic([{ host: "127.0.0.1", port: peer.port }])),
          Layer.provide(AvatarClient.layerWebSocketConstructorNode),
          Layer.provide(AvatarConfig.layer({ apiKey: Redacted.make(API_KEY) }))
        )
      ).pipe(Effect.map(Context.get(AvatarClient.AvatarClient)))
      const session = yield* client.session({ avatarId: "a", pacing: "none" })
      let received = 0
      yield* session.events.pipe(
        Stream.runForEach(() => Effect.sync(() => received++)),
        Effect.forkScoped
      )
      yield* Effect.sleep("20 millis")
      peer.blast()
      yield* eventually(
        Effect.sync(() => received),
        (n) => n >= frames.length,
        20_000
      )
      expect((yield* SubscriptionRef.get(session.state))._tag).toBe("Ready")
      yield* session.interrupt
      yield* session.sendAudio(pcm(12_800))
      yield* eventually(
        Effect.sync(() => peer.audioBytes()),
        (n) => n === 12_800
      )
      expect((yield* session.info).reconnects).toBe(0)
    }).pipe(
      Effect.scoped,
      // thousands of invalid messages: only the first of each kind is a warning
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.none)),
      Logger.withMinimumLogLevel(LogLevel.Warning)
    )
  )
})

/** A peer that speaks the handshake, acks commands, counts audio, and sends `frames` on demand. */
const hostilePeer = (frames: ReadonlyArray<string | Uint8Array>) =>
  Effect.acquireRelease(
    Effect.async<{
      readonly port: number
      readonly server: WebSocketServer
      readonly blast: () => void
      readonly audioBytes: () => number
    }>((resume) => {
      let audio = 0
      const sockets: Array<import("ws").WebSocket> = []
      const server: WebSocketServer = new WebSocketServer({ host: "127.0.0.1", port: 0 }, () => {
        resume(
          Effect.succeed({
            port: (server.address() as { port: number }).port,
            server,
            audioBytes: () => audio,
            blast: () => {
              for (const socket of sockets)
                for (const frame of frames) socket.send(frame, { binary: typeof frame !== "string" })
            }
          })
        )
      })
      server.on("connection", (socket) => {
        sockets.push(socket)
        socket.send(JSON.stringify({ v: 2, type: "system", mid: "s0", pld: { status: "websocket_connected" } }))
        socket.on("message", (data) => {
          const message = JSON.parse(String(data))
          if (message.type === "chat") audio += Buffer.from(message.pld.audio, "base64").byteLength
          if (message.type === "command" || message.type === "event") {
            socket.send(
              JSON.stringify({
                v: 2,
                type: "ack",
                mid: `a-${message.mid}`,
                pld: { original_mid: message.mid, status: "success" }
              })
            )
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
