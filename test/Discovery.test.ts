import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { AvatarConfig, AvatarSimulator, Discovery, type AvatarSimulator as Sim } from "../src/index.js"
import { API_KEY, io } from "./support.js"

const discoveryFor = (sim: Sim.Service, options: Partial<AvatarConfig.Options> = {}) =>
  Layer.build(
    Discovery.layer.pipe(
      Layer.provide(NodeHttpClient.layer),
      Layer.provide(AvatarConfig.layer({ apiKey: Redacted.make(API_KEY), discoveryUrl: sim.discoveryUrl, ...options }))
    )
  ).pipe(Effect.map(Context.get(Discovery.Discovery)), Effect.orDie)

describe("Discovery", () => {
  it.scoped("reads the service's own body shape and asks for the test group", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: [{ avatarId: "a1" }, { avatarId: "a2" }] })
      const discovery = yield* discoveryFor(sim, { env: "test" })
      const instances = yield* discovery.instances("a2")
      expect(instances.map((i) => i.port)).toStrictEqual([sim.instances[1]!.port, sim.instances[0]!.port])
      expect(instances[0]).toMatchObject({ host: "127.0.0.1", avatarId: "a2", status: "available", healthy: true })
      const [request] = yield* sim.discoveryRequests
      expect(request!.path).toBe("/streamingAvatar/service_status")
      expect(request!.query).toStrictEqual({ group_name: "WEBSOCKET_GROUP_TEST" })
      expect(request!.keyAccepted).toBe(true)
    })
  )

  it.scoped("reads the README body shape; prod sends no group", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ instances: 2, discoveryShape: "readme" })
      const discovery = yield* discoveryFor(sim, { env: "prod" })
      const instances = yield* discovery.instances("anything")
      expect(instances.map((i) => i.port).sort()).toStrictEqual(sim.instances.map((i) => i.port).sort())
      expect(instances.every((i) => i.status === "active")).toBe(true)
      const [request] = yield* sim.discoveryRequests
      expect(request!.query).toStrictEqual({})
    })
  )

  it.scoped("keeps only the scheme and host of the configured URL", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const odd = sim.discoveryUrl.replace("/streamingAvatar/service_status", "/some/other/path?x=1")
      const discovery = yield* discoveryFor({ ...sim, discoveryUrl: odd })
      yield* discovery.instances("a")
      const [request] = yield* sim.discoveryRequests
      expect(request!.path).toBe("/streamingAvatar/service_status")
    })
  )

  it.scoped("prefers the requested avatar and picks at random among equals", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({
        instances: [{ avatarId: "x" }, { avatarId: "want" }, { avatarId: "y" }, { avatarId: "want" }]
      })
      const discovery = yield* discoveryFor(sim)
      const wanted = new Set([sim.instances[1]!.port, sim.instances[3]!.port])
      const firsts = new Set<number>()
      for (let seed = 0; seed < 24; seed++) {
        const ranked = yield* discovery.instances("want").pipe(Effect.withRandom(Random.make(seed)))
        expect(ranked).toHaveLength(4)
        expect(wanted.has(ranked[0]!.port) && wanted.has(ranked[1]!.port)).toBe(true)
        firsts.add(ranked[0]!.port)
      }
      expect(firsts).toStrictEqual(wanted)
    })
  )

  it.scoped("skips unhealthy and busy instances; none left is an empty-list error", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({
        instances: [{ healthy: false }, { status: "busy" }, { status: "available" }]
      })
      const discovery = yield* discoveryFor(sim)
      const instances = yield* discovery.instances("a")
      expect(instances.map((i) => i.port)).toStrictEqual([sim.instances[2]!.port])

      const none = yield* AvatarSimulator.make({ instances: [{ healthy: false }] })
      const error = yield* (yield* discoveryFor(none)).instances("a").pipe(Effect.flip)
      expect(error).toMatchObject({ _tag: "ServiceDiscoveryError", reason: "empty" })
    })
  )

  it.scoped("HTTP 401 and code 4001 are authentication errors", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ apiKey: "the-right-key" })
      const discovery = yield* discoveryFor(sim)
      const error = yield* discovery.instances("a").pipe(Effect.flip)
      expect(error._tag).toBe("AuthenticationError")
      expect(error.message).toContain("HTTP 401")
      expect(error.retryable).toBe(false)

      yield* sim.setDiscovery({ status: 200, body: { code: 4001, msg: "invalid token" } })
      const coded = yield* (yield* discoveryFor(sim, {})).instances("a").pipe(Effect.flip)
      expect(coded).toMatchObject({ _tag: "AuthenticationError", source: "discovery" })
      expect(coded.message).toContain("invalid token")
    })
  )

  it.scoped("other failures are discovery errors that say what happened", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const discovery = yield* discoveryFor(sim, { discoveryTimeout: "300 millis" })

      // only 401 means a bad key (PROTOCOL.md); 403 is a discovery failure like any other
      yield* sim.setDiscovery({ status: 403, body: { code: 4030, msg: "forbidden" } })
      expect(yield* discovery.instances("a").pipe(Effect.flip)).toMatchObject({
        _tag: "ServiceDiscoveryError",
        reason: "status",
        status: 403
      })

      yield* sim.setDiscovery({ status: 503, body: { code: 5000, msg: "maintenance" } })
      expect(yield* discovery.instances("a").pipe(Effect.flip)).toMatchObject({
        _tag: "ServiceDiscoveryError",
        reason: "status",
        status: 503
      })

      yield* sim.setDiscovery({ status: 200, body: { code: 1500, msg: "quota exceeded" } })
      const rejected = yield* discovery.instances("a").pipe(Effect.flip)
      expect(rejected).toMatchObject({ _tag: "ServiceDiscoveryError", reason: "rejected" })
      expect(rejected.message).toContain("quota exceeded")

      yield* sim.setDiscovery({ status: 200, body: { success: false, message: "no capacity" } })
      expect(yield* discovery.instances("a").pipe(Effect.flip)).toMatchObject({ reason: "rejected" })

      yield* sim.setDiscovery({ status: 200, body: { hello: "world" } })
      expect(yield* discovery.instances("a").pipe(Effect.flip)).toMatchObject({ reason: "decode" })

      // the simulator's delay and the client's timeout both run on the TestClock here
      yield* sim.setDiscovery({ delay: "2 seconds" })
      const late = yield* Effect.fork(Effect.flip(discovery.instances("a")))
      yield* io()
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(late)).toMatchObject({ _tag: "ServiceDiscoveryError", reason: "timeout" })

      yield* sim.setDiscovery({})
      expect(yield* discovery.instances("a")).toHaveLength(1)
    })
  )

  it.scoped("a discovery host that refuses connections is a transport error", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const discovery = yield* discoveryFor({
        ...sim,
        discoveryUrl: "http://127.0.0.1:1/streamingAvatar/service_status"
      })
      const error = yield* discovery.instances("a").pipe(Effect.flip)
      expect(error).toMatchObject({ _tag: "ServiceDiscoveryError", reason: "transport" })
      expect(error.message).toContain("127.0.0.1:1")
    })
  )

  it.effect("the static layer skips HTTP", () =>
    Effect.gen(function* () {
      const discovery = yield* Discovery.Discovery
      const instances = yield* discovery.instances("a")
      expect(instances).toStrictEqual([
        { host: "10.1.2.3", port: 9000, avatarId: "a", status: "available", healthy: true, scheme: "ws" }
      ])
    }).pipe(Effect.provide(Discovery.layerStatic([{ host: "10.1.2.3", port: 9000, avatarId: "a" }])))
  )
})
