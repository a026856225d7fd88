import { expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Stream from "effect/Stream"
import { AvatarSimulator } from "../src/index.js"
import { API_KEY, agora, clientFor, fastRetry, pcm, recordingTracer } from "./support.js"

const AVATAR = "dvp_Tristan_cloth2_1080P"

it.live("the API key never appears in a log line, a span, an error or its cause", () =>
  Effect.gen(function* () {
    const logs: Array<string> = []
    const { tracer, spans } = yield* recordingTracer
    const logger = Logger.make((options) => {
      logs.push(Logger.logfmtLogger.log(options))
    })

    const run = <A, E>(effect: Effect.Effect<A, E>) =>
      effect.pipe(
        Effect.withTracer(tracer),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Logger.withMinimumLogLevel(LogLevel.All)
      )

    // a whole session: discovery, connect, set-params, audio, interrupt, a server error, close
    const sim = yield* AvatarSimulator.make({
      instances: [{ faults: { errorAfterFrames: { frames: 2, code: 1500, message: "oops" } } }]
    })
    const client = yield* clientFor(sim)
    yield* run(
      Effect.scoped(
        Effect.gen(function* () {
          const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
          yield* session.setParams({ agora })
          const serverError = yield* session.events.pipe(
            Stream.filter((m) => m.type === "error"),
            Stream.runHead,
            Effect.fork
          )
          yield* Effect.yieldNow()
          yield* Stream.run(Stream.make(pcm(6400)), session.audio)
          // the server's error is logged; once it is in, the interrupt gets its own ack
          yield* Fiber.join(serverError)
          yield* session.interrupt
          yield* Effect.logDebug("session info", yield* session.info)
        })
      )
    )

    // failures: a key the service refuses, at discovery and at the socket
    const errors: Array<unknown> = []
    const picky = yield* AvatarSimulator.make({ apiKey: "a-different-key" })
    const refused = yield* clientFor(picky)
    errors.push(yield* run(Effect.flip(Effect.scoped(refused.session({ avatarId: AVATAR })))))
    const rejecting = yield* AvatarSimulator.make({ instances: [{ faults: { rejectKey: true } }] })
    errors.push(yield* run(Effect.flip(Effect.scoped((yield* clientFor(rejecting)).session({ avatarId: AVATAR })))))
    const occupied = yield* AvatarSimulator.make({ instances: [{ faults: { occupied: true } }] })
    const retry = yield* run(
      Effect.scoped((yield* clientFor(occupied)).session({ avatarId: AVATAR, retry: fastRetry(2) })).pipe(
        Effect.sandbox,
        Effect.flip
      )
    )
    errors.push(Cause.squash(retry))
    expect(errors.map((e) => (e as { _tag: string })._tag)).toStrictEqual([
      "AuthenticationError",
      "AuthenticationError",
      "RetryError"
    ])

    expect(spans.length).toBeGreaterThan(5)
    expect(logs.length).toBeGreaterThan(0)
    const texts = [
      ...logs,
      ...spans.map((span) => `${span.name} ${JSON.stringify(Object.fromEntries(span.attributes))}`),
      ...errors.map((e) => `${String(e)} ${JSON.stringify(e)} ${(e as Error).stack}`),
      Cause.pretty(retry)
    ]
    for (const text of texts) expect(text).not.toContain(API_KEY)
    // the discovery request's span names the header, redacted
    const http = spans.find((s) => s.attributes.has("http.request.header.api_key"))
    expect(http?.attributes.get("http.request.header.api_key")).toBe("<redacted>")
  }).pipe(Effect.scoped)
)
