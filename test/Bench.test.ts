/**
 * The benchmark harness at a tiny size, so that it cannot rot: every scenario runs once for
 * each client, in its own processes, and what the server received is checked. No timing is
 * asserted here; `npm run bench` measures.
 */
import { execFile } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "@effect/vitest"

const ROOT = Path.dirname(Path.dirname(fileURLToPath(import.meta.url)))
const out = mkdtempSync(Path.join(tmpdir(), "akool-bench-test-"))
afterAll(() => rmSync(out, { recursive: true, force: true }))

interface Report {
  readonly machine: { readonly cores: number; readonly node: string }
  readonly summary: Record<
    string,
    { sdk?: Record<string, number | boolean>; baseline?: Record<string, number | boolean> }
  >
  readonly runs: Record<string, Record<string, ReadonlyArray<Record<string, unknown>>>>
  readonly targets: ReadonlyArray<{ readonly figure: string; readonly value: number; readonly pass: boolean }>
}

const runTiny = () =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "bench/run.ts", "--tiny", "--out", out],
      { cwd: ROOT, timeout: 150_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr })
    )
  })

describe("npm run bench", () => {
  it("runs every scenario for both clients and writes the results and the chart", { timeout: 180_000 }, async () => {
    const { code, stdout, stderr } = await runTiny()
    expect(code, stderr).toBe(0)
    const files = readdirSync(out)
    const json = files.find((f) => f.endsWith(".json"))
    const svg = files.find((f) => f.endsWith("-concurrency.svg"))
    expect(json).toBeDefined()
    expect(svg).toBeDefined()

    const report = JSON.parse(readFileSync(Path.join(out, json!), "utf8")) as Report
    expect(report.machine.cores).toBeGreaterThan(0)
    expect(report.machine.node).toBe(process.version)
    const { summary } = report
    const pacing = ["pacing-lead-0", "pacing-lead-40", "pacing-lead-200", "pacing-lead-1000"]
    expect(Object.keys(summary).sort()).toStrictEqual(
      [
        "concurrency-3",
        "concurrency-3-lead-0",
        "concurrency-6",
        "concurrency-6-lead-0",
        "memory",
        "ready",
        "recovery",
        "throughput",
        ...pacing
      ].sort()
    )

    for (const client of ["sdk", "baseline"] as const) {
      // the server checksummed the audio of the unpaced run and counted the hour-long one
      expect(summary.throughput?.[client]?.bytesIntact).toBe(true)
      expect(summary.memory?.[client]?.bytesIntact).toBe(true)
      // every frame of every real-time session arrived
      for (const label of ["concurrency-3", "concurrency-3-lead-0", "concurrency-6", "concurrency-6-lead-0"]) {
        const figures = summary[label]?.[client]
        expect(figures?.framesReceived).toBe(figures?.expectedFrames)
        expect(figures?.sessions).toBe(Number(label.split("-")[1]))
      }
      expect(typeof summary.throughput?.[client]?.longestStallMs).toBe("number")
      expect(report.runs.ready?.[client]?.[0]?.readyMs).toHaveLength(5)
    }

    // the link was dropped and the session came back on a new connection, losing nothing it still held
    const recovery = report.runs.recovery?.sdk?.[0]
    expect(recovery?.connections).toBe(2)
    expect(recovery?.recoveriesMs).toHaveLength(1)
    expect(recovery?.noQueuedFrameLost).toBe(true)
    expect(report.runs.recovery?.baseline).toBeUndefined()

    // one SDK session at each lead: every frame arrived, and the send time is measured against the ideal
    for (const label of pacing) {
      const figures = summary[label]?.sdk
      expect(figures?.framesReceived).toBe(figures?.expectedFrames)
      expect(figures?.idealMs).toBe(Math.max(0, 1000 - Number(label.split("-")[2])))
      expect(typeof figures?.sendMs).toBe("number")
      expect(summary[label]?.baseline).toBeUndefined()
    }

    expect(report.targets.map((t) => t.figure)).toContain("throughput: client CPU, SDK / baseline")
    expect(stdout).toContain("| target | wanted | measured |")

    const chart = readFileSync(Path.join(out, svg!), "utf8")
    expect(chart.startsWith("<svg")).toBe(true)
    expect(chart.match(/<polyline /g)).toHaveLength(4)
  })
})
