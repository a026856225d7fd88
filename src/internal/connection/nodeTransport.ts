import * as Redacted from "effect/Redacted"
import { WebSocket as NodeWebSocket } from "ws"
import { encodeChatBuffer } from "../dataplane/chatFrame.js"
import * as Transport from "./transport.js"
import { encodeMaskedChatFrame } from "./wsFrame.js"

/** The part of Node's `net.Socket` that batching and direct writes need. */
interface RawSocket {
  readonly cork: () => void
  readonly uncork: () => void
  readonly write: (chunk: Uint8Array) => boolean
}

/** What of `ws`'s internals the direct write checks: its sender has nothing queued or in progress. */
interface WsInternals {
  readonly _socket?: RawSocket | null
  readonly _sender?: { readonly _state?: number; readonly _queue?: ReadonlyArray<unknown> } | null
}

const OPEN = 1
/** `ws`'s sender state when it is not waiting on a compression or a Blob (it then sends at once). */
const SENDER_IDLE = 0

/** `ws` send options for a text frame whose payload is already bytes. */
const TEXT = { binary: false } as const

/**
 * The fast path of a `ws` socket. A chat message is built as one whole masked frame and
 * written to the `net.Socket` under it (`wsFrame.ts`), which skips flattening a string, encoding
 * it again, and `ws`'s copy of it for masking. `ws` writes each of its own frames at once and
 * in one piece while its sender is idle (no compression here, no Blobs), so frames written
 * beside it cannot interleave with its own; when its sender is busy, or the socket is not open,
 * the message goes through `ws` as a Buffer sent as text, in order behind what it holds.
 *
 * `ws` has no cork of its own: its `_socket` is the `net.Socket` it writes to (set once the
 * upgrade completes), the one `ws` itself corks around the two parts of each frame it sends.
 * Batched, 24 frames leave in one writev instead of 24 writes, and a ping joins its frame.
 */
const transportOf = (socket: NodeWebSocket): Transport.Transport => {
  const raw = socket as unknown as WsInternals
  return {
    sendChat: (mid, frame) => {
      const net = raw._socket
      const sender = raw._sender
      if (
        net != null &&
        socket.readyState === OPEN &&
        sender != null &&
        sender._state === SENDER_IDLE &&
        sender._queue?.length === 0
      ) {
        net.write(encodeMaskedChatFrame(mid, frame))
      } else {
        socket.send(encodeChatBuffer(mid, frame), TEXT)
      }
    },
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
