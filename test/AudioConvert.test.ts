/**
 * Conversions checked by measurement: a 1 kHz sine in many shapes must come out at 16 kHz
 * mono with the same frequency, the expected duration, no step anywhere (chunk boundaries
 * included), the same bytes whether converted whole or in uneven pieces, and close to an
 * ideal sine.
 *
 * The MP3 fixture (test/fixtures/sine-1khz-44k1-stereo.mp3, 5 KB) was made with
 * `sox -n -r 44100 -c 2 -b 16 s.wav synth 0.6 sine 1000 vol 0.5` and
 * `lame -b 64 --resample 44.1 s.wav` (LAME 3.100); it has an Info tag.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { Audio } from "../src/index.js"
import { concat, unevenChunks } from "./support.js"

const MP3 = new URL("fixtures/sine-1khz-44k1-stereo.mp3", import.meta.url)
const OUT_RATE = 16_000
const FRAME_SAMPLES = 640 // one 40 ms frame

const dir = mkdtempSync(join(tmpdir(), "akool-audio-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// ---- signal generation ----

/** Interleaved samples of a sine, the same in every channel (channel c scaled by 1 - 0.2c, so channels differ). */
const sine = (rate: number, seconds: number, channels: number, freq = 1000, amp = 0.5): Float32Array => {
  const frames = Math.round(rate * seconds)
  const out = new Float32Array(frames * channels)
  for (let i = 0; i < frames; i++) {
    const v = amp * Math.sin((2 * Math.PI * freq * i) / rate)
    for (let c = 0; c < channels; c++) out[i * channels + c] = v * (1 - 0.2 * c)
  }
  return out
}

const encodePcm = (samples: Float32Array, encoding: Audio.Encoding): Uint8Array => {
  const size = { u8: 1, s8: 1, s16le: 2, s24le: 3, s32le: 4, f32le: 4, f64le: 8 }[encoding]
  const out = new Uint8Array(samples.length * size)
  const view = new DataView(out.buffer)
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i]!
    const at = i * size
    switch (encoding) {
      case "u8":
        view.setUint8(at, Math.round(v * 127) + 128)
        break
      case "s8":
        view.setInt8(at, Math.round(v * 127))
        break
      case "s16le":
        view.setInt16(at, Math.round(v * 32767), true)
        break
      case "s24le": {
        const x = Math.round(v * 8388607)
        view.setUint16(at, x & 0xffff, true)
        view.setInt8(at + 2, x >> 16)
        break
      }
      case "s32le":
        view.setInt32(at, Math.round(v * 2147483647), true)
        break
      case "f32le":
        view.setFloat32(at, v, true)
        break
      case "f64le":
        view.setFloat64(at, v, true)
    }
  }
  return out
}

/** A WAV file, with a LIST chunk before `data` as many writers put one. */
const wavFile = (
  pcm: Uint8Array,
  rate: number,
  channels: number,
  bits: number,
  formatTag = 1,
  declaredData = pcm.byteLength
): Uint8Array => {
  const list = new TextEncoder().encode("INFOISFT\u0006\0\0\0test\0\0")
  const out = new Uint8Array(12 + 24 + 8 + list.byteLength + 8 + pcm.byteLength)
  const view = new DataView(out.buffer)
  const ascii = (at: number, s: string) => {
    for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i))
  }
  ascii(0, "RIFF")
  view.setUint32(4, out.byteLength - 8, true)
  ascii(8, "WAVE")
  ascii(12, "fmt ")
  view.setUint32(16, 16, true)
  view.setUint16(20, formatTag, true)
  view.setUint16(22, channels, true)
  view.setUint32(24, rate, true)
  view.setUint32(28, (rate * channels * bits) / 8, true)
  view.setUint16(32, (channels * bits) / 8, true)
  view.setUint16(34, bits, true)
  ascii(36, "LIST")
  view.setUint32(40, list.byteLength, true)
  out.set(list, 44)
  const data = 44 + list.byteLength
  ascii(data, "data")
  view.setUint32(data + 4, declaredData, true)
  out.set(pcm, data + 8)
  return out
}

// ---- measurement ----

const samplesOf = (bytes: Uint8Array): Int16Array => {
  expect(bytes.byteLength % 2).toBe(0)
  return new Int16Array(bytes.slice().buffer)
}

/** Frequency from the rising zero crossings, interpolated between samples, over [from, to). */
const frequency = (x: Int16Array, from: number, to: number): number => {
  const crossings: Array<number> = []
  for (let i = from + 1; i < to; i++) {
    if (x[i - 1]! < 0 && x[i]! >= 0) crossings.push(i - 1 + -x[i - 1]! / (x[i]! - x[i - 1]!))
  }
  const periods = crossings.length - 1
  return (periods * OUT_RATE) / (crossings[periods]! - crossings[0]!)
}

/** The largest step between neighbouring samples over [from, to). */
const maxStep = (x: Int16Array, from: number, to: number): number => {
  let max = 0
  for (let i = from + 1; i < to; i++) max = Math.max(max, Math.abs(x[i]! - x[i - 1]!))
  return max
}

/** Signal-to-residual ratio in dB against the best-fitting sine at `freq` over [from, to). */
const snrDb = (x: Int16Array, freq: number, from: number, to: number): number => {
  let ss = 0
  let sc = 0
  let cc = 0
  let xs = 0
  let xc = 0
  for (let i = from; i < to; i++) {
    const s = Math.sin((2 * Math.PI * freq * i) / OUT_RATE)
    const c = Math.cos((2 * Math.PI * freq * i) / OUT_RATE)
    ss += s * s
    sc += s * c
    cc += c * c
    xs += x[i]! * s
    xc += x[i]! * c
  }
  const det = ss * cc - sc * sc
  const a = (xs * cc - xc * sc) / det
  const b = (xc * ss - xs * sc) / det
  let signal = 0
  let residual = 0
  for (let i = from; i < to; i++) {
    const fit = a * Math.sin((2 * Math.PI * freq * i) / OUT_RATE) + b * Math.cos((2 * Math.PI * freq * i) / OUT_RATE)
    signal += fit * fit
    residual += (x[i]! - fit) ** 2
  }
  return 10 * Math.log10(signal / residual)
}

/** Runs a stream to one buffer. */
const collect = <E, R>(stream: Stream.Stream<Uint8Array, E, R>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => concat(Chunk.toReadonlyArray(chunks)))

interface Measured {
  readonly samples: number
  readonly frequency: number
  readonly maxStep: number
  readonly snrDb: number
}

const measure = (bytes: Uint8Array): Measured => {
  const x = samplesOf(bytes)
  // leave out 5 ms at each end: the signal starts and stops there
  const from = 80
  const to = x.length - 80
  return {
    samples: x.length,
    frequency: frequency(x, from, to),
    maxStep: maxStep(x, from, to),
    snrDb: snrDb(x, 1000, from, to)
  }
}

/**
 * What a 1 kHz sine of amplitude `amp` must look like at 16 kHz mono: the frequency within
 * 1 %, the duration within one frame, no step larger than the sine's own steepest (plus 3 %),
 * and at least `minSnr` dB above the residual.
 */
const expectCleanSine = (m: Measured, seconds: number, amp: number, minSnr: number) => {
  expect(Math.abs(m.frequency - 1000) / 1000).toBeLessThan(0.01)
  expect(Math.abs(m.samples - seconds * OUT_RATE)).toBeLessThanOrEqual(FRAME_SAMPLES)
  const steepest = amp * 32768 * 2 * Math.sin((Math.PI * 1000) / OUT_RATE)
  expect(m.maxStep).toBeLessThan(steepest * 1.03)
  expect(m.snrDb).toBeGreaterThan(minSnr)
}

/** The same conversion whole (one chunk) and in uneven pieces (1 to 3,001 bytes): identical bytes. */
const wholeAndChunked = <E>(
  input: Uint8Array,
  convert: (s: Stream.Stream<Uint8Array>) => Stream.Stream<Uint8Array, E>
) =>
  Effect.gen(function* () {
    const whole = yield* collect(convert(Stream.make(input)))
    const chunked = yield* collect(convert(Stream.fromIterable(unevenChunks(input, 11))))
    return { whole, chunked }
  })

const results: Array<string> = []
const report = (name: string, m: Measured) =>
  results.push(
    `${name}: ${m.frequency.toFixed(2)} Hz, ${m.samples} samples, max step ${m.maxStep}, SNR ${m.snrDb.toFixed(1)} dB`
  )
afterAll(() => console.log(`measured conversions (1 kHz sine in, 16 kHz mono out):\n  ${results.join("\n  ")}`))

describe("Audio conversions, measured", () => {
  const cases: ReadonlyArray<{ name: string; rate: number; channels: number; encoding: Audio.Encoding }> = [
    { name: "44.1 kHz stereo s16le", rate: 44_100, channels: 2, encoding: "s16le" },
    { name: "48 kHz mono s16le", rate: 48_000, channels: 1, encoding: "s16le" },
    { name: "24 kHz mono s16le", rate: 24_000, channels: 1, encoding: "s16le" },
    { name: "8 kHz mono s16le", rate: 8_000, channels: 1, encoding: "s16le" },
    { name: "44.1 kHz mono 24-bit", rate: 44_100, channels: 1, encoding: "s24le" },
    { name: "48 kHz stereo float32", rate: 48_000, channels: 2, encoding: "f32le" },
    { name: "22.05 kHz 6 channels 32-bit", rate: 22_050, channels: 6, encoding: "s32le" },
    { name: "11.025 kHz mono 8-bit", rate: 11_025, channels: 1, encoding: "u8" }
  ]
  const seconds = 0.75
  const amp = 0.5

  for (const c of cases) {
    it.effect(`raw PCM, ${c.name}: Audio.fromPcm`, () =>
      Effect.gen(function* () {
        const input = encodePcm(sine(c.rate, seconds, c.channels, 1000, amp), c.encoding)
        const { whole, chunked } = yield* wholeAndChunked(input, (s) =>
          s.pipe(Audio.fromPcm({ sampleRate: c.rate, channels: c.channels, encoding: c.encoding }))
        )
        expect(chunked).toStrictEqual(whole)
        const m = measure(whole)
        report(`fromPcm ${c.name}`, m)
        // the mean of the channels: channel c is scaled by 1 - 0.2c
        const mixed = amp * (1 - (0.2 * (c.channels - 1)) / 2)
        // 8-bit samples carry about 48 dB; the rest far more
        expectCleanSine(m, seconds, mixed, c.encoding === "u8" ? 35 : 60)
      })
    )

    it.effect(`WAV file, ${c.name}: Audio.decode`, () =>
      Effect.gen(function* () {
        const pcm = encodePcm(sine(c.rate, seconds, c.channels, 1000, amp), c.encoding)
        const bits = { u8: 8, s8: 8, s16le: 16, s24le: 24, s32le: 32, f32le: 32, f64le: 64 }[c.encoding]
        const file = wavFile(pcm, c.rate, c.channels, bits, c.encoding === "f32le" ? 3 : 1)
        const { whole, chunked } = yield* wholeAndChunked(file, (s) => s.pipe(Audio.decode()))
        expect(chunked).toStrictEqual(whole)
        const m = measure(whole)
        report(`decode WAV ${c.name}`, m)
        expectCleanSine(m, seconds, amp * (1 - (0.2 * (c.channels - 1)) / 2), c.encoding === "u8" ? 35 : 60)
      })
    )
  }

  it.effect("Float32 samples, 44.1 kHz stereo interleaved: Audio.fromFloat32", () =>
    Effect.gen(function* () {
      const samples = sine(44_100, seconds, 2, 1000, amp)
      const convert = (chunks: ReadonlyArray<Float32Array>) =>
        collect(Stream.fromIterable(chunks).pipe(Audio.fromFloat32({ sampleRate: 44_100, channels: 2 })))
      const whole = yield* convert([samples])
      // odd piece sizes: pieces end in the middle of a stereo frame
      const pieces: Array<Float32Array> = []
      for (let at = 0, i = 0; at < samples.length; i++) {
        const n = 1 + ((i * 733) % 1999)
        pieces.push(samples.subarray(at, at + n))
        at += n
      }
      expect(yield* convert(pieces)).toStrictEqual(whole)
      const m = measure(whole)
      report("fromFloat32 44.1 kHz stereo", m)
      expectCleanSine(m, seconds, amp * 0.9, 60)
    })
  )

  it.effect("Audio.resample 24 kHz → 16 kHz and 16 kHz → 48 kHz → 16 kHz keep the sine", () =>
    Effect.gen(function* () {
      const input = encodePcm(sine(24_000, seconds, 1, 1000, amp), "s16le")
      const { whole, chunked } = yield* wholeAndChunked(input, (s) => s.pipe(Audio.resample({ from: 24_000 })))
      expect(chunked).toStrictEqual(whole)
      const m = measure(whole)
      report("resample 24 kHz", m)
      expectCleanSine(m, seconds, amp, 60)

      const there = yield* collect(Stream.make(whole).pipe(Audio.resample({ from: 16_000, to: 48_000 })))
      expect(there.byteLength / 2).toBe(Math.round(seconds * 48_000))
      const back = yield* collect(Stream.make(there).pipe(Audio.resample({ from: 48_000 })))
      const m2 = measure(back)
      report("resample 16 → 48 → 16 kHz", m2)
      expectCleanSine(m2, seconds, amp, 60)
    })
  )

  it.effect("Audio.toMono averages the channels, sample for sample", () =>
    Effect.gen(function* () {
      const stereo = new Int16Array([1000, 3000, -2000, -4000, 32767, 32767, -32768, -32768, 7, 8])
      const mono = yield* collect(
        Stream.fromIterable(unevenChunks(new Uint8Array(stereo.buffer), 3)).pipe(Audio.toMono(2))
      )
      // 7.5 rounds to 8
      expect(Array.from(samplesOf(mono))).toStrictEqual([2000, -3000, 32767, -32768, 8])
    })
  )

  it.effect("16 kHz mono 16-bit passes through bit for bit (examples/sample.wav)", () =>
    Effect.gen(function* () {
      const file = new Uint8Array(readFileSync(new URL("../examples/sample.wav", import.meta.url)))
      const out = yield* collect(Stream.fromIterable(unevenChunks(file, 5)).pipe(Audio.decode()))
      // the sample has a 44-byte header and nothing after its data chunk
      expect(out).toStrictEqual(file.subarray(44))
    })
  )

  it.effect("MP3, 44.1 kHz stereo (a 5 KB fixture): frequency, exact duration, whole = chunked", () =>
    Effect.gen(function* () {
      const file = new Uint8Array(readFileSync(MP3))
      const { whole, chunked } = yield* wholeAndChunked(file, (s) => s.pipe(Audio.decode()))
      expect(chunked).toStrictEqual(whole)
      const m = measure(whole)
      report("decode MP3 44.1 kHz stereo 64 kbps", m)
      // gapless decoding: exactly 0.6 s
      expect(m.samples).toBe(9600)
      // a 64 kbps MP3 is not a clean sine: its coding noise is about 50 dB down
      expectCleanSine(m, 0.6, 0.5, 40)
    })
  )

  it.effect("Audio.fromFile reads WAV and MP3 files, and probeFile tells their duration", () =>
    Effect.gen(function* () {
      const wavPath = join(dir, "sine-48k-24bit.wav")
      writeFileSync(wavPath, wavFile(encodePcm(sine(48_000, 1, 1), "s24le"), 48_000, 1, 24))
      const wav = yield* collect(Audio.fromFile(wavPath))
      expectCleanSine(measure(wav), 1, 0.5, 60)
      const wavInfo = yield* Audio.probeFile(wavPath)
      expect(wavInfo).toMatchObject({ container: "wav", codec: "PCM 24-bit", sampleRate: 48_000, channels: 1 })
      expect(wavInfo.durationSeconds).toStrictEqual(Option.some(1))

      const mp3Path = MP3.pathname
      const mp3 = yield* collect(Audio.fromFile(mp3Path))
      expect(mp3.byteLength).toBe(9600 * 2)
      const mp3Info = yield* Audio.probeFile(mp3Path)
      expect(mp3Info).toMatchObject({ container: "mpeg", sampleRate: 44_100, channels: 2, durationExact: true })
      expect(mp3Info.durationSeconds).toStrictEqual(Option.some(0.6))
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )
})

describe("Audio input that is not what it claims", () => {
  const fail = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.map(Effect.either(effect), (result) => {
      expect(Either.isLeft(result)).toBe(true)
      return (result as Either.Left<E, A>).left
    })

  it.effect("a WAV file handed over as raw PCM is refused as not-raw", () =>
    Effect.gen(function* () {
      const file = wavFile(encodePcm(sine(16_000, 0.1, 1), "s16le"), 16_000, 1, 16)
      const error = yield* fail(
        collect(Stream.make(file.subarray(0, 5), file.subarray(5)).pipe(Audio.fromPcm({ sampleRate: 16_000 })))
      )
      expect(error).toMatchObject({ _tag: "AudioDecodeError", reason: "not-raw" })
      expect(error.message).toContain("WAV file")
      const mp3 = yield* fail(
        collect(Stream.make(new Uint8Array(readFileSync(MP3))).pipe(Audio.fromPcm({ sampleRate: 44_100 })))
      )
      expect(mp3).toMatchObject({ _tag: "AudioDecodeError", reason: "not-raw" })
      expect(mp3.message).toContain("MP3")
    })
  )

  it.effect(
    "a truncated WAV: the stream gives what is there, then fails naming both sizes; fromFile refuses it up front",
    () =>
      Effect.gen(function* () {
        const pcm = encodePcm(sine(16_000, 1, 1), "s16le")
        const whole = wavFile(pcm, 16_000, 1, 16)
        const header = whole.byteLength - pcm.byteLength
        const file = whole.subarray(0, 20_000)
        const seen: Array<Uint8Array> = []
        const error = yield* fail(
          Stream.make(file).pipe(
            Audio.decode({ source: "cut.wav" }),
            Stream.runForEach((b) => Effect.sync(() => seen.push(b)))
          )
        )
        expect(error).toMatchObject({ reason: "truncated", source: "cut.wav" })
        expect(error.message).toContain("declares 32000 bytes (1.00 s)")
        expect(concat(seen)).toStrictEqual(pcm.subarray(0, 20_000 - header))

        const path = join(dir, "cut.wav")
        writeFileSync(path, file)
        const produced: Array<Uint8Array> = []
        const upFront = yield* fail(
          Audio.fromFile(path).pipe(Stream.runForEach((b) => Effect.sync(() => produced.push(b))))
        )
        expect(upFront).toMatchObject({ reason: "truncated", source: path })
        expect(produced).toHaveLength(0)
      }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  for (const [name, rate, dataBytes, seconds] of [
    ["espeak-pipe.wav", 22_050, 63_566, "1.44"],
    ["sox-pipe.wav", 16_000, 16_000, "0.50"]
  ] as const) {
    it.effect(`a WAV written to a pipe (${name}, data size 0x7FFFF000) is read to the end`, () =>
      Effect.gen(function* () {
        const path = new URL(`fixtures/${name}`, import.meta.url).pathname
        const bytes = new Uint8Array(readFileSync(path))
        // the marker the writer left for "unknown length", as captured
        expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(40, true)).toBe(0x7ffff000)
        const info = yield* Audio.probeFile(path)
        expect(info).toMatchObject({ container: "wav", sampleRate: rate, channels: 1 })
        // the length comes from the file, since the header does not know it
        expect(Option.getOrThrow(info.durationSeconds)).toBeCloseTo(Number(seconds), 2)
        // streamed as a pipe delivers it, in uneven chunks: every sample, resampled to 16 kHz
        const out = concat(
          yield* Stream.fromIterable(unevenChunks(bytes)).pipe(
            Audio.decode({ source: name }),
            Stream.runCollect,
            Effect.map(Chunk.toReadonlyArray)
          )
        )
        expect(out.byteLength).toBe(Math.round(((dataBytes / 2) * 16_000) / rate) * 2)
        const fromFile = concat(Chunk.toReadonlyArray(yield* Stream.runCollect(Audio.fromFile(path))))
        expect(fromFile).toStrictEqual(out)
      }).pipe(Effect.provide(NodeFileSystem.layer))
    )
  }

  it.effect("a truncated MP3 is recognised by its Info tag", () =>
    Effect.gen(function* () {
      const path = join(dir, "cut.mp3")
      const mp3 = readFileSync(MP3)
      writeFileSync(path, mp3.subarray(0, 3000))
      const error = yield* fail(collect(Audio.fromFile(path)))
      expect(error).toMatchObject({ _tag: "AudioDecodeError", reason: "truncated" })
      expect(error.message).toMatch(/Info tag says \d+ bytes .* but the file holds 3000/)
      const streamed = yield* fail(collect(Stream.make(mp3.subarray(0, 3000)).pipe(Audio.decode())))
      expect(streamed).toMatchObject({ reason: "truncated" })
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )

  it.effect("a compressed WAV codec is named; other containers are named; noise is described", () =>
    Effect.gen(function* () {
      const ulaw = wavFile(new Uint8Array(800), 8000, 1, 8, 7)
      const codec = yield* fail(collect(Stream.make(ulaw).pipe(Audio.decode())))
      expect(codec).toMatchObject({ reason: "unsupported-codec" })
      expect(codec.message).toContain("µ-law")

      const ogg = new Uint8Array(64)
      ogg.set(new TextEncoder().encode("OggS"), 0)
      const container = yield* fail(collect(Stream.make(ogg).pipe(Audio.decode())))
      expect(container).toMatchObject({ reason: "unknown-format" })
      expect(container.message).toContain("Ogg")

      const text = new TextEncoder().encode("<html><body>Not found</body></html>")
      const html = yield* fail(collect(Stream.make(text).pipe(Audio.decode())))
      expect(html).toMatchObject({ reason: "unknown-format" })
      expect(html.message).toContain("looks like text")

      const empty = yield* fail(collect(Stream.empty.pipe(Audio.decode())))
      expect(empty).toMatchObject({ reason: "truncated" })
    })
  )

  it.effect("a header that contradicts itself is malformed", () =>
    Effect.gen(function* () {
      const file = wavFile(new Uint8Array(400), 16_000, 2, 16)
      new DataView(file.buffer).setUint16(32, 3, true) // block align 3 for 2 × 16 bits
      const error = yield* fail(collect(Stream.make(file).pipe(Audio.decode())))
      expect(error).toMatchObject({ reason: "malformed" })
      expect(error.message).toContain("3 bytes per sample frame")
    })
  )

  it.effect("raw PCM that ends in the middle of a frame fails after the whole frames", () =>
    Effect.gen(function* () {
      const error = yield* fail(
        collect(Stream.make(new Uint8Array(4 * 100 + 3)).pipe(Audio.fromPcm({ sampleRate: 16_000, channels: 2 })))
      )
      expect(error).toMatchObject({ _tag: "AudioDecodeError", reason: "truncated" })
      expect(error.message).toContain("403 bytes")
    })
  )

  it.effect("options that cannot work are a ConfigurationError naming the option", () =>
    Effect.gen(function* () {
      const rate = yield* fail(collect(Stream.make(new Uint8Array(4)).pipe(Audio.fromPcm({ sampleRate: 0 }))))
      expect(rate).toMatchObject({ _tag: "ConfigurationError", option: "sampleRate" })
      const channels = yield* fail(
        collect(Stream.make(new Uint8Array(4)).pipe(Audio.fromPcm({ sampleRate: 16_000, channels: 0 })))
      )
      expect(channels).toMatchObject({ _tag: "ConfigurationError", option: "channels" })
      const encoding = yield* fail(
        collect(
          Stream.make(new Uint8Array(4)).pipe(Audio.fromPcm({ sampleRate: 16_000, encoding: "s12" as Audio.Encoding }))
        )
      )
      expect(encoding).toMatchObject({ _tag: "ConfigurationError", option: "encoding" })
    })
  )
})
