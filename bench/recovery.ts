/**
 * Resilience figures on loopback: how long a session takes to get audio flowing again after
 * its connection drops, and how long it takes to notice a peer that stopped answering.
 * Real clock, simulator in this process. `npm run bench:recovery [-- --runs 20]`.
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { AvatarClient, type AvatarSession, AvatarSimulator } from "../src/index.js"

const runsArg = process.argv.indexOf("--runs")
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 20

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}
const summary = (values: ReadonlyArray<number>) =>
  `p50 ${percentile(values, 50).toFixed(1)} ms, p99 ${percentile(values, 99).toFixed(1)} ms, min ${Math.min(...values).toFixed(1)}, max ${Math.max(...values).toFixed(1)} (n=${values.length})`

const waitUntil = <A>(effect: Effect.Effect<A>, check: (a: A) => boolean) =>
  effect.pipe(Effect.repeat({ until: check, schedule: Schedule.spaced("1 millis") }))

/** Endless speech: 40 ms frames of a quiet tone. */
const speech = Stream.repeatEffect(Effect.sync(() => new Uint8Array(1280).fill(1)))

/** A simulator and a session on it, both living until the scope closes. */
const simulatedSession = (options: AvatarSession.Options) =>
  Effect.gen(function* () {
    const sim = yield* AvatarSimulator.make()
    const client = yield* Layer.build(
      AvatarClient.layerNode({ apiKey: Redacted.make("bench"), discoveryUrl: sim.discoveryUrl })
    ).pipe(Effect.map(Context.get(AvatarClient.AvatarClient)))
    const session = yield* client.session({ avatarId: AvatarSimulator.DEFAULT_AVATAR_ID, ...options })
    return { sim, session }
  })

const recoveryAfterDrop = (mode: "close" | "terminate") =>
  Effect.gen(function* () {
    const { sim, session } = yield* simulatedSession({
      lead: "200 millis",
      retry: Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(5)))
    })
    yield* Effect.forkScoped(Stream.run(speech, session.audio))
    yield* Effect.sleep("300 millis")
    const before = (yield* sim.sessions).length
    const start = performance.now()
    yield* sim.dropAll(mode === "close" ? { code: 1011 } : { mode })
    // audio flows again when the new connection's first frame reaches the simulator
    yield* waitUntil(sim.sessions, (s) => s.length > before && (s.at(-1)?.frameCount ?? 0) > 0)
    const recovered = performance.now() - start
    const info = yield* session.info
    return { recovered, unconfirmed: info.audio.framesUnconfirmed }
  }).pipe(Effect.scoped)

const deadPeerDetection = Effect.gen(function* () {
  const { sim, session } = yield* simulatedSession({ heartbeatInterval: "1 second", heartbeatTimeout: "1 second" })
  // the peer goes silent at a random point of the heartbeat cycle
  yield* Effect.sleep(`${Math.round(Math.random() * 1000)} millis`)
  yield* sim.setFaults(0, { noPong: true })
  const start = performance.now()
  yield* waitUntil(SubscriptionRef.get(session.state), (s) => s._tag !== "Ready")
  const detected = performance.now() - start
  yield* sim.setFaults(0, {})
  return detected
}).pipe(Effect.scoped)

const main = Effect.gen(function* () {
  yield* Console.log(`Resilience on loopback, ${RUNS} runs each (Node ${process.version})`)
  for (const mode of ["close", "terminate"] as const) {
    const results = yield* Effect.forEach(Array.from({ length: RUNS }), () => recoveryAfterDrop(mode))
    yield* Console.log(
      `recovery after a drop (${mode === "close" ? "close frame 1011" : "TCP reset, no close frame"}): ${summary(results.map((r) => r.recovered))}; frames unconfirmed per drop: max ${Math.max(...results.map((r) => r.unconfirmed))}`
    )
  }
  const detection = yield* Effect.forEach(Array.from({ length: RUNS }), () => deadPeerDetection)
  yield* Console.log(`dead peer detected (heartbeatInterval 1 s + heartbeatTimeout 1 s): ${summary(detection)}`)
})

// the sessions log each drop as a warning; only the figures are wanted here
main.pipe(Logger.withMinimumLogLevel(LogLevel.Error), NodeRuntime.runMain)
