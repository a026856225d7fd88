import { monitorEventLoopDelay } from "node:perf_hooks"
import { expect } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as TestServices from "effect/TestServices"
import * as Tracer from "effect/Tracer"
import { AvatarClient, type AvatarConfig, type AvatarSession, type AvatarSimulator } from "../src/index.js"

export const API_KEY = "sk-test-VERY-SECRET-0123456789"

export const agora = { appId: "app-id", channel: "channel-1", token: "agora-token", uid: "42" } as const

/** A client pointed at the simulator, built in the current scope. */
export const clientFor = (
  sim: AvatarSimulator.Service,
  overrides: Partial<AvatarConfig.Options> = {}
): Effect.Effect<AvatarClient.Service, never, Scope.Scope> =>
  Layer.build(
    AvatarClient.layerNode({ apiKey: Redacted.make(API_KEY), discoveryUrl: sim.discoveryUrl, ...overrides })
  ).pipe(Effect.map(Context.get(AvatarClient.AvatarClient)), Effect.orDie)

/**
 * How late this process's timers have run since this was acquired, in whole milliseconds: the event
 * loop was held (a collection, a busy test beside it) or the machine gave the process no CPU.
 * A live test that compares the SDK's timing with the simulator's, both in this process, allows
 * for it on top of its own tolerance, so the tolerance stays tight on an idle machine.
 */
export const eventLoopLag: Effect.Effect<{ readonly maxMs: () => number }, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => {
    const histogram = monitorEventLoopDelay({ resolution: 5 })
    histogram.enable()
    return histogram
  }),
  (histogram) => Effect.sync(() => histogram.disable())
).pipe(Effect.map((histogram) => ({ maxMs: () => Math.ceil(Math.max(0, histogram.max / 1e6 - 5)) })))

/** Retries quickly, so failure paths do not wait for the default back-off. */
export const fastRetry = (attempts: number) =>
  Schedule.intersect(Schedule.spaced("20 millis"), Schedule.recurs(attempts - 1))

/** Lets real sockets do their I/O while the TestClock stands still. */
export const io = (millis = 30) => TestServices.provideLive(Effect.sleep(`${millis} millis`))

/** Polls (on the real clock) until `check` holds, for at most `timeoutMs`. */
export const eventually = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  check: (a: A) => boolean,
  timeoutMs = 5000
): Effect.Effect<A, E | Error, R> =>
  Effect.gen(function* () {
    const start = Date.now()
    while (true) {
      const value = yield* effect
      if (check(value)) return value
      if (Date.now() - start > timeoutMs)
        return yield* Effect.fail(new Error(`condition not met within ${timeoutMs} ms`))
      yield* io(10)
    }
  })

export const pcm = (bytes: number, seed = 1): Uint8Array => {
  const out = new Uint8Array(bytes)
  let x = seed
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    out[i] = x >>> 16
  }
  return out
}

/** Splits bytes into uneven chunks (1 to 3,001 bytes), deterministic for a seed. */
export const unevenChunks = (bytes: Uint8Array, seed = 7): Array<Uint8Array> => {
  const chunks: Array<Uint8Array> = []
  let offset = 0
  let x = seed
  while (offset < bytes.byteLength) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    const size = 1 + (x % 3001)
    chunks.push(bytes.subarray(offset, offset + size))
    offset += size
  }
  return chunks
}

/**
 * What the simulator received for a session once it has caught up with the client: every byte
 * written, less what a dropped connection may have lost (frames the server never confirmed).
 * `session.audio` finishing means written to the socket, not yet arrived.
 */
export const drained = (
  sim: AvatarSimulator.Service,
  session: AvatarSession.AvatarSession
): Effect.Effect<Uint8Array, Error, Scope.Scope> =>
  Effect.gen(function* () {
    const info = yield* session.info
    // everything written, less what may have been lost with a dropped connection
    return yield* eventually(
      sim.audio(session.sessionId),
      (a) => a.byteLength >= info.audio.bytesWritten - info.audio.framesUnconfirmed * 1280
    )
  })

/** `received` is `sent` in 40 ms frames, in order, none twice, at most `missing` absent. */
export const expectOrderedSubset = (received: Uint8Array, sent: Uint8Array, missing: number) => {
  const frame = 1280
  expect(received.byteLength % frame === 0 || received.byteLength === sent.byteLength).toBe(true)
  let j = 0
  let skipped = 0
  for (let i = 0; i < received.byteLength; i += frame) {
    const piece = received.subarray(i, i + frame)
    while (j < sent.byteLength && !equalBytes(sent.subarray(j, j + piece.byteLength), piece)) {
      j += frame
      skipped++
    }
    expect(j).toBeLessThan(sent.byteLength)
    j += frame
  }
  skipped += Math.max(0, Math.ceil((sent.byteLength - j) / frame))
  expect(skipped).toBeLessThanOrEqual(missing)
}

const equalBytes = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && a.every((x, i) => x === b[i])

/** A tracer that keeps every span it starts, on top of the current one. */
export const recordingTracer = Effect.map(Effect.tracer, (base) => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (...args) => {
      const span = base.span(...args)
      spans.push(span)
      return span
    },
    context: base.context
  })
  return { tracer, spans }
})

/** The bytes of `parts`, one after another (the SDK's own helper). */
export { concatBytes as concat } from "../src/internal/audio/pcm.js"
