/**
 * What the session learns from the server's messages, as they arrive (synchronously, on the
 * connection's own event, with no fiber per message): whether Agora is connected, and what
 * is worth a log line. A new server message type that the session reacts to is a case here.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as LogLevel from "effect/LogLevel"
import * as Runtime from "effect/Runtime"
import type * as Protocol from "../../Protocol.js"

export class Inbound {
  /** The avatar joined the Agora channel on the current connection. */
  agoraConnected = false
  private agoraWaiter: Deferred.Deferred<void> | undefined = undefined
  /** Kinds of invalid message already warned about: a hostile server's flood is one warning per kind, then debug. */
  private readonly seen = new Set<string>()
  private readonly minimumLevel: LogLevel.LogLevel

  constructor(
    private readonly sessionId: string,
    private readonly runtime: Runtime.Runtime<never>,
    /** The server's `event` messages (`audio_start`, `audio_end`): turn-taking's. */
    private readonly onEvent: (message: typeof Protocol.ServerEvent.Type) => void
  ) {
    this.minimumLevel = FiberRefs.getOrDefault(runtime.fiberRefs, FiberRef.currentMinimumLogLevel)
  }

  readonly observe = (message: Protocol.ServerMessage) => {
    switch (message.type) {
      case "system":
        if (message.pld.status === "agora_connected") {
          this.agoraConnected = true
          if (this.agoraWaiter !== undefined) Deferred.unsafeDone(this.agoraWaiter, Effect.void)
        }
        return
      case "event":
        return this.onEvent(message)
      case "error":
        return this.log(LogLevel.Warning, "Avatar service sent an error", {
          code: message.pld.error_code,
          error: message.pld.error_message
        })
      case "unknown":
        return this.log(LogLevel.Debug, "Avatar service sent a message of unknown type", { type: message.messageType })
      case "invalid":
        return this.log(this.once(`invalid:${message.reason}`), "Avatar service sent an invalid message", {
          reason: message.reason,
          detail: message.detail,
          excerpt: message.excerpt
        })
    }
  }

  /**
   * Waits for the next `agora_connected`, for a `set-params` about to be sent: the wait starts
   * before the command leaves, so the answer cannot slip past.
   */
  expectAgora(): { readonly connected: Effect.Effect<void>; readonly done: Effect.Effect<void> } {
    const waiter = Deferred.unsafeMake<void>(FiberId.none)
    this.agoraWaiter = waiter
    this.agoraConnected = false
    return {
      connected: Deferred.await(waiter),
      done: Effect.sync(() => {
        if (this.agoraWaiter === waiter) this.agoraWaiter = undefined
      })
    }
  }

  /** The connection in use is gone: Agora is no longer known to be connected. */
  disconnected(): void {
    this.agoraConnected = false
  }

  private once(kind: string): LogLevel.LogLevel {
    if (this.seen.has(kind)) return LogLevel.Debug
    this.seen.add(kind)
    return LogLevel.Warning
  }

  // odd messages are rare: each is logged on a fiber of its own, and only above the minimum level
  private log(level: LogLevel.LogLevel, message: string, annotations: Record<string, unknown>): void {
    if (LogLevel.lessThan(level, this.minimumLevel)) return
    Runtime.runFork(
      this.runtime,
      Effect.logWithLevel(level, message).pipe(Effect.annotateLogs({ sessionId: this.sessionId, ...annotations }))
    )
  }
}
