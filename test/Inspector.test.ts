/**
 * The simulator's inspector, in a real browser: the Debian `chromium` package, driven by
 * `playwright-core` (which downloads no browser of its own; `.ci/run` installs chromium).
 * A session streams through the SDK and is dropped once; the page must list it, draw its
 * whole audio, mark the drop and the reconnect; a click on a fault switch must drop the
 * next session. The screenshot goes to test-output/ (not committed).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { type Browser, chromium } from "playwright-core"
import { AvatarSimulator } from "../src/index.js"
import { API_KEY, agora, clientFor, eventually, fastRetry, pcm } from "./support.js"

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const OUTPUT = Path.resolve(import.meta.dirname, "..", "test-output")

const launch = Effect.acquireRelease(
  Effect.promise(() =>
    chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
  ),
  (browser: Browser) => Effect.promise(() => browser.close())
)

const getJson = (url: string) =>
  Effect.promise(() => fetch(url).then(async (r) => ({ status: r.status, body: await r.json() })))

describe("the inspector", () => {
  it("has a browser to run in (the Debian chromium package; .ci/run installs it)", () => {
    expect(Fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`).toBe(true)
  })

  it.scopedLive(
    "lists a streamed session with its whole waveform, marks its drop and reconnect, and a fault switch drops the next session",
    () =>
      Effect.gen(function* () {
        const sim = yield* AvatarSimulator.make({ apiKey: API_KEY, inspector: true })
        const client = yield* clientFor(sim)
        const options = {
          avatarId: AvatarSimulator.DEFAULT_AVATAR_ID,
          lead: "200 millis",
          outboxCapacity: 100,
          retry: fastRetry(10)
        } as const

        // one session, two seconds of audio, dropped once on its way
        const first = yield* Effect.scoped(
          Effect.gen(function* () {
            const session = yield* client.session(options)
            yield* session.setParams({ agora })
            const speaking = yield* Effect.fork(Stream.run(Stream.make(pcm(32_000 * 2)), session.audio))
            yield* eventually(session.info, (i) => i.audio.framesWritten >= 10)
            yield* sim.drop(0)
            yield* Fiber.join(speaking)
            return { sessionId: session.sessionId, info: yield* session.info }
          })
        )
        // closed: every frame it wrote that the simulator will ever get has arrived
        expect(first.info.reconnects).toBe(1)
        const receivedMs = (yield* sim.audio(first.sessionId)).byteLength / 32

        const browser = yield* launch
        const context = yield* Effect.acquireRelease(
          Effect.promise(() => browser.newContext({ viewport: { width: 1100, height: 900 } })),
          (c) => Effect.promise(() => c.close())
        )
        const page = yield* Effect.promise(() => context.newPage())
        const errors: Array<string> = []
        page.on("pageerror", (e) => errors.push(e.message))
        yield* Effect.promise(() => page.goto(sim.inspectorUrl!))

        const article = page.locator(`article[data-session-id="${first.sessionId}"]`)
        yield* Effect.promise(() => article.waitFor({ timeout: 10_000 }))
        expect(yield* Effect.promise(() => article.locator(".session-id").textContent())).toBe(first.sessionId)
        // the page has drawn what arrived: one drop, one reconnect, the whole audio
        const timing = article.locator('canvas.timing[data-drops="1"][data-reconnects="1"]')
        yield* Effect.promise(() => timing.waitFor({ timeout: 10_000 }))
        const waveform = article.locator(`canvas.waveform[data-duration-ms="${receivedMs}"]`)
        yield* Effect.promise(() => waveform.waitFor({ timeout: 10_000 }))
        // what arrived is the two seconds, less at most the frames the drop left unconfirmed
        const unconfirmed = first.info.audio.framesUnconfirmed
        expect(receivedMs).toBeGreaterThanOrEqual(2000 - unconfirmed * 40)
        expect(yield* Effect.promise(() => article.locator("li.mark.drop").count())).toBe(1)
        expect(yield* Effect.promise(() => article.locator("li.mark.reconnect").count())).toBe(1)
        // the Agora token is masked on the page as in the API
        expect(yield* Effect.promise(() => page.content())).not.toContain(agora.token)

        // a click on "drop after N frames" drops the next session's connection
        const faults = page.locator('fieldset.faults[data-instance="0"]')
        yield* Effect.promise(() => faults.locator('[data-param="dropAfterFrames.frames"]').fill("5"))
        yield* Effect.promise(() => faults.locator('[data-fault="dropAfterFrames"]').check())
        yield* Effect.promise(() => faults.locator('.fault-status[data-ok="true"]').waitFor({ timeout: 5000 }))
        const set = yield* getJson(`${sim.inspectorUrl}/api/faults`)
        expect(set.body[0].faults).toEqual({ dropAfterFrames: { frames: 5, mode: "close" } })

        const second = yield* client.session(options)
        yield* Stream.run(Stream.make(pcm(32_000 / 2)), second.audio)
        expect((yield* second.info).reconnects).toBeGreaterThanOrEqual(1)
        const records = (yield* sim.sessions).filter((r) => r.sessionId === second.sessionId)
        expect(records[0]).toMatchObject({ dropped: true, frameCount: 5 })
        const next = page.locator(`article[data-session-id="${second.sessionId}"] canvas.timing:not([data-drops="0"])`)
        yield* Effect.promise(() => next.waitFor({ timeout: 10_000 }))

        Fs.mkdirSync(OUTPUT, { recursive: true })
        yield* Effect.promise(() => page.screenshot({ path: Path.join(OUTPUT, "inspector.png"), fullPage: true }))
        expect(errors).toEqual([])
      }),
    60_000
  )

  it.scopedLive("its JSON API masks the secrets, and answers a bad fault with a 400 that says what is wrong", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make({ apiKey: API_KEY, inspector: true })
      const client = yield* clientFor(sim)
      const session = yield* client.session({ avatarId: AvatarSimulator.DEFAULT_AVATAR_ID, lead: "200 millis" })
      yield* session.setParams({ agora })
      yield* Stream.run(Stream.make(pcm(3200)), session.audio)
      const base = sim.inspectorUrl!
      const state = yield* getJson(`${base}/api/state`)
      expect(state.status).toBe(200)
      expect(state.body.sessions.map((s: { id: string }) => s.id)).toEqual([session.sessionId])
      const detail = yield* getJson(`${base}/api/sessions/${encodeURIComponent(session.sessionId)}`)
      expect(detail.body.commandList[0]).toMatchObject({ cmd: "set-params", answer: { kind: "ack" } })
      expect(detail.body.frameList).toHaveLength(3)
      for (const body of [JSON.stringify(state.body), JSON.stringify(detail.body)]) {
        expect(body).not.toContain(agora.token)
        expect(body).not.toContain(API_KEY)
        expect(body).toContain("masked")
      }
      const wav = yield* Effect.promise(() =>
        fetch(`${base}/api/sessions/${session.sessionId}/audio.wav`).then((r) => r.arrayBuffer())
      )
      expect(wav.byteLength).toBe(44 + 3200)

      const post = (body: string) =>
        Effect.promise(() =>
          fetch(`${base}/api/faults`, { method: "POST", body, headers: { "content-type": "application/json" } }).then(
            async (r) => ({
              status: r.status,
              body: await r.json()
            })
          )
        )
      expect(yield* post(JSON.stringify({ faults: { dropAfterFrames: { frames: 0 } } }))).toEqual({
        status: 400,
        body: { error: "dropAfterFrames.frames: 0 is not a whole number >= 1" }
      })
      expect((yield* post(JSON.stringify({ faults: { dropAfter: 3 } }))).body.error).toMatch(
        /^dropAfter: there is no such fault; the faults are rejectKey, occupied/
      )
      expect((yield* post(JSON.stringify({ instance: 4, faults: {} }))).body.error).toBe(
        "instance: 4 is not an instance; they are 0 to 0"
      )
      expect((yield* post("{not json")).status).toBe(400)
      expect((yield* post("[]")).body.error).toMatch(/^the body must be a JSON object/)
      // what the types forbid arrives as JSON too: a 400 each, never a 500
      expect(yield* post(JSON.stringify({ faults: { malformed: { afterFrames: 1, count: 1, kinds: "x" } } }))).toEqual({
        status: 400,
        body: { error: expect.stringMatching(/^malformed\.kinds: "x" is not a list of malformed kinds/) }
      })
      for (const name of ["toString", "constructor", "__proto__"]) {
        const answer = yield* post(`{"faults": {"${name}": {}}}`)
        expect(answer.status, name).toBe(400)
        expect(answer.body.error).toMatch(/there is no such fault/)
      }
      expect((yield* post(JSON.stringify({ instance: 0 }))).body.error).toMatch(/^faults: missing/)
      // a malformed escape in a session id is the caller's mistake, not the simulator's failure
      const malformed = yield* getJson(`${base}/api/sessions/%ZZ`)
      expect(malformed.status).toBe(404)
      expect(malformed.body.error).toMatch(/is not a session id/)
      // JSON only, so that another site's page cannot set faults with a plain form post
      const asText = yield* Effect.promise(() =>
        fetch(`${base}/api/faults`, { method: "POST", body: JSON.stringify({ faults: { stall: true } }) })
      )
      expect(asText.status).toBe(415)
      expect(yield* post(JSON.stringify({ faults: { noPong: true } }))).toMatchObject({ status: 200 })
      expect((yield* getJson(`${base}/api/faults`)).body[0].faults).toEqual({ noPong: true })
      // the inspector's requests are not discovery requests
      expect((yield* sim.discoveryRequests).every((r) => r.path.endsWith("service_status"))).toBe(true)
    })
  )

  it.scopedLive(
    "its JSON API lists each connection of a session, and the drop with its close code, after a refused attempt",
    () =>
      Effect.gen(function* () {
        // the first attempt is refused (4004), the second accepted and then dropped (1011), the third takes over
        const sim = yield* AvatarSimulator.make({
          apiKey: API_KEY,
          inspector: true,
          instances: [{ faults: { tooSoon: 1 } }]
        })
        const client = yield* clientFor(sim)
        const session = yield* client.session({
          avatarId: AvatarSimulator.DEFAULT_AVATAR_ID,
          lead: "200 millis",
          retry: fastRetry(5)
        })
        yield* sim.dropAll({ code: 1011 })
        yield* eventually(session.info, (i) => i.reconnects >= 1 && i.connected)
        const detail = yield* getJson(`${sim.inspectorUrl}/api/sessions/${encodeURIComponent(session.sessionId)}`)
        const connections = detail.body.connectionList as Array<{ id: number; refusedWith: number | null }>
        expect(connections.map((c) => c.refusedWith)).toEqual([4004, null, null])
        expect(detail.body.dropList).toMatchObject([{ connection: connections[1]!.id, code: 1011 }])
        expect(detail.body.reconnectList).toMatchObject([{ connection: connections[2]!.id }])
        expect(detail.body.state).toBe("live")
      })
  )

  it.scopedLive("is not there unless asked for: /inspector is a 404", () =>
    Effect.gen(function* () {
      const sim = yield* AvatarSimulator.make()
      expect(sim.inspectorUrl).toBeUndefined()
      const origin = new URL(sim.discoveryUrl).origin
      for (const path of ["/inspector", "/inspector/api/state"]) {
        expect((yield* getJson(`${origin}${path}`)).status).toBe(404)
      }
    })
  )
})
