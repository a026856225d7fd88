const hasBuffer = typeof globalThis.Buffer === "function"

/** Base64 of PCM bytes: `Buffer` where there is one (0.5 µs a frame), `btoa` elsewhere. */
export const toBase64 = (bytes: Uint8Array): string => {
  if (hasBuffer) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")
  let binary = ""
  for (let i = 0; i < bytes.byteLength; i++) binary += String.fromCharCode(bytes[i]!)
  return btoa(binary)
}
