/**
 * `akool-avatar simulate`: the simulator standalone until Ctrl-C, every fault switch a flag.
 */
import { join } from "node:path"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as AvatarSimulator from "../AvatarSimulator.js"
import * as Faults from "../internal/simulator/faults.js"
import * as Help from "./help.js"
import { report, UsageError } from "./report.js"

const int = (name: string, description: string) =>
  Options.integer(name).pipe(Options.withDescription(description), Options.optional)

const flag = (name: string, description: string) => Options.boolean(name).pipe(Options.withDescription(description))

const options = {
  port: Help.defaulted(
    Options.integer("port"),
    "Discovery port; 0 takes any free port. Instances always take free ports.",
    0
  ),
  host: Help.defaulted(Options.text("host"), "Address to listen on.", "127.0.0.1"),
  instances: Help.defaulted(Options.integer("instances"), "Number of instances.", 1),
  apiKey: Options.text("api-key").pipe(
    Options.withDescription("The only key to accept (default: any non-empty key)."),
    Options.optional
  ),
  shape: Help.defaulted(
    Options.choice("shape", ["code", "readme"]),
    "Which documented discovery body to send: the shape the reference SDK's code parses, or the one its README shows.",
    "code" as const
  ),
  noRecordAudio: flag("no-record-audio", "Count audio without keeping it (for load tests)."),
  saveDir: Options.text("save-dir").pipe(
    Options.withDescription(
      "Write each session's audio to DIR/<session id>.wav (16 kHz mono 16-bit PCM) as it arrives, its reconnects appended; the file plays while it grows. Works with --no-record-audio."
    ),
    Options.withPseudoName("DIR"),
    Options.optional
  ),
  inspector: flag(
    "inspector",
    "Serve the live inspector page at /inspector on the discovery port: every session's audio, timing, playback, and the fault switches."
  ),
  playoutDelay: int(
    "playout-delay",
    "Play each chat frame no earlier than this many milliseconds after it arrives (default 100)."
  ),
  noAudioEvents: flag("no-audio-events", "Play and record, but send no audio_start nor audio_end."),
  audioEventDelay: int("audio-event-delay", "Send audio_start and audio_end this many milliseconds late."),
  discoveryDelay: int("discovery-delay", "Answer every discovery request this many milliseconds late."),
  discoveryStatus: int("discovery-status", "Answer every discovery request with this HTTP status."),
  rejectKey: flag("reject-key", "Accept the upgrade, then close with 4001."),
  occupied: flag("occupied", "Accept the upgrade, then close with 4003."),
  tooSoon: int("too-soon", "Close the next K connection attempts with 4004."),
  refuseFirst: Options.text("refuse-first").pipe(
    Options.withDescription(
      "CODE:K: close the next K connection attempts with CODE (4001, 4003 or 4004), e.g. 4004:3."
    ),
    Options.optional
  ),
  refuseUpgrade: int("refuse-upgrade", "Answer the upgrade request with this HTTP status (e.g. 401, 503)."),
  noWebsocketConnected: flag("no-websocket-connected", "Never send websocket_connected."),
  wsConnectedDelay: int(
    "ws-connected-delay",
    "Send websocket_connected this many milliseconds after the connection opened."
  ),
  stall: flag("stall", "Read nothing and answer nothing, upgrades included; TCP connections stay open."),
  noPong: flag("no-pong", "Do not answer pings."),
  noAck: flag("no-ack", "Never acknowledge commands nor leave_channel."),
  ackDelay: int("ack-delay", "Delay every answer to a command by this many milliseconds."),
  noAgoraConnected: flag("no-agora-connected", "Acknowledge set-params but never send agora_connected."),
  agoraConnectedDelay: int(
    "agora-connected-delay",
    "Send agora_connected this many milliseconds after the set-params ack."
  ),
  commandError: Options.text("command-error").pipe(
    Options.withDescription("CODE:MESSAGE: answer every command with an error message instead of an ack."),
    Options.optional
  ),
  errorAfterFrames: int("error-after-frames", "After N chat frames on a connection, send one error message."),
  errorCode: int("error-code", "With --error-after-frames: its error_code (default: 5000)."),
  errorMessage: Options.text("error-message").pipe(
    Options.withDescription('With --error-after-frames: its error_message (default: "simulated stream error").'),
    Options.optional
  ),
  dropAfterFrames: int(
    "drop-after-frames",
    "After N chat frames on a connection, end it (the N-th frame is the last recorded)."
  ),
  dropMode: Options.choice("drop-mode", ["close", "terminate"]).pipe(
    Options.withDescription(
      "With --drop-after-frames: close sends a close frame with --drop-code; terminate destroys the socket (1006) (default: close)."
    ),
    Options.optional
  ),
  dropCode: int("drop-code", "With --drop-after-frames: the close code (default: 1011)."),
  malformedAfterFrames: int("malformed-after-frames", "After N chat frames on a connection, send hostile messages."),
  malformedCount: int(
    "malformed-count",
    `With --malformed-after-frames: how many (default: ${AvatarSimulator.MALFORMED_KINDS.length}, one of each kind).`
  ),
  malformedKinds: Options.text("malformed-kinds").pipe(
    Options.withDescription(
      `With --malformed-after-frames: which kinds, in turn, comma-separated (default: all, ${AvatarSimulator.MALFORMED_KINDS.join(",")}).`
    ),
    Options.optional
  ),
  verbose: flag("verbose", "On an error, print its full cause too.")
}

type Parsed = Command.Command.ParseConfig<typeof options>

const whole = (name: string, value: number, min: number, max?: number) => {
  const problem = Faults.wholeProblem(`--${name}`, value, min, max)
  return problem === undefined
    ? Effect.succeed(value)
    : Effect.fail(new UsageError({ message: Faults.describe(problem) }))
}

const optionalWhole = (name: string, value: Option.Option<number>, min: number, max?: number) =>
  Option.match(value, {
    onNone: () => Effect.succeed(undefined),
    onSome: (v) => whole(name, v, min, max)
  })

/** The flag that sets each field of `Faults` a problem can be about. */
const FLAGS: Record<string, string> = {
  tooSoon: "too-soon",
  "refuseFirst.code": "refuse-first CODE",
  "refuseFirst.attempts": "refuse-first K",
  refuseUpgrade: "refuse-upgrade",
  websocketConnectedDelay: "ws-connected-delay",
  agoraConnectedDelay: "agora-connected-delay",
  ackDelay: "ack-delay",
  audioEventDelay: "audio-event-delay",
  "commandError.code": "command-error CODE",
  "commandError.message": "command-error MESSAGE",
  "errorAfterFrames.frames": "error-after-frames",
  "errorAfterFrames.code": "error-code",
  "errorAfterFrames.message": "error-message",
  "dropAfterFrames.frames": "drop-after-frames",
  "dropAfterFrames.mode": "drop-mode",
  "dropAfterFrames.code": "drop-code",
  "malformed.afterFrames": "malformed-after-frames",
  "malformed.count": "malformed-count",
  "malformed.kinds": "malformed-kinds"
}

/** `A:B`, split at the first colon. */
const pair = (name: string, value: string, shape: string) => {
  const at = value.indexOf(":")
  return at <= 0 || at === value.length - 1
    ? Effect.fail(new UsageError({ message: `--${name} takes ${shape} (got ${JSON.stringify(value)})` }))
    : Effect.succeed([value.slice(0, at), value.slice(at + 1)] as const)
}

const goesWith = (names: ReadonlyArray<string>, main: string) =>
  new UsageError({ message: `${names.map((n) => `--${n}`).join(" and ")} go with --${main}` })

/** The flags as faults, unjudged: `Faults.validate` judges them as it judges `make`'s. */
const faultsOf = (o: Parsed) =>
  Effect.gen(function* () {
    const faults: { -readonly [K in keyof AvatarSimulator.Faults]: AvatarSimulator.Faults[K] } = {}
    if (o.rejectKey) faults.rejectKey = true
    if (o.occupied) faults.occupied = true
    if (o.noWebsocketConnected) faults.noWebsocketConnected = true
    if (o.stall) faults.stall = true
    if (o.noPong) faults.noPong = true
    if (o.noAck) faults.noAck = true
    if (o.noAgoraConnected) faults.noAgoraConnected = true
    if (o.noAudioEvents) faults.noAudioEvents = true
    if (Option.isSome(o.audioEventDelay)) faults.audioEventDelay = o.audioEventDelay.value
    if (Option.isSome(o.tooSoon)) faults.tooSoon = o.tooSoon.value
    if (Option.isSome(o.refuseUpgrade)) faults.refuseUpgrade = o.refuseUpgrade.value
    if (Option.isSome(o.wsConnectedDelay)) faults.websocketConnectedDelay = o.wsConnectedDelay.value
    if (Option.isSome(o.ackDelay)) faults.ackDelay = o.ackDelay.value
    if (Option.isSome(o.agoraConnectedDelay)) faults.agoraConnectedDelay = o.agoraConnectedDelay.value
    if (Option.isSome(o.refuseFirst)) {
      const [code, attempts] = yield* pair("refuse-first", o.refuseFirst.value, "CODE:K, e.g. 4004:3")
      // judged below, with the rest: a code other than 4001, 4003 or 4004 is refused there
      faults.refuseFirst = { code: Number(code) as 4001, attempts: Number(attempts) }
    }
    if (Option.isSome(o.commandError)) {
      const [code, message] = yield* pair("command-error", o.commandError.value, "CODE:MESSAGE, e.g. 5001:no capacity")
      faults.commandError = { code: Number(code), message }
    }
    if (Option.isNone(o.errorAfterFrames) && (Option.isSome(o.errorCode) || Option.isSome(o.errorMessage))) {
      return yield* goesWith(["error-code", "error-message"], "error-after-frames")
    }
    if (Option.isSome(o.errorAfterFrames)) {
      faults.errorAfterFrames = {
        frames: o.errorAfterFrames.value,
        code: Option.getOrElse(o.errorCode, () => 5000),
        message: Option.getOrElse(o.errorMessage, () => "simulated stream error")
      }
    }
    if (Option.isNone(o.dropAfterFrames) && (Option.isSome(o.dropMode) || Option.isSome(o.dropCode))) {
      return yield* goesWith(["drop-mode", "drop-code"], "drop-after-frames")
    }
    if (Option.isSome(o.dropAfterFrames)) {
      faults.dropAfterFrames = {
        frames: o.dropAfterFrames.value,
        ...(Option.isSome(o.dropMode) ? { mode: o.dropMode.value } : {}),
        ...(Option.isSome(o.dropCode) ? { code: o.dropCode.value } : {})
      }
    }
    if (Option.isNone(o.malformedAfterFrames) && (Option.isSome(o.malformedCount) || Option.isSome(o.malformedKinds))) {
      return yield* goesWith(["malformed-count", "malformed-kinds"], "malformed-after-frames")
    }
    if (Option.isSome(o.malformedAfterFrames)) {
      faults.malformed = {
        afterFrames: o.malformedAfterFrames.value,
        count: Option.getOrElse(o.malformedCount, () => AvatarSimulator.MALFORMED_KINDS.length),
        ...(Option.isSome(o.malformedKinds)
          ? {
              kinds: o.malformedKinds.value
                .split(",")
                .map((k) => k.trim()) as ReadonlyArray<AvatarSimulator.MalformedKind>
            }
          : {})
      }
    }
    const problem = Faults.validate(faults)
    if (problem !== undefined) {
      return yield* new UsageError({ message: `--${FLAGS[problem.path] ?? problem.path}: ${problem.message}` })
    }
    return faults as AvatarSimulator.Faults
  })

const simulate = (o: Parsed) =>
  Effect.gen(function* () {
    yield* whole("port", o.port, 0, 65535)
    const count = yield* whole("instances", o.instances, 1, 1000)
    const faults = yield* faultsOf(o)
    const discoveryDelay = yield* optionalWhole("discovery-delay", o.discoveryDelay, 0)
    const discoveryStatus = yield* optionalWhole("discovery-status", o.discoveryStatus, 100, 599)
    const playoutDelay = yield* optionalWhole("playout-delay", o.playoutDelay, 0)
    const simulator = yield* AvatarSimulator.make({
      port: o.port,
      host: o.host,
      discoveryShape: o.shape,
      recordAudio: !o.noRecordAudio,
      inspector: o.inspector,
      ...(Option.isSome(o.saveDir) ? { saveDir: o.saveDir.value } : {}),
      ...(playoutDelay === undefined ? {} : { playoutDelay }),
      ...(Option.isSome(o.apiKey) ? { apiKey: o.apiKey.value } : {}),
      instances: Array.from({ length: count }, () => ({ faults }))
    })
    const discovery = {
      ...(discoveryDelay === undefined ? {} : { delay: discoveryDelay }),
      ...(discoveryStatus === undefined ? {} : { status: discoveryStatus })
    }
    if (Object.keys(discovery).length > 0) yield* simulator.setDiscovery(discovery)
    yield* Effect.addFinalizer(() => Effect.flatMap(simulator.report, (text) => Console.log(`\n${text}`)))
    yield* Console.log("Akool streaming-avatar simulator")
    yield* Console.log(`  discovery: ${simulator.discoveryUrl}`)
    if (simulator.inspectorUrl !== undefined) yield* Console.log(`  inspector: ${simulator.inspectorUrl}`)
    for (const instance of simulator.instances) {
      yield* Console.log(
        `  instance ${instance.index}: ws://${instance.host}:${instance.port}${AvatarSimulator.WEBSOCKET_PATH} (avatar ${instance.avatarId})`
      )
    }
    yield* Console.log(
      Option.isNone(o.apiKey) ? "  accepting any non-empty api_key" : "  accepting only the given api_key"
    )
    if (Option.isSome(o.saveDir)) {
      yield* Console.log(`  saving each session's audio to ${join(o.saveDir.value, "<session id>.wav")}`)
    }
    if (playoutDelay !== undefined) yield* Console.log(`  playout delay: ${playoutDelay} ms`)
    if (Object.keys(faults).length > 0) yield* Console.log(`  faults on every instance: ${JSON.stringify(faults)}`)
    if (Object.keys(discovery).length > 0) yield* Console.log(`  discovery: ${JSON.stringify(discovery)}`)
    yield* Console.log("Ctrl-C to stop.")
    return yield* Effect.never
  }).pipe(Effect.scoped)

export const command = Command.make("simulate", options, (o) => report(o.verbose)(simulate(o))).pipe(
  Command.withDescription(
    "Run the built-in Akool simulator (discovery over HTTP, one WebSocket server per instance) until Ctrl-C, with faults on demand. Point a client at the discovery URL it prints (AKOOL_DISCOVERY_URL). With --save-dir it writes what each session sent as a WAV. On exit it prints what it received."
  )
)
