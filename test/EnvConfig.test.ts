/**
 * Configuration from the environment, as the Effect layers read it: the Promise client falls
 * back to `AKOOL_API_KEY`, `AKOOL_DISCOVERY_URL`, `AKOOL_ENV` and `AKOOL_AVATAR_ID` for the
 * options left out, and what is passed wins. Each test sets the variables it needs and
 * `process.env` is put back afterwards.
 */
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { AvatarConfig, AvatarError, AvatarSimulator, StreamingAvatarClient } from "../src/index.js"
import { API_KEY, pcm } from "./support.js"

const AVATAR = "dvp_Tristan_cloth2_1080P"
const VARIABLES = ["AKOOL_API_KEY", "AKOOL_DISCOVERY_URL", "AKOOL_ENV", "AKOOL_AVATAR_ID"] as const

let saved: Record<string, string | undefined> = {}
beforeEach(() => {
  saved = Object.fromEntries(VARIABLES.map((name) => [name, process.env[name]]))
  for (const name of VARIABLES) delete process.env[name]
})
afterEach(() => {
  for (const name of VARIABLES) {
    const value = saved[name]
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
})

const thrown = (f: () => unknown): unknown => {
  try {
    f()
  } catch (error) {
    return error
  }
  throw new Error("expected a throw")
}

describe("StreamingAvatarClient options from the environment", () => {
  it("with only AKOOL_* set, the client reaches the service they name, with their key, avatar and env", async () => {
    await using sim = await AvatarSimulator.start({ apiKey: API_KEY })
    process.env.AKOOL_API_KEY = API_KEY
    process.env.AKOOL_DISCOVERY_URL = sim.discoveryUrl
    process.env.AKOOL_ENV = "prod"
    process.env.AKOOL_AVATAR_ID = "avatar-from-env"

    await using client = await StreamingAvatarClient.connect({ pacing: "none" })
    expect(client.avatarId).toBe("avatar-from-env")
    await client.sendAudio(pcm(3200))
    await client.disconnect()

    expect(await sim.audio(client.sessionId)).toEqual(pcm(3200))
    const [session] = await sim.sessions()
    expect(session.avatarId).toBe("avatar-from-env")
    const requests = await Effect.runPromise(sim.service.discoveryRequests)
    expect(requests.length).toBeGreaterThan(0)
    // `prod` sends no test group; every request carried the accepted key
    expect(requests.every((r) => r.keyAccepted && r.query.group_name === undefined)).toBe(true)
  })

  it("explicit options win over the variables; the variables fill in the rest", async () => {
    await using sim = await AvatarSimulator.start({ apiKey: API_KEY })
    process.env.AKOOL_API_KEY = "sk-the-wrong-key" // the simulator would refuse it
    process.env.AKOOL_DISCOVERY_URL = sim.discoveryUrl // the only option left out
    process.env.AKOOL_ENV = "staging" // invalid: the constructor would throw if it read it
    process.env.AKOOL_AVATAR_ID = "avatar-from-env"

    await using client = await StreamingAvatarClient.connect({
      apiKey: API_KEY,
      avatarId: AVATAR,
      env: "test",
      maxRetryAttempts: 1,
      pacing: "none"
    })
    expect(client.avatarId).toBe(AVATAR)
    expect(client.isConnected).toBe(true)
    const [session] = await sim.sessions()
    expect(session.avatarId).toBe(AVATAR)
    const requests = await Effect.runPromise(sim.service.discoveryRequests)
    expect(requests.every((r) => r.keyAccepted && r.query.group_name !== undefined)).toBe(true)
  })

  it("no key anywhere: a ConfigurationError that names apiKey and AKOOL_API_KEY", () => {
    const error = thrown(() => new StreamingAvatarClient({ avatarId: AVATAR }))
    expect(error).toBeInstanceOf(AvatarError.ConfigurationError)
    expect(error).toMatchObject({ option: "apiKey" })
    expect((error as AvatarError.ConfigurationError).message).toContain("AKOOL_API_KEY")
    expect((error as AvatarError.ConfigurationError).message).toContain("pass apiKey")
  })

  it("no avatar anywhere: a ConfigurationError that names avatarId and AKOOL_AVATAR_ID", () => {
    process.env.AKOOL_API_KEY = API_KEY
    const error = thrown(() => new StreamingAvatarClient({}))
    expect(error).toBeInstanceOf(AvatarError.ConfigurationError)
    expect(error).toMatchObject({ option: "avatarId" })
    expect((error as AvatarError.ConfigurationError).message).toContain("AKOOL_AVATAR_ID")
  })

  it("a variable that cannot work: a ConfigurationError naming it and the option, without the key", () => {
    process.env.AKOOL_API_KEY = API_KEY
    for (const [name, value, option] of [
      ["AKOOL_ENV", "staging", "env"],
      ["AKOOL_DISCOVERY_URL", "ftp://example.com", "discoveryUrl"],
      ["AKOOL_API_KEY", "  ", "apiKey"],
      ["AKOOL_AVATAR_ID", " ", "avatarId"]
    ] as const) {
      const before = process.env[name]
      process.env[name] = value
      const error = thrown(() => new StreamingAvatarClient({ avatarId: option === "avatarId" ? undefined : AVATAR }))
      if (before === undefined) delete process.env[name]
      else process.env[name] = before
      expect(error, name).toBeInstanceOf(AvatarError.ConfigurationError)
      expect(error, name).toMatchObject({ option })
      const message = (error as AvatarError.ConfigurationError).message
      expect(message, name).toMatch(option === "discoveryUrl" ? /discoveryUrl/ : new RegExp(name))
      expect(message, name).not.toContain(API_KEY)
    }
  })
})

describe("AvatarConfig.fromEnvWith", () => {
  it.effect("reads only the variables of the options left out, through the ConfigProvider", () =>
    Effect.gen(function* () {
      process.env.AKOOL_API_KEY = API_KEY
      process.env.AKOOL_DISCOVERY_URL = "http://127.0.0.1:8051/streamingAvatar/service_status"
      process.env.AKOOL_AVATAR_ID = "avatar-from-env"
      const fromEnv = yield* AvatarConfig.fromEnvWith({ env: "prod", avatarId: "mine" })
      expect(Redacted.value(fromEnv.apiKey)).toBe(API_KEY)
      expect(fromEnv.discoveryUrl).toBe("http://127.0.0.1:8051/streamingAvatar/service_status")
      expect(fromEnv).toMatchObject({ env: "prod", avatarId: "mine" })

      delete process.env.AKOOL_API_KEY
      const missing = yield* Effect.either(AvatarConfig.makeFromEnv({}))
      expect(Either.isLeft(missing) && missing.left).toMatchObject({ option: "apiKey" })
      const resolved = yield* AvatarConfig.makeFromEnv({ apiKey: Redacted.make("given") })
      expect(resolved.avatarId).toEqual(Option.some("avatar-from-env"))
    })
  )
})
