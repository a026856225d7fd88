/**
 * Connection monitoring through `session.state.changes`: every state is logged as it
 * happens, while the simulator drops the connection twice (a close frame, then a TCP reset
 * with no close frame). The session reconnects each time by itself; the monitor counts it.
 *
 *     node --import tsx examples/connection-monitoring.ts
 */
import { AvatarClient, type AvatarSession } from "akool-streaming-avatar"
import { Console, Effect, Fiber, Option, Ref, Schedule, Stream } from "effect"
import { check, main, target, tone } from "./support/effect.js"

const describe = (state: AvatarSession.SessionState): string => {
  switch (state._tag) {
    case "Connecting":
      return `connecting (attempt ${state.attempt})`
    case "Ready":
      return `ready on ${state.instance}`
    case "Streaming":
      return `streaming to ${state.instance}`
    case "Reconnecting":
      return `reconnecting (attempt ${state.attempt}): ${state.cause.message}; ${state.unconfirmedFrames} frame(s) unconfirmed`
    case "Closed":
      return Option.match(state.error, { onNone: () => "closed", onSome: (e) => `closed by ${e._tag}: ${e.message}` })
  }
}

const program = Effect.gen(function* () {
  const { avatarId, layer, params, simulator } = yield* target({ instances: 2 })

  yield* Effect.gen(function* () {
    const session = yield* AvatarClient.session({ avatarId, heartbeatInterval: "5 seconds" })
    const seen = yield* Ref.make<ReadonlyArray<AvatarSession.SessionState["_tag"]>>([])
    const monitor = yield* Effect.fork(
      Stream.runForEach(session.state.changes, (state) =>
        Effect.zipRight(
          Ref.update(seen, (tags) => [...tags, state._tag]),
          Console.log(`state: ${describe(state)}`)
        )
      )
    )
    yield* session.setParams(params)
    yield* Stream.run(Stream.make(tone(0.5)), session.audio)

    const reconnected = (n: number) =>
      session.info.pipe(
        Effect.repeat({ until: (i) => i.reconnects === n && i.agoraConnected, schedule: Schedule.spaced("10 millis") })
      )
    if (Option.isSome(simulator)) {
      yield* simulator.value.dropAll({ mode: "close", code: 1011 })
      yield* reconnected(1)
      yield* simulator.value.dropAll({ mode: "terminate" })
      yield* reconnected(2)
    } else {
      yield* Effect.sleep("5 seconds")
    }
    yield* Stream.run(Stream.make(tone(0.5)), session.audio)
    const info = yield* session.info
    yield* Console.log(`reconnects: ${info.reconnects}, agora connected: ${info.agoraConnected}`)
    yield* Effect.sleep("50 millis")
    yield* Fiber.interrupt(monitor)
    const tags = yield* Ref.get(seen)
    if (Option.isSome(simulator)) {
      yield* check(info.reconnects === 2, `expected 2 reconnects, got ${info.reconnects}`)
      yield* check(tags.filter((t) => t === "Reconnecting").length >= 2, `the monitor saw ${tags.join(", ")}`)
      yield* check(info.agoraConnected, "the Agora params were not re-applied after the reconnect")
      yield* Console.log(
        `OK: the monitor saw ${tags.length} states, ${info.reconnects} drops survived, Agora back each time`
      )
    } else {
      yield* Console.log(`OK: monitored ${tags.length} state changes`)
    }
  }).pipe(Effect.scoped, Effect.provide(layer))
}).pipe(Effect.scoped)

main(program)
