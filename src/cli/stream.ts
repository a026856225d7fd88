/**
 * `akool-avatar stream <file | ->`: decodes a file or standard input to 16 kHz mono PCM
 * and streams it to an avatar, with a progress bar; without `AKOOL_API_KEY`, to the
 * built-in simulator, which then confirms what it received.
 */
import { createHash } from "node:crypto"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeStream from "@effect/platform-node/NodeStream"
import CliProgress from "cli-progress"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Audio from "../Audio.js"
import * as AvatarClient from "../AvatarClient.js"
import * as AvatarConfig from "../AvatarConfig.js"
import type * as AvatarSession from "../AvatarSession.js"
import * as AvatarSimulator from "../AvatarSimulator.js"
import { bytesPerSample, type Encoding } from "../internal/audio/pcm.js"
import * as Constants from "../internal/constants.js"
import type * as Protocol from "../Protocol.js"
import * as Help from "./help.js"
import { CheckFailed, report, UsageError } from "./report.js"

const FORMATS = ["auto", "wav", "mp3", ...Audio.ENCODINGS] as const
type Format = (typeof FORMATS)[number]

const text = (name: string, description: string) =>
  Options.text(name).pipe(Options.withDescription(description), Options.optional)

const options = {
  input: Args.text({ name: "file | -" }).pipe(
    Args.withDescription("A WAV or MP3 file, or - for standard input (raw PCM on stdin needs --format and --rate).")
  ),
  avatarId: text("avatar-id", `The avatar to drive (default: $AKOOL_AVATAR_ID, else ${Constants.DEFAULT_AVATAR_ID}).`),
  voice: text("voice", "Voice id for the avatar (set-params vid)."),
  language: Help.defaulted(Options.text("language"), "Language code.", "en"),
  background: text("background", "Background image URL."),
  agoraAppId: text("agora-app-id", "Agora app id (default: $AKOOL_AGORA_APP_ID). Needed with AKOOL_API_KEY."),
  agoraChannel: text("agora-channel", "Agora channel (default: $AKOOL_AGORA_CHANNEL). Needed with AKOOL_API_KEY."),
  agoraToken: text(
    "agora-token",
    "Agora token (default: $AKOOL_AGORA_TOKEN; may be empty for a channel without tokens). Needed with AKOOL_API_KEY."
  ),
  agoraUid: text("agora-uid", "Agora uid (default: $AKOOL_AGORA_UID). Needed with AKOOL_API_KEY."),
  env: Options.choice("env", ["test", "prod"]).pipe(
    Options.withDescription(
      "Service group: test adds group_name=WEBSOCKET_GROUP_TEST to discovery (default: $AKOOL_ENV, else test)."
    ),
    Options.optional
  ),
  discoveryUrl: text(
    "discovery-url",
    "Discovery endpoint (default: $AKOOL_DISCOVERY_URL, else the reference SDK's). Only its scheme and host are used."
  ),
  pacing: Help.defaulted(
    Options.choice("pacing", ["realtime", "none"]),
    "realtime: send at playback speed (at most 1 s ahead); none: as fast as the socket takes it.",
    "realtime" as const
  ),
  frameMs: Help.defaulted(
    Options.integer("frame-ms"),
    "Milliseconds of audio per chat message, from 10 to 1000.",
    Audio.DEFAULT_FRAME_MS
  ),
  format: Help.defaulted(
    Options.choice("format", FORMATS),
    "What the input is: auto (WAV or MP3, told by its header), wav, mp3, or raw PCM samples: u8, s8, s16le, s24le, s32le, f32le, f64le (raw needs --rate).",
    "auto" as Format
  ),
  rate: Options.integer("rate").pipe(Options.withDescription("Sample rate of raw PCM input, in Hz."), Options.optional),
  channels: Help.defaulted(
    Options.integer("channels"),
    "Interleaved channels of raw PCM input (mixed down to mono).",
    1
  ),
  quality: Help.defaulted(
    Options.choice("quality", ["best", "medium", "fastest"]),
    "Resampler quality (libsamplerate sinc).",
    "medium" as const
  ),
  hold: Options.boolean("hold").pipe(
    Options.withDescription(
      "With the built-in simulator: keep it and its inspector page running after the stream, until Ctrl-C."
    )
  ),
  noProgress: Options.boolean("no-progress").pipe(Options.withDescription("Do not draw the progress bar.")),
  verbose: Options.boolean("verbose").pipe(Options.withDescription("On an error, print its full cause too."))
}

type Parsed = Command.Command.ParseConfig<typeof options>

/** A flag, else an environment variable, else nothing. */
const setting = (flag: Option.Option<string>, variable: string) =>
  Option.isSome(flag) ? Effect.succeed(flag) : Config.option(Config.string(variable))

interface Source {
  readonly audio: Stream.Stream<Uint8Array, unknown, FileSystem.FileSystem>
  readonly label: string
  readonly totalSeconds: Option.Option<number>
}

const sourceOf = (o: Parsed): Effect.Effect<Source, unknown, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const stdin = o.input === "-"
    const name = stdin ? "standard input" : o.input
    const fs = yield* FileSystem.FileSystem
    const bytes = stdin ? NodeStream.stdin : fs.stream(o.input)
    const quality = o.quality
    if (o.format !== "auto" && o.format !== "wav" && o.format !== "mp3") {
      const encoding: Encoding = o.format
      if (Option.isNone(o.rate)) {
        return yield* new UsageError({
          message: `raw PCM (--format ${encoding}) needs its sample rate: --rate N`,
          hint: "e.g. --format s16le --rate 24000 for 24 kHz 16-bit text-to-speech output"
        })
      }
      const sampleRate = o.rate.value
      const frame = bytesPerSample(encoding) * o.channels
      const size = stdin ? undefined : Number((yield* fs.stat(o.input)).size)
      return {
        audio: bytes.pipe(Audio.fromPcm({ sampleRate, channels: o.channels, encoding, quality })),
        label: `${name}: raw ${encoding}, ${sampleRate} Hz, ${o.channels} channel${o.channels === 1 ? "" : "s"}`,
        totalSeconds: size === undefined ? Option.none() : Option.some(Math.floor(size / frame) / sampleRate)
      }
    }
    if (stdin) {
      return {
        audio: bytes.pipe(Audio.decode({ format: o.format, source: "stdin", quality })),
        label: `standard input (${o.format === "auto" ? "WAV or MP3" : o.format})`,
        totalSeconds: Option.none()
      }
    }
    const info = yield* Audio.probeFile(o.input, { format: o.format })
    const seconds = Option.match(info.durationSeconds, {
      onNone: () => "",
      onSome: (s) => `, ${info.durationExact ? "" : "about "}${s.toFixed(2)} s`
    })
    return {
      audio: Audio.fromFile(o.input, { format: o.format, quality }),
      label: `${name}: ${info.container === "wav" ? "WAV" : "MPEG audio"}, ${info.codec}, ${info.sampleRate} Hz, ${info.channels} channel${info.channels === 1 ? "" : "s"}${seconds}`,
      totalSeconds: info.durationSeconds
    }
  })

/** The progress bar on standard error, when it is a terminal. */
const progressBar = (totalSeconds: Option.Option<number>, enabled: boolean) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      if (!enabled || process.stderr.isTTY !== true) return undefined
      const known = Option.isSome(totalSeconds)
      const bar = new CliProgress.SingleBar(
        {
          format: known ? "{bar} {sent} / {total_s} s | {rtf}× real time" : "sent {sent} s | {rtf}× real time",
          hideCursor: true,
          stream: process.stderr,
          barsize: 30
        },
        CliProgress.Presets.shades_classic
      )
      const total = Option.getOrElse(totalSeconds, () => 1)
      bar.start(total, 0, { sent: "0.00", total_s: total.toFixed(2), rtf: "0.00" })
      return bar
    }),
    (bar) => Effect.sync(() => bar?.stop())
  )

const secondsOf = (bytes: number) => bytes / Audio.BYTES_PER_SECOND

const counted = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`

/** The line a run ends with, also when Ctrl-C ends it: what was sent, and how fast. */
const summaryOf = (session: AvatarSession.AvatarSession, started: number) =>
  Effect.gen(function* () {
    const info = yield* session.info
    const now = yield* Clock.currentTimeMillis
    const seconds = secondsOf(info.audio.bytesWritten)
    const elapsed = (now - started) / 1000
    const rtf = elapsed > 0 ? seconds / elapsed : 0
    return `sent ${seconds.toFixed(2)} s of audio (${counted(info.audio.framesWritten, "frame")}, ${counted(info.reconnects, "reconnect")}) in ${elapsed.toFixed(2)} s (real-time factor ${rtf.toFixed(2)})`
  })

const streamTo = (
  session: AvatarSession.AvatarSession,
  source: Source,
  o: Parsed
): Effect.Effect<{ readonly bytes: number; readonly digest: string }, unknown, FileSystem.FileSystem | Scope.Scope> =>
  Effect.gen(function* () {
    const hash = createHash("sha256")
    let bytes = 0
    const audio = source.audio.pipe(
      Stream.tap((chunk) =>
        Effect.sync(() => {
          hash.update(chunk)
          bytes += chunk.byteLength
        })
      )
    )
    const started = yield* Clock.currentTimeMillis
    const bar = yield* progressBar(source.totalSeconds, !o.noProgress)
    const sent = Effect.map(session.info, (info) => secondsOf(info.audio.bytesWritten))
    const rtf = (seconds: number, now: number) => (now > started ? seconds / ((now - started) / 1000) : 0)
    const progress = yield* Effect.all([sent, Clock.currentTimeMillis]).pipe(
      Effect.tap(([seconds, now]) =>
        Effect.sync(() =>
          bar?.update(Option.isSome(source.totalSeconds) ? Math.min(seconds, source.totalSeconds.value) : 0, {
            sent: seconds.toFixed(2),
            rtf: rtf(seconds, now).toFixed(2)
          })
        )
      ),
      Effect.repeat(Schedule.spaced("100 millis")),
      Effect.forkScoped
    )
    yield* Stream.run(audio, session.audio).pipe(
      Effect.onInterrupt(() =>
        Effect.gen(function* () {
          bar?.stop()
          yield* Console.error("\nInterrupted: stopping the avatar and leaving the channel...")
          yield* session.interrupt.pipe(Effect.timeout("5 seconds"), Effect.ignore)
          // what the avatar got before Ctrl-C, as a run that ends on its own says
          yield* Console.log(yield* summaryOf(session, started))
        })
      )
    )
    yield* Fiber.interrupt(progress)
    const seconds = yield* sent
    if (bar !== undefined) {
      bar.update(Option.isSome(source.totalSeconds) ? source.totalSeconds.value : 0, {
        sent: seconds.toFixed(2),
        rtf: rtf(seconds, yield* Clock.currentTimeMillis).toFixed(2)
      })
      bar.stop()
    }
    yield* Console.log(yield* summaryOf(session, started))
    return { bytes, digest: hash.digest("hex") }
  })

/** Where the audio goes, and what the session needs to get there. */
interface Target {
  readonly client: Layer.Layer<AvatarClient.AvatarClient, unknown>
  readonly agora: Protocol.AvatarParams["agora"]
  /** The built-in simulator, when there is no key: it then confirms what it received. */
  readonly simulator: AvatarSimulator.Service | undefined
}

const AGORA_SETTINGS = [
  ["appId", "--agora-app-id", "AKOOL_AGORA_APP_ID"],
  ["channel", "--agora-channel", "AKOOL_AGORA_CHANNEL"],
  ["token", "--agora-token", "AKOOL_AGORA_TOKEN"],
  ["uid", "--agora-uid", "AKOOL_AGORA_UID"]
] as const

/** The discovery host, and the setting it came from: what the first line names. */
export const whereTo = (flag: Option.Option<string>, variable: Option.Option<string>): string => {
  const [url, from] = Option.isSome(flag)
    ? [flag.value, "--discovery-url"]
    : Option.isSome(variable)
      ? [variable.value, "AKOOL_DISCOVERY_URL"]
      : [AvatarConfig.DEFAULT_DISCOVERY_URL, undefined]
  const host = URL.canParse(url) ? new URL(url).host : url
  return from === undefined ? `the Akool service at ${host}` : `${host} (${from})`
}

/** The built-in simulator, or the service the key and the discovery settings name. Prints the first line. */
const targetOf = (o: Parsed, avatarId: string): Effect.Effect<Target, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const apiKey = Option.filter(
      yield* Config.option(Config.redacted("AKOOL_API_KEY")),
      (key) => Redacted.value(key).trim() !== ""
    )
    const agoraFlags = {
      appId: yield* setting(o.agoraAppId, "AKOOL_AGORA_APP_ID"),
      channel: yield* setting(o.agoraChannel, "AKOOL_AGORA_CHANNEL"),
      token: yield* setting(o.agoraToken, "AKOOL_AGORA_TOKEN"),
      uid: yield* setting(o.agoraUid, "AKOOL_AGORA_UID")
    }
    if (Option.isNone(apiKey)) {
      yield* Console.log(
        "streaming to the built-in simulator in this process (AKOOL_API_KEY is not set, so nothing reaches Akool)"
      )
      const simulator = yield* AvatarSimulator.make({ apiKey: "simulator-key", inspector: true })
      yield* Console.log(
        `inspector: ${simulator.inspectorUrl} (the session live: its audio, timing and playback; --hold keeps it up after the stream)`
      )
      return {
        simulator,
        client: AvatarClient.layerNode({
          apiKey: Redacted.make("simulator-key"),
          discoveryUrl: simulator.discoveryUrl,
          env: "test"
        }),
        agora: {
          appId: Option.getOrElse(agoraFlags.appId, () => "simulator-app"),
          channel: Option.getOrElse(agoraFlags.channel, () => "simulator-channel"),
          token: Option.getOrElse(agoraFlags.token, () => "simulator-token"),
          uid: Option.getOrElse(agoraFlags.uid, () => "1")
        }
      }
    }
    const missing = AGORA_SETTINGS.filter(([key]) => Option.isNone(agoraFlags[key]))
    if (missing.length > 0) {
      return yield* new UsageError({
        message: `AKOOL_API_KEY is set, so the avatar joins a real Agora channel, but ${missing.map(([, flag, variable]) => `${flag} (or ${variable})`).join(", ")} ${missing.length === 1 ? "is" : "are"} not set`,
        hint: "give every Agora setting, or unset AKOOL_API_KEY to stream to the built-in simulator"
      })
    }
    const env = Option.isSome(o.env) ? o.env : yield* Config.option(Config.string("AKOOL_ENV"))
    const discoveryVariable = yield* Config.option(Config.string("AKOOL_DISCOVERY_URL"))
    const discoveryUrl = Option.orElse(o.discoveryUrl, () => discoveryVariable)
    yield* Console.log(`streaming to ${whereTo(o.discoveryUrl, discoveryVariable)}`)
    return {
      simulator: undefined,
      client: AvatarClient.layerNode({
        apiKey: apiKey.value,
        avatarId,
        ...(Option.isSome(env) ? { env: env.value as "test" | "prod" } : {}),
        ...(Option.isSome(discoveryUrl) ? { discoveryUrl: discoveryUrl.value } : {})
      }),
      agora: {
        appId: Option.getOrThrow(agoraFlags.appId),
        channel: Option.getOrThrow(agoraFlags.channel),
        token: Option.getOrThrow(agoraFlags.token),
        uid: Option.getOrThrow(agoraFlags.uid)
      }
    }
  })

/** The built-in simulator must have received every byte sent, in order. */
const confirm = (
  sim: AvatarSimulator.Service,
  sessionId: string,
  sent: { readonly bytes: number; readonly digest: string },
  verbose: boolean
) =>
  Effect.gen(function* () {
    // the simulator records the close once it has seen it
    yield* sim.openConnections.pipe(
      Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (open) => open === 0 }),
      Effect.timeout("2 seconds"),
      Effect.ignore
    )
    if (verbose) yield* Console.log(yield* sim.report)
    const received = yield* sim.audio(sessionId)
    const digest = createHash("sha256").update(received).digest("hex")
    if (received.byteLength !== sent.bytes || digest !== sent.digest) {
      return yield* new CheckFailed({
        message: `the simulator received ${received.byteLength} bytes of audio that differ from the ${sent.bytes} sent`,
        hint: "this is a bug: run with --verbose and report the output"
      })
    }
    yield* Console.log(
      `OK: the simulator received all ${sent.bytes} bytes (${secondsOf(sent.bytes).toFixed(2)} s) of 16 kHz mono PCM, byte for byte, in order.`
    )
  })

const run = (o: Parsed) =>
  Effect.gen(function* () {
    if (o.frameMs < 10 || o.frameMs > 1000) {
      return yield* new UsageError({
        message: `--frame-ms takes 10 to 1000 milliseconds (got ${o.frameMs})`,
        hint: `20 or 40 are usual; the default is ${Audio.DEFAULT_FRAME_MS}`
      })
    }
    const source = yield* sourceOf(o)
    const avatarId = Option.getOrElse(yield* setting(o.avatarId, "AKOOL_AVATAR_ID"), () => Constants.DEFAULT_AVATAR_ID)
    const target = yield* targetOf(o, avatarId)
    yield* Console.log(`input ${source.label} -> 16 kHz mono PCM`)
    const { sessionId, sent } = yield* Effect.scoped(
      Effect.gen(function* () {
        const avatar = Context.get(yield* Layer.build(target.client), AvatarClient.AvatarClient)
        // added before the session, so it runs after the session has closed
        yield* Effect.addFinalizer((exit) =>
          Exit.isInterrupted(exit) ? Console.error("Left the channel.") : Effect.void
        )
        const session = yield* avatar.session({ avatarId, pacing: o.pacing, frameMs: o.frameMs })
        const info = yield* session.info
        yield* Console.log(
          `session ${session.sessionId}, avatar ${session.avatarId}${info.currentService === null ? "" : `, instance ${info.currentService.ip}:${info.currentService.port}`}`
        )
        yield* session.setParams({
          agora: target.agora,
          language: o.language,
          ...(Option.isSome(o.voice) ? { voiceId: o.voice.value } : {}),
          ...(Option.isSome(o.background) ? { backgroundUrl: o.background.value } : {})
        })
        const sent = yield* streamTo(session, source, o)
        return { sessionId: session.sessionId, sent }
        // closing the scope flushes what is queued, sends leave_channel and closes the socket
      })
    )
    if (target.simulator !== undefined) {
      yield* confirm(target.simulator, sessionId, sent, o.verbose)
      if (o.hold) {
        yield* Console.log(`holding the simulator: ${target.simulator.inspectorUrl} shows the session; Ctrl-C to stop.`)
        return yield* Effect.never
      }
    }
  }).pipe(Effect.scoped)

export const command = Command.make("stream", options, (o) => report(o.verbose)(run(o))).pipe(
  Command.withDescription(
    "Stream a WAV or MP3 file, or standard input, to an avatar in real time. Any rate, channel count and sample format is converted to 16 kHz mono. Reads AKOOL_API_KEY, AKOOL_DISCOVERY_URL, AKOOL_ENV, AKOOL_AVATAR_ID and AKOOL_AGORA_APP_ID, _CHANNEL, _TOKEN, _UID; without AKOOL_API_KEY it streams to the built-in simulator and checks what arrived. The first line says where the audio goes, the last what was sent. Ctrl-C stops the avatar, leaves the channel, prints what was sent and exits with 130."
  )
)
