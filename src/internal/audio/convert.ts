/**
 * The conversions as Stream transformations. Each checks its options, then runs a stateful
 * converter over the stream: one `push` per chunk, `end` once the input is done, `close`
 * however the stream ends.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as Audio from "../../Audio.js"
import { type AudioDecodeError, ConfigurationError } from "../../AvatarError.js"
import * as Codec from "./codec.js"
import * as Decode from "./decode.js"
import * as Pcm from "./pcm.js"

const MAX_CHANNELS = 32

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
  Number.isInteger(channels) && channels >= 1 && channels <= MAX_CHANNELS
    ? Effect.void
    : Effect.fail(
        new ConfigurationError({
          option: "channels",
          message: `channels must be a whole number from 1 to ${MAX_CHANNELS} (got ${channels})`
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

interface Converter<In, E> {
  readonly push: (input: Chunk.Chunk<In>) => Effect.Effect<Array<Uint8Array>, E>
  readonly end: () => Effect.Effect<Array<Uint8Array>, E>
  readonly close: () => void
}

const convertWith =
  <In, E1, E2>(make: Effect.Effect<Converter<In, E2>, E1>) =>
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

interface RawFormat {
  readonly sampleRate: number
  readonly channels: number
  readonly encoding: Audio.Encoding
}

/** The "raw PCM" must not start with a container's header: it would play as noise. */
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

/** Raw interleaved PCM to s16le mono at `to`; with `guard`, refuses a container header at the start. */
class PcmConverter implements Converter<Uint8Array, AudioDecodeError> {
  /** The first bytes, held until a container's magic could be recognised in them; `undefined` once judged. */
  private head: Uint8Array | undefined

  private constructor(
    private readonly format: RawFormat,
    private readonly reader: Pcm.SampleReader,
    private readonly encoder: Pcm.MonoEncoder,
    guard: boolean
  ) {
    this.head = guard ? new Uint8Array(0) : undefined
  }

  static make(
    format: RawFormat,
    to: number,
    quality: Audio.Quality,
    guard: boolean
  ): Effect.Effect<PcmConverter, ConfigurationError> {
    return Effect.gen(function* () {
      yield* checkRate("sampleRate", format.sampleRate)
      yield* checkRate("to", to)
      yield* checkChannels(format.channels)
      yield* checkEncoding(format.encoding)
      yield* checkQuality(quality)
      const reader = new Pcm.SampleReader(format.encoding, format.channels)
      return new PcmConverter(format, reader, yield* Pcm.MonoEncoder.make(format.sampleRate, to, quality), guard)
    })
  }

  push(input: Chunk.Chunk<Uint8Array>): Effect.Effect<Array<Uint8Array>, AudioDecodeError> {
    return Decode.attempt(() => {
      const out: Array<Uint8Array> = []
      for (const bytes of input) this.convert(bytes, out)
      return out
    })
  }

  end(): Effect.Effect<Array<Uint8Array>, AudioDecodeError> {
    return Decode.attempt(() => {
      const out: Array<Uint8Array> = []
      const rest = this.head
      this.head = undefined
      // too short for any magic: it is audio
      if (rest !== undefined && rest.byteLength > 0) out.push(this.encoder.push(this.reader.push(rest)))
      if (this.reader.pending > 0) {
        throw Pcm.decodeError(
          "truncated",
          `the audio ended in the middle of a sample frame: ${this.reader.total} bytes is not a whole number of ${this.reader.frameBytes}-byte frames (${this.format.channels} × ${this.format.encoding}); check --format/--channels, or the source was cut off`,
          undefined
        )
      }
      out.push(this.encoder.end())
      return out
    })
  }

  close(): void {
    this.encoder.close()
  }

  private convert(bytes: Uint8Array, out: Array<Uint8Array>): void {
    if (this.head === undefined) {
      out.push(this.encoder.push(this.reader.push(bytes)))
      return
    }
    const joined = Pcm.concatBytes([this.head, bytes])
    if (joined.byteLength < Codec.MAGIC_BYTES) {
      this.head = joined
      return
    }
    this.head = undefined
    refuseContainer(joined)
    this.convert(joined, out)
  }
}

export const fromPcm =
  (format: Audio.PcmFormat & Audio.ConvertOptions) =>
  <E, R>(
    self: Stream.Stream<Uint8Array, E, R>
  ): Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> =>
    convertWith(
      PcmConverter.make(
        { sampleRate: format.sampleRate, channels: format.channels ?? 1, encoding: format.encoding ?? "s16le" },
        Pcm.SAMPLE_RATE,
        format.quality ?? "medium",
        true
      )
    )(self)

export const toMono =
  (channels = 2) =>
  <E, R>(
    self: Stream.Stream<Uint8Array, E, R>
  ): Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> =>
    convertWith(
      // any rate in range will do: from equals to, so no resampler is made
      PcmConverter.make({ sampleRate: Pcm.SAMPLE_RATE, channels, encoding: "s16le" }, Pcm.SAMPLE_RATE, "medium", false)
    )(self)

export const resample =
  (options: { readonly from: number; readonly to?: number | undefined } & Audio.ConvertOptions) =>
  <E, R>(
    self: Stream.Stream<Uint8Array, E, R>
  ): Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> =>
    convertWith(
      PcmConverter.make(
        { sampleRate: options.from, channels: 1, encoding: "s16le" },
        options.to ?? Pcm.SAMPLE_RATE,
        options.quality ?? "medium",
        false
      )
    )(self)

export const fromFloat32 =
  (format: { readonly sampleRate: number; readonly channels?: number | undefined } & Audio.ConvertOptions) =>
  <E, R>(self: Stream.Stream<Float32Array, E, R>): Stream.Stream<Uint8Array, E | ConfigurationError, R> =>
    convertWith(
      Effect.gen(function* () {
        const channels = format.channels ?? 1
        const quality = format.quality ?? "medium"
        yield* checkRate("sampleRate", format.sampleRate)
        yield* checkChannels(channels)
        yield* checkQuality(quality)
        const mixer = new Pcm.FloatMixer(channels)
        const encoder = yield* Pcm.MonoEncoder.make(format.sampleRate, Pcm.SAMPLE_RATE, quality)
        return {
          push: (input: Chunk.Chunk<Float32Array>) =>
            Effect.sync(() => Array.from(input, (samples) => encoder.push(mixer.push(samples)))),
          // a partial frame at the end (fewer samples than channels) is dropped: it is under a sample long
          end: () => Effect.sync(() => [encoder.end()]),
          close: () => encoder.close()
        }
      })
    )(self)

export const decode =
  (
    options: {
      readonly format?: Audio.ContainerFormat | undefined
      readonly source?: string | undefined
    } & Audio.ConvertOptions = {}
  ) =>
  <E, R>(
    self: Stream.Stream<Uint8Array, E, R>
  ): Stream.Stream<Uint8Array, E | AudioDecodeError | ConfigurationError, R> =>
    convertWith(
      Effect.gen(function* () {
        const quality = options.quality ?? "medium"
        yield* checkQuality(quality)
        return new Decode.ContainerDecoder(Pcm.SAMPLE_RATE, quality, options.source, options.format ?? "auto")
      })
    )(self)
