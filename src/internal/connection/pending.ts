import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { CommandError, ServerError } from "../../AvatarError.js"
import type { DropError } from "../../Connection.js"
import type * as Protocol from "../../Protocol.js"

/** Where a command's answer goes. */
export type Answer = Deferred.Deferred<typeof Protocol.Ack.Type, CommandError | ServerError>

interface Entry {
  readonly command: string
  readonly answer: Answer
}

/**
 * The commands waiting for their answer, by mid, in the order they were sent: an `ack` answers
 * the command it names, an `error` the one it names or else the oldest, a drop all of them.
 */
export class PendingCommands {
  private readonly entries = new Map<string, Entry>()

  /** Registers a command before it is sent, so that an answer cannot arrive unseen. */
  unsafeAdd(mid: string, command: string, answer: Answer): void {
    this.entries.set(mid, { command, answer })
  }

  unsafeRemove(mid: string): void {
    this.entries.delete(mid)
  }

  unsafeAck(ack: typeof Protocol.Ack.Type): void {
    const entry = this.take(ack.pld.original_mid)
    if (entry !== undefined) Deferred.unsafeDone(entry.answer, Effect.succeed(ack))
  }

  /** Fails the command the error answers; returns the error when it answers none. */
  unsafeError(error: typeof Protocol.ErrorMessage.Type): ServerError | undefined {
    // the documented payload names no message: an error that arrives while commands wait
    // answers the oldest of them; one that names a message answers that one
    const mid = error.pld.original_mid ?? this.entries.keys().next().value
    const entry = mid === undefined ? undefined : this.take(mid)
    const failure = new ServerError({ code: error.pld.error_code, message: error.pld.error_message })
    if (entry === undefined) return failure
    Deferred.unsafeDone(entry.answer, Effect.fail(failure))
    return undefined
  }

  /** Fails every waiting command: the connection they were sent on has ended. */
  unsafeFailAll(reason: DropError): void {
    for (const [mid, { command, answer }] of this.entries) {
      Deferred.unsafeDone(
        answer,
        Effect.fail(
          new CommandError({
            reason: "disconnected",
            command,
            mid,
            message: `The connection ended before ${command} was acknowledged: ${reason.message}`
          })
        )
      )
    }
    this.entries.clear()
  }

  private take(mid: string): Entry | undefined {
    const entry = this.entries.get(mid)
    if (entry !== undefined) this.entries.delete(mid)
    return entry
  }
}
