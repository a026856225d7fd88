/**
 * Testing your own pipeline with the simulator: an application function (`speakReply`: text
 * in, 24 kHz text-to-speech out, converted and streamed to the avatar) is run against
 * `AvatarSimulator`, which then tells what the service would have received, including
 * across a dropped connection. The same checks fit in a vitest `it.live` test.
 *
 *     node --import tsx examples/testing-with-simulator.ts
 */
import { Audio, AvatarClient, type AvatarSession, AvatarSimulator } from "akool-streaming-avatar"
import { Console, Effect, Redacted, Schedule, Stream } from "effect"
import { check, main } from "./support/effect.js"

// ---------------------------------------------------------------------------
// the application under test
// ---------------------------------------------------------------------------

/** A stand-in text-to-speech engine: 24 kHz, 16-bit mono, 60 ms of tone per character, in 1,000-byte pieces. */
const synthesize = (text: string): Stream.Stream<Uint8Array> => {
  const samples = Math.round(24_000 * 0.06 * text.length)
  const pcm = new Uint8Array(samples * 2)
  const view = new DataView(pcm.buffer)
  for (let i = 0; i < samples; i++)
    view.setInt16(i * 2, Math.round(Math.sin((2 * Math.PI * 300 * i) / 24_000) * 8000), true)
  return Stream.fromIterable(
    Array.from({ length: Math.ceil(pcm.byteLength / 1000) }, (_, k) => pcm.subarray(k * 1000, k * 1000 + 1000))
  )
}

/** What the application does for each reply: German voice, TTS converted to 16 kHz, streamed. */
const speakReply = (session: AvatarSession.AvatarSession, text: string) =>
  Effect.gen(function* () {
    yield* session.setParams({
      agora: { appId: "app", channel: "support-desk", token: "", uid: 7 },
      voiceId: "de-voice",
      language: "de"
    })
    yield* Stream.run(synthesize(text).pipe(Audio.fromPcm({ sampleRate: 24_000 })), session.audio)
  })

// ---------------------------------------------------------------------------
// the test
// ---------------------------------------------------------------------------

const program = Effect.gen(function* () {
  const sim = yield* AvatarSimulator.make({ apiKey: "test-key", instances: 2 })
  const client = AvatarClient.layerNode({ apiKey: Redacted.make("test-key"), discoveryUrl: sim.discoveryUrl })
  const text = "Guten Tag, wie kann ich helfen?"
  const replyBytes = Math.round(16_000 * 0.06 * text.length) * 2 // 24 kHz TTS out, 16 kHz in: 2 bytes a sample

  const sessionId = yield* Effect.gen(function* () {
    const session = yield* AvatarClient.session({ avatarId: "dvp_Tristan_cloth2_1080P", pacing: "none" })
    yield* speakReply(session, text)
    // once the server has the first reply, the network drops; the next must arrive whole, on a new connection
    yield* sim
      .audio(session.sessionId)
      .pipe(Effect.repeat({ until: (a) => a.byteLength === replyBytes, schedule: Schedule.spaced("10 millis") }))
    yield* sim.dropAll({ mode: "terminate" })
    yield* session.info.pipe(
      Effect.repeat({ until: (i) => i.reconnects === 1, schedule: Schedule.spaced("10 millis") })
    )
    yield* speakReply(session, text)
    return session.sessionId
  }).pipe(Effect.scoped, Effect.provide(client))

  const sessions = yield* sim.sessions
  const received = yield* sim.audio(sessionId)
  const expectedBytes = 2 * replyBytes

  yield* check(sessions.length === 2, `expected two connections (one drop), got ${sessions.length}`)
  yield* Console.log("PASS  the session reconnected after the drop (2 connections, same session id)")
  const setParams = sessions.flatMap((s) => s.commands).filter((c) => c.cmd === "set-params")
  yield* check(
    setParams.length >= 2 &&
      setParams.every(
        (c) => JSON.stringify(c.pld).includes('"lang":"de"') && JSON.stringify(c.pld).includes('"vid":"de-voice"')
      ),
    "set-params did not carry the German voice"
  )
  yield* Console.log(`PASS  every set-params carried language de and voice de-voice (${setParams.length} sent)`)
  yield* check(
    received.byteLength === expectedBytes,
    `received ${received.byteLength} bytes, expected ${expectedBytes}`
  )
  yield* Console.log(
    `PASS  ${(received.byteLength / 32_000).toFixed(2)} s of 16 kHz audio received (24 kHz TTS converted)`
  )
  yield* check(
    sessions.every((s) => !s.open) && sessions.at(-1)?.commands.at(-1)?.cmd === "leave_channel",
    "a connection was left open, or the channel was not left"
  )
  yield* Console.log("PASS  the session left the channel and closed its connection")
  yield* Console.log("OK: 4 checks passed against the simulator")
}).pipe(Effect.scoped)

main(program)
