/**
 * Containers to 16-bit mono PCM at a target rate. The container is chosen from the codecs
 * by a file's first bytes (or by name), then decoded as a state machine fed chunk by
 * chunk. Only headers are buffered; audio goes through as it arrives.
 */
import * as Effect from "effect/Effect"
import type * as Audio from "../../Audio.js"
import { AudioDecodeError } from "../../AvatarError.js"
import * as Codec from "./codec.js"
import * as Mpeg from "./mpeg.js"
import * as Pcm from "./pcm.js"
import * as Wav from "./wav.js"

/** The containers decoded, in the order their magic is tried. */
export const codecs: ReadonlyArray<Codec.Codec> = [Wav.codec, Mpeg.codec]

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

/** The codec whose magic starts `head`. */
const sniffed = (head: Uint8Array): Codec.Codec | undefined => codecs.find((codec) => codec.sniff(head))

const unknownFormat = (head: Uint8Array, source: string | undefined): AudioDecodeError => {
  const other = sniffed(head) === undefined ? Codec.foreign(head) : undefined
  if (other !== undefined) {
    return Pcm.decodeError(
      other.reason,
      `this is ${other.what}; only WAV and MP3 (MPEG audio) are decoded. Convert it first, e.g. \`ffmpeg -i in -ar 16000 -ac 1 out.wav\`.`,
      source
    )
  }
  if (head.byteLength === 0) return Pcm.decodeError("truncated", "the file is empty", source)
  const text = head.subarray(0, 64).every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127))
  return Pcm.decodeError(
    "unknown-format",
    `neither WAV nor MP3: it starts with ${Codec.hexHead(head)}${text ? " (it looks like text)" : ""}. For raw PCM, say its format (\`Audio.fromPcm\`, or \`--format s16le --rate N\` on the command line).`,
    source
  )
}

/** The codec for a file and what its header says; throws an `AudioDecodeError` when none takes it. */
const identify = (
  head: Uint8Array,
  fileSize: number | undefined,
  source: string | undefined,
  format: Audio.ContainerFormat
): { readonly codec: Codec.Codec; readonly info: Audio.SourceInfo } => {
  const codec = format === "auto" ? sniffed(head) : codecs.find((c) => c.format === format)
  const info = codec?.probe(head, fileSize, source)
  if (codec === undefined || info === undefined) throw unknownFormat(head, source)
  return { codec, info }
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
  format: Audio.ContainerFormat = "auto"
): Effect.Effect<Audio.SourceInfo, AudioDecodeError> => attempt(() => identify(head, fileSize, source, format).info)

/**
 * The container whose header starts bytes given as raw PCM, named for a message, if one
 * does beyond doubt.
 */
export const containerOf = (head: Uint8Array): string | undefined => {
  const codec = sniffed(head)
  if (codec === undefined) return Codec.foreign(head)?.what
  return codec.unmistakable(head) ? codec.what : undefined
}

/** Bytes to hold before choosing a codec: as many as the most demanding one wants. */
const wantedHead = (head: Uint8Array): number => Math.max(...codecs.map((codec) => codec.headBytes(head)))

const nonEmpty = (bytes: Uint8Array) => bytes.byteLength > 0

type State =
  | { readonly _tag: "Head"; readonly chunks: Array<Uint8Array> }
  | { readonly _tag: "Decoding"; readonly decoder: Codec.Decoder }
  | { readonly _tag: "Closed" }

/** A file's bytes in, s16le mono at `rate` out. */
export class ContainerDecoder {
  private state: State = { _tag: "Head", chunks: [] }

  constructor(
    readonly rate: number,
    readonly quality: Audio.Quality,
    readonly source: string | undefined,
    readonly format: Audio.ContainerFormat
  ) {}

  push(chunks: Iterable<Uint8Array>): Effect.Effect<Array<Uint8Array>, AudioDecodeError> {
    return Effect.suspend(() => {
      const state = this.state
      switch (state._tag) {
        case "Decoding":
          return attempt(() => feed(state.decoder, chunks))
        case "Head": {
          state.chunks.push(...chunks)
          const head = this.head(state)
          return head.byteLength < wantedHead(head) ? Effect.succeed([]) : this.start(head)
        }
        case "Closed":
          return Effect.succeed([])
      }
    })
  }

  end(): Effect.Effect<Array<Uint8Array>, AudioDecodeError> {
    return Effect.gen(this, function* () {
      const out = this.state._tag === "Head" ? yield* this.start(this.head(this.state)) : []
      const state = this.state
      if (state._tag === "Decoding") yield* attempt(() => state.decoder.end(out))
      return out.filter(nonEmpty)
    })
  }

  close(): void {
    if (this.state._tag === "Decoding") this.state.decoder.close()
    this.state = { _tag: "Closed" }
  }

  /** The bytes held so far, joined into one chunk (and kept so). */
  private head(state: { readonly chunks: Array<Uint8Array> }): Uint8Array {
    if (state.chunks.length !== 1) state.chunks.splice(0, state.chunks.length, Pcm.concatBytes(state.chunks))
    return state.chunks[0]!
  }

  private start(head: Uint8Array): Effect.Effect<Array<Uint8Array>, AudioDecodeError> {
    return Effect.gen(this, function* () {
      const { codec } = yield* attempt(() => identify(head, undefined, this.source, this.format))
      // uninterruptible until the decoder is in the state, where `close` finds it
      const decoder = yield* Effect.uninterruptible(
        Effect.map(codec.decoder(head, { rate: this.rate, quality: this.quality, source: this.source }), (decoder) => {
          this.state = { _tag: "Decoding", decoder }
          return decoder
        })
      )
      return yield* attempt(() => feed(decoder, [head]))
    })
  }
}

const feed = (decoder: Codec.Decoder, chunks: Iterable<Uint8Array>): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (const chunk of chunks) decoder.push(chunk, out)
  return out.filter(nonEmpty)
}
