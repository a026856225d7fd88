import * as Socket from "@effect/platform/Socket"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Protocol from "../../Protocol.js"
import type * as Connection from "./connection.js"
import type * as Hostile from "./hostile.js"
import type * as Messages from "./messages.js"
import type * as Player from "./player.js"

/** @internal What the per-connection protocol needs from the simulator. */
export interface HandlerContext {
  readonly messages: Messages.ServerMessages
  readonly hostile: Hostile.Hostile
  readonly players: Player.Players
}

/** What one client frame asks the simulator to do: nothing, most of the time. */
type Handle = (data: string | Uint8Array) => Effect.Effect<void> | undefined

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

/** The answer to a command, as the faults shape it. */
const answer = (
  context: HandlerContext,
  connection: Connection.Connection,
  send: Connection.Send,
  kind: Protocol.CommandName,
  mid: string,
  channel: string | undefined
): Effect.Effect<void> => {
  const faults = connection.instance.faults
  const messages = context.messages
  // recorded once it has left, for the inspector: a stall holds it back
  const answered = (kind: "ack" | "error") => Effect.sync(() => connection.record.unsafeAnswered(mid, kind))
  let effect: Effect.Effect<void>
  if (faults.commandError !== undefined && kind !== "leave_channel") {
    effect = Effect.zipRight(
      send(
        messages.encode("error", {
          error_code: faults.commandError.code,
          error_message: faults.commandError.message,
          original_mid: mid
        })
      ),
      answered("error")
    )
  } else {
    const ack =
      faults.noAck === true
        ? Effect.void
        : Effect.zipRight(send(messages.encode("ack", { original_mid: mid, status: "success" })), answered("ack"))
    if (kind === "set-params" && faults.noAgoraConnected !== true) {
      const agora = send(messages.encode("system", { status: "agora_connected", channel_id: channel ?? "" }))
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

/** The faults that act after N chat frames (those `Faults.actsAfterFrames` names). */
const afterFrame = (
  context: HandlerContext,
  connection: Connection.Connection,
  send: Connection.Send
): Effect.Effect<void> | undefined => {
  const faults = connection.instance.faults
  const frames = connection.record.frameCount
  let effect: Effect.Effect<void> | undefined
  const errorAfter = faults.errorAfterFrames
  if (errorAfter !== undefined && frames >= errorAfter.frames && connection.unsafeFire("errorAfterFrames")) {
    effect = send(context.messages.encode("error", { error_code: errorAfter.code, error_message: errorAfter.message }))
  }
  const malformed = faults.malformed
  if (malformed !== undefined && frames >= malformed.afterFrames && connection.unsafeFire("malformed")) {
    const messages = context.hostile.send(send, connection.record, malformed.count, malformed.kinds)
    effect = effect === undefined ? messages : Effect.zipRight(effect, messages)
  }
  const drop = faults.dropAfterFrames
  if (drop !== undefined && frames >= drop.frames) {
    const request: Connection.CloseRequest = {
      mode: drop.mode ?? "close",
      code: drop.code ?? 1011,
      reason: `dropped after ${drop.frames} chat frames`,
      dropped: true
    }
    if (effect === undefined) {
      connection.unsafeRequestClose(request)
      return undefined
    }
    // What the frame triggered leaves before the close; nothing after the frame counts.
    connection.unsafeEnding()
    return Effect.zipRight(
      effect,
      Effect.sync(() => connection.unsafeRequestClose(request))
    )
  }
  return effect
}

const onChat = (
  context: HandlerContext,
  connection: Connection.Connection,
  clock: Clock.Clock,
  send: Connection.Send,
  json: ChatJson
): Effect.Effect<void> | undefined => {
  const audio = validChatAudio(json)
  if (audio === undefined) {
    connection.record.unsafeInvalid()
    return undefined
  }
  connection.record.unsafeChat(json.mid as string, audio, clock)
  context.players.unsafeFrame(connection, audio, clock.unsafeCurrentTimeMillis())
  return connection.instance.actsAfterFrames ? afterFrame(context, connection, send) : undefined
}

const onMessage = (
  context: HandlerContext,
  connection: Connection.Connection,
  clock: Clock.Clock,
  send: Connection.Send
): Handle => {
  const record = connection.record
  return (data) => {
    if (connection.ending) return undefined
    if (typeof data !== "string") {
      record.unsafeInvalid()
      return undefined
    }
    let json: unknown
    try {
      json = JSON.parse(data)
    } catch {
      record.unsafeInvalid()
      return undefined
    }
    if (typeof json !== "object" || json === null) {
      record.unsafeInvalid()
      return undefined
    }
    if ((json as { readonly type?: unknown }).type === "chat") {
      return onChat(context, connection, clock, send, json as ChatJson)
    }
    const decoded = decodeClientMessage(json)
    if (Either.isLeft(decoded)) {
      record.unsafeInvalid()
      return undefined
    }
    const msg = decoded.right
    const pld = (json as { readonly pld: unknown }).pld
    record.unsafeMessage(msg.mid)
    switch (msg.type) {
      case "ping": {
        record.unsafePing()
        return connection.instance.faults.noPong === true ? undefined : send(context.messages.encode("pong", {}))
      }
      case "command": {
        const at = clock.unsafeCurrentTimeMillis()
        record.unsafeCommand({ cmd: msg.pld.cmd, mid: msg.mid, at, pld })
        // A command answered with an error was not carried out.
        if (msg.pld.cmd === "interrupt" && connection.instance.faults.commandError === undefined) {
          context.players.unsafeInterrupt(connection, at)
        }
        const channel = msg.pld.cmd === "set-params" ? msg.pld.metadata.agora_data.channel_id : undefined
        return answer(context, connection, send, msg.pld.cmd, msg.mid, channel)
      }
      case "event": {
        record.unsafeCommand({ cmd: "leave_channel", mid: msg.mid, at: clock.unsafeCurrentTimeMillis(), pld })
        // The client is leaving: the instance can take the next session.
        connection.instance.unsafeRelease(connection)
        return answer(context, connection, send, "leave_channel", msg.mid, undefined)
      }
      case "chat":
        // chat is handled above; a chat that reached here was already judged invalid
        return undefined
    }
  }
}

/**
 * The per-connection protocol: what `runRaw` calls with every client frame.
 *
 * @internal
 */
export const make = (
  context: HandlerContext,
  connection: Connection.Connection,
  clock: Clock.Clock,
  send: Connection.Send
): Handle => {
  // `runRaw` hands the raw socket only to the effects a handler returns: the first
  // message watches its close event, whose code tells a clean close (1000) from a
  // vanished peer (1006), which `runRaw` does not.
  const watch = Effect.flatMap(Effect.serviceOption(Socket.WebSocket), (ws) =>
    Effect.sync(() => {
      if (ws._tag === "Some") {
        ws.value.addEventListener("close", (event) => connection.unsafePeerClosed(event.code))
      }
    })
  )
  // The avatar is the session's: its events go to the session's newest accepted connection.
  if (connection.record.refusedWith === undefined) context.players.unsafeAttach(connection, send)
  const handle = onMessage(context, connection, clock, send)
  let watching = false
  return (data) => {
    const effect = handle(data)
    if (watching) return effect
    watching = true
    return effect === undefined ? watch : Effect.zipRight(watch, effect)
  }
}
