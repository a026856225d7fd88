import * as Crypto from "node:crypto"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Headers from "@effect/platform/Headers"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Socket from "@effect/platform/Socket"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as AvatarSimulator from "../../AvatarSimulator.js"
import * as Protocol from "../../Protocol.js"

/** @internal */
export const DEFAULT_AVATAR_ID = "dvp_Tristan_cloth2_1080P"

/** @internal */
export const DISCOVERY_PATH = "/streamingAvatar/service_status"

/** @internal */
export const WEBSOCKET_PATH = "/streamingAvatar/ws/v1"

/** @internal */
export const MALFORMED_KINDS: ReadonlyArray<AvatarSimulator.MalformedKind> = [
  "not-json",
  "binary",
  "not-an-object",
  "no-type",
  "wrong-shape",
  "unknown-type",
  "unknown-ack",
  "huge"
]

const BYTES_PER_SECOND = 32_000

/** The `text` of a `huge` message: 2 MiB. */
const HUGE_TEXT_LENGTH = 2 * 1024 * 1024

/**
 * How long a close the simulator starts waits for the peer's answer before the socket is
 * destroyed: `ws` would wait 30 seconds for a peer that is gone or does not read.
 */
const CLOSE_TIMEOUT = "1 second"

/**
 * The real clock, for the bounds that guard against a peer: a peer lives in real time,
 * even when a test runs the simulator on the TestClock.
 */
const liveClock = Clock.make()

// ---------------------------------------------------------------------------
// state: plain mutable records owned by one simulator, so that the per-frame path is a
// few property writes with no fiber, no Effect and no allocation beyond the frame itself
// ---------------------------------------------------------------------------

interface Instance {
  readonly index: number
  readonly avatarId: string
  readonly status: string
  readonly healthy: boolean
  port: number
  faults: AvatarSimulator.Faults
  tooSoonLeft: number
  refuseLeft: number
  /** The connection that holds the instance, if any: only one is allowed. */
  holder: Connection | undefined
  /**
   * Closed while the instance is stalled: every message it sends, and every upgrade it
   * answers, waits on it.
   */
  readonly gate: Effect.Latch
}

/** What `pause` and `resume` stop and restart the reading of a socket with. */
interface Pausable {
  pause(): unknown
  resume(): unknown
}

interface CloseRequest {
  readonly mode: AvatarSimulator.DropMode
  /** Not used by `"terminate"`. */
  readonly code: number
  readonly reason: string
  /** On purpose, by a fault or `drop`: not a refusal, nor the goodbye at shutdown. */
  readonly dropped: boolean
}

interface Connection {
  readonly id: number
  readonly instance: number
  readonly sessionId: string
  readonly avatarId: string
  readonly frames: Array<AvatarSimulator.ChatFrame>
  frameCount: number
  audioBytes: number
  readonly mids: Array<string>
  readonly commands: Array<AvatarSimulator.CommandRecord>
  pings: number
  invalid: number
  readonly refusedWith: number | undefined
  open: boolean
  /** The connection's fiber has ended. */
  done: boolean
  closeCode: number | undefined
  /** The code the simulator closed with: it wins over the code the peer echoes. */
  sentClose: number | undefined
  /** The code of the socket's close event, once the raw socket has been seen (first message). */
  peerCloseCode: number | undefined
  watching: boolean
  errorSent: boolean
  malformedSent: boolean
  /**
   * The simulator has decided to end the connection: what the client sends from now on
   * is not recorded, as it would never have arrived.
   */
  ending: boolean
  dropped: boolean
  /** The TCP socket, known from the upgrade request on. */
  readonly tcp: Net.Socket
  /** What stalls the socket's reading, once it is open. */
  reader: Pausable | undefined
  paused: boolean
  /** Writes a frame without waiting for a stall to end; set before the socket opens. */
  write: ((data: string | Uint8Array) => Effect.Effect<void>) | undefined
  readonly closeRequest: Deferred.Deferred<CloseRequest>
  readonly closed: Deferred.Deferred<void>
}

interface State {
  connectionCounter: number
  midCounter: number
  readonly connections: Array<Connection>
  readonly audio: Map<string, Array<Uint8Array>>
  readonly discoveryRequests: Array<AvatarSimulator.DiscoveryRequest>
  discovery: AvatarSimulator.DiscoveryBehaviour
}

const snapshot = (c: Connection): AvatarSimulator.SessionRecord => ({
  id: c.id,
  instance: c.instance,
  sessionId: c.sessionId,
  avatarId: c.avatarId,
  frames: c.frames.slice(),
  frameCount: c.frameCount,
  audioBytes: c.audioBytes,
  mids: c.mids.slice(),
  commands: c.commands.slice(),
  pings: c.pings,
  invalid: c.invalid,
  refusedWith: c.refusedWith,
  open: c.open,
  closeCode: c.closeCode,
  dropped: c.dropped
})

// ---------------------------------------------------------------------------
// decoding
// ---------------------------------------------------------------------------

const decodeClientMessage = Schema.decodeUnknownEither(Protocol.ClientMessage)

interface ChatJson {
  readonly v: unknown
  readonly mid: unknown
  readonly pld: unknown
}

/**
 * The same judgement as `Protocol.Chat` (v 2, a string mid, a payload object with a string
 * `audio`, extra keys ignored), without the Schema machinery: chat is the one message that
 * arrives 25 to 50 times a second per session. The test suite holds the two equal.
 */
const validChatAudio = (json: ChatJson): string | undefined => {
  if (json.v !== Protocol.VERSION || typeof json.mid !== "string") return undefined
  const pld = json.pld
  if (typeof pld !== "object" || pld === null) return undefined
  const audio = (pld as { readonly audio?: unknown }).audio
  return typeof audio === "string" ? audio : undefined
}

// ---------------------------------------------------------------------------
// make
// ---------------------------------------------------------------------------

/** The codes `ws` lets a peer send in a close frame (RFC 6455 section 7.4). */
const isCloseCode = (code: number) =>
  Number.isInteger(code) &&
  ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999))

const isUnspecified = (host: string) => host === "0.0.0.0" || host === "::" || host === ""

const isCount = (n: unknown, min: number): boolean => typeof n === "number" && Number.isInteger(n) && n >= min

const kindsProblem = (kinds: ReadonlyArray<AvatarSimulator.MalformedKind> | undefined): string | undefined => {
  if (kinds === undefined) return undefined
  if (kinds.length === 0) return "the list of malformed kinds is empty"
  const unknown = kinds.find((kind) => !MALFORMED_KINDS.includes(kind))
  return unknown === undefined ? undefined : `${JSON.stringify(unknown)} is not a malformed kind`
}

/** What a server could not act on in these faults, if anything. */
const faultsProblem = (faults: AvatarSimulator.Faults): string | undefined => {
  const drop = faults.dropAfterFrames
  if (drop !== undefined) {
    if (!isCount(drop.frames, 1)) return `dropAfterFrames.frames must be a whole number >= 1, not ${drop.frames}`
    if (drop.mode !== undefined && drop.mode !== "close" && drop.mode !== "terminate") {
      return `dropAfterFrames.mode is "close" or "terminate", not ${JSON.stringify(drop.mode)}`
    }
    if (drop.code !== undefined && !isCloseCode(drop.code)) {
      return `dropAfterFrames.code ${drop.code} is not a close code a server may send`
    }
  }
  const refuse = faults.refuseFirst
  if (refuse !== undefined) {
    if (refuse.code !== 4001 && refuse.code !== 4003 && refuse.code !== 4004) {
      return `refuseFirst.code is 4001, 4003 or 4004, not ${refuse.code}`
    }
    if (!isCount(refuse.attempts, 0)) return `refuseFirst.attempts must be a whole number >= 0, not ${refuse.attempts}`
  }
  const malformed = faults.malformed
  if (malformed !== undefined) {
    if (!isCount(malformed.afterFrames, 1)) {
      return `malformed.afterFrames must be a whole number >= 1, not ${malformed.afterFrames}`
    }
    if (!isCount(malformed.count, 0)) return `malformed.count must be a whole number >= 0, not ${malformed.count}`
    return kindsProblem(malformed.kinds)
  }
  return undefined
}

const REFUSAL_REASONS: Record<number, string> = {
  4001: "authentication failed",
  4003: "instance occupied: only one connection allowed",
  4004: "reconnecting too soon"
}

/**
 * What to pause to stall a socket: the `ws` WebSocket on it, which `ws` keeps on the TCP
 * socket it upgraded under its own symbol `websocket` (the platform's Socket does not
 * expose it). Pausing the TCP socket alone does not hold: `ws` resumes it whenever its
 * parser drains, unless the WebSocket itself is paused.
 */
const readerOf = (tcp: Net.Socket): Pausable => {
  for (const symbol of Object.getOwnPropertySymbols(tcp)) {
    if (symbol.description !== "websocket") continue
    const candidate = (tcp as unknown as Record<symbol, Partial<Pausable> | undefined>)[symbol]
    if (typeof candidate?.pause === "function" && typeof candidate.resume === "function") {
      return candidate as Pausable
    }
  }
  return tcp
}

const toInstances = (options: AvatarSimulator.Options): Array<Instance> => {
  const list: ReadonlyArray<AvatarSimulator.InstanceOptions> =
    options.instances === undefined
      ? [{}]
      : typeof options.instances === "number"
        ? Array.from({ length: Math.max(0, Math.floor(options.instances)) }, () => ({}))
        : options.instances
  return list.map((o, index) => ({
    index,
    avatarId: o.avatarId ?? DEFAULT_AVATAR_ID,
    status: o.status ?? "available",
    healthy: o.healthy ?? true,
    port: 0,
    faults: o.faults ?? {},
    tooSoonLeft: o.faults?.tooSoon ?? 0,
    refuseLeft: o.faults?.refuseFirst?.attempts ?? 0,
    holder: undefined,
    gate: Effect.unsafeMakeLatch(o.faults?.stall !== true)
  }))
}

/** @internal */
export const make = (
  options: AvatarSimulator.Options,
  listenError: (message: string) => AvatarSimulator.SimulatorError
): Effect.Effect<AvatarSimulator.Service, AvatarSimulator.SimulatorError, Scope.Scope> =>
  Effect.gen(function* () {
    const host = options.host ?? "127.0.0.1"
    const advertisedHost = isUnspecified(host) ? "127.0.0.1" : host
    const shape = options.discoveryShape ?? "code"
    const recordAudio = options.recordAudio ?? true
    // Unwrapped once, here, and only ever compared: it is never logged nor recorded.
    const expectedKey =
      options.apiKey === undefined
        ? undefined
        : Redacted.isRedacted(options.apiKey)
          ? Redacted.value(options.apiKey)
          : options.apiKey
    const keyAccepted = (key: string | undefined): boolean =>
      typeof key === "string" && key.length > 0 && (expectedKey === undefined || key === expectedKey)

    const instances = toInstances(options)
    for (const instance of instances) {
      const problem = faultsProblem(instance.faults)
      if (problem !== undefined) {
        return yield* Effect.dieMessage(`AvatarSimulator.make: instance ${instance.index}: ${problem}`)
      }
    }
    const state: State = {
      connectionCounter: 0,
      midCounter: 0,
      connections: [],
      audio: new Map(),
      discoveryRequests: [],
      discovery: {}
    }
    const nextMid = () => `sim-${(++state.midCounter).toString(36)}`
    const message = (type: string, pld: object) => JSON.stringify({ v: Protocol.VERSION, type, mid: nextMid(), pld })
    let hugeText: string | undefined

    // The simulator's spans would only clutter the traces of the client under test, and
    // its headers carry the key: no tracing, and `api_key` is redacted wherever headers print.
    const start = <E>(
      port: number,
      app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, HttpServerRequest.HttpServerRequest | Scope.Scope>
    ) =>
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

    // -------------------------------------------------------------------------
    // discovery
    // -------------------------------------------------------------------------

    const discoveryBody = (): unknown =>
      shape === "code"
        ? {
            code: 1000,
            msg: "ok",
            data: {
              instances: instances.map((i) => ({
                ip: advertisedHost,
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
              services: instances.map((i) => ({
                host: advertisedHost,
                port: i.port,
                status: !i.healthy ? "unhealthy" : i.status === "available" ? "active" : i.status
              }))
            }
          }

    const discoveryApp = Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const url = new URL(request.url, "http://simulator")
      const accepted = keyAccepted(request.headers.api_key)
      state.discoveryRequests.push({
        query: Object.fromEntries(url.searchParams),
        path: url.pathname,
        keyAccepted: accepted
      })
      const behaviour = state.discovery
      // interruptible: the platform runs an HttpApp uninterruptibly, and a long delay must
      // not hold the scope open when the simulator closes
      if (behaviour.delay !== undefined) yield* Effect.interruptible(Effect.sleep(behaviour.delay))
      if (url.pathname !== DISCOVERY_PATH) {
        return HttpServerResponse.unsafeJson({ code: 404, msg: `no route ${url.pathname}` }, { status: 404 })
      }
      if (request.method !== "GET") {
        return HttpServerResponse.unsafeJson({ code: 405, msg: "use GET" }, { status: 405 })
      }
      if (behaviour.status !== undefined || behaviour.body !== undefined) {
        const status = behaviour.status ?? 200
        const body =
          behaviour.body !== undefined
            ? behaviour.body
            : status === 200
              ? discoveryBody()
              : { code: status, msg: `simulated HTTP ${status}` }
        return typeof body === "string"
          ? HttpServerResponse.text(body, { status, contentType: "application/json" })
          : HttpServerResponse.unsafeJson(body, { status })
      }
      if (!accepted) {
        return HttpServerResponse.unsafeJson(
          { code: 4001, msg: "authentication failed: missing or invalid api_key" },
          { status: 401 }
        )
      }
      return HttpServerResponse.unsafeJson(discoveryBody())
    })

    // -------------------------------------------------------------------------
    // instances
    // -------------------------------------------------------------------------

    const instanceApp = (instance: Instance) =>
      Effect.gen(function* () {
        // A stalled instance answers nothing, not even an upgrade: the request waits for the
        // stall to end. Interruptible: the platform runs an HttpApp uninterruptibly, and
        // neither the client leaving nor the simulator closing must wait for it.
        yield* Effect.interruptible(instance.gate.await)
        const request = yield* HttpServerRequest.HttpServerRequest
        const url = new URL(request.url, "ws://simulator")
        if (url.pathname !== WEBSOCKET_PATH) {
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
        const tcp = NodeHttpServerRequest.toIncomingMessage(request).socket
        const socket = yield* request.upgrade
        const closeRequest = yield* Deferred.make<CloseRequest>()
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
            const faults = instance.faults
            let refusal: number | undefined
            if (faults.rejectKey === true || !keyAccepted(request.headers.api_key)) {
              refusal = 4001
            } else if (instance.refuseLeft > 0 && faults.refuseFirst !== undefined) {
              instance.refuseLeft--
              refusal = faults.refuseFirst.code
            } else if (faults.occupied === true || instance.holder !== undefined) {
              refusal = 4003
            } else if (instance.tooSoonLeft > 0) {
              instance.tooSoonLeft--
              refusal = 4004
            }
            const connection: Connection = {
              id: ++state.connectionCounter,
              instance: instance.index,
              sessionId: url.searchParams.get("session_id") ?? "",
              avatarId: url.searchParams.get("avatar_id") ?? "",
              frames: [],
              frameCount: 0,
              audioBytes: 0,
              mids: [],
              commands: [],
              pings: 0,
              invalid: 0,
              refusedWith: refusal,
              open: false,
              done: false,
              closeCode: undefined,
              sentClose: undefined,
              peerCloseCode: undefined,
              watching: false,
              errorSent: false,
              malformedSent: false,
              ending: false,
              dropped: false,
              tcp,
              reader: undefined,
              paused: false,
              write: undefined,
              closeRequest,
              closed
            }
            state.connections.push(connection)
            if (refusal === undefined) instance.holder = connection
            return Effect.interruptible(runConnection(instance, connection, refusal, socket)).pipe(
              Effect.ensuring(finish(instance, connection)),
              Effect.as(HttpServerResponse.empty())
            )
          })
        )
      }).pipe(Effect.catchTag("RequestError", () => Effect.succeed(HttpServerResponse.empty({ status: 400 }))))

    const release = (instance: Instance, connection: Connection) => {
      if (instance.holder === connection) instance.holder = undefined
    }

    const pauseReading = (connection: Connection) => {
      if (connection.reader !== undefined && !connection.paused) {
        connection.paused = true
        connection.reader.pause()
      }
    }

    const resumeReading = (connection: Connection) => {
      if (connection.reader !== undefined && connection.paused) {
        connection.paused = false
        connection.reader.resume()
      }
    }

    const applyFaults = (instance: Instance, faults: AvatarSimulator.Faults) => {
      const wasStalled = instance.faults.stall === true
      instance.faults = faults
      instance.tooSoonLeft = faults.tooSoon ?? 0
      instance.refuseLeft = faults.refuseFirst?.attempts ?? 0
      const stalled = faults.stall === true
      if (stalled === wasStalled) return
      // Held-back messages are released first; what the sockets read once resumed arrives
      // later (from I/O, or a tick later from their buffers), so it is answered after them.
      // A connection that has not opened yet pauses itself when it opens.
      if (stalled) instance.gate.unsafeClose()
      else instance.gate.unsafeOpen()
      for (const c of state.connections) {
        if (c.instance !== instance.index || c.done) continue
        if (stalled && !c.ending) pauseReading(c)
        else if (!stalled) resumeReading(c)
      }
    }

    /**
     * The simulator decides to end the connection. The first decision wins. From now on
     * what the client sends is not recorded, and the instance is free: a client that
     * reconnects at once must not race the closing handshake.
     */
    const requestClose = (instance: Instance, connection: Connection, request: CloseRequest) => {
      connection.ending = true
      release(instance, connection)
      Deferred.unsafeDone(connection.closeRequest, Effect.succeed(request))
    }

    const runConnection = (
      instance: Instance,
      connection: Connection,
      refusal: number | undefined,
      socket: Socket.Socket
    ) =>
      Effect.gen(function* () {
        const write = yield* socket.writer
        const clock = yield* Effect.clock
        const scope = yield* Effect.scope
        connection.write = (data) => Effect.ignore(write(data))
        // Every message the instance sends waits while it is stalled.
        const send = (data: string | Uint8Array) => instance.gate.whenOpen(Effect.ignore(write(data)))

        yield* Deferred.await(connection.closeRequest).pipe(
          Effect.flatMap((request) =>
            Effect.suspend(() => {
              connection.sentClose ??= request.mode === "terminate" ? 1006 : request.code
              connection.dropped = request.dropped
              if (request.mode === "terminate") {
                connection.tcp.destroy()
                return Effect.void
              }
              // A stalled socket would never read the client's answering close frame.
              resumeReading(connection)
              // Forked: before the socket opens, the write waits for it. A peer that is gone,
              // or does not read, is cut off after a moment rather than waited for.
              return Effect.zipRight(
                Effect.forkScoped(Effect.ignore(write(new Socket.CloseEvent(request.code, request.reason)))),
                Effect.sleep(CLOSE_TIMEOUT).pipe(
                  Effect.zipRight(Effect.sync(() => connection.tcp.destroy())),
                  Effect.withClock(liveClock)
                )
              )
            })
          ),
          Effect.forkScoped
        )

        const onOpen = Effect.suspend(() => {
          connection.open = true
          connection.reader = readerOf(connection.tcp)
          const faults = instance.faults
          if (faults.stall === true && !connection.ending) pauseReading(connection)
          if (refusal !== undefined) {
            requestClose(instance, connection, {
              mode: "close",
              code: refusal,
              reason: REFUSAL_REASONS[refusal] ?? "refused",
              dropped: false
            })
            return Effect.void
          }
          if (faults.noWebsocketConnected === true) return Effect.void
          // At once when nothing holds it back, ahead of anything the client could send;
          // otherwise forked, so that a stall or a delay does not hold up the connection.
          if (faults.websocketConnectedDelay === undefined && faults.stall !== true) {
            return Effect.ignore(write(message("system", { status: "websocket_connected" })))
          }
          const connected = Effect.suspend(() => send(message("system", { status: "websocket_connected" })))
          return Effect.asVoid(
            Effect.forkIn(
              faults.websocketConnectedDelay === undefined
                ? connected
                : Effect.delay(connected, faults.websocketConnectedDelay),
              scope
            )
          )
        })

        // `ws` completes an upgrade at once or never: it destroys the socket of a client that
        // has left without calling back, and the platform waits for it uninterruptibly. The
        // check before the decision catches that client; should one slip through, its socket's
        // close ends the connection, and the upgrade is left behind rather than waited for.
        const abandoned = Effect.async<Either.Either<void, Socket.SocketError>>((resume) => {
          const onClose = () => {
            if (!connection.open) resume(Effect.succeed(Either.right(undefined)))
          }
          connection.tcp.once("close", onClose)
          if (connection.tcp.destroyed) onClose()
          return Effect.sync(() => connection.tcp.off("close", onClose))
        })
        const handler = makeHandler(instance, connection, clock, send)
        const result = yield* socket
          .runRaw(handler, { onOpen })
          .pipe(Effect.either, Effect.disconnect, Effect.raceFirst(abandoned))
        if (Either.isLeft(result) && result.left._tag === "SocketError" && result.left.reason === "Close") {
          connection.peerCloseCode ??= result.left.code
        }
      }).pipe(
        Effect.scoped,
        // Only a connection the simulator did not end itself is interrupted: one that arrived
        // as it shut down, or whose client left. Its close must not wait on the peer.
        Effect.onInterrupt(() => Effect.sync(() => connection.tcp.destroy()))
      )

    const finish = (instance: Instance, connection: Connection) =>
      Effect.suspend(() => {
        release(instance, connection)
        connection.open = false
        connection.done = true
        // 1000 and 1006 end `runRaw` cleanly, without their code: the close event tells
        // them apart when the socket has been seen; otherwise it was a clean close.
        connection.closeCode = connection.sentClose ?? connection.peerCloseCode ?? 1000
        return Deferred.succeed(connection.closed, undefined)
      })

    const hostile = (connection: Connection, kind: AvatarSimulator.MalformedKind): string | Uint8Array => {
      switch (kind) {
        case "not-json":
          return "{this is not json"
        case "binary":
          return new Uint8Array(Crypto.randomBytes(32))
        case "not-an-object":
          return "[1,2,3]"
        case "no-type":
          return JSON.stringify({ v: Protocol.VERSION, pld: {} })
        case "wrong-shape":
          return message("ack", { status: 17 })
        case "unknown-type":
          return message("subtitle", { text: "hi" })
        case "unknown-ack": {
          let original = `never-sent-${nextMid()}`
          while (connection.mids.includes(original)) original = `never-sent-${nextMid()}`
          return message("ack", { original_mid: original, status: "success" })
        }
        case "huge":
          hugeText ??= "x".repeat(HUGE_TEXT_LENGTH)
          return message("subtitle", { text: hugeText })
      }
    }

    const sendHostile = (
      connection: Connection,
      out: (data: string | Uint8Array) => Effect.Effect<void>,
      count: number,
      kinds: ReadonlyArray<AvatarSimulator.MalformedKind> = MALFORMED_KINDS
    ): Effect.Effect<void> =>
      Effect.forEach(
        Array.from({ length: count }, (_, i) => kinds[i % kinds.length]!),
        (kind) => Effect.suspend(() => out(hostile(connection, kind))),
        { discard: true }
      )

    const makeHandler = (
      instance: Instance,
      connection: Connection,
      clock: Clock.Clock,
      send: (data: string | Uint8Array) => Effect.Effect<void>
    ) => {
      const answer = (kind: Protocol.CommandName, mid: string, channel: string | undefined): Effect.Effect<void> => {
        const faults = instance.faults
        let effect: Effect.Effect<void>
        if (faults.commandError !== undefined && kind !== "leave_channel") {
          effect = send(
            message("error", {
              error_code: faults.commandError.code,
              error_message: faults.commandError.message,
              original_mid: mid
            })
          )
        } else {
          const ack =
            faults.noAck === true ? Effect.void : send(message("ack", { original_mid: mid, status: "success" }))
          if (kind === "set-params" && faults.noAgoraConnected !== true) {
            const agora = send(message("system", { status: "agora_connected", channel_id: channel ?? "" }))
            effect = Effect.zipRight(
              ack,
              faults.agoraConnectedDelay === undefined ? agora : Effect.delay(agora, faults.agoraConnectedDelay)
            )
          } else {
            effect = ack
          }
        }
        return faults.ackDelay === undefined ? effect : Effect.delay(effect, faults.ackDelay)
      }

      // `runRaw` hands the raw socket only to the effects a handler returns: the first
      // message watches its close event, whose code tells a clean close (1000) from a
      // vanished peer (1006), which `runRaw` does not.
      const watch = Effect.flatMap(Effect.serviceOption(Socket.WebSocket), (ws) =>
        Effect.sync(() => {
          if (ws._tag === "Some") {
            ws.value.addEventListener("close", (event) => {
              connection.peerCloseCode = event.code
            })
          }
        })
      )
      const handle = onMessage(instance, connection, clock, send, answer)
      return (data: string | Uint8Array): Effect.Effect<void> | undefined => {
        const effect = handle(data)
        if (connection.watching) return effect
        connection.watching = true
        return effect === undefined ? watch : Effect.zipRight(watch, effect)
      }
    }

    /** The faults that act after N chat frames; only called when one of them is set. */
    const afterFrame = (
      instance: Instance,
      connection: Connection,
      faults: AvatarSimulator.Faults,
      send: (data: string | Uint8Array) => Effect.Effect<void>
    ): Effect.Effect<void> | undefined => {
      let effect: Effect.Effect<void> | undefined
      const errorAfter = faults.errorAfterFrames
      if (errorAfter !== undefined && !connection.errorSent && connection.frameCount >= errorAfter.frames) {
        connection.errorSent = true
        effect = send(message("error", { error_code: errorAfter.code, error_message: errorAfter.message }))
      }
      const malformed = faults.malformed
      if (malformed !== undefined && !connection.malformedSent && connection.frameCount >= malformed.afterFrames) {
        connection.malformedSent = true
        const messages = sendHostile(connection, send, malformed.count, malformed.kinds)
        effect = effect === undefined ? messages : Effect.zipRight(effect, messages)
      }
      const drop = faults.dropAfterFrames
      if (drop !== undefined && connection.frameCount >= drop.frames) {
        const request: CloseRequest = {
          mode: drop.mode ?? "close",
          code: drop.code ?? 1011,
          reason: `dropped after ${drop.frames} chat frames`,
          dropped: true
        }
        if (effect === undefined) {
          requestClose(instance, connection, request)
          return undefined
        }
        // What the frame triggered leaves before the close; nothing after the frame counts.
        connection.ending = true
        release(instance, connection)
        return Effect.zipRight(
          effect,
          Effect.sync(() => requestClose(instance, connection, request))
        )
      }
      return effect
    }

    const onMessage = (
      instance: Instance,
      connection: Connection,
      clock: Clock.Clock,
      send: (data: string | Uint8Array) => Effect.Effect<void>,
      answer: (kind: Protocol.CommandName, mid: string, channel: string | undefined) => Effect.Effect<void>
    ) => {
      return (data: string | Uint8Array): Effect.Effect<void> | undefined => {
        if (connection.ending) return undefined
        if (typeof data !== "string") {
          connection.invalid++
          return undefined
        }
        let json: unknown
        try {
          json = JSON.parse(data)
        } catch {
          connection.invalid++
          return undefined
        }
        if (typeof json !== "object" || json === null) {
          connection.invalid++
          return undefined
        }
        if ((json as { readonly type?: unknown }).type === "chat") {
          const audio = validChatAudio(json as ChatJson)
          if (audio === undefined) {
            connection.invalid++
            return undefined
          }
          const mid = (json as { readonly mid: string }).mid
          connection.mids.push(mid)
          connection.frameCount++
          if (recordAudio) {
            const bytes = Buffer.from(audio, "base64")
            connection.audioBytes += bytes.byteLength
            connection.frames.push({ mid, bytes, at: clock.unsafeCurrentTimeMillis() })
            let chunks = state.audio.get(connection.sessionId)
            if (chunks === undefined) {
              chunks = []
              state.audio.set(connection.sessionId, chunks)
            }
            chunks.push(bytes)
          } else {
            connection.audioBytes += Buffer.byteLength(audio, "base64")
          }
          const faults = instance.faults
          return faults.errorAfterFrames === undefined &&
            faults.malformed === undefined &&
            faults.dropAfterFrames === undefined
            ? undefined
            : afterFrame(instance, connection, faults, send)
        }

        const decoded = decodeClientMessage(json)
        if (Either.isLeft(decoded)) {
          connection.invalid++
          return undefined
        }
        const msg = decoded.right
        connection.mids.push(msg.mid)
        switch (msg.type) {
          case "ping": {
            connection.pings++
            return instance.faults.noPong === true ? undefined : send(message("pong", {}))
          }
          case "command": {
            const at = clock.unsafeCurrentTimeMillis()
            const pld = (json as { readonly pld: unknown }).pld
            connection.commands.push({ cmd: msg.pld.cmd, mid: msg.mid, at, pld })
            return answer(
              msg.pld.cmd,
              msg.mid,
              msg.pld.cmd === "set-params" ? msg.pld.metadata.agora_data.channel_id : undefined
            )
          }
          case "event": {
            const at = clock.unsafeCurrentTimeMillis()
            const pld = (json as { readonly pld: unknown }).pld
            connection.commands.push({ cmd: "leave_channel", mid: msg.mid, at, pld })
            // The client is leaving: the instance can take the next session.
            release(instance, connection)
            return answer("leave_channel", msg.mid, undefined)
          }
          case "chat":
            // chat is handled above; a chat that reached here was already judged invalid
            return undefined
        }
      }
    }

    // -------------------------------------------------------------------------
    // servers
    // -------------------------------------------------------------------------

    const discoveryPort = yield* start(options.port ?? 0, discoveryApp)
    for (const instance of instances) {
      instance.port = yield* start(0, instanceApp(instance))
    }

    const end = (select: (c: Connection) => boolean, request: CloseRequest) =>
      Effect.suspend(() => {
        const live = state.connections.filter((c) => !c.done && select(c))
        for (const c of live) requestClose(instances[c.instance]!, c, request)
        return Effect.forEach(live, (c) => Deferred.await(c.closed), { discard: true })
      })
    // Say goodbye with 1001 (going away) before the servers go, as a service that restarts does.
    yield* Effect.addFinalizer(() =>
      end(() => true, { mode: "close", code: 1001, reason: "the simulator is shutting down", dropped: false })
    )

    const instanceAt = (index: number) =>
      Effect.suspend(() => {
        const instance = instances[index]
        return instance === undefined
          ? Effect.dieMessage(`AvatarSimulator: there is no instance ${index} (it has ${instances.length})`)
          : Effect.succeed(instance)
      })

    const dropRequest = (
      name: string,
      options: { readonly mode?: AvatarSimulator.DropMode; readonly code?: number } | undefined
    ): Effect.Effect<CloseRequest> => {
      const mode = options?.mode ?? "close"
      const code = options?.code ?? 1011
      if (mode !== "close" && mode !== "terminate") {
        return Effect.dieMessage(`AvatarSimulator.${name}: mode is "close" or "terminate", not ${JSON.stringify(mode)}`)
      }
      if (mode === "close" && !isCloseCode(code)) {
        return Effect.dieMessage(`AvatarSimulator.${name}: ${code} is not a close code a server may send`)
      }
      return Effect.succeed({ mode, code, reason: "dropped by the simulator", dropped: true })
    }

    const report = Effect.sync(() => {
      const bySession = new Map<string, Array<Connection>>()
      for (const c of state.connections) {
        const list = bySession.get(c.sessionId)
        if (list === undefined) bySession.set(c.sessionId, [c])
        else list.push(c)
      }
      const open = state.connections.filter((c) => c.open).length
      const lines = [
        `AvatarSimulator: ${bySession.size} session(s), ${state.connections.length} connection(s), ${open} open, ${state.discoveryRequests.length} discovery request(s)`
      ]
      for (const [sessionId, connections] of bySession) {
        let bytes = 0
        let frames = 0
        let pings = 0
        let invalid = 0
        const commands: Array<string> = []
        const closes: Array<string> = []
        for (const c of connections) {
          bytes += c.audioBytes
          frames += c.frameCount
          pings += c.pings
          invalid += c.invalid
          for (const command of c.commands) commands.push(command.cmd)
          closes.push(c.open ? "open" : c.dropped ? `${c.closeCode} dropped` : String(c.closeCode))
        }
        lines.push(
          `  session ${sessionId || "(none)"}: ${(bytes / BYTES_PER_SECOND).toFixed(2)} s of audio (${bytes} bytes), ` +
            `${frames} frame(s), ${commands.length} command(s)${commands.length > 0 ? ` [${commands.join(", ")}]` : ""}, ` +
            `${pings} ping(s), ${invalid} invalid, ${connections.length} connection(s) [${closes.join(", ")}]`
        )
      }
      return lines.join("\n")
    })

    const service: AvatarSimulator.Service = {
      discoveryUrl: `http://${advertisedHost.includes(":") ? `[${advertisedHost}]` : advertisedHost}:${discoveryPort}${DISCOVERY_PATH}`,
      instances: instances.map((i) => ({ index: i.index, host: advertisedHost, port: i.port, avatarId: i.avatarId })),
      setFaults: (index, faults) =>
        Effect.flatMap(instanceAt(index), (instance) => {
          const problem = faultsProblem(faults)
          return problem === undefined
            ? Effect.sync(() => applyFaults(instance, faults))
            : Effect.dieMessage(`AvatarSimulator.setFaults: instance ${index}: ${problem}`)
        }),
      setDiscovery: (behaviour) =>
        Effect.sync(() => {
          state.discovery = behaviour
        }),
      sessions: Effect.sync(() => state.connections.map(snapshot)),
      audio: (sessionId) =>
        Effect.sync(() => {
          const chunks = state.audio.get(sessionId)
          return chunks === undefined ? new Uint8Array(0) : new Uint8Array(Buffer.concat(chunks))
        }),
      openConnections: Effect.sync(() => state.connections.filter((c) => c.open).length),
      discoveryRequests: Effect.sync(() => state.discoveryRequests.slice()),
      dropAll: (options) => Effect.flatMap(dropRequest("dropAll", options), (request) => end(() => true, request)),
      drop: (index, options) =>
        Effect.flatMap(instanceAt(index), () =>
          Effect.flatMap(dropRequest("drop", options), (request) => end((c) => c.instance === index, request))
        ),
      sendMalformed: (index, count, kinds) =>
        Effect.flatMap(instanceAt(index), () => {
          const problem = !isCount(count, 0) ? `count must be a whole number >= 0, not ${count}` : kindsProblem(kinds)
          if (problem !== undefined) return Effect.dieMessage(`AvatarSimulator.sendMalformed: ${problem}`)
          return Effect.suspend(() => {
            const targets = state.connections.filter(
              (c) => c.instance === index && c.open && !c.ending && c.write !== undefined
            )
            return Effect.as(
              Effect.forEach(targets, (c) => sendHostile(c, c.write!, count, kinds), { discard: true }),
              targets.length
            )
          })
        }),
      report
    }
    return service
  })
