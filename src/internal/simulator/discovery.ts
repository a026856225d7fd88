import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import type * as AvatarSimulator from "../../AvatarSimulator.js"
import * as Constants from "../constants.js"
import * as Inspector from "./inspector/app.js"
import type * as Instance from "./instance.js"
import type * as Records from "./records.js"

/** @internal What the discovery endpoint needs from the simulator. */
export interface DiscoveryContext {
  readonly shape: "code" | "readme"
  readonly advertisedHost: string
  readonly instances: ReadonlyArray<Instance.Instance>
  readonly records: Records.Records
  readonly keyAccepted: (key: string | undefined) => boolean
}

/** The body the service sends, in the shape its code parses or the one its README shows. */
const body = (context: DiscoveryContext): unknown =>
  context.shape === "code"
    ? {
        code: 1000,
        msg: "ok",
        data: {
          instances: context.instances.map((i) => ({
            ip: context.advertisedHost,
            port: i.port,
            avatar_id: i.avatarId,
            status: i.status,
            healthy: i.healthy,
            index: i.index
          }))
        }
      }
    : {
        success: true,
        data: {
          services: context.instances.map((i) => ({
            host: context.advertisedHost,
            port: i.port,
            status: !i.healthy ? "unhealthy" : i.status === "available" ? "active" : i.status
          }))
        }
      }

const overridden = (context: DiscoveryContext, behaviour: AvatarSimulator.DiscoveryBehaviour) => {
  const status = behaviour.status ?? 200
  const answer =
    behaviour.body !== undefined
      ? behaviour.body
      : status === 200
        ? body(context)
        : { code: status, msg: `simulated HTTP ${status}` }
  return typeof answer === "string"
    ? HttpServerResponse.text(answer, { status, contentType: "application/json" })
    : HttpServerResponse.unsafeJson(answer, { status })
}

/**
 * The discovery endpoint: records every request, then answers as the service does, or as
 * `setDiscovery` said.
 *
 * @internal
 */
export class Discovery {
  private behaviour: AvatarSimulator.DiscoveryBehaviour = {}
  private inspector: ReturnType<typeof Inspector.make> | undefined = undefined

  constructor(private readonly context: DiscoveryContext) {}

  unsafeSetBehaviour(behaviour: AvatarSimulator.DiscoveryBehaviour): void {
    this.behaviour = behaviour
  }

  /** Serves the inspector under `/inspector` from now on; without it, that path is a 404. */
  unsafeServeInspector(inspector: ReturnType<typeof Inspector.make>): void {
    this.inspector = inspector
  }

  get app(): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest> {
    const context = this.context
    return Effect.gen(this, function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const url = new URL(request.url, "http://simulator")
      // the inspector's requests are not discovery requests: not recorded, never delayed
      if (this.inspector !== undefined && Inspector.owns(url.pathname))
        return yield* this.inspector(request, url.pathname)
      const accepted = context.keyAccepted(request.headers.api_key)
      context.records.unsafeDiscoveryRequest({
        query: Object.fromEntries(url.searchParams),
        path: url.pathname,
        keyAccepted: accepted
      })
      const behaviour = this.behaviour
      // interruptible: the platform runs an HttpApp uninterruptibly, and a long delay must
      // not hold the scope open when the simulator closes
      if (behaviour.delay !== undefined) yield* Effect.interruptible(Effect.sleep(behaviour.delay))
      if (url.pathname !== Constants.SERVICE_STATUS_PATH) {
        return HttpServerResponse.unsafeJson({ code: 404, msg: `no route ${url.pathname}` }, { status: 404 })
      }
      if (request.method !== "GET") {
        return HttpServerResponse.unsafeJson({ code: 405, msg: "use GET" }, { status: 405 })
      }
      if (behaviour.status !== undefined || behaviour.body !== undefined) return overridden(context, behaviour)
      if (!accepted) {
        return HttpServerResponse.unsafeJson(
          { code: 4001, msg: "authentication failed: missing or invalid api_key" },
          { status: 401 }
        )
      }
      return HttpServerResponse.unsafeJson(body(context))
    })
  }
}
