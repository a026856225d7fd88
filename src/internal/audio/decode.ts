/**
 * Containers (WAV, MPEG audio) to 16-bit mono PCM at a target rate, as a state machine
 * fed chunk by chunk. Only headers are buffered; audio goes through as it arrives.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { AudioDecodeError } from "../../AvatarError.js"
import * as Mpeg from "./mpeg.js"
import { decodeError, type Encoding, hexHead, MonoEncoder, type Quality, SampleReader, sniff } from "./pcm.js"
import { WavReader } from "./wav.js"

/** What a file holds, as far as its header tells. */
export interface SourceInfo {
  readonly container: "wav" | "mpeg"
  /** e.g. `PCM 24-bit`, `float 32-bit`, `MPEG-1 Layer III, 128 kbps` */
  readonly codec: string
  readonly sampleRate: number
  readonly channels: number
  /** How long it plays, when the header says (or lets it be estimated). */
  readonly durationSeconds: Option.Option<number>
  /** Whether `durationSeconds` is exact (a WAV data size, an MP3 Xing/Info frame count) or an estimate. */
  readonly durationExact: boolean
}

export type ContainerFormat = "auto" | "wav" | "mp3"

/** Runs `f`, turning a thrown `AudioDecodeError` into a failure; anything else is a defect. */
export const attempt = <A>(f: () => A): Effect.Effect<A, AudioDecodeError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(f())
    } catch (error) {
      if (error instanceof AudioDecodeError) return Effect.fail(error)
      throw error
    }
  })

const unknownFormat = (head: Uint8Array, source: string | undefined): AudioDecodeError => {
  const sniffed = sniff(head)
  if (sniffed._tag === "other") {
    return decodeError(
      sniffed._tag === "other" && sniffed.what.includes("RIFX") ? "unsupported-codec" : "unknown-format",
      `this is ${sniffed.what}; only WAV and MP3 (MPEG audio) are decoded. Convert it first, e.g. \`ffmpeg -i in -ar 16000 -ac 1 out.wav\`.`,
      source
    )
  }
  if (head.byteLength === 0) return decodeError("truncated", "the file is empty", source)
  const text = head.subarray(0, 64).every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127))
  return decodeError(
    "unknown-format",
    `neither WAV nor MP3: it starts with ${hexHead(head)}${text ? " (it looks like text)" : ""}. For raw PCM, say its format (\`Audio.fromPcm\`, or \`--format s16le --rate N\` on the command line).`,
    source
  )
}

const codecOfWav = (encoding: Encoding) =>
  encoding === "f32le"
    ? "float 32-bit"
    : encoding === "f64le"
      ? "float 64-bit"
      : `PCM ${encoding === "u8" ? 8 : Number.parseInt(encoding.slice(1), 10)}-bit`

const truncatedMpeg = (streamBytes: number, have: number, info: Mpeg.MpegInfo, source: string | undefined) => {
  const h = info.header
  // seconds per byte: from the tag's own totals when it has them, else from the first frame's bitrate
  const perByte = info.samples !== undefined ? info.samples / h.sampleRate / streamBytes : 8 / (h.bitrateKbps * 1000)
  return decodeError(
    "truncated",
    `the MP3's Info tag says ${streamBytes} bytes of audio (${(streamBytes * perByte).toFixed(2)} s) but the file holds ${have} (about ${(have * perByte).toFixed(2)} s)`,
    source
  )
}

/**
 * What a file's first bytes (and, when known, its size) say about it. Fails when the
 * header already shows the file cannot be played: an unknown format, a codec that is not
 * decoded, a size smaller than the header promises.
 */
export const probe = (
  head: Uint8Array,
  fileSize: number | undefined,
  source: string | undefined,
  format: ContainerFormat = "auto"
): Effect.Effect<SourceInfo, AudioDecodeError> =>
  attempt((): SourceInfo => {
    const sniffed = sniff(head)
    if (sniffed._tag === "wav" && format !== "mp3") {
      const reader = new WavReader(source)
      reader.push(head, [])
      const wholeFile = fileSize !== undefined && head.byteLength >= fileSize
      if (wholeFile) reader.end()
      const f = reader.format
      if (f === undefined || reader.dataOffset === undefined) {
        // the audio starts beyond the bytes read (a large metadata chunk first): no duration yet
        if (f === undefined) throw decodeError("malformed", "no fmt chunk in the first 64 KiB", source)
        return {
          container: "wav",
          codec: codecOfWav(f.encoding),
          sampleRate: f.sampleRate,
          channels: f.channels,
          durationSeconds: Option.none(),
          durationExact: false
        }
      }
      const frame = (f.channels * f.bitsPerSample) / 8
      const available = fileSize === undefined ? undefined : fileSize - reader.dataOffset
      if (reader.declaredDataBytes !== undefined && available !== undefined && available < reader.declaredDataBytes) {
        const rate = f.sampleRate * frame
        throw decodeError(
          "truncated",
          `the data chunk declares ${reader.declaredDataBytes} bytes (${(reader.declaredDataBytes / rate).toFixed(2)} s) but the file ends after ${available} (${(available / rate).toFixed(2)} s)`,
          source
        )
      }
      const bytes = reader.declaredDataBytes ?? available
      return {
        container: "wav",
        codec: codecOfWav(f.encoding),
        sampleRate: f.sampleRate,
        channels: f.channels,
        durationSeconds: bytes === undefined ? Option.none() : Option.some(Math.floor(bytes / frame) / f.sampleRate),
        durationExact: bytes !== undefined
      }
    }
    if ((sniffed._tag === "mpeg" && format !== "wav") || format === "mp3") {
      const info = Mpeg.probe(head)
      if (info === undefined) {
        if (format === "mp3" && sniffed._tag !== "mpeg") throw unknownFormat(head, source)
        throw decodeError(
          Mpeg.id3Size(head) > 0 && head.byteLength < Mpeg.id3Size(head) ? "truncated" : "malformed",
          Mpeg.id3Size(head) > 0
            ? "it starts with an ID3 tag, but no MPEG audio frame follows it"
            : "it starts like an MPEG audio frame, but no valid frame sequence follows",
          source
        )
      }
      const h = info.header
      const have = fileSize === undefined ? undefined : fileSize - info.audioOffset
      if (info.streamBytes !== undefined && have !== undefined && have < info.streamBytes) {
        throw truncatedMpeg(info.streamBytes, have, info, source)
      }
      const estimate = have === undefined ? undefined : (have / h.frameBytes) * (h.samplesPerFrame / h.sampleRate)
      return {
        container: "mpeg",
        codec: `MPEG-${h.version} Layer ${"I".repeat(h.layer)}, ${info.vbr ? "VBR" : `${h.bitrateKbps} kbps`}`,
        sampleRate: h.sampleRate,
        channels: h.channels,
        durationSeconds:
          info.samples !== undefined
            ? Option.some(info.samples / h.sampleRate)
            : estimate === undefined
              ? Option.none()
              : Option.some(estimate),
        durationExact: info.samples !== undefined
      }
    }
    throw unknownFormat(head, source)
  })

/** Bytes to look at before choosing a decoder: enough for an ID3 tag's size, then two frames. */
const wantedHead = (head: Uint8Array): number => (Mpeg.id3Size(head) > 0 ? Mpeg.id3Size(head) + 8192 : 8192)

/** A file's bytes in, s16le mono at `rate` out. */
export class ContainerDecoder {
  private buffered: Array<Uint8Array> = []
  private bufferedBytes = 0
  private started = false
  private total = 0
  private wav: WavReader | undefined
  private samples: SampleReader | undefined
  private mpeg: { readonly info: Mpeg.MpegInfo; readonly decoder: Mpeg.MpegDecoder } | undefined
  private encoder: MonoEncoder | undefined
  private closed = false

  constructor(
    readonly rate: number,
    readonly quality: Quality,
    readonly source: string | undefined,
    readonly format: ContainerFormat
  ) {}

  push(chunks: Iterable<Uint8Array>): Effect.Effect<Array<Uint8Array>, AudioDecodeError> {
    return Effect.suspend(() => {
      const pieces: Array<Uint8Array> = []
      for (const chunk of chunks) {
        this.total += chunk.byteLength
        pieces.push(chunk)
      }
      if (this.started) return this.feed(pieces)
      this.buffered.push(...pieces)
      this.bufferedBytes += pieces.reduce((n, p) => n + p.byteLength, 0)
      const head = this.head()
      return head.byteLength < wantedHead(head) ? Effect.succeed([]) : this.start()
    })
  }

  end(): Effect.Effect<Array<Uint8Array>, AudioDecodeError> {
    return Effect.gen(this, function* () {
      const out = this.started ? [] : yield* this.start()
      if (this.wav !== undefined) {
        const wav = this.wav
        yield* attempt(() => wav.end())
        if (this.samples !== undefined && this.samples.pending > 0) {
          return yield* Effect.fail(
            decodeError(
              "truncated",
              `the audio ends in the middle of a sample frame (${this.samples.pending} of ${this.samples.frameBytes} bytes)`,
              this.source
            )
          )
        }
      }
      if (this.mpeg !== undefined) {
        const { info, decoder } = this.mpeg
        if (decoder.samples === 0) {
          return yield* Effect.fail(decodeError("malformed", "no MPEG audio frame in it could be decoded", this.source))
        }
        const have = this.total - info.audioOffset
        if (info.streamBytes !== undefined && have < info.streamBytes) {
          return yield* Effect.fail(truncatedMpeg(info.streamBytes, have, info, this.source))
        }
      }
      if (this.encoder !== undefined) out.push(this.encoder.end())
      return out.filter((b) => b.byteLength > 0)
    })
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.encoder?.close()
    this.mpeg?.decoder.close()
  }

  private head(): Uint8Array {
    if (this.buffered.length !== 1) {
      const head = new Uint8Array(this.bufferedBytes)
      let at = 0
      for (const b of this.buffered) {
        head.set(b, at)
        at += b.byteLength
      }
      this.buffered = [head]
    }
    return this.buffered[0] ?? new Uint8Array(0)
  }

  private start(): Effect.Effect<Array<Uint8Array>, AudioDecodeError> {
    return Effect.gen(this, function* () {
      const head = this.head()
      this.buffered = []
      this.started = true
      const info = yield* probe(head, undefined, this.source, this.format)
      if (info.container === "wav") {
        this.wav = new WavReader(this.source)
      } else {
        const mpegInfo = Mpeg.probe(head)!
        const decoder = yield* Mpeg.MpegDecoder.make(info.sampleRate, this.source)
        this.mpeg = { info: mpegInfo, decoder }
        this.encoder = yield* MonoEncoder.make(info.sampleRate, this.rate, this.quality)
      }
      return yield* this.feed([head])
    })
  }

  private feed(chunks: ReadonlyArray<Uint8Array>): Effect.Effect<Array<Uint8Array>, AudioDecodeError> {
    return Effect.gen(this, function* () {
      const out: Array<Uint8Array> = []
      if (this.mpeg !== undefined) {
        const { decoder } = this.mpeg
        const encoder = this.encoder!
        for (const chunk of chunks) {
          const mono = yield* attempt(() => decoder.push(chunk))
          if (mono.length > 0) out.push(encoder.push(mono))
        }
        return out.filter((b) => b.byteLength > 0)
      }
      const wav = this.wav!
      for (const chunk of chunks) {
        const data: Array<Uint8Array> = []
        yield* attempt(() => wav.push(chunk, data))
        if (data.length === 0) continue
        if (this.encoder === undefined) {
          const f = wav.format!
          this.samples = new SampleReader(f.encoding, f.channels)
          this.encoder = yield* MonoEncoder.make(f.sampleRate, this.rate, this.quality)
        }
        for (const piece of data) out.push(this.encoder.push(this.samples!.push(piece)))
      }
      return out.filter((b) => b.byteLength > 0)
    })
  }
}
