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
 * Its timers (the `ackDelay` and discovery `delay` faults) and the arrival times it records
 * run on the `Clock` of the fiber that built it: under `TestClock` they follow test time.
 *
 * @since 0.1.0
 */

import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/simulator.js"

/**
 * The avatar id every instance serves unless told otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_AVATAR_ID: string = internal.DEFAULT_AVATAR_ID

/**
 * The discovery path, as the service serves it.
 *
 * @since 0.1.0
 * @category constants
 */
export const DISCOVERY_PATH: string = internal.DISCOVERY_PATH

/**
 * The WebSocket path of an instance.
 *
 * @since 0.1.0
 * @category constants
 */
export const WEBSOCKET_PATH: string = internal.WEBSOCKET_PATH

/**
 * Fault switches of one instance. They are read when a connection or a message arrives,
 * so {@link Service.setFaults} takes effect on the next one.
 *
 * @since 0.1.0
 * @category models
 */
export interface Faults {
  /** Accept the upgrade, then close with 4001 "authentication failed". */
  readonly rejectKey?: boolean
  /** Accept the upgrade, then close with 4003 (occupied). */
  readonly occupied?: boolean
  /** Close with 4004 (too soon) for the next N connection attempts that get this far, then accept. */
  readonly tooSoon?: number
  /** Answer the upgrade request with this HTTP status (e.g. 401, 403, 503) instead of upgrading. */
  readonly refuseUpgrade?: number
  /** Do not answer pings. */
  readonly noPong?: boolean
  /** Accept, but never send the system message `websocket_connected`. */
  readonly noWebsocketConnected?: boolean
  /** Acknowledge `set-params`, but never send `agora_connected`. */
  readonly noAgoraConnected?: boolean
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
   * Keep the bytes of every chat frame (default `true`). Turn it off for load tests with
   * many sessions: frames and bytes are still counted, but `frames` stays empty and
   * `audio` returns nothing.
   */
  readonly recordAudio?: boolean
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
  /** The mid of every valid client message, in order. */
  readonly mids: ReadonlyArray<string>
  readonly commands: ReadonlyArray<CommandRecord>
  readonly pings: number
  /** Client messages that did not decode with `Protocol.ClientMessage` (binary frames included). */
  readonly invalid: number
  /** The close code the simulator refused the connection with (4001, 4003, 4004), if it did. */
  readonly refusedWith: number | undefined
  /** The socket is still open. */
  readonly open: boolean
  /** The code the simulator closed with, or else the one the client closed with. */
  readonly closeCode: number | undefined
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
  readonly instances: ReadonlyArray<InstanceInfo>
  /** Replaces that instance's faults (and restarts its `tooSoon` count). */
  readonly setFaults: (index: number, faults: Faults) => Effect.Effect<void>
  /** Overrides the discovery answer; `{}` restores it. */
  readonly setDiscovery: (behaviour: DiscoveryBehaviour) => Effect.Effect<void>
  /** A snapshot, in connection order. */
  readonly sessions: Effect.Effect<ReadonlyArray<SessionRecord>>
  /** All chat audio received for that session id, across its connections, in arrival order. */
  readonly audio: (sessionId: string) => Effect.Effect<Uint8Array>
  readonly openConnections: Effect.Effect<number>
  readonly discoveryRequests: Effect.Effect<ReadonlyArray<DiscoveryRequest>>
  /**
   * Closes every open connection with `code` (default 1011) and waits until they are
   * closed. The instances are free for a new connection as soon as it is called. A code
   * that a server may not send (1005, 1006, below 1000...) is a defect.
   */
  readonly dropAll: (options?: { readonly code?: number }) => Effect.Effect<void>
  /** Per session id: seconds of audio (bytes / 32,000), frames, commands, pings. */
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
 * A server of the simulator could not listen (the port is in use, the host does not exist).
 *
 * @since 0.1.0
 * @category errors
 */
export class SimulatorError extends Schema.TaggedError<SimulatorError>("akool-streaming-avatar/SimulatorError")(
  "SimulatorError",
  {
    reason: Schema.Literal("listen"),
    message: Schema.String
  }
) {}

/**
 * Starts the discovery server and the instances. Closing the scope closes every server
 * and socket.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<Service, SimulatorError, Scope.Scope> = (options) =>
  internal.make(options ?? {}, (message) => new SimulatorError({ reason: "listen", message }))

/**
 * The simulator as a layer. It dies when a server cannot listen: with the default
 * ephemeral ports that does not happen.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<AvatarSimulator> =>
  Layer.orDie(Layer.scoped(AvatarSimulator, make(options)))
