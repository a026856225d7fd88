/**
 * Every `examples/*.ts` runs as its own process (`node --import tsx`), against the built-in
 * simulator (no `AKOOL_*` variable is passed on), and must exit 0 after printing its `OK:`
 * line, which each example prints only once its own checks have passed. A new example is
 * picked up by the glob.
 *
 * No `OPENAI_*` variable is passed on either: the cloud text-to-speech example skips, and
 * runs a second time against a stand-in for OpenAI's speech endpoint on localhost.
 * `text-to-speech.ts` needs espeak-ng (`.ci/run` installs it) and is skipped without it.
 */
import { spawn, spawnSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const EXAMPLES = readdirSync(join(ROOT, "examples"))
  .filter((name) => name.endsWith(".ts"))
  .sort()

const env: Record<string, string> = {}
for (const [k, v] of Object.entries(process.env))
  if (!k.startsWith("AKOOL_") && !k.startsWith("OPENAI_") && v !== undefined) env[k] = v

const hasEspeak = spawnSync("espeak-ng", ["--version"]).status === 0

/** What each example prints once it has passed; the cloud one has no key here. */
const passed = (name: string) => (name === "cloud-text-to-speech.ts" ? /^SKIP: no OPENAI_API_KEY/m : /^OK: .{10,}$/m)

const runExample = async (name: string, extraEnv: Record<string, string> = {}) => {
  // the examples import "akool-streaming-avatar"; the akool-source condition resolves it to src/
  const child = spawn(process.execPath, ["--conditions=akool-source", "--import", "tsx", join("examples", name)], {
    cwd: ROOT,
    env: { ...env, ...extraEnv },
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

  it.concurrent.for(EXAMPLES)(
    "%s runs against the simulator and passes its own checks",
    { timeout: 60_000 },
    async (name, ctx) => {
      ctx.skip(name === "text-to-speech.ts" && !hasEspeak, "espeak-ng is not installed")
      const { code, stdout, stderr } = await runExample(name)
      const report = `--- stdout\n${stdout}\n--- stderr\n${stderr}`
      expect(code, report).toBe(0)
      expect(stdout, report).toMatch(passed(name))
      expect(stdout + stderr, report).not.toMatch(/CHECK FAILED/)
    }
  )

  it("cloud-text-to-speech.ts streams a speech endpoint's 24 kHz PCM into a session", async () => {
    // one second of 24 kHz PCM, sent in odd-sized pieces as a synthesizing server would
    const pcm = Buffer.alloc(24_000 * 2)
    for (let i = 0; i < 24_000; i++)
      pcm.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 300 * i) / 24_000) * 8000), i * 2)
    const requests: Array<{ url: string | undefined; authorization: string | undefined; body: string }> = []
    const server = createServer((req, res) => {
      let body = ""
      req.on("data", (d) => {
        body += String(d)
      })
      req.on("end", async () => {
        requests.push({ url: req.url, authorization: req.headers.authorization, body })
        res.writeHead(200, { "content-type": "audio/pcm" })
        for (let at = 0; at < pcm.byteLength; at += 4801) {
          res.write(pcm.subarray(at, at + 4801))
          await new Promise((resolve) => setTimeout(resolve, 10))
        }
        res.end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    try {
      const { port } = server.address() as AddressInfo
      const { code, stdout, stderr } = await runExample("cloud-text-to-speech.ts", {
        OPENAI_API_KEY: "test-key",
        OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`
      })
      const report = `--- stdout\n${stdout}\n--- stderr\n${stderr}`
      expect(code, report).toBe(0)
      expect(stdout, report).toMatch(/^OK: the simulator received 1\.00 s of cloud speech/m)
      expect(stdout + stderr, report).not.toContain("test-key")
      expect(requests).toHaveLength(1)
      expect(requests[0].url).toBe("/v1/audio/speech")
      expect(requests[0].authorization).toBe("Bearer test-key")
      expect(JSON.parse(requests[0].body)).toMatchObject({
        model: "gpt-4o-mini-tts",
        voice: "alloy",
        response_format: "pcm"
      })
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  }, 60_000)
})

describe("the README's quickstarts", () => {
  // what a reader copies is what CI runs (and what test/Package.test.ts installs and compiles)
  const readme = readFileSync(join(ROOT, "README.md"), "utf8")
  for (const [section, file] of [
    ["## Quickstart (Effect)", "quickstart-effect.ts"],
    ["## Quickstart (Promise)", "quickstart-promise.ts"]
  ] as const) {
    it(`${section.slice(3)} is examples/${file}, word for word`, () => {
      const from = readme.indexOf("```ts\n", readme.indexOf(section)) + "```ts\n".length
      const snippet = readme.slice(from, readme.indexOf("\n```", from))
      const source = readFileSync(join(ROOT, "examples", file), "utf8")
      // the file's header comment is the README's prose around the snippet
      const code = source.slice(source.indexOf("*/") + 2).trim()
      expect(snippet.trim()).toBe(code)
    })
  }
})
