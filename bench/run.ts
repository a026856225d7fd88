/**
 * `npm run bench`: the SDK beside a hand-written `ws` client (`bench/baseline.ts`), same
 * jobs, same run, alternating, several repetitions. The server runs in its own process
 * (`bench/server.ts`) and so does each client run (`bench/worker.ts`), so every CPU, heap
 * and RSS figure belongs to one client alone.
 *
 *     npm run bench                       # all scenarios, 3 repetitions, 250/500/1000 sessions
 *     npm run bench -- --reps 5 --only concurrency,ready --clients sdk
 *     npm run bench -- --tiny --out /tmp/b  # every scenario once at a tiny size (what `npm test` runs)
 *
 * Extra Node flags for the client processes come from `BENCH_WORKER_ARGS`, for example
 * `BENCH_WORKER_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"` to profile each client run.
 *
 * Writes `bench/results/<date>.json` and `bench/results/<date>-concurrency.svg` (or into
 * `--out`), and prints the medians, the SDK / baseline ratios and the targets of issue 4.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { concurrencyChart } from "./chart.js"
import {
  type Client,
  median,
  percentile,
  type Scenario,
  type SdkWay,
  type WorkerInput,
  type WorkerOutput
} from "./shared.js"

const HERE = Path.dirname(fileURLToPath(import.meta.url))
const ROOT = Path.dirname(HERE)

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const option = (name: string) => {
  const at = argv.indexOf(`--${name}`)
  return at >= 0 ? argv[at + 1] : undefined
}

const tiny = flag("tiny")
const plan = {
  /** `--sink`: the SDK streams through `Stream.run(speech, session.audio)` instead of `session.speak`. */
  sdkWay: (flag("sink") ? "sink" : "speak") as SdkWay,
  reps: Number(option("reps") ?? (tiny ? 1 : 3)),
  throughputFrames: tiny ? 200 : 15_000,
  sizes: (option("sizes") ?? (tiny ? "3,6" : "250,500,1000")).split(",").map(Number),
  concurrencySeconds: Number(option("seconds") ?? (tiny ? 1 : 20)),
  readySessions: tiny ? 5 : 100,
  recoverySeconds: tiny ? 3 : 20,
  recoveryDrops: tiny ? 1 : 20,
  /** One hour of 40 ms frames. */
  memoryFrames: tiny ? 1_500 : 90_000,
  /** The pacing scenario: an utterance of this long, available at once, at each lead. */
  pacingSeconds: Number(option("pacing-seconds") ?? (tiny ? 1 : 5)),
  pacingLeadsMs: [0, 40, 200, 1000]
}
const only = option("only")?.split(",") as Array<Scenario> | undefined
const onlyClients = option("clients")?.split(",") as Array<Client> | undefined
const runs = (scenario: Scenario) => only === undefined || only.includes(scenario)
const outDir = option("out") ?? Path.join(HERE, "results")
const date = new Date().toISOString().slice(0, 10)

// ---------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------

const WORKER_ARGS = (process.env.BENCH_WORKER_ARGS ?? "").split(" ").filter((arg) => arg !== "")

/**
 * The server and the clients run as JavaScript compiled by `tsc`, as the package ships
 * (`dist/` is built the same way), not through tsx: its esbuild transform wraps every named
 * closure in a `__name(...)` call that defines a property on it, which costs both clients CPU
 * and the SDK about 9 KB of heap per session that no user pays.
 */
const BUILD = Path.join(ROOT, "node_modules", ".cache", "akool-bench")

const compile = () => {
  rmSync(BUILD, { recursive: true, force: true })
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  const result = spawnSync(process.execPath, [tsc, "-p", Path.join(HERE, "tsconfig.json"), "--outDir", BUILD], {
    cwd: ROOT,
    stdio: "inherit"
  })
  if (result.status !== 0) throw new Error(`compiling the benchmark with tsc failed (exit ${result.status})`)
}

const node = (script: string, args: ReadonlyArray<string>, stdout: "pipe" | "inherit") =>
  spawn(
    process.execPath,
    [...(script === "worker" ? WORKER_ARGS : []), "--expose-gc", Path.join(BUILD, "bench", `${script}.js`), ...args],
    {
      cwd: ROOT,
      stdio: ["pipe", stdout, "inherit"]
    }
  )

const exited = (child: ChildProcess) =>
  new Promise<number>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0))))

const startServer = async () => {
  const child = node("server", [], "pipe")
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve)
    child.once("exit", (code) => reject(new Error(`the bench server exited with ${code} before listening`)))
  })
  const { port } = JSON.parse(line) as { port: number }
  const base = `http://127.0.0.1:${port}`
  return {
    port,
    reset: (verify: boolean) => fetch(`${base}/bench/reset${verify ? "?verify=1" : ""}`, { method: "POST" }),
    stats: async () => (await (await fetch(`${base}/bench/stats`)).json()) as ServerStats,
    stop: async () => {
      child.stdin!.end()
      await exited(child)
    }
  }
}

interface ServerStats {
  readonly sessions: number
  readonly frames: number
  readonly bytes: number
  readonly late: number
  readonly interArrivalMs: {
    readonly count: number
    readonly p50: number
    readonly p90: number
    readonly p99: number
    readonly p999: number
    readonly max: number
  }
  readonly perSession: ReadonlyArray<{
    readonly id: string
    readonly connections: number
    readonly frames: number
    readonly bytes: number
    readonly hash: number
    readonly recoveries: ReadonlyArray<number>
  }>
}

type Server = Awaited<ReturnType<typeof startServer>>

let scratch = 0
const runWorker = async (input: WorkerInput): Promise<WorkerOutput> => {
  const file = Path.join(Os.tmpdir(), `akool-bench-${process.pid}-${++scratch}.json`)
  const code = await exited(node("worker", [JSON.stringify(input), file], "inherit"))
  if (code !== 0) throw new Error(`${input.client} ${input.scenario} exited with code ${code}`)
  const output = JSON.parse(readFileSync(file, "utf8")) as WorkerOutput
  rmSync(file)
  return output
}

// ---------------------------------------------------------------------------
// scenarios: the worker's client-side figures plus the server's view of the same run
// ---------------------------------------------------------------------------

type Figures = Record<string, number | boolean | string | ReadonlyArray<number> | ReadonlyArray<string>>

const session = (stats: ServerStats, id: unknown) => stats.perSession.find((s) => s.id === id)

const measure = async (server: Server, input: WorkerInput): Promise<Figures> => {
  await server.reset(input.scenario === "throughput")
  const client = await runWorker(input)
  const stats = await server.stats()
  switch (input.scenario) {
    case "throughput": {
      const s = session(stats, client.sessionId)
      return {
        ...client,
        bytesReceived: s?.bytes ?? 0,
        bytesIntact: s !== undefined && s.bytes === client.expectedBytes && s.hash === client.expectedHash
      }
    }
    case "concurrency":
      // the worker read the server's figures itself, right after the timed utterance
      return client
    case "recovery": {
      const s = session(stats, client.sessionId)
      const lost = (client.framesAccepted as number) - (s?.frames ?? 0)
      return {
        ...client,
        connections: s?.connections ?? 0,
        recoveriesMs: s?.recoveries ?? [],
        framesLost: lost,
        // frames lost must be frames the session reported in doubt, never frames it still held
        noQueuedFrameLost: lost <= (client.framesUnconfirmed as number)
      }
    }
    case "memory": {
      const s = session(stats, client.sessionId)
      return { ...client, bytesReceived: s?.bytes ?? 0, bytesIntact: s?.bytes === client.expectedBytes }
    }
    case "ready":
    case "pacing":
      // the worker read the server's figures itself, before the session closed
      return client
  }
}

interface Cell {
  readonly scenario: Scenario
  readonly label: string
  readonly clients: ReadonlyArray<Client>
  readonly input: Omit<WorkerInput, "client" | "port">
}

const cells: Array<Cell> = [
  ...(runs("throughput")
    ? [
        {
          scenario: "throughput" as const,
          label: "throughput",
          clients: ["sdk", "baseline"] as const,
          input: { scenario: "throughput" as const, frames: plan.throughputFrames }
        }
      ]
    : []),
  // the SDK's default lead, then no lead: what the hand-written client does, each frame as its slot starts
  ...(runs("concurrency")
    ? plan.sizes.flatMap((sessions) =>
        [undefined, 0].map((leadMs) => ({
          scenario: "concurrency" as const,
          label: `concurrency-${sessions}${leadMs === undefined ? "" : `-lead-${leadMs}`}`,
          clients: ["sdk", "baseline"] as const,
          input: {
            scenario: "concurrency" as const,
            sessions,
            seconds: plan.concurrencySeconds,
            ...(leadMs === undefined ? {} : { leadMs })
          }
        }))
      )
    : []),
  ...(runs("pacing")
    ? plan.pacingLeadsMs.map((leadMs) => ({
        scenario: "pacing" as const,
        label: `pacing-lead-${leadMs}`,
        // the hand-written client has one way to pace, at no lead: the concurrency scenario has it
        clients: ["sdk"] as const,
        input: { scenario: "pacing" as const, seconds: plan.pacingSeconds, leadMs }
      }))
    : []),
  ...(runs("ready")
    ? [
        {
          scenario: "ready" as const,
          label: "ready",
          clients: ["sdk", "baseline"] as const,
          input: { scenario: "ready" as const, sessions: plan.readySessions }
        }
      ]
    : []),
  ...(runs("recovery")
    ? [
        {
          scenario: "recovery" as const,
          label: "recovery",
          // the hand-written client has no recovery to measure
          clients: ["sdk"] as const,
          input: { scenario: "recovery" as const, seconds: plan.recoverySeconds, drops: plan.recoveryDrops }
        }
      ]
    : []),
  ...(runs("memory")
    ? [
        {
          scenario: "memory" as const,
          label: "memory",
          clients: ["sdk", "baseline"] as const,
          input: { scenario: "memory" as const, frames: plan.memoryFrames }
        }
      ]
    : [])
]

// ---------------------------------------------------------------------------
// summary
// ---------------------------------------------------------------------------

type Runs = Record<string, Partial<Record<Client, Array<Figures>>>>

/** The median over repetitions of every numeric figure; booleans must hold in every run. */
const summarize = (figures: ReadonlyArray<Figures>) => {
  const out: Record<string, number | boolean> = {}
  for (const key of Object.keys(figures[0] ?? {})) {
    const values = figures.map((f) => f[key])
    if (values.every((v) => typeof v === "number")) out[key] = median(values as Array<number>)
    else if (values.every((v) => typeof v === "boolean")) out[key] = values.every(Boolean)
  }
  return out
}

const round = (value: number, digits = 3) => Number(value.toPrecision(digits))

const main = async () => {
  compile()
  const server = await startServer()
  const results: Runs = {}
  const started = performance.now()
  try {
    for (let rep = 0; rep < plan.reps; rep++) {
      for (const cell of cells) {
        // alternate which client goes first, so neither always runs on a warmer machine
        const chosen = cell.clients.filter((c) => onlyClients === undefined || onlyClients.includes(c))
        const order = rep % 2 === 0 ? chosen : [...chosen].reverse()
        for (const client of order) {
          const figures = await measure(server, { ...cell.input, client, port: server.port, sdkWay: plan.sdkWay })
          const bucket = results[cell.label] ?? {}
          results[cell.label] = bucket
          bucket[client] = [...(bucket[client] ?? []), figures]
          console.error(`[${rep + 1}/${plan.reps}] ${cell.label} ${client}: ${brief(cell.scenario, figures)}`)
        }
      }
    }
  } finally {
    await server.stop()
  }

  const summary: Record<
    string,
    { sdk?: Record<string, number | boolean>; baseline?: Record<string, number | boolean> }
  > = {}
  for (const [label, byClient] of Object.entries(results)) {
    summary[label] = {
      ...(byClient.sdk ? { sdk: summarize(byClient.sdk) } : {}),
      ...(byClient.baseline ? { baseline: summarize(byClient.baseline) } : {})
    }
  }
  const recoveries = (results.recovery?.sdk ?? []).flatMap((f) => f.recoveriesMs as ReadonlyArray<number>)
  if (summary.recovery?.sdk) {
    summary.recovery.sdk.recoveryP50Ms = percentile(recoveries, 50)
    summary.recovery.sdk.recoveryP99Ms = percentile(recoveries, 99)
    summary.recovery.sdk.drops = recoveries.length
  }
  const ready = (client: Client) => (results.ready?.[client] ?? []).flatMap((f) => f.readyMs as ReadonlyArray<number>)
  for (const client of ["sdk", "baseline"] as const) {
    const s = summary.ready?.[client]
    if (s) {
      s.p50 = percentile(ready(client), 50)
      s.p99 = percentile(ready(client), 99)
    }
  }

  const largest = `concurrency-${Math.max(...plan.sizes)}`
  const ratio = (label: string, key: string) => {
    const sdk = summary[label]?.sdk?.[key]
    const baseline = summary[label]?.baseline?.[key]
    return typeof sdk === "number" && typeof baseline === "number" ? round(sdk / baseline) : Number.NaN
  }
  const num = (label: string, client: Client, key: string) => {
    const value = summary[label]?.[client]?.[key]
    return typeof value === "number" ? value : Number.NaN
  }
  const targets = [
    {
      figure: "throughput: client CPU, SDK / baseline",
      target: "<= 1.10",
      value: ratio("throughput", "cpuSeconds"),
      pass: ratio("throughput", "cpuSeconds") <= 1.1 && summary.throughput?.sdk?.bytesIntact === true
    },
    {
      figure: `${largest.slice(12)} sessions: frames on time (SDK)`,
      target: ">= 0.99",
      value: round(num(largest, "sdk", "onTimeRatio"), 4),
      pass: num(largest, "sdk", "onTimeRatio") >= 0.99
    },
    {
      figure: `${largest.slice(12)} sessions: server inter-arrival p99 (SDK), ms`,
      target: "<= 60",
      value: round(num(largest, "sdk", "interArrivalP99Ms")),
      pass: num(largest, "sdk", "interArrivalP99Ms") <= 60
    },
    {
      figure: `${largest.slice(12)} sessions: client CPU, SDK / baseline`,
      target: "<= 1.0",
      value: ratio(largest, "cpuSeconds"),
      pass: ratio(largest, "cpuSeconds") <= 1.0
    },
    {
      figure: `heap per session at ${largest.slice(12)} sessions (SDK), KB`,
      target: "<= 64",
      value: round(num(largest, "sdk", "heapPerSessionKB")),
      pass: num(largest, "sdk", "heapPerSessionKB") <= 64
    },
    {
      figure: "time to ready p50, SDK minus baseline, ms",
      target: "<= 5",
      value: round(num("ready", "sdk", "p50") - num("ready", "baseline", "p50")),
      pass: num("ready", "sdk", "p50") - num("ready", "baseline", "p50") <= 5
    },
    {
      figure: "recovery after a drop p50 (SDK), ms",
      target: "<= 250, no queued frame lost",
      value: round(num("recovery", "sdk", "recoveryP50Ms")),
      pass: num("recovery", "sdk", "recoveryP50Ms") <= 250 && summary.recovery?.sdk?.noQueuedFrameLost === true
    },
    {
      figure: "one hour of audio unpaced: RSS growth (SDK), MB",
      target: "<= 20",
      value: round(num("memory", "sdk", "rssGrowthMB")),
      pass: num("memory", "sdk", "rssGrowthMB") <= 20 && summary.memory?.sdk?.bytesIntact === true
    }
  ].filter((t) => !Number.isNaN(t.value))

  const report = {
    date: new Date().toISOString(),
    tiny,
    machine: {
      cores: Os.cpus().length,
      cpu: Os.cpus()[0]?.model ?? "unknown",
      memoryGB: round(Os.totalmem() / 1024 ** 3),
      node: process.version,
      platform: `${process.platform} ${process.arch}`
    },
    versions: versions(),
    plan,
    durationSeconds: round((performance.now() - started) / 1000),
    summary,
    ratios: Object.fromEntries(
      Object.keys(summary)
        .filter((label) => summary[label]?.sdk && summary[label]?.baseline)
        .map((label) => [
          label,
          Object.fromEntries(
            ["cpuSeconds", "wallMs", "p50", "heapPerSessionKB", "rssGrowthMB"]
              .map((key) => [key, ratio(label, key)] as const)
              .filter(([, value]) => !Number.isNaN(value))
          )
        ])
    ),
    targets,
    runs: results
  }

  mkdirSync(outDir, { recursive: true })
  const json = Path.join(outDir, `${date}.json`)
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`)
  const points = plan.sizes.map((sessions) => ({
    sessions,
    sdk: summary[`concurrency-${sessions}`]?.sdk,
    baseline: summary[`concurrency-${sessions}`]?.baseline
  }))
  const svg = Path.join(outDir, `${date}-concurrency.svg`)
  if (runs("concurrency")) {
    writeFileSync(
      svg,
      concurrencyChart({
        title: `${plan.concurrencySeconds} s of real-time audio per session, ${report.machine.cores} cores, Node ${process.version}`,
        points: points.map((p) => ({
          sessions: p.sessions,
          sdk: { onTime: Number(p.sdk?.onTimeRatio) * 100, cpu: Number(p.sdk?.cpuPercent) },
          baseline: { onTime: Number(p.baseline?.onTimeRatio) * 100, cpu: Number(p.baseline?.cpuPercent) }
        }))
      })
    )
  }

  console.log(`\n${table(summary)}\n`)
  console.log("| target | wanted | measured | |\n| --- | --- | --- | --- |")
  for (const t of targets) console.log(`| ${t.figure} | ${t.target} | ${t.value} | ${t.pass ? "met" : "MISSED"} |`)
  console.log(`\nwrote ${Path.relative(ROOT, json)}${runs("concurrency") ? ` and ${Path.relative(ROOT, svg)}` : ""}`)
}

const versions = () => {
  const lock = JSON.parse(readFileSync(Path.join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { version?: string }>
  }
  const of = (name: string) => lock.packages[`node_modules/${name}`]?.version ?? "?"
  return { effect: of("effect"), "@effect/platform": of("@effect/platform"), ws: of("ws") }
}

const brief = (scenario: Scenario, f: Figures) => {
  const n = (key: string, digits = 3) => (typeof f[key] === "number" ? round(f[key] as number, digits) : f[key])
  switch (scenario) {
    case "throughput":
      return `cpu ${n("cpuSeconds")} s, wall ${n("wallMs")} ms, loop delay p99 ${n("eventLoopDelayP99Ms")} ms, longest stall ${n("longestStallMs")} ms, intact ${f.bytesIntact}`
    case "concurrency":
      return `on time ${n("onTimeRatio", 4)}, gap p50/p90/p99 ${n("interArrivalP50Ms")}/${n("interArrivalP90Ms")}/${n("interArrivalP99Ms")} ms, cpu ${n("cpuPercent")} %, loop p99 ${n("eventLoopDelayP99Ms")} ms, heap/session ${n("heapPerSessionKB")} KB`
    case "ready":
      return `p50 ${n("p50")} ms, p99 ${n("p99")} ms`
    case "recovery":
      return `recoveries ${(f.recoveriesMs as ReadonlyArray<number>).map((v) => round(v)).join(", ")} ms; lost ${f.framesLost}, unconfirmed ${f.framesUnconfirmed}`
    case "memory":
      return `rss growth ${n("rssGrowthMB")} MB, cpu ${n("cpuSeconds")} s, wall ${n("wallMs")} ms, intact ${f.bytesIntact}`
    case "pacing":
      return `lead ${n("leadMs")} ms: sent in ${n("sendMs", 4)} ms (ideal ${n("idealMs", 4)}, ${n("sendOverIdeal")}x), at the server ${n("serverSpanMs", 4)} ms (rule ${n("ruleSpanMs", 4)}), gap p50/p99/max ${n("interArrivalP50Ms")}/${n("interArrivalP99Ms")}/${n("interArrivalMaxMs")} ms, frames ${f.framesReceived}/${f.expectedFrames}`
  }
}

const table = (
  summary: Record<string, { sdk?: Record<string, number | boolean>; baseline?: Record<string, number | boolean> }>
) => {
  const rows = ["| scenario | figure | SDK | baseline | SDK / baseline |", "| --- | --- | --- | --- | --- |"]
  for (const [label, s] of Object.entries(summary)) {
    const keys = Object.keys(s.sdk ?? s.baseline ?? {})
    for (const key of keys) {
      const a = s.sdk?.[key]
      const b = s.baseline?.[key]
      if (typeof a !== "number" && typeof a !== "boolean") continue
      const show = (v: unknown) => (typeof v === "number" ? String(round(v)) : v === undefined ? "" : String(v))
      const r = typeof a === "number" && typeof b === "number" && b !== 0 ? String(round(a / b)) : ""
      rows.push(`| ${label} | ${key} | ${show(a)} | ${show(b)} | ${r} |`)
    }
  }
  return rows.join("\n")
}

await main()
