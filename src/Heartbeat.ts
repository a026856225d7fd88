/**
 * Keeps a connection honest: a `ping` every `interval`, and a deadline of `timeout` for
 * the `pong`. The reference SDK sends pings but never checks the answer, so it cannot see
 * a dead peer; a missed deadline here ends the connection with a `heartbeat` error.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { ConnectionError } from "./AvatarError.js"
import * as AvatarMetrics from "./AvatarMetrics.js"
import type * as Connection from "./Connection.js"
import * as Discovery from "./Discovery.js"
import * as Protocol from "./Protocol.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly interval: Duration.DurationInput
  readonly timeout: Duration.DurationInput
  /** Called with each round trip, in milliseconds. */
  readonly onRoundTrip?: ((millis: number) => Effect.Effect<void>) | undefined
}

/**
 * Pings until the connection ends or a pong is late; a late pong aborts the connection.
 * Completes when the connection can no longer be pinged.
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (connection: Connection.Connection, options: Options): Effect.Effect<void> => {
  const timeout = Duration.decode(options.timeout)
  const beat = Effect.gen(function* () {
    yield* Effect.sleep(options.interval)
    // a pong that arrived before this ping must not answer it
    yield* Queue.takeAll(connection.pongs)
    const sentAt = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
    const inboundBefore = connection.inbound()
    yield* connection.send(Protocol.ping(connection.ids.next()))
    const pong = yield* Queue.take(connection.pongs).pipe(
      Effect.timeoutTo({ duration: timeout, onSuccess: Option.some, onTimeout: Option.none })
    )
    // no pong, but other messages arrived since the ping: the peer is alive, only slow to answer
    if (Option.isNone(pong) && connection.inbound() > inboundBefore) return true
    if (Option.isNone(pong)) {
      const instance = Discovery.label(connection.instance)
      yield* connection.abort(
        new ConnectionError({
          reason: "heartbeat",
          instance,
          message: `The instance ${instance} sent nothing within ${Duration.format(timeout)} of a ping: the peer is unresponsive`
        })
      )
      return false
    }
    const roundTrip = (yield* Effect.clockWith((clock) => clock.currentTimeMillis)) - sentAt
    yield* Metric.update(AvatarMetrics.heartbeatRoundTrip, roundTrip)
    if (options.onRoundTrip) yield* options.onRoundTrip(roundTrip)
    return true
  })
  return beat.pipe(
    Effect.repeat({ while: (alive) => alive }),
    // a send on a closed socket means the connection already ended: nothing left to watch
    Effect.catchTag("ConnectionError", () => Effect.void),
    Effect.asVoid
  )
}

/**
 * Runs the heartbeat in the background for as long as the scope is open.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = (connection: Connection.Connection, options: Options): Effect.Effect<void, never, Scope.Scope> =>
  Effect.asVoid(Effect.forkScoped(run(connection, options)))
