/**
 * The Promise facade: the reference Python SDK's `StreamingAvatarClient`, in TypeScript
 * idiom, for programs that are not written with Effect. Each client runs the Effect core
 * on its own `ManagedRuntime`, and every call that fails throws one of this SDK's error
 * classes (`AuthenticationError`, `ConnectionError`, ...), which `instanceof` recognises.
 *
 * ```ts
 * import { StreamingAvatarClient } from "akool-streaming-avatar"
 *
 * await using client = await StreamingAvatarClient.connect({ apiKey, avatarId: "dvp_Tristan_cloth2_1080P" })
 * await client.setAgoraParams({ agoraAppId, agoraChannel, agoraToken, agoraUid: "42" })
 * await client.sendAudioStream(speech) // an array, an AsyncIterable or a ReadableStream of PCM
 * const played = await client.sendAudio(answer, { waitForPlayout: true }) // once the avatar has said it
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as AvatarClient from "./AvatarClient.js"
import * as AvatarConfig from "./AvatarConfig.js"
import { AudioStreamError, type AvatarError, ConfigurationError, ConnectionError } from "./AvatarError.js"
import type * as AvatarSession from "./AvatarSession.js"
import * as SessionOptions from "./internal/session/options.js"
import type * as Protocol from "./Protocol.js"

// Node 20.0 to 20.3 lack the well-known symbol that `await using` looks up; TypeScript's and
// esbuild's helpers then fall back to this registered one. The class is keyed by whichever
// exists, without patching `Symbol` (the package declares no side effects).
const asyncDispose: typeof Symbol.asyncDispose =
  typeof Symbol.asyncDispose === "symbol" ? Symbol.asyncDispose : (Symbol.for("Symbol.asyncDispose") as never)

/**
 * Callbacks, as in the reference SDK (`on_connected`, ...), plus `onStateChange`. Each may be
 * passed to the constructor or assigned to the client later. A callback that throws is
 * logged and does not disturb the session.
 *
 * @since 0.1.0
 * @category models
 */
export interface Callbacks {
  /** A connection is ready: after `connect()`, and again after each automatic reconnect. */
  onConnected?: (() => void) | undefined
  /** A connection ended: it dropped (a reconnect follows), or the session ended. */
  onDisconnected?: (() => void) | undefined
  /** The avatar joined the Agora channel (the system message `agora_connected`). */
  onAgoraConnected?: ((channelId: string) => void) | undefined
  /**
   * Something went wrong in the background: a dropped connection (before the reconnect),
   * an error that ended the session, or an `error` message from the server that answers no
   * command. Failures of a call are thrown by that call instead.
   */
  onError?: ((error: AvatarError) => void) | undefined
  /** Every message from the server, decoded. */
  onMessage?: ((message: Protocol.ServerMessage) => void) | undefined
  /** Every change of the session's state: `Ready`, `Streaming`, `Reconnecting`, `Closed`. */
  onStateChange?: ((state: AvatarSession.SessionState) => void) | undefined
  /**
   * The avatar began to speak an utterance: one `sendAudio` or `sendAudioStream` call, whose
   * id this is (the same id as `Interrupted.utterance`). Driven by `session.speaking`: the
   * server's `audio_start` when it sends them, the SDK's playback model otherwise.
   */
  onSpeakingStarted?: ((utteranceId: string) => void) | undefined
  /**
   * The avatar stopped speaking that utterance; each `onSpeakingStarted` is followed by one of
   * these, for the same id, before the next start. `playedMs` is how much of the utterance had
   * been heard by then, counted from its start (not just this stretch).
   *
   * When the utterance is over (played to its end, or cut by `interrupt()`), the figures are
   * its outcome, the `Played` that `waitForPlayout` resolves with. When its audio ran out
   * while the producer was still sending (an underrun: the avatar falls silent, then speaks
   * the same utterance again once more audio arrives), the stretch ends with
   * `interrupted: false` and the milliseconds heard so far, and a new start follows; the last
   * end of an utterance is its outcome.
   */
  onSpeakingEnded?:
    | ((utteranceId: string, ended: { readonly interrupted: boolean; readonly playedMs: number }) => void)
    | undefined
}

/**
 * The reference SDK's constructor arguments, with its defaults. `apiKey`, `avatarId`,
 * `discoveryUrl` and `env` fall back to `AKOOL_API_KEY`, `AKOOL_AVATAR_ID`,
 * `AKOOL_DISCOVERY_URL` and `AKOOL_ENV` when they are left out; what is passed wins.
 * Durations are milliseconds (as everywhere in JavaScript) or strings such as
 * `"30 seconds"`: the reference's seconds do not carry over as numbers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Callbacks {
  /**
   * The API key; default `AKOOL_API_KEY`, one of them is required. It is kept as a `Redacted`
   * value and never printed.
   */
  readonly apiKey?: string | undefined
  /** The avatar to drive; default `AKOOL_AVATAR_ID`, one of them is required. */
  readonly avatarId?: string | undefined
  /** Default `AKOOL_DISCOVERY_URL`, else the reference SDK's URL. Only its scheme and host are used. */
  readonly discoveryUrl?: string | undefined
  /** Default: a fresh UUID v4, kept across `connect()` calls of this client. */
  readonly sessionId?: string | undefined
  /** Connection attempts in all, across instances (default 3). */
  readonly maxRetryAttempts?: number | undefined
  /** Between `ping`s (default 30 seconds). */
  readonly heartbeatInterval?: number | string | undefined
  /** The deadline for each `pong` (default 10 seconds); the reference has none. */
  readonly heartbeatTimeout?: number | string | undefined
  /** Bounds the wait for `websocket_connected`, and for `agora_connected` (default 30 seconds). */
  readonly connectionTimeout?: number | string | undefined
  /** Bounds the discovery request (default 10 seconds). */
  readonly discoveryTimeout?: number | string | undefined
  /** Bounds the wait for a command's `ack` (default 10 seconds). */
  readonly commandTimeout?: number | string | undefined
  /** `"test"` or `"prod"`; default `AKOOL_ENV`, else `"test"`. */
  readonly env?: AvatarConfig.Environment | undefined
  /**
   * `"realtime"` (the default) paces audio to playback, at most a second ahead; `"none"` sends
   * it as fast as the socket takes it, as the reference does.
   */
  readonly pacing?: AvatarSession.Pacing | undefined
  /**
   * How long after a frame reaches the service the avatar speaks it (default 100 ms): where
   * the playback model starts, until the server's `audio_start` events measure the real delay.
   * It sets when `onSpeakingStarted` fires without those events, and when `waitForPlayout`
   * resolves.
   */
  readonly playoutDelay?: number | string | undefined
}

/**
 * The arguments of `setAgoraParams`, the reference's `set_agora_params` in camelCase.
 *
 * @since 0.1.0
 * @category models
 */
export interface AgoraParams {
  readonly agoraAppId: string
  readonly agoraChannel: string
  /** May be empty for a channel without tokens. */
  readonly agoraToken: string
  readonly agoraUid: string | number
  readonly voiceId?: string | undefined
  /** Default `"en"`. */
  readonly language?: string | undefined
  readonly backgroundUrl?: string | undefined
}

/**
 * Options of a call that can take long. Aborting the signal stops the call, which then
 * rejects with `signal.reason` (an `AbortError` unless you gave another reason).
 *
 * @since 0.1.0
 * @category models
 */
export interface CallOptions {
  readonly signal?: AbortSignal | undefined
  /**
   * For `sendAudio` and `sendAudioStream`: resolve once the avatar has finished speaking the
   * audio (or `interrupt()` cut it), with its `Played` outcome, instead of once it has been
   * written to the socket. Aborting the call stops the wait (and the reading of the source,
   * if it is still being read); what was sent plays on. Other calls ignore it.
   *
   * @since 0.2.0
   */
  readonly waitForPlayout?: boolean | undefined
}

/**
 * What `sendAudioStream` reads: 16 kHz, 16-bit, mono PCM in chunks of any size (a chunk may
 * split a sample).
 *
 * @since 0.1.0
 * @category models
 */
export type AudioChunks = Iterable<Uint8Array> | AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>

/**
 * The reference's `get_connection_info` fields (`connected`, `agoraConnected`, `sessionId`,
 * `avatarId`, `currentService`, `availableServicesCount`), plus `reconnects` and the audio
 * counters.
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectionInfo = AvatarSession.ConnectionInfo

type Runtime = ManagedRuntime.ManagedRuntime<AvatarClient.AvatarClient, never>

/** One connected session and what serves it. */
interface Live {
  readonly runtime: Runtime
  readonly scope: Scope.CloseableScope
  readonly session: AvatarSession.AvatarSession
  readonly dispatchers: ReadonlyArray<Fiber.RuntimeFiber<void>>
  readonly turns: Turns
}

const END: unique symbol = Symbol("end")
type Item = Protocol.ServerMessage | typeof END

/** A user's source failed: its own error is thrown back as it was. */
class SourceFailure {
  constructor(readonly error: unknown) {}
}

/** Strings are checked by `AvatarConfig.make`, which names the option when one is not a duration. */
const duration = (input: number | string | undefined) => input as Duration.DurationInput | undefined

const notConnected = (call: string) =>
  new ConnectionError({
    reason: "not-connected",
    message: `${call} needs a connected client: call connect() first (or StreamingAvatarClient.connect(options))`
  })

const isReadableStream = (u: unknown): u is ReadableStream<Uint8Array> =>
  typeof ReadableStream !== "undefined" && u instanceof ReadableStream

const isAsyncIterable = (u: unknown): u is AsyncIterable<Uint8Array> =>
  typeof u === "object" && u !== null && typeof (u as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function"

const isIterable = (u: unknown): u is Iterable<Uint8Array> =>
  typeof u === "object" && u !== null && typeof (u as Iterable<unknown>)[Symbol.iterator] === "function"

const checkChunk = (chunk: unknown, call: string): Effect.Effect<Uint8Array, ConfigurationError> =>
  chunk instanceof Uint8Array
    ? Effect.succeed(chunk)
    : Effect.fail(
        new ConfigurationError({
          option: "audio",
          message: `${call} takes Uint8Array (or Buffer) chunks of 16 kHz 16-bit mono PCM; got ${
            chunk === null ? "null" : Array.isArray(chunk) ? "an array" : typeof chunk
          }`
        })
      )

/** The fiber's failure as the error a caller catches: ours, the source's own, or the abort reason. */
const toThrown = (cause: Cause.Cause<unknown>, signal: AbortSignal | undefined): unknown => {
  if (signal?.aborted && Cause.isInterruptedOnly(cause)) return signal.reason
  const error = Cause.squash(cause)
  return error instanceof SourceFailure ? error.error : error
}

/** An aborted call: the source it was reading is read no further. */
class Stopped {
  readonly _tag = "Stopped"
}

/** Set by an aborted call; the read in flight stops at once, and no further read starts. */
class Stop {
  stopped = false
  readonly signal = Effect.runSync(Deferred.make<never, Stopped>())
  set(): Effect.Effect<void> {
    this.stopped = true
    return Deferred.fail(this.signal, new Stopped())
  }
}

/** At most this much of a caller's chunk is offered at a time: a frame, as the session frames it. */
const PIECE_BYTES = 1280

/**
 * The caller's source as `say` reads it. A call's utterance runs on a fiber of the session,
 * which the call cannot interrupt; before each read the stop is looked at, and a read in
 * flight races it. Chunks are handed on in pieces of a frame, so that an aborted call queues
 * at most one frame more than it had when the abort came, as it did when aborting a call
 * interrupted the reading itself.
 */
class Reader<E> {
  private pieces: Chunk.Chunk<Uint8Array> = Chunk.empty()
  private index = 0

  constructor(
    private readonly pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E>>,
    private readonly stop: Stop
  ) {}

  readonly next: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E | Stopped>> = Effect.suspend(() => {
    if (this.stop.stopped) return Effect.fail(Option.some(new Stopped()))
    if (this.index < this.pieces.length) return Effect.succeed(Chunk.of(Chunk.unsafeGet(this.pieces, this.index++)))
    const stopped = Effect.mapError(Deferred.await(this.stop.signal), Option.some)
    return Effect.flatMap(Effect.raceFirst(this.pull, stopped), (chunk) => {
      const pieces: Array<Uint8Array> = []
      for (const bytes of chunk) {
        for (let at = 0; at < bytes.byteLength; at += PIECE_BYTES) pieces.push(bytes.subarray(at, at + PIECE_BYTES))
      }
      this.pieces = Chunk.unsafeFromArray(pieces)
      this.index = 0
      return this.next
    })
  })
}

const guarded = <E>(source: Stream.Stream<Uint8Array, E>, stop: Stop): Stream.Stream<Uint8Array, E | Stopped> =>
  Stream.unwrapScoped(
    Effect.map(Stream.toPull(source), (pull) => Stream.repeatEffectChunkOption(new Reader(pull, stop).next))
  )

/** What the speaking dispatcher knows of one utterance the client started. */
class Spoken {
  /** Every frame was written, or the utterance failed: its outcome needs no more audio. */
  settling = false
  /** How it ended, once the session knows; `"failed"` when its source or its audio failed. */
  outcome: AvatarSession.Played | "failed" | undefined = undefined
  /** Milliseconds of its speaking stretches so far, as `session.speaking` showed them. */
  heardMs = 0
}

type TurnItem =
  | { readonly _tag: "Change"; readonly speaking: AvatarSession.Speaking; readonly at: number }
  | { readonly _tag: "Outcome"; readonly id: string }
  | { readonly _tag: "Grace"; readonly token: number }
  | { readonly _tag: "End" }

/** How many utterances the dispatcher remembers: far more than can play at once. */
const REMEMBERED = 64

/**
 * How long an end whose outcome is not known waits before it counts as an underrun, when
 * nothing says the outcome is coming. What says so (the utterance's last frame written, an
 * interrupt in flight) is learnt from fibers that run a moment after the session knows it.
 */
const GRACE = "100 millis"

/**
 * Turns `session.speaking` into `onSpeakingStarted` and `onSpeakingEnded`. The change that
 * ends a stretch can come before the session knows how the utterance ended: the server's
 * `audio_end` arrives before the interrupt's ack, and the model waits for the server to
 * confirm the tail. So an end whose outcome is on its way waits for it, and the changes after
 * it wait too, to keep their order; a stretch that ends while its producer is still behind
 * (an underrun) ends at once with what was heard so far.
 */
class Turns {
  readonly queue = Effect.runSync(Queue.unbounded<TurnItem>())
  /** `interrupt()` calls in flight: an interrupt's cut settles every utterance not over. */
  interrupting = 0
  private readonly spoken = new Map<string, Spoken>()
  private current: { readonly id: string; readonly since: number } | undefined = undefined
  /** The utterance whose end waits for its outcome, and the changes held behind it. */
  private pending: { readonly id: string; readonly token: number } | undefined = undefined
  private held: Array<TurnItem> = []
  private tokens = 0
  done = false

  constructor(
    private readonly started: (id: string) => Effect.Effect<void>,
    private readonly ended: (id: string, ended: { interrupted: boolean; playedMs: number }) => Effect.Effect<void>
  ) {}

  /** An utterance the client started: the dispatcher hears when it has been written and how it ended. */
  follow<E>(utterance: AvatarSession.Utterance<E>): Effect.Effect<void> {
    const spoken = this.entry(utterance.id)
    return Effect.exit(utterance.written).pipe(
      Effect.zipRight(
        Effect.sync(() => {
          spoken.settling = true
        })
      ),
      Effect.zipRight(Effect.exit(utterance.played)),
      Effect.flatMap((played) => {
        spoken.outcome = Exit.isSuccess(played) ? played.value : "failed"
        return Queue.offer(this.queue, { _tag: "Outcome", id: utterance.id })
      })
    )
  }

  step(item: TurnItem): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.pending !== undefined) return this.whilePending(this.pending, item)
      if (item._tag === "End") return this.finish()
      if (item._tag !== "Change") return Effect.void
      const speaking = item.speaking
      // audio the session could not attribute to an utterance (a late `audio_start`): no start to report
      if (speaking._tag === "Speaking" && speaking.utterance === "") return Effect.void
      if (speaking._tag === "Speaking" && this.current?.id === speaking.utterance) return Effect.void
      return Effect.zipRight(
        this.endCurrent(item.at),
        Effect.suspend(() => {
          if (speaking._tag === "Silent") return Effect.void
          if (this.pending !== undefined) return this.hold(item)
          this.current = { id: speaking.utterance, since: speaking.since }
          return this.started(speaking.utterance)
        })
      )
    })
  }

  private whilePending(pending: { readonly id: string; readonly token: number }, item: TurnItem): Effect.Effect<void> {
    const spoken = this.entry(pending.id)
    switch (item._tag) {
      case "Outcome":
        return item.id === pending.id ? this.release(this.report(pending.id, spoken), []) : Effect.void
      case "Grace":
        if (item.token !== pending.token) return Effect.void
        if (spoken.outcome !== undefined) return this.release(this.report(pending.id, spoken), [])
        if (spoken.settling || this.interrupting > 0) return Effect.void
        return this.release(this.report(pending.id, spoken), [])
      case "End":
        return this.release(this.report(pending.id, spoken), [item])
      case "Change":
        // the same utterance speaks again: its audio had run out, and more came
        if (item.speaking._tag === "Speaking" && item.speaking.utterance === pending.id) {
          return this.release(this.report(pending.id, spoken), [item])
        }
        return this.hold(item)
    }
  }

  /** Reports the pending end, then what was held behind it, in order. */
  private release(report: Effect.Effect<void>, after: Array<TurnItem>): Effect.Effect<void> {
    this.pending = undefined
    const items = [...this.held, ...after]
    this.held = []
    return Effect.zipRight(
      report,
      Effect.forEach(items, (item) => this.step(item), { discard: true })
    )
  }

  private hold(item: TurnItem): Effect.Effect<void> {
    this.held.push(item)
    return Effect.void
  }

  private endCurrent(at: number): Effect.Effect<void> {
    const current = this.current
    if (current === undefined) return Effect.void
    this.current = undefined
    const spoken = this.entry(current.id)
    spoken.heardMs += Math.max(0, at - current.since)
    if (spoken.outcome !== undefined) return this.report(current.id, spoken)
    const token = ++this.tokens
    this.pending = { id: current.id, token }
    return Effect.asVoid(Effect.forkDaemon(Effect.delay(Queue.offer(this.queue, { _tag: "Grace", token }), GRACE)))
  }

  private report(id: string, spoken: Spoken): Effect.Effect<void> {
    const outcome = spoken.outcome
    return outcome === undefined || outcome === "failed"
      ? this.ended(id, { interrupted: false, playedMs: Math.round(spoken.heardMs) })
      : this.ended(id, { interrupted: outcome.interrupted, playedMs: Math.round(outcome.playedMs) })
  }

  /** The session ended: a stretch still speaking ends with it, with what is known. */
  private finish(): Effect.Effect<void> {
    this.done = true
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const current = this.current
      if (current === undefined) return Effect.void
      this.current = undefined
      const spoken = this.entry(current.id)
      spoken.heardMs += Math.max(0, now - current.since)
      return this.report(current.id, spoken)
    })
  }

  private entry(id: string): Spoken {
    let spoken = this.spoken.get(id)
    if (spoken === undefined) {
      spoken = new Spoken()
      this.spoken.set(id, spoken)
      // insertion order: the oldest goes first
      if (this.spoken.size > REMEMBERED) this.spoken.delete(this.spoken.keys().next().value!)
    }
    return spoken
  }
}

/**
 * A wait on an utterance that the session's end would leave waiting: the session stops its
 * playback model when it ends, and closing its scope stops the utterance's fiber before it can
 * say so. The utterance's own result is taken if it comes within a moment of the end.
 */
const closedWhileWaiting = <A, E>(
  session: AvatarSession.AvatarSession,
  waited: Effect.Effect<A, E>,
  what: "written" | "played"
): Effect.Effect<A, E | AudioStreamError> =>
  Effect.flatMap(Effect.either(session.await), (ended) =>
    Effect.timeoutFail(waited, {
      duration: "100 millis",
      onTimeout: () =>
        new AudioStreamError({
          reason: "session-closed",
          message: Either.match(ended, {
            onLeft: (error) => `The session ended (${error.message}) before the audio was ${what}`,
            onRight: () => `The session was closed before the audio was ${what}`
          })
        })
    })
  )

/**
 * The reference SDK's client. `connect()` opens a session (discovery, WebSocket,
 * heartbeat); `disconnect()` flushes queued audio, leaves the channel and closes it. The
 * session reconnects by itself when its connection drops (`onDisconnected`, then
 * `onConnected`); it ends only when that fails, with `onError`.
 *
 * @since 0.1.0
 * @category clients
 */
export class StreamingAvatarClient implements AsyncDisposable {
  /**
   * Creates a client and connects it: `await using client = await StreamingAvatarClient.connect(options)`.
   *
   * @since 0.1.0
   */
  static async connect(options: Options, call?: CallOptions): Promise<StreamingAvatarClient> {
    const client = new StreamingAvatarClient(options)
    await client.connect(call)
    return client
  }

  /** @since 0.1.0 */
  readonly avatarId: string
  /** The session id sent to the service; the same for every `connect()` of this client. @since 0.1.0 */
  readonly sessionId: string
  /** @since 0.1.0 */
  onConnected: Callbacks["onConnected"]
  /** @since 0.1.0 */
  onDisconnected: Callbacks["onDisconnected"]
  /** @since 0.1.0 */
  onAgoraConnected: Callbacks["onAgoraConnected"]
  /** @since 0.1.0 */
  onError: Callbacks["onError"]
  /** @since 0.1.0 */
  onMessage: Callbacks["onMessage"]
  /** @since 0.1.0 */
  onStateChange: Callbacks["onStateChange"]
  /** @since 0.2.0 */
  onSpeakingStarted: Callbacks["onSpeakingStarted"]
  /** @since 0.2.0 */
  onSpeakingEnded: Callbacks["onSpeakingEnded"]

  readonly #layer: Layer.Layer<AvatarClient.AvatarClient>
  readonly #sessionOptions: AvatarSession.Options
  #live: Live | undefined = undefined
  /** The last session, after `disconnect()`: its figures stay readable. */
  #last: AvatarSession.AvatarSession | undefined = undefined
  #opening: Promise<void> | undefined = undefined
  #closing: Promise<void> | undefined = undefined
  /** Aborted by `disconnect()`, so that a `connect()` in flight stops. */
  #stop: AbortController | undefined = undefined
  readonly #iterators = new Set<Queue.Queue<Item>>()

  /**
   * Checks the options, with what was left out read from the `AKOOL_*` variables, and throws
   * a `ConfigurationError` that names the one that cannot work (and its variable, when
   * neither is there). Nothing connects until `connect()`.
   *
   * @since 0.1.0
   */
  constructor(options: Options) {
    if (typeof options !== "object" || options === null) {
      throw new ConfigurationError({ option: "options", message: "StreamingAvatarClient needs an options object" })
    }
    if (options.apiKey !== undefined && typeof options.apiKey !== "string") {
      throw new ConfigurationError({
        option: "apiKey",
        message: "apiKey must be a string: your Akool API key (or leave it out to use AKOOL_API_KEY)"
      })
    }
    // the same checks, and the same messages, as a session opened from Effect
    const avatarId =
      options.avatarId === undefined ? Either.right(undefined) : SessionOptions.checkAvatarId(options.avatarId)
    if (Either.isLeft(avatarId)) throw avatarId.left
    const sessionId = SessionOptions.checkSessionId(options.sessionId)
    if (Either.isLeft(sessionId)) throw sessionId.left
    const pacing = SessionOptions.checkPacing(options.pacing)
    if (Either.isLeft(pacing)) throw pacing.left
    const playoutDelay = duration(options.playoutDelay)
    // the options left out are read from the environment where an Effect program's are
    const resolved = Effect.runSync(
      Effect.either(
        AvatarConfig.makeFromEnv({
          apiKey: options.apiKey === undefined ? undefined : Redacted.make(options.apiKey),
          discoveryUrl: options.discoveryUrl,
          env: options.env,
          avatarId: avatarId.right,
          maxRetryAttempts: options.maxRetryAttempts,
          heartbeatInterval: duration(options.heartbeatInterval),
          heartbeatTimeout: duration(options.heartbeatTimeout),
          connectionTimeout: duration(options.connectionTimeout),
          discoveryTimeout: duration(options.discoveryTimeout),
          commandTimeout: duration(options.commandTimeout)
        })
      )
    )
    if (Either.isLeft(resolved)) throw resolved.left
    if (Option.isNone(resolved.right.avatarId)) {
      throw new ConfigurationError({
        option: "avatarId",
        message: `avatarId is missing: pass avatarId, or set ${AvatarConfig.variables.avatarId}`
      })
    }
    this.avatarId = resolved.right.avatarId.value
    this.sessionId = sessionId.right ?? globalThis.crypto.randomUUID()
    this.#sessionOptions = { avatarId: this.avatarId, sessionId: this.sessionId, pacing: pacing.right, playoutDelay }
    // the session's own check of the options it is given, so that a bad one throws here and not at connect()
    const checked = Effect.runSync(Effect.either(SessionOptions.validate(this.#sessionOptions, resolved.right)))
    if (Either.isLeft(checked)) throw checked.left
    this.#layer = Layer.orDie(AvatarClient.layerNodeFrom(Layer.succeed(AvatarConfig.AvatarConfig, resolved.right)))
    this.onConnected = options.onConnected
    this.onDisconnected = options.onDisconnected
    this.onAgoraConnected = options.onAgoraConnected
    this.onError = options.onError
    this.onMessage = options.onMessage
    this.onStateChange = options.onStateChange
    this.onSpeakingStarted = options.onSpeakingStarted
    this.onSpeakingEnded = options.onSpeakingEnded
  }

  /**
   * A connection to the service is open (it is not while reconnecting).
   *
   * @since 0.1.0
   */
  get isConnected(): boolean {
    return this.#live !== undefined && Effect.runSync(this.#live.session.info).connected
  }

  /**
   * The avatar is in the Agora channel: `setAgoraParams` succeeded on the current connection.
   *
   * @since 0.1.0
   */
  get isAgoraConnected(): boolean {
    return this.#live !== undefined && Effect.runSync(this.#live.session.info).agoraConnected
  }

  /**
   * Discovers an instance and connects, retrying on another instance up to
   * `maxRetryAttempts` times. Resolves once the service has sent `websocket_connected`.
   * Calling it while connected does nothing; while connecting, it waits for that attempt.
   *
   * Throws `AuthenticationError` (the key was refused: never retried),
   * `ServiceDiscoveryError` and `ConnectionError` (when they cannot be retried), `RetryError`
   * (every attempt failed; `lastError` says why), or `signal.reason` when aborted.
   *
   * @since 0.1.0
   */
  async connect(call?: CallOptions): Promise<void> {
    call?.signal?.throwIfAborted()
    if (this.#closing) await this.#closing
    if (this.#opening) return this.#opening
    if (this.#live && !this.#ended(this.#live)) return
    this.#opening = this.#open(call?.signal).finally(() => {
      this.#opening = undefined
    })
    return this.#opening
  }

  /**
   * Sends the queued audio (bounded by a timeout), leaves the Agora channel, closes the
   * connection and releases everything the client holds; a `connect()` in flight is
   * stopped. Safe to call at any time, any number of times. `connect()` may follow.
   *
   * @since 0.1.0
   */
  async disconnect(): Promise<void> {
    this.#stop?.abort(new ConnectionError({ reason: "closed", message: "disconnect() was called while connecting" }))
    if (this.#opening) await this.#opening.catch(() => undefined)
    if (this.#closing) return this.#closing
    const live = this.#live
    if (live === undefined) return
    this.#closing = this.#close(live).finally(() => {
      this.#closing = undefined
    })
    return this.#closing
  }

  /**
   * Sends `set-params` with the Agora channel the avatar joins, and waits for its ack and
   * for `agora_connected`. After an automatic reconnect the session sends them again.
   * Throws `ConfigurationError` for input that cannot work, `CommandError` when the service
   * does not acknowledge them or Agora does not connect in time.
   *
   * @since 0.1.0
   */
  async setAgoraParams(params: AgoraParams, call?: CallOptions): Promise<void> {
    const session = this.#session("setAgoraParams")
    if (typeof params !== "object" || params === null) {
      throw new ConfigurationError({
        option: "agora",
        message:
          "setAgoraParams takes { agoraAppId, agoraChannel, agoraToken, agoraUid, voiceId?, language?, backgroundUrl? }"
      })
    }
    return this.#run(
      session.setParams({
        agora: {
          appId: params.agoraAppId,
          channel: params.agoraChannel,
          token: params.agoraToken,
          uid: params.agoraUid
        },
        voiceId: params.voiceId,
        language: params.language,
        backgroundUrl: params.backgroundUrl
      }),
      call?.signal
    )
  }

  /**
   * Sends one buffer of 16 kHz, 16-bit, mono PCM, as one utterance. Resolves once it has been
   * written to the socket (paced to real time unless `pacing: "none"`); with
   * `{ waitForPlayout: true }`, once the avatar has finished speaking it or `interrupt()` cut
   * it, with how it ended: `{ interrupted, playedMs, durationMs }`. A buffer must hold whole
   * samples; to send audio in pieces that may split samples, use `sendAudioStream`.
   *
   * ```ts
   * const played = await client.sendAudio(answer, { waitForPlayout: true })
   * if (played.interrupted) console.log(`heard ${played.playedMs} of ${played.durationMs} ms`)
   * ```
   *
   * @since 0.1.0
   */
  sendAudio(bytes: Uint8Array, call: CallOptions & { readonly waitForPlayout: true }): Promise<AvatarSession.Played>
  sendAudio(bytes: Uint8Array, call?: CallOptions & { readonly waitForPlayout?: false | undefined }): Promise<void>
  sendAudio(bytes: Uint8Array, call?: CallOptions): Promise<AvatarSession.Played | undefined>
  // the overloads say what each call resolves with; this signature is not visible
  async sendAudio(bytes: Uint8Array, call?: CallOptions): Promise<unknown> {
    this.#session("sendAudio")
    return this.#utter(Stream.flatMap(Stream.fromEffect(checkChunk(bytes, "sendAudio")), Stream.succeed), call)
  }

  /**
   * Sends audio from an array, an `AsyncIterable` (an async generator, a Node stream) or a
   * web `ReadableStream` of PCM chunks of any size, as one utterance. Resolves once every
   * chunk has been written to the socket; `interrupt()` ends it early (it resolves then).
   * With `{ waitForPlayout: true }` it resolves once the avatar has finished speaking it (or
   * `interrupt()` cut it), with its `Played` outcome, as `sendAudio` does.
   * Aborting stops reading the source; what was already queued still plays unless you also
   * call `interrupt()`. An error thrown by the source is thrown back as it was.
   *
   * Send one utterance at a time: two calls at once interleave their frames.
   *
   * @since 0.1.0
   */
  sendAudioStream(
    chunks: AudioChunks,
    call: CallOptions & { readonly waitForPlayout: true }
  ): Promise<AvatarSession.Played>
  sendAudioStream(
    chunks: AudioChunks,
    call?: CallOptions & { readonly waitForPlayout?: false | undefined }
  ): Promise<void>
  sendAudioStream(chunks: AudioChunks, call?: CallOptions): Promise<AvatarSession.Played | undefined>
  async sendAudioStream(chunks: AudioChunks, call?: CallOptions): Promise<unknown> {
    this.#session("sendAudioStream")
    const fail = (error: unknown) => new SourceFailure(error)
    let source: Stream.Stream<unknown, SourceFailure>
    if (isReadableStream(chunks)) source = Stream.fromReadableStream({ evaluate: () => chunks, onError: fail })
    else if (isAsyncIterable(chunks)) source = Stream.fromAsyncIterable(chunks, fail)
    else if (isIterable(chunks)) source = Stream.suspend(() => Stream.fromIterable(chunks))
    else {
      throw new ConfigurationError({
        option: "audio",
        message: "sendAudioStream takes an array, an AsyncIterable or a ReadableStream of Uint8Array chunks"
      })
    }
    return this.#utter(
      Stream.mapEffect(source, (chunk) => checkChunk(chunk, "sendAudioStream")),
      call
    )
  }

  /**
   * Barge-in: drops the queued audio, ends the utterance being streamed (its
   * `sendAudioStream` resolves; one waiting for playout resolves with `interrupted: true`),
   * sends `interrupt` and waits for its ack. Resolves with what the listener had heard:
   * `utterance` (the id `onSpeakingStarted` gave; `undefined` when nothing was playing or
   * waiting), `playedMs` of it, `unplayedMs` of it and of what was queued behind it, and the
   * `droppedFrames` that never left. A voice agent keeps in its history only the part of its
   * answer that was heard: `playedMs` of it.
   *
   * @since 0.1.0
   */
  async interrupt(call?: CallOptions): Promise<AvatarSession.Interrupted> {
    const session = this.#session("interrupt")
    const turns = this.#live?.turns
    // while it is in flight, an end of speech waits for the outcome the cut will give
    if (turns) turns.interrupting++
    try {
      return await this.#run(session.interrupt, call?.signal)
    } finally {
      if (turns) turns.interrupting--
    }
  }

  /**
   * The reference's `get_connection_info`, plus the audio counters. Before the first
   * `connect()` it describes no connection; after `disconnect()`, the last session.
   *
   * @since 0.1.0
   */
  getConnectionInfo(): ConnectionInfo {
    const session = this.#live?.session ?? this.#last
    if (session) return Effect.runSync(session.info)
    return {
      connected: false,
      agoraConnected: false,
      sessionId: this.sessionId,
      avatarId: this.avatarId,
      currentService: null,
      availableServicesCount: 0,
      reconnects: 0,
      audio: {
        framesAccepted: 0,
        framesWritten: 0,
        framesDropped: 0,
        framesQueued: 0,
        framesUnconfirmed: 0,
        bytesWritten: 0
      },
      playback: { playoutDelayMs: SessionOptions.DEFAULT_PLAYOUT_DELAY_MS, measured: false }
    }
  }

  /**
   * The server's messages from now on, as an async iterator: `for await (const m of
   * client.events())`. It ends when the session ends (`disconnect()`, or an error that ends
   * it); made before `connect()`, it follows the next session.
   *
   * @since 0.1.0
   */
  events(): AsyncIterableIterator<Protocol.ServerMessage> {
    const queue = Effect.runSync(Queue.unbounded<Item>())
    this.#iterators.add(queue)
    let done = false
    const finish = (): IteratorResult<Protocol.ServerMessage> => {
      done = true
      this.#iterators.delete(queue)
      Effect.runSync(Queue.shutdown(queue))
      return { done: true, value: undefined }
    }
    const iterator: AsyncIterableIterator<Protocol.ServerMessage> = {
      next: async () => {
        if (done) return { done: true, value: undefined }
        const exit = await Effect.runPromiseExit(Queue.take(queue))
        if (Exit.isFailure(exit) || exit.value === END) return finish()
        return { done: false, value: exit.value }
      },
      return: async () => finish(),
      [Symbol.asyncIterator]: () => iterator
    }
    return iterator
  }

  /**
   * `await using` calls this: the same as `disconnect()`.
   *
   * @since 0.1.0
   */
  [asyncDispose](): Promise<void> {
    return this.disconnect()
  }

  // ------------------------------------------------------------------

  #ended(live: Live): boolean {
    return Effect.runSync(SubscriptionRef.get(live.session.state))._tag === "Closed"
  }

  #session(call: string): AvatarSession.AvatarSession {
    if (this.#live === undefined || this.#closing) throw notConnected(call)
    return this.#live.session
  }

  /**
   * One utterance through `say`, so that the speaking callbacks know its outcome: the call
   * waits for it to be written, or played. An aborted call stops reading the source (the
   * utterance runs on the session's fiber, which the call does not own).
   */
  #utter(
    source: Stream.Stream<Uint8Array, AvatarError | SourceFailure>,
    call: CallOptions | undefined
  ): Promise<AvatarSession.Played | undefined> {
    const live = this.#live
    if (live === undefined) throw notConnected("this call")
    const { session, turns, scope } = live
    const waitForPlayout = call?.waitForPlayout === true
    const stop = new Stop()
    // the stop is set by an interrupt wherever it comes, also before `say` has returned; no
    // uninterruptible region here: `say` forks its fiber with the flags it is called with
    const utter = Effect.gen(function* () {
      const utterance = yield* session.say(guarded(source, stop))
      yield* Effect.forkIn(turns.follow(utterance), scope)
      const waited: Effect.Effect<AvatarSession.Played | undefined, AvatarError | SourceFailure | Stopped> =
        waitForPlayout ? utterance.played : Effect.as(utterance.written, undefined)
      return yield* Effect.raceFirst(waited, closedWhileWaiting(session, waited, waitForPlayout ? "played" : "written"))
    }).pipe(
      Effect.catchIf(
        (error): error is Stopped => error instanceof Stopped,
        () => Effect.interrupt
      ),
      Effect.onInterrupt(() => stop.set())
    )
    return this.#run(utter, call?.signal)
  }

  async #run<A>(effect: Effect.Effect<A, AvatarError | SourceFailure>, signal: AbortSignal | undefined): Promise<A> {
    signal?.throwIfAborted()
    const live = this.#live
    if (live === undefined) throw notConnected("this call")
    const exit = await live.runtime.runPromiseExit(effect, signal ? { signal } : undefined)
    if (Exit.isSuccess(exit)) return exit.value
    throw toThrown(exit.cause, signal)
  }

  async #open(signal: AbortSignal | undefined): Promise<void> {
    // a session that ended by itself: release it before the next one
    if (this.#live) await this.#close(this.#live)
    const stop = new AbortController()
    this.#stop = stop
    const combined = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal
    const runtime: Runtime = ManagedRuntime.make(this.#layer)
    const scope = Effect.runSync(Scope.make())
    const turns = new Turns(
      (id) => this.#callback("onSpeakingStarted", this.onSpeakingStarted, id),
      (id, ended) => this.#callback("onSpeakingEnded", this.onSpeakingEnded, id, ended)
    )
    const exit = await runtime.runPromiseExit(
      Effect.gen(this, function* () {
        const client = yield* AvatarClient.AvatarClient
        const session = yield* Scope.extend(client.session(this.#sessionOptions), scope)
        const events = yield* Effect.forkDaemon(this.#dispatchEvents(session))
        const states = yield* Effect.forkDaemon(this.#dispatchStates(session))
        const speaking = yield* Effect.forkDaemon(this.#dispatchSpeaking(session, turns))
        // the server's errors that answer no call: those that do are thrown by that call. The
        // stream does not end when the session closes by its scope, so the session's end ends it
        // (else `disconnect()` would wait out its timeout for this dispatcher)
        const errors = yield* Effect.forkDaemon(
          session.errors.pipe(
            Stream.interruptWhen(Effect.exit(session.await)),
            Stream.runForEach((error) => this.#callback("onError", this.onError, error))
          )
        )
        // they subscribe as soon as they run: let them, before the caller can send anything
        yield* Effect.yieldNow()
        return { session, turns, dispatchers: [events, states, errors, speaking] }
      }),
      { signal: combined }
    )
    if (this.#stop === stop) this.#stop = undefined
    if (Exit.isSuccess(exit)) {
      this.#live = { runtime, scope, ...exit.value }
      return
    }
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await runtime.dispose()
    throw toThrown(exit.cause, combined)
  }

  async #close(live: Live): Promise<void> {
    try {
      await live.runtime.runPromise(
        Effect.gen(function* () {
          yield* Scope.close(live.scope, Exit.void)
          // they end by themselves once the session is closed: let them deliver what is left
          for (const fiber of live.dispatchers) {
            yield* Fiber.await(fiber).pipe(
              Effect.timeout("5 seconds"),
              Effect.catchAll(() => Fiber.interrupt(fiber))
            )
          }
        })
      )
    } finally {
      await live.runtime.dispose()
      this.#last = live.session
      if (this.#live === live) this.#live = undefined
    }
  }

  /** A user's callback must not break the dispatcher; a throw is logged. */
  #callback<A extends ReadonlyArray<unknown>>(
    name: string,
    f: ((...args: A) => void) | undefined,
    ...args: A
  ): Effect.Effect<void> {
    if (f === undefined) return Effect.void
    return Effect.try(() => f(...args)).pipe(
      Effect.catchAll((error) =>
        Effect.logWarning(`StreamingAvatarClient: the ${name} callback threw`).pipe(
          Effect.annotateLogs("error", String(error.error))
        )
      )
    )
  }

  #dispatchEvents(session: AvatarSession.AvatarSession): Effect.Effect<void> {
    return Stream.runForEach(session.events, (message) =>
      Effect.gen(this, function* () {
        for (const queue of this.#iterators) yield* Queue.offer(queue, message)
        yield* this.#callback("onMessage", this.onMessage, message)
        if (message.type === "system" && message.pld.status === "agora_connected") {
          yield* this.#callback("onAgoraConnected", this.onAgoraConnected, message.pld.channel_id ?? "")
        }
      })
    ).pipe(
      Effect.ensuring(
        Effect.suspend(() => {
          const iterators = [...this.#iterators]
          this.#iterators.clear()
          return Effect.forEach(iterators, (queue) => Queue.offer(queue, END), { discard: true })
        })
      )
    )
  }

  /** `session.speaking`, in order, with the utterances' outcomes and the session's end, through one queue. */
  #dispatchSpeaking(session: AvatarSession.AvatarSession, turns: Turns): Effect.Effect<void> {
    return Effect.gen(function* () {
      yield* Effect.fork(
        Stream.runForEach(session.speaking.changes, (speaking) =>
          Effect.flatMap(Clock.currentTimeMillis, (at) => Queue.offer(turns.queue, { _tag: "Change", speaking, at }))
        )
      )
      yield* Effect.fork(Effect.zipRight(Effect.exit(session.await), Queue.offer(turns.queue, { _tag: "End" })))
      while (!turns.done) yield* turns.step(yield* Queue.take(turns.queue))
    })
  }

  #dispatchStates(session: AvatarSession.AvatarSession): Effect.Effect<void> {
    let previous: AvatarSession.SessionState["_tag"] = "Connecting"
    const linked = () => previous === "Ready" || previous === "Streaming"
    return session.state.changes.pipe(
      Stream.takeUntil((state) => state._tag === "Closed"),
      Stream.runForEach((state) =>
        Effect.gen(this, function* () {
          if (state._tag === previous && state._tag !== "Reconnecting") return
          yield* this.#callback("onStateChange", this.onStateChange, state)
          if (state._tag === "Ready" && !linked()) yield* this.#callback("onConnected", this.onConnected)
          if ((state._tag === "Reconnecting" || state._tag === "Closed") && linked()) {
            yield* this.#callback("onDisconnected", this.onDisconnected)
          }
          // one drop, however many attempts its reconnect takes
          if (state._tag === "Reconnecting" && previous !== "Reconnecting") {
            yield* this.#callback("onError", this.onError, state.cause)
          }
          if (state._tag === "Closed" && Option.isSome(state.error)) {
            yield* this.#callback("onError", this.onError, state.error.value)
          }
          previous = state._tag
        })
      )
    )
  }
}

/**
 * Creates a client and connects it, like the reference's `create_client`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const createClient = (options: Options, call?: CallOptions): Promise<StreamingAvatarClient> =>
  StreamingAvatarClient.connect(options, call)
