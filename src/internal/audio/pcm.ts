/**
 * The synchronous parts of audio conversion: the avatar's format, samples in any PCM
 * encoding to mono floats, band-limited resampling (libsamplerate), floats to 16-bit PCM.
 * Every class keeps what a chunk boundary cut in half (a partial sample frame, the
 * resampler's filter state), so a stream converted in pieces equals the same stream
 * converted whole.
 */
// a webpack UMD bundle: Node sees no named exports in it, only the default (module.exports)
import LibSampleRate from "@alexanderolsen/libsamplerate-js"
import * as Effect from "effect/Effect"
import type * as Audio from "../../Audio.js"
import { AudioDecodeError } from "../../AvatarError.js"

export type Encoding = Audio.Encoding

/** What the avatar takes: s16le mono at 16 kHz. */
export const SAMPLE_RATE = 16_000
export const BYTES_PER_SAMPLE = 2
export const BYTES_PER_SECOND = SAMPLE_RATE * BYTES_PER_SAMPLE

export const ENCODINGS: ReadonlyArray<Encoding> = ["u8", "s8", "s16le", "s24le", "s32le", "f32le", "f64le"]

export const bytesPerSample = (encoding: Encoding): number => {
  switch (encoding) {
    case "u8":
    case "s8":
      return 1
    case "s16le":
      return 2
    case "s24le":
      return 3
    case "s32le":
    case "f32le":
      return 4
    case "f64le":
      return 8
  }
}

/** The sample rates taken in, from a WAV header or as an option. */
export const MIN_RATE = 1000
export const MAX_RATE = 384_000

const converterType = (quality: Audio.Quality) =>
  quality === "best"
    ? LibSampleRate.ConverterType.SRC_SINC_BEST_QUALITY
    : quality === "fastest"
      ? LibSampleRate.ConverterType.SRC_SINC_FASTEST
      : LibSampleRate.ConverterType.SRC_SINC_MEDIUM_QUALITY

const readSample = (view: DataView, at: number, encoding: Encoding): number => {
  switch (encoding) {
    case "u8":
      return (view.getUint8(at) - 128) / 128
    case "s8":
      return view.getInt8(at) / 128
    case "s16le":
      return view.getInt16(at, true) / 32768
    case "s24le":
      // the high byte signed, the two low bytes unsigned
      return ((view.getInt8(at + 2) << 16) | view.getUint16(at, true)) / 8388608
    case "s32le":
      return view.getInt32(at, true) / 2147483648
    case "f32le":
      return view.getFloat32(at, true)
    case "f64le":
      return view.getFloat64(at, true)
  }
}

/**
 * Interleaved PCM bytes in, mono floats out (the mean of the channels). Bytes that do not
 * make a whole sample frame (one sample of every channel) wait for the next chunk.
 */
export class SampleReader {
  readonly frameBytes: number
  private readonly sampleBytes: number
  private readonly carry: Uint8Array
  private carryLength = 0
  /** Bytes taken in all. */
  total = 0

  constructor(
    readonly encoding: Encoding,
    readonly channels: number
  ) {
    this.sampleBytes = bytesPerSample(encoding)
    this.frameBytes = this.sampleBytes * channels
    this.carry = new Uint8Array(this.frameBytes)
  }

  /** Bytes held back because they do not fill a sample frame. */
  get pending(): number {
    return this.carryLength
  }

  push(chunk: Uint8Array): Float32Array {
    this.total += chunk.byteLength
    const bytes = this.afterCarry(chunk)
    const frames = Math.floor(bytes.byteLength / this.frameBytes)
    const rest = bytes.subarray(frames * this.frameBytes)
    this.carry.set(rest, 0)
    this.carryLength = rest.byteLength
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    return this.channels === 1
      ? readMono(view, frames, this.encoding, this.frameBytes)
      : readMean(view, frames, this.encoding, this.sampleBytes, this.channels)
  }

  private afterCarry(chunk: Uint8Array): Uint8Array {
    if (this.carryLength === 0) return chunk
    const bytes = new Uint8Array(this.carryLength + chunk.byteLength)
    bytes.set(this.carry.subarray(0, this.carryLength), 0)
    bytes.set(chunk, this.carryLength)
    return bytes
  }
}

const readMono = (view: DataView, frames: number, encoding: Encoding, frameBytes: number): Float32Array => {
  const out = new Float32Array(frames)
  for (let i = 0; i < frames; i++) out[i] = readSample(view, i * frameBytes, encoding)
  return out
}

/** The mean of each frame's channels; frames lie one after another, so one offset walks them all. */
const readMean = (
  view: DataView,
  frames: number,
  encoding: Encoding,
  sampleBytes: number,
  channels: number
): Float32Array => {
  const out = new Float32Array(frames)
  const frameBytes = sampleBytes * channels
  for (let i = 0, at = 0; i < frames; i++) {
    const end = at + frameBytes
    let sum = 0
    for (; at < end; at += sampleBytes) sum += readSample(view, at, encoding)
    out[i] = sum / channels
  }
  return out
}

/** Interleaved floats in, their mean per frame out; a partial frame waits for the next chunk. */
export class FloatMixer {
  private readonly carry: Float32Array
  private carryLength = 0

  constructor(readonly channels: number) {
    this.carry = new Float32Array(channels)
  }

  push(chunk: Float32Array): Float32Array {
    const { channels } = this
    if (channels === 1) return chunk
    const input = this.afterCarry(chunk)
    const frames = Math.floor(input.length / channels)
    const rest = input.subarray(frames * channels)
    this.carry.set(rest, 0)
    this.carryLength = rest.length
    const out = new Float32Array(frames)
    for (let i = 0, at = 0; i < frames; i++) {
      const end = at + channels
      let sum = 0
      for (; at < end; at++) sum += input[at]!
      out[i] = sum / channels
    }
    return out
  }

  private afterCarry(chunk: Float32Array): Float32Array {
    if (this.carryLength === 0) return chunk
    const input = new Float32Array(this.carryLength + chunk.length)
    input.set(this.carry.subarray(0, this.carryLength), 0)
    input.set(chunk, this.carryLength)
    return input
  }
}

/** The mean of planar channels (as a decoder hands them out). */
export const mixPlanar = (channels: ReadonlyArray<Float32Array>, length: number): Float32Array => {
  if (channels.length === 1) return channels[0]!.subarray(0, length)
  const out = new Float32Array(length)
  for (const data of channels) for (let i = 0; i < length; i++) out[i]! += data[i]
  const n = channels.length
  for (let i = 0; i < length; i++) out[i]! /= n
  return out
}

/**
 * libsamplerate's `full` API, which keeps its filter state across calls, so chunk
 * boundaries do not exist in the output. At the end the filter is drained with silence and
 * the output cut to `round(input × to / from)` samples, so durations come out exact.
 */
export class Resampler {
  private inFrames = 0
  private outFrames = 0

  private constructor(
    private readonly src: Awaited<ReturnType<typeof LibSampleRate.create>> | undefined,
    readonly from: number,
    readonly to: number
  ) {}

  static make(from: number, to: number, quality: Audio.Quality): Effect.Effect<Resampler> {
    if (from === to) return Effect.succeed(new Resampler(undefined, from, to))
    return Effect.map(
      Effect.promise(() => LibSampleRate.create(1, from, to, { converterType: converterType(quality) })),
      (src) => new Resampler(src, from, to)
    )
  }

  push(input: Float32Array): Float32Array {
    this.inFrames += input.length
    if (this.src === undefined || input.length === 0) {
      this.outFrames += this.src === undefined ? input.length : 0
      return input
    }
    // `full` hands back a view of its own buffer on some paths: copy before the next call
    const out = Float32Array.from(this.src.full(input))
    this.outFrames += out.length
    return out
  }

  end(): Float32Array {
    if (this.src === undefined) return new Float32Array(0)
    const expected = Math.round((this.inFrames * this.to) / this.from)
    const parts: Array<Float32Array> = []
    let missing = expected - this.outFrames
    const silence = new Float32Array(1024)
    // the filter holds well under a second of input; the bound only guards against a stuck converter
    for (let round = 0; missing > 0 && round < 1000; round++) {
      const out = this.src.full(silence)
      const take = Math.min(out.length, missing)
      if (take > 0) parts.push(Float32Array.from(out.subarray(0, take)))
      missing -= take
    }
    this.outFrames = expected
    return concatFloats(parts)
  }

  close(): void {
    if (this.src !== undefined && !this.src.isDestroyed) this.src.destroy()
  }
}

/** The bytes of `parts`, one after another, in a new array. */
export const concatBytes = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

export const concatFloats = (parts: ReadonlyArray<Float32Array>): Float32Array => {
  if (parts.length === 1) return parts[0]!
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Floats in [-1, 1) to s16le, rounded and clipped; NaN becomes silence. */
export const toS16le = (samples: Float32Array): Uint8Array => {
  const out = new Uint8Array(samples.length * BYTES_PER_SAMPLE)
  const view = new DataView(out.buffer)
  for (let i = 0; i < samples.length; i++) {
    const v = Math.round(samples[i]! * 32768)
    view.setInt16(i * BYTES_PER_SAMPLE, v > 32767 ? 32767 : v < -32768 ? -32768 : Number.isNaN(v) ? 0 : v, true)
  }
  return out
}

/** Mono floats at some rate in, s16le at `to` out. */
export class MonoEncoder {
  constructor(readonly resampler: Resampler) {}

  static make(from: number, to: number, quality: Audio.Quality): Effect.Effect<MonoEncoder> {
    return Effect.map(Resampler.make(from, to, quality), (r) => new MonoEncoder(r))
  }

  push(mono: Float32Array): Uint8Array {
    return toS16le(this.resampler.push(mono))
  }

  end(): Uint8Array {
    return toS16le(this.resampler.end())
  }

  close(): void {
    this.resampler.close()
  }
}

export const decodeError = (
  reason: AudioDecodeError["reason"],
  message: string,
  source: string | undefined
): AudioDecodeError =>
  new AudioDecodeError(
    source === undefined ? { reason, message } : { reason, message: `${source}: ${message}`, source }
  )
