/**
 * The Node parts of audio input: files read with Node's `fs`. `Audio` itself stays
 * platform-neutral (its file functions need any `FileSystem`); these provide Node's.
 *
 * @since 0.1.0
 */
import type * as PlatformError from "@effect/platform/Error"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Audio from "./Audio.js"
import type { AudioDecodeError, ConfigurationError } from "./AvatarError.js"

/**
 * A WAV or MP3 file as 16 kHz mono s16le, streamed from disk: {@link Audio.fromFile} with
 * Node's file system.
 *
 * @example
 * ```ts
 * yield* Stream.run(NodeAudio.fromFile("speech.mp3"), session.audio)
 * ```
 *
 * @since 0.1.0
 * @category sources
 */
export const fromFile = (
  path: string,
  options: { readonly format?: Audio.ContainerFormat | undefined } & Audio.ConvertOptions = {}
): Stream.Stream<Uint8Array, AudioDecodeError | ConfigurationError | PlatformError.PlatformError> =>
  Audio.fromFile(path, options).pipe(Stream.provideLayer(NodeFileSystem.layer))

/**
 * What a file holds and how long it plays: {@link Audio.probeFile} with Node's file system.
 *
 * @since 0.1.0
 * @category sources
 */
export const probeFile = (
  path: string,
  options: { readonly format?: Audio.ContainerFormat | undefined } = {}
): Effect.Effect<Audio.SourceInfo, AudioDecodeError | PlatformError.PlatformError> =>
  Audio.probeFile(path, options).pipe(Effect.provide(NodeFileSystem.layer))
