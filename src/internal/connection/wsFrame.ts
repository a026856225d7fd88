import { randomFillSync } from "node:crypto"
import { chatLength, toBase64, writeChat } from "../dataplane/chatFrame.js"

/**
 * A `chat` message as a whole client WebSocket frame (RFC 6455 §5.2: FIN, text, masked),
 * ready for the socket: what `ws` would build from `encodeChatBuffer`, in one buffer and
 * without its copies. `ws` masks a frame byte by byte into a second buffer (it may not write
 * into a buffer it was given); here the message is written once, into memory of our own, and
 * masked in place four bytes at a time. At 1,000 sessions that framing was the largest piece
 * of the client's own CPU after the kernel's writes.
 *
 * Node only (it writes to the `net.Socket` under a `ws` socket; see `nodeTransport.ts`).
 */

const OPCODE_TEXT_FIN = 0x81
const MASK_BIT = 0x80

/**
 * Frames are cut from slabs of this size, each one 4-byte aligned so that masking can go a
 * word at a time. A slab is never reused: once the frames cut from it are written and
 * dropped, it is garbage, as Node's own `Buffer` pool is. Small, because one frame that a slow
 * socket still holds keeps its whole slab alive: about eight default frames to a slab.
 */
const SLAB_BYTES = 16 * 1024

/** Masking keys come from a pool of random bytes refilled as it runs out, as `ws` does it. */
const KEY_POOL_BYTES = 8 * 1024

class Slabs {
  private bytes = Buffer.alloc(0)
  private words = new Uint32Array(0)
  private at = 0
  private readonly keys = new Uint8Array(KEY_POOL_BYTES)
  private keyAt = KEY_POOL_BYTES
  /** Four key bytes, and the same four as one word in this machine's byte order. */
  private readonly key = new Uint8Array(4)
  private readonly keyWord = new Uint32Array(this.key.buffer)

  /** `length` bytes at a 4-aligned offset of a slab: returns the offset; `bytes`/`words` are that slab. */
  take(length: number): number {
    if (this.at + length > this.bytes.byteLength) {
      const size = Math.max(SLAB_BYTES, length + 3)
      this.bytes = Buffer.allocUnsafeSlow(size)
      this.words = new Uint32Array(this.bytes.buffer, 0, size >>> 2)
      this.at = 0
    }
    const offset = this.at
    this.at = (offset + length + 3) & ~3
    return offset
  }

  get slab(): Buffer {
    return this.bytes
  }

  /** A fresh masking key, written at `offset`; the key stays in `key`/`keyWord` for `mask`. */
  newKey(offset: number): void {
    if (this.keyAt + 4 > KEY_POOL_BYTES) {
      randomFillSync(this.keys)
      this.keyAt = 0
    }
    for (let i = 0; i < 4; i++) {
      const byte = this.keys[this.keyAt++]!
      this.key[i] = byte
      this.bytes[offset + i] = byte
    }
  }

  /** Masks `length` bytes from the 4-aligned `offset` in place with the current key. */
  mask(offset: number, length: number): void {
    const words = this.words
    const keyWord = this.keyWord[0]!
    const whole = length >>> 2
    const first = offset >>> 2
    for (let i = 0; i < whole; i++) words[first + i]! ^= keyWord
    const bytes = this.bytes
    for (let i = whole << 2; i < length; i++) bytes[offset + i]! ^= this.key[i & 3]
  }
}

const slabs = new Slabs()

/** The length of the frame header for a payload of `length` bytes, masking key included. */
const headerBytes = (length: number) => (length < 126 ? 6 : length < 65536 ? 8 : 14)

/**
 * One masked text frame carrying `{"v":2,"type":"chat","mid":…,"pld":{"audio":…}}`, as a
 * `Buffer` over a slab. The payload starts 4-aligned, and the header sits right before it
 * (the frame starts a little into the room taken for it).
 */
export const encodeMaskedChatFrame = (mid: string, frame: Uint8Array): Buffer => {
  const audio = toBase64(frame)
  const length = chatLength(mid, audio)
  const header = headerBytes(length)
  // the header sits just before the 4-aligned payload: take room for both plus the padding
  const pad = (4 - (header & 3)) & 3
  const start = slabs.take(pad + header + length) + pad
  const payload = start + header
  const bytes = slabs.slab
  bytes[start] = OPCODE_TEXT_FIN
  if (header === 6) bytes[start + 1] = MASK_BIT | length
  else if (header === 8) {
    bytes[start + 1] = MASK_BIT | 126
    bytes[start + 2] = length >>> 8
    bytes[start + 3] = length & 0xff
  } else {
    bytes[start + 1] = MASK_BIT | 127
    // a payload under 4 GiB: the high four bytes of the 64-bit length are zero
    for (let i = 2; i < 6; i++) bytes[start + i] = 0
    bytes[start + 6] = length >>> 24
    bytes[start + 7] = (length >>> 16) & 0xff
    bytes[start + 8] = (length >>> 8) & 0xff
    bytes[start + 9] = length & 0xff
  }
  slabs.newKey(payload - 4)
  writeChat(bytes, payload, mid, audio)
  slabs.mask(payload, length)
  return bytes.subarray(start, payload + length)
}
