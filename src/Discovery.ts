/**
 * Service discovery: which streaming-avatar instances can take a session right now.
 *
 * @since 0.1.0
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Arr from "effect/Array"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Random from "effect/Random"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { AvatarConfig } from "./AvatarConfig.js"
import { AuthenticationError, ServiceDiscoveryError } from "./AvatarError.js"
import * as Constants from "./internal/constants.js"

/**
 * The path the reference SDK always requests on the discovery host.
 *
 * @since 0.1.0
 * @category constants
 */
export const SERVICE_STATUS_PATH = Constants.SERVICE_STATUS_PATH

/**
 * The WebSocket path on an instance.
 *
 * @since 0.1.0
 * @category constants
 */
export const WEBSOCKET_PATH = Constants.WEBSOCKET_PATH

/**
 * One service instance as discovery reported it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Instance {
  readonly host: string
  readonly port: number
  readonly avatarId: string | undefined
  readonly status: string
  readonly healthy: boolean
  /** `ws` for discovered instances (as the reference does); `wss` for a static TLS endpoint. */
  readonly scheme: "ws" | "wss"
}

/**
 * `host:port`, for messages and span attributes.
 *
 * @since 0.1.0
 * @category models
 */
export const label = (instance: Instance): string => `${instance.host}:${instance.port}`

/**
 * The WebSocket URL of a session on an instance, with URL-encoded query values.
 *
 * @since 0.1.0
 * @category models
 */
export const websocketUrl = (instance: Instance, query: { readonly sessionId: string; readonly avatarId: string }) => {
  const host = instance.host.includes(":") && !instance.host.startsWith("[") ? `[${instance.host}]` : instance.host
  const params = new URLSearchParams({ session_id: query.sessionId, avatar_id: query.avatarId })
  return `${instance.scheme}://${host}:${instance.port}${WEBSOCKET_PATH}?${params.toString()}`
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /**
   * The instances that can take a session, best first: those serving `avatarId` (in random
   * order, to spread load), then any other usable one (in random order).
   */
  readonly instances: (
    avatarId: string
  ) => Effect.Effect<ReadonlyArray<Instance>, AuthenticationError | ServiceDiscoveryError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Discovery extends Context.Tag("akool-streaming-avatar/Discovery")<Discovery, Service>() {}

// ---------------------------------------------------------------------------
// response bodies
// ---------------------------------------------------------------------------

/**
 * The body as the service sends it (`code` 1000 is success).
 *
 * @since 0.1.0
 * @category schemas
 */
export const CodeResponse = Schema.Struct({
  code: Schema.Number,
  msg: Schema.optional(Schema.String),
  data: Schema.optional(
    Schema.NullOr(
      Schema.Struct({
        instances: Schema.optional(
          Schema.NullOr(
            Schema.Array(
              Schema.Struct({
                ip: Schema.String,
                port: Schema.Number,
                avatar_id: Schema.optional(Schema.NullOr(Schema.String)),
                status: Schema.String,
                healthy: Schema.optional(Schema.Boolean),
                index: Schema.optional(Schema.Number)
              })
            )
          )
        )
      })
    )
  )
})

/**
 * The body as the reference README documents it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ReadmeResponse = Schema.Struct({
  success: Schema.Boolean,
  message: Schema.optional(Schema.String),
  msg: Schema.optional(Schema.String),
  data: Schema.optional(
    Schema.NullOr(
      Schema.Struct({
        services: Schema.optional(
          Schema.NullOr(
            Schema.Array(
              Schema.Struct({
                host: Schema.String,
                port: Schema.Number,
                status: Schema.String,
                avatar_id: Schema.optional(Schema.NullOr(Schema.String)),
                healthy: Schema.optional(Schema.Boolean)
              })
            )
          )
        )
      })
    )
  )
})

/**
 * @since 0.1.0
 * @category schemas
 */
export const DiscoveryResponse = Schema.Union(CodeResponse, ReadmeResponse)

const decodeResponse = Schema.decodeUnknownEither(DiscoveryResponse)

/**
 * Whether an instance can take a new session: healthy, and `available` (README shape:
 * `active`).
 *
 * @since 0.1.0
 * @category models
 */
export const isUsable = (instance: Instance): boolean =>
  instance.healthy && (instance.status === "available" || instance.status === "active")

/**
 * Reads a decoded body: the instances it lists, or why it failed.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseResponse = (
  body: typeof DiscoveryResponse.Type
): Either.Either<ReadonlyArray<Instance>, AuthenticationError | ServiceDiscoveryError> => {
  if ("code" in body) {
    if (body.code === 4001) {
      return Either.left(
        new AuthenticationError({
          source: "discovery",
          message: `Service discovery refused the API key (code 4001${body.msg ? `: ${body.msg}` : ""}); check AKOOL_API_KEY`
        })
      )
    }
    if (body.code !== 1000) {
      return Either.left(
        new ServiceDiscoveryError({
          reason: "rejected",
          message: `Service discovery answered code ${body.code}${body.msg ? `: ${body.msg}` : ""}`
        })
      )
    }
    return Either.right(
      (body.data?.instances ?? []).map((i) => ({
        host: i.ip,
        port: i.port,
        avatarId: i.avatar_id ?? undefined,
        status: i.status,
        healthy: i.healthy ?? true,
        scheme: "ws" as const
      }))
    )
  }
  if (!body.success) {
    const reason = body.message ?? body.msg
    return Either.left(
      new ServiceDiscoveryError({
        reason: "rejected",
        message: `Service discovery answered success: false${reason ? `: ${reason}` : ""}`
      })
    )
  }
  return Either.right(
    (body.data?.services ?? []).map((s) => ({
      host: s.host,
      port: s.port,
      avatarId: s.avatar_id ?? undefined,
      status: s.status,
      healthy: s.healthy ?? true,
      scheme: "ws" as const
    }))
  )
}

/**
 * Orders usable instances: those for `avatarId` first, each group shuffled.
 *
 * @since 0.1.0
 * @category parsing
 */
export const rank = (instances: ReadonlyArray<Instance>, avatarId: string): Effect.Effect<ReadonlyArray<Instance>> => {
  const [others, preferred] = Arr.partition(instances.filter(isUsable), (i) => i.avatarId === avatarId)
  return Effect.zipWith(Random.shuffle(preferred), Random.shuffle(others), (a, b) => [...a, ...b])
}

/**
 * The request URL: the scheme and host of the configured URL, the fixed path, and the
 * test group for `env: "test"`.
 *
 * @since 0.1.0
 * @category models
 */
export const requestUrl = (discoveryUrl: string, env: "test" | "prod"): string => {
  const url = new URL(discoveryUrl)
  const target = new URL(SERVICE_STATUS_PATH, url.origin)
  if (env === "test") target.searchParams.set("group_name", "WEBSOCKET_GROUP_TEST")
  return target.toString()
}

/**
 * Discovery over HTTP.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Service, never, HttpClient.HttpClient | AvatarConfig> = Effect.gen(function* () {
  const config = yield* AvatarConfig
  const client = yield* HttpClient.HttpClient
  const url = requestUrl(config.discoveryUrl, config.env)
  const timeoutMs = Duration.toMillis(config.discoveryTimeout)

  const fetchInstances = Effect.gen(function* () {
    const request = HttpClientRequest.get(url).pipe(
      HttpClientRequest.setHeader("api_key", Redacted.value(config.apiKey)),
      HttpClientRequest.acceptJson
    )
    const response = yield* client.execute(request)
    // PROTOCOL.md: 401 is a bad key; every other status, 403 included, is a discovery failure
    if (response.status === 401) {
      return yield* new AuthenticationError({
        source: "discovery",
        message: `Service discovery refused the API key (HTTP ${response.status}); check AKOOL_API_KEY`
      })
    }
    if (response.status !== 200) {
      return yield* new ServiceDiscoveryError({
        reason: "status",
        status: response.status,
        message: `Service discovery at ${new URL(url).origin} answered HTTP ${response.status}`
      })
    }
    const json = yield* response.json.pipe(
      Effect.mapError(
        () =>
          new ServiceDiscoveryError({
            reason: "decode",
            message: `Service discovery at ${new URL(url).origin} answered with a body that is not JSON`
          })
      )
    )
    const decoded = decodeResponse(json)
    if (Either.isLeft(decoded)) {
      return yield* new ServiceDiscoveryError({
        reason: "decode",
        message: `Service discovery answered a body of unknown shape: ${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}`
      })
    }
    return yield* parseResponse(decoded.right)
  }).pipe(
    Effect.scoped,
    Effect.catchTag("RequestError", (e) =>
      Effect.fail(
        new ServiceDiscoveryError({
          reason: "transport",
          message: `Service discovery at ${new URL(url).origin} could not be reached (${e.reason}${e.description ? `: ${e.description}` : ""})`
        })
      )
    ),
    Effect.catchTag("ResponseError", (e) =>
      Effect.fail(
        new ServiceDiscoveryError({
          reason: "transport",
          status: e.response.status,
          message: `Service discovery response could not be read (${e.reason})`
        })
      )
    ),
    Effect.timeoutFail({
      duration: config.discoveryTimeout,
      onTimeout: () =>
        new ServiceDiscoveryError({
          reason: "timeout",
          message: `Service discovery at ${new URL(url).origin} did not answer within ${timeoutMs} ms`
        })
    }),
    // the key travels in `api_key`, which the platform does not redact in spans by default
    Effect.locallyWith(Headers.currentRedactedNames, (names) => [...names, "api_key"])
  )

  return Discovery.of({
    instances: (avatarId) =>
      fetchInstances.pipe(
        Effect.flatMap((all) => rank(all, avatarId)),
        Effect.filterOrFail(
          (ranked) => ranked.length > 0,
          () =>
            new ServiceDiscoveryError({
              reason: "empty",
              message: `Service discovery found no healthy, available instance (for avatar ${avatarId} or any other)`
            })
        ),
        Effect.withSpan("Discovery.instances", {
          attributes: { "akool.avatar_id": avatarId, "akool.env": config.env, "url.full": url }
        })
      )
  })
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Discovery, never, HttpClient.HttpClient | AvatarConfig> = Layer.effect(Discovery, make)

/**
 * Skips HTTP: always offers these instances (for a known instance or a test).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStatic = (
  instances: ReadonlyArray<
    Pick<Instance, "host" | "port"> & Partial<Pick<Instance, "avatarId" | "scheme" | "status" | "healthy">>
  >
): Layer.Layer<Discovery> => {
  const all: ReadonlyArray<Instance> = instances.map((i) => ({
    host: i.host,
    port: i.port,
    avatarId: i.avatarId,
    status: i.status ?? "available",
    healthy: i.healthy ?? true,
    scheme: i.scheme ?? "ws"
  }))
  return Layer.succeed(
    Discovery,
    Discovery.of({
      instances: (avatarId) =>
        rank(all, avatarId).pipe(
          Effect.filterOrFail(
            (ranked) => ranked.length > 0,
            () =>
              new ServiceDiscoveryError({ reason: "empty", message: "The static instance list has no usable instance" })
          )
        )
    })
  )
}
