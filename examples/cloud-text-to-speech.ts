/**
 * Text to speech in the cloud: OpenAI's speech endpoint answers with raw 24 kHz 16-bit mono
 * PCM while it synthesizes; the response body goes into the session as it arrives,
 * resampled to 16 kHz on the way, so the avatar starts speaking before the answer is whole.
 *
 * Needs `OPENAI_API_KEY` (without it, it says so and exits). `OPENAI_BASE_URL` points it at
 * another server that speaks the same API. The avatar side: Akool with `AKOOL_API_KEY` (and
 * `AKOOL_AGORA_*`), else the built-in simulator, which then checks what it received.
 *
 *     OPENAI_API_KEY=sk-... node --import tsx examples/cloud-text-to-speech.ts "Hello, I am your avatar."
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Audio } from "akool-streaming-avatar"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { main, speakAndCheck, target } from "./support/effect.js"

const sentence =
  process.argv.slice(2).join(" ") || "Hello! I am your avatar. This voice was synthesized in the cloud as I spoke."

/** The sentence as OpenAI sends it: 24 kHz, 16-bit, mono, little-endian PCM, in pieces as they are synthesized. */
const synthesize = (openai: { readonly apiKey: Redacted.Redacted; readonly baseUrl: string }, input: string) =>
  HttpClientRequest.post(`${openai.baseUrl}/audio/speech`).pipe(
    HttpClientRequest.bearerToken(openai.apiKey), // the key stays Redacted: it is unwrapped only into the header
    HttpClientRequest.bodyJson({ model: "gpt-4o-mini-tts", input, voice: "alloy", response_format: "pcm" }),
    Effect.flatMap(HttpClient.execute),
    // a refused key or a bad request fails the stream instead of being played as audio
    Effect.flatMap(HttpClientResponse.filterStatusOk),
    HttpClientResponse.stream
  )

const program = Effect.gen(function* () {
  const apiKey = yield* Config.option(Config.redacted("OPENAI_API_KEY"))
  if (Option.isNone(apiKey)) return yield* Console.log("SKIP: no OPENAI_API_KEY set, so there is no voice to stream")
  const baseUrl = yield* Config.string("OPENAI_BASE_URL").pipe(Config.withDefault("https://api.openai.com/v1"))

  const t = yield* target()
  yield* Console.log(`speaking: "${sentence}"`)
  const speech = synthesize({ apiKey: apiKey.value, baseUrl }, sentence).pipe(Audio.fromPcm({ sampleRate: 24_000 }))

  yield* speakAndCheck(t, speech, "cloud speech")
}).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layer))

main(program)
