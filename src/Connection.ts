/**
 * One scoped WebSocket to one instance: the `api_key` header and the query, the mapping of
 * close codes and refused upgrades to typed errors, the wait for `websocket_connected`,
 * decoding of every inbound frame, and ack correlation for commands.
 *
 * The socket is opened through `Socket.WebSocketConstructor`, so any environment that can
 * provide one works: a standard WebSocket sends each message as a string. The sockets of
 * `AvatarClient.layerWebSocketConstructorNode` (Node, with the `api_key` header) carry a faster
 * path for audio: chat messages built as one Buffer, writes batched, an abort without a
 * closing handshake.
 *
 * @since 0.1.0
 */
import type * as Socket from "@effect/platform/Socket"
import type * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import type { AvatarConfig } from "./AvatarConfig.js"
import type {
  AuthenticationError,
  CommandError,
  ConfigurationError,
  ConnectionError,
  ServerError
} from "./AvatarError.js"
import type * as Discovery from "./Discovery.js"
import * as closeCodes from "./internal/connection/closeCodes.js"
import * as internal from "./internal/connection/connection.js"
import type * as Protocol from "./Protocol.js"

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
  /**
   * Sends a control message now; fails when the socket is no longer open. A message that does
   * not match its Schema (from untyped code) fails with a `ConfigurationError` that names the
   * field, and nothing is sent.
   */
  readonly send: (message: Protocol.ClientMessage) => Effect.Effect<void, ConnectionError | ConfigurationError>
  /**
   * Sends a command and waits for the `ack` whose `original_mid` is the command's `mid`.
   * An `error` message that names the command fails it with a `ServerError`; a message that
   * does not encode fails as in `send`, before anything is sent.
   */
  readonly request: (
    message: Protocol.ClientMessage,
    timeout: Duration.DurationInput
  ) => Effect.Effect<typeof Protocol.Ack.Type, CommandError | ServerError | ConnectionError | ConfigurationError>
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
   * data plane's only call per frame. On the Node sockets the message is built as one Buffer.
   */
  readonly unsafeSendChat: (frame: Uint8Array) => void
  /**
   * Holds this connection's writes back until the matching `unsafeUncork`, so that the
   * messages sent in between reach the kernel in one write (on the Node sockets; elsewhere both
   * do nothing). The data plane corks around a batch of frames, and around a frame and the ping
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
  /** Sees each `error` message that answers no command (one that does fails that command instead). */
  readonly onServerError?: ((error: ServerError) => void) | undefined
  /**
   * Called once, synchronously, when the connection ends without being asked to (the moment
   * `closed` fails): a caller can react to a drop without a fiber waiting for it.
   */
  readonly onDrop?: ((reason: DropError) => void) | undefined
}

/**
 * Maps a close frame's code to our errors: 4001 is a bad key, 4003 an occupied instance, 4004
 * a reconnect too soon; any other code is a drop.
 *
 * @since 0.1.0
 * @category errors
 */
export const fromCloseCode: (code: number, closeReason: string, instance: string) => DropError =
  closeCodes.fromCloseCode

/**
 * Opens a connection and waits for `websocket_connected`. The connection lives until the
 * scope closes, `close` is called, or it drops (see `closed`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<Connection, DropError, Scope.Scope | Socket.WebSocketConstructor | AvatarConfig> = internal.make
