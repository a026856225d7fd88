/**
 * What a container format brings to the decoder (its magic, its header, its decoder), and
 * the formats recognised only to be named in an error. The decoder knows nothing of WAV or
 * MPEG itself: it walks its list of codecs.
 */
import type * as Effect from "effect/Effect"
import type * as Audio from "../../Audio.js"
import type { AudioDecodeError } from "../../AvatarError.js"

/**
 * A container's decoder once its header has been read. Synchronous, so a chunk costs no
 * Effect; it throws an `AudioDecodeError` (run it inside `attempt`).
 */
export interface Decoder {
  /** Takes the file's bytes in order, from its first byte; pushes s16le mono at the target rate onto `out`. */
  readonly push: (chunk: Uint8Array, out: Array<Uint8Array>) => void
  /** At the end of the file: throws when it stopped short of what its header promised, else pushes the rest. */
  readonly end: (out: Array<Uint8Array>) => void
  readonly close: () => void
}

export interface DecoderOptions {
  /** The output rate in Hz. */
  readonly rate: number
  readonly quality: Audio.Quality
  /** Names the input in messages. */
  readonly source: string | undefined
}

export interface Codec {
  /** The `format` option that asks for it by name. */
  readonly format: Exclude<Audio.ContainerFormat, "auto">
  /** How a message names a file of this kind that was passed as raw PCM. */
  readonly what: string
  /** Whether the first bytes carry its magic. */
  readonly sniff: (head: Uint8Array) => boolean
  /**
   * Whether bytes that carry its magic are its header beyond doubt: raw PCM that starts so
   * is refused. Stricter than `sniff` where the magic is short enough to occur in audio.
   */
  readonly unmistakable: (head: Uint8Array) => boolean
  /** How many bytes to hold before probing, judging by the first ones. */
  readonly headBytes: (head: Uint8Array) => number
  /**
   * What the header says, or `undefined` when the bytes are not this container at all (it
   * was asked for by name). Throws an `AudioDecodeError` when they are but cannot be
   * played; with `fileSize`, also when the file is shorter than its header promises.
   */
  readonly probe: (
    head: Uint8Array,
    fileSize: number | undefined,
    source: string | undefined
  ) => Audio.SourceInfo | undefined
  /** A decoder for the file that starts with `head`, a head `probe` accepted. */
  readonly decoder: (head: Uint8Array, options: DecoderOptions) => Effect.Effect<Decoder>
}

/** Enough bytes for every magic recognised here: `RIFF....WAVE` and `FORM....AIFF` end at 12. */
export const MAGIC_BYTES = 12

export const ascii = (bytes: Uint8Array, at: number, length: number): string =>
  String.fromCharCode(...bytes.subarray(at, Math.min(at + length, bytes.byteLength)))

/** A format recognised by its magic so that an error can name it; none of these is decoded. */
interface Foreign {
  readonly what: string
  readonly reason: AudioDecodeError["reason"]
  readonly test: (b: Uint8Array) => boolean
}

const FOREIGN: ReadonlyArray<Foreign> = [
  // a WAV file, but one whose samples no reader here takes
  { what: "a big-endian WAV file (RIFX)", reason: "unsupported-codec", test: (b) => ascii(b, 0, 4) === "RIFX" },
  { what: "an Ogg file (Vorbis or Opus)", reason: "unknown-format", test: (b) => ascii(b, 0, 4) === "OggS" },
  { what: "a FLAC file", reason: "unknown-format", test: (b) => ascii(b, 0, 4) === "fLaC" },
  {
    what: "an AIFF file",
    reason: "unknown-format",
    test: (b) => ascii(b, 0, 4) === "FORM" && /^AIF[FC]$/.test(ascii(b, 8, 4))
  },
  { what: "an MP4/M4A file (AAC or ALAC)", reason: "unknown-format", test: (b) => ascii(b, 4, 4) === "ftyp" },
  {
    what: "AAC audio (ADTS)",
    reason: "unknown-format",
    test: (b) => b.byteLength >= 2 && b[0] === 0xff && (b[1]! & 0xf6) === 0xf0
  },
  { what: "a Matroska/WebM file", reason: "unknown-format", test: (b) => ascii(b, 0, 4) === "\u001aE\u00df\u00a3" },
  { what: "a Core Audio (CAF) file", reason: "unknown-format", test: (b) => ascii(b, 0, 4) === "caff" }
]

/** The format that is not decoded here whose magic starts `head`, if one does. */
export const foreign = (head: Uint8Array): Omit<Foreign, "test"> | undefined => FOREIGN.find((f) => f.test(head))

/** The first bytes as hex, for an error message. */
export const hexHead = (b: Uint8Array, n = 8): string =>
  Array.from(b.subarray(0, n), (x) => x.toString(16).padStart(2, "0")).join(" ")
