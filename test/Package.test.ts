/**
 * The published package, as a user gets it: `npm pack`, then the README's Install section,
 * word for word, in two empty projects (the tarball stands in for the package's name): an
 * Effect program's, which installs the package with its peers, and a Promise program's, which
 * installs the package alone and lets npm bring the peers. Both must hold one copy of
 * `effect`. In each, the project's own `tsc --strict` checks the quickstart
 * (`examples/quickstart-*.ts`, which import "akool-streaming-avatar"), and plain `node` runs
 * it twice: with no `AKOOL_*` variable (it starts the built-in simulator), and with only
 * `AKOOL_*` variables pointing it at a simulator this test runs.
 *
 * Everything comes from the npm registry, as for a user; npm's own cache makes a second run
 * faster. A failed install fails the test with npm's message.
 */
import { execFile, spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import ts from "typescript"
import { AvatarSimulator } from "../src/index.js"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const PACKAGE = "akool-streaming-avatar"

/**
 * The README's Install section. The README shows these commands; keep the two in step. A
 * TypeScript project adds the dev line; `@types/ws` only for Effect programs, whose
 * `@effect/platform-node` declarations use `ws`'s types (this package's own do not).
 */
const INSTALL = {
  effect: [
    ["install", PACKAGE, "effect@3", "@effect/platform@0.97", "@effect/platform-node@0.108"],
    ["install", "--save-dev", "typescript", "@types/node@20", "@types/ws"]
  ],
  promise: [
    ["install", PACKAGE],
    ["install", "--save-dev", "typescript", "@types/node@20"]
  ]
} as const

const KEY = "sk-package-test-0123456789"
/** espeak-ng, which `.ci/run` installs; the test that pipes its speech skips without it. */
const ESPEAK = spawnSync("espeak-ng", ["--version"]).status === 0
const AVATAR = "avatar-from-the-environment"

const env: Record<string, string> = {}
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("AKOOL_") && v !== undefined) env[k] = v

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command without blocking the event loop: the simulator lives in this process. */
const exec = (file: string, args: ReadonlyArray<string>, cwd: string, extra: Record<string, string> = {}) =>
  new Promise<Run>((resolve) => {
    execFile(
      file,
      args,
      { cwd, env: { ...env, ...extra }, encoding: "utf8", timeout: 240_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
        resolve({ code, stdout, stderr })
      }
    )
  })

const npm = async (args: ReadonlyArray<string>, cwd: string): Promise<string> => {
  const run = await exec("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], cwd)
  if (run.code !== 0) {
    throw new Error(`npm ${args.join(" ")} failed in ${cwd} (exit ${run.code}):\n${run.stderr}\n${run.stdout}`)
  }
  return run.stdout
}

/** What the quickstarts send: one second of a 220 Hz tone, 16 kHz, 16-bit, mono. */
const tone = (): Buffer => {
  const bytes = Buffer.alloc(32_000)
  for (let i = 0; i < 16_000; i++)
    bytes.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 220 * i) / 16_000) * 6000), i * 2)
  return bytes
}

const dir = mkdtempSync(join(tmpdir(), "akool-pack-"))
let tarball = ""
let simulator: AvatarSimulator.Running | undefined

beforeAll(async () => {
  // Two instances: the two quickstarts run at once, and an instance takes one connection at a
  // time (a second is closed with 4003, and the client moves on to the other instance).
  simulator = await AvatarSimulator.start({ apiKey: KEY, instances: 2 })
  const packed = JSON.parse(await npm(["pack", "--json", "--pack-destination", dir], ROOT)) as Array<{
    filename: string
    files: Array<{ path: string }>
  }>
  const files = packed[0].files.map((f) => f.path)
  expect(files).toContain("dist/index.js")
  expect(files).toContain("dist/index.d.ts")
  expect(files).toContain("dist/StreamingAvatarClient.js")
  expect(files).toContain("dist/bin/akool-avatar.js")
  for (const file of ["README.md", "ARCHITECTURE.md", "LICENSE", "CHANGELOG.md", "docs/audio.md", "docs/cli.md"])
    expect(files).toContain(file)
  // the examples, as the README names them, with their helpers and the demo's audio
  for (const file of ["quickstart-effect.ts", "quickstart-promise.ts", "support/target.ts", "sample.wav", "sample.mp3"])
    expect(files).toContain(`examples/${file}`)
  // the guides, not the generated API reference; no tests, fixtures, benchmarks or tool configuration
  expect(
    files.filter((f) => /^(test|bench|scripts|\.changeset)\/|^docs\/api\/|fixtures|\.test\.|tsconfig|biome/.test(f))
  ).toEqual([])
  tarball = join(dir, packed[0].filename)
}, 120_000)

afterAll(async () => {
  await simulator?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** An empty ESM project, set up as the Install section says. */
const project = async (user: keyof typeof INSTALL): Promise<string> => {
  const path = join(dir, user)
  mkdirSync(path)
  writeFileSync(join(path, "package.json"), JSON.stringify({ name: `${user}-user`, private: true, type: "module" }))
  for (const args of INSTALL[user])
    await npm(
      args.map((arg) => (arg === PACKAGE ? tarball : arg)),
      path
    )
  return path
}

/** Every copy of `effect` in the project's tree, wherever it was placed. */
const effects = async (path: string) =>
  (
    JSON.parse(await npm(["query", "[name=effect]"], path)) as Array<{
      name: string
      version: string
      location: string
    }>
  ).map(({ name, version, location }) => ({ name, version, location }))

/** `tsc --noEmit --strict` with the project's TypeScript, NodeNext, and the libraries' declarations checked. */
const typecheck = async (path: string, name: string) => {
  const source = readFileSync(join(ROOT, "examples", `${name}.ts`), "utf8")
  expect(source).toContain('from "akool-streaming-avatar"')
  writeFileSync(join(path, `${name}.ts`), source)
  writeFileSync(
    join(path, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        module: "NodeNext",
        moduleResolution: "NodeNext",
        target: "ES2022",
        types: ["node"],
        strict: true,
        noEmit: true,
        skipLibCheck: false
      },
      files: [`${name}.ts`]
    })
  )
  const run = await exec(join(path, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.json"], path)
  expect(run.code, `tsc --strict on ${name}.ts\n${run.stdout}${run.stderr}`).toBe(0)
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }
  })
  writeFileSync(join(path, `${name}.mjs`), outputText)
}

const runQuickstart = async (path: string, name: string, variables: Record<string, string> = {}) => {
  const run = await exec(process.execPath, [`${name}.mjs`], path, variables)
  const report = `--- ${name} ${JSON.stringify(variables)}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`
  expect(run.code, report).toBe(0)
  return { ...run, report }
}

/** Both ways a quickstart runs: the simulator it starts itself, and the one the variables name. */
const quickstart = async (path: string, name: string) => {
  const alone = await runQuickstart(path, name)
  expect(alone.stdout, alone.report).toMatch(/^OK: the simulator received all 32000 bytes, byte for byte$/m)

  const sim = simulator as AvatarSimulator.Running
  const configured = await runQuickstart(path, name, {
    AKOOL_API_KEY: KEY,
    AKOOL_DISCOVERY_URL: sim.discoveryUrl,
    AKOOL_AVATAR_ID: AVATAR
  })
  expect(configured.stdout, configured.report).toMatch(/^OK: spoke one second of audio$/m)
  const sessionId = /^connected, session (\S+)$/m.exec(configured.stdout)?.[1]
  expect(sessionId, configured.report).toBeDefined()
  const sessions = (await sim.sessions()).filter((s) => s.sessionId === sessionId)
  const report = `${configured.report}\n--- the simulator's records of the session\n${JSON.stringify(sessions, (key, value: unknown) => (key === "frames" && Array.isArray(value) ? value.length : value))}`
  // one connection took the session; one refused as occupied (the other quickstart held that
  // instance) is the client finding a free one, and nothing else may have been refused
  expect(
    sessions.filter((s) => s.refusedWith === undefined).map((s) => s.avatarId),
    report
  ).toEqual([AVATAR])
  expect(
    sessions.filter((s) => s.refusedWith !== undefined).map((s) => [s.refusedWith, s.avatarId]),
    report
  ).toEqual(sessions.filter((s) => s.refusedWith !== undefined).map(() => [4003, AVATAR]))
  expect(Buffer.from(await sim.audio(sessionId as string)).equals(tone()), configured.report).toBe(true)
  expect(configured.stdout + configured.stderr).not.toContain(KEY)
}

/** The Promise program's project, set up once for the tests that use it. */
let promiseSetup: Promise<string> | undefined
const promiseProject = () => {
  promiseSetup ??= project("promise")
  return promiseSetup
}

/** A 16 kHz mono 16-bit WAV's format and data size, from its chunks. */
const wavInfo = (wav: Buffer) => {
  expect(wav.toString("ascii", 0, 4) + wav.toString("ascii", 8, 12)).toBe("RIFFWAVE")
  expect(wav.readUInt32LE(4)).toBe(wav.length - 8)
  let format: { tag: number; channels: number; rate: number; bits: number } | undefined
  let data: number | undefined
  for (let at = 12; at + 8 <= wav.length; ) {
    const id = wav.toString("ascii", at, at + 4)
    const size = wav.readUInt32LE(at + 4)
    if (id === "fmt ") {
      format = {
        tag: wav.readUInt16LE(at + 8),
        channels: wav.readUInt16LE(at + 10),
        rate: wav.readUInt32LE(at + 12),
        bits: wav.readUInt16LE(at + 22)
      }
    }
    if (id === "data") {
      // the whole rest of the file, as the header says
      expect(at + 8 + size).toBe(wav.length)
      data = size
    }
    at += 8 + size + (size % 2)
  }
  return { format, data }
}

describe("npm pack, then the Install section in an empty project", () => {
  it.concurrent("an Effect program: the package with effect 3 and its platform peers, one effect; the quickstart type-checks and runs", async () => {
    const path = await project("effect")
    const manifest = JSON.parse(readFileSync(join(path, "package.json"), "utf8"))
    expect(manifest.dependencies.effect).toMatch(/^\^3\./)
    expect(await effects(path)).toEqual([
      { name: "effect", version: expect.stringMatching(/^3\./), location: "node_modules/effect" }
    ])
    // no missing or invalid peer anywhere in the tree
    await npm(["ls", "--all"], path)
    await typecheck(path, "quickstart-effect")
    await quickstart(path, "quickstart-effect")
  }, 300_000)

  it.concurrent("a Promise program: the package alone, npm brings effect 3 as a peer, one effect; the quickstart type-checks and runs", async () => {
    const path = await promiseProject()
    expect(await effects(path)).toEqual([
      { name: "effect", version: expect.stringMatching(/^3\./), location: "node_modules/effect" }
    ])
    await npm(["ls", "--all"], path)
    // the command line's @effect/cli, a dependency, finds its peers in the user's tree
    const cli = await exec(join(path, "node_modules", ".bin", "akool-avatar"), ["--help"], path)
    expect(cli.code, cli.stdout + cli.stderr).toBe(0)
    // the package's own declarations need no `ws` types
    expect(existsSync(join(path, "node_modules", "@types", "ws"))).toBe(false)
    await typecheck(path, "quickstart-promise")
    await quickstart(path, "quickstart-promise")
  }, 300_000)

  it.skipIf(!ESPEAK).concurrent(
    `the installed command line: npx akool-avatar simulate --save-dir DIR --inspector (its page served from the package), espeak-ng --stdout piped into npx akool-avatar stream -, and DIR/<session id>.wav holds what was sent${ESPEAK ? "" : " (skipped: espeak-ng is not installed)"}`,
    async () => {
      const path = await promiseProject()
      const saveDir = join(dir, "saved")
      // its own process group, so that Ctrl-C (SIGINT to the group) reaches npx and the command alike
      const simulate = spawn("npx", ["akool-avatar", "simulate", "--save-dir", saveDir, "--inspector"], {
        cwd: path,
        env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const out = { stdout: "", stderr: "" }
      simulate.stdout.on("data", (d) => {
        out.stdout += String(d)
      })
      simulate.stderr.on("data", (d) => {
        out.stderr += String(d)
      })
      // what a shell reports as 130: the command's exit code, or npx ended by the SIGINT itself
      const exited = new Promise<number | null>((resolve) =>
        simulate.on("close", (code, signal) => resolve(signal === "SIGINT" ? 130 : code))
      )
      const report = () => `--- simulate\n${out.stdout}\n--- stderr\n${out.stderr}`
      try {
        for (let waited = 0; !out.stdout.includes("Ctrl-C to stop."); waited += 50) {
          if (waited > 60_000 || simulate.exitCode !== null) throw new Error(`the simulator did not start\n${report()}`)
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
        const discoveryUrl = /discovery: (http:\S+)/.exec(out.stdout)?.[1]
        expect(discoveryUrl, report()).toBeDefined()

        const stream = await exec(
          "sh",
          ["-c", 'espeak-ng --stdout "Hello from the avatar" | npx akool-avatar stream -'],
          path,
          {
            AKOOL_API_KEY: KEY,
            AKOOL_DISCOVERY_URL: discoveryUrl as string,
            AKOOL_AGORA_APP_ID: "package-app",
            AKOOL_AGORA_CHANNEL: "package-channel",
            AKOOL_AGORA_TOKEN: "",
            AKOOL_AGORA_UID: "1"
          }
        )
        const streamed = `--- stream\n${stream.stdout}\n--- stderr\n${stream.stderr}`
        expect(stream.code, streamed).toBe(0)
        expect(stream.stdout.split("\n")[0], streamed).toBe(
          `streaming to ${new URL(discoveryUrl as string).host} (AKOOL_DISCOVERY_URL)`
        )
        expect(stream.stdout + stream.stderr).not.toContain(KEY)
        const sessionId = /^session (\S+),/m.exec(stream.stdout)?.[1]
        const sent = /^sent (\d+\.\d\d) s of audio/m.exec(stream.stdout)?.[1]
        expect(sessionId, streamed).toBeDefined()
        expect(Number(sent), streamed).toBeGreaterThan(0.5)

        // the inspector's page, script and data, as the installed package serves them
        const inspectorUrl = /inspector: (http:\S+)/.exec(out.stdout)?.[1]
        expect(inspectorUrl, report()).toBe(`${new URL(discoveryUrl as string).origin}/inspector`)
        const page = await fetch(inspectorUrl as string)
        expect(page.headers.get("content-type")).toMatch(/^text\/html/)
        expect(await page.text()).toContain('<script type="module" src="/inspector/app.js">')
        const script = await fetch(`${inspectorUrl}/app.js`)
        expect(script.headers.get("content-type")).toMatch(/^text\/javascript/)
        expect(await script.text()).toContain("new EventSource(")
        const state = (await (await fetch(`${inspectorUrl}/api/state`)).json()) as { sessions: Array<{ id: string }> }
        expect(state.sessions.map((s) => s.id)).toContain(sessionId)

        process.kill(-(simulate.pid as number), "SIGINT")
        expect(await exited, report()).toBe(130)
        const file = join(saveDir, `${sessionId}.wav`)
        expect(out.stdout, report()).toContain(`saved to ${file}`)
        const { format, data } = wavInfo(readFileSync(file))
        expect(format).toEqual({ tag: 1, channels: 1, rate: 16_000, bits: 16 })
        // as long as what the stream said it sent (printed to the hundredth of a second)
        expect(Math.abs((data as number) / 32_000 - Number(sent))).toBeLessThanOrEqual(0.005)
      } finally {
        // should an expectation fail first, the simulator does not outlive the test
        try {
          process.kill(-(simulate.pid as number), "SIGKILL")
        } catch {
          // the group has exited already
        }
      }
    },
    300_000
  )

  it.concurrent("a project already on Effect 4: npm refuses the package, naming the effect peer, instead of adding a second effect", async () => {
    const path = join(dir, "effect-4")
    mkdirSync(path)
    writeFileSync(
      join(path, "package.json"),
      JSON.stringify({ name: "effect-4-user", private: true, type: "module", dependencies: { effect: "^4.0.0" } })
    )
    const run = await exec("npm", ["install", tarball, "--dry-run", "--no-audit", "--no-fund"], path)
    const output = run.stdout + run.stderr
    expect(run.code, output).not.toBe(0)
    expect(output).toContain("ERESOLVE")
    expect(output).toMatch(/Found: effect@4\./)
    expect(output).toMatch(/peer effect@"\^3\./)
  }, 120_000)
})
