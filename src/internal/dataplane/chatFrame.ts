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

/** The length in bytes of the chat message carrying `audio` (base64) under `mid`: every part is ASCII. */
export const chatLength = (mid: string, audio: string): number =>
  CHAT_HEAD.length + mid.length + CHAT_MID.length + audio.length + CHAT_TAIL.length

/**
 * Writes `Protocol.encodeChat(mid, audio)` as bytes into `target` at `at` (it must have
 * `chatLength(mid, audio)` bytes of room there); returns where it ends. Every part is ASCII:
 * latin1 copies it byte for byte, with no string flattened and no UTF-8 encode.
 */
export const writeChat = (target: Buffer, at: number, mid: string, audio: string): number => {
  let end = at + target.write(CHAT_HEAD, at, "latin1")
  end += target.write(mid, end, "latin1")
  end += target.write(CHAT_MID, end, "latin1")
  end += target.write(audio, end, "latin1")
  return end + target.write(CHAT_TAIL, end, "latin1")
}

/**
 * `Protocol.encodeChat(mid, toBase64(frame))` as the bytes of one Buffer, for Node's `ws`
 * (sent with `binary: false`, it is the same text frame). Node only.
 */
export const encodeChatBuffer = (mid: string, frame: Uint8Array): Buffer => {
  const audio = toBase64(frame)
  const buffer = Buffer.allocUnsafe(chatLength(mid, audio))
  writeChat(buffer, 0, mid, audio)
  return buffer
}
