/**
 * Text to speech with a local engine: espeak-ng speaks a sentence, and the WAV it writes to
 * standard output goes into the session as it is written, decoded on the way (espeak-ng
 * writes 22,050 Hz mono; the avatar takes 16 kHz). No temporary file, nothing collected
 * first.
 *
 * With `AKOOL_API_KEY` (and `AKOOL_AGORA_*`) it talks to Akool; without it, to the built-in
 * simulator, and then checks that the simulator received every converted byte.
 *
 *     node --import tsx examples/text-to-speech.ts "Hello, I am your avatar."
 *
 * Needs espeak-ng on the PATH (`apt-get install espeak-ng`, `brew install espeak-ng`).
 */
import * as Command from "@effect/platform/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Audio } from "akool-streaming-avatar"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { main, speakAndCheck, target } from "./support/effect.js"

const sentence =
  process.argv.slice(2).join(" ") ||
  "Hello! I am your avatar. These words were synthesized by espeak-ng and streamed to me as they were spoken."

// `--` keeps a sentence that starts with "-" from being read as an option
const espeak = Command.make("espeak-ng", "--stdout", "--", sentence)

// the WAV as espeak-ng writes it, decoded and resampled to 16 kHz mono chunk by chunk
const speech = Command.stream(espeak).pipe(Audio.decode({ source: "espeak-ng" }))

const program = Effect.gen(function* () {
  const t = yield* target()
  yield* Console.log(`speaking: "${sentence}"`)

  yield* speakAndCheck(t, speech, "espeak-ng speech")
}).pipe(
  Effect.scoped,
  // espeak-ng runs through the platform's CommandExecutor
  Effect.provide(NodeContext.layer),
  Effect.catchTag("SystemError", (e) =>
    e.reason === "NotFound"
      ? Effect.dieMessage("espeak-ng was not found: install it (apt-get install espeak-ng, brew install espeak-ng)")
      : Effect.fail(e)
  )
)

main(program)
