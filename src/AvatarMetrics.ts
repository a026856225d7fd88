/**
 * The SDK's metrics, in one place, named `akool_avatar_*`. They are Effect metrics: any
 * exporter that reads Effect's metric registry sees them (for OpenTelemetry,
 * `@effect/opentelemetry`'s `NodeSdk` or `Metrics` layers; see `examples/observability.ts`).
 *
 * The audio path updates them once per batch of frames, synchronously, never once per
 * frame and never through a fiber.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/** Milliseconds from 1 ms to about 16 s. */
const latencyBoundaries = MetricBoundaries.exponential({ start: 1, factor: 2, count: 15 })

/**
 * Sessions opened since the process started.
 *
 * @since 0.1.0
 * @category metrics
 */
export const sessionsOpened = Metric.counter("akool_avatar_sessions_opened_total", {
  description: "Avatar sessions opened",
  incremental: true
})

/**
 * Sessions open now.
 *
 * @since 0.1.0
 * @category metrics
 */
export const sessionsActive = Metric.counter("akool_avatar_sessions_active", {
  description: "Avatar sessions open now"
})

/**
 * Reconnections after a dropped connection.
 *
 * @since 0.1.0
 * @category metrics
 */
export const reconnects = Metric.counter("akool_avatar_reconnects_total", {
  description: "Reconnections after a dropped connection",
  incremental: true
})

/**
 * Audio frames written to a socket.
 *
 * @since 0.1.0
 * @category metrics
 */
export const framesSent = Metric.counter("akool_avatar_frames_sent_total", {
  description: "Audio frames written to a socket",
  incremental: true
})

/**
 * Bytes of PCM written to a socket (before base64).
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesSent = Metric.counter("akool_avatar_bytes_sent_total", {
  description: "Bytes of PCM audio written to a socket, before base64",
  incremental: true
})

/**
 * Audio frames dropped by an interrupt the caller asked for.
 *
 * @since 0.1.0
 * @category metrics
 */
export const framesDropped = Metric.counter("akool_avatar_frames_dropped_total", {
  description: "Audio frames dropped by an interrupt",
  incremental: true
})

/**
 * Frames written to connections that dropped before the server confirmed them.
 *
 * @since 0.1.0
 * @category metrics
 */
export const framesUnconfirmed = Metric.counter("akool_avatar_frames_unconfirmed_total", {
  description: "Audio frames written to a connection that dropped before a pong or ack confirmed them",
  incremental: true
})

/**
 * Frames waiting in the outboxes of all sessions, now.
 *
 * @since 0.1.0
 * @category metrics
 */
export const outboxDepth = Metric.counter("akool_avatar_outbox_frames", {
  description: "Audio frames waiting in session outboxes"
})

/**
 * Time from a command leaving to its `ack`, in milliseconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const ackLatency = Metric.histogram(
  "akool_avatar_ack_latency_ms",
  latencyBoundaries,
  "Milliseconds from a command to its ack"
)

/**
 * Round trip of a heartbeat `ping` to its `pong`, in milliseconds.
 *
 * @since 0.1.0
 * @category metrics
 */
export const heartbeatRoundTrip = Metric.histogram(
  "akool_avatar_heartbeat_rtt_ms",
  latencyBoundaries,
  "Milliseconds from a heartbeat ping to its pong"
)

/**
 * The playout delay measured from the server's `audio_start` events: from a segment's first
 * frame reaching the service to the avatar starting to speak it, in milliseconds.
 *
 * @since 0.2.0
 * @category metrics
 */
export const playoutDelay = Metric.histogram(
  "akool_avatar_playout_delay_ms",
  latencyBoundaries,
  "Milliseconds from audio reaching the service to the avatar speaking it"
)

/**
 * Utterances the avatar finished speaking.
 *
 * @since 0.2.0
 * @category metrics
 */
export const utterancesSpoken = Metric.counter("akool_avatar_utterances_spoken_total", {
  description: "Utterances the avatar spoke to their end",
  incremental: true
})

/**
 * Utterances an interrupt cut before their end.
 *
 * @since 0.2.0
 * @category metrics
 */
export const utterancesInterrupted = Metric.counter("akool_avatar_utterances_interrupted_total", {
  description: "Utterances cut by an interrupt",
  incremental: true
})
