/**
 * Files through the `FileSystem` service: the header read first (past a large ID3 tag),
 * then the whole file streamed through the decoder.
 */
import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as Audio from "../../Audio.js"
import type { AudioDecodeError, ConfigurationError } from "../../AvatarError.js"
import * as Convert from "./convert.js"
import * as Decode from "./decode.js"
import * as Mpeg from "./mpeg.js"
import * as Pcm from "./pcm.js"

/** Enough for the headers of any file we read: RIFF chunks before `data`, or an ID3 tag and two frames. */
const PROBE_BYTES = 64 * 1024

export const probeFile = (
  path: string,
  options: { readonly format?: Audio.ContainerFormat | undefined } = {}
): Effect.Effect<Audio.SourceInfo, AudioDecodeError | PlatformError.PlatformError, FileSystem.FileSystem> =>
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

export const fromFile = (
  path: string,
  options: { readonly format?: Audio.ContainerFormat | undefined } & Audio.ConvertOptions = {}
): Stream.Stream<
  Uint8Array,
  AudioDecodeError | ConfigurationError | PlatformError.PlatformError,
  FileSystem.FileSystem
> =>
  Stream.unwrap(
    Effect.map(probeFile(path, options), () =>
      Stream.unwrap(Effect.map(FileSystem.FileSystem, (fs) => fs.stream(path))).pipe(
        Convert.decode({ ...options, source: path })
      )
    )
  )
