/**
 * Tracing and metrics with OpenTelemetry: `@effect/opentelemetry`'s `NodeSdk` layer exports
 * the SDK's spans (discovery, connect, setParams, interrupt, reconnect, close) and its
 * `akool_avatar_*` metrics. Here they go to in-memory exporters and are printed; in an
 * application, put an OTLP exporter in their place.
 *
 * Runs against the built-in simulator, drops the link once to show a reconnect, and checks
 * that neither the API key nor the Agora token appears in any exported span.
 *
 *     node --import tsx examples/observability.ts
 */
import { NodeSdk } from "@effect/opentelemetry"
import { InMemoryMetricExporter, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { AvatarClient, AvatarSimulator } from "akool-streaming-avatar"
import { Console, Effect, Redacted, Schedule, Stream } from "effect"

const API_KEY = "sk-example-never-exported"
const AGORA_TOKEN = "agora-token-never-exported"

const spans = new InMemorySpanExporter()
const metrics = new InMemoryMetricExporter(0 /* cumulative */)
const metricReader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 60_000 })

const Telemetry = NodeSdk.layer(() => ({
  resource: { serviceName: "avatar-example" },
  spanProcessor: new SimpleSpanProcessor(spans),
  metricReader
}))

// two seconds of quiet tone, 16 kHz 16-bit mono, in 200 ms chunks
const speech = Stream.range(0, 9).pipe(Stream.map(() => new Uint8Array(6400).fill(3)))

const report = Effect.gen(function* () {
  const finished = spans.getFinishedSpans()
  const names = [...new Set(finished.map((s) => s.name))].filter(
    (n) => n.startsWith("AvatarSession") || n.includes(".")
  )
  yield* Console.log(`spans: ${names.sort().join(", ")}`)
  const exported = metrics
    .getMetrics()
    .flatMap((resource) => resource.scopeMetrics.flatMap((scope) => scope.metrics))
    .filter((m) => m.descriptor.name.startsWith("akool_avatar_"))
  const latest = new Map<string, string>()
  for (const metric of exported) {
    const point = metric.dataPoints.at(-1)
    const value = point === undefined ? "" : typeof point.value === "number" ? String(point.value) : "histogram"
    latest.set(metric.descriptor.name, value)
  }
  for (const [name, value] of [...latest].sort()) yield* Console.log(`  ${name} ${value}`)

  const wanted = [
    "AvatarSession.connect",
    "AvatarSession.setParams",
    "AvatarSession.reconnect",
    "AvatarSession.interrupt"
  ]
  const missing = wanted.filter((name) => !names.includes(name))
  if (missing.length > 0) return yield* Effect.dieMessage(`CHECK FAILED: no span ${missing.join(", ")}`)
  if (!latest.has("akool_avatar_frames_sent_total") || !latest.has("akool_avatar_reconnects_total")) {
    return yield* Effect.dieMessage("CHECK FAILED: the akool_avatar_* metrics were not exported")
  }
  const everything = JSON.stringify(finished.map((s) => [s.name, s.attributes, s.events]))
  if (everything.includes(API_KEY) || everything.includes(AGORA_TOKEN)) {
    return yield* Effect.dieMessage("CHECK FAILED: a secret reached an exported span")
  }
  yield* Console.log(
    `OK: ${finished.length} spans and ${latest.size} akool_avatar_* metrics exported, with no key and no token in them`
  )
})

const program = Effect.gen(function* () {
  const simulator = yield* AvatarSimulator.make()
  yield* Effect.gen(function* () {
    const session = yield* AvatarClient.session({
      avatarId: "dvp_Tristan_cloth2_1080P",
      retry: Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(3)))
    })
    yield* session.setParams({
      agora: { appId: "example-app", channel: "example-channel", token: AGORA_TOKEN, uid: 7 }
    })
    yield* Stream.run(speech.pipe(Stream.take(3)), session.audio)
    // the service drops the link: the session reconnects (a span) and carries on
    yield* simulator.dropAll({ code: 1011 })
    yield* Stream.run(speech, session.audio)
    yield* session.interrupt
  }).pipe(
    Effect.scoped,
    Effect.provide(AvatarClient.layerNode({ apiKey: Redacted.make(API_KEY), discoveryUrl: simulator.discoveryUrl }))
  )
  // hand the metrics to the exporter now rather than at the next interval
  yield* Effect.promise(() => metricReader.forceFlush())
  // read before the SDK shuts down: shutting down empties the in-memory exporters
  yield* report
}).pipe(Effect.scoped, Effect.provide(Telemetry))

Effect.runPromise(program).catch((error) => {
  console.error(String(error))
  process.exitCode = 1
})
