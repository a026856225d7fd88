/**
 * A session that reconnects for hours must not keep its old connections: each one it dropped
 * is garbage once the next has taken over. The sockets are made by our own constructor here,
 * so the test can hold them weakly and ask the collector whether anything still does.
 */
import * as v8 from "node:v8"
import * as vm from "node:vm"
import * as Socket from "@effect/platform/Socket"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { WebSocket } from "ws"
import { AvatarClient, AvatarConfig, AvatarSimulator, Discovery } from "../src/index.js"
import { API_KEY, eventually } from "./support.js"

v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc") as () => void

/** Collects garbage in a later task: a WeakRef read in the same task keeps its target alive. */
const collect = Effect.promise(async () => {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    gc()
  }
})

describe("retention across reconnects", () => {
  it.live("30 drops in a row: every dropped connection's socket is collected", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ recordAudio: false })
      const sockets: Array<WeakRef<WebSocket>> = []
      const construct = (url: string, protocols?: string | Array<string>) => {
        const socket = new WebSocket(url, protocols, { headers: { api_key: API_KEY } })
        sockets.push(new WeakRef(socket))
        return socket as unknown as globalThis.WebSocket
      }
      const layer = AvatarClient.layer.pipe(
        Layer.provide(Layer.merge(Discovery.layer, Layer.succeed(Socket.WebSocketConstructor, construct))),
        Layer.provide(NodeHttpClient.layerUndici),
        Layer.provide(AvatarConfig.layer({ apiKey: Redacted.make(API_KEY), discoveryUrl: sim.discoveryUrl })),
        Layer.orDie
      )
      const client = Context.get(yield* Layer.build(layer), AvatarClient.AvatarClient)
      const session = yield* client.session({ avatarId: "dvp_Tristan" })
      const drops = 30
      for (let i = 1; i <= drops; i++) {
        yield* sim.dropAll({ mode: "terminate" })
        yield* eventually(session.info, (info) => info.reconnects === i && info.connected)
      }
      yield* collect
      const alive = sockets.filter((ref) => ref.deref() !== undefined).length
      // the live connection, and at most the one it replaced a moment ago
      expect(sockets).toHaveLength(drops + 1)
      expect(alive).toBeLessThanOrEqual(2)
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))
  )
})
