/**
 * The Akool streaming-avatar wire protocol (version 2): a Schema for every message either
 * side sends, a tolerant decoder for what the server sends, and collision-free message ids.
 *
 * Every message is one JSON text frame `{ "v": 2, "type": T, "mid": M, "pld": {...} }`.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * @since 0.1.0
 * @category constants
 */
export const VERSION = 2 as const

/**
 * Streaming mode: the only mode this SDK speaks.
 *
 * @since 0.1.0
 * @category constants
 */
export const STREAMING_MODE = 3 as const

const envelope = <T extends string, P extends Schema.Schema.Any>(type: T, pld: P) =>
  Schema.Struct({
    v: Schema.Literal(VERSION),
    type: Schema.Literal(type),
    mid: Schema.String,
    pld
  })

// ---------------------------------------------------------------------------
// client to server
// ---------------------------------------------------------------------------

/**
 * Agora credentials as the service expects them inside `set-params`.
 *
 * @since 0.1.0
 * @category client messages
 */
export const AgoraData = Schema.Struct({
  appid: Schema.String,
  channel_id: Schema.String,
  token: Schema.String,
  uid: Schema.String
})

/**
 * @since 0.1.0
 * @category client messages
 */
export const SetParamsData = Schema.Struct({
  vid: Schema.String,
  lang: Schema.String,
  mode: Schema.Literal(STREAMING_MODE),
  bgurl: Schema.String
})

/**
 * @since 0.1.0
 * @category client messages
 */
export const SetParamsCommand = envelope(
  "command",
  Schema.Struct({
    cmd: Schema.Literal("set-params"),
    data: SetParamsData,
    metadata: Schema.Struct({ agora_data: AgoraData })
  })
)

/**
 * @since 0.1.0
 * @category client messages
 */
export const InterruptCommand = envelope("command", Schema.Struct({ cmd: Schema.Literal("interrupt") }))

/**
 * Audio: base64 of PCM s16le, 16 kHz, mono. The field is a plain string in the Schema: the
 * data plane encodes it with `Buffer`, 45 times cheaper than a Schema transformation.
 *
 * @since 0.1.0
 * @category client messages
 */
export const Chat = envelope("chat", Schema.Struct({ audio: Schema.String }))

/**
 * @since 0.1.0
 * @category client messages
 */
export const Ping = envelope("ping", Schema.Struct({}))

/**
 * @since 0.1.0
 * @category client messages
 */
export const LeaveChannel = envelope(
  "event",
  Schema.Struct({ event: Schema.Literal("leave_channel"), reason: Schema.String })
)

/**
 * Every message the client sends.
 *
 * @since 0.1.0
 * @category client messages
 */
export const ClientMessage = Schema.Union(SetParamsCommand, InterruptCommand, Chat, Ping, LeaveChannel)

/**
 * @since 0.1.0
 * @category client messages
 */
export type ClientMessage = typeof ClientMessage.Type

/**
 * The commands that the server acknowledges, by their `cmd` (or `event`) name.
 *
 * @since 0.1.0
 * @category client messages
 */
export type CommandName = "set-params" | "interrupt" | "leave_channel"

// ---------------------------------------------------------------------------
// server to client
// ---------------------------------------------------------------------------

const serverEnvelope = <T extends string, P extends Schema.Schema.Any>(type: T, pld: P) =>
  Schema.Struct({
    v: Schema.optional(Schema.Finite),
    type: Schema.Literal(type),
    mid: Schema.optional(Schema.String),
    pld
  })

/**
 * `websocket_connected`, `agora_connected` (with `channel_id`), or any other status.
 *
 * @since 0.1.0
 * @category server messages
 */
export const System = serverEnvelope(
  "system",
  Schema.Struct({ status: Schema.String, channel_id: Schema.optional(Schema.String) })
)

/**
 * @since 0.1.0
 * @category server messages
 */
export const Ack = serverEnvelope("ack", Schema.Struct({ original_mid: Schema.String, status: Schema.String }))

/**
 * @since 0.1.0
 * @category server messages
 */
export const Pong = serverEnvelope("pong", Schema.Struct({}))

/**
 * An `error` message. `original_mid`, when the server includes it, names the message the
 * error answers.
 *
 * @since 0.1.0
 * @category server messages
 */
export const ErrorMessage = serverEnvelope(
  "error",
  Schema.Struct({
    error_code: Schema.Finite,
    error_message: Schema.String,
    original_mid: Schema.optional(Schema.String)
  })
)

/**
 * An `event` from the server: `audio_start` and `audio_end` say that the avatar started and
 * stopped speaking (Akool's web demo handles them; the Python SDK does not mention them, so
 * a session must work without them). Other events decode too, with their fields kept.
 *
 * @since 0.2.0
 * @category server messages
 */
export const ServerEvent = serverEnvelope("event", Schema.Struct({ event: Schema.String }))

/**
 * The messages the server is known to send. Unknown fields are kept on decode.
 *
 * @since 0.1.0
 * @category server messages
 */
export const KnownServerMessage = Schema.Union(System, Ack, Pong, ErrorMessage, ServerEvent)

/**
 * @since 0.1.0
 * @category server messages
 */
export type KnownServerMessage = typeof KnownServerMessage.Type

/**
 * A well-formed message of a type this SDK does not know: passed on untouched.
 *
 * @since 0.1.0
 * @category server messages
 */
export interface UnknownMessage {
  readonly type: "unknown"
  readonly messageType: string
  readonly raw: unknown
}

/**
 * Something that is not a protocol message at all: not JSON, a binary frame, or a known
 * type whose payload has the wrong shape. `excerpt` holds at most 200 characters of it.
 *
 * @since 0.1.0
 * @category server messages
 */
export interface InvalidMessage {
  readonly type: "invalid"
  readonly reason: "not-json" | "binary" | "not-an-object" | "wrong-shape"
  readonly detail: string
  readonly excerpt: string
  readonly size: number
}

/**
 * What `session.events` carries: every server message, decoded where it is known.
 *
 * @since 0.1.0
 * @category server messages
 */
export type ServerMessage = KnownServerMessage | UnknownMessage | InvalidMessage

// the types the union decodes, read from it: a new message is its schema in the union, nothing else here
const knownTypes: ReadonlySet<string> = new Set(
  KnownServerMessage.members.map((member) => member.fields.type.literals[0])
)
const decodeKnown = Schema.decodeUnknownEither(KnownServerMessage, { onExcessProperty: "preserve" })
const EXCERPT = 200

const isPong = (json: object): json is typeof Pong.Type => {
  const { v, mid, pld } = json as { v?: unknown; mid?: unknown; pld?: unknown }
  return (
    (v === undefined || (typeof v === "number" && Number.isFinite(v))) &&
    (mid === undefined || typeof mid === "string") &&
    // `Schema.Struct({})` takes any value but null and undefined
    pld !== null &&
    pld !== undefined
  )
}

const excerptOf = (text: string) => (text.length > EXCERPT ? `${text.slice(0, EXCERPT)}…` : text)

/**
 * Decodes one inbound frame. Never fails: anything that is not a known message becomes an
 * {@link UnknownMessage} or an {@link InvalidMessage}, so a hostile or newer server cannot
 * break a session.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeServerMessage = (data: string | Uint8Array): ServerMessage => {
  if (typeof data !== "string") {
    return {
      type: "invalid",
      reason: "binary",
      detail: `a binary frame of ${data.byteLength} bytes; the protocol only uses JSON text frames`,
      excerpt: "",
      size: data.byteLength
    }
  }
  let json: unknown
  try {
    json = JSON.parse(data)
  } catch (e) {
    return {
      type: "invalid",
      reason: "not-json",
      detail: e instanceof Error ? e.message : "not JSON",
      excerpt: excerptOf(data),
      size: data.length
    }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return {
      type: "invalid",
      reason: "not-an-object",
      detail: "a message must be a JSON object",
      excerpt: excerptOf(data),
      size: data.length
    }
  }
  const type = (json as { type?: unknown }).type
  if (typeof type !== "string") {
    return {
      type: "invalid",
      reason: "wrong-shape",
      detail: "the message has no string `type`",
      excerpt: excerptOf(data),
      size: data.length
    }
  }
  if (!knownTypes.has(type)) {
    return { type: "unknown", messageType: type, raw: json }
  }
  // a pong arrives for every heartbeat and every second of audio: checked by hand, the same
  // rules as the Schema (the property test holds both to them)
  if (type === "pong" && isPong(json)) return json
  const decoded = decodeKnown(json)
  if (Either.isRight(decoded)) return decoded.right
  return {
    type: "invalid",
    reason: "wrong-shape",
    detail: ParseResult.TreeFormatter.formatErrorSync(decoded.left),
    excerpt: excerptOf(data),
    size: data.length
  }
}

const encodeClient = Schema.encodeSync(Schema.parseJson(ClientMessage))

/**
 * Encodes a client message to the JSON text frame it travels as.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeClientMessage = (message: ClientMessage): string => encodeClient(message)

/**
 * A `ping` frame, by string concatenation like {@link encodeChat}: the data plane sends one
 * after each second of audio. Round-trip tests hold it equal to {@link encodeClientMessage}.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodePing = (mid: string): string => `{"v":2,"type":"ping","mid":"${mid}","pld":{}}`

/**
 * The data plane's encoder: one `chat` frame from a base64 payload, by string concatenation
 * (base64 and message ids need no escaping). Round-trip tests hold it equal to
 * {@link encodeClientMessage}.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeChat = (mid: string, audioBase64: string): string =>
  `{"v":2,"type":"chat","mid":"${mid}","pld":{"audio":"${audioBase64}"}}`

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

/**
 * Parameters of `set-params`, in this SDK's names.
 *
 * @since 0.1.0
 * @category models
 */
export interface AvatarParams {
  readonly agora: {
    readonly appId: string
    readonly channel: string
    readonly token: string
    readonly uid: string | number
  }
  readonly voiceId?: string | undefined
  readonly language?: string | undefined
  readonly backgroundUrl?: string | undefined
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const setParams = (mid: string, params: AvatarParams): typeof SetParamsCommand.Type => ({
  v: VERSION,
  type: "command",
  mid,
  pld: {
    cmd: "set-params",
    data: {
      vid: params.voiceId ?? "",
      lang: params.language ?? "en",
      mode: STREAMING_MODE,
      bgurl: params.backgroundUrl ?? ""
    },
    metadata: {
      agora_data: {
        appid: params.agora.appId,
        channel_id: params.agora.channel,
        token: params.agora.token,
        uid: String(params.agora.uid)
      }
    }
  }
})

/**
 * @since 0.1.0
 * @category constructors
 */
export const interrupt = (mid: string): typeof InterruptCommand.Type => ({
  v: VERSION,
  type: "command",
  mid,
  pld: { cmd: "interrupt" }
})

/**
 * @since 0.1.0
 * @category constructors
 */
export const ping = (mid: string): typeof Ping.Type => ({ v: VERSION, type: "ping", mid, pld: {} })

/**
 * @since 0.1.0
 * @category constructors
 */
export const leaveChannel = (mid: string, reason = "client_disconnect"): typeof LeaveChannel.Type => ({
  v: VERSION,
  type: "event",
  mid,
  pld: { event: "leave_channel", reason }
})

/**
 * The name of the command a client message carries, when the server acknowledges it.
 *
 * @since 0.1.0
 * @category models
 */
export const commandName = (message: ClientMessage): CommandName | undefined => {
  switch (message.type) {
    case "command":
      return message.pld.cmd
    case "event":
      return "leave_channel"
    default:
      return undefined
  }
}

// ---------------------------------------------------------------------------
// message ids
// ---------------------------------------------------------------------------

/**
 * A source of message ids that never repeats within a session: a random prefix per
 * generator and a counter, where the reference SDK's millisecond clock collides when two
 * messages leave in the same millisecond.
 *
 * @since 0.1.0
 * @category message ids
 */
export interface MessageIds {
  /** A message id not given out before by this generator. */
  readonly next: () => string
}

/**
 * @since 0.1.0
 * @category message ids
 */
export const makeMessageIds = (prefix: string = randomPrefix()): MessageIds => {
  let counter = 0
  return { next: () => `${prefix}-${(++counter).toString(36)}` }
}

const randomPrefix = (): string => {
  const bytes = new Uint8Array(6)
  globalThis.crypto.getRandomValues(bytes)
  let out = ""
  for (const b of bytes) out += b.toString(16).padStart(2, "0")
  return out
}
