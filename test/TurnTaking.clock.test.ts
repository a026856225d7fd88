/**
 * Turn-taking on the TestClock: when the playback model says the avatar speaks, and when an
 * utterance has been heard, with the simulator and the client on test time and real sockets.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as TestClock from "effect/TestClock"
import { type AvatarSession, AvatarSimulator } from "../src/index.js"
import { clientFor, eventually, io, pcm } from "./support.js"

const AVATAR = "dvp_Tristan_cloth2_1080P"

/** Every change of `speaking`, with the test time it happened at. */
const recordSpeaking = (session: AvatarSession.AvatarSession) =>
  Effect.gen(function* () {
    const seen: Array<string> = []
    yield* session.speaking.changes.pipe(
      Stream.runForEach((s) =>
        Effect.flatMap(TestClock.currentTimeMillis, (at) =>
          Effect.sync(() => seen.push(s._tag === "Speaking" ? `speaking ${s.utterance} at ${at}` : `silent at ${at}`))
        )
      ),
      Effect.forkScoped
    )
    return seen
  })

/**
 * Waits (on the real clock, test time standing still) until the first frame is on the socket,
 * so that the utterance is written at test time 0 however slow the machine is.
 */
const firstFrameWritten = (session: AvatarSession.AvatarSession) =>
  eventually(session.info, (i) => i.audio.framesWritten > 0)

/** Moves test time on in steps, letting the sockets do their I/O between them. */
const advance = (ms: number, step = 20) =>
  Effect.gen(function* () {
    for (let t = 0; t < ms; t += step) {
      yield* TestClock.adjust(`${Math.min(step, ms - t)} millis`)
      yield* io(10)
    }
  })

describe("turn-taking on the TestClock", () => {
  it.scoped("an utterance plays from playoutDelay after it is written, for its duration; played says so", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, playoutDelay: "100 millis" })
      const seen = yield* recordSpeaking(session)
      const utterance = yield* session.say(Stream.make(pcm(32_000)))
      yield* firstFrameWritten(session)
      const played = yield* Effect.fork(utterance.played)
      yield* advance(1000)
      expect(played.unsafePoll()).toBeNull()
      yield* advance(120)
      const outcome = yield* Fiber.join(played)
      expect(outcome).toStrictEqual({ interrupted: false, playedMs: 1000, durationMs: 1000 })
      expect(seen).toStrictEqual(["silent at 0", `speaking ${utterance.id} at 100`, "silent at 1100"])
    })
  )

  it.scoped("a producer that stalls for 500 ms: silent in the gap, and the duration counts only audio", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, playoutDelay: "100 millis", lead: 0 })
      const seen = yield* recordSpeaking(session)
      // 480 ms (12 frames), nothing for a second, 480 ms more
      const speech = Stream.concat(
        Stream.make(pcm(15_360)),
        Stream.fromEffect(Effect.sleep("1000 millis").pipe(Effect.as(pcm(15_360, 2))))
      )
      const utterance = yield* session.say(speech)
      yield* firstFrameWritten(session)
      yield* advance(2000)
      const outcome = yield* utterance.played
      expect(outcome).toStrictEqual({ interrupted: false, playedMs: 960, durationMs: 960 })
      expect(seen).toStrictEqual([
        "silent at 0",
        `speaking ${utterance.id} at 100`,
        "silent at 580",
        `speaking ${utterance.id} at 1100`,
        "silent at 1580"
      ])
    })
  )

  it.scoped("an interrupt half way says what was heard, and played says it was cut", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, playoutDelay: "100 millis", lead: "200 millis" })
      const utterance = yield* session.say(Stream.make(pcm(64_000)))
      yield* firstFrameWritten(session)
      yield* advance(700)
      const result = yield* Effect.fork(session.interrupt)
      yield* io(30)
      const heard = yield* Fiber.join(result)
      // 600 ms had played (it began at 100). The model places frames by when the server's answers
      // come back; on a loaded machine one may come back a step of test time late, which places
      // the audio that step (20 ms) later: never more heard than played, never a step more.
      expect(heard.utterance).toBe(utterance.id)
      expect([580, 600]).toContain(heard.playedMs)
      expect(heard.unplayedMs).toBe(2000 - heard.playedMs)
      expect(heard.droppedFrames).toBeGreaterThan(0)
      expect(yield* utterance.played).toStrictEqual({ interrupted: true, playedMs: heard.playedMs, durationMs: 2000 })
      expect((yield* SubscriptionRef.get(session.speaking))._tag).toBe("Silent")
    })
  )
})
