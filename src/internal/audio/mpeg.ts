/**
 * MPEG audio (MP3, and MP1/MP2) as a codec: decoding is mpg123's, compiled to WebAssembly
 * (`mpg123-decoder`); what is here only reads headers: where the audio starts after an ID3
 * tag, the first frame's rate and channels, and the Xing/Info tag that LAME and FFmpeg
 * write, which gives the frame count (the exact duration) and the stream's size (so a
 * truncated file is recognised).
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Mpg123 from "mpg123-decoder"
import type * as Audio from "../../Audio.js"
import type * as Codec from "./codec.js"
import * as Pcm from "./pcm.js"

const BITRATES_V1: Record<number, ReadonlyArray<number>> = {
  1: [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  2: [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  3: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
}
const BITRATES_V2: Record<number, ReadonlyArray<number>> = {
  1: [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
  2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  3: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
}
const RATES: Record<number, ReadonlyArray<number>> = {
  3: [44100, 48000, 32000], // MPEG 1
  2: [22050, 24000, 16000], // MPEG 2
  0: [11025, 12000, 8000] // MPEG 2.5
}

export interface FrameHeader {
  readonly version: 1 | 2 | 2.5
  readonly layer: 1 | 2 | 3
  readonly sampleRate: number
  readonly channels: 1 | 2
  readonly bitrateKbps: number
  readonly frameBytes: number
  readonly samplesPerFrame: number
}

/** A plausible MPEG audio frame header at `at` (sync, version, layer, bitrate and rate indexes). */
export const isMpegHeader = (b: Uint8Array, at: number): boolean =>
  at + 4 <= b.byteLength &&
  b[at] === 0xff &&
  (b[at + 1]! & 0xe0) === 0xe0 &&
  (b[at + 1]! & 0x18) !== 0x08 && // version 01 is reserved
  (b[at + 1]! & 0x06) !== 0x00 && // layer 00 is reserved (and is AAC's ADTS)
  (b[at + 2]! & 0xf0) !== 0xf0 && // bitrate index 15 is invalid
  (b[at + 2]! & 0x0c) !== 0x0c // sample rate index 3 is reserved

export const readFrameHeader = (b: Uint8Array, at: number): FrameHeader | undefined => {
  if (!isMpegHeader(b, at)) return undefined
  const versionBits = (b[at + 1]! >> 3) & 3
  const layer = (4 - ((b[at + 1]! >> 1) & 3)) as 1 | 2 | 3
  const bitrateIndex = b[at + 2]! >> 4
  const sampleRate = RATES[versionBits]![(b[at + 2]! >> 2) & 3]!
  const padding = (b[at + 2]! >> 1) & 1
  const channels = b[at + 3]! >> 6 === 3 ? 1 : 2
  const version = versionBits === 3 ? 1 : versionBits === 2 ? 2 : 2.5
  const bitrateKbps = (version === 1 ? BITRATES_V1 : BITRATES_V2)[layer]![bitrateIndex]!
  if (bitrateKbps === 0) return undefined // free format: no length to check against
  const samplesPerFrame = layer === 1 ? 384 : layer === 3 && version !== 1 ? 576 : 1152
  const frameBytes =
    layer === 1
      ? (Math.floor((12 * bitrateKbps * 1000) / sampleRate) + padding) * 4
      : Math.floor(((samplesPerFrame / 8) * bitrateKbps * 1000) / sampleRate) + padding
  return { version, layer, sampleRate, channels, bitrateKbps, frameBytes, samplesPerFrame }
}

const hasId3 = (b: Uint8Array) => b[0] === 0x49 && b[1] === 0x44 && b[2] === 0x33 // "ID3"

/** An ID3 tag or a frame header at the very start. */
const sniff = (b: Uint8Array): boolean => hasId3(b) || isMpegHeader(b, 0)

/** The size of an ID3v2 tag at the start, or 0. */
export const id3Size = (b: Uint8Array): number => {
  if (b.byteLength < 10 || !hasId3(b)) return 0
  const size = ((b[6]! & 0x7f) << 21) | ((b[7]! & 0x7f) << 14) | ((b[8]! & 0x7f) << 7) | (b[9]! & 0x7f)
  const footer = (b[5]! & 0x10) !== 0 ? 10 : 0
  return 10 + size + footer
}

export interface MpegInfo {
  readonly header: FrameHeader
  /** Where the first frame starts. */
  readonly audioOffset: number
  /** Decoded samples per channel, when a Xing/Info tag says (gapless: encoder delay and padding removed). */
  readonly samples: number | undefined
  /** Bytes of MPEG data from the first frame on, when a Xing/Info tag says. */
  readonly streamBytes: number | undefined
  /** A Xing tag (rather than Info): the bitrate varies from frame to frame. */
  readonly vbr: boolean
}

/**
 * Reads the first frame (it must be followed by a second one where the bytes reach it, so
 * that random data is not taken for MPEG) and its Xing/Info tag. `undefined` when the bytes
 * hold no frame where one should start.
 */
export const firstFrame = (b: Uint8Array): MpegInfo | undefined => {
  const start = id3Size(b)
  // tolerate a little junk between the tag and the first frame, as players do
  for (let at = start; at < Math.min(b.byteLength - 4, start + 4096); at++) {
    const header = readFrameHeader(b, at)
    if (header === undefined) continue
    const next = at + header.frameBytes
    if (next + 4 <= b.byteLength && readFrameHeader(b, next) === undefined) continue
    return { header, audioOffset: at, ...xingTag(b, at, header) }
  }
  return undefined
}

const xingTag = (
  b: Uint8Array,
  at: number,
  h: FrameHeader
): { samples: number | undefined; streamBytes: number | undefined; vbr: boolean } => {
  const sideInfo = h.version === 1 ? (h.channels === 2 ? 32 : 17) : h.channels === 2 ? 17 : 9
  const x = at + 4 + sideInfo
  const none = { samples: undefined, streamBytes: undefined, vbr: false }
  if (x + 16 > b.byteLength) return none
  const id = String.fromCharCode(b[x]!, b[x + 1]!, b[x + 2]!, b[x + 3]!)
  if (id !== "Xing" && id !== "Info") return none
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const flags = view.getUint32(x + 4, false)
  // the optional fields follow the flags in this order, each present only when its bit is set
  const framesAt = x + 8
  const bytesAt = framesAt + (flags & 1 ? 4 : 0)
  const extensionAt = bytesAt + (flags & 2 ? 4 : 0) + (flags & 4 ? 100 : 0) + (flags & 8 ? 4 : 0)
  const frames = flags & 1 ? view.getUint32(framesAt, false) : undefined
  const streamBytes = flags & 2 ? view.getUint32(bytesAt, false) : undefined
  // the tag frame itself holds no audio
  const samples =
    frames === undefined ? undefined : Math.max(0, frames * h.samplesPerFrame - encoderGap(b, extensionAt))
  return { samples, streamBytes, vbr: id === "Xing" }
}

/** The LAME extension (also written by FFmpeg): encoder delay plus padding, 12 bits each; 0 without one. */
const encoderGap = (b: Uint8Array, at: number): number => {
  if (at + 24 > b.byteLength || !/^(LAME|Lavc|Lavf|GOGO)/.test(String.fromCharCode(...b.subarray(at, at + 4)))) {
    return 0
  }
  const delay = (b[at + 21]! << 4) | (b[at + 22]! >> 4)
  const padding = ((b[at + 22]! & 0x0f) << 8) | b[at + 23]!
  return delay + padding
}

const truncated = (streamBytes: number, have: number, info: MpegInfo, source: string | undefined) => {
  const h = info.header
  // seconds per byte: from the tag's own totals when it has them, else from the first frame's bitrate
  const perByte = info.samples !== undefined ? info.samples / h.sampleRate / streamBytes : 8 / (h.bitrateKbps * 1000)
  return Pcm.decodeError(
    "truncated",
    `the MP3's Info tag says ${streamBytes} bytes of audio (${(streamBytes * perByte).toFixed(2)} s) but the file holds ${have} (about ${(have * perByte).toFixed(2)} s)`,
    source
  )
}

const probe = (
  head: Uint8Array,
  fileSize: number | undefined,
  source: string | undefined
): Audio.SourceInfo | undefined => {
  const info = firstFrame(head)
  if (info === undefined) {
    // asked for by name, without the magic: these are not MPEG bytes at all
    if (!sniff(head)) return undefined
    const id3 = id3Size(head)
    throw Pcm.decodeError(
      id3 > 0 && head.byteLength < id3 ? "truncated" : "malformed",
      id3 > 0
        ? "it starts with an ID3 tag, but no MPEG audio frame follows it"
        : "it starts like an MPEG audio frame, but no valid frame sequence follows",
      source
    )
  }
  const h = info.header
  const have = fileSize === undefined ? undefined : fileSize - info.audioOffset
  if (info.streamBytes !== undefined && have !== undefined && have < info.streamBytes) {
    throw truncated(info.streamBytes, have, info, source)
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

/**
 * mpg123 behind a synchronous `push`: bytes of the file in, s16le mono out. Gapless
 * decoding is on, so the encoder's delay and padding do not lengthen the audio.
 */
class MpegDecoder implements Codec.Decoder {
  private bytes = 0
  private samples = 0

  private constructor(
    private readonly mpg123: Mpg123.MPEGDecoder,
    private readonly encoder: Pcm.MonoEncoder,
    private readonly info: MpegInfo,
    private readonly source: string | undefined
  ) {}

  static make(head: Uint8Array, options: Codec.DecoderOptions): Effect.Effect<Codec.Decoder> {
    return Effect.suspend(() => {
      // a head that was probed holds its first frame
      const info = firstFrame(head)!
      const mpg123 = new Mpg123.MPEGDecoder({ enableGapless: true })
      return Effect.promise(() => mpg123.ready).pipe(
        Effect.zipRight(Pcm.MonoEncoder.make(info.header.sampleRate, options.rate, options.quality)),
        Effect.map((encoder) => new MpegDecoder(mpg123, encoder, info, options.source))
      )
    })
  }

  push(chunk: Uint8Array, out: Array<Uint8Array>): void {
    this.bytes += chunk.byteLength
    const result = this.mpg123.decode(chunk)
    if (result.samplesDecoded === 0) return
    const rate = this.info.header.sampleRate
    if (result.sampleRate !== rate) {
      throw Pcm.decodeError(
        "malformed",
        `the sample rate changes from ${rate} to ${result.sampleRate} Hz in the middle of the stream (files joined together?); decode them one by one`,
        this.source
      )
    }
    this.samples += result.samplesDecoded
    out.push(this.encoder.push(Pcm.mixPlanar(result.channelData, result.samplesDecoded)))
  }

  end(out: Array<Uint8Array>): void {
    if (this.samples === 0)
      throw Pcm.decodeError("malformed", "no MPEG audio frame in it could be decoded", this.source)
    const have = this.bytes - this.info.audioOffset
    const { streamBytes } = this.info
    if (streamBytes !== undefined && have < streamBytes) throw truncated(streamBytes, have, this.info, this.source)
    out.push(this.encoder.end())
  }

  close(): void {
    this.encoder.close()
    this.mpg123.free()
  }
}

export const codec: Codec.Codec = {
  format: "mp3",
  what: "an MP3 file",
  sniff,
  // 0xFF and a few bits is a frame header by chance in one sample of many: only a tag, or
  // a frame that another frame follows, is a file
  unmistakable: (head) => id3Size(head) > 0 || firstFrame(head)?.audioOffset === 0,
  // an ID3 tag (it may hold cover art), then room for two frames
  headBytes: (head) => id3Size(head) + 8192,
  probe,
  decoder: MpegDecoder.make
}
