import * as Protocol from "../../Protocol.js"
import { toBase64 } from "../dataplane/chatFrame.js"

/**
 * What a connection needs from its socket beyond the standard WebSocket: the data plane's
 * per-frame send, batching of writes, and an end that does not wait for the peer.
 */
export interface Transport {
  /** Sends one `chat` message carrying `frame` under `mid`. */
  readonly sendChat: (mid: string, frame: Uint8Array) => void
  /** Holds writes back until the matching `uncork`; corks nest. */
  readonly cork: () => void
  readonly uncork: () => void
  /** Ends the socket now: a peer that stopped answering may never finish a closing handshake. */
  readonly terminate: (reason: string) => void
}

/**
 * Where a socket built by one of our own constructors carries its transport. A symbol from
 * the global registry, so that two copies of this package loaded side by side still agree.
 */
export const TransportId: unique symbol = Symbol.for("akool-streaming-avatar/Connection/Transport")

/** A socket that carries its transport. */
interface Carrier {
  readonly [TransportId]?: Transport | undefined
}

const OPEN = 1

const nothing = () => {}

/** For any standard WebSocket: the chat message as a string, no batching, close code 4000 to end. */
export const generic = (socket: globalThis.WebSocket): Transport => ({
  sendChat: (mid, frame) => socket.send(Protocol.encodeChat(mid, toBase64(frame))),
  cork: nothing,
  uncork: nothing,
  terminate: (reason) => {
    if (socket.readyState <= OPEN) socket.close(4000, reason)
  }
})

/** Attaches `transport` to `socket`, out of sight of enumeration and JSON. */
export const attach = <S extends object>(socket: S, transport: Transport): S =>
  Object.defineProperty(socket, TransportId, { value: transport, enumerable: false })

/** The transport `socket` carries, or the generic one. */
export const of = (socket: globalThis.WebSocket): Transport =>
  (socket as globalThis.WebSocket & Carrier)[TransportId] ?? generic(socket)
