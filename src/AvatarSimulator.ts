/**
 * The built-in simulator: the server side of the Akool streaming-avatar protocol on
 * loopback. One HTTP server answers discovery, and every instance is a WebSocket server
 * on its own port that speaks the protocol the way the service does, with fault switches
 * that can change while it runs and a record of everything it received.
 *
 * Tests and demos use it in place of the real service:
 *
 * ```ts
 * import { AvatarSimulator } from "akool-streaming-avatar"
 * import * as Effect from "effect/Effect"
 *
 * const program = Effect.gen(function*() {
 *   const simulator = yield* AvatarSimulator.AvatarSimulator
 *   // point the client at simulator.discoveryUrl, stream, then:
 *   console.log(yield* simulator.report)
 * }).pipe(Effect.provide(AvatarSimulator.layer({ apiKey: "test-key" })))
 * ```
 *
 * Its timers (the delay faults, the discovery `delay` and the players) and the arrival times
 * it records run on the `Clock` of the fiber that built it: under `TestClock` they follow
 * test time.
 *
 * It also plays what it receives, as the avatar would: see {@link Service.playback} for the
 * player of each session, its `audio_start` / `audio_end` events, and what it records.
 *
 * @since 0.1.0
 */

import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Constants from "./internal/constants.js"
import * as Hostile from "./internal/simulator/hostile.js"
import * as internal from "./internal/simulator/wiring.js"

/**
 * The avatar id every instance serves unless told otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_AVATAR_ID: string = Constants.DEFAULT_AVATAR_ID

/**
 * The discovery path, as the service serves it.
 *
 * @since 0.1.0
 * @category constants
 */
export const DISCOVERY_PATH: string = Constants.SERVICE_STATUS_PATH

/**
 * The WebSocket path of an instance.
 *
 * @since 0.1.0
 * @category constants
 */
export const WEBSOCKET_PATH: string = Constants.WEBSOCKET_PATH

/**
 * A hostile server message, as {@link Faults.malformed} and {@link Service.sendMalformed}
 * send them:
 *
 * - `"not-json"`: the text frame `{this is not json`
 * - `"binary"`: a binary frame of 32 random bytes
 * - `"not-an-object"`: the text frame `[1,2,3]`
 * - `"no-type"`: `{"v":2,"pld":{}}`
 * - `"wrong-shape"`: an ack whose payload is wrong, `{"v":2,"type":"ack","mid":M,"pld":{"status":17}}`
 * - `"unknown-type"`: `{"v":2,"type":"x-simulator-unknown","mid":M,"pld":{"text":"hi"}}`, a type
 *   no real message will ever have (the `x-` prefix marks it as the simulator's own)
 * - `"unknown-ack"`: a well-formed ack whose `original_mid` the client never sent (as far as
 *   the record knows: without `recordAudio`, the mids of chat messages are not kept)
 * - `"huge"`: a valid JSON text frame of a little over 2 MiB, of the same unknown type
 *   (`x-simulator-unknown`), whose `text` holds 2 MiB
 *
 * @since 0.1.0
 * @category models
 */
export type MalformedKind =
  | "not-json"
  | "binary"
  | "not-an-object"
  | "no-type"
  | "wrong-shape"
  | "unknown-type"
  | "unknown-ack"
  | "huge"

/**
 * Every {@link MalformedKind}, in the order a fault cycles through them by default.
 *
 * @since 0.1.0
 * @category constants
 */
export const MALFORMED_KINDS: ReadonlyArray<MalformedKind> = Hostile.MALFORMED_KINDS

/**
 * How the simulator ends a connection on purpose: `"close"` sends a close frame with a
 * code; `"terminate"` destroys the TCP socket without one, so the client sees 1006. A
 * client that does not answer the close frame within a second (it is gone, or does not
 * read) has its socket destroyed: a close never waits longer on a peer.
 *
 * @since 0.1.0
 * @category models
 */
export type DropMode = "close" | "terminate"

/**
 * Fault switches of one instance. They are read when a connection or a message arrives,
 * so {@link Service.setFaults} takes effect on the next one; `stall` takes effect at once.
 *
 * Counts "after N chat frames" are per connection and count every valid chat frame the
 * connection received, also those before the fault was set: a fault set late fires at
 * the next frame. Each of them fires at most once per connection.
 *
 * A value a server cannot act on (a close code it may not send, a count that is not a
 * whole number, an HTTP status outside 100 to 599, a negative delay, an unknown kind) is a
 * defect of `make` or `setFaults`, whose message names the field.
 *
 * @since 0.1.0
 * @category models
 */
export interface Faults {
  /** Accept the upgrade, then close with 4001 "authentication failed". */
  readonly rejectKey?: boolean
  /** Accept the upgrade, then close with 4003 (occupied). */
  readonly occupied?: boolean
  /**
   * Close with 4004 (too soon) for the next N connection attempts on this instance, any
   * session, then accept. A refusal for a bad key, `refuseFirst` or `occupied` (or a busy
   * instance) comes first and does not use up an attempt.
   */
  readonly tooSoon?: number
  /**
   * Close with `code` the next `attempts` connection attempts on this instance, any
   * session, then accept. Every attempt with an accepted key uses one up, whether or not
   * the instance is busy; a bad key is refused with 4001 first and uses none.
   */
  readonly refuseFirst?: { readonly code: 4001 | 4003 | 4004; readonly attempts: number }
  /** Answer the upgrade request with this HTTP status (e.g. 401, 403, 503) instead of upgrading. */
  readonly refuseUpgrade?: number
  /** Do not answer pings. */
  readonly noPong?: boolean
  /** Accept, but never send the system message `websocket_connected`. */
  readonly noWebsocketConnected?: boolean
  /** Send `websocket_connected` only this long after the connection opened. */
  readonly websocketConnectedDelay?: Duration.DurationInput
  /** Acknowledge `set-params`, but never send `agora_connected`. */
  readonly noAgoraConnected?: boolean
  /**
   * Send `agora_connected` this long after the `set-params` ack (after the moment the ack
   * would have left, when `noAck` holds it back).
   */
  readonly agoraConnectedDelay?: Duration.DurationInput
  /** Never send acks (for commands and for `leave_channel`); `agora_connected` still follows `set-params`. */
  readonly noAck?: boolean
  /**
   * Answer every command (`set-params`, `interrupt`) with an `error` message that carries
   * the command's mid as `original_mid`, instead of an ack (and no `agora_connected`).
   */
  readonly commandError?: { readonly code: number; readonly message: string }
  /** After N chat frames on a connection, send one `error` message (without `original_mid`). */
  readonly errorAfterFrames?: { readonly frames: number; readonly code: number; readonly message: string }
  /** Delay every answer to a command (ack, `agora_connected`, `commandError`) by this much. */
  readonly ackDelay?: Duration.DurationInput
  /**
   * After N chat frames on a connection (N >= 1), end it: `"close"` (the default) sends a
   * close frame with `code` (default 1011); `"terminate"` destroys the TCP socket with no
   * close frame, and the client sees 1006. The N-th frame is recorded; the client's later
   * messages are not (they never arrive). The connection's record says `dropped`.
   */
  readonly dropAfterFrames?: {
    readonly frames: number
    readonly mode?: DropMode
    readonly code?: number
  }
  /**
   * The instance stops reading from its open sockets and from new ones, and stops sending:
   * no pong, no ack, no `websocket_connected`. The TCP connections stay open, so what a
   * client sends backs up in the kernel buffers and in its `bufferedAmount`. A new
   * connection gets no answer to its upgrade request until the stall ends. Setting it back
   * to `false` (or leaving it out of the next `setFaults`) resumes reading, and what was
   * held back is sent.
   *
   * What the socket had already read when the stall began is still handled (it is
   * recorded; its answers wait). `drop`, `dropAll` and `sendMalformed` still act on a
   * stalled instance. An upgrade whose client gave up while it was held back is not
   * answered when the stall ends, and is not recorded as a connection.
   */
  readonly stall?: boolean
  /**
   * After N chat frames on a connection (N >= 1), send it `count` hostile messages, cycling
   * through `kinds` (default {@link MALFORMED_KINDS}), then carry on normally.
   */
  readonly malformed?: {
    readonly afterFrames: number
    readonly count: number
    readonly kinds?: ReadonlyArray<MalformedKind>
  }
  /**
   * Play and record as usual, but send no `audio_start` nor `audio_end` (the Python SDK does
   * not know them: the real service may not send them). Read when each event falls due, from
   * the instance of the session's current connection.
   *
   * @since 0.2.0
   */
  readonly noAudioEvents?: boolean
  /**
   * Send each `audio_start` and `audio_end` this much later than the moment it describes
   * (the records keep the true moments). Events still leave in order. Read when each event
   * falls due, from the instance of the session's current connection.
   *
   * @since 0.2.0
   */
  readonly audioEventDelay?: Duration.DurationInput
}

/**
 * @since 0.1.0
 * @category models
 */
export interface InstanceOptions {
  /** Default {@link DEFAULT_AVATAR_ID}. */
  readonly avatarId?: string
  /** What discovery reports; default `"available"`. */
  readonly status?: string
  /** What discovery reports; default `true`. */
  readonly healthy?: boolean
  readonly faults?: Faults
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The key to accept; when absent any non-empty key is accepted. */
  readonly apiKey?: string | Redacted.Redacted<string>
  /** A count of default instances, or one entry per instance; default one instance. */
  readonly instances?: number | ReadonlyArray<InstanceOptions>
  /** Which documented discovery body to send (PROTOCOL.md section 1); default `"code"`. */
  readonly discoveryShape?: "code" | "readme"
  /** Default `"127.0.0.1"`. */
  readonly host?: string
  /** The discovery port; default 0 (ephemeral). Instances always listen on ephemeral ports. */
  readonly port?: number
  /**
   * Keep every chat frame: its bytes, its arrival time and its mid (default `true`). Turn it
   * off for load tests with many sessions: frames and bytes are still counted, but nothing is
   * kept per frame, so a record does not grow with the audio: `frames` stays empty, `mids`
   * holds no chat mids, and `audio` returns nothing. The players (see {@link Service.playback})
   * do not depend on it: they play and record segments either way.
   */
  readonly recordAudio?: boolean
  /**
   * A directory (created if missing) where each session's audio is written as it arrives,
   * as a 16 kHz mono 16-bit PCM WAV: `<saveDir>/<sessionId>.wav`, one file per session id,
   * its reconnects appended in arrival order. The header is rewritten after every frame, so
   * the file is a complete WAV at every moment and plays while it grows. A session id with
   * characters other than letters, digits, `_`, `-` and inner dots is percent-encoded (e.g.
   * `a/b` is `a%2Fb.wav`). The file is written to disk, not kept: it works with
   * `recordAudio: false` too. A file that cannot be written stops growing, and the
   * {@link Service.report} says why.
   */
  readonly saveDir?: string
  /**
   * The jitter buffer of every session's player: playback starts `playoutDelay` after the
   * first frame of a stretch of speech arrives, and frames that arrive while it plays follow
   * on (see {@link Service.playback}). Default 100 ms; a negative delay is a defect of `make`.
   *
   * @since 0.2.0
   */
  readonly playoutDelay?: Duration.DurationInput
  /**
   * Serve the inspector: a live page at `/inspector` on the discovery server (see
   * {@link Service.inspectorUrl}) that shows every session, its audio as a waveform, each
   * frame's arrival against its slot, the drops and reconnects, the playback, and the fault
   * switches as controls; its data is JSON under `/inspector/api/` (docs/inspector.md).
   * Default `false`: the path is then a 404. It reads what the simulator records anyway; the
   * waveform and the audio need `recordAudio` (the default).
   *
   * @since 0.2.0
   */
  readonly inspector?: boolean
}

/**
 * One `chat` message as it arrived.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChatFrame {
  readonly mid: string
  /** The decoded audio. */
  readonly bytes: Uint8Array
  /** `Clock.currentTimeMillis` when it arrived. */
  readonly at: number
}

/**
 * A command as it arrived: `set-params`, `interrupt`, or `leave_channel` (an event on the
 * wire, recorded here as a command). `pld` is the payload as the client sent it.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandRecord {
  readonly cmd: string
  readonly mid: string
  readonly at: number
  readonly pld: unknown
}

/**
 * What the simulator knows about one WebSocket connection, accepted or refused with a
 * close code. Requests refused at the HTTP upgrade (`refuseUpgrade`) are not connections.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionRecord {
  /** Connection counter, unique per simulator. */
  readonly id: number
  /** Index of the instance. */
  readonly instance: number
  /** From the URL query. */
  readonly sessionId: string
  /** From the URL query. */
  readonly avatarId: string
  /** Every valid chat frame; empty when `recordAudio` is off. */
  readonly frames: ReadonlyArray<ChatFrame>
  /** Valid chat frames received, counted even when `recordAudio` is off. */
  readonly frameCount: number
  readonly audioBytes: number
  /** The mid of every valid client message, in order; chat mids only with `recordAudio`. */
  readonly mids: ReadonlyArray<string>
  readonly commands: ReadonlyArray<CommandRecord>
  readonly pings: number
  /** Client messages that did not decode with `Protocol.ClientMessage` (binary frames included). */
  readonly invalid: number
  /** The close code the simulator refused the connection with (4001, 4003, 4004), if it did. */
  readonly refusedWith: number | undefined
  /** The socket is still open. */
  readonly open: boolean
  /**
   * Once closed: the code the simulator closed with (1006 when it terminated the socket),
   * or else the one the client closed with, or 1006 when the client vanished.
   */
  readonly closeCode: number | undefined
  /**
   * The simulator ended the connection on purpose: `dropAfterFrames`, `drop` or `dropAll`.
   * Refusals (see `refusedWith`) and the goodbye when the simulator shuts down are not drops.
   */
  readonly dropped: boolean
}

/**
 * One speaking segment of a session's player (see {@link Service.playback}): audio played
 * back to back, from the start of a frame that followed silence to the end of the last
 * frame before a gap, or to an interrupt. Times are milliseconds on the simulator's clock
 * (`Clock.currentTimeMillis`), and may hold fractions: a frame of `n` bytes lasts `n / 32` ms.
 *
 * @since 0.2.0
 * @category models
 */
export interface PlayedSegment {
  /** When its first frame started to play. */
  readonly startedAt: number
  /**
   * When it stopped: the end of its last frame, or the moment of the interrupt that cut it.
   * While it plays, the time it will end as things stand: a frame that arrives in time to
   * follow on moves it later, and an interrupt earlier.
   */
  readonly endedAt: number
  /**
   * Audio actually played, in milliseconds: `endedAt - startedAt` once it has ended, and
   * what has played so far while it plays.
   */
  readonly playedMs: number
  /** An `interrupt` cut it. */
  readonly interrupted: boolean
  /**
   * Its frames: every frame played, in whole or in part. While it plays this counts the
   * frames waiting in the jitter buffer too; an interrupt takes away those it discards.
   */
  readonly frames: number
  /** It is still playing: `endedAt` is in the future. */
  readonly playing: boolean
}

/**
 * One request the discovery server received. The key itself is never recorded.
 *
 * @since 0.1.0
 * @category models
 */
export interface DiscoveryRequest {
  readonly query: Record<string, string>
  readonly path: string
  readonly keyAccepted: boolean
}

/**
 * An override of the discovery answer. With `status` or `body` the answer is exactly that,
 * whatever the key (`status` defaults to 200; a `body` that is a string is sent verbatim,
 * anything else as JSON; without a body, a non-200 status sends `{code: status, msg}`).
 * `delay` postpones every answer. `{}` restores the normal answer.
 *
 * @since 0.1.0
 * @category models
 */
export interface DiscoveryBehaviour {
  readonly status?: number
  readonly body?: unknown
  readonly delay?: Duration.DurationInput
}

/**
 * A listening instance.
 *
 * @since 0.1.0
 * @category models
 */
export interface InstanceInfo {
  readonly index: number
  readonly host: string
  readonly port: number
  readonly avatarId: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** e.g. `http://127.0.0.1:PORT/streamingAvatar/service_status` */
  readonly discoveryUrl: string
  /**
   * With {@link Options.inspector}, the inspector's page, e.g. `http://127.0.0.1:PORT/inspector`.
   *
   * @since 0.2.0
   */
  readonly inspectorUrl: string | undefined
  readonly instances: ReadonlyArray<InstanceInfo>
  /**
   * Replaces that instance's faults (and restarts its `tooSoon` and `refuseFirst` counts).
   * Starting or ending a `stall` takes effect at once.
   */
  readonly setFaults: (index: number, faults: Faults) => Effect.Effect<void>
  /** Overrides the discovery answer; `{}` restores it. */
  readonly setDiscovery: (behaviour: DiscoveryBehaviour) => Effect.Effect<void>
  /** A snapshot, in connection order. */
  readonly sessions: Effect.Effect<ReadonlyArray<SessionRecord>>
  /** All chat audio received for that session id, across its connections, in arrival order. */
  readonly audio: (sessionId: string) => Effect.Effect<Uint8Array>
  /**
   * Writes the audio received so far for that session id (what {@link Service.audio}
   * returns) to `path` as a complete 16 kHz mono 16-bit PCM WAV, replacing the file. A
   * session that sent nothing gives a WAV without samples. It fails with a
   * {@link SimulatorError} (reason `"save"`) when the file cannot be written.
   */
  readonly saveWav: (sessionId: string, path: string) => Effect.Effect<void, SimulatorError>
  /**
   * What the player of that session has played, segment by segment, in order: the truth to
   * compare a client's estimate of the avatar's speech with. Segments that have not started
   * yet (frames still in the jitter buffer) are not listed; one that is playing is, marked
   * `playing`. Empty for a session id the simulator has not seen.
   *
   * Every session id has one player, which outlives the session's connections (the avatar is
   * one per session, whatever the reconnects):
   *
   * - A chat frame of `d` ms (its bytes / 32) read at `a` (the simulator's clock) plays from
   *   `start` to `start + d`: right after the previous frame when it arrived before that
   *   frame's end, else (the first frame, or after the buffer ran dry) at `a + playoutDelay`
   *   ({@link Options.playoutDelay}, default 100 ms). Frames play in order, at real time.
   * - The player is speaking from the start of a frame that follows silence to the end of the
   *   last frame, when no further frame has started by then: back-to-back frames form one
   *   segment, and any gap, however small, ends it. (A frame that arrives after its
   *   predecessor's end was announced, which only a `playoutDelay` of 0 allows, starts a new
   *   segment.)
   * - At a segment's start the simulator sends `{ "v": 2, "type": "event", "mid": M, "pld": {
   *   "event": "audio_start" } }` on the session's current open connection, and at its end
   *   `audio_end`, unless {@link Faults.noAudioEvents}; {@link Faults.audioEventDelay} sends
   *   them later. An event that falls due while the session has no open connection (between a
   *   drop and the reconnect) is lost; a stalled instance holds it back like any message.
   * - `interrupt` cuts playback the moment the simulator reads it: the frame playing is cut
   *   where it stands, the frames in the jitter buffer are discarded unplayed, and a segment
   *   that was speaking ends there, `interrupted`, with an `audio_end`. Frames that arrive
   *   afterwards play normally, in a new segment. An `interrupt` answered with an error
   *   ({@link Faults.commandError}) cuts nothing; one whose ack is held back
   *   ({@link Faults.ackDelay}, `noAck`) cuts at once all the same.
   *
   * Nothing is kept per frame beyond the start of each frame still in the jitter buffer.
   *
   * @since 0.2.0
   */
  readonly playback: (sessionId: string) => Effect.Effect<ReadonlyArray<PlayedSegment>>
  readonly openConnections: Effect.Effect<number>
  readonly discoveryRequests: Effect.Effect<ReadonlyArray<DiscoveryRequest>>
  /**
   * Ends every open connection and waits until they are closed: `"close"` (the default)
   * sends a close frame with `code` (default 1011), `"terminate"` destroys the TCP socket
   * (the client sees 1006; `code` is not used). The instances are free for a new
   * connection as soon as it is called. A code that a server may not send (1005, 1006,
   * below 1000...) is a defect.
   */
  readonly dropAll: (options?: { readonly mode?: DropMode; readonly code?: number }) => Effect.Effect<void>
  /** As {@link Service.dropAll}, for the connections of one instance. */
  readonly drop: (index: number, options?: { readonly mode?: DropMode; readonly code?: number }) => Effect.Effect<void>
  /**
   * Sends `count` hostile messages right now, cycling through `kinds` (default
   * {@link MALFORMED_KINDS}), to every open connection of that instance that the simulator
   * is not closing, even while it is stalled. Returns how many connections got them.
   */
  readonly sendMalformed: (index: number, count: number, kinds?: ReadonlyArray<MalformedKind>) => Effect.Effect<number>
  /**
   * Per session id: seconds of audio (bytes / 32,000), frames, commands, pings, and with
   * `saveDir` the file its audio went to.
   */
  readonly report: Effect.Effect<string>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class AvatarSimulator extends Context.Tag("akool-streaming-avatar/AvatarSimulator")<
  AvatarSimulator,
  Service
>() {}

/**
 * The simulator could not do its work: `"listen"`, a server could not listen (the port is
 * in use, the host does not exist); `"save"`, a WAV file or the `saveDir` could not be
 * written.
 *
 * @since 0.1.0
 * @category errors
 */
export class SimulatorError extends Schema.TaggedError<SimulatorError>("akool-streaming-avatar/SimulatorError")(
  "SimulatorError",
  {
    reason: Schema.Literal("listen", "save"),
    message: Schema.String
  }
) {}

/**
 * Starts the discovery server and the instances (and creates the `saveDir`). Closing the
 * scope closes every socket with 1001 (going away), waiting at most about a second for the
 * clients' answers, then every server.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<Service, SimulatorError, Scope.Scope> = (options) =>
  internal.make(options ?? {}, (reason, message) => new SimulatorError({ reason, message }))

/**
 * The simulator as a layer. It dies when a server cannot listen: with the default
 * ephemeral ports that does not happen.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<AvatarSimulator> =>
  Layer.orDie(Layer.scoped(AvatarSimulator, make(options)))

/**
 * A running simulator, for code that uses Promises rather than Effect.
 *
 * @since 0.1.0
 * @category models
 */
export interface Running {
  /** e.g. `http://127.0.0.1:PORT/streamingAvatar/service_status` */
  readonly discoveryUrl: string
  /**
   * With {@link Options.inspector}, the inspector's page.
   *
   * @since 0.2.0
   */
  readonly inspectorUrl: string | undefined
  readonly instances: ReadonlyArray<InstanceInfo>
  /** The Effect API of the same simulator: faults, drops, and the full record. */
  readonly service: Service
  /** All chat audio received for that session id, across its connections, in arrival order. */
  readonly audio: (sessionId: string) => Promise<Uint8Array>
  /** As {@link Service.saveWav}; rejects with a {@link SimulatorError}. */
  readonly saveWav: (sessionId: string, path: string) => Promise<void>
  /** A snapshot of every connection, in connection order. */
  readonly sessions: () => Promise<ReadonlyArray<SessionRecord>>
  /**
   * What the player of that session has played: {@link Service.playback}.
   *
   * @since 0.2.0
   */
  readonly playback: (sessionId: string) => Promise<ReadonlyArray<PlayedSegment>>
  /** Per session id: seconds of audio, frames, commands, pings. */
  readonly report: () => Promise<string>
  /** Closes every socket and server (what `await using` calls). */
  readonly close: () => Promise<void>
  /** The same as `close`. */
  readonly [Symbol.asyncDispose]: () => Promise<void>
}

/**
 * Starts the simulator from Promise code: `await using sim = await AvatarSimulator.start()`.
 * It rejects with a {@link SimulatorError} when a server cannot listen.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = async (options?: Options): Promise<Running> => {
  const scope = Effect.runSync(Scope.make())
  const exit = await Effect.runPromiseExit(Scope.extend(make(options), scope))
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw Cause.squash(exit.cause)
  }
  const service = exit.value
  let closed: Promise<void> | undefined
  const close = () => {
    closed ??= Effect.runPromise(Scope.close(scope, Exit.void))
    return closed
  }
  return {
    discoveryUrl: service.discoveryUrl,
    inspectorUrl: service.inspectorUrl,
    instances: service.instances,
    service,
    audio: (sessionId) => Effect.runPromise(service.audio(sessionId)),
    saveWav: (sessionId, path) =>
      Effect.runPromiseExit(service.saveWav(sessionId, path)).then((saved) => {
        if (Exit.isFailure(saved)) throw Cause.squash(saved.cause)
      }),
    sessions: () => Effect.runPromise(service.sessions),
    playback: (sessionId) => Effect.runPromise(service.playback(sessionId)),
    report: () => Effect.runPromise(service.report),
    close,
    [Symbol.asyncDispose]: close
  }
}
