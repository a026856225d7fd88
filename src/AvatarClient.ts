/**
 * The entry service: `session(options)` opens a scoped avatar session. `layerNode` wires
 * everything for Node (HTTP client, WebSocket constructor with headers, discovery); on any
 * other platform, `layer` takes the parts from the context.
 *
 * @since 0.1.0
 */

import type * as HttpClient from "@effect/platform/HttpClient"
import * as Socket from "@effect/platform/Socket"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as AvatarConfig from "./AvatarConfig.js"
import type { AvatarError, ConfigurationError } from "./AvatarError.js"
import * as AvatarSession from "./AvatarSession.js"
import * as Discovery from "./Discovery.js"
import * as NodeTransport from "./internal/connection/nodeTransport.js"
import * as FrameClock from "./internal/dataplane/frameClock.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Opens a session that lives until the scope closes. */
  readonly session: (
    options?: AvatarSession.Options
  ) => Effect.Effect<AvatarSession.AvatarSession, AvatarError, Scope.Scope>
  readonly config: AvatarConfig.Resolved
}

/**
 * @since 0.1.0
 * @category tags
 */
export class AvatarClient extends Context.Tag("akool-streaming-avatar/AvatarClient")<AvatarClient, Service>() {}

/**
 * Builds the client. One pacing clock serves every session it opens.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  Service,
  never,
  Scope.Scope | AvatarConfig.AvatarConfig | Discovery.Discovery | Socket.WebSocketConstructor
> = Effect.gen(function* () {
  const clock = yield* FrameClock.make()
  // picked, not the whole context: that would carry the layer's Scope into every session
  const context = Context.pick(
    AvatarConfig.AvatarConfig,
    Discovery.Discovery,
    Socket.WebSocketConstructor
  )(yield* Effect.context<AvatarConfig.AvatarConfig | Discovery.Discovery | Socket.WebSocketConstructor>())
  const config = yield* AvatarConfig.AvatarConfig
  return AvatarClient.of({
    config,
    session: (options) =>
      AvatarSession.make(options).pipe(Effect.provide(context), Effect.provideService(AvatarSession.Clock, clock))
  })
})

/**
 * The client from its parts, for any platform that provides them.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<
  AvatarClient,
  never,
  AvatarConfig.AvatarConfig | Discovery.Discovery | Socket.WebSocketConstructor
> = Layer.scoped(AvatarClient, make)

/**
 * A `Socket.WebSocketConstructor` for Node built on `ws`, which sends the `api_key` header
 * (the platform's own Node constructor sends no custom headers). Compression is off: audio
 * in base64 gains little from it and pays for it in CPU.
 *
 * Its sockets carry the connection's fast path for audio: each chat message built as one
 * Buffer, a batch of frames corked into one write, and an abort that destroys the TCP socket
 * instead of waiting for a closing handshake the peer may never answer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeNodeWebSocketConstructor: (
  apiKey: Redacted.Redacted<string>
) => (url: string, protocols?: string | Array<string>) => globalThis.WebSocket = NodeTransport.makeWebSocketConstructor

/**
 * {@link makeNodeWebSocketConstructor} with the key of the `AvatarConfig` in context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWebSocketConstructorNode: Layer.Layer<Socket.WebSocketConstructor, never, AvatarConfig.AvatarConfig> =
  Layer.effect(
    Socket.WebSocketConstructor,
    Effect.map(AvatarConfig.AvatarConfig, (config) => makeNodeWebSocketConstructor(config.apiKey))
  )

/**
 * Node wiring on top of a configuration layer: HTTP discovery over undici (the engine of
 * Node's own `fetch`; about 0.7 ms faster a request than `node:http` on loopback), and `ws`
 * WebSockets that send the `api_key` header.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNodeFrom = <E>(
  config: Layer.Layer<AvatarConfig.AvatarConfig, E>
): Layer.Layer<AvatarClient | AvatarConfig.AvatarConfig, E> =>
  layer.pipe(
    Layer.provide(Layer.mergeAll(Discovery.layer, layerWebSocketConstructorNode)),
    Layer.provide(NodeHttpClient.layerUndici satisfies Layer.Layer<HttpClient.HttpClient>),
    Layer.provideMerge(config)
  )

/**
 * Everything for Node from options.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNode = (
  options: AvatarConfig.Options
): Layer.Layer<AvatarClient | AvatarConfig.AvatarConfig, ConfigurationError> =>
  layerNodeFrom(AvatarConfig.layer(options))

/**
 * Everything for Node from `AKOOL_API_KEY`, `AKOOL_DISCOVERY_URL`, `AKOOL_ENV` and
 * `AKOOL_AVATAR_ID`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNodeConfig: Layer.Layer<
  AvatarClient | AvatarConfig.AvatarConfig,
  ConfigurationError | ConfigError.ConfigError
> = layerNodeFrom(AvatarConfig.layerConfig())

/**
 * Opens a session with the client in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const session = (
  options?: AvatarSession.Options
): Effect.Effect<AvatarSession.AvatarSession, AvatarError, Scope.Scope | AvatarClient> =>
  Effect.flatMap(AvatarClient, (client) => client.session(options))
