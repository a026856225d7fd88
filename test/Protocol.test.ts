import { describe, expect, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as Schema from "effect/Schema"
import { Protocol } from "../src/index.js"
import { encodeMaskedChatFrame } from "../src/internal/connection/wsFrame.js"
import { encodeChatBuffer } from "../src/internal/dataplane/chatFrame.js"

/** Reads one client frame as a server must (RFC 6455 §5.2): its flags, its length, its payload unmasked. */
const readClientFrame = (frame: Uint8Array) => {
  const seven = frame[1]! & 0x7f
  const lengthBytes = seven === 126 ? 2 : seven === 127 ? 8 : 0
  let length = seven
  if (lengthBytes > 0) {
    length = 0
    for (let i = 0; i < lengthBytes; i++) length = length * 256 + frame[2 + i]!
  }
  const keyAt = 2 + lengthBytes
  const key = frame.subarray(keyAt, keyAt + 4)
  const payload = Uint8Array.from(frame.subarray(keyAt + 4), (byte, i) => byte ^ key[i & 3]!)
  return {
    fin: (frame[0]! & 0x80) !== 0,
    opcode: frame[0]! & 0x0f,
    masked: (frame[1]! & 0x80) !== 0,
    length,
    key,
    payload
  }
}

const decodeClient = Schema.decodeUnknownSync(Schema.parseJson(Protocol.ClientMessage))

describe("Protocol", () => {
  it.prop("every client message survives encode and decode", [Protocol.ClientMessage], ([message]) => {
    const wire = Protocol.encodeClientMessage(message)
    expect(decodeClient(wire)).toStrictEqual(message)
    const json = JSON.parse(wire)
    expect(json.v).toBe(2)
    expect(typeof json.mid).toBe("string")
  })

  it.prop(
    "the data plane's chat encoder produces exactly what the Schema encodes",
    [FastCheck.uint8Array({ maxLength: 2048 })],
    ([bytes]) => {
      const ids = Protocol.makeMessageIds()
      const mid = ids.next()
      const audio = Buffer.from(bytes).toString("base64")
      const fast = Protocol.encodeChat(mid, audio)
      const viaSchema = Protocol.encodeClientMessage({ v: 2, type: "chat", mid, pld: { audio } })
      expect(JSON.parse(fast)).toStrictEqual(JSON.parse(viaSchema))
      expect(decodeClient(fast)).toStrictEqual({ v: 2, type: "chat", mid, pld: { audio } })
      // Node's writer builds the same message as bytes, from a view into a larger buffer
      const backing = new Uint8Array(bytes.byteLength + 7)
      backing.set(bytes, 3)
      const view = backing.subarray(3, 3 + bytes.byteLength)
      expect(encodeChatBuffer(mid, view).toString("latin1")).toBe(fast)
    }
  )

  it.prop(
    "the Node writer's whole frames are masked text frames carrying exactly the chat message",
    [
      FastCheck.oneof(
        FastCheck.uint8Array({ maxLength: 2048 }),
        // payloads of 126 to 65,535 bytes and of 65,536 or more have longer headers
        FastCheck.integer({ min: 48_000, max: 60_000 }).map((n) => new Uint8Array(n).map((_, i) => i * 7))
      ),
      FastCheck.integer({ min: 0, max: 7 })
    ],
    ([bytes, offset]) => {
      const ids = Protocol.makeMessageIds()
      const backing = new Uint8Array(bytes.byteLength + 8)
      backing.set(bytes, offset)
      const view = backing.subarray(offset, offset + bytes.byteLength)
      const keys = new Set<string>()
      for (let i = 0; i < 3; i++) {
        const mid = ids.next()
        const frame = readClientFrame(encodeMaskedChatFrame(mid, view))
        expect(frame).toMatchObject({ fin: true, opcode: 1, masked: true })
        expect(frame.length).toBe(frame.payload.byteLength)
        expect(Buffer.from(frame.payload).toString("latin1")).toBe(encodeChatBuffer(mid, view).toString("latin1"))
        keys.add(Buffer.from(frame.key).toString("hex"))
      }
      // a fresh key for every frame (three equal keys in a row would be one in 2^64)
      expect(keys.size).toBe(3)
    }
  )

  it("the data plane's ping encoder produces exactly what the Schema encodes", () => {
    const ids = Protocol.makeMessageIds()
    for (let i = 0; i < 100; i++) {
      const mid = ids.next()
      expect(JSON.parse(Protocol.encodePing(mid))).toStrictEqual(
        JSON.parse(Protocol.encodeClientMessage(Protocol.ping(mid)))
      )
      expect(decodeClient(Protocol.encodePing(mid))).toStrictEqual(Protocol.ping(mid))
    }
  })

  it.prop("every known server message decodes to itself", [Protocol.KnownServerMessage], ([message]) => {
    const wire = JSON.stringify(message)
    // compared with the JSON form: an optional field the arbitrary set to undefined does not travel
    expect(Protocol.decodeServerMessage(wire)).toStrictEqual(JSON.parse(wire))
  })

  it.prop(
    "the pong fast path accepts exactly what the Pong Schema accepts",
    [
      FastCheck.record(
        {
          v: FastCheck.oneof(FastCheck.constant(2), FastCheck.double(), FastCheck.string(), FastCheck.constant(null)),
          mid: FastCheck.oneof(FastCheck.string(), FastCheck.integer(), FastCheck.constant(null)),
          pld: FastCheck.oneof(
            FastCheck.constant({}),
            FastCheck.dictionary(FastCheck.string(), FastCheck.jsonValue()),
            FastCheck.array(FastCheck.integer()),
            FastCheck.string(),
            FastCheck.constant(null)
          ),
          extra: FastCheck.jsonValue()
        },
        { requiredKeys: [] }
      )
    ],
    ([fields]) => {
      const candidate = { type: "pong", ...fields }
      const wire = JSON.stringify(candidate)
      const viaSchema = Schema.decodeUnknownEither(Protocol.Pong, { onExcessProperty: "preserve" })(JSON.parse(wire))
      const decoded = Protocol.decodeServerMessage(wire)
      expect(decoded.type === "pong").toBe(viaSchema._tag === "Right")
      if (viaSchema._tag === "Right") expect(decoded).toStrictEqual(viaSchema.right)
    }
  )

  it("set-params carries the reference SDK's fields, mode 3 and the uid as a string", () => {
    const message = Protocol.setParams("m-1", {
      agora: { appId: "app", channel: "room 1", token: "tok", uid: 12345 },
      voiceId: "v1",
      backgroundUrl: "https://example.invalid/bg.png"
    })
    expect(JSON.parse(Protocol.encodeClientMessage(message))).toStrictEqual({
      v: 2,
      type: "command",
      mid: "m-1",
      pld: {
        cmd: "set-params",
        data: { vid: "v1", lang: "en", mode: 3, bgurl: "https://example.invalid/bg.png" },
        metadata: { agora_data: { appid: "app", channel_id: "room 1", token: "tok", uid: "12345" } }
      }
    })
    expect(Protocol.leaveChannel("m-2")).toStrictEqual({
      v: 2,
      type: "event",
      mid: "m-2",
      pld: { event: "leave_channel", reason: "client_disconnect" }
    })
  })

  it("message ids never repeat, even when many leave in the same millisecond", () => {
    const ids = Protocol.makeMessageIds()
    const seen = new Set<string>()
    for (let i = 0; i < 100_000; i++) seen.add(ids.next())
    expect(seen.size).toBe(100_000)
    // two generators (two connections of one session) do not collide either
    const other = Protocol.makeMessageIds()
    for (let i = 0; i < 1000; i++) expect(seen.has(other.next())).toBe(false)
  })

  it("unknown fields and unknown types are kept, broken input becomes an invalid message", () => {
    const system = Protocol.decodeServerMessage(
      JSON.stringify({
        v: 2,
        type: "system",
        mid: "s1",
        pld: { status: "agora_connected", channel_id: "c", extra: 1 },
        x: true
      })
    )
    expect(system).toMatchObject({
      type: "system",
      pld: { status: "agora_connected", channel_id: "c", extra: 1 },
      x: true
    })

    const unknown = Protocol.decodeServerMessage(JSON.stringify({ v: 2, type: "subtitle", pld: { text: "hi" } }))
    expect(unknown).toStrictEqual({
      type: "unknown",
      messageType: "subtitle",
      raw: { v: 2, type: "subtitle", pld: { text: "hi" } }
    })

    expect(Protocol.decodeServerMessage("{not json")).toMatchObject({ type: "invalid", reason: "not-json" })
    expect(Protocol.decodeServerMessage("[1,2]")).toMatchObject({ type: "invalid", reason: "not-an-object" })
    expect(Protocol.decodeServerMessage(JSON.stringify({ pld: {} }))).toMatchObject({
      type: "invalid",
      reason: "wrong-shape"
    })
    expect(Protocol.decodeServerMessage(JSON.stringify({ type: "ack", pld: { status: 1 } }))).toMatchObject({
      type: "invalid",
      reason: "wrong-shape"
    })
    expect(Protocol.decodeServerMessage(new Uint8Array(5))).toMatchObject({
      type: "invalid",
      reason: "binary",
      size: 5
    })
    const huge = Protocol.decodeServerMessage(`"${"x".repeat(100_000)}`)
    expect(huge.type === "invalid" && huge.excerpt.length).toBeLessThanOrEqual(201)
  })
})
