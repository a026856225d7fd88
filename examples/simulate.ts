/**
 * Runs the simulator standalone until Ctrl-C:
 *
 *     npm run simulate -- --port 8051 [--instances 2] [--api-key KEY] [fault flags...]
 *
 * Point a client at the discovery URL it prints. Fault flags apply to every instance;
 * `--help` lists them all. On exit it prints what it received.
 *
 * A plain argv parser on purpose: one table of flags, from which `--help` is printed.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as AvatarSimulator from "../src/AvatarSimulator.js"

interface Settings {
  options: {
    port?: number
    host?: string
    instances?: number
    apiKey?: string
    discoveryShape?: "code" | "readme"
    recordAudio?: boolean
  }
  discovery: { status?: number; delay?: number }
  faults: {
    -readonly [K in keyof AvatarSimulator.Faults]: AvatarSimulator.Faults[K]
  }
  /** The parts of the compound faults, put together once every flag is read. */
  errorAfter?: { frames: number; code: number; message: string }
  dropAfter?: { frames?: number; mode?: AvatarSimulator.DropMode; code?: number }
  malformed?: { afterFrames?: number; count?: number; kinds?: ReadonlyArray<AvatarSimulator.MalformedKind> }
}

interface Flag {
  readonly name: string
  /** The value's placeholder; a flag without one is a switch. */
  readonly value?: string
  readonly help: string
  readonly apply: (settings: Settings, value: string) => void
}

class UsageError extends Error {}

const integer = (flag: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${flag} needs a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? " up" : ` to ${max}`}`
    )
  }
  return n
}

/** The codes a server may send in a close frame (RFC 6455 section 7.4). */
const closeCode = (flag: string, value: string): number => {
  const code = integer(flag, value, 1000, 4999)
  if ((code > 1014 && code < 3000) || code === 1004 || code === 1005 || code === 1006) {
    throw new UsageError(`${flag}: ${code} is not a close code a server may send`)
  }
  return code
}

/** `A:B`, split at the first colon. */
const pair = (flag: string, value: string, shape: string): readonly [string, string] => {
  const at = value.indexOf(":")
  if (at <= 0 || at === value.length - 1) throw new UsageError(`${flag} takes ${shape}`)
  return [value.slice(0, at), value.slice(at + 1)]
}

const flags: ReadonlyArray<{ readonly title: string; readonly flags: ReadonlyArray<Flag> }> = [
  {
    title: "Servers",
    flags: [
      {
        name: "--port",
        value: "N",
        help: "discovery port (default 0: any free port); instances always take free ports",
        apply: (s, v) => {
          s.options.port = integer("--port", v, 0, 65535)
        }
      },
      {
        name: "--host",
        value: "HOST",
        help: "address to listen on (default 127.0.0.1)",
        apply: (s, v) => {
          s.options.host = v
        }
      },
      {
        name: "--instances",
        value: "N",
        help: "number of instances (default 1)",
        apply: (s, v) => {
          s.options.instances = integer("--instances", v, 1)
        }
      },
      {
        name: "--api-key",
        value: "KEY",
        help: "the only key to accept (default: any non-empty key)",
        apply: (s, v) => {
          s.options.apiKey = v
        }
      },
      {
        name: "--shape",
        value: "code|readme",
        help: "which documented discovery body to send (default code)",
        apply: (s, v) => {
          if (v !== "code" && v !== "readme") throw new UsageError(`--shape is "code" or "readme"`)
          s.options.discoveryShape = v
        }
      },
      {
        name: "--no-record-audio",
        help: "count audio without keeping it (for load tests)",
        apply: (s) => {
          s.options.recordAudio = false
        }
      }
    ]
  },
  {
    title: "Discovery",
    flags: [
      {
        name: "--discovery-delay",
        value: "MS",
        help: "answer every discovery request this late",
        apply: (s, v) => {
          s.discovery.delay = integer("--discovery-delay", v, 0)
        }
      },
      {
        name: "--discovery-status",
        value: "STATUS",
        help: "answer every discovery request with this HTTP status",
        apply: (s, v) => {
          s.discovery.status = integer("--discovery-status", v, 100, 599)
        }
      }
    ]
  },
  {
    title: "Connection faults (every instance)",
    flags: [
      {
        name: "--reject-key",
        help: "accept the upgrade, then close with 4001",
        apply: (s) => {
          s.faults.rejectKey = true
        }
      },
      {
        name: "--occupied",
        help: "accept the upgrade, then close with 4003",
        apply: (s) => {
          s.faults.occupied = true
        }
      },
      {
        name: "--too-soon",
        value: "K",
        help: "close the next K connection attempts with 4004",
        apply: (s, v) => {
          s.faults.tooSoon = integer("--too-soon", v, 0)
        }
      },
      {
        name: "--refuse-first",
        value: "CODE:K",
        help: "close the next K connection attempts with CODE (4001, 4003 or 4004)",
        apply: (s, v) => {
          const [code, attempts] = pair("--refuse-first", v, "CODE:K, e.g. 4004:3")
          const c = integer("--refuse-first CODE", code, 4001, 4004)
          if (c !== 4001 && c !== 4003 && c !== 4004) throw new UsageError("--refuse-first CODE is 4001, 4003 or 4004")
          s.faults.refuseFirst = { code: c, attempts: integer("--refuse-first K", attempts, 0) }
        }
      },
      {
        name: "--refuse-upgrade",
        value: "STATUS",
        help: "answer the upgrade request with this HTTP status (e.g. 401, 503)",
        apply: (s, v) => {
          s.faults.refuseUpgrade = integer("--refuse-upgrade", v, 100, 599)
        }
      },
      {
        name: "--no-websocket-connected",
        help: "never send websocket_connected",
        apply: (s) => {
          s.faults.noWebsocketConnected = true
        }
      },
      {
        name: "--ws-connected-delay",
        value: "MS",
        help: "send websocket_connected this long after the connection opened",
        apply: (s, v) => {
          s.faults.websocketConnectedDelay = integer("--ws-connected-delay", v, 0)
        }
      },
      {
        name: "--stall",
        help: "read nothing and answer nothing, upgrades included; TCP connections stay open",
        apply: (s) => {
          s.faults.stall = true
        }
      }
    ]
  },
  {
    title: "Message faults (every instance)",
    flags: [
      {
        name: "--no-pong",
        help: "do not answer pings",
        apply: (s) => {
          s.faults.noPong = true
        }
      },
      {
        name: "--no-ack",
        help: "never acknowledge commands nor leave_channel",
        apply: (s) => {
          s.faults.noAck = true
        }
      },
      {
        name: "--ack-delay",
        value: "MS",
        help: "delay every answer to a command",
        apply: (s, v) => {
          s.faults.ackDelay = integer("--ack-delay", v, 0)
        }
      },
      {
        name: "--no-agora-connected",
        help: "acknowledge set-params but never send agora_connected",
        apply: (s) => {
          s.faults.noAgoraConnected = true
        }
      },
      {
        name: "--agora-connected-delay",
        value: "MS",
        help: "send agora_connected this long after the set-params ack",
        apply: (s, v) => {
          s.faults.agoraConnectedDelay = integer("--agora-connected-delay", v, 0)
        }
      },
      {
        name: "--command-error",
        value: "CODE:MESSAGE",
        help: "answer every command with an error message instead of an ack",
        apply: (s, v) => {
          const [code, message] = pair("--command-error", v, "CODE:MESSAGE, e.g. 5001:no capacity")
          s.faults.commandError = { code: integer("--command-error CODE", code, 0), message }
        }
      },
      {
        name: "--error-after-frames",
        value: "N",
        help: "after N chat frames on a connection, send one error message",
        apply: (s, v) => {
          s.errorAfter = {
            code: 5000,
            message: "simulated stream error",
            ...s.errorAfter,
            frames: integer("--error-after-frames", v, 1)
          }
        }
      },
      {
        name: "--error-code",
        value: "CODE",
        help: "  its error_code (default 5000)",
        apply: (s, v) => {
          s.errorAfter = {
            frames: 0,
            message: "simulated stream error",
            ...s.errorAfter,
            code: integer("--error-code", v, 0)
          }
        }
      },
      {
        name: "--error-message",
        value: "TEXT",
        help: '  its error_message (default "simulated stream error")',
        apply: (s, v) => {
          s.errorAfter = { frames: 0, code: 5000, ...s.errorAfter, message: v }
        }
      },
      {
        name: "--drop-after-frames",
        value: "N",
        help: "after N chat frames on a connection, end it (the N-th frame is the last recorded)",
        apply: (s, v) => {
          s.dropAfter = { ...s.dropAfter, frames: integer("--drop-after-frames", v, 1) }
        }
      },
      {
        name: "--drop-mode",
        value: "close|terminate",
        help: "  close: a close frame with the drop code; terminate: destroy the socket (1006)",
        apply: (s, v) => {
          if (v !== "close" && v !== "terminate") throw new UsageError(`--drop-mode is "close" or "terminate"`)
          s.dropAfter = { ...s.dropAfter, mode: v }
        }
      },
      {
        name: "--drop-code",
        value: "C",
        help: "  the close code (default 1011)",
        apply: (s, v) => {
          s.dropAfter = { ...s.dropAfter, code: closeCode("--drop-code", v) }
        }
      },
      {
        name: "--malformed-after-frames",
        value: "N",
        help: "after N chat frames on a connection, send hostile messages",
        apply: (s, v) => {
          s.malformed = { ...s.malformed, afterFrames: integer("--malformed-after-frames", v, 1) }
        }
      },
      {
        name: "--malformed-count",
        value: "C",
        help: `  how many (default ${AvatarSimulator.MALFORMED_KINDS.length}: one of each kind)`,
        apply: (s, v) => {
          s.malformed = { ...s.malformed, count: integer("--malformed-count", v, 0) }
        }
      },
      {
        name: "--malformed-kinds",
        value: "K1,K2",
        help: `  which, in turn (default all: ${AvatarSimulator.MALFORMED_KINDS.join(",")})`,
        apply: (s, v) => {
          const kinds = v.split(",").map((k) => k.trim())
          for (const kind of kinds) {
            if (!(AvatarSimulator.MALFORMED_KINDS as ReadonlyArray<string>).includes(kind)) {
              throw new UsageError(`--malformed-kinds: unknown kind ${kind}`)
            }
          }
          s.malformed = { ...s.malformed, kinds: kinds as ReadonlyArray<AvatarSimulator.MalformedKind> }
        }
      }
    ]
  }
]

const help = (): string => {
  const lines = ["usage: npm run simulate -- [flags]", ""]
  const width = Math.max(...flags.flatMap((g) => g.flags.map((f) => `${f.name} ${f.value ?? ""}`.length)))
  for (const group of flags) {
    lines.push(`${group.title}:`)
    for (const flag of group.flags) {
      lines.push(`  ${`${flag.name} ${flag.value ?? ""}`.padEnd(width)}  ${flag.help}`)
    }
    lines.push("")
  }
  lines.push(`  ${"-h, --help".padEnd(width)}  this text`)
  return lines.join("\n")
}

const byName = new Map(flags.flatMap((g) => g.flags.map((f) => [f.name, f] as const)))

const parseArgs = (argv: ReadonlyArray<string>): Settings | "help" => {
  const settings: Settings = { options: {}, discovery: {}, faults: {} }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") return "help"
    const flag = byName.get(arg)
    if (flag === undefined) throw new UsageError(`unknown argument ${arg}`)
    let value = ""
    if (flag.value !== undefined) {
      const next = argv[i + 1]
      if (next === undefined || next.startsWith("--")) throw new UsageError(`${arg} needs a value: ${flag.value}`)
      value = next
      i++
    }
    flag.apply(settings, value)
  }
  if (settings.errorAfter !== undefined) {
    if (settings.errorAfter.frames === 0)
      throw new UsageError("--error-code and --error-message go with --error-after-frames")
    settings.faults.errorAfterFrames = settings.errorAfter
  }
  if (settings.dropAfter !== undefined) {
    const { frames, mode, code } = settings.dropAfter
    if (frames === undefined) throw new UsageError("--drop-mode and --drop-code go with --drop-after-frames")
    settings.faults.dropAfterFrames = {
      frames,
      ...(mode === undefined ? {} : { mode }),
      ...(code === undefined ? {} : { code })
    }
  }
  if (settings.malformed !== undefined) {
    const { afterFrames, count, kinds } = settings.malformed
    if (afterFrames === undefined) {
      throw new UsageError("--malformed-count and --malformed-kinds go with --malformed-after-frames")
    }
    settings.faults.malformed = {
      afterFrames,
      count: count ?? AvatarSimulator.MALFORMED_KINDS.length,
      ...(kinds === undefined ? {} : { kinds })
    }
  }
  return settings
}

const program = Effect.gen(function* () {
  const settings = yield* Effect.try({
    try: () => parseArgs(process.argv.slice(2)),
    catch: (e) => (e instanceof UsageError ? `${e.message}\n(--help lists the flags)` : String(e))
  })
  if (settings === "help") return yield* Console.log(help())
  const faults: AvatarSimulator.Faults = settings.faults
  const count = settings.options.instances ?? 1
  const simulator = yield* AvatarSimulator.make({
    ...settings.options,
    instances: Array.from({ length: count }, () => ({ faults }))
  })
  if (settings.discovery.delay !== undefined || settings.discovery.status !== undefined) {
    yield* simulator.setDiscovery(settings.discovery)
  }
  yield* Effect.addFinalizer(() => Effect.flatMap(simulator.report, (report) => Console.log(`\n${report}`)))
  yield* Console.log(`Akool streaming-avatar simulator`)
  yield* Console.log(`  discovery: ${simulator.discoveryUrl}`)
  for (const instance of simulator.instances) {
    yield* Console.log(
      `  instance ${instance.index}: ws://${instance.host}:${instance.port}${AvatarSimulator.WEBSOCKET_PATH} (avatar ${instance.avatarId})`
    )
  }
  yield* Console.log(
    settings.options.apiKey === undefined ? "  accepting any non-empty api_key" : "  accepting only the given api_key"
  )
  if (Object.keys(faults).length > 0) yield* Console.log(`  faults on every instance: ${JSON.stringify(faults)}`)
  if (Object.keys(settings.discovery).length > 0) {
    yield* Console.log(`  discovery: ${JSON.stringify(settings.discovery)}`)
  }
  yield* Console.log("Ctrl-C to stop.")
  return yield* Effect.never
}).pipe(
  Effect.scoped,
  Effect.catchAll((error) =>
    Console.error(typeof error === "string" ? error : error.message).pipe(
      Effect.zipRight(Effect.sync(() => process.exit(2)))
    )
  )
)

NodeRuntime.runMain(program)
