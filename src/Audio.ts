/**
 * Audio for the avatar: PCM signed 16-bit little-endian, 16,000 Hz, mono (32 bytes a
 * millisecond). Framing into whole-sample frames of a fixed duration, and the checks that
 * keep data that is not raw PCM out of a session.
 *
 * @since 0.1.0
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { AudioStreamError, ConfigurationError } from "./AvatarError.js"
import { Framer } from "./internal/framer.js"

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
 * Whether bytes start with a RIFF/WAVE header: a WAV file handed over as raw PCM would
 * otherwise play its header as a click and, if it is not 16 kHz mono 16-bit, as noise.
 *
 * @since 0.1.0
 * @category validation
 */
export const looksLikeWav = (bytes: Uint8Array): boolean =>
  bytes.byteLength >= 12 &&
  bytes[0] === 0x52 && // R
  bytes[1] === 0x49 && // I
  bytes[2] === 0x46 && // F
  bytes[3] === 0x46 && // F
  bytes[8] === 0x57 && // W
  bytes[9] === 0x41 && // A
  bytes[10] === 0x56 && // V
  bytes[11] === 0x45 // E

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
