/**
 * What an untyped JavaScript caller can pass that the types forbid, through the public Effect
 * API against the simulator: every case ends in one of our typed errors that names what was
 * wrong (never a defect), or is accepted as the bytes it holds; nothing reaches the wire that
 * should not, and nothing is left waiting.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { AvatarConfig, type AvatarSession, AvatarSimulator, type Protocol } from "../src/index.js"
import { agora, clientFor, eventually, pcm } from "./support.js"

const AVATAR = "dvp_Tristan_cloth2_1080P"

/** The typed failure of `effect`, or the test fails: a defect or a success is a bug here. */
const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return Effect.die(new Error("expected a typed failure, got a success"))
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "None")
      return Effect.die(new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`))
    return Effect.succeed(failure.value)
  })

/** Anything, as a JavaScript caller would pass it. */
const untyped = <A>(value: unknown) => value as A

describe("hostile input through the Effect API", () => {
  it.live("set-params fields of the wrong type are a ConfigurationError naming the field; nothing is sent", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR })
      const cases: ReadonlyArray<readonly [string, unknown]> = [
        ["voiceId", { agora, voiceId: 123 }],
        ["language", { agora, language: { code: "en" } }],
        ["backgroundUrl", { agora, backgroundUrl: false }],
        ["agora.appId", { agora: { ...agora, appId: 7 } }],
        ["agora.token", { agora: { ...agora, token: null } }],
        ["agora.uid", { agora: { ...agora, uid: -1 } }],
        ["agora", { agora: "channel-1" }],
        ["params", null]
      ]
      for (const [field, params] of cases) {
        const error = yield* failureOf(session.setParams(untyped<Protocol.AvatarParams>(params)))
        expect(error).toMatchObject({ _tag: "ConfigurationError", option: field })
        expect(error.message).toContain(field)
      }
      const [record] = yield* sim.sessions
      expect(record!.commands.filter((c) => c.cmd === "set-params")).toHaveLength(0)
      // the session is unharmed: good params still go through
      yield* session.setParams({ agora })
    }).pipe(Effect.scoped)
  )

  it.live("ArrayBuffer and typed-array chunks are taken as the bytes they hold", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AVATAR, pacing: "none" })
      const audio = pcm(1280 * 4)
      const copy = audio.slice()
      yield* session.sendAudio(untyped<Uint8Array>(copy.buffer.slice(0, 1280)))
      yield* session.sendAudio(untyped<Uint8Array>(new Int16Array(copy.buffer, 1280, 640)))
      yield* Stream.run(
        Stream.make(
          untyped<Uint8Array>(new DataView(copy.buffer, 2560, 1280)),
          untyped<Uint8Array>(copy.subarray(3840))
        ),
        session.audio
      )
      const received = yield* eventually(sim.audio(session.sessionId), (a) => a.byteLength === audio.byteLength)
      expect(received).toStrictEqual(audio)
    }).pipe(Effect.scoped)
  )

  it.live("a chunk that is not bytes is an AudioStreamError, and the session still closes at once", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim, { flushTimeout: "10 seconds" })
      const scope = yield* Scope.make()
      const session = yield* Scope.extend(client.session({ avatarId: AVATAR, pacing: "none" }), scope)
      for (const chunk of ["not audio", 42, null, [1, 2], { bytes: 1 }]) {
        const error = yield* failureOf(session.sendAudio(untyped<Uint8Array>(chunk)))
        expect(error).toMatchObject({ _tag: "AudioStreamError", reason: "not-pcm" })
      }
      const error = yield* failureOf(Stream.run(Stream.make(pcm(1280), untyped<Uint8Array>("x")), session.audio))
      expect(error).toMatchObject({ _tag: "AudioStreamError", reason: "not-pcm" })
      expect((yield* session.info).audio.framesQueued).toBe(0)
      const start = Date.now()
      yield* Scope.close(scope, Exit.void)
      // nothing was left queued for the flush to wait on
      expect(Date.now() - start).toBeLessThan(2000)
    }).pipe(Effect.scoped)
  )

  it.live("a negative or unreadable lead, and options of the wrong type, are a ConfigurationError", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const cases: ReadonlyArray<readonly [string, unknown]> = [
        ["lead", { lead: "-1 seconds" }],
        ["lead", { lead: -40 }],
        ["lead", { lead: "soon" }],
        ["lead", { lead: Number.NaN }],
        ["lead", { lead: "Infinity" }],
        ["playoutDelay", { playoutDelay: "-100 millis" }],
        ["playoutDelay", { playoutDelay: Number.NaN }],
        ["avatarId", { avatarId: 123 }],
        ["sessionId", { sessionId: 5 }],
        ["pacing", { pacing: "fast" }],
        ["outboxCapacity", { outboxCapacity: "64" }],
        ["highWaterBytes", { highWaterBytes: -1 }],
        ["retry", { retry: 3 }],
        ["options", "dvp_Tristan"]
      ]
      for (const [option, options] of cases) {
        const error = yield* failureOf(
          client.session(
            untyped<AvatarSession.Options>(
              options === "dvp_Tristan" ? options : { avatarId: AVATAR, ...(options as object) }
            )
          )
        )
        expect(error).toMatchObject({ _tag: "ConfigurationError", option })
      }
      // a lead of zero is a lead, not an error
      yield* client.session({ avatarId: AVATAR, lead: 0 })
      expect(yield* sim.openConnections).toBe(1)
    }).pipe(Effect.scoped)
  )

  it.live("after the session closed, interrupt and setParams fail at once, saying it is closed", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim, { commandTimeout: "5 seconds" })
      const scope = yield* Scope.make()
      const session = yield* Scope.extend(client.session({ avatarId: AVATAR }), scope)
      yield* Scope.close(scope, Exit.void)
      for (const command of [session.interrupt, session.setParams({ agora })]) {
        const start = Date.now()
        const error = yield* failureOf(command)
        expect(Date.now() - start).toBeLessThan(500)
        expect(error.message).toMatch(/closed/)
      }
    }).pipe(Effect.scoped)
  )

  it.effect("client options of the wrong type are a ConfigurationError naming the option, never a TypeError", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, unknown]> = [
        ["options", null],
        ["apiKey", { apiKey: "plain string" }],
        ["apiKey", { apiKey: Redacted.make(42) }],
        ["avatarId", { apiKey: Redacted.make("key"), avatarId: 5 }],
        ["discoveryUrl", { apiKey: Redacted.make("key"), discoveryUrl: 8051 }],
        ["env", { apiKey: Redacted.make("key"), env: 1 }],
        ["maxRetryAttempts", { apiKey: Redacted.make("key"), maxRetryAttempts: "3" }],
        ["heartbeatInterval", { apiKey: Redacted.make("key"), heartbeatInterval: "-5 seconds" }]
      ]
      for (const [option, options] of cases) {
        const error = yield* failureOf(AvatarConfig.make(untyped<AvatarConfig.Options>(options)))
        expect(error).toMatchObject({ _tag: "ConfigurationError", option })
      }
    })
  )
})
