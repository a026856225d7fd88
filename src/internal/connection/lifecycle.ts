import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import { ConnectionError } from "../../AvatarError.js"
import type { DropError } from "../../Connection.js"
import { describeCause, fromCloseCode, fromOpenFailure } from "./closeCodes.js"
import type { PendingCommands } from "./pending.js"
import type { Transport } from "./transport.js"

const OPEN = 1

type State =
  /** Until the socket's `open` event; `failure` is what its `error` event said meanwhile. */
  | { readonly _tag: "Opening"; readonly failure: string | undefined }
  | { readonly _tag: "Open" }
  /** This side asked for the close; the socket has not closed yet. */
  | { readonly _tag: "Closing" }
  /** `dropped` is why it ended, when nobody asked it to. */
  | { readonly _tag: "Done"; readonly dropped: DropError | undefined }

/**
 * One socket from its opening to its end. It ends once, with the first of: the socket's close
 * (a drop unless this side asked for it, a clean-looking 1000 or 1006 included), an abort, or
 * the release of its scope. At the end the waiting commands fail, `closed` completes, and a
 * drop is reported to `onDrop`.
 */
export class Lifecycle {
  private state: State = { _tag: "Opening", failure: undefined }

  constructor(
    readonly socket: globalThis.WebSocket,
    readonly transport: Transport,
    private readonly instance: string,
    private readonly pending: PendingCommands,
    /** Completes at `websocket_connected`; fails when the socket ends before it. */
    readonly connected: Deferred.Deferred<void, DropError>,
    readonly closed: Deferred.Deferred<void, DropError>,
    private readonly onDrop: ((reason: DropError) => void) | undefined
  ) {}

  /**
   * Follows the socket's own events, not a platform Socket: no fiber, stream or latch per
   * connection, and every message is handled as it arrives.
   */
  unsafeListen(onMessage: (data: string | Uint8Array) => void): void {
    const socket = this.socket
    socket.binaryType = "arraybuffer"
    socket.addEventListener("open", () => {
      if (this.state._tag === "Opening") this.state = { _tag: "Open" }
    })
    socket.addEventListener("message", (event) => {
      const data: unknown = event.data
      onMessage(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer))
    })
    socket.addEventListener("error", (event) => {
      if (this.state._tag === "Opening") this.state = { _tag: "Opening", failure: describeCause(event) }
    })
    socket.addEventListener("close", (event) => {
      const state = this.state
      this.finish(
        state._tag === "Opening" && state.failure !== undefined
          ? fromOpenFailure(state.failure, this.instance)
          : fromCloseCode(event.code, event.reason, this.instance)
      )
    })
  }

  /** Whether the socket is open and nobody asked it to close. */
  get isOpen(): boolean {
    const tag = this.state._tag
    return (tag === "Opening" || tag === "Open") && this.socket.readyState === OPEN
  }

  /** Whether the `open` event came, for what a timeout says. */
  get opened(): boolean {
    return this.state._tag !== "Opening"
  }

  get dropped(): DropError | undefined {
    return this.state._tag === "Done" ? this.state.dropped : undefined
  }

  /** The server's `websocket_connected`: the connection is usable. */
  unsafeConfirm(): void {
    Deferred.unsafeDone(this.connected, Effect.void)
  }

  /** Starts the closing handshake; the socket's close event ends the connection. */
  unsafeClose(): void {
    if (this.state._tag === "Opening" || this.state._tag === "Open") this.state = { _tag: "Closing" }
    if (this.socket.readyState <= OPEN) this.socket.close(1000)
  }

  /** Ends the connection now with `reason` (a drop), without waiting for the peer. */
  unsafeAbort(reason: DropError): void {
    const tag = this.state._tag
    if (tag === "Closing" || tag === "Done") return
    this.finish(reason)
    this.transport.terminate(reason._tag === "ConnectionError" ? reason.reason : "error")
  }

  /** The scope is closing: the connection ends now, as asked, and the socket is told so. */
  unsafeRelease(): void {
    if (this.state._tag !== "Done") this.state = { _tag: "Closing" }
    this.finish(
      new ConnectionError({
        reason: "closed",
        instance: this.instance,
        message: `The connection to ${this.instance} was closed`
      })
    )
    if (this.socket.readyState <= OPEN) this.socket.close(1000)
  }

  private finish(reason: DropError): void {
    if (this.state._tag === "Done") return
    const asked = this.state._tag === "Closing"
    this.state = { _tag: "Done", dropped: asked ? undefined : reason }
    this.pending.unsafeFailAll(reason)
    Deferred.unsafeDone(this.closed, asked ? Effect.void : Effect.fail(reason))
    // whoever closed it, a connection that ended before `websocket_connected` never became usable
    Deferred.unsafeDone(this.connected, Effect.fail(reason))
    if (!asked) this.onDrop?.(reason)
  }
}
