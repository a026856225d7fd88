/**
 * One client, one scenario, in a process of its own (started by `bench/run.ts` with
 * `--expose-gc`), so CPU, heap and RSS belong to that client alone. The same scenario code
 * drives the SDK and the baseline through `Driver`; it writes what it measured, as JSON, to
 * the file named by its second argument.
 */
import { writeFileSync } from "node:fs"
import { Session as InspectorSession } from "node:inspector"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { baselineDriver } from "./baseline.js"
import { sdkDriver } from "./sdk.js"
import {
  checksum,
  type Driver,
  FRAME_BYTES,
  FRAME_MS,
  type Handle,
  makeFrames,
  percentile,
  type WorkerInput,
  type WorkerOutput
} from "./shared.js"

const input = JSON.parse(process.argv[2]!) as WorkerInput
const resultFile = process.argv[3]!

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})
const memory = () => {
  gc()
  gc()
  return process.memoryUsage()
}
const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since)
  return (used.user + used.system) / 1e6
}
/**
 * With `BENCH_PROFILE=<file>`, the streaming phase of a concurrency run (sessions already
 * open) is profiled on its own and written as a `.cpuprofile`.
 */
const profileStreaming = async <A>(run: () => Promise<A>): Promise<A> => {
  const file = process.env.BENCH_PROFILE
  if (file === undefined) return run()
  const inspector = new InspectorSession()
  inspector.connect()
  const post = (method: string) =>
    new Promise<unknown>((resolve, reject) =>
      inspector.post(method, (error, result) => (error ? reject(error) : resolve(result)))
    )
  await post("Profiler.enable")
  await post("Profiler.start")
  const result = await run()
  const { profile } = (await post("Profiler.stop")) as { profile: unknown }
  writeFileSync(`${file}-${input.client}-${input.sessions}.cpuprofile`, JSON.stringify(profile))
  inspector.disconnect()
  return result
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * The longest time between two firings of a timer due every `everyMs`, counting the stretch
 * up to the stop: `monitorEventLoopDelay` records nothing when the loop is blocked for its whole
 * window, and a send that never yields is exactly that.
 */
const longestStall = (everyMs: number) => {
  let last = performance.now()
  let longest = 0
  const timer = setInterval(() => {
    const at = performance.now()
    longest = Math.max(longest, at - last)
    last = at
  }, everyMs)
  return () => {
    clearInterval(timer)
    return Math.max(longest, performance.now() - last)
  }
}
const MB = 1024 * 1024

/** Distinct frames, cycled: enough to catch reordering, small enough to share across sessions. */
const SOURCE = makeFrames(500)
function* frames(count: number): Generator<Uint8Array> {
  for (let i = 0; i < count; i++) yield SOURCE[i % SOURCE.length]!
}

/** Opens `count` sessions, at most `concurrency` handshakes at a time. */
const openMany = async (driver: Driver, count: number, concurrency: number, pacing: "realtime" | "none") => {
  const handles: Array<Handle> = []
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        next++
        handles.push(await driver.open({ pacing, leadMs: input.leadMs }))
      }
    })
  )
  return handles
}

const throughput = async (driver: Driver): Promise<WorkerOutput> => {
  const count = input.frames!
  const audio = [...frames(count)]
  const expectedHash = audio.reduce(checksum, 0)
  const session = await driver.open({ pacing: "none" })
  // what one unpaced stream does to everything else in the process: a timer due every few
  // milliseconds fires this late
  const delay = monitorEventLoopDelay({ resolution: 5 })
  const cpu = process.cpuUsage()
  const start = performance.now()
  delay.enable()
  const stall = longestStall(5)
  await session.unpaced(audio)
  const longestStallMs = stall()
  delay.disable()
  // the server acknowledges leave_channel after it has read every frame before it
  await session.close()
  return {
    sessionId: session.id,
    frames: count,
    expectedBytes: count * FRAME_BYTES,
    expectedHash,
    cpuSeconds: cpuSeconds(cpu),
    wallMs: performance.now() - start,
    eventLoopDelayP99Ms: delay.percentile(99) / 1e6,
    longestStallMs
  }
}

const concurrency = async (driver: Driver): Promise<WorkerOutput> => {
  const sessions = input.sessions!
  const audio = [...frames(Math.round((input.seconds! * 1000) / FRAME_MS))]
  const before = memory()
  const openStart = performance.now()
  const handles = await openMany(driver, sessions, 50, "realtime")
  const openMs = performance.now() - openStart
  const delay = monitorEventLoopDelay({ resolution: 10 })
  const cpu = process.cpuUsage()
  const start = performance.now()
  delay.enable()
  await profileStreaming(() => Promise.all(handles.map((h) => h.paced(audio))))
  delay.disable()
  const wallMs = performance.now() - start
  const used = cpuSeconds(cpu)
  // the server's view of the timed utterance, before anything else is sent
  const server = (await (await fetch(`http://127.0.0.1:${input.port}/bench/stats`)).json()) as {
    frames: number
    late: number
    interArrivalMs: { p50: number; p90: number; p99: number; p999: number; max: number }
  }
  // Memory is sampled in a second, short utterance, after the timed one: a forced full GC of a
  // large heap stops everything for a moment and would show up as late frames.
  let mid: NodeJS.MemoryUsage | undefined
  const sample = setTimeout(() => {
    mid = memory()
  }, 1500)
  await Promise.all(handles.map((h) => h.paced(audio.slice(0, 100))))
  clearTimeout(sample)
  await Promise.all(handles.map((h) => h.close()))
  mid ??= memory()
  return {
    sessions,
    expectedFrames: sessions * audio.length,
    openMs,
    wallMs,
    cpuSeconds: used,
    cpuPercent: (used * 1e5) / wallMs,
    eventLoopDelayP99Ms: delay.percentile(99) / 1e6,
    framesReceived: server.frames,
    onTimeRatio: (server.frames - server.late) / (sessions * audio.length),
    interArrivalP50Ms: server.interArrivalMs.p50,
    interArrivalP90Ms: server.interArrivalMs.p90,
    interArrivalP99Ms: server.interArrivalMs.p99,
    interArrivalP999Ms: server.interArrivalMs.p999,
    interArrivalMaxMs: server.interArrivalMs.max,
    heapPerSessionKB: (mid.heapUsed - before.heapUsed) / sessions / 1024,
    rssPerSessionKB: (mid.rss - before.rss) / sessions / 1024,
    buffersPerSessionKB: (mid.arrayBuffers - before.arrayBuffers) / sessions / 1024
  }
}

/**
 * One session, an utterance available at once: how long it takes to leave against the ideal
 * (its duration less the lead), and how evenly it arrives. The server's figures are read
 * right after it, before the session closes.
 */
const pacing = async (driver: Driver): Promise<WorkerOutput> => {
  const audio = [...frames(Math.round((input.seconds! * 1000) / FRAME_MS))]
  const leadMs = input.leadMs!
  const session = await driver.open({ pacing: "realtime", leadMs })
  const start = performance.now()
  await session.paced(audio)
  const sendMs = performance.now() - start
  const server = (await (await fetch(`http://127.0.0.1:${input.port}/bench/stats`)).json()) as {
    interArrivalMs: { p50: number; p99: number; max: number }
    perSession: ReadonlyArray<{ id: string; frames: number; spanMs: number }>
  }
  const mine = server.perSession.find((s) => s.id === session.id)
  await session.close()
  const durationMs = audio.length * FRAME_MS
  return {
    sessionId: session.id,
    leadMs,
    expectedFrames: audio.length,
    framesReceived: mine?.frames ?? 0,
    sendMs,
    idealMs: Math.max(0, durationMs - leadMs),
    sendOverIdeal: sendMs / Math.max(1, durationMs - leadMs),
    /** From the first frame's arrival to the last one's; by the pacing rule, the last slot less the lead. */
    serverSpanMs: mine?.spanMs ?? 0,
    ruleSpanMs: Math.max(0, durationMs - FRAME_MS - Math.floor(leadMs / FRAME_MS) * FRAME_MS),
    interArrivalP50Ms: server.interArrivalMs.p50,
    interArrivalP99Ms: server.interArrivalMs.p99,
    interArrivalMaxMs: server.interArrivalMs.max
  }
}

const ready = async (driver: Driver): Promise<WorkerOutput> => {
  const readyMs: Array<number> = []
  for (let i = 0; i < input.sessions!; i++) {
    const start = performance.now()
    const session = await driver.open({ pacing: "realtime" })
    readyMs.push(performance.now() - start)
    await session.close()
  }
  return { readyMs, p50: percentile(readyMs, 50), p99: percentile(readyMs, 99) }
}

const recovery = async (driver: Driver): Promise<WorkerOutput> => {
  const audio = [...frames(Math.round((input.seconds! * 1000) / FRAME_MS))]
  const session = await driver.open({ pacing: "realtime" })
  const streaming = session.paced(audio)
  // drops spread over the stream, leaving its last 2 s to finish cleanly
  const gap = ((input.seconds! - 2) * 1000) / input.drops!
  const refused: Array<string> = []
  for (let k = 0; k < input.drops!; k++) {
    await sleep(gap * (0.6 + 0.4 * Math.random()))
    const mode = k % 2 === 0 ? "close" : "terminate"
    const response = await fetch(
      `http://127.0.0.1:${input.port}/bench/drop?session_id=${encodeURIComponent(session.id)}&mode=${mode}`,
      { method: "POST" }
    )
    if (response.status !== 200) refused.push(`${k}: HTTP ${response.status}`)
  }
  await streaming
  const unconfirmed = await session.unconfirmed()
  await session.close()
  return { sessionId: session.id, framesAccepted: audio.length, framesUnconfirmed: unconfirmed, refused }
}

const memoryScenario = async (driver: Driver): Promise<WorkerOutput> => {
  const count = input.frames!
  const session = await driver.open({ pacing: "none" })
  const before = memory()
  let peak = before.rss
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 100)
  const cpu = process.cpuUsage()
  const start = performance.now()
  await session.unpaced(frames(count))
  const wallMs = performance.now() - start
  const used = cpuSeconds(cpu)
  clearInterval(sampler)
  const after = memory()
  peak = Math.max(peak, after.rss)
  await session.close()
  return {
    frames: count,
    audioSeconds: (count * FRAME_MS) / 1000,
    expectedBytes: count * FRAME_BYTES,
    sessionId: session.id,
    rssStartMB: before.rss / MB,
    rssPeakMB: peak / MB,
    rssGrowthMB: (peak - before.rss) / MB,
    rssAfterGcGrowthMB: (after.rss - before.rss) / MB,
    heapGrowthMB: (after.heapUsed - before.heapUsed) / MB,
    cpuSeconds: used,
    wallMs
  }
}

const scenarios = { throughput, concurrency, ready, recovery, memory: memoryScenario, pacing }

const driver = input.client === "sdk" ? sdkDriver(input.port, input.sdkWay ?? "speak") : baselineDriver(input.port)
const output = await scenarios[input.scenario](driver)
await driver.dispose()
writeFileSync(resultFile, JSON.stringify(output))
process.exit(0)
