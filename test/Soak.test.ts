/**
 * Many sessions streaming at once while the simulator drops, stalls and refuses at random.
 * A few seconds here; longer with SOAK_SECONDS (and more sessions with SOAK_SESSIONS).
 * Afterwards: no fiber, socket or timer is left, and every session's audio adds up.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Supervisor from "effect/Supervisor"
import { type AvatarSession, AvatarSimulator } from "../src/index.js"
import { clientFor, expectOrderedSubset, pcm } from "./support.js"

const SESSIONS = Number(process.env.SOAK_SESSIONS ?? 50)
const SECONDS = Number(process.env.SOAK_SECONDS ?? 3)

const handles = () => {
  const counts = new Map<string, number>()
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1)
  return counts
}

interface Outcome {
  readonly sent: Uint8Array
  readonly received: Uint8Array
  readonly info: AvatarSession.ConnectionInfo
  readonly unsent: number
  readonly interrupted: boolean
  readonly failure: string | undefined
}

/** One fault at a time on a random instance, every 100 to 300 ms. */
const chaos = (sim: AvatarSimulator.Service) =>
  Effect.gen(function* () {
    const index = yield* Random.nextIntBetween(0, sim.instances.length)
    const pick = yield* Random.nextIntBetween(0, 5)
    switch (pick) {
      case 0:
        yield* sim.drop(index, { code: 1011 })
        break
      case 1:
        yield* sim.drop(index, { mode: "terminate" })
        break
      case 2:
        yield* sim.setFaults(index, { refuseFirst: { code: 4004, attempts: 1 } })
        break
      case 3:
        yield* sim.setFaults(index, { stall: true })
        yield* Effect.sleep("400 millis")
        yield* sim.setFaults(index, {})
        break
      case 4:
        yield* sim.sendMalformed(index, 5)
        break
    }
    yield* Effect.sleep(`${yield* Random.nextIntBetween(100, 300)} millis`)
  }).pipe(Effect.forever)

describe("soak", () => {
  it.live(
    `${SESSIONS} sessions stream ${SECONDS} s each through random drops, stalls and refusals`,
    () =>
      Effect.gen(function* () {
        const before = handles()
        const supervisor = yield* Supervisor.track
        const outcomes = yield* Effect.scoped(
          Effect.gen(function* () {
            const sim = yield* AvatarSimulator.make({ instances: SESSIONS + 10 })
            const client = yield* clientFor(sim)
            const faults = yield* Effect.fork(chaos(sim))
            // and one fault that hits every session: the network goes away mid-sentence
            yield* Effect.fork(Effect.delay(sim.dropAll({ mode: "terminate" }), `${(SECONDS * 1000) / 3} millis`))
            const outcomes = yield* Effect.forEach(
              Array.from({ length: SESSIONS }, (_, i) => i),
              (i) =>
                Effect.scoped(
                  Effect.gen(function* () {
                    const session = yield* client.session({
                      avatarId: AvatarSimulator.DEFAULT_AVATAR_ID,
                      lead: "200 millis",
                      heartbeatInterval: "500 millis",
                      heartbeatTimeout: "300 millis",
                      stallTimeout: "300 millis",
                      connectionTimeout: "500 millis",
                      retry: Schedule.intersect(Schedule.spaced("50 millis"), Schedule.recurs(30))
                    })
                    const sent = pcm(32_000 * SECONDS, i + 1)
                    // every fifth session barges in halfway
                    const interrupted = i % 5 === 0
                    const speaking = yield* Effect.fork(Stream.run(Stream.make(sent), session.audio))
                    if (interrupted) {
                      yield* Effect.sleep(`${(SECONDS * 1000) / 2} millis`)
                      yield* session.interrupt.pipe(Effect.retry(Schedule.recurs(3)), Effect.ignore)
                    }
                    const result = yield* Effect.either(Fiber.join(speaking))
                    const info = yield* session.info
                    return {
                      sessionId: session.sessionId,
                      sent,
                      info,
                      interrupted,
                      unsent: Either.isLeft(result) ? (result.left.unsentFrames ?? 0) : 0,
                      failure: Either.isLeft(result) ? result.left.message : undefined
                    }
                  })
                ),
              { concurrency: "unbounded" }
            )
            yield* Fiber.interrupt(faults)
            const records = yield* sim.sessions
            // what each connection received, connection after connection: a stalled peer may read
            // a dead connection's last frames late, after the new connection's, and that is its order
            return outcomes.map((o): Outcome => {
              const frames = records.filter((r) => r.sessionId === o.sessionId).flatMap((r) => r.frames)
              const received = new Uint8Array(frames.reduce((n, f) => n + f.bytes.byteLength, 0))
              let offset = 0
              for (const frame of frames) {
                received.set(frame.bytes, offset)
                offset += frame.bytes.byteLength
              }
              return { ...o, received }
            })
          })
        ).pipe(Effect.supervised(supervisor))

        let reconnects = 0
        for (const o of outcomes) {
          const audio = o.info.audio
          reconnects += o.info.reconnects
          expect(o.failure).toBeUndefined()
          // accepted = written + dropped by an interrupt the caller asked for + reported unsent
          expect(audio.framesAccepted).toBe(audio.framesWritten + audio.framesDropped + o.unsent)
          if (!o.interrupted) expect(audio.framesAccepted).toBe((SECONDS * 1000) / 40)
          // what arrived: the speech in order, no frame twice; missing only what the session reported as
          // unconfirmed, what the interrupt dropped, and what the interrupted stream never handed over
          const neverAccepted = o.sent.byteLength / 1280 - audio.framesAccepted
          expectOrderedSubset(o.received, o.sent, audio.framesUnconfirmed + audio.framesDropped + neverAccepted)
        }
        // the faults did reach the sessions
        expect(reconnects).toBeGreaterThan(0)

        // nothing outlives the scopes: no fiber, no socket, no server, no timer
        expect(yield* supervisor.value).toHaveLength(0)
        yield* Effect.sleep("200 millis")
        const after = handles()
        for (const kind of ["TCPSocketWrap", "TCPServerWrap", "Timeout"]) {
          expect(after.get(kind) ?? 0, kind).toBeLessThanOrEqual(before.get(kind) ?? 0)
        }
      }).pipe(Logger.withMinimumLogLevel(LogLevel.Error)),
    120_000
  )
})
