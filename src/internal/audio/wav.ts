/**
 * WAV as a codec: a streaming RIFF/WAVE reader that walks the chunks as bytes arrive, keeps
 * only headers in memory, and hands out the `data` chunk's bytes as they come, so a
 * one-hour file is never held whole. It understands PCM (8, 16, 24, 32-bit), IEEE float
 * (32, 64-bit), WAVE_FORMAT_EXTENSIBLE around either, and RF64; it names anything else.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Audio from "../../Audio.js"
import type { AudioDecodeError } from "../../AvatarError.js"
import * as Codec from "./codec.js"
import * as Pcm from "./pcm.js"

/** A RIFF/WAVE header, or RF64 (the same with 64-bit sizes, for files over 4 GiB). */
export const isWavHeader = (b: Uint8Array): boolean => {
  const riff = Codec.ascii(b, 0, 4)
  return (riff === "RIFF" || riff === "RF64") && Codec.ascii(b, 8, 4) === "WAVE"
}

export interface WavFormat {
  readonly sampleRate: number
  readonly channels: number
  readonly encoding: Audio.Encoding
  readonly bitsPerSample: number
}

/** WAVE format tags a reader may meet, for naming the ones we do not decode. */
const CODEC_NAMES: Record<number, string> = {
  2: "Microsoft ADPCM",
  6: "A-law",
  7: "µ-law",
  17: "IMA ADPCM",
  49: "GSM 6.10",
  80: "MPEG audio",
  85: "MP3",
  255: "AAC",
  8192: "AC-3",
  61868: "FLAC"
}

const tag = (b: Uint8Array, at: number) => String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!)

const frameBytesOf = (channels: number, bitsPerSample: number) => (channels * bitsPerSample) / 8

const bytesPerSecond = (f: WavFormat) => f.sampleRate * frameBytesOf(f.channels, f.bitsPerSample)

const truncatedData = (declared: number, available: number, f: WavFormat, source: string | undefined) =>
  Pcm.decodeError(
    "truncated",
    `the data chunk declares ${declared} bytes (${(declared / bytesPerSecond(f)).toFixed(2)} s) but the file ends after ${available} (${(available / bytesPerSecond(f)).toFixed(2)} s)`,
    source
  )

const MAX_FMT_BYTES = 1024

/**
 * The data sizes that mean "unknown, read to the end": 0 and 0xFFFFFFFF from streaming
 * writers, 0x7FFFF000 from sox and espeak-ng writing to a pipe (the largest size a signed
 * 32-bit RIFF length holds, rounded down to a page), and anything above it, which no real
 * 16-bit file of this kind reaches (18 hours at 16 kHz mono).
 */
const unknownLength = (size: number) => size === 0 || size >= 0x7ffff000

type State =
  | { readonly _tag: "riff" }
  | { readonly _tag: "header" }
  | { readonly _tag: "fmt"; readonly size: number }
  | { readonly _tag: "skip"; remaining: number }
  | { readonly _tag: "data"; remaining: number }
  | { readonly _tag: "done" }

export class WavReader {
  format: WavFormat | undefined
  /** The `data` chunk's declared size in bytes, or `undefined` when it runs to the end of the file. */
  declaredDataBytes: number | undefined
  /** Where the audio starts in the file. */
  dataOffset: number | undefined
  /** Bytes of audio handed out so far. */
  dataBytes = 0

  private state: State = { _tag: "riff" }
  private head = new Uint8Array(0)
  private offset = 0
  private rf64 = false

  constructor(readonly source: string | undefined) {}

  private fail(reason: AudioDecodeError["reason"], message: string): never {
    throw Pcm.decodeError(reason, message, this.source)
  }

  /** Takes bytes of the file; pushes the audio among them onto `out`. Throws an `AudioDecodeError`. */
  push(chunk: Uint8Array, out: Array<Uint8Array>): void {
    let at = 0
    while (at < chunk.byteLength) {
      const state = this.state
      switch (state._tag) {
        case "done":
          this.offset += chunk.byteLength - at
          return
        case "skip": {
          const n = Math.min(state.remaining, chunk.byteLength - at)
          state.remaining -= n
          at += n
          this.offset += n
          if (state.remaining === 0) this.state = { _tag: "header" }
          break
        }
        case "data": {
          const n = Math.min(state.remaining, chunk.byteLength - at)
          if (n > 0) out.push(chunk.subarray(at, at + n))
          state.remaining -= n
          this.dataBytes += n
          at += n
          this.offset += n
          if (state.remaining === 0) this.state = { _tag: "done" }
          break
        }
        default: {
          const need = state._tag === "riff" ? 12 : state._tag === "header" ? 8 : state.size
          const take = Math.min(need - this.head.byteLength, chunk.byteLength - at)
          const head = new Uint8Array(this.head.byteLength + take)
          head.set(this.head, 0)
          head.set(chunk.subarray(at, at + take), this.head.byteLength)
          this.head = head
          at += take
          this.offset += take
          if (head.byteLength === need) {
            this.head = new Uint8Array(0)
            this.onHeader(state, head)
          }
        }
      }
    }
  }

  private onHeader(state: State, b: Uint8Array): void {
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
    switch (state._tag) {
      case "riff": {
        const riff = tag(b, 0)
        if ((riff !== "RIFF" && riff !== "RF64") || tag(b, 8) !== "WAVE") {
          this.fail("malformed", "not a RIFF/WAVE file (no RIFF....WAVE header)")
        }
        this.rf64 = riff === "RF64"
        this.state = { _tag: "header" }
        return
      }
      case "header": {
        const id = tag(b, 0)
        const size = view.getUint32(4, true)
        if (id === "fmt ") {
          if (size < 16 || size > MAX_FMT_BYTES) {
            this.fail("malformed", `the fmt chunk is ${size} bytes; a WAVE fmt chunk is 16 to 40`)
          }
          this.state = { _tag: "fmt", size: size + (size % 2) }
        } else if (id === "data") {
          if (this.format === undefined) this.fail("malformed", "the data chunk comes before the fmt chunk")
          this.dataOffset = this.offset
          // a writer that does not know the length yet (a pipe) leaves a marker: read to the end;
          // RF64 keeps the real size in ds64, so read that to the end too
          const open = unknownLength(size) || this.rf64
          this.declaredDataBytes = open ? undefined : size
          this.state = { _tag: "data", remaining: open ? Number.POSITIVE_INFINITY : size }
        } else {
          this.state = { _tag: "skip", remaining: size + (size % 2) }
          if (size === 0) this.state = { _tag: "header" }
        }
        return
      }
      case "fmt": {
        this.format = this.parseFormat(view)
        this.state = { _tag: "header" }
        return
      }
      default:
        return
    }
  }

  private parseFormat(view: DataView): WavFormat {
    let formatTag = view.getUint16(0, true)
    const channels = view.getUint16(2, true)
    const sampleRate = view.getUint32(4, true)
    const blockAlign = view.getUint16(12, true)
    const bitsPerSample = view.getUint16(14, true)
    if (formatTag === 0xfffe) {
      // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID
      if (view.byteLength < 40) this.fail("malformed", "an extensible fmt chunk shorter than 40 bytes")
      formatTag = view.getUint16(24, true)
    }
    if (formatTag !== 1 && formatTag !== 3) {
      const name = CODEC_NAMES[formatTag]
      this.fail(
        "unsupported-codec",
        `the WAV file holds ${name ?? "compressed"} audio (format tag 0x${formatTag.toString(16).padStart(4, "0")}); only PCM and IEEE float WAV are decoded. Convert it, e.g. \`ffmpeg -i in.wav -c:a pcm_s16le out.wav\`.`
      )
    }
    if (channels === 0) this.fail("malformed", "the fmt chunk says 0 channels")
    if (sampleRate < Pcm.MIN_RATE || sampleRate > Pcm.MAX_RATE) {
      this.fail(
        "malformed",
        `the fmt chunk says ${sampleRate} Hz; a sample rate from ${Pcm.MIN_RATE.toLocaleString("en-US")} to ${Pcm.MAX_RATE.toLocaleString("en-US")} Hz is expected`
      )
    }
    const encoding: Audio.Encoding | undefined =
      formatTag === 3
        ? bitsPerSample === 32
          ? "f32le"
          : bitsPerSample === 64
            ? "f64le"
            : undefined
        : bitsPerSample === 8
          ? "u8"
          : bitsPerSample === 16
            ? "s16le"
            : bitsPerSample === 24
              ? "s24le"
              : bitsPerSample === 32
                ? "s32le"
                : undefined
    if (encoding === undefined) {
      this.fail(
        "unsupported-codec",
        `${bitsPerSample}-bit ${formatTag === 3 ? "float" : "integer"} samples are not decoded; PCM 8, 16, 24 or 32-bit and float 32 or 64-bit are`
      )
    }
    if (blockAlign !== frameBytesOf(channels, bitsPerSample)) {
      this.fail(
        "malformed",
        `the fmt chunk says ${blockAlign} bytes per sample frame, but ${channels} channels of ${bitsPerSample} bits take ${frameBytesOf(channels, bitsPerSample)}`
      )
    }
    return { sampleRate, channels, encoding, bitsPerSample }
  }

  /** At the end of the file: throws when the file stopped before the audio its header promised. */
  end(): void {
    const state = this.state
    if (this.format === undefined) {
      this.fail(
        state._tag === "riff" ? "truncated" : "malformed",
        state._tag === "riff" ? "the file ends inside its RIFF header" : "no fmt chunk before the end of the file"
      )
    }
    if (this.dataOffset === undefined) this.fail("truncated", "the file ends before its audio data (no data chunk)")
    if (state._tag === "data" && Number.isFinite(state.remaining) && state.remaining > 0) {
      // a finite remainder means the header declared the size
      throw truncatedData(this.declaredDataBytes!, this.dataBytes, this.format, this.source)
    }
  }
}

const codecName = (encoding: Audio.Encoding) =>
  encoding === "f32le"
    ? "float 32-bit"
    : encoding === "f64le"
      ? "float 64-bit"
      : `PCM ${encoding === "u8" ? 8 : Number.parseInt(encoding.slice(1), 10)}-bit`

const probe = (
  head: Uint8Array,
  fileSize: number | undefined,
  source: string | undefined
): Audio.SourceInfo | undefined => {
  if (!isWavHeader(head)) return undefined
  const reader = new WavReader(source)
  reader.push(head, [])
  if (fileSize !== undefined && head.byteLength >= fileSize) reader.end()
  const f = reader.format
  if (f === undefined) throw Pcm.decodeError("malformed", "no fmt chunk in the first 64 KiB", source)
  const header = {
    container: "wav",
    codec: codecName(f.encoding),
    sampleRate: f.sampleRate,
    channels: f.channels
  } as const
  // the audio starts beyond the bytes read (a large metadata chunk first): no duration yet
  if (reader.dataOffset === undefined) return { ...header, durationSeconds: Option.none(), durationExact: false }
  const available = fileSize === undefined ? undefined : fileSize - reader.dataOffset
  if (reader.declaredDataBytes !== undefined && available !== undefined && available < reader.declaredDataBytes) {
    throw truncatedData(reader.declaredDataBytes, available, f, source)
  }
  const bytes = reader.declaredDataBytes ?? available
  return {
    ...header,
    durationSeconds:
      bytes === undefined
        ? Option.none()
        : Option.some(Math.floor(bytes / frameBytesOf(f.channels, f.bitsPerSample)) / f.sampleRate),
    durationExact: bytes !== undefined
  }
}

/** The `data` chunk's samples, mixed to mono and resampled, as the reader hands them out. */
class WavDecoder implements Codec.Decoder {
  private readonly reader: WavReader

  private constructor(
    private readonly samples: Pcm.SampleReader,
    private readonly encoder: Pcm.MonoEncoder,
    private readonly source: string | undefined
  ) {
    this.reader = new WavReader(source)
  }

  static make(head: Uint8Array, options: Codec.DecoderOptions): Effect.Effect<Codec.Decoder> {
    return Effect.suspend(() => {
      // a head that was probed holds the fmt chunk: the format is known before any audio
      const probed = new WavReader(options.source)
      probed.push(head, [])
      const f = probed.format!
      return Effect.map(
        Pcm.MonoEncoder.make(f.sampleRate, options.rate, options.quality),
        (encoder) => new WavDecoder(new Pcm.SampleReader(f.encoding, f.channels), encoder, options.source)
      )
    })
  }

  push(chunk: Uint8Array, out: Array<Uint8Array>): void {
    const data: Array<Uint8Array> = []
    this.reader.push(chunk, data)
    for (const piece of data) out.push(this.encoder.push(this.samples.push(piece)))
  }

  end(out: Array<Uint8Array>): void {
    this.reader.end()
    if (this.samples.pending > 0) {
      throw Pcm.decodeError(
        "truncated",
        `the audio ends in the middle of a sample frame (${this.samples.pending} of ${this.samples.frameBytes} bytes)`,
        this.source
      )
    }
    out.push(this.encoder.end())
  }

  close(): void {
    this.encoder.close()
  }
}

export const codec: Codec.Codec = {
  format: "wav",
  what: "a WAV file (RIFF/WAVE header)",
  sniff: isWavHeader,
  unmistakable: isWavHeader,
  // the RIFF header, fmt and the small chunks writers put before data
  headBytes: () => 8192,
  probe,
  decoder: WavDecoder.make
}
