/**
 * One scoped WebSocket to one instance: the `api_key` header and the query, the mapping of
 * close codes and refused upgrades to typed errors, the wait for `websocket_connected`,
 * decoding of every inbound frame, and ack correlation for commands.
 *
 * The socket is opened through `Socket.WebSocketConstructor`, so any environment that can
 * provide one works; {@link layerWebSocketConstructorNode} is the Node one, with headers.
 *
 * @since 0.1.0
 */
import * as Socket from "@effect/platform/Socket"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PubSub from "effect/PubSub"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { WebSocket as NodeWebSocket } from "ws"
import { AvatarConfig } from "./AvatarConfig.js"
import { AuthenticationError, CommandError, ConnectionError, ServerError } from "./AvatarError.js"
import * as AvatarMetrics from "./AvatarMetrics.js"
import * as Discovery from "./Discovery.js"
import { encodeChatBuffer, toBase64 } from "./internal/dataplane/chatFrame.js"
import * as Protocol from "./Protocol.js"

/**
 * Why a connection ended when nobody asked it to.
 *
 * @since 0.1.0
 * @category models
 */
export type DropError = ConnectionError | AuthenticationError

/**
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  readonly instance: Discovery.Instance
  readonly sessionId: string
  /** The socket itself: the data plane writes to it directly and reads `bufferedAmount`. */
  readonly socket: globalThis.WebSocket
  readonly ids: Protocol.MessageIds
  /** Whether the socket is open and the connection was not asked to close. */
  readonly isOpen: () => boolean
  /** Sends a control message now; fails when the socket is no longer open. */
  readonly send: (message: Protocol.ClientMessage) => Effect.Effect<void, ConnectionError>
  /**
   * Sends a command and waits for the `ack` whose `original_mid` is the command's `mid`.
   * An `error` message that names the command fails it with a `ServerError`.
   */
  readonly request: (
    message: Protocol.ClientMessage,
    timeout: Duration.DurationInput
  ) => Effect.Effect<typeof Protocol.Ack.Type, CommandError | ServerError | ConnectionError>
  /** Every decoded inbound message, for subscribers. */
  readonly messages: PubSub.PubSub<Protocol.ServerMessage>
  /** How many messages have arrived: any message shows the peer is alive. */
  readonly inbound: () => number
  /**
   * Completes when the connection ends: with success when it was closed on request, with
   * the reason otherwise.
   */
  readonly closed: Deferred.Deferred<void, DropError>
  /** Why the connection dropped, once it has; `undefined` while it is open or after a requested close. */
  readonly dropped: () => DropError | undefined
  /**
   * The highest `mark` that the server confirmed. Every ping and command carries the mark
   * taken when it was sent (the count of audio frames written so far); the server answers
   * in order, so its pong or ack confirms that everything sent before arrived.
   */
  readonly confirmed: () => number
  /**
   * Sends a ping now, synchronously (the data plane asks for confirmations with it, the
   * heartbeat checks the peer with it). `answered` is called with the time its pong arrived.
   */
  readonly unsafePing: (answered?: (at: number) => void) => void
  /**
   * Sends one `chat` message carrying `frame`, synchronously, with the next message id: the
   * data plane's only call per frame. On Node's `ws` the message is built as one Buffer.
   */
  readonly unsafeSendChat: (frame: Uint8Array) => void
  /**
   * Holds this connection's writes back until the matching `unsafeUncork`, so that the
   * messages sent in between reach the kernel in one write (on Node's `ws`; elsewhere both do
   * nothing). The data plane corks around a batch of frames, and around a frame and the ping
   * that follows it. Corks nest; every cork needs its uncork, in the same synchronous run.
   */
  readonly unsafeCork: () => void
  /** Ends what `unsafeCork` began: the messages held back leave, in one write, once every cork is undone. */
  readonly unsafeUncork: () => void
  /**
   * Ends the connection now with the given reason, as a drop, without waiting for the peer
   * (the heartbeat on a missed pong, the data plane on a stalled peer).
   */
  readonly unsafeAbort: (reason: DropError) => void
  /** Closes the socket normally (code 1000). */
  readonly close: Effect.Effect<void>
}

/** The part of Node's `net.Socket` that batching needs. */
interface Corkable {
  readonly cork: () => void
  readonly uncork: () => void
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly instance: Discovery.Instance
  readonly sessionId: string
  readonly avatarId: string
  /** Where decoded messages are published; a fresh PubSub when absent. */
  readonly messages?: PubSub.PubSub<Protocol.ServerMessage> | undefined
  readonly connectionTimeout?: Duration.DurationInput | undefined
  /** The mark a ping or a command carries (see `Connection.confirmed`); 0 when absent. */
  readonly mark?: (() => number) | undefined
  /** Sees every decoded message as it arrives, synchronously, before it is published. */
  readonly onMessage?: ((message: Protocol.ServerMessage) => void) | undefined
  /**
   * Called once, synchronously, when the connection ends without being asked to (the moment
   * `closed` fails): a caller can react to a drop without a fiber waiting for it.
   */
  readonly onDrop?: ((reason: DropError) => void) | undefined
}

const OPEN = 1

/** `ws` send options for a text frame whose payload is already bytes. */
const TEXT = { binary: false } as const

const unexpectedStatus = /Unexpected server response: (\d{3})/

const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message
  if (typeof cause === "object" && cause !== null) {
    const c = cause as { message?: unknown; error?: unknown }
    if (typeof c.message === "string" && c.message !== "") return c.message
    if (c.error instanceof Error) return c.error.message
  }
  return String(cause)
}

/**
 * Maps a close frame's code to our errors: 4001 is a bad key, 4003 an occupied instance, 4004
 * a reconnect too soon; any other code is a drop.
 *
 * @since 0.1.0
 * @category errors
 */
export const fromCloseCode = (code: number, closeReason: string, instance: string): DropError => {
  const suffix = closeReason ? ` (${closeReason})` : ""
  switch (code) {
    case 4001:
      return new AuthenticationError({
        source: "websocket",
        message: `The instance ${instance} refused the API key (close code 4001${suffix}); check AKOOL_API_KEY`
      })
    case 4003:
      return new ConnectionError({
        reason: "occupied",
        code,
        instance,
        message: `The instance ${instance} is occupied: it allows one connection (close code 4003${suffix})`
      })
    case 4004:
      return new ConnectionError({
        reason: "too-soon",
        code,
        instance,
        message: `The instance ${instance} refused a reconnect this soon (close code 4004${suffix}); wait before retrying`
      })
    default:
      return new ConnectionError({
        reason: "closed",
        code,
        instance,
        message: `The connection to ${instance} closed unexpectedly (code ${code}${suffix})`
      })
  }
}

/** A socket that failed before it opened: a refused upgrade (by HTTP status) or no connection at all. */
const fromOpenFailure = (detail: string, instance: string): DropError => {
  const status = unexpectedStatus.exec(detail)
  if (status) {
    const code = Number(status[1])
    if (code === 401 || code === 403) {
      return new AuthenticationError({
        source: "websocket",
        message: `The instance ${instance} refused the API key (HTTP ${code} on upgrade); check AKOOL_API_KEY`
      })
    }
    return new ConnectionError({
      reason: "refused",
      code,
      instance,
      message: `The instance ${instance} refused the WebSocket upgrade with HTTP ${code}`
    })
  }
  return new ConnectionError({
    reason: "refused",
    instance,
    message: `Could not connect to ${instance}: ${detail}`
  })
}

/**
 * Opens a connection and waits for `websocket_connected`. The connection lives until the
 * scope closes, `close` is called, or it drops (see `closed`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<Connection, DropError, Scope.Scope | Socket.WebSocketConstructor | AvatarConfig> =>
  Effect.gen(function* () {
    const config = yield* AvatarConfig
    const construct = yield* Socket.WebSocketConstructor
    const instance = Discovery.label(options.instance)
    const connectionTimeout = options.connectionTimeout ?? config.connectionTimeout
    const url = Discovery.websocketUrl(options.instance, { sessionId: options.sessionId, avatarId: options.avatarId })

    const messages = options.messages ?? (yield* PubSub.unbounded<Protocol.ServerMessage>())
    const connected = yield* Deferred.make<void, DropError>()
    const closed = yield* Deferred.make<void, DropError>()
    const pending = new Map<string, Deferred.Deferred<typeof Protocol.Ack.Type, CommandError | ServerError>>()
    const ids = Protocol.makeMessageIds()
    let closing = false
    let inbound = 0
    let confirmed = 0
    const mark = options.mark ?? (() => 0)
    // pongs carry no id, but they come back in the order the pings went out
    const pingMarks: Array<{ readonly mark: number; readonly answered: ((at: number) => void) | undefined }> = []
    const clock = yield* Effect.clock
    const commandMarks = new Map<string, number>()
    const confirm = (value: number | undefined) => {
      if (value !== undefined && value > confirmed) confirmed = value
    }

    const socket = yield* Effect.acquireRelease(
      Effect.try({
        try: () => construct(url),
        catch: (cause) =>
          new ConnectionError({
            reason: "refused",
            instance,
            message: `Could not open a WebSocket to ${instance}: ${describeCause(cause)}`
          })
      }),
      (ws) =>
        Effect.sync(() => {
          closing = true
          finish(
            new ConnectionError({ reason: "closed", instance, message: `The connection to ${instance} was closed` })
          )
          if (ws.readyState <= OPEN) ws.close(1000)
        })
    )

    const failPending = (reason: DropError) => {
      for (const [mid, deferred] of pending) {
        Deferred.unsafeDone(
          deferred,
          Effect.fail(
            new CommandError({
              reason: "disconnected",
              command: "",
              mid,
              message: `The connection ended before the command was acknowledged: ${reason.message}`
            })
          )
        )
      }
      pending.clear()
    }

    // `connected` always fails here: a connection that ends before `websocket_connected`
    // never became usable, whoever closed it
    let finished = false
    let dropReason: DropError | undefined
    const finish = (dropped: DropError) => {
      if (finished) return
      finished = true
      failPending(dropped)
      Deferred.unsafeDone(closed, closing ? Effect.void : Effect.fail(dropped))
      Deferred.unsafeDone(connected, Effect.fail(dropped))
      if (!closing) {
        dropReason = dropped
        options.onDrop?.(dropped)
      }
    }

    const onMessage = (data: string | Uint8Array) => {
      inbound++
      const message = Protocol.decodeServerMessage(data)
      switch (message.type) {
        case "system":
          if (message.pld.status === "websocket_connected") Deferred.unsafeDone(connected, Effect.void)
          break
        case "ack": {
          confirm(commandMarks.get(message.pld.original_mid))
          commandMarks.delete(message.pld.original_mid)
          const waiting = pending.get(message.pld.original_mid)
          if (waiting) {
            pending.delete(message.pld.original_mid)
            Deferred.unsafeDone(waiting, Effect.succeed(message))
          }
          break
        }
        case "error": {
          // the documented payload names no message: an error that arrives while commands wait
          // answers the oldest of them; one that names a message answers that one
          const mid = message.pld.original_mid ?? pending.keys().next().value
          const waiting = mid === undefined ? undefined : pending.get(mid)
          if (waiting && mid !== undefined) {
            pending.delete(mid)
            Deferred.unsafeDone(
              waiting,
              Effect.fail(new ServerError({ code: message.pld.error_code, message: message.pld.error_message }))
            )
          }
          break
        }
        case "pong": {
          const ping = pingMarks.shift()
          confirm(ping?.mark)
          ping?.answered?.(clock.unsafeCurrentTimeMillis())
          break
        }
      }
      options.onMessage?.(message)
      // synchronous, in order, and no fiber per inbound message
      messages.unsafeOffer(message)
    }

    // The socket's own events, not a platform Socket: no fiber, stream or latch per
    // connection, and every message is handled as it arrives. Every close counts as a drop
    // unless this side asked for it (a clean-looking 1000 or 1006 included).
    let opened = false
    let openFailure: string | undefined
    socket.binaryType = "arraybuffer"
    socket.addEventListener("open", () => {
      opened = true
    })
    socket.addEventListener("message", (event) => {
      const data: unknown = event.data
      onMessage(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer))
    })
    socket.addEventListener("error", (event) => {
      if (!opened) openFailure = describeCause(event)
    })
    socket.addEventListener("close", (event) => {
      finish(
        !opened && openFailure !== undefined
          ? fromOpenFailure(openFailure, instance)
          : fromCloseCode(event.code, event.reason, instance)
      )
    })

    const notOpen = () =>
      new ConnectionError({ reason: "closed", instance, message: `The connection to ${instance} is not open` })

    const isOpen = () => !closing && socket.readyState === OPEN

    const send = (message: Protocol.ClientMessage) =>
      Effect.suspend(() => {
        if (!isOpen()) return Effect.fail(notOpen())
        if (message.type === "ping") pingMarks.push({ mark: mark(), answered: undefined })
        else if (message.type === "command" || message.type === "event") commandMarks.set(message.mid, mark())
        socket.send(Protocol.encodeClientMessage(message))
        return Effect.void
      })

    const unsafePing = (answered?: (at: number) => void) => {
      if (!isOpen()) return
      pingMarks.push({ mark: mark(), answered })
      socket.send(Protocol.encodePing(ids.next()))
    }

    const unsafeSendChat =
      socket instanceof NodeWebSocket
        ? (frame: Uint8Array) => socket.send(encodeChatBuffer(ids.next(), frame), TEXT)
        : (frame: Uint8Array) => socket.send(Protocol.encodeChat(ids.next(), toBase64(frame)))

    // `ws` has no cork of its own: its `_socket` is the `net.Socket` it writes to (set once the
    // upgrade completes), the one `ws` itself corks around the two parts of each frame it sends.
    // Batched, 24 frames leave in one writev instead of 24 writes, and a ping joins its frame.
    const transport = socket as unknown as { readonly _socket?: Corkable | null }
    const nothing = () => {}
    const unsafeCork = socket instanceof NodeWebSocket ? () => transport._socket?.cork() : nothing
    const unsafeUncork = socket instanceof NodeWebSocket ? () => transport._socket?.uncork() : nothing

    const request = (message: Protocol.ClientMessage, timeout: Duration.DurationInput) =>
      Effect.gen(function* () {
        const command = Protocol.commandName(message) ?? message.type
        const deferred = yield* Deferred.make<typeof Protocol.Ack.Type, CommandError | ServerError>()
        pending.set(message.mid, deferred)
        const sentAt = yield* Clock.currentTimeMillis
        yield* send(message)
        // interruptible even where the caller is not (a scope finalizer sends leave_channel):
        // otherwise the timeout could not stop the wait
        const ack = yield* Effect.interruptible(Deferred.await(deferred)).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () =>
              new CommandError({
                reason: "timeout",
                command,
                mid: message.mid,
                message: `The server did not acknowledge ${command} within ${Duration.format(Duration.decode(timeout))}`
              })
          }),
          Effect.mapError((e) =>
            // a spread would lose `message`, which an Error keeps non-enumerable
            e._tag === "CommandError" && e.command === ""
              ? new CommandError({ reason: e.reason, command, mid: e.mid, message: e.message })
              : e
          )
        )
        yield* Metric.update(AvatarMetrics.ackLatency, (yield* Clock.currentTimeMillis) - sentAt)
        if (ack.pld.status !== "success") {
          return yield* new CommandError({
            reason: "rejected",
            command,
            mid: message.mid,
            message: `The server rejected ${command} (ack status ${JSON.stringify(ack.pld.status)})`
          })
        }
        return ack
      }).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            pending.delete(message.mid)
            commandMarks.delete(message.mid)
          })
        )
      )

    const unsafeAbort = (reason: DropError) => {
      if (closing) return
      finish(reason)
      closing = true
      // a peer that stopped answering may never finish a closing handshake: do not wait for one
      const raw = socket as { terminate?: () => void }
      if (typeof raw.terminate === "function") raw.terminate()
      else if (socket.readyState <= OPEN)
        socket.close(4000, reason._tag === "ConnectionError" ? reason.reason : "error")
    }

    // waits (briefly) for the closing handshake, so the peer has seen the close when this returns
    const close = Effect.suspend(() => {
      closing = true
      if (socket.readyState <= OPEN) socket.close(1000)
      return Effect.interruptible(Deferred.await(closed)).pipe(Effect.timeout(Duration.seconds(2)), Effect.ignore)
    })

    yield* Deferred.await(connected).pipe(
      Effect.timeoutFail({
        duration: connectionTimeout,
        onTimeout: () =>
          new ConnectionError({
            reason: "timeout",
            instance,
            message: opened
              ? `The instance ${instance} did not confirm the session (websocket_connected) within ${Duration.format(
                  Duration.decode(connectionTimeout)
                )}`
              : `The WebSocket to ${instance} did not open within ${Duration.format(Duration.decode(connectionTimeout))}`
          })
      }),
      Effect.withSpan("Connection.connect", {
        attributes: { "akool.instance": instance, "akool.session_id": options.sessionId }
      })
    )

    return {
      instance: options.instance,
      sessionId: options.sessionId,
      socket,
      ids,
      isOpen,
      send,
      request,
      messages,
      inbound: () => inbound,
      confirmed: () => confirmed,
      unsafePing,
      unsafeSendChat,
      unsafeCork,
      unsafeUncork,
      closed,
      dropped: () => dropReason,
      unsafeAbort,
      close
    } satisfies Connection
  })

/**
 * A `Socket.WebSocketConstructor` for Node built on `ws`, which sends the `api_key` header
 * (the platform's own Node constructor sends no custom headers). Compression is off: audio
 * in base64 gains little from it and pays for it in CPU.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeNodeWebSocketConstructor =
  (apiKey: Redacted.Redacted<string>) =>
  (url: string, protocols?: string | Array<string>): globalThis.WebSocket =>
    new NodeWebSocket(url, protocols, {
      headers: { api_key: Redacted.value(apiKey) },
      perMessageDeflate: false
    }) as unknown as globalThis.WebSocket

/**
 * @since 0.1.0
 * @category layers
 */
export const layerWebSocketConstructorNode: Layer.Layer<Socket.WebSocketConstructor, never, AvatarConfig> =
  Layer.effect(
    Socket.WebSocketConstructor,
    Effect.map(AvatarConfig, (config) => makeNodeWebSocketConstructor(config.apiKey))
  )
