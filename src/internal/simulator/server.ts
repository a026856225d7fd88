import * as Http from "node:http"
import * as Headers from "@effect/platform/Headers"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Scope from "effect/Scope"
import type * as AvatarSimulator from "../../AvatarSimulator.js"

/**
 * Serves `app` on `host:port` in the current scope and returns the port it listens on.
 *
 * The simulator's spans would only clutter the traces of the client under test, and its
 * headers carry the key: no tracing, and `api_key` is redacted wherever headers print.
 *
 * @internal
 */
export const listen = <E>(
  host: string,
  port: number,
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, HttpServerRequest.HttpServerRequest | Scope.Scope>,
  listenError: (message: string) => AvatarSimulator.SimulatorError
): Effect.Effect<number, AvatarSimulator.SimulatorError, Scope.Scope> =>
  Effect.gen(function* () {
    // The server gets a scope of its own, closed after the app's. The platform adds the
    // finalizer of its WebSocket server, which waits for every socket to close, at the first
    // upgrade: in one shared scope it would run first and wait for sockets that only the
    // app's fibers, interrupted later, would close.
    const serverScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const server = Http.createServer()
    const httpServer = yield* NodeHttpServer.make(() => server, { port, host }).pipe(
      Effect.mapError((e) =>
        listenError(
          `the simulator could not listen on ${host}:${port}: ${e.cause instanceof Error ? e.cause.message : String(e.cause)}`
        )
      ),
      Scope.extend(serverScope)
    )
    // Runs before the server's own finalizer, which waits for every connection to end:
    // a discovery answer held back by a long `delay` must not hold the scope open.
    yield* Scope.addFinalizer(
      serverScope,
      Effect.sync(() => server.closeAllConnections())
    )
    yield* httpServer.serve(app).pipe(
      HttpMiddleware.withTracerDisabledWhenEffect(() => true),
      Effect.locallyWith(Headers.currentRedactedNames, (names) => [...names, "api_key"])
    )
    const address = httpServer.address
    return address._tag === "TcpAddress" ? address.port : port
  })
