import * as Socket from "@effect/platform/Socket"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as PubSub from "effect/PubSub"
import * as Scope from "effect/Scope"
import { AvatarConfig } from "../../AvatarConfig.js"
import { CommandError, type ConfigurationError, ConnectionError, type ServerError } from "../../AvatarError.js"
import * as AvatarMetrics from "../../AvatarMetrics.js"
import type * as Api from "../../Connection.js"
import * as Discovery from "../../Discovery.js"
import * as Protocol from "../../Protocol.js"
import { describeCause } from "./closeCodes.js"
import * as Encode from "./encode.js"
import { Ledger } from "./ledger.js"
import { Lifecycle } from "./lifecycle.js"
import { type Answer, PendingCommands } from "./pending.js"
import * as Transport from "./transport.js"

type Ack = typeof Protocol.Ack.Type

type RequestError = CommandError | ServerError | ConnectionError | ConfigurationError

/** How long `close` waits for the closing handshake before it returns anyway. */
const CLOSE_WAIT = Duration.seconds(2)

class ConnectionImpl implements Api.Connection {
  readonly instance: Discovery.Instance
  readonly sessionId: string
  readonly ids: Protocol.MessageIds = Protocol.makeMessageIds()
  readonly closed: Deferred.Deferred<void, Api.DropError>
  readonly unsafeCork: () => void
  readonly unsafeUncork: () => void
  /** The instance as errors and spans name it. */
  readonly label: string
  readonly lifecycle: Lifecycle
  private readonly pending = new PendingCommands()
  private readonly transport: Transport.Transport
  private readonly ledger: Ledger
  private readonly onMessage: ((message: Protocol.ServerMessage) => void) | undefined
  private readonly onServerError: ((error: ServerError) => void) | undefined
  private inboundCount = 0

  // listening from the moment the socket exists: no event can come before the listeners
  constructor(
    readonly socket: globalThis.WebSocket,
    options: Api.Options,
    readonly messages: PubSub.PubSub<Protocol.ServerMessage>,
    private readonly clock: Clock.Clock,
    connected: Deferred.Deferred<void, Api.DropError>,
    closed: Deferred.Deferred<void, Api.DropError>
  ) {
    this.instance = options.instance
    this.sessionId = options.sessionId
    this.label = Discovery.label(options.instance)
    this.closed = closed
    this.transport = Transport.of(socket)
    this.unsafeCork = this.transport.cork
    this.unsafeUncork = this.transport.uncork
    this.ledger = new Ledger(options.mark ?? (() => 0))
    this.onMessage = options.onMessage
    this.onServerError = options.onServerError
    this.lifecycle = new Lifecycle(socket, this.transport, this.label, this.pending, connected, closed, options.onDrop)
    this.lifecycle.unsafeListen((data) => this.unsafeReceive(data))
  }

  readonly isOpen = (): boolean => this.lifecycle.isOpen
  readonly inbound = (): number => this.inboundCount
  readonly confirmed = (): number => this.ledger.confirmed
  readonly dropped = (): Api.DropError | undefined => this.lifecycle.dropped

  /** Every inbound frame, synchronously, in order, and with no fiber per message. */
  unsafeReceive(data: string | Uint8Array): void {
    this.inboundCount++
    const message = Protocol.decodeServerMessage(data)
    switch (message.type) {
      case "system":
        if (message.pld.status === "websocket_connected") this.lifecycle.unsafeConfirm()
        break
      case "ack":
        this.ledger.unsafeAcked(message.pld.original_mid)
        this.pending.unsafeAck(message)
        break
      case "error": {
        const unanswered = this.pending.unsafeError(message)
        if (unanswered !== undefined) this.onServerError?.(unanswered)
        break
      }
      case "pong":
        this.ledger.unsafePong(this.clock.unsafeCurrentTimeMillis())
        break
    }
    this.onMessage?.(message)
    this.messages.unsafeOffer(message)
  }

  private notOpen(): ConnectionError {
    return new ConnectionError({
      reason: "closed",
      instance: this.label,
      message: `The connection to ${this.label} is not open`
    })
  }

  /** Sends a message that encoded, recording the mark it carries. */
  private unsafeSendEncoded(message: Protocol.ClientMessage, text: string): Either.Either<void, ConnectionError> {
    if (!this.lifecycle.isOpen) return Either.left(this.notOpen())
    if (message.type === "ping") this.ledger.unsafePingSent()
    else if (message.type === "command" || message.type === "event") this.ledger.unsafeCommandSent(message.mid)
    this.socket.send(text)
    return Either.void
  }

  // Encoded before anything else: a message from untyped code that does not match its Schema
  // is the caller's error to handle, not a defect, and it leaves no trace on the connection.
  readonly send = (message: Protocol.ClientMessage): Effect.Effect<void, ConnectionError | ConfigurationError> =>
    Effect.suspend(() => Either.flatMap(Encode.encode(message), ({ text }) => this.unsafeSendEncoded(message, text)))

  readonly request = (
    message: Protocol.ClientMessage,
    timeout: Duration.DurationInput
  ): Effect.Effect<Ack, RequestError> =>
    Effect.suspend(() => {
      const encoded = Encode.encode(message)
      return Either.isLeft(encoded) ? Effect.fail(encoded.left) : this.awaitAnswer(message, encoded.right, timeout)
    })

  private awaitAnswer(
    message: Protocol.ClientMessage,
    { name, text }: Encode.Encoded,
    timeout: Duration.DurationInput
  ): Effect.Effect<Ack, RequestError> {
    const mid = message.mid
    return Effect.gen(this, function* () {
      const answer: Answer = yield* Deferred.make<Ack, CommandError | ServerError>()
      this.pending.unsafeAdd(mid, name, answer)
      const sentAt = yield* Clock.currentTimeMillis
      yield* this.unsafeSendEncoded(message, text)
      // interruptible even where the caller is not (a scope finalizer sends leave_channel):
      // otherwise the timeout could not stop the wait
      const ack = yield* Effect.interruptible(Deferred.await(answer)).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new CommandError({
              reason: "timeout",
              command: name,
              mid,
              message: `The server did not acknowledge ${name} within ${Duration.format(Duration.decode(timeout))}`
            })
        })
      )
      yield* Metric.update(AvatarMetrics.ackLatency, (yield* Clock.currentTimeMillis) - sentAt)
      if (ack.pld.status !== "success") {
        return yield* new CommandError({
          reason: "rejected",
          command: name,
          mid,
          message: `The server rejected ${name} (ack status ${JSON.stringify(ack.pld.status)})`
        })
      }
      return ack
    }).pipe(
      Effect.ensuring(
        Effect.sync(() => {
          this.pending.unsafeRemove(mid)
          this.ledger.unsafeForget(mid)
        })
      )
    )
  }

  readonly unsafePing = (answered?: (at: number) => void): void => {
    if (!this.lifecycle.isOpen) return
    this.ledger.unsafePingSent(answered)
    this.socket.send(Protocol.encodePing(this.ids.next()))
  }

  readonly unsafeSendChat = (frame: Uint8Array): void => this.transport.sendChat(this.ids.next(), frame)

  readonly unsafeAbort = (reason: Api.DropError): void => this.lifecycle.unsafeAbort(reason)

  // waits (briefly) for the closing handshake, so the peer has seen the close when this returns
  readonly close: Effect.Effect<void> = Effect.suspend(() => {
    this.lifecycle.unsafeClose()
    return Effect.interruptible(Deferred.await(this.closed)).pipe(Effect.timeout(CLOSE_WAIT), Effect.ignore)
  })
}

const openSocket = (construct: (url: string) => globalThis.WebSocket, url: string, instance: string) =>
  Effect.try({
    try: () => construct(url),
    catch: (cause) =>
      new ConnectionError({
        reason: "refused",
        instance,
        message: `Could not open a WebSocket to ${instance}: ${describeCause(cause)}`
      })
  })

const awaitConnected = (connection: ConnectionImpl, timeout: Duration.DurationInput) =>
  Deferred.await(connection.lifecycle.connected).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => {
        const instance = connection.label
        const within = Duration.format(Duration.decode(timeout))
        return new ConnectionError({
          reason: "timeout",
          instance,
          message: connection.lifecycle.opened
            ? `The instance ${instance} did not confirm the session (websocket_connected) within ${within}`
            : `The WebSocket to ${instance} did not open within ${within}`
        })
      }
    }),
    Effect.withSpan("Connection.connect", {
      attributes: { "akool.instance": connection.label, "akool.session_id": connection.sessionId }
    })
  )

/** `Connection.make`. */
export const make = (
  options: Api.Options
): Effect.Effect<Api.Connection, Api.DropError, Scope.Scope | Socket.WebSocketConstructor | AvatarConfig> =>
  Effect.gen(function* () {
    const config = yield* AvatarConfig
    const construct = yield* Socket.WebSocketConstructor
    const clock = yield* Effect.clock
    const url = Discovery.websocketUrl(options.instance, { sessionId: options.sessionId, avatarId: options.avatarId })
    const messages = options.messages ?? (yield* PubSub.unbounded<Protocol.ServerMessage>())
    const connected = yield* Deferred.make<void, Api.DropError>()
    const closed = yield* Deferred.make<void, Api.DropError>()
    const scope = yield* Effect.scope
    // Scope.addFinalizer, not acquireRelease: acquireRelease runs its release with the FiberRefs
    // of the fiber that acquired, and keeps them in the fiber that closes the scope. A session
    // closes a dropped connection from the fiber that opens the next one, so every connection
    // (through the span, and its result, in the context of the fiber that opened it) stayed
    // reachable from the next: about 19 KB per reconnect, for as long as the session lived.
    const connection = yield* Effect.uninterruptible(
      Effect.tap(
        Effect.map(
          openSocket(construct, url, Discovery.label(options.instance)),
          (socket) => new ConnectionImpl(socket, options, messages, clock, connected, closed)
        ),
        (connection) =>
          Scope.addFinalizer(
            scope,
            Effect.sync(() => connection.lifecycle.unsafeRelease())
          )
      )
    )
    yield* awaitConnected(connection, options.connectionTimeout ?? config.connectionTimeout)
    return connection
  })
