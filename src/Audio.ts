/**
 * Audio for the avatar: PCM signed 16-bit little-endian, 16,000 Hz, mono (32 bytes a
 * millisecond). Framing into whole-sample frames of a fixed duration, and the checks that
 * keep data that is not raw PCM out of a session. Sources and conversions that produce
 * that format from what people have: WAV and MP3 files, raw PCM at any rate, channel count
 * and encoding, Float32 samples. All of them are Stream transformations that work on live
 * streams, and none of them needs Node (files need a `FileSystem` service).
 *
 * @since 0.1.0
 */

import type * as PlatformError from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { type AudioDecodeError, AudioStreamError, ConfigurationError } from "./AvatarError.js"
import * as Convert from "./internal/audio/convert.js"
import * as File from "./internal/audio/file.js"
import * as Pcm from "./internal/audio/pcm.js"
import * as Wav from "./internal/audio/wav.js"
import { Framer } from "./internal/dataplane/framer.js"

/**
 * The avatar's sample rate: 16,000 Hz.
 *
 * @since 0.1.0
 * @category constants
 */
export const SAMPLE_RATE = Pcm.SAMPLE_RATE

/**
 * The size of one sample: 16-bit PCM, mono.
 *
 * @since 0.1.0
 * @category constants
 */
export const BYTES_PER_SAMPLE = Pcm.BYTES_PER_SAMPLE

/**
 * A second of audio in bytes: 32,000.
 *
 * @since 0.1.0
 * @category constants
 */
export const BYTES_PER_SECOND = Pcm.BYTES_PER_SECOND

/**
 * The default frame duration: 40 ms, 1,280 bytes.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_FRAME_MS = 40

/**
 * The size in bytes of a frame of `frameMs` milliseconds.
 *
 * @since 0.1.0
 * @category framing
 */
export const frameBytes = (frameMs: number): number => Math.round((frameMs * SAMPLE_RATE) / 1000) * BYTES_PER_SAMPLE

/**
 * How long `bytes` of audio play, in milliseconds.
 *
 * @since 0.1.0
 * @category framing
 */
export const durationMs = (bytes: number): number => (bytes / BYTES_PER_SECOND) * 1000

/**
 * Checks a frame duration: a whole number of samples from 10 ms to 1 s.
 *
 * @since 0.1.0
 * @category framing
 */
export const validateFrameMs = (frameMs: number): Effect.Effect<number, ConfigurationError> =>
  Number.isFinite(frameMs) && frameMs >= 10 && frameMs <= 1000 && Number.isInteger((frameMs * SAMPLE_RATE) / 1000)
    ? Effect.succeed(frameMs)
    : Effect.fail(
        new ConfigurationError({
          option: "frameMs",
          message: `frameMs must be between 10 and 1000 and hold whole samples at 16 kHz (got ${frameMs}); 20 or 40 are usual`
        })
      )

/**
 * The error for a stream that ended in the middle of a sample.
 *
 * @since 0.1.0
 * @category errors
 */
export const strayByteError = (totalBytes: number): AudioStreamError =>
  new AudioStreamError({
    reason: "odd-length",
    message: `The audio ended in the middle of a sample: ${totalBytes} bytes is odd, and 16-bit PCM needs 2 bytes a sample. Every whole sample was sent; the last byte (offset ${totalBytes - 1}) was not.`
  })

/**
 * Whether bytes start with a RIFF/WAVE (or RF64) header: a WAV file handed over as raw PCM
 * would otherwise play its header as a click and, if it is not 16 kHz mono 16-bit, as noise.
 *
 * @since 0.1.0
 * @category validation
 */
export const looksLikeWav = (bytes: Uint8Array): boolean => Wav.isWavHeader(bytes)

/**
 * The error for WAV bytes passed where raw PCM is expected.
 *
 * @since 0.1.0
 * @category errors
 */
export const wavHeaderError = (): AudioStreamError =>
  new AudioStreamError({
    reason: "not-pcm",
    message:
      "The audio starts with a RIFF/WAVE header: this is a WAV file, not raw 16 kHz 16-bit mono PCM. Strip the header (or decode the file) before streaming it."
  })

/**
 * Cuts a byte stream into frames of `frameMs` (whole 16-bit samples each); the last,
 * shorter frame is flushed when the stream ends. Fails with an `AudioStreamError` after the
 * last whole sample when the input had an odd number of bytes.
 *
 * @since 0.1.0
 * @category framing
 */
export const frames =
  (frameMs: number = DEFAULT_FRAME_MS) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Uint8Array, E | AudioStreamError, R> =>
    Stream.suspend(() => {
      const framer = new Framer(frameBytes(frameMs))
      let total = 0
      const loop: Channel.Channel<
        Chunk.Chunk<Uint8Array>,
        Chunk.Chunk<Uint8Array>,
        E | AudioStreamError,
        E,
        unknown,
        unknown
      > = Channel.readWithCause({
        onInput: (input: Chunk.Chunk<Uint8Array>) => {
          const out: Array<Uint8Array> = []
          for (const chunk of input) {
            total += chunk.byteLength
            framer.push(chunk, out)
          }
          return out.length === 0 ? loop : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(out)), loop)
        },
        onFailure: Channel.failCause,
        onDone: () => {
          const { frame, strayByte } = framer.flush()
          const last = frame ? Channel.write(Chunk.of(frame)) : Channel.void
          return strayByte ? Channel.zipRight(last, Channel.fail(strayByteError(total))) : last
        }
      })
      return Stream.pipeThroughChannel(self, loop)
    })

// ---------------------------------------------------------------------------
// Sources and conversions
// ---------------------------------------------------------------------------

/**
 * How PCM samples are stored: integers little-endian (`u8` is unsigned offset binary, as
 * in 8-bit WAV), floats IEEE little-endian.
 *
 * @since 0.1.0
 * @category models
 */
export type Encoding = "u8" | "s8" | "s16le" | "s24le" | "s32le" | "f32le" | "f64le"

/**
 * Every {@link Encoding}.
 *
 * @since 0.1.0
 * @category constants
 */
export const ENCODINGS: ReadonlyArray<Encoding> = Pcm.ENCODINGS

/**
 * The resampler's setting, one of libsamplerate's sinc converters: `medium` (the default)
 * keeps 90 % of the band, `best` 97 %, `fastest` 80 % (libsamplerate documents a worst-case
 * SNR of 97 dB for each). On one core of a 2-core x86 machine, 44.1 kHz input converts about
 * 80 (`medium`), 20 (`best`) and 115 (`fastest`) times faster than real time.
 *
 * @since 0.1.0
 * @category models
 */
export type Quality = "best" | "medium" | "fastest"

/**
 * Raw PCM as it arrives: interleaved samples, `channels` (default 1) of them per frame,
 * stored as `encoding` (default `s16le`).
 *
 * @since 0.1.0
 * @category models
 */
export interface PcmFormat {
  readonly sampleRate: number
  readonly channels?: number | undefined
  readonly encoding?: Encoding | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ConvertOptions {
  /** Default `"medium"`. */
  readonly quality?: Quality | undefined
}

/**
 * What a file holds, as its header tells: container, codec, rate, channels, and how long it
 * plays (exact for WAV and for MP3 files with a Xing/Info tag, as LAME and FFmpeg write
 * them; estimated from the bitrate otherwise).
 *
 * @since 0.1.0
 * @category models
 */
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

/**
 * What a container stream is: `auto` (the default) tells WAV from MPEG audio by its first
 * bytes.
 *
 * @since 0.1.0
 * @category models
 */
export type ContainerFormat = "auto" | "wav" | "mp3"

/**
 * Converts raw PCM of any rate, channel count and encoding to what the avatar takes: 16 kHz
 * mono s16le. Usable on a live stream (a text-to-speech response that arrives in pieces):
 * the state cut by a chunk boundary (a partial sample frame, the resampler's filter) carries
 * to the next chunk, so a stream converted in pieces is the same as converted whole, and
 * chunk boundaries cannot click. Input that starts with a container header (WAV, MP3, Ogg…)
 * fails with an `AudioDecodeError` (`not-raw`); input that ends in the middle of a sample
 * frame fails (`truncated`) after everything before it was converted.
 *
 * @example
 * ```ts
 * // a text-to-speech API that answers with 24 kHz 16-bit mono PCM
 * declare const tts: Stream.Stream<Uint8Array>
 * const speech = tts.pipe(Audio.fromPcm({ sampleRate: 24_000 }))
 * ```
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromPcm: (
  format: PcmFormat & ConvertOptions
) => <E, R>(
  self: Stream.Stream<Uint8Array, E, R>
) => Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> = Convert.fromPcm

/**
 * Mixes interleaved s16le PCM of `channels` channels (default 2) down to mono (the mean of
 * the channels), at the same rate.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toMono: (
  channels?: number
) => <E, R>(
  self: Stream.Stream<Uint8Array, E, R>
) => Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> = Convert.toMono

/**
 * Resamples s16le mono PCM from `from` Hz to `to` Hz (default 16,000) with a band-limited
 * sinc filter (libsamplerate), keeping the filter's state across chunks. The output has
 * exactly `round(samples × to / from)` samples.
 *
 * @since 0.1.0
 * @category conversions
 */
export const resample: (
  options: { readonly from: number; readonly to?: number | undefined } & ConvertOptions
) => <E, R>(
  self: Stream.Stream<Uint8Array, E, R>
) => Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> = Convert.resample

/**
 * Converts Float32 samples in [-1, 1] (a Web Audio graph's output, a model's waveform),
 * interleaved when `channels` (default 1) is more than one, to 16 kHz mono s16le. Values
 * outside the range are clipped.
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromFloat32: (
  format: { readonly sampleRate: number; readonly channels?: number | undefined } & ConvertOptions
) => <E, R>(self: Stream.Stream<Float32Array, E, R>) => Stream.Stream<Uint8Array, E | ConfigurationError, R> =
  Convert.fromFloat32

/**
 * Decodes a WAV or MP3 file's bytes, as they arrive, to 16 kHz mono s16le. WAV: PCM 8, 16,
 * 24 and 32-bit, float 32 and 64-bit, any rate from 1 to 384 kHz, any channel count,
 * WAVE_FORMAT_EXTENSIBLE and RF64. MPEG audio (MP3, MP2, MP1) through mpg123, gapless.
 * Only headers are buffered. Fails with an `AudioDecodeError` that names the problem: an
 * unknown format (and what it looks like), an unsupported codec, a truncated file (after
 * the audio that was there), a malformed header. `source` names the input in messages.
 *
 * @since 0.1.0
 * @category sources
 */
export const decode: (
  options?: {
    readonly format?: ContainerFormat | undefined
    readonly source?: string | undefined
  } & ConvertOptions
) => <E, R>(
  self: Stream.Stream<Uint8Array, E, R>
) => Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> = Convert.decode

/**
 * Reads a file's header: what it holds and how long it plays. Fails when the header already
 * shows the file cannot be played (unknown format, unsupported codec, shorter than its
 * header promises).
 *
 * @since 0.1.0
 * @category sources
 */
export const probeFile: (
  path: string,
  options?: { readonly format?: ContainerFormat | undefined }
) => Effect.Effect<SourceInfo, AudioDecodeError | PlatformError.PlatformError, FileSystem.FileSystem> = File.probeFile

/**
 * A WAV or MP3 file as 16 kHz mono s16le, read and decoded in chunks (64 KiB at a time),
 * so a one-hour file is never whole in memory. The header is checked first: a file that is
 * not WAV or MP3, that uses a codec not decoded here, or that is shorter than its header
 * promises fails before any audio is produced. Needs a `FileSystem` (for Node:
 * `NodeFileSystem.layer` from `@effect/platform-node`, or `NodeAudio.fromFile`).
 *
 * @since 0.1.0
 * @category sources
 */
export const fromFile: (
  path: string,
  options?: { readonly format?: ContainerFormat | undefined } & ConvertOptions
) => Stream.Stream<
  Uint8Array,
  AudioDecodeError | ConfigurationError | PlatformError.PlatformError,
  FileSystem.FileSystem
> = File.fromFile
