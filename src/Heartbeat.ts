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
import type * as Scope from "effect/Scope"
import { ConnectionError } from "./AvatarError.js"
import * as AvatarMetrics from "./AvatarMetrics.js"
import type * as Connection from "./Connection.js"
import * as Discovery from "./Discovery.js"

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

/** A heartbeat ping waiting for its pong. */
interface Outstanding {
  readonly sentAt: number
  readonly deadline: number
  /** Messages received before it left: any message after it shows the peer is alive. */
  readonly inbound: number
  answeredAt: number | undefined
}

/**
 * Pings every `interval` until the connection ends or a pong is late; a late pong aborts the
 * connection. Completes when the connection can no longer be pinged.
 *
 * One fiber that sleeps until its next event (a ping due, or the deadline of the oldest ping
 * not answered yet), with no race and no fiber per beat: a thousand sessions beating cost a
 * thousand timers, not thousands of fibers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (connection: Connection.Connection, options: Options): Effect.Effect<void> =>
  Effect.gen(function* () {
    const interval = Duration.toMillis(Duration.decode(options.interval))
    const timeout = Duration.toMillis(Duration.decode(options.timeout))
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const outstanding: Array<Outstanding> = []
    let nextPing = now() + interval
    while (true) {
      const wakeAt = outstanding.length === 0 ? nextPing : Math.min(nextPing, outstanding[0]!.deadline)
      yield* Effect.sleep(Duration.millis(Math.max(0, wakeAt - now())))
      const at = now()
      // pongs come back in the order the pings went out
      while (outstanding.length > 0 && outstanding[0]!.answeredAt !== undefined) {
        const ping = outstanding.shift()!
        const roundTrip = ping.answeredAt! - ping.sentAt
        yield* Metric.update(AvatarMetrics.heartbeatRoundTrip, roundTrip)
        if (options.onRoundTrip) yield* options.onRoundTrip(roundTrip)
      }
      const oldest = outstanding[0]
      if (oldest !== undefined && at >= oldest.deadline) {
        // no pong, but other messages arrived since the ping: the peer is alive, only slow to answer
        if (connection.inbound() > oldest.inbound) outstanding.shift()
        else {
          const instance = Discovery.label(connection.instance)
          return yield* connection.abort(
            new ConnectionError({
              reason: "heartbeat",
              instance,
              message: `The instance ${instance} sent nothing within ${Duration.format(Duration.millis(timeout))} of a ping: the peer is unresponsive`
            })
          )
        }
      }
      if (at >= nextPing) {
        // a closed socket means the connection already ended: nothing left to watch
        if (!connection.isOpen()) return
        const ping: Outstanding = {
          sentAt: at,
          deadline: at + timeout,
          inbound: connection.inbound(),
          answeredAt: undefined
        }
        connection.unsafePing((answeredAt) => {
          ping.answeredAt = answeredAt
        })
        outstanding.push(ping)
        nextPing = at + interval
      }
    }
  })

/**
 * Runs the heartbeat in the background for as long as the scope is open.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = (connection: Connection.Connection, options: Options): Effect.Effect<void, never, Scope.Scope> =>
  Effect.asVoid(Effect.forkScoped(run(connection, options)))
