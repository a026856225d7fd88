import * as Redacted from "effect/Redacted"
import { WebSocket as NodeWebSocket } from "ws"
import { encodeChatBuffer } from "../dataplane/chatFrame.js"
import * as Transport from "./transport.js"

/** The part of Node's `net.Socket` that batching needs. */
interface Corkable {
  readonly cork: () => void
  readonly uncork: () => void
}

/** `ws` send options for a text frame whose payload is already bytes. */
const TEXT = { binary: false } as const

/**
 * The fast path of a `ws` socket. A chat message is built as one Buffer and sent as text,
 * which skips flattening a string and encoding it again.
 *
 * `ws` has no cork of its own: its `_socket` is the `net.Socket` it writes to (set once the
 * upgrade completes), the one `ws` itself corks around the two parts of each frame it sends.
 * Batched, 24 frames leave in one writev instead of 24 writes, and a ping joins its frame.
 */
const transportOf = (socket: NodeWebSocket): Transport.Transport => {
  const raw = socket as unknown as { readonly _socket?: Corkable | null }
  return {
    sendChat: (mid, frame) => socket.send(encodeChatBuffer(mid, frame), TEXT),
    cork: () => raw._socket?.cork(),
    uncork: () => raw._socket?.uncork(),
    terminate: () => socket.terminate()
  }
}

/** `AvatarClient.makeNodeWebSocketConstructor`. */
export const makeWebSocketConstructor =
  (apiKey: Redacted.Redacted<string>) =>
  (url: string, protocols?: string | Array<string>): globalThis.WebSocket => {
    const socket = new NodeWebSocket(url, protocols, {
      headers: { api_key: Redacted.value(apiKey) },
      perMessageDeflate: false
    })
    return Transport.attach(socket, transportOf(socket)) as unknown as globalThis.WebSocket
  }
