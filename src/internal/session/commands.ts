/**
 * The session's commands: each waits for a usable connection (the next one while
 * reconnecting, bounded by `commandTimeout`), is sent on it, and is answered by its ack.
 * `set-params` also waits for `agora_connected` and is remembered, so that a reconnect can
 * apply it again.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { type AvatarError, CommandError } from "../../AvatarError.js"
import type * as AvatarSession from "../../AvatarSession.js"
import type * as Connection from "../../Connection.js"
import * as Protocol from "../../Protocol.js"
import type { Outbox } from "../dataplane/outbox.js"
import type { Inbound } from "./inbound.js"
import type { Lifecycle } from "./lifecycle.js"
import { type Resolved, validateParams } from "./options.js"
import type { Turns } from "./turns.js"

export class Commands {
  /** The last `set-params` the server took (or that is on its way): a reconnect sends it again. */
  private lastParams: Protocol.AvatarParams | undefined = undefined

  constructor(
    private readonly options: Resolved,
    private readonly lifecycle: Lifecycle,
    private readonly inbound: Inbound,
    private readonly outbox: Outbox,
    private readonly turns: Turns,
    private readonly now: () => number
  ) {}

  /** A usable connection, within `timeout`. */
  private connection(command: string, timeout: Duration.Duration): Effect.Effect<Connection.Connection, AvatarError> {
    return this.lifecycle.awaitConnection.pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new CommandError({
            reason: "timeout",
            command,
            mid: "",
            message: `${command} waited ${Duration.format(timeout)} for the session to reconnect`
          })
      })
    )
  }

  /** Sends a command and awaits its ack, within one `commandTimeout` for the wait and the ack together. */
  private send(
    name: string,
    build: (mid: string) => Protocol.ClientMessage,
    onSent?: (at: number) => void
  ): Effect.Effect<void, AvatarError> {
    return Effect.gen(this, function* () {
      const start = yield* Clock.currentTimeMillis
      const connection = yield* this.connection(name, this.options.commandTimeout)
      const sentAt = yield* Clock.currentTimeMillis
      const left = Duration.millis(Math.max(1, Duration.toMillis(this.options.commandTimeout) - (sentAt - start)))
      onSent?.(sentAt)
      yield* connection.request(build(connection.ids.next()), left)
    })
  }

  /** `set-params` on one connection: its ack, then `agora_connected`. */
  apply(connection: Connection.Connection, params: Protocol.AvatarParams): Effect.Effect<void, AvatarError> {
    return Effect.suspend(() => {
      const { connectionTimeout, commandTimeout } = this.options
      const agora = this.inbound.expectAgora()
      const message = Protocol.setParams(connection.ids.next(), params)
      return connection.request(message, commandTimeout).pipe(
        Effect.zipRight(
          agora.connected.pipe(
            Effect.timeoutFail({
              duration: connectionTimeout,
              onTimeout: () =>
                new CommandError({
                  reason: "agora-timeout",
                  command: "set-params",
                  mid: message.mid,
                  message: `set-params was acknowledged but Agora did not connect within ${Duration.format(connectionTimeout)}`
                })
            })
          )
        ),
        Effect.ensuring(agora.done)
      )
    })
  }

  /** Before a reconnected connection takes over: the last params, if any. */
  readonly reapply = (connection: Connection.Connection): Effect.Effect<void, AvatarError> =>
    this.lastParams === undefined ? Effect.void : this.apply(connection, this.lastParams)

  setParams(params: Protocol.AvatarParams): Effect.Effect<void, AvatarError> {
    return validateParams(params).pipe(
      Effect.flatMap((valid) =>
        Effect.gen(this, function* () {
          const previous = this.lastParams
          // remembered before the answer: a reconnect in between applies them again
          this.lastParams = valid
          const connection = yield* this.connection("set-params", this.options.commandTimeout)
          yield* this.apply(connection, valid).pipe(
            Effect.tapError((error) =>
              Effect.sync(() => {
                // the server said no: these params must not come back at a reconnect
                if (error._tag === "ServerError" || (error._tag === "CommandError" && error.reason === "rejected")) {
                  this.lastParams = previous
                }
              })
            )
          )
        })
      ),
      Effect.withSpan("AvatarSession.setParams", {
        attributes: {
          "akool.session_id": this.options.sessionId,
          "akool.agora.channel": typeof params?.agora?.channel === "string" ? params.agora.channel : undefined,
          "akool.language": typeof params?.language === "string" ? params.language : "en"
        }
      })
    )
  }

  /**
   * Drops the queued audio, sends `interrupt` and awaits its ack, then cuts the playback
   * model where the server read the interrupt (the ack's arrival less the link's one-way time:
   * on a slow link the interrupt waits behind what the kernel still holds): the ack confirms
   * every frame written before it, so what is reported as heard had arrived.
   */
  interrupt(): Effect.Effect<AvatarSession.Interrupted, AvatarError> {
    return Effect.gen(this, function* () {
      const droppedFrames = this.outbox.interrupt(this.now())
      const mark = this.outbox.written
      const sent = { at: this.now() }
      const acked = yield* Effect.exit(
        this.send("interrupt", Protocol.interrupt, (at) => {
          sent.at = at
        })
      )
      const answeredAt = Exit.isSuccess(acked) ? this.now() : undefined
      if (answeredAt !== undefined) this.turns.confirmed(mark, answeredAt)
      const cut = this.turns.cut(this.turns.playback.readAt(sent.at, answeredAt))
      const playedMs = Math.round(cut.playedMs)
      yield* Effect.annotateCurrentSpan({ "akool.frames_dropped": droppedFrames, "akool.played_ms": playedMs })
      yield* acked
      return { utterance: cut.utterance?.id, playedMs, unplayedMs: Math.round(cut.unplayedMs), droppedFrames }
    }).pipe(Effect.withSpan("AvatarSession.interrupt", { attributes: { "akool.session_id": this.options.sessionId } }))
  }
}
