import * as Crypto from "node:crypto"
import * as Effect from "effect/Effect"
import type * as AvatarSimulator from "../../AvatarSimulator.js"
import * as Protocol from "../../Protocol.js"
import type * as Messages from "./messages.js"

/**
 * The type of the `unknown-type` and `huge` messages. A name the service could one day send
 * (such as `subtitle`) would make the simulator lie about it; the `x-` prefix marks a name
 * that is the simulator's own.
 *
 * @internal
 */
export const UNKNOWN_TYPE = "x-simulator-unknown"

/** The `text` of a `huge` message: 2 MiB. */
const HUGE_TEXT_LENGTH = 2 * 1024 * 1024

/** The mids a connection has sent, as far as its record keeps them. */
interface Sent {
  readonly hasMid: (mid: string) => boolean
}

type Build = (hostile: Hostile, sent: Sent) => string | Uint8Array

// One entry per kind, checked by the compiler: the list of kinds is read from it.
const builders: { readonly [K in AvatarSimulator.MalformedKind]: Build } = {
  "not-json": () => "{this is not json",
  binary: () => new Uint8Array(Crypto.randomBytes(32)),
  "not-an-object": () => "[1,2,3]",
  "no-type": () => JSON.stringify({ v: Protocol.VERSION, pld: {} }),
  "wrong-shape": (hostile) => hostile.messages.encode("ack", { status: 17 }),
  "unknown-type": (hostile) => hostile.messages.encode(UNKNOWN_TYPE, { text: "hi" }),
  "unknown-ack": (hostile, sent) =>
    hostile.messages.encode("ack", { original_mid: hostile.neverSent(sent), status: "success" }),
  huge: (hostile) => hostile.messages.encode(UNKNOWN_TYPE, { text: hostile.hugeText() })
}

/** @internal In the order of `builders`, which is the order a fault cycles through them. */
export const MALFORMED_KINDS = Object.keys(builders) as ReadonlyArray<AvatarSimulator.MalformedKind>

/** @internal */
export const isMalformedKind = (kind: unknown): kind is AvatarSimulator.MalformedKind =>
  (MALFORMED_KINDS as ReadonlyArray<unknown>).includes(kind)

/**
 * Builds hostile messages for one simulator. The 2 MiB text of `huge` is built once, on
 * first use, and shared.
 *
 * @internal
 */
export class Hostile {
  private huge: string | undefined = undefined

  constructor(readonly messages: Messages.ServerMessages) {}

  hugeText(): string {
    this.huge ??= "x".repeat(HUGE_TEXT_LENGTH)
    return this.huge
  }

  /** A mid the connection has not sent: an ack for it must match nothing the client waits for. */
  neverSent(sent: Sent): string {
    let original = `never-sent-${this.messages.nextMid()}`
    while (sent.hasMid(original)) original = `never-sent-${this.messages.nextMid()}`
    return original
  }

  /** `count` messages through `out`, cycling through `kinds`. */
  send(
    out: (data: string | Uint8Array) => Effect.Effect<void>,
    sent: Sent,
    count: number,
    kinds: ReadonlyArray<AvatarSimulator.MalformedKind> = MALFORMED_KINDS
  ): Effect.Effect<void> {
    return Effect.forEach(
      Array.from({ length: count }, (_, i) => kinds[i % kinds.length]!),
      (kind) => Effect.suspend(() => out(builders[kind](this, sent))),
      { discard: true }
    )
  }
}
