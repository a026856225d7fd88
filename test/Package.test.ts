/**
 * The published package, as a user gets it: `npm pack`, then `npm install` of the tarball
 * into an empty project, then the two quickstarts (`examples/quickstart-*.ts`, compiled to
 * `.mjs` that import "akool-streaming-avatar") run with plain `node` against the simulator.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "@effect/vitest"
import ts from "typescript"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const dir = mkdtempSync(join(tmpdir(), "akool-pack-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const env: Record<string, string> = {}
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("AKOOL_") && v !== undefined) env[k] = v

const npm = (args: ReadonlyArray<string>, cwd: string) =>
  execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd,
    env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"]
  })

describe("npm pack", () => {
  it("installs into an empty project, and both quickstarts run there with plain node", () => {
    const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", dir], ROOT)) as Array<{
      filename: string
      files: Array<{ path: string }>
    }>
    const files = packed[0].files.map((f) => f.path)
    expect(files).toContain("dist/index.js")
    expect(files).toContain("dist/index.d.ts")
    expect(files).toContain("dist/StreamingAvatarClient.js")
    expect(files).toContain("dist/bin/akool-avatar.js")
    expect(files).toContain("README.md")
    // no tests, fixtures, examples, benchmarks or tool configuration
    expect(
      files.filter((f) => /^(test|examples|bench|scripts|docs)\/|fixtures|\.test\.|tsconfig|biome/.test(f))
    ).toEqual([])

    const project = join(dir, "project")
    execFileSync("mkdir", ["-p", project])
    npm(["init", "-y"], project)
    const manifest = JSON.parse(readFileSync(join(project, "package.json"), "utf8"))
    writeFileSync(join(project, "package.json"), JSON.stringify({ ...manifest, type: "module" }, null, 2))
    const effectVersion = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).dependencies.effect
    npm(["install", join(dir, packed[0].filename), `effect@${effectVersion}`], project)

    for (const name of ["quickstart-promise", "quickstart-effect"]) {
      const source = readFileSync(join(ROOT, "examples", `${name}.ts`), "utf8")
      const { outputText } = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }
      })
      expect(outputText).toContain('from "akool-streaming-avatar"')
      writeFileSync(join(project, `${name}.mjs`), outputText)
      const run = spawnSync(process.execPath, [`${name}.mjs`], { cwd: project, env, encoding: "utf8", timeout: 60_000 })
      const report = `--- ${name} stdout\n${run.stdout}\n--- stderr\n${run.stderr}`
      expect(run.status, report).toBe(0)
      expect(run.stdout, report).toMatch(/^OK: the simulator received all 32000 bytes, byte for byte$/m)
    }
  }, 300_000)
})
