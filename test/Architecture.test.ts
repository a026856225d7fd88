import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import ts from "typescript"

// The measures ARCHITECTURE.md promises, taken from the code itself: a function that grows
// past them, or a closure that gathers mutable state, fails here before a reviewer sees it.
const MAX_FUNCTION_LINES = 150
const MAX_LETS = 3
const MAX_FILES_IN_INTERNAL = 3

const root = path.resolve(import.meta.dirname, "..", "src")

const sources = (dir: string): Array<string> =>
  fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) =>
      entry.isDirectory()
        ? sources(path.join(dir, entry.name))
        : entry.name.endsWith(".ts")
          ? [path.join(dir, entry.name)]
          : []
    )

interface Measured {
  readonly where: string
  readonly lines: number
  readonly lets: number
}

const measure = (file: string): Array<Measured> => {
  const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true)
  const found: Array<Measured> = []
  const lineOf = (position: number) => source.getLineAndCharacterOfPosition(position).line
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
      const fn = node
      let lets = 0
      // a function's own `let`s: those of the functions inside it are theirs
      const count = (inner: ts.Node) => {
        if (inner !== fn && ts.isFunctionLike(inner)) return
        if (ts.isVariableDeclarationList(inner) && inner.flags & ts.NodeFlags.Let) lets += inner.declarations.length
        ts.forEachChild(inner, count)
      }
      ts.forEachChild(fn.body as ts.Node, count)
      found.push({
        where: `${path.relative(root, file)}:${lineOf(node.getStart()) + 1}`,
        lines: lineOf(node.end) - lineOf(node.getStart()) + 1,
        lets
      })
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

describe("the layout", () => {
  const measured = sources(root).flatMap(measure)

  it(`has no function longer than ${MAX_FUNCTION_LINES} lines`, () => {
    expect(measured.filter((m) => m.lines > MAX_FUNCTION_LINES).map((m) => `${m.where} (${m.lines} lines)`)).toEqual([])
  })

  it(`has no function body with more than ${MAX_LETS} mutable lets of its own`, () => {
    expect(measured.filter((m) => m.lets > MAX_LETS).map((m) => `${m.where} (${m.lets} lets)`)).toEqual([])
  })

  it(`keeps at most ${MAX_FILES_IN_INTERNAL} files directly in src/internal/`, () => {
    const files = fs.readdirSync(path.join(root, "internal"), { withFileTypes: true }).filter((e) => e.isFile())
    expect(files.length).toBeLessThanOrEqual(MAX_FILES_IN_INTERNAL)
  })

  it("names no internal type in the public declarations", () => {
    // what a user's editor reads: the .d.ts of every public module, emitted in memory
    const config = ts.getParsedCommandLineOfConfigFile(path.join(root, "..", "tsconfig.build.json"), undefined, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: () => {}
    })!
    const program = ts.createProgram([path.join(root, "index.ts")], {
      ...config.options,
      noEmit: false,
      emitDeclarationOnly: true,
      declarationMap: false,
      sourceMap: false
    })
    const leaks: Array<string> = []
    program.emit(undefined, (name, text) => {
      const file = path.relative(path.join(root, "..", "dist"), name)
      if (file.startsWith("internal") || file.startsWith("cli")) return
      for (const line of text.split("\n")) if (/from "\.\/(internal|cli)\//.test(line)) leaks.push(`${file}: ${line}`)
    })
    expect(leaks).toStrictEqual([])
  }, 60_000)

  it("keeps the import rules of ARCHITECTURE.md", () => {
    const importsOf = (file: string) =>
      ts
        .createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true)
        .statements.filter(ts.isImportDeclaration)
        .map((i) => {
          const spec = (i.moduleSpecifier as ts.StringLiteral).text
          return spec.startsWith(".") ? path.relative(root, path.resolve(path.dirname(file), spec)) : spec
        })
    const broken: Array<string> = []
    for (const file of sources(root)) {
      const at = path.relative(root, file)
      for (const target of importsOf(file)) {
        const rule =
          (at.startsWith("internal/dataplane/") && /^internal\/(session|connection|simulator)\//.test(target)
            ? "the data plane imports no session, connection or simulator code"
            : undefined) ??
          (at.startsWith("internal/session/") && /^(internal\/simulator\/|AvatarSimulator|cli\/)/.test(target)
            ? "the session does not know the simulator"
            : undefined) ??
          (target === "ws" &&
          !(at === "AvatarClient.ts" || at.startsWith("internal/connection/") || at.startsWith("internal/simulator/"))
            ? "only the Node wiring and the simulator know ws"
            : undefined) ??
          (!at.startsWith("cli/") && !at.startsWith("bin/") && target.startsWith("cli/")
            ? "only the executable imports the CLI"
            : undefined)
        if (rule) broken.push(`${at} imports ${target}: ${rule}`)
      }
    }
    expect(broken).toStrictEqual([])
  })
})
