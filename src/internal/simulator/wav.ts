import * as Fs from "node:fs"
import { BYTES_PER_SAMPLE, BYTES_PER_SECOND, SAMPLE_RATE } from "../../Audio.js"

/** The canonical header: RIFF, a 16-byte `fmt ` chunk, and the `data` chunk's own 8 bytes. */
const HEADER_BYTES = 44

/** What a 32-bit size field holds at most: past 4 GiB (37 hours at 16 kHz) the sizes stay there. */
const MAX_SIZE = 0xffff_ffff

const PAD = Buffer.alloc(1)

/**
 * The header of a 16 kHz mono 16-bit PCM WAV whose data chunk holds `dataBytes`. An odd
 * data chunk is followed by a pad byte (RIFF chunks are word-aligned), which the RIFF size
 * counts and the data size does not.
 *
 * @internal
 */
export const header = (dataBytes: number): Buffer => {
  const b = Buffer.alloc(HEADER_BYTES)
  b.write("RIFF", 0, "ascii")
  b.writeUInt32LE(Math.min(MAX_SIZE, HEADER_BYTES - 8 + dataBytes + (dataBytes % 2)), 4)
  b.write("WAVE", 8, "ascii")
  b.write("fmt ", 12, "ascii")
  b.writeUInt32LE(16, 16)
  b.writeUInt16LE(1, 20) // PCM
  b.writeUInt16LE(1, 22) // mono
  b.writeUInt32LE(SAMPLE_RATE, 24)
  b.writeUInt32LE(BYTES_PER_SECOND, 28)
  b.writeUInt16LE(BYTES_PER_SAMPLE, 32)
  b.writeUInt16LE(BYTES_PER_SAMPLE * 8, 34)
  b.write("data", 36, "ascii")
  b.writeUInt32LE(Math.min(MAX_SIZE, dataBytes), 40)
  return b
}

/**
 * A complete WAV file of `audio`.
 *
 * @internal
 */
export const file = (audio: Uint8Array): Uint8Array =>
  Buffer.concat(audio.byteLength % 2 === 0 ? [header(audio.byteLength), audio] : [header(audio.byteLength), audio, PAD])

/**
 * The file name of a session's audio. A session id comes from the client's URL: anything
 * but letters, digits, `_`, `-` and inner dots is percent-encoded (a leading dot too), so
 * that no id names a path outside the directory, a hidden file, or another id's file. An
 * empty id is `(none)`, which no encoded id can be; a very long one is cut, with its hash.
 *
 * @internal
 */
export const fileName = (sessionId: string): string => {
  if (sessionId === "") return "(none).wav"
  const encoded = Array.from(Buffer.from(sessionId, "utf8"), (byte, i) => {
    const c = String.fromCharCode(byte)
    return /[A-Za-z0-9_-]/.test(c) || (c === "." && i > 0) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
  }).join("")
  if (encoded.length <= 200) return `${encoded}.wav`
  // `~` is never in an encoded id: a cut name cannot be another id's whole name
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(sessionId, "utf8")) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0
  return `${encoded.slice(0, 180)}~${hash.toString(16).padStart(8, "0")}.wav`
}

const writeAll = (fd: number, bytes: Uint8Array, position: number): void => {
  if (Fs.writeSync(fd, bytes, 0, bytes.byteLength, position) !== bytes.byteLength) {
    throw new Error(`wrote less than ${bytes.byteLength} bytes`)
  }
}

/**
 * One session's WAV file, growing as its audio arrives. Each append writes the samples
 * after those already there, then rewrites the header with the new sizes: a reader that
 * looks between the two sees the previous, smaller, complete file (the bytes past its data
 * chunk are not counted), so the file is a valid WAV at every moment and plays while it
 * grows. Writes are synchronous: the per-frame path of the simulator is, and two small
 * positioned writes per frame cost less than a fiber.
 *
 * The file is created (or emptied) at the first audio, left open while a connection of the
 * session is, and opened again when a reconnect brings more. A write that fails stops the
 * file where it is; `problem` says why.
 *
 * @internal
 */
export class GrowingWav {
  private fd: number | undefined = undefined
  private created = false
  private dataBytes = 0
  private failure: string | undefined = undefined

  constructor(readonly path: string) {}

  /** The file has been created: audio arrived. */
  get exists(): boolean {
    return this.created
  }

  /** Why the file stopped growing, if it did. */
  get problem(): string | undefined {
    return this.failure
  }

  unsafeAppend(bytes: Uint8Array): void {
    if (this.failure !== undefined || bytes.byteLength === 0) return
    try {
      if (this.fd === undefined) {
        this.fd = Fs.openSync(this.path, this.created ? "r+" : "w")
        this.created = true
      }
      const at = HEADER_BYTES + this.dataBytes
      writeAll(this.fd, bytes, at)
      this.dataBytes += bytes.byteLength
      // the next append writes over the pad byte
      if (this.dataBytes % 2 === 1) writeAll(this.fd, PAD, at + bytes.byteLength)
      writeAll(this.fd, header(this.dataBytes), 0)
    } catch (error) {
      this.failure = error instanceof Error ? error.message : String(error)
      this.unsafeClose()
    }
  }

  /** Closes the file until more audio arrives. */
  unsafeClose(): void {
    const fd = this.fd
    this.fd = undefined
    if (fd === undefined) return
    try {
      Fs.closeSync(fd)
    } catch {
      // a descriptor that cannot be closed has nothing left to lose
    }
  }
}
