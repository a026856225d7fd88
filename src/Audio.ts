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
import * as FileSystem from "@effect/platform/FileSystem"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { type AudioDecodeError, AudioStreamError, ConfigurationError } from "./AvatarError.js"
import * as Codec from "./internal/audio/codec.js"
import * as Decode from "./internal/audio/decode.js"
import * as Mpeg from "./internal/audio/mpeg.js"
import * as Pcm from "./internal/audio/pcm.js"
import * as Wav from "./internal/audio/wav.js"
import { Framer } from "./internal/dataplane/framer.js"

/**
 * @since 0.1.0
 * @category constants
 */
export const SAMPLE_RATE = 16_000

/**
 * @since 0.1.0
 * @category constants
 */
export const BYTES_PER_SAMPLE = 2

/**
 * @since 0.1.0
 * @category constants
 */
export const BYTES_PER_SECOND = SAMPLE_RATE * BYTES_PER_SAMPLE

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
export type Encoding = Pcm.Encoding

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
export type Quality = Pcm.Quality

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
export type SourceInfo = Decode.SourceInfo

/**
 * What a container stream is: `auto` (the default) tells WAV from MPEG audio by its first
 * bytes.
 *
 * @since 0.1.0
 * @category models
 */
export type ContainerFormat = Decode.ContainerFormat

const checkRate = (option: string, rate: number) =>
  Number.isInteger(rate) && rate >= Pcm.MIN_RATE && rate <= Pcm.MAX_RATE
    ? Effect.void
    : Effect.fail(
        new ConfigurationError({
          option,
          message: `${option} must be a whole number of Hz from ${Pcm.MIN_RATE} to ${Pcm.MAX_RATE} (got ${rate})`
        })
      )

const checkChannels = (channels: number) =>
  Number.isInteger(channels) && channels >= 1 && channels <= 32
    ? Effect.void
    : Effect.fail(
        new ConfigurationError({
          option: "channels",
          message: `channels must be a whole number from 1 to 32 (got ${channels})`
        })
      )

const checkEncoding = (encoding: string) =>
  (Pcm.ENCODINGS as ReadonlyArray<string>).includes(encoding)
    ? Effect.void
    : Effect.fail(
        new ConfigurationError({
          option: "encoding",
          message: `encoding must be one of ${Pcm.ENCODINGS.join(", ")} (got ${JSON.stringify(encoding)})`
        })
      )

const checkQuality = (quality: string) =>
  quality === "best" || quality === "medium" || quality === "fastest"
    ? Effect.void
    : Effect.fail(
        new ConfigurationError({
          option: "quality",
          message: `quality must be "best", "medium" or "fastest" (got ${JSON.stringify(quality)})`
        })
      )

/**
 * Runs a stateful converter over a stream: one `push` per chunk of elements, `end` once the
 * input is done, `close` however the stream ends.
 */
const convertWith =
  <In, E1, E2>(
    make: Effect.Effect<
      {
        readonly push: (input: Chunk.Chunk<In>) => Effect.Effect<Array<Uint8Array>, E2>
        readonly end: () => Effect.Effect<Array<Uint8Array>, E2>
        readonly close: () => void
      },
      E1
    >
  ) =>
  <E, R>(self: Stream.Stream<In, E, R>): Stream.Stream<Uint8Array, E | E1 | E2, R> =>
    Stream.unwrapScoped(
      Effect.map(
        Effect.acquireRelease(make, (converter) => Effect.sync(() => converter.close())),
        (converter) =>
          self.pipe(
            Stream.mapChunksEffect((chunk) => Effect.map(converter.push(chunk), Chunk.unsafeFromArray)),
            Stream.concat(Stream.fromIterableEffect(Effect.suspend(() => converter.end()))),
            Stream.filter((bytes) => bytes.byteLength > 0)
          )
      )
    )

/** Raw interleaved PCM to s16le mono at `to`; refuses a container header at the start. */
const pcmConverter = (
  format: { readonly sampleRate: number; readonly channels: number; readonly encoding: Encoding },
  to: number,
  quality: Quality,
  guard: boolean
) =>
  Effect.gen(function* () {
    yield* checkRate("sampleRate", format.sampleRate)
    yield* checkRate("to", to)
    yield* checkChannels(format.channels)
    yield* checkEncoding(format.encoding)
    yield* checkQuality(quality)
    const reader = new Pcm.SampleReader(format.encoding, format.channels)
    const encoder = yield* Pcm.MonoEncoder.make(format.sampleRate, to, quality)
    let head: Uint8Array | undefined = guard ? new Uint8Array(0) : undefined
    const convert = (bytes: Uint8Array): Array<Uint8Array> => {
      if (head !== undefined) {
        // hold the first bytes until a container's magic could be recognised in them
        const joined = new Uint8Array(head.byteLength + bytes.byteLength)
        joined.set(head, 0)
        joined.set(bytes, head.byteLength)
        if (joined.byteLength < Codec.MAGIC_BYTES) {
          head = joined
          return []
        }
        head = undefined
        refuseContainer(joined)
        bytes = joined
      }
      return [encoder.push(reader.push(bytes))]
    }
    return {
      push: (input: Chunk.Chunk<Uint8Array>) =>
        Decode.attempt(() => {
          const out: Array<Uint8Array> = []
          for (const bytes of input) out.push(...convert(bytes))
          return out
        }),
      end: () =>
        Decode.attempt(() => {
          const out: Array<Uint8Array> = []
          if (head !== undefined && head.byteLength > 0) {
            const rest = head
            head = undefined
            out.push(encoder.push(reader.push(rest)))
          }
          if (reader.pending > 0) {
            throw Pcm.decodeError(
              "truncated",
              `the audio ended in the middle of a sample frame: ${reader.total} bytes is not a whole number of ${reader.frameBytes}-byte frames (${format.channels} × ${format.encoding}); check --format/--channels, or the source was cut off`,
              undefined
            )
          }
          out.push(encoder.end())
          return out
        }),
      close: () => encoder.close()
    }
  })

const refuseContainer = (head: Uint8Array): void => {
  const what = Decode.containerOf(head)
  if (what !== undefined) {
    throw Pcm.decodeError(
      "not-raw",
      `the "raw PCM" starts with the header of ${what}. Decode it as a file instead (Audio.decode or Audio.fromFile; on the command line, leave out --format or use --format auto).`,
      undefined
    )
  }
}

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
export const fromPcm =
  (format: PcmFormat & ConvertOptions) =>
  <E, R>(
    self: Stream.Stream<Uint8Array, E, R>
  ): Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> =>
    convertWith(
      pcmConverter(
        { sampleRate: format.sampleRate, channels: format.channels ?? 1, encoding: format.encoding ?? "s16le" },
        SAMPLE_RATE,
        format.quality ?? "medium",
        true
      )
    )(self)

/**
 * Mixes interleaved s16le PCM of `channels` channels (default 2) down to mono (the mean of
 * the channels), at the same rate.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toMono =
  (channels = 2) =>
  <E, R>(
    self: Stream.Stream<Uint8Array, E, R>
  ): Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> =>
    convertWith(
      Effect.zipRight(
        checkChannels(channels),
        // any rate in range will do: from equals to, so no resampler is made
        pcmConverter({ sampleRate: SAMPLE_RATE, channels, encoding: "s16le" }, SAMPLE_RATE, "medium", false)
      )
    )(self)

/**
 * Resamples s16le mono PCM from `from` Hz to `to` Hz (default 16,000) with a band-limited
 * sinc filter (libsamplerate), keeping the filter's state across chunks. The output has
 * exactly `round(samples × to / from)` samples.
 *
 * @since 0.1.0
 * @category conversions
 */
export const resample =
  (options: { readonly from: number; readonly to?: number | undefined } & ConvertOptions) =>
  <E, R>(
    self: Stream.Stream<Uint8Array, E, R>
  ): Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> =>
    convertWith(
      pcmConverter(
        { sampleRate: options.from, channels: 1, encoding: "s16le" },
        options.to ?? SAMPLE_RATE,
        options.quality ?? "medium",
        false
      )
    )(self)

/**
 * Converts Float32 samples in [-1, 1] (a Web Audio graph's output, a model's waveform),
 * interleaved when `channels` (default 1) is more than one, to 16 kHz mono s16le. Values
 * outside the range are clipped.
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromFloat32 =
  (format: { readonly sampleRate: number; readonly channels?: number | undefined } & ConvertOptions) =>
  <E, R>(self: Stream.Stream<Float32Array, E, R>): Stream.Stream<Uint8Array, E | ConfigurationError, R> =>
    convertWith(
      Effect.gen(function* () {
        const channels = format.channels ?? 1
        const quality = format.quality ?? "medium"
        yield* checkRate("sampleRate", format.sampleRate)
        yield* checkChannels(channels)
        yield* checkQuality(quality)
        const mixer = new Pcm.FloatMixer(channels)
        const encoder = yield* Pcm.MonoEncoder.make(format.sampleRate, SAMPLE_RATE, quality)
        return {
          push: (input: Chunk.Chunk<Float32Array>) =>
            Effect.sync(() => Array.from(input, (samples) => encoder.push(mixer.push(samples)))),
          // a partial frame at the end (fewer samples than channels) is dropped: it is under a sample long
          end: () => Effect.sync(() => [encoder.end()]),
          close: () => encoder.close()
        }
      })
    )(self)

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
export const decode =
  (
    options: {
      readonly format?: ContainerFormat | undefined
      readonly source?: string | undefined
    } & ConvertOptions = {}
  ) =>
  <E, R>(
    self: Stream.Stream<Uint8Array, E, R>
  ): Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> =>
    convertWith(
      Effect.gen(function* () {
        const quality = options.quality ?? "medium"
        yield* checkQuality(quality)
        return new Decode.ContainerDecoder(SAMPLE_RATE, quality, options.source, options.format ?? "auto")
      })
    )(self)

/** Enough for the headers of any file we read: RIFF chunks before `data`, or an ID3 tag and two frames. */
const PROBE_BYTES = 64 * 1024

/**
 * Reads a file's header: what it holds and how long it plays. Fails when the header already
 * shows the file cannot be played (unknown format, unsupported codec, shorter than its
 * header promises).
 *
 * @since 0.1.0
 * @category sources
 */
export const probeFile = (
  path: string,
  options: { readonly format?: ContainerFormat | undefined } = {}
): Effect.Effect<SourceInfo, AudioDecodeError | PlatformError.PlatformError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const size = Number((yield* fs.stat(path)).size)
    const first = yield* Stream.runCollect(fs.stream(path, { bytesToRead: FileSystem.Size(PROBE_BYTES) }))
    let head = Pcm.concatBytes(Chunk.toReadonlyArray(first))
    const id3 = Mpeg.id3Size(head)
    if (id3 + 16 * 1024 > head.byteLength && size > head.byteLength) {
      // a large ID3 tag (cover art): read past it
      const more = yield* Stream.runCollect(
        fs.stream(path, { offset: FileSystem.Size(id3), bytesToRead: FileSystem.Size(PROBE_BYTES) })
      )
      const rest = Pcm.concatBytes(Chunk.toReadonlyArray(more))
      const joined = new Uint8Array(id3 + rest.byteLength)
      joined.set(head.subarray(0, Math.min(id3, head.byteLength)), 0)
      joined.set(rest, id3)
      head = joined
    }
    return yield* Decode.probe(head, size, path, options.format ?? "auto")
  }).pipe(Effect.withSpan("Audio.probeFile", { attributes: { path } }))

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
export const fromFile = (
  path: string,
  options: { readonly format?: ContainerFormat | undefined } & ConvertOptions = {}
): Stream.Stream<
  Uint8Array,
  AudioDecodeError | ConfigurationError | PlatformError.PlatformError,
  FileSystem.FileSystem
> =>
  Stream.unwrap(
    Effect.map(probeFile(path, options), () =>
      Stream.unwrap(Effect.map(FileSystem.FileSystem, (fs) => fs.stream(path))).pipe(
        decode({ ...options, source: path })
      )
    )
  )
