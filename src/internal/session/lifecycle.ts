/**
 * Where a session is in its life, as one tagged phase. The phase answers every question the
 * other parts ask: which connection is in use, whether a drop is recovered from, whether the
 * session is still counted as active, and what a command waiting for a connection gets.
 *
 *     Connecting ──▶ Live ◀──▶ Recovering
 *         │            │           │
 *         └────────────┴──▶ Closing ──▶ Closed
 *
 * `Closing` starts the moment the session's scope starts closing: from then on a drop is not
 * recovered from, and no new connection takes over.
 */

import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import { type AvatarError, ConnectionError } from "../../AvatarError.js"
import * as AvatarMetrics from "../../AvatarMetrics.js"
import type * as Connection from "../../Connection.js"

/** A connection the session opened, with its scope and how much audio had been written when it took over. */
export interface Link {
  readonly connection: Connection.Connection
  readonly scope: Scope.CloseableScope
  readonly writtenBefore: number
}

export type Phase = Data.TaggedEnum<{
  /** The first connection is being made. */
  Connecting: {}
  /** `link` carries the audio and the commands. */
  Live: { readonly link: Link }
  /** The live connection dropped; `fiber` is reconnecting (once it has been forked). */
  Recovering: { readonly fiber: Fiber.RuntimeFiber<void> | undefined }
  /** The scope is closing: `link`, if there is one, flushes the outbox and leaves the channel. */
  Closing: { readonly link: Link | undefined }
  Closed: { readonly error: AvatarError }
}>

export const Phase = Data.taggedEnum<Phase>()

type Resume = (result: Effect.Effect<Connection.Connection, AvatarError>) => void

export class Lifecycle {
  private current: Phase = Phase.Connecting()
  private waiters = new Set<Resume>()
  /** Counted in `akool_avatar_sessions_active`: a session is, from its first connection until it closes. */
  private counted = false

  get phase(): Phase {
    return this.current
  }

  /** The connection in use: the live one, or the one flushing while the session closes. */
  get link(): Link | undefined {
    const phase = this.current
    return phase._tag === "Live" || phase._tag === "Closing" ? phase.link : undefined
  }

  /** The scope has started closing (or the session has ended): nothing reconnects any more. */
  get ending(): boolean {
    return this.current._tag === "Closing" || this.current._tag === "Closed"
  }

  /** A connection takes over. Returns `false`, and changes nothing, once the session is ending. */
  goLive(link: Link): boolean {
    if (this.ending) return false
    this.current = Phase.Live({ link })
    if (!this.counted) {
      this.counted = true
      AvatarMetrics.sessionsOpened.unsafeUpdate(1, [])
      AvatarMetrics.sessionsActive.unsafeUpdate(1, [])
    }
    this.resumeWaiters(Effect.succeed(link.connection))
    return true
  }

  /** `link` dropped: if it was the live one, the session is recovering (and `true` is returned). */
  drop(link: Link): boolean {
    if (this.current._tag !== "Live" || this.current.link !== link) return false
    this.current = Phase.Recovering({ fiber: undefined })
    return true
  }

  recoveringOn(fiber: Fiber.RuntimeFiber<void>): void {
    if (this.current._tag === "Recovering") this.current = Phase.Recovering({ fiber })
  }

  /** The scope starts closing. Returns the recovery in progress, which the caller interrupts. */
  beginClosing(): Fiber.RuntimeFiber<void> | undefined {
    const phase = this.current
    if (phase._tag === "Closed" || phase._tag === "Closing") return undefined
    this.current = Phase.Closing({ link: this.link })
    return phase._tag === "Recovering" ? phase.fiber : undefined
  }

  /** The live connection left (flushed, or dropped while closing): nothing more is written. */
  detach(): void {
    if (this.current._tag === "Closing") this.current = Phase.Closing({ link: undefined })
  }

  /** Ends the session; `false` when it had ended already. Commands that wait fail with `error`. */
  close(error: AvatarError): boolean {
    if (this.current._tag === "Closed") return false
    this.current = Phase.Closed({ error })
    if (this.counted) AvatarMetrics.sessionsActive.unsafeUpdate(-1, [])
    this.counted = false
    this.resumeWaiters(Effect.fail(error))
    return true
  }

  /**
   * The open connection; while (re)connecting, the next one, as soon as it takes over (an
   * event, not a poll). A session that has closed fails at once, with what ended it.
   */
  readonly awaitConnection: Effect.Effect<Connection.Connection, AvatarError> = Effect.async((resume) => {
    const phase = this.current
    const link = this.link
    if (link?.connection.isOpen()) return resume(Effect.succeed(link.connection))
    if (phase._tag === "Closed") return resume(Effect.fail(phase.error))
    if (phase._tag === "Closing") {
      return resume(
        Effect.fail(new ConnectionError({ reason: "closed", message: "The session is closing: it takes no commands" }))
      )
    }
    this.waiters.add(resume)
    return Effect.sync(() => {
      this.waiters.delete(resume)
    })
  })

  private resumeWaiters(result: Effect.Effect<Connection.Connection, AvatarError>): void {
    if (this.waiters.size === 0) return
    const waiters = this.waiters
    this.waiters = new Set()
    for (const resume of waiters) resume(result)
  }
}
