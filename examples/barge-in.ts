/**
 * A Stream-to-avatar pipeline with barge-in: a simulated text-to-speech engine produces a
 * sentence faster than real time, in uneven chunks; the session paces it to playback; a
 * second and a half in, the user starts talking and `session.interrupt` cuts the avatar off
 * mid-sentence. Then the avatar answers with a short reply, which plays whole.
 *
 *     node --import tsx examples/barge-in.ts
 */
import { AvatarClient } from "akool-streaming-avatar"
import { Console, Effect, Fiber, Option, Schedule, Stream } from "effect"
import { check, main, target, tone } from "./support/effect.js"

/** Text-to-speech, simulated: bursts of 20 to 300 ms of audio, one every 10 ms (far ahead of playback). */
const tts = (pcm: Uint8Array): Stream.Stream<Uint8Array> => {
  const sizes = [640, 9600, 3200, 1920, 5760, 640, 7040, 2560]
  const chunks: Array<Uint8Array> = []
  for (let at = 0, i = 0; at < pcm.byteLength; i++) {
    const size = sizes[i % sizes.length]
    chunks.push(pcm.subarray(at, at + size))
    at += size
  }
  return Stream.fromIterable(chunks).pipe(Stream.schedule(Schedule.spaced("10 millis")))
}

const program = Effect.gen(function* () {
  const { avatarId, layer, params, simulator } = yield* target()
  const sentence = tone(6, 220) // a long answer: 6 s
  const reply = tone(0.5, 330) // "Sure, go ahead."

  yield* Effect.gen(function* () {
    const session = yield* AvatarClient.session({ avatarId })
    yield* session.setParams(params)

    const speaking = yield* Effect.fork(Stream.run(tts(sentence), session.audio))
    yield* Effect.sleep("1500 millis") // the user starts talking
    yield* session.interrupt // drops what is queued, stops the avatar, ends `speaking`
    yield* Fiber.join(speaking) // completes early, successfully
    const cut = yield* session.info
    yield* Console.log(
      `barge-in: ${cut.audio.framesWritten} frames spoken, ${cut.audio.framesDropped} dropped by the interrupt`
    )

    yield* Stream.run(tts(reply), session.audio)
    const info = yield* session.info
    yield* Console.log(`reply: ${info.audio.framesWritten - cut.audio.framesWritten} frames spoken`)

    if (Option.isSome(simulator)) {
      const sim = simulator.value
      // everything written has reached the server
      yield* sim.audio(session.sessionId).pipe(
        Effect.repeat({
          until: (a) => a.byteLength === info.audio.bytesWritten,
          schedule: Schedule.spaced("10 millis")
        })
      )
      const received = yield* sim.audio(session.sessionId)
      const spoken = received.byteLength - reply.byteLength
      yield* check(cut.audio.framesDropped > 0, "the interrupt dropped no queued audio")
      yield* check(spoken > 0 && spoken < sentence.byteLength, `the sentence was not cut (${spoken} bytes)`)
      yield* check(
        Buffer.from(received.subarray(0, spoken)).equals(sentence.subarray(0, spoken)),
        "what was spoken of the sentence is not its beginning"
      )
      yield* check(
        Buffer.from(received.subarray(spoken)).equals(reply),
        "the reply did not arrive whole, right after the cut"
      )
      const [record] = yield* sim.sessions
      yield* check(
        record.commands.some((c) => c.cmd === "interrupt"),
        "the server never received the interrupt"
      )
      yield* Console.log(
        `OK: ${(spoken / 32_000).toFixed(2)} s of the ${sentence.byteLength / 32_000} s sentence were spoken before the barge-in, then the whole reply`
      )
    } else {
      yield* Console.log("OK: interrupted mid-sentence and replied")
    }
  }).pipe(Effect.scoped, Effect.provide(layer))
}).pipe(Effect.scoped)

main(program)
