/**
 * Where the examples connect: the Akool service when `AKOOL_API_KEY` is set (with the other
 * `AKOOL_*` variables), else a simulator started in the same process.
 */
import { type AgoraParams, AvatarSimulator } from "akool-streaming-avatar"

export const AVATAR_ID = process.env.AKOOL_AVATAR_ID ?? "dvp_Tristan_cloth2_1080P"

/** The Agora channel the avatar joins: from `AKOOL_AGORA_*`, or placeholders for the simulator. */
export const agora: AgoraParams = {
  agoraAppId: process.env.AKOOL_AGORA_APP_ID ?? "example-app",
  agoraChannel: process.env.AKOOL_AGORA_CHANNEL ?? "example-channel",
  agoraToken: process.env.AKOOL_AGORA_TOKEN ?? "",
  agoraUid: process.env.AKOOL_AGORA_UID ?? "12345"
}

export interface Target {
  readonly apiKey: string
  readonly discoveryUrl: string | undefined
  readonly env: "test" | "prod" | undefined
  /** The simulator, when there is no `AKOOL_API_KEY`. */
  readonly simulator: AvatarSimulator.Running | undefined
  readonly close: () => Promise<void>
}

export const target = async (simulatorOptions: AvatarSimulator.Options = {}): Promise<Target> => {
  const apiKey = process.env.AKOOL_API_KEY
  if (apiKey) {
    const env = process.env.AKOOL_ENV
    return {
      apiKey,
      discoveryUrl: process.env.AKOOL_DISCOVERY_URL,
      env: env === "prod" || env === "test" ? env : undefined,
      simulator: undefined,
      close: async () => {}
    }
  }
  const simulator = await AvatarSimulator.start(simulatorOptions)
  console.log(`(no AKOOL_API_KEY: using the built-in simulator at ${simulator.discoveryUrl})`)
  return {
    apiKey: "simulated-key",
    discoveryUrl: simulator.discoveryUrl,
    env: undefined,
    simulator,
    close: simulator.close
  }
}

/** `seconds` of a tone as 16 kHz, 16-bit, mono PCM: something to say. */
export const tone = (seconds: number, hz = 220): Uint8Array => {
  const samples = Math.round(16_000 * seconds)
  const bytes = new Uint8Array(samples * 2)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < samples; i++)
    view.setInt16(i * 2, Math.round(Math.sin((2 * Math.PI * hz * i) / 16_000) * 6000), true)
  return bytes
}

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.byteLength === b.byteLength && a.every((x, i) => x === b[i])

/** Fails the example: a message on standard error and exit code 1. */
export const fail = (message: string): never => {
  throw new Error(`CHECK FAILED: ${message}`)
}
