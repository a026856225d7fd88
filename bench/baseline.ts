/**
 * The floor: the same job written by hand directly on `ws`, the way a careful user would
 * without an SDK. Discovery with `fetch`, connect with the `api_key` header, wait for
 * `websocket_connected`, set-params with its ack and `agora_connected`, chat messages of
 * base64 PCM built with `JSON.stringify`, a ping every few seconds, `leave_channel`, close.
 * Real-time pacing is one drift-corrected `setTimeout` chain per session; unpaced sending
 * waits while more than 1 MiB is unsent. No retry, no reconnect, no accounting.
 */
import { randomUUID } from "node:crypto"
import WebSocket from "ws"
import { AGORA, API_KEY, AVATAR_ID, type Driver, FRAME_MS, HEARTBEAT_MS } from "./shared.js"

const HIGH_WATER = 1024 * 1024

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface Instance {
  readonly ip: string
  readonly port: number
  readonly status: string
  readonly healthy: boolean
}

export class RawSession {
  private mid = 0
  private readonly acks = new Map<string, () => void>()
  private onSystem: ((status: string) => void) | undefined
  private readonly heartbeat: NodeJS.Timeout

  private constructor(
    readonly ws: WebSocket,
    readonly id: string
  ) {
    ws.on("message", (data: Buffer) => {
      const message = JSON.parse(data.toString("utf8")) as {
        type: string
        pld: { status?: string; original_mid?: string }
      }
      if (message.type === "ack") {
        const mid = message.pld.original_mid ?? ""
        this.acks.get(mid)?.()
        this.acks.delete(mid)
      } else if (message.type === "system") this.onSystem?.(message.pld.status ?? "")
    })
    this.heartbeat = setInterval(() => this.send("ping", {}), HEARTBEAT_MS)
  }

  /** Discovery, connect, `websocket_connected`, then set-params with its ack and `agora_connected`. */
  static async open(port: number): Promise<RawSession> {
    const response = await fetch(`http://127.0.0.1:${port}/streamingAvatar/service_status`, {
      headers: { api_key: API_KEY }
    })
    if (response.status !== 200) throw new Error(`discovery failed: HTTP ${response.status}`)
    const body = (await response.json()) as { data: { instances: Array<Instance> } }
    const instance = body.data.instances.find((i) => i.healthy && i.status === "available")
    if (instance === undefined) throw new Error("discovery: no usable instance")
    const id = randomUUID()
    const url = `ws://${instance.ip}:${instance.port}/streamingAvatar/ws/v1?session_id=${encodeURIComponent(id)}&avatar_id=${encodeURIComponent(AVATAR_ID)}`
    const ws = new WebSocket(url, { headers: { api_key: API_KEY }, perMessageDeflate: false })
    const session = new RawSession(ws, id)
    await new Promise<void>((resolve, reject) => {
      ws.once("error", reject)
      ws.once("close", (code) => reject(new Error(`closed during connect: ${code}`)))
      session.onSystem = (status) => {
        if (status === "websocket_connected") resolve()
      }
    })
    ws.removeAllListeners("close")
    ws.removeAllListeners("error")
    ws.on("error", () => {})
    const agora = new Promise<void>((resolve) => {
      session.onSystem = (status) => {
        if (status === "agora_connected") resolve()
      }
    })
    await session.request("command", {
      cmd: "set-params",
      data: { vid: "", lang: "en", mode: 3, bgurl: "" },
      metadata: {
        agora_data: { appid: AGORA.appId, channel_id: AGORA.channel, token: AGORA.token, uid: AGORA.uid }
      }
    })
    await agora
    return session
  }

  send(type: string, pld: object): string {
    const mid = `m${++this.mid}`
    this.ws.send(JSON.stringify({ v: 2, type, mid, pld }))
    return mid
  }

  request(type: string, pld: object): Promise<void> {
    return new Promise((resolve) => this.acks.set(this.send(type, pld), resolve))
  }

  chat(frame: Uint8Array): void {
    this.send("chat", { audio: Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString("base64") })
  }

  /** Frame `i` leaves at `i * 40 ms` after the start; a late timer sends every frame that is due. */
  paced(frames: ReadonlyArray<Uint8Array>): Promise<void> {
    return new Promise((resolve) => {
      const start = performance.now()
      let i = 0
      const tick = () => {
        const due = Math.floor((performance.now() - start) / FRAME_MS) + 1
        while (i < frames.length && i < due) this.chat(frames[i++]!)
        if (i >= frames.length) return resolve()
        setTimeout(tick, Math.max(0, start + i * FRAME_MS - performance.now()))
      }
      tick()
    })
  }

  /** As fast as the socket takes them, holding back while more than 1 MiB is unsent. */
  async unpaced(frames: Iterable<Uint8Array>): Promise<void> {
    for (const frame of frames) {
      while (this.ws.bufferedAmount > HIGH_WATER) await sleep(1)
      this.chat(frame)
    }
  }

  /** `leave_channel`, its ack (at most 5 s, as the reference), then the close handshake. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.request("event", { event: "leave_channel", reason: "client_disconnect" }),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 5000)
      })
    ])
    clearTimeout(timer)
    await new Promise<void>((resolve) => {
      this.ws.once("close", () => resolve())
      this.ws.close(1000)
    })
  }
}

/** The hand-written client behind the harness's common interface. */
export const baselineDriver = (port: number): Driver => ({
  open: async () => {
    const session = await RawSession.open(port)
    return {
      id: session.id,
      paced: (frames) => session.paced(frames),
      unpaced: (frames) => session.unpaced(frames),
      close: () => session.close(),
      unconfirmed: async () => Number.NaN
    }
  },
  dispose: async () => {}
})
