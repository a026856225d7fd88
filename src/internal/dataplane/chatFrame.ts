const hasBuffer = typeof globalThis.Buffer === "function"

/** Base64 of PCM bytes: `Buffer` where there is one (0.5 µs a frame), `btoa` elsewhere. */
export const toBase64 = (bytes: Uint8Array): string => {
  if (hasBuffer) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")
  let binary = ""
  for (let i = 0; i < bytes.byteLength; i++) binary += String.fromCharCode(bytes[i]!)
  return btoa(binary)
}

const CHAT_HEAD = '{"v":2,"type":"chat","mid":"'
const CHAT_MID = '","pld":{"audio":"'
const CHAT_TAIL = '"}}'

/**
 * `Protocol.encodeChat(mid, toBase64(frame))` as the bytes of one Buffer, for Node's `ws`
 * (sent with `binary: false`, it is the same text frame). It skips what a string costs on the
 * way out: flattening the concatenation and a UTF-8 encode of it. Node only.
 */
export const encodeChatBuffer = (mid: string, frame: Uint8Array): Buffer => {
  const audio = toBase64(frame)
  const buffer = Buffer.allocUnsafe(CHAT_HEAD.length + mid.length + CHAT_MID.length + audio.length + CHAT_TAIL.length)
  // every part is ASCII: latin1 copies it byte for byte
  let at = buffer.write(CHAT_HEAD, 0, "latin1")
  at += buffer.write(mid, at, "latin1")
  at += buffer.write(CHAT_MID, at, "latin1")
  at += buffer.write(audio, at, "latin1")
  buffer.write(CHAT_TAIL, at, "latin1")
  return buffer
}
