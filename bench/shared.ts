/**
 * What the benchmark's processes agree on: the audio, the checksum, the protocol constants
 * and the shape of a run's parameters and results.
 */

/** 40 ms of 16 kHz 16-bit mono PCM. */
export const FRAME_MS = 40
export const FRAME_BYTES = 1280

/**
 * A frame is on time when it reaches the server before its slot in playback, with playback
 * starting this long after the session's first frame arrived (a small jitter buffer, as a
 * real-time audio receiver keeps).
 */
export const JITTER_MS = 100

export const AVATAR_ID = "bench_avatar"
export const API_KEY = "bench-key"

/** Both clients send a ping this often (the SDK also asks for a pong after each second of audio). */
export const HEARTBEAT_MS = 5000

/** Order-sensitive FNV-1a over bytes: the server's and the client's must agree. */
export const checksum = (hash: number, bytes: Uint8Array): number => {
  let h = hash === 0 ? 0x811c9dc5 : hash
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 16777619)
  return h >>> 0
}

/** `count` distinct frames of a quiet, varying signal; frame `i` differs from its neighbours. */
export const makeFrames = (count: number): ReadonlyArray<Uint8Array> =>
  Array.from({ length: count }, (_, i) => {
    const frame = new Uint8Array(FRAME_BYTES)
    for (let j = 0; j < FRAME_BYTES; j++) frame[j] = (i * 31 + j * 7) & 0xff
    return frame
  })

/** The set-params both clients send. */
export const AGORA = { appId: "bench-app", channel: "bench-channel", token: "bench-token", uid: "1" } as const

export type Client = "sdk" | "baseline"

export type Scenario = "throughput" | "concurrency" | "ready" | "recovery" | "memory" | "pacing"

export interface WorkerInput {
  readonly client: Client
  readonly scenario: Scenario
  readonly port: number
  /** throughput, memory: frames sent unpaced; concurrency, recovery: seconds of audio. */
  readonly frames?: number
  readonly seconds?: number
  readonly sessions?: number
  readonly drops?: number
  /** concurrency, pacing: how far the SDK may run ahead of playback (the default when absent). */
  readonly leadMs?: number
  /** How the SDK client streams: `session.speak` (the default) or `Stream.run` into `session.audio`. */
  readonly sdkWay?: SdkWay
}

export type SdkWay = "speak" | "sink"

/** What a worker measured on the client side; the orchestrator adds the server's view. */
export interface WorkerOutput {
  readonly [figure: string]: number | ReadonlyArray<number> | ReadonlyArray<string> | string
}

export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** One ready session (set-params acknowledged, Agora connected), whichever client holds it. */
export interface Handle {
  readonly id: string
  /** Streams `frames` in real time; resolves once the last one is written. */
  readonly paced: (frames: ReadonlyArray<Uint8Array>) => Promise<void>
  /** Streams `frames` as fast as the socket takes them. */
  readonly unpaced: (frames: Iterable<Uint8Array>) => Promise<void>
  /** Leaves the channel and closes. */
  readonly close: () => Promise<void>
  /** Frames written to links that dropped before a pong or ack confirmed them (SDK only). */
  readonly unconfirmed: () => Promise<number>
}

/** How the harness drives a client: the SDK or the hand-written baseline. */
export interface Driver {
  /** `leadMs` is the SDK's `lead`; the hand-written client always sends each frame as its slot starts. */
  readonly open: (options: {
    readonly pacing: "realtime" | "none"
    readonly leadMs?: number | undefined
  }) => Promise<Handle>
  readonly dispose: () => Promise<void>
}
