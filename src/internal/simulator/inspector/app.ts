import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as AvatarSimulator from "../../../AvatarSimulator.js"
import * as Faults from "../faults.js"
import * as Wav from "../wav.js"
import * as Page from "./page.js"
import * as Script from "./script.js"
import * as View from "./view.js"

/** @internal Where the inspector lives on the discovery server. */
export const PATH = "/inspector"

/** @internal Whether a request is the inspector's. */
export const owns = (pathname: string): boolean => pathname === PATH || pathname.startsWith(`${PATH}/`)

/** @internal What the inspector reads and what its controls act on. */
export interface Context extends View.Sources {
  readonly setFaults: AvatarSimulator.Service["setFaults"]
}

/** How often the live updates look for a change. */
const TICK_MS = 250

/** The updates pace themselves on the real clock, whatever clock the simulator runs on. */
const liveClock = Clock.make()

const noStore = { "cache-control": "no-store" }

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status, headers: noStore })

const problem = (status: number, error: string) => json({ error }, status)

/** The endpoints, as `GET /inspector/api` lists them (docs/inspector.md describes them). */
const ENDPOINTS = {
  "GET /inspector/api/state": "the simulator: instances and their faults, every session's summary",
  "GET /inspector/api/events": "Server-Sent Events: a `state` event (the body of /state) whenever it changes",
  "GET /inspector/api/sessions": "every session's summary",
  "GET /inspector/api/sessions/{id}": "one session: connections, commands and answers, frames, waveform, playback",
  "GET /inspector/api/sessions/{id}/audio.wav": "the audio the session sent, as a 16 kHz mono 16-bit WAV",
  "GET /inspector/api/faults": "every instance and its faults",
  "POST /inspector/api/faults": '{"instance": N (default: every instance), "faults": {...}}: replaces the faults'
}

/** Each change of the state, as one Server-Sent Event; `now` alone is not a change. */
const events = (context: Context) => {
  const encoder = new TextEncoder()
  const read = Effect.sync(() => {
    const { now, ...rest } = View.state(context)
    return { key: JSON.stringify(rest), now, rest }
  })
  const tick = Effect.zipRight(Effect.withClock(Effect.sleep(TICK_MS), liveClock), read)
  return Stream.concat(Stream.fromEffect(read), Stream.repeatEffect(tick)).pipe(
    Stream.changesWith((a, b) => a.key === b.key),
    Stream.map((s) => encoder.encode(`event: state\ndata: ${JSON.stringify({ now: s.now, ...s.rest })}\n\n`))
  )
}

const setFaults = (context: Context, request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function* () {
    // JSON only: a page of another site can POST text here without asking, but not JSON
    // (the browser asks first, and the inspector does not answer for other origins)
    const type = request.headers["content-type"] ?? ""
    if (!type.toLowerCase().startsWith("application/json")) {
      return problem(415, `send the body as content-type application/json (got ${type === "" ? "none" : type})`)
    }
    const body = yield* Effect.either(request.json)
    if (body._tag === "Left" || typeof body.right !== "object" || body.right === null || Array.isArray(body.right)) {
      return problem(
        400,
        'the body must be a JSON object: {"instance": 0, "faults": {"dropAfterFrames": {"frames": 25}}}'
      )
    }
    const { instance, faults } = body.right as { readonly instance?: unknown; readonly faults?: unknown }
    if (faults === undefined) {
      return problem(
        400,
        'faults: missing; give the switches to set, for example {"faults": {"stall": true}}, or {} to clear them'
      )
    }
    const targets =
      instance === undefined
        ? context.instances.map((i) => i.index)
        : typeof instance === "number" && context.instances[instance] !== undefined
          ? [instance]
          : undefined
    if (targets === undefined) {
      return problem(
        400,
        `instance: ${JSON.stringify(instance)} is not an instance; they are 0 to ${context.instances.length - 1}`
      )
    }
    const found = Faults.validateUnknown(faults)
    if (found !== undefined) return problem(400, Faults.describe(found))
    yield* Effect.forEach(targets, (index) => context.setFaults(index, faults as AvatarSimulator.Faults))
    return json({ instances: context.instances.map(View.instanceView) })
  })

/** A path segment as the id it escapes, or `undefined` when its escapes are malformed. */
const decodeId = (segment: string): string | undefined => {
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}

const sessionRoute = (context: Context, rest: string) => {
  const wav = rest.endsWith("/audio.wav")
  const raw = wav ? rest.slice(0, -"/audio.wav".length) : rest
  const id = decodeId(raw)
  if (id === undefined) return problem(404, `${JSON.stringify(raw)} is not a session id (its escapes do not decode)`)
  const found = View.session(context, id)
  if (found === undefined) return problem(404, `no session ${JSON.stringify(id)} has connected`)
  if (!wav) return json(found)
  return HttpServerResponse.uint8Array(Wav.file(context.records.audioOf(id)), {
    contentType: "audio/wav",
    headers: { ...noStore, "content-disposition": `attachment; filename="${Wav.fileName(id)}"` }
  })
}

/**
 * The inspector's routes: the page and its script, and the JSON API under
 * `/inspector/api/`.
 *
 * @internal
 */
export const make =
  (context: Context) =>
  (
    request: HttpServerRequest.HttpServerRequest,
    pathname: string
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
    Effect.suspend(() => {
      const get = request.method === "GET" || request.method === "HEAD"
      const route = pathname.slice(PATH.length)
      if (route === "/api/faults" && request.method === "POST") return setFaults(context, request)
      if (!get) return Effect.succeed(problem(405, `${request.method} ${pathname}: use GET`))
      switch (route) {
        case "":
        case "/":
          return Effect.succeed(HttpServerResponse.html(Page.html))
        case "/app.js":
          return Effect.succeed(
            HttpServerResponse.text(Script.source, { contentType: "text/javascript; charset=utf-8" })
          )
        case "/style.css":
          return Effect.succeed(HttpServerResponse.text(Page.css, { contentType: "text/css; charset=utf-8" }))
        case "/api":
        case "/api/":
          return Effect.succeed(json(ENDPOINTS))
        case "/api/state":
          return Effect.succeed(json(View.state(context)))
        case "/api/sessions":
          return Effect.succeed(json(View.state(context).sessions))
        case "/api/faults":
          return Effect.succeed(json(context.instances.map(View.instanceView)))
        case "/api/events":
          return Effect.succeed(
            HttpServerResponse.stream(events(context), {
              contentType: "text/event-stream",
              headers: { ...noStore, connection: "keep-alive" }
            })
          )
      }
      if (route.startsWith("/api/sessions/")) {
        return Effect.succeed(sessionRoute(context, route.slice("/api/sessions/".length)))
      }
      return Effect.succeed(problem(404, `no route ${pathname}; GET ${PATH}/api lists the endpoints`))
    })
