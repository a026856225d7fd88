import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Socket from "@effect/platform/Socket"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import * as Constants from "../constants.js"
import * as Connection from "./connection.js"
import * as Handler from "./handler.js"
import type * as Instance from "./instance.js"
import type * as Records from "./records.js"

/** @internal What accepting and refusing connections needs from the simulator. */
export interface UpgradeContext extends Handler.HandlerContext {
  readonly records: Records.Records
  readonly keyAccepted: (key: string | undefined) => boolean
}

const REFUSAL_REASONS: Record<number, string> = {
  4001: "authentication failed",
  4003: "instance occupied: only one connection allowed",
  4004: "reconnecting too soon"
}

/** What the socket does once it is open: refuse, or say `websocket_connected` as the faults allow. */
const onOpen = (
  context: UpgradeContext,
  connection: Connection.Connection,
  refusal: number | undefined,
  write: Connection.Send,
  send: Connection.Send,
  scope: Scope.Scope
) =>
  Effect.suspend(() => {
    connection.unsafeOpened()
    if (refusal !== undefined) {
      connection.unsafeRequestClose({
        mode: "close",
        code: refusal,
        reason: REFUSAL_REASONS[refusal] ?? "refused",
        dropped: false
      })
      return Effect.void
    }
    const faults = connection.instance.faults
    if (faults.noWebsocketConnected === true) return Effect.void
    const connected = Effect.suspend(() => send(context.messages.encode("system", { status: "websocket_connected" })))
    // At once when nothing holds it back, ahead of anything the client could send;
    // otherwise forked, so that a stall or a delay does not hold up the connection.
    if (faults.websocketConnectedDelay === undefined && faults.stall !== true) {
      return write(context.messages.encode("system", { status: "websocket_connected" }))
    }
    return Effect.asVoid(
      Effect.forkIn(
        faults.websocketConnectedDelay === undefined
          ? connected
          : Effect.delay(connected, faults.websocketConnectedDelay),
        scope
      )
    )
  })

/**
 * `ws` completes an upgrade at once or never: it destroys the socket of a client that has
 * left without calling back, and the platform waits for it uninterruptibly. The check
 * before the decision catches that client; should one slip through, its socket's close
 * ends the connection, and the upgrade is left behind rather than waited for.
 */
const abandoned = (connection: Connection.Connection) =>
  Effect.async<Either.Either<void, Socket.SocketError>>((resume) => {
    const onClose = () => {
      if (!connection.record.isOpen) resume(Effect.succeed(Either.right(undefined)))
    }
    connection.tcp.once("close", onClose)
    if (connection.tcp.destroyed) onClose()
    return Effect.sync(() => connection.tcp.off("close", onClose))
  })

const run = (
  context: UpgradeContext,
  connection: Connection.Connection,
  refusal: number | undefined,
  socket: Socket.Socket
) =>
  Effect.gen(function* () {
    const write = yield* socket.writer
    const clock = yield* Effect.clock
    const scope = yield* Effect.scope
    const writeNow: Connection.Send = (data) => Effect.ignore(write(data))
    connection.unsafeSetWriter(writeNow)
    // Every message the instance sends waits while it is stalled.
    const gate = connection.instance.gate
    const send: Connection.Send = (data) => gate.whenOpen(writeNow(data))
    yield* Effect.forkScoped(connection.closeWhenRequested(write))
    const handler = Handler.make(context, connection, clock, send)
    const result = yield* socket
      .runRaw(handler, { onOpen: onOpen(context, connection, refusal, writeNow, send, scope) })
      .pipe(Effect.either, Effect.disconnect, Effect.raceFirst(abandoned(connection)))
    if (Either.isLeft(result) && result.left._tag === "SocketError" && result.left.reason === "Close") {
      connection.unsafePeerClosed(result.left.code)
    }
  }).pipe(
    Effect.scoped,
    // Only a connection the simulator did not end itself is interrupted: one that arrived
    // as it shut down, or whose client left. Its close must not wait on the peer.
    Effect.onInterrupt(() => Effect.sync(() => connection.tcp.destroy()))
  )

/** The HTTP refusals that come before any upgrade, if one applies. */
const refusedRequest = (instance: Instance.Instance, request: HttpServerRequest.HttpServerRequest, url: URL) => {
  if (url.pathname !== Constants.WEBSOCKET_PATH) {
    return HttpServerResponse.text(`no route ${url.pathname}`, { status: 404 })
  }
  const refuseUpgrade = instance.faults.refuseUpgrade
  if (refuseUpgrade !== undefined) {
    return HttpServerResponse.text(`upgrade refused with ${refuseUpgrade}`, { status: refuseUpgrade })
  }
  if (request.headers.upgrade?.toLowerCase() !== "websocket") {
    return HttpServerResponse.text("this endpoint only speaks WebSocket", { status: 426 })
  }
  if (
    request.headers["sec-websocket-key"] === undefined ||
    !["8", "13"].includes(request.headers["sec-websocket-version"] ?? "")
  ) {
    return HttpServerResponse.text("not a WebSocket handshake", { status: 400 })
  }
  return undefined
}

/**
 * The HTTP app of one instance: WebSocket upgrades on its path, accepted or refused as its
 * faults and its one-connection rule say.
 *
 * @internal
 */
export const app = (context: UpgradeContext, instance: Instance.Instance) =>
  Effect.gen(function* () {
    // A stalled instance answers nothing, not even an upgrade: the request waits for the
    // stall to end. Interruptible: the platform runs an HttpApp uninterruptibly, and
    // neither the client leaving nor the simulator closing must wait for it.
    yield* Effect.interruptible(instance.gate.await)
    const request = yield* HttpServerRequest.HttpServerRequest
    const url = new URL(request.url, "ws://simulator")
    const refused = refusedRequest(instance, request, url)
    if (refused !== undefined) return refused
    const tcp = NodeHttpServerRequest.toIncomingMessage(request).socket
    const socket = yield* request.upgrade
    const closeRequest = yield* Deferred.make<Connection.CloseRequest>()
    const closed = yield* Deferred.make<void>()

    // Nothing yields from the decision to the start of the connection: two connections
    // that arrive together cannot both take the instance, nor leave it taken if interrupted.
    // The platform runs an HttpApp uninterruptibly; the connection itself must be
    // interruptible, or closing the scope would wait for the client to leave.
    return yield* Effect.uninterruptible(
      Effect.suspend(() => {
        // A client that gave up while the upgrade was held back (a stall) has closed its
        // side. `ws` destroys such a socket without ever completing the upgrade, and the
        // platform's wait for it cannot be interrupted: it would hold the scope forever.
        // Nothing in between yields, so the upgrade below sees the socket as checked here.
        if (!tcp.readable || !tcp.writable) {
          tcp.destroy()
          return Effect.succeed(HttpServerResponse.empty())
        }
        const refusal = instance.unsafeRefusal(context.keyAccepted(request.headers.api_key))
        const record = context.records.unsafeConnection(
          instance.index,
          url.searchParams.get("session_id") ?? "",
          url.searchParams.get("avatar_id") ?? "",
          refusal
        )
        const connection = new Connection.Connection(instance, record, tcp, closeRequest, closed)
        instance.unsafeAdd(connection, refusal === undefined)
        return Effect.interruptible(run(context, connection, refusal, socket)).pipe(
          Effect.ensuring(connection.finish),
          Effect.as(HttpServerResponse.empty())
        )
      })
    )
  }).pipe(Effect.catchTag("RequestError", () => Effect.succeed(HttpServerResponse.empty({ status: 400 }))))
