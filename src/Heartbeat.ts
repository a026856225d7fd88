/**
 * Keeps a connection honest: a `ping` every `interval`, and a deadline of `timeout` for
 * the `pong`. The reference SDK sends pings but never checks the answer, so it cannot see
 * a dead peer; a missed deadline here ends the connection with a `heartbeat` error.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
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
 * A heartbeat's logic without a clock of its own: whoever drives it calls `fire` once
 * `dueAt` has come. `run` drives one with a fiber; a session drives all of its client's
 * heartbeats from the client's one shared clock, so an idle session holds no fiber for it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Beat {
  /** When `fire` is due next: the next ping, or the deadline of the oldest ping not answered. */
  readonly dueAt: number
  /**
   * Does what is due at `now`: records the round trips of answered pings, aborts the
   * connection (a `heartbeat` error) when the oldest ping's deadline passed with nothing heard
   * since it left, sends the next ping when it is due. Returns when it is due next, or
   * `undefined` once the heartbeat is over (the connection aborted or already closed).
   */
  readonly fire: (now: number) => number | undefined
}

/**
 * A heartbeat for `connection` starting at `now`: the first ping is due one interval later.
 * `onRoundTrip` sees each round trip, in milliseconds, as `fire` records it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  connection: Connection.Connection,
  options: Pick<Options, "interval" | "timeout">,
  now: number,
  onRoundTrip?: (millis: number) => void
): Beat => {
  const interval = Duration.toMillis(Duration.decode(options.interval))
  const timeout = Duration.toMillis(Duration.decode(options.timeout))
  const outstanding: Array<Outstanding> = []
  let nextPing = now + interval
  const beat = {
    dueAt: nextPing,
    fire: (at: number): number | undefined => {
      // pongs come back in the order the pings went out
      while (outstanding.length > 0 && outstanding[0]!.answeredAt !== undefined) {
        const ping = outstanding.shift()!
        const roundTrip = ping.answeredAt! - ping.sentAt
        AvatarMetrics.heartbeatRoundTrip.unsafeUpdate(roundTrip, [])
        onRoundTrip?.(roundTrip)
      }
      const oldest = outstanding[0]
      if (oldest !== undefined && at >= oldest.deadline) {
        // no pong, but other messages arrived since the ping: the peer is alive, only slow to answer
        if (connection.inbound() > oldest.inbound) outstanding.shift()
        else {
          const instance = Discovery.label(connection.instance)
          connection.unsafeAbort(
            new ConnectionError({
              reason: "heartbeat",
              instance,
              message: `The instance ${instance} sent nothing within ${Duration.format(Duration.millis(timeout))} of a ping: the peer is unresponsive`
            })
          )
          return undefined
        }
      }
      if (at >= nextPing) {
        // a closed socket means the connection already ended: nothing left to watch
        if (!connection.isOpen()) return undefined
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
        // pings keep their rate: the next one is due an interval after this one was
        nextPing = at + interval
      }
      beat.dueAt = outstanding.length === 0 ? nextPing : Math.min(nextPing, outstanding[0]!.deadline)
      return beat.dueAt
    }
  }
  return beat
}

/**
 * Pings every `interval` until the connection ends or a pong is late; a late pong aborts the
 * connection. Completes when the connection can no longer be pinged.
 *
 * One fiber that sleeps until the beat's next event (a ping due, or the deadline of the
 * oldest ping not answered yet), with no race and no fiber per beat.
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (connection: Connection.Connection, options: Options): Effect.Effect<void> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    const roundTrips: Array<number> = []
    const beat = make(connection, options, now(), (millis) => roundTrips.push(millis))
    let dueAt: number | undefined = beat.dueAt
    while (dueAt !== undefined) {
      yield* Effect.sleep(Duration.millis(Math.max(0, dueAt - now())))
      dueAt = beat.fire(now())
      if (options.onRoundTrip) for (const millis of roundTrips.splice(0)) yield* options.onRoundTrip(millis)
      else roundTrips.length = 0
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
