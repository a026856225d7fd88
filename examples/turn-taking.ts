/**
 * A voice agent's turn-taking: it says a sentence with `session.say` and waits until the
 * avatar has spoken it (`utterance.played`); it says a second, longer one, and the user barges
 * in half way (`session.interrupt`). Its history keeps only what the user heard: the second
 * answer's transcript is cut at `playedMs`, at a word boundary, as a Realtime agent truncates
 * its item at `audio_end_ms`.
 *
 *     node --conditions=akool-source --import tsx examples/turn-taking.ts
 */
import { AvatarClient, type AvatarSession } from "akool-streaming-avatar"
import { Console, Effect, Option, Stream } from "effect"
import { check, main, target, tone } from "./support/effect.js"

/** An answer: what the agent says, and its speech (a tone stands in for text-to-speech). */
interface Answer {
  readonly text: string
  readonly speech: Uint8Array
}

/** Speech as a text-to-speech engine hands it over: 100 ms chunks. */
const chunks = (pcm: Uint8Array): Stream.Stream<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let at = 0; at < pcm.byteLength; at += 3200) out.push(pcm.subarray(at, at + 3200))
  return Stream.fromIterable(out)
}

/**
 * The part of `text` heard when `playedMs` of `durationMs` were: proportional (speech is about
 * evenly spread over its characters), and cut back to the last whole word so that the history
 * holds no half word the user never heard.
 */
const heard = (text: string, playedMs: number, durationMs: number): string => {
  if (durationMs <= 0 || playedMs >= durationMs) return text
  const chars = Math.floor((text.length * Math.max(0, playedMs)) / durationMs)
  if (chars === 0) return ""
  const end = text[chars] === " " ? chars : text.lastIndexOf(" ", chars)
  return end <= 0 ? "" : text.slice(0, end).replace(/[,;:]$/, "")
}

/** The first answer's speech lasts this long, and the user barges in this far into the second. */
const FIRST_MS = 1500
const BARGE_IN_MS = 1500

const program = Effect.gen(function* () {
  const { avatarId, layer, params, simulator } = yield* target()
  const first: Answer = {
    text: "Our shop opens at nine in the morning.",
    speech: tone(FIRST_MS / 1000, 220)
  }
  const second: Answer = {
    text: "On Thursdays we stay open late, until nine in the evening, and on Saturdays we close at four.",
    speech: tone(4, 330)
  }
  const history: Array<string> = []

  yield* Effect.gen(function* () {
    const session = yield* AvatarClient.session({ avatarId })
    yield* session.setParams(params)

    // the first answer, heard to its end
    const one = yield* session.say(chunks(first.speech))
    const played = yield* one.played
    history.push(played.interrupted ? heard(first.text, played.playedMs, played.durationMs) : first.text)
    yield* Console.log(`agent: "${history[0]}" (${played.playedMs} ms heard of ${played.durationMs} ms)`)

    // the second answer: the user starts talking once the avatar has spoken some of it
    const two = yield* session.say(chunks(second.speech))
    yield* waitUntilSpeaking(session, two.id)
    yield* Effect.sleep(`${BARGE_IN_MS} millis`)
    const cut = yield* session.interrupt
    const outcome = yield* two.played
    const kept = heard(second.text, cut.playedMs, outcome.durationMs)
    history.push(`${kept}…`)
    yield* Console.log(
      `user barged in: ${cut.playedMs} ms of ${outcome.durationMs} ms heard, ${cut.unplayedMs} ms never played`
    )
    yield* Console.log(`agent (as heard): "${history[1]}"`)
    yield* Console.log(`history: ${JSON.stringify(history)}`)

    yield* check(!played.interrupted && played.playedMs === FIRST_MS, `the first answer was not heard whole`)
    yield* check(cut.utterance === two.id && outcome.interrupted, "the interrupt did not cut the second answer")
    yield* check(kept.length > 0 && kept.length < second.text.length, `the transcript was not truncated: "${kept}"`)
    yield* check(
      second.text.startsWith(kept) && /[ ,;:]/.test(second.text[kept.length] ?? ""),
      "the cut is not at a word boundary"
    )

    if (Option.isSome(simulator)) {
      // the simulator's player is the truth: what the avatar really played
      const segments = yield* simulator.value.playback(session.sessionId)
      yield* check(segments.length === 2, `the player played ${segments.length} segments, not 2`)
      const [whole, interrupted] = segments
      yield* check(
        !whole.interrupted && Math.abs(whole.playedMs - FIRST_MS) < 1,
        `the player played ${whole.playedMs} ms of the first answer`
      )
      yield* check(interrupted.interrupted, "the player was not interrupted")
      yield* check(
        Math.abs(cut.playedMs - interrupted.playedMs) <= 80,
        `the session says ${cut.playedMs} ms were heard, the player played ${interrupted.playedMs.toFixed(0)} ms`
      )
      yield* Console.log(
        `OK: the first answer was heard whole, the second cut at ${cut.playedMs} ms (the player: ${interrupted.playedMs.toFixed(0)} ms), and the history keeps "${kept}"`
      )
    } else {
      yield* Console.log(`OK: the second answer was cut at ${cut.playedMs} ms and the history keeps "${kept}"`)
    }
  }).pipe(Effect.scoped, Effect.provide(layer))
}).pipe(Effect.scoped)

/** Until the avatar speaks that utterance (`session.speaking`, from `audio_start` or the model). */
const waitUntilSpeaking = (session: AvatarSession.AvatarSession, utterance: string) =>
  session.speaking.changes.pipe(
    Stream.filter((speaking) => speaking._tag === "Speaking" && speaking.utterance === utterance),
    Stream.runHead
  )

main(program)
