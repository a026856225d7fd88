/**
 * Streams examples/sample.wav to an avatar, in real time, and checks what arrived.
 *
 *     npm run demo
 *
 * Without AKOOL_API_KEY it runs against the built-in simulator, in this process. With
 * AKOOL_API_KEY (and AKOOL_DISCOVERY_URL, AKOOL_ENV, AKOOL_AVATAR_ID if needed) plus
 * AKOOL_AGORA_APP_ID, AKOOL_AGORA_CHANNEL, AKOOL_AGORA_TOKEN and AKOOL_AGORA_UID it talks
 * to the real service. In an application, import from "akool-streaming-avatar" instead
 * of "../src/index.js".
 */
import { fileURLToPath } from "node:url"
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { Audio, AvatarClient, AvatarSimulator, type Protocol } from "../src/index.js"

/** The demo's own failures: a bad WAV file, a missing variable, audio that did not arrive intact. */
class DemoError extends Data.TaggedError("DemoError")<{ readonly message: string }> {}

// Resolved against this file, not the working directory, so `npm run demo` works from anywhere.
const SAMPLE = fileURLToPath(new URL("sample.wav", import.meta.url))

/**
 * The PCM inside a WAV file. The session takes raw 16 kHz 16-bit mono PCM and refuses a
 * RIFF header, so the header goes here; the chunks are walked rather than assuming 44 bytes.
 */
const pcmFromWav = (file: Uint8Array): Effect.Effect<Uint8Array, DemoError> => {
  const fail = (why: string) => Effect.fail(new DemoError({ message: `${SAMPLE}: ${why}` }))
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  const tag = (at: number) => String.fromCharCode(...file.subarray(at, at + 4))
  if (file.byteLength < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") return fail("not a RIFF/WAVE file")
  let formatOk = false
  for (let at = 12; at + 8 <= file.byteLength; ) {
    const id = tag(at)
    const size = view.getUint32(at + 4, true)
    const body = at + 8
    if (id === "fmt ") {
      if (size < 16 || body + 16 > file.byteLength) return fail("the fmt chunk is truncated")
      const format = view.getUint16(body, true) // 1 is integer PCM
      const channels = view.getUint16(body + 2, true)
      const rate = view.getUint32(body + 4, true)
      const bits = view.getUint16(body + 14, true)
      if (format !== 1 || channels !== 1 || rate !== Audio.SAMPLE_RATE || bits !== 16) {
        return fail(`needs PCM 16-bit mono 16000 Hz, found format ${format}, ${bits}-bit, ${channels} ch, ${rate} Hz`)
      }
      formatOk = true
    } else if (id === "data") {
      if (!formatOk) return fail("the data chunk comes before the fmt chunk")
      // a writer that streamed the file may leave the size too large: keep what is there
      return Effect.succeed(file.subarray(body, Math.min(body + size, file.byteLength)))
    }
    at = body + size + (size % 2) // chunks are padded to an even length
  }
  return fail("no data chunk")
}

/** Real mode needs all four Agora settings; name the one that is missing. */
const agoraFromEnv = Effect.gen(function* () {
  const read = (name: string) =>
    Config.string(name).pipe(
      Effect.mapError(
        () =>
          new DemoError({
            message: `${name} is not set: with AKOOL_API_KEY the demo uses the real service and needs AKOOL_AGORA_APP_ID, AKOOL_AGORA_CHANNEL, AKOOL_AGORA_TOKEN and AKOOL_AGORA_UID (unset AKOOL_API_KEY to use the simulator)`
          })
      )
    )
  return {
    appId: yield* read("AKOOL_AGORA_APP_ID"),
    channel: yield* read("AKOOL_AGORA_CHANNEL"),
    token: yield* read("AKOOL_AGORA_TOKEN"),
    uid: yield* read("AKOOL_AGORA_UID")
  }
})

// Progress rewrites one line on a terminal; in a CI log every update is its own line.
const tty = process.stdout.isTTY === true
const line = (text: string) => Console.log(tty ? `\r\x1b[K${text}` : text)
const progressLine = (text: string) =>
  tty ? Effect.sync(() => process.stdout.write(`\r\x1b[K${text}`)) : Console.log(text)

/** Opens a session, streams the PCM through it in real time, closes it; returns what it reported while open. */
const speak = (pcm: Uint8Array, agora: Protocol.AvatarParams["agora"], avatarId: string) =>
  Effect.gen(function* () {
    const client = yield* AvatarClient.AvatarClient
    const total = (pcm.byteLength / Audio.BYTES_PER_SECOND).toFixed(2)
    const { info, states } = yield* Effect.scoped(
      Effect.gen(function* () {
        const session = yield* client.session({ avatarId, pacing: "realtime" })
        yield* Console.log(`session ${session.sessionId} for avatar ${session.avatarId}`)
        // Forked from this fiber, not into this scope: it outlives the scope and sees `Closed`.
        const states = yield* session.state.changes.pipe(
          Stream.takeUntil((s) => s._tag === "Closed"),
          Stream.runForEach((s) => line(`state: ${s._tag}${"instance" in s ? ` (${s.instance})` : ""}`)),
          Effect.fork
        )
        yield* session.setParams({ agora, language: "en" })

        // Any chunk sizes work: the session cuts them into 40 ms frames of whole samples,
        // even when a chunk ends in the middle of a sample (these sizes are odd on purpose).
        const chunks: Array<Uint8Array> = []
        for (let at = 0, i = 0; at < pcm.byteLength; i++) {
          const size = 3001 + ((i * 977) % 2000)
          chunks.push(pcm.subarray(at, at + size))
          at += size
        }
        const speech = Stream.fromIterable(chunks)

        const sent = Effect.map(session.info, (i) => (i.audio.bytesWritten / Audio.BYTES_PER_SECOND).toFixed(2))
        const progress = yield* sent.pipe(
          Effect.flatMap((s) => progressLine(`sent ${s} s of ${total} s`)),
          Effect.repeat(Schedule.spaced("500 millis")),
          Effect.forkScoped
        )
        // Completes once every frame has been written to the socket. Pacing lets the writer
        // run at most `lead` (1 s) ahead of playback, so this takes about the audio's length.
        yield* Stream.run(speech, session.audio)
        yield* Fiber.interrupt(progress)
        yield* line(`sent ${yield* sent} s of ${total} s`)
        return { info: yield* session.info, states }
        // Closing the scope flushes anything still queued, sends leave_channel, closes the socket.
      })
    )
    yield* Fiber.join(states)
    return info
  })

const program = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  const pcm = yield* pcmFromWav(yield* fs.readFile(SAMPLE))
  const avatarId = yield* Config.string("AKOOL_AVATAR_ID").pipe(Config.withDefault("dvp_Tristan_cloth2_1080P"))
  // Redacted, so the key cannot end up in a log line, even by accident
  const apiKey = yield* Config.option(Config.redacted("AKOOL_API_KEY"))

  if (Option.isNone(Option.filter(apiKey, (key) => Redacted.value(key).trim() !== ""))) {
    yield* Console.log("AKOOL_API_KEY is not set: running against the built-in simulator, in this process.")
    const sim = yield* AvatarSimulator.make({ apiKey: "simulator-key" })
    const client = AvatarClient.layerNode({
      apiKey: Redacted.make("simulator-key"),
      discoveryUrl: sim.discoveryUrl,
      env: "test"
    })
    const agora = { appId: "simulator-app", channel: "demo-channel", token: "simulator-token", uid: "1" }
    const { sessionId } = yield* speak(pcm, agora, avatarId).pipe(Effect.provide(client))

    // What the other end saw (once it has seen the socket close): it decoded every chat message back to PCM.
    yield* sim.openConnections.pipe(
      Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (open) => open === 0 }),
      Effect.timeout("1 second"),
      Effect.ignore
    )
    yield* Console.log(yield* sim.report)
    const received = yield* sim.audio(sessionId)
    const intact = received.byteLength === pcm.byteLength && received.every((byte, i) => byte === pcm[i])
    if (!intact) {
      return yield* new DemoError({
        message: `the simulator received ${received.byteLength} bytes that differ from the ${pcm.byteLength} sent`
      })
    }
    yield* Console.log(`OK: the simulator received all ${pcm.byteLength} bytes of PCM, byte for byte, in order.`)
  } else {
    yield* Console.log("AKOOL_API_KEY is set: talking to the Akool service.")
    const agora = yield* agoraFromEnv
    const info = yield* speak(pcm, agora, avatarId).pipe(Effect.provide(AvatarClient.layerNodeConfig))
    yield* Console.log(`session info before closing: ${JSON.stringify(info, null, 2)}`)
  }
})

// One readable line for a typed error (its tag and message), the full cause for a bug.
const describe = (cause: Cause.Cause<unknown>) =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => Cause.pretty(cause),
    onSome: (error) =>
      ConfigError.isConfigError(error) // it names the variable only in its string form
        ? `ConfigError: ${String(error)}`
        : Predicate.hasProperty(error, "_tag") && Predicate.hasProperty(error, "message")
          ? `${String(error._tag)}: ${String(error.message)}`
          : String(error)
  })

program.pipe(
  Effect.scoped,
  Effect.provide(NodeFileSystem.layer),
  Effect.tapErrorCause((cause) => (Cause.isInterruptedOnly(cause) ? Effect.void : Console.error(describe(cause)))),
  // the error was reported above; runMain still exits with code 1
  NodeRuntime.runMain({ disableErrorReporting: true })
)
