/**
 * Every `examples/*.ts` runs as its own process (`node --import tsx`), against the built-in
 * simulator (no `AKOOL_*` variable is passed on), and must exit 0 after printing its `OK:`
 * line, which each example prints only once its own checks have passed. A new example is
 * picked up by the glob.
 */
import { spawn } from "node:child_process"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const EXAMPLES = readdirSync(join(ROOT, "examples"))
  .filter((name) => name.endsWith(".ts"))
  .sort()

const env: Record<string, string> = {}
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("AKOOL_") && v !== undefined) env[k] = v

const runExample = async (name: string) => {
  // the examples import "akool-streaming-avatar"; the akool-source condition resolves it to src/
  const child = spawn(process.execPath, ["--conditions=akool-source", "--import", "tsx", join("examples", name)], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (d) => {
    stdout += String(d)
  })
  child.stderr.on("data", (d) => {
    stderr += String(d)
  })
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve))
  return { code, stdout, stderr }
}

describe("examples", () => {
  it("there are examples to run", () => {
    expect(EXAMPLES.length).toBeGreaterThanOrEqual(7)
  })

  it.concurrent.each(EXAMPLES)("%s runs against the simulator and passes its own checks", async (name) => {
    const { code, stdout, stderr } = await runExample(name)
    const report = `--- stdout\n${stdout}\n--- stderr\n${stderr}`
    expect(code, report).toBe(0)
    expect(stdout, report).toMatch(/^OK: .{10,}$/m)
    expect(stdout + stderr, report).not.toMatch(/CHECK FAILED/)
  }, 60_000)
})
