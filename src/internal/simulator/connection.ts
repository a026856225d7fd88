import type * as Net from "node:net"
import * as Socket from "@effect/platform/Socket"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as AvatarSimulator from "../../AvatarSimulator.js"
import type * as Instance from "./instance.js"
import type * as Records from "./records.js"

/**
 * How long a close the simulator starts waits for the peer's answer before the socket is
 * destroyed: `ws` would wait 30 seconds for a peer that is gone or does not read.
 */
const CLOSE_TIMEOUT = "1 second"

/**
 * The real clock, for the bounds that guard against a peer: a peer lives in real time,
 * even when a test runs the simulator on the TestClock.
 */
const liveClock = Clock.make()

/** @internal */
export type Send = (data: string | Uint8Array) => Effect.Effect<void>

/** @internal How the simulator decided to end a connection. */
export interface CloseRequest {
  readonly mode: AvatarSimulator.DropMode
  /** Not used by `"terminate"`. */
  readonly code: number
  readonly reason: string
  /** On purpose, by a fault or `drop`: not a refusal, nor the goodbye at shutdown. */
  readonly dropped: boolean
}

/** What `pause` and `resume` stop and restart the reading of a socket with. */
interface Pausable {
  pause(): unknown
  resume(): unknown
}

/**
 * What to pause to stall a socket: the `ws` WebSocket on it, which `ws` keeps on the TCP
 * socket it upgraded under its own symbol `websocket` (the platform's Socket does not
 * expose it). Pausing the TCP socket alone does not hold: `ws` resumes it whenever its
 * parser drains, unless the WebSocket itself is paused.
 */
const readerOf = (tcp: Net.Socket): Pausable => {
  for (const symbol of Object.getOwnPropertySymbols(tcp)) {
    if (symbol.description !== "websocket") continue
    const candidate = (tcp as unknown as Record<symbol, Partial<Pausable> | undefined>)[symbol]
    if (typeof candidate?.pause === "function" && typeof candidate.resume === "function") {
      return candidate as Pausable
    }
  }
  return tcp
}

/**
 * The live side of one connection: its socket, whether its reading is paused, how it ends.
 * What it received is in its `record`.
 *
 * @internal
 */
export class Connection {
  private reader: Pausable | undefined = undefined
  private paused = false
  private closing = false
  private writer: Send | undefined = undefined
  /** The code the simulator closed with: it wins over the code the peer echoes. */
  private sentClose: number | undefined = undefined
  /** The code of the socket's close event, once the raw socket has been seen. */
  private peerCloseCode: number | undefined = undefined
  /** The faults after N frames that have fired: each fires once per connection. */
  private readonly fired = new Set<keyof AvatarSimulator.Faults>()

  constructor(
    readonly instance: Instance.Instance,
    readonly record: Records.ConnectionRecord,
    /** The TCP socket, known from the upgrade request on. */
    readonly tcp: Net.Socket,
    private readonly closeRequest: Deferred.Deferred<CloseRequest>,
    private readonly closed: Deferred.Deferred<void>
  ) {}

  /**
   * The simulator has decided to end the connection: what the client sends from now on is
   * not recorded, as it would never have arrived.
   */
  get ending(): boolean {
    return this.closing
  }

  /** Writes a frame without waiting for a stall to end; known before the socket opens. */
  get write(): Send | undefined {
    return this.writer
  }

  /** Waits until the connection's fiber has ended. */
  get awaitClosed(): Effect.Effect<void> {
    return Deferred.await(this.closed)
  }

  unsafeSetWriter(write: Send): void {
    this.writer = write
  }

  unsafeOpened(): void {
    this.record.unsafeOpened()
    this.reader = readerOf(this.tcp)
    if (this.instance.faults.stall === true && !this.closing) this.unsafePause()
  }

  unsafePause(): void {
    if (this.reader !== undefined && !this.paused) {
      this.paused = true
      this.reader.pause()
    }
  }

  unsafeResume(): void {
    if (this.reader !== undefined && this.paused) {
      this.paused = false
      this.reader.resume()
    }
  }

  /** True the first time it is asked about that fault on this connection. */
  unsafeFire(fault: keyof AvatarSimulator.Faults): boolean {
    if (this.fired.has(fault)) return false
    this.fired.add(fault)
    return true
  }

  unsafePeerClosed(code: number): void {
    this.peerCloseCode ??= code
  }

  /**
   * From now on nothing the client sends counts, and the instance is free: a client that
   * reconnects at once must not race the closing handshake.
   */
  unsafeEnding(): void {
    this.closing = true
    this.instance.unsafeRelease(this)
  }

  /** The simulator decides to end the connection. The first decision wins. */
  unsafeRequestClose(request: CloseRequest): void {
    this.unsafeEnding()
    Deferred.unsafeDone(this.closeRequest, Effect.succeed(request))
  }

  /** Carries out the close request when it comes, in the connection's scope. */
  closeWhenRequested(
    write: (chunk: string | Uint8Array | Socket.CloseEvent) => Effect.Effect<void, Socket.SocketError>
  ): Effect.Effect<void, never, Scope.Scope> {
    return Deferred.await(this.closeRequest).pipe(
      Effect.flatMap((request) =>
        Effect.suspend(() => {
          this.sentClose ??= request.mode === "terminate" ? 1006 : request.code
          this.record.unsafeDropped(request.dropped)
          if (request.mode === "terminate") {
            this.tcp.destroy()
            return Effect.void
          }
          // A stalled socket would never read the client's answering close frame.
          this.unsafeResume()
          // Forked: before the socket opens, the write waits for it. A peer that is gone,
          // or does not read, is cut off after a moment rather than waited for.
          return Effect.zipRight(
            Effect.forkScoped(Effect.ignore(write(new Socket.CloseEvent(request.code, request.reason)))),
            Effect.sleep(CLOSE_TIMEOUT).pipe(
              Effect.zipRight(Effect.sync(() => this.tcp.destroy())),
              Effect.withClock(liveClock)
            )
          )
        })
      )
    )
  }

  /** The connection's fiber has ended. */
  get finish(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.instance.unsafeRemove(this)
      // 1000 and 1006 end `runRaw` cleanly, without their code: the close event tells
      // them apart when the socket has been seen; otherwise it was a clean close.
      this.record.unsafeClosed(this.sentClose ?? this.peerCloseCode ?? 1000)
      return Deferred.succeed(this.closed, undefined)
    })
  }
}
