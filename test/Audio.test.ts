import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Stream from "effect/Stream"
import { Audio, AvatarSimulator } from "../src/index.js"
import { clientFor, concat } from "./support.js"

const evenChunks = FastCheck.array(FastCheck.uint8Array({ maxLength: 3000 }), { maxLength: 40 }).filter(
  (chunks) => chunks.reduce((n, c) => n + c.byteLength, 0) % 2 === 0
)

describe("Audio.frames", () => {
  it.effect.prop(
    "frames concatenate back to the input, hold whole samples and never exceed frameMs",
    [evenChunks, FastCheck.constantFrom(10, 20, 40, 60, 100)],
    ([chunks, frameMs]) =>
      Effect.gen(function* () {
        const frames = Chunk.toReadonlyArray(
          yield* Stream.runCollect(Stream.fromIterable(chunks).pipe(Audio.frames(frameMs)))
        )
        expect(concat(frames)).toStrictEqual(concat(chunks))
        const size = Audio.frameBytes(frameMs)
        frames.forEach((frame, i) => {
          expect(frame.byteLength % 2).toBe(0)
          expect(frame.byteLength).toBeGreaterThan(0)
          // all but the last are full frames
          if (i < frames.length - 1) expect(frame.byteLength).toBe(size)
          else expect(frame.byteLength).toBeLessThanOrEqual(size)
        })
      })
  )

  it.effect("an odd byte carries into the next chunk instead of being dropped", () =>
    Effect.gen(function* () {
      // 641 + 639 bytes: the first chunk ends in the middle of a sample
      const a = new Uint8Array(641).map((_, i) => i % 251)
      const b = new Uint8Array(639).map((_, i) => (i + 7) % 251)
      const frames = Chunk.toReadonlyArray(yield* Stream.runCollect(Stream.make(a, b).pipe(Audio.frames(40))))
      expect(frames.map((f) => f.byteLength)).toStrictEqual([1280])
      expect(frames[0]).toStrictEqual(concat([a, b]))
    })
  )

  it.effect("a stream that ends in the middle of a sample sends every whole sample, then fails naming the byte", () =>
    Effect.gen(function* () {
      const collected: Array<Uint8Array> = []
      const result = yield* Stream.make(new Uint8Array(1000), new Uint8Array(301)).pipe(
        Audio.frames(40),
        Stream.runForEach((frame) => Effect.sync(() => collected.push(frame))),
        Effect.either
      )
      expect(concat(collected).byteLength).toBe(1300)
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left._tag).toBe("AudioStreamError")
        expect(result.left.reason).toBe("odd-length")
        expect(result.left.message).toContain("1301 bytes")
        expect(result.left.message).toContain("offset 1300")
      }
    })
  )

  it("frame sizes and durations", () => {
    expect(Audio.frameBytes(40)).toBe(1280)
    expect(Audio.frameBytes(20)).toBe(640)
    expect(Audio.durationMs(32_000)).toBe(1000)
    expect(Audio.looksLikeWav(new TextEncoder().encode("RIFF\0\0\0\0WAVEfmt "))).toBe(true)
    expect(Audio.looksLikeWav(new Uint8Array(64))).toBe(false)
  })
})

describe("Audio.looksLikeWav", () => {
  const header = (magic: string) => {
    const bytes = new Uint8Array(4000)
    // RF64 leaves the RIFF size at 0xFFFFFFFF and keeps the real one in its ds64 chunk
    bytes.set(
      Uint8Array.from(`${magic}\xff\xff\xff\xffWAVEds64`, (c) => c.charCodeAt(0)),
      0
    )
    return bytes
  }

  it("knows RF64 (the WAV of files over 4 GiB) as well as RIFF, as the decoder does", () => {
    expect(Audio.looksLikeWav(header("RIFF"))).toBe(true)
    expect(Audio.looksLikeWav(header("RF64"))).toBe(true)
    expect(Audio.looksLikeWav(header("RIFX"))).toBe(false)
    expect(Audio.looksLikeWav(header("RF64").subarray(0, 11))).toBe(false)
  })

  it.live("session.audio refuses an RF64 file passed as raw PCM before anything is sent", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: "dvp_Tristan_cloth2_1080P", pacing: "none" })
      const result = yield* Effect.either(Stream.run(Stream.make(header("RF64")), session.audio))
      expect(result).toMatchObject({ _tag: "Left", left: { _tag: "AudioStreamError", reason: "not-pcm" } })
      expect((yield* session.info).audio.framesAccepted).toBe(0)
    }).pipe(Effect.scoped)
  )
})
