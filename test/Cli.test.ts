/**
 * The `akool-avatar` command line, end to end: real processes (`node --import tsx` on the
 * source, and plain `node` on the built bin), against the built-in simulator and against a
 * simulator this test runs.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Help from "../src/cli/help.js"
import * as StreamCommand from "../src/cli/stream.js"
import { Audio, AvatarSimulator } from "../src/index.js"
import { concat, eventually } from "./support.js"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const SOURCE_BIN = join(ROOT, "src/bin/akool-avatar.ts")
const MP3 = join(ROOT, "test/fixtures/sine-1khz-44k1-stereo.mp3")
const KEY = "cli-test-key-0123456789"
/** espeak-ng, which `.ci/run` installs; the tests that pipe its speech skip without it. */
const ESPEAK = spawnSync("espeak-ng", ["--version"]).status === 0
const ESPEAK_REASON = ESPEAK ? "" : " (skipped: espeak-ng is not installed)"

const dir = mkdtempSync(join(tmpdir(), "akool-cli-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** The environment without any AKOOL_* variable, plus `extra`. */
const envWith = (extra: Record<string, string> = {}) => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("AKOOL_") && v !== undefined) env[k] = v
  return { ...env, ...extra }
}

interface Run {
  readonly child: ChildProcess
  readonly output: { stdout: string; stderr: string }
  readonly exit: Promise<number | null>
}

/** The CLI from the source (or `plainNode`, a built bin, with plain node), or with `program` another command. */
const start = (args: ReadonlyArray<string>, env: Record<string, string>, plainNode?: string, program?: string): Run => {
  const argv =
    program !== undefined ? args : plainNode ? [plainNode, ...args] : ["--import", "tsx", SOURCE_BIN, ...args]
  const child = spawn(program ?? process.execPath, argv, {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  const output = { stdout: "", stderr: "" }
  child.stdout!.on("data", (d) => {
    output.stdout += String(d)
  })
  child.stderr!.on("data", (d) => {
    output.stderr += String(d)
  })
  const exit = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
  return { child, output, exit }
}

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = envWith(), plainNode?: string) =>
  Effect.promise(async () => {
    const run = start(args, env, plainNode)
    const code = await run.exit
    return { code, ...run.output }
  })

const converted = (path: string) =>
  Audio.fromFile(path).pipe(
    Stream.runCollect,
    Effect.map((chunks) => concat(Chunk.toReadonlyArray(chunks))),
    Effect.provide(NodeFileSystem.layer)
  )

const agoraEnv = {
  AKOOL_AGORA_APP_ID: "cli-app",
  AKOOL_AGORA_CHANNEL: "cli-channel",
  AKOOL_AGORA_TOKEN: "cli-token",
  AKOOL_AGORA_UID: "7"
}

describe("akool-avatar stream", () => {
  it.live(
    "without AKOOL_API_KEY it says so, streams a 44.1 kHz stereo MP3 to the built-in simulator, which confirms it",
    () =>
      Effect.gen(function* () {
        const run = yield* cli(["stream", MP3, "--pacing", "none"])
        expect(run.code).toBe(0)
        // the first line says where the audio goes
        expect(run.stdout.split("\n")[0]).toMatch(/^streaming to the built-in simulator .*AKOOL_API_KEY is not set/)
        // the second, where to watch it: the simulator's inspector
        expect(run.stdout.split("\n")[1]).toMatch(/^inspector: http:\/\/127\.0\.0\.1:\d+\/inspector \(/)
        expect(run.stdout).toContain("MPEG-1 Layer III, 64 kbps, 44100 Hz, 2 channels, 0.60 s")
        // 0.6 s at 16 kHz mono 16-bit
        expect(run.stdout).toContain("OK: the simulator received all 19200 bytes (0.60 s)")
      })
  )

  it.live(
    "with AKOOL_API_KEY it streams to the configured service: the simulator receives the file's audio and the Agora settings",
    () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ apiKey: KEY })
        const run = yield* cli(
          ["stream", MP3, "--pacing", "none", "--avatar-id", "avatar-cli", "--voice", "v1", "--language", "de"],
          envWith({ AKOOL_API_KEY: KEY, AKOOL_DISCOVERY_URL: sim.discoveryUrl, ...agoraEnv })
        )
        expect(run.code).toBe(0)
        // the first line names the host discovery asks, and where that came from
        expect(run.stdout.split("\n")[0]).toBe(`streaming to ${new URL(sim.discoveryUrl).host} (AKOOL_DISCOVERY_URL)`)
        // the key is never printed
        expect(run.stdout + run.stderr).not.toContain(KEY)
        const sessionId = /session ([0-9a-f-]{36})/.exec(run.stdout)?.[1]
        expect(sessionId).toBeDefined()
        const received = yield* eventually(sim.audio(sessionId!), (a) => a.byteLength === 19_200)
        expect(received).toStrictEqual(yield* converted(MP3))
        const [record] = yield* sim.sessions
        expect(record!.avatarId).toBe("avatar-cli")
        const setParams = record!.commands.find((c) => c.cmd === "set-params")
        expect(JSON.stringify(setParams!.pld)).toContain('"appid":"cli-app"')
        expect(JSON.stringify(setParams!.pld)).toContain('"vid":"v1"')
        expect(JSON.stringify(setParams!.pld)).toContain('"lang":"de"')
        expect(record!.commands.map((c) => c.cmd)).toContain("leave_channel")
      }).pipe(Effect.scoped)
  )

  it.live("Ctrl-C interrupts the avatar, leaves the channel and exits with 130", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ apiKey: KEY })
      const run = start(
        ["stream", join(ROOT, "examples/sample.wav")],
        envWith({ AKOOL_API_KEY: KEY, AKOOL_DISCOVERY_URL: sim.discoveryUrl, ...agoraEnv })
      )
      // once audio is flowing (real-time pacing: the 6.5 s file is far from done)
      yield* eventually(sim.sessions, (s) => s.length === 1 && s[0]!.frameCount > 10, 15_000)
      run.child.kill("SIGINT")
      const code = yield* Effect.promise(() => run.exit)
      expect(code).toBe(130)
      expect(run.output.stderr).toContain("Interrupted: stopping the avatar and leaving the channel")
      expect(run.output.stderr).toContain("Left the channel.")
      // what was sent, as at the end of a normal run
      const summary = /sent (\d+\.\d\d) s of audio \((\d+) frames, 0 reconnects\) in \d+\.\d\d s/.exec(
        run.output.stdout
      )
      expect(summary).not.toBeNull()
      expect(Number(summary![2])).toBeGreaterThan(10)
      expect(Number(summary![1])).toBeCloseTo(Number(summary![2]) * 0.04, 1)
      const [record] = yield* eventually(sim.sessions, (s) => s.length === 1 && !s[0]!.open)
      const commands = record!.commands.map((c) => c.cmd)
      expect(commands).toContain("interrupt")
      expect(commands.indexOf("leave_channel")).toBeGreaterThan(commands.indexOf("interrupt"))
      // it stopped early: less than the whole file arrived
      expect(record!.audioBytes).toBeLessThan(209_918)
    }).pipe(Effect.scoped)
  )

  it.live.skipIf(!ESPEAK)(
    `espeak-ng --stdout "..." | akool-avatar stream -: a WAV of unknown length on a pipe is read to its end${ESPEAK_REASON}`,
    () =>
      Effect.gen(function* () {
        const text = "Hello from the avatar"
        // on a pipe espeak-ng cannot know the length: its header declares 0x7FFFF000 bytes of data
        const spoken = spawnSync("espeak-ng", ["--stdout", text])
        expect(spoken.status).toBe(0)
        const wav = spoken.stdout
        expect(wav.toString("ascii", 36, 40)).toBe("data")
        expect(wav.readUInt32LE(40)).toBe(0x7fff_f000)
        const seconds = (wav.length - 44) / 2 / wav.readUInt32LE(24)

        const run = start(
          ["-c", `espeak-ng --stdout "${text}" | "$0" --import tsx "$1" stream -`, process.execPath, SOURCE_BIN],
          envWith(),
          undefined,
          "sh"
        )
        const code = yield* Effect.promise(() => run.exit)
        const { stdout, stderr } = run.output
        expect(code, stdout + stderr).toBe(0)
        expect(stdout.split("\n")[0]).toMatch(/^streaming to the built-in simulator /)
        expect(stdout).toContain("input standard input (WAV or MP3) -> 16 kHz mono PCM")
        // all of the speech was sent, and the simulator confirmed it byte for byte
        const sent = /^sent (\d+\.\d\d) s of audio/m.exec(stdout)
        expect(sent, stdout).not.toBeNull()
        expect(Math.abs(Number(sent![1]) - seconds)).toBeLessThan(0.01)
        expect(stdout).toMatch(
          /^OK: the simulator received all \d+ bytes \(\d+\.\d\d s\) of 16 kHz mono PCM, byte for byte, in order\.$/m
        )
      })
  )

  it.live("a file that is not audio: one readable line, a hint, no stack, exit 1; --verbose adds the cause", () =>
    Effect.gen(function* () {
      const run = yield* cli(["stream", join(ROOT, "package.json")])
      expect(run.code).toBe(1)
      const lines = run.stderr.trim().split("\n")
      expect(lines).toHaveLength(2)
      expect(lines[0]).toMatch(/^error: .*package\.json: neither WAV nor MP3: it starts with 7b 0a .*looks like text/)
      expect(lines[1]).toMatch(/^hint: akool-avatar reads WAV and MP3 files; for raw PCM give its format/)

      const verbose = yield* cli(["stream", join(ROOT, "package.json"), "--verbose"])
      expect(verbose.code).toBe(1)
      expect(verbose.stderr.trim().split("\n").length).toBeGreaterThan(2)
      expect(verbose.stderr).toContain("AudioDecodeError")
    })
  )

  it.live("a truncated WAV and a missing file are named, each with its hint", () =>
    Effect.gen(function* () {
      const wav = readFileSync(join(ROOT, "examples/sample.wav"))
      const cut = join(dir, "cut.wav")
      writeFileSync(cut, wav.subarray(0, 10_000))
      const truncated = yield* cli(["stream", cut])
      expect(truncated.code).toBe(1)
      expect(truncated.stderr).toMatch(
        /^error: .*cut\.wav: the data chunk declares 209918 bytes \(6\.56 s\) but the file ends after 9956/
      )
      expect(truncated.stderr).toContain("hint: the file is incomplete")
      // refused before any session was opened
      expect(truncated.stdout).not.toContain("session ")

      const missing = yield* cli(["stream", join(dir, "nope.mp3")])
      expect(missing.code).toBe(1)
      expect(missing.stderr).toMatch(/^error: .*nope\.mp3/)
      expect(missing.stderr).toContain("hint: check the path")
    })
  )

  it.live("raw PCM without --rate, and Agora settings missing with a key, are usage errors (exit 2)", () =>
    Effect.gen(function* () {
      const raw = yield* cli(["stream", "--format", "s16le", "-"])
      expect(raw.code).toBe(2)
      expect(raw.stderr).toContain("error: raw PCM (--format s16le) needs its sample rate: --rate N")

      const agora = yield* cli(
        ["stream", MP3],
        envWith({ AKOOL_API_KEY: KEY, AKOOL_AGORA_APP_ID: "x", AKOOL_AGORA_TOKEN: "" })
      )
      expect(agora.code).toBe(2)
      expect(agora.stderr).toContain(
        "--agora-channel (or AKOOL_AGORA_CHANNEL), --agora-uid (or AKOOL_AGORA_UID) are not set"
      )
      expect(agora.stderr + agora.stdout).not.toContain(KEY)
    })
  )
})

describe("akool-avatar usage", () => {
  it.live("an unknown flag is named, with the close match as a hint (exit 2)", () =>
    Effect.gen(function* () {
      const run = yield* cli(["stream", "--pacng", "none", MP3])
      expect(run.code).toBe(2)
      expect(run.stderr.trim().split("\n")).toStrictEqual([
        "error: unknown option --pacng",
        "hint: did you mean --pacing? (akool-avatar stream --help lists the options)"
      ])
      expect(run.stdout).toBe("")

      // after the file too, and an option of the other command says whose it is
      const other = yield* cli(["stream", MP3, "--port", "8080"])
      expect(other.code).toBe(2)
      expect(other.stderr).toContain("error: unknown option --port")
      expect(other.stderr).toContain("hint: --port is an option of akool-avatar simulate")

      const command = yield* cli(["strem", MP3])
      expect(command.code).toBe(2)
      expect(command.stderr).toContain("error: unknown command strem")
      expect(command.stderr).toContain("hint: did you mean stream?")
    })
  )

  it.live("a wrong or missing flag value names the flag and what it takes (exit 2)", () =>
    Effect.gen(function* () {
      const choice = yield* cli(["stream", MP3, "--pacing", "fast"])
      expect(choice.code).toBe(2)
      expect(choice.stderr).toMatch(/^error: --pacing takes realtime or none \(got "fast"\)\n/)
      expect(choice.stderr).toContain("hint: ")

      const integer = yield* cli(["stream", "--format", "s16le", "--rate", "24k", "-"])
      expect(integer.code).toBe(2)
      expect(integer.stderr).toMatch(/^error: --rate takes a whole number \(got "24k"\)/)

      const missing = yield* cli(["simulate", "--port"])
      expect(missing.code).toBe(2)
      expect(missing.stderr).toMatch(/^error: --port needs a value: a whole number/)

      const frame = yield* cli(["stream", MP3, "--frame-ms", "5"])
      expect(frame.code).toBe(2)
      expect(frame.stderr).toMatch(/^error: --frame-ms /)

      const extra = yield* cli(["stream", MP3, "other.mp3"])
      expect(extra.code).toBe(2)
      expect(extra.stderr).toContain("error: unexpected argument other.mp3")
      const late = yield* cli(["stream", "--format", "s16le", "-", "--rate", "16000"])
      expect(late.code).toBe(2)
      expect(late.stderr).toContain("error: unexpected argument --rate: options after - are not read")
      expect(late.stderr).toContain("hint: put the options before the input")

      const none = yield* cli(["stream"])
      expect(none.code).toBe(2)
      expect(none.stderr).toMatch(/^error: .*<file \| ->/)
      expect(none.stderr).toContain("hint: ")
    })
  )

  it.live("--help into a pipe: no colour codes, the program name, every default", () =>
    Effect.gen(function* () {
      const run = yield* cli(["stream", "--help"])
      expect(run.code).toBe(0)
      expect(run.stdout).not.toContain("\u001b")
      expect(run.stdout).toContain("$ akool-avatar stream [")
      expect(run.stdout).toMatch(/--pacing realtime \| none[\s\S]*\(default: realtime\)/)
      expect(run.stdout).toMatch(/--frame-ms integer[\s\S]*\(default: 40\)/)
      expect(run.stdout).toMatch(/--language text[\s\S]*\(default: en\)/)

      const simulate = yield* cli(["simulate", "--help"])
      expect(simulate.stdout).not.toContain("\u001b")
      expect(simulate.stdout).toContain("$ akool-avatar simulate [")
      expect(simulate.stdout).toMatch(/--host text[\s\S]*\(default: 127\.0\.0\.1\)/)

      const root = yield* cli(["--help"])
      expect(root.stdout).not.toContain("\u001b")
      expect(root.stdout).toContain("$ akool-avatar")
      // the program alone prints the same help
      const bare = yield* cli([])
      expect(bare.code).toBe(0)
      expect(bare.stdout).toBe(root.stdout)
    })
  )

  it("the first line names the discovery host and the setting it came from", () => {
    expect(StreamCommand.whereTo(Option.none(), Option.none())).toBe("the Akool service at sa-websocekt.akool.io:8051")
    expect(StreamCommand.whereTo(Option.none(), Option.some("http://127.0.0.1:4000/x"))).toBe(
      "127.0.0.1:4000 (AKOOL_DISCOVERY_URL)"
    )
    expect(StreamCommand.whereTo(Option.some("https://example.test/x"), Option.some("http://127.0.0.1:4000/x"))).toBe(
      "example.test (--discovery-url)"
    )
  })

  it("colour only on a terminal, and never with NO_COLOR set", () => {
    expect(Help.colour({ isTTY: true }, {})).toBe(true)
    expect(Help.colour({ isTTY: false }, {})).toBe(false)
    expect(Help.colour({}, {})).toBe(false)
    expect(Help.colour({ isTTY: true }, { NO_COLOR: "1" })).toBe(false)
    // no-color.org: an empty NO_COLOR does not count
    expect(Help.colour({ isTTY: true }, { NO_COLOR: "" })).toBe(true)
  })
})

describe("akool-avatar as installed", () => {
  it.live("package.json's bin is the built CLI and runs with plain node (npm ci builds it through prepare)", () =>
    Effect.gen(function* () {
      const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"))
      const bin = join(ROOT, pkg.bin["akool-avatar"])
      expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node")).toBe(true)
      const help = yield* cli(["--help"], envWith(), bin)
      expect(help.code).toBe(0)
      expect(help.stdout).toContain("stream")
      expect(help.stdout).toContain("simulate")
      const version = yield* cli(["--version"], envWith(), bin)
      expect(version.stdout.trim()).toBe(pkg.version)
    })
  )
})

describe("akool-avatar simulate", () => {
  it.live("--save-dir writes what each session sent as a WAV, one file per session", () =>
    Effect.gen(function* () {
      const saveDir = join(dir, "saved")
      const sim = start(["simulate", "--save-dir", saveDir], envWith())
      // should an expectation fail first, the simulator does not outlive the test
      yield* Effect.addFinalizer(() => Effect.sync(() => sim.child.exitCode === null && sim.child.kill("SIGKILL")))
      const started = yield* eventually(
        Effect.sync(() => sim.output.stdout),
        (out) => out.includes("Ctrl-C to stop."),
        15_000
      )
      expect(started).toContain(`saving each session's audio to ${saveDir}/<session id>.wav`)
      const discoveryUrl = /discovery: (http:\S+)/.exec(started)![1]!
      const run = yield* cli(
        ["stream", MP3, "--pacing", "none"],
        envWith({ AKOOL_API_KEY: KEY, AKOOL_DISCOVERY_URL: discoveryUrl, ...agoraEnv })
      )
      expect(run.code).toBe(0)
      const sessionId = /session ([0-9a-f-]{36})/.exec(run.stdout)![1]!
      const wav = readFileSync(join(saveDir, `${sessionId}.wav`))
      // 16 kHz mono 16-bit PCM, its sizes those of the file
      expect(wav.toString("ascii", 0, 4) + wav.toString("ascii", 8, 16)).toBe("RIFFWAVEfmt ")
      expect([wav.readUInt16LE(20), wav.readUInt16LE(22), wav.readUInt32LE(24), wav.readUInt16LE(34)]).toStrictEqual([
        1, 1, 16_000, 16
      ])
      expect(wav.readUInt32LE(4)).toBe(wav.length - 8)
      expect(wav.readUInt32LE(40)).toBe(wav.length - 44)
      expect(new Uint8Array(wav.subarray(44))).toStrictEqual(yield* converted(MP3))
      sim.child.kill("SIGINT")
      expect(yield* Effect.promise(() => sim.exit)).toBe(130)
      expect(sim.output.stdout).toContain(`saved to ${join(saveDir, `${sessionId}.wav`)}`)
    }).pipe(Effect.scoped)
  )

  it.live("starts the simulator with fault flags, and refuses a flag value that cannot work", () =>
    Effect.gen(function* () {
      const run = start(["simulate", "--instances", "2", "--no-pong", "--drop-after-frames", "5"], envWith())
      const started = yield* eventually(
        Effect.sync(() => run.output.stdout),
        (out) => out.includes("Ctrl-C to stop."),
        15_000
      )
      expect(started).toMatch(/discovery: http:\/\/127\.0\.0\.1:\d+\/streamingAvatar\/service_status/)
      expect(started).toContain("instance 1: ws://127.0.0.1:")
      expect(started).toContain('faults on every instance: {"noPong":true,"dropAfterFrames":{"frames":5}}')
      run.child.kill("SIGINT")
      expect(yield* Effect.promise(() => run.exit)).toBe(130)

      const bad = yield* cli(["simulate", "--drop-code", "1006", "--drop-after-frames", "1"])
      expect(bad.code).toBe(2)
      expect(bad.stderr).toContain("error: --drop-code: 1006 is not a close code a server may send")
      // the flags are judged by the simulator's own check of its faults, and named in its words
      const kind = yield* cli(["simulate", "--malformed-after-frames", "1", "--malformed-kinds", "huge,nope"])
      expect(kind.code).toBe(2)
      expect(kind.stderr).toContain('error: --malformed-kinds: "nope" is not a malformed kind; the kinds are not-json,')
    })
  )

  it.live("takes the player's switches: --playout-delay, --no-audio-events, --audio-event-delay", () =>
    Effect.gen(function* () {
      const run = start(
        ["simulate", "--playout-delay", "50", "--no-audio-events", "--audio-event-delay", "200"],
        envWith()
      )
      const started = yield* eventually(
        Effect.sync(() => run.output.stdout),
        (out) => out.includes("Ctrl-C to stop."),
        15_000
      )
      expect(started).toContain("playout delay: 50 ms")
      expect(started).toContain('faults on every instance: {"noAudioEvents":true,"audioEventDelay":200}')
      run.child.kill("SIGINT")
      expect(yield* Effect.promise(() => run.exit)).toBe(130)

      const delay = yield* cli(["simulate", "--audio-event-delay", "-5"])
      expect(delay.code).toBe(2)
      expect(delay.stderr).toContain("error: --audio-event-delay: -5 is not a duration")
      const playout = yield* cli(["simulate", "--playout-delay", "-1"])
      expect(playout.code).toBe(2)
      expect(playout.stderr).toContain("error: --playout-delay: -1 is not a whole number >= 0")
    })
  )
})
