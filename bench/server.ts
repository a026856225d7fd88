/**
 * The benchmark's peer: a plain counting server on `node:http` and `ws`, run in its own
 * process so the client's CPU is measured alone. It answers the protocol the way the
 * simulator does (discovery, `websocket_connected`, acks, `agora_connected`, pongs) and
 * measures what a user would: the bytes that arrived, checked, and when each frame came.
 *
 * Started by `bench/run.ts`; prints `{"port":N}` once listening. Control, over HTTP:
 *
 * - `POST /bench/reset?verify=1`: forget every session; `verify` also checksums the audio.
 * - `GET /bench/stats`: arrivals, inter-arrival percentiles, frames on time, per session.
 * - `POST /bench/drop?session_id=ID&mode=close|terminate`: drop that session's link.
 */
import * as Http from "node:http"
import { type WebSocket, WebSocketServer } from "ws"
import { checksum, JITTER_MS } from "./shared.js"

interface Session {
  readonly id: string
  connections: number
  current: WebSocket | undefined
  frames: number
  bytes: number
  hash: number
  /** When the first frame arrived; playback starts `JITTER_MS` later. */
  first: number
  last: number
  /** Milliseconds of audio received before the current frame: its playback slot. */
  audioMs: number
  late: number
  droppedAt: number | undefined
  /** The link that was dropped: frames still arriving on it do not count as recovered. */
  dropped: WebSocket | undefined
  readonly recoveries: Array<number>
}

/** Inter-arrival times of consecutive frames of a session, in 0.1 ms buckets up to 10 s. */
const BUCKETS = 100_000
let gaps = new Uint32Array(BUCKETS + 1)
let sessions = new Map<string, Session>()
let verify = false
let mids = 0

const now = () => performance.now()
const message = (type: string, pld: object) => JSON.stringify({ v: 2, type, mid: `s${++mids}`, pld })

const AUDIO_FIELD = Buffer.from('"audio":"')
const CHAT_TYPE = Buffer.from('"type":"chat"')
const QUOTE = 0x22
const EQUALS = 0x3d

/** Chat messages are most of the traffic: read straight from the bytes, never decoded as a whole. */
const onChat = (session: Session, socket: WebSocket, raw: Buffer, at: number) => {
  const start = raw.indexOf(AUDIO_FIELD) + AUDIO_FIELD.length
  const end = raw.indexOf(QUOTE, start)
  let bytes: number
  if (verify) {
    const pcm = Buffer.from(raw.toString("latin1", start, end), "base64")
    bytes = pcm.byteLength
    session.hash = checksum(session.hash, pcm)
  } else {
    bytes = ((end - start) / 4) * 3 - (raw[end - 1] === EQUALS ? (raw[end - 2] === EQUALS ? 2 : 1) : 0)
  }
  if (session.frames === 0) session.first = at
  else gaps[Math.min(BUCKETS, Math.round((at - session.last) * 10))]!++
  if (session.droppedAt !== undefined && socket !== session.dropped) {
    session.recoveries.push(at - session.droppedAt)
    session.droppedAt = undefined
  }
  if (at > session.first + session.audioMs + JITTER_MS) session.late++
  session.audioMs += bytes / 32
  session.last = at
  session.frames++
  session.bytes += bytes
}

const onMessage = (socket: WebSocket, session: Session, raw: Buffer) => {
  const at = now()
  // both clients put `type` near the start; the base64 that follows cannot contain a quote
  const head = raw.indexOf(CHAT_TYPE)
  if (head >= 0 && head < 64) return onChat(session, socket, raw, at)
  const parsed = JSON.parse(raw.toString("utf8")) as {
    type: string
    mid: string
    pld?: { cmd?: string; event?: string }
  }
  switch (parsed.type) {
    case "ping":
      return socket.send(message("pong", {}))
    case "command": {
      socket.send(message("ack", { original_mid: parsed.mid, status: "success" }))
      if (parsed.pld?.cmd === "set-params")
        socket.send(message("system", { status: "agora_connected", channel_id: "" }))
      return
    }
    case "event":
      return socket.send(message("ack", { original_mid: parsed.mid, status: "success" }))
  }
}

const percentile = (histogram: Uint32Array, total: number, p: number) => {
  const rank = Math.max(1, Math.ceil((p / 100) * total))
  let seen = 0
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]!
    if (seen >= rank) return i / 10
  }
  return Number.NaN
}

const stats = () => {
  const all = [...sessions.values()]
  const gapCount = gaps.reduce((a, b) => a + b, 0)
  const frames = all.reduce((a, s) => a + s.frames, 0)
  const late = all.reduce((a, s) => a + s.late, 0)
  return {
    sessions: all.length,
    connections: all.reduce((a, s) => a + s.connections, 0),
    frames,
    bytes: all.reduce((a, s) => a + s.bytes, 0),
    late,
    interArrivalMs: {
      count: gapCount,
      p50: percentile(gaps, gapCount, 50),
      p90: percentile(gaps, gapCount, 90),
      p99: percentile(gaps, gapCount, 99),
      p999: percentile(gaps, gapCount, 99.9),
      max: percentile(gaps, gapCount, 100)
    },
    perSession: all.map((s) => ({
      id: s.id,
      connections: s.connections,
      frames: s.frames,
      bytes: s.bytes,
      hash: s.hash,
      late: s.late,
      /** From the first frame's arrival to the last one's. */
      spanMs: s.frames > 0 ? s.last - s.first : 0,
      recoveries: s.recoveries
    }))
  }
}

const discovery = (port: number) =>
  JSON.stringify({
    code: 1000,
    msg: "ok",
    data: {
      instances: [{ ip: "127.0.0.1", port, avatar_id: "bench_avatar", status: "available", healthy: true, index: 0 }]
    }
  })

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })

const server = Http.createServer((request, response) => {
  const url = new URL(request.url ?? "/", "http://localhost")
  const reply = (status: number, body: string) => {
    response.writeHead(status, { "content-type": "application/json" })
    response.end(body)
  }
  switch (url.pathname) {
    case "/streamingAvatar/service_status":
      return reply(200, discovery((server.address() as { port: number }).port))
    case "/bench/reset":
      sessions = new Map()
      gaps = new Uint32Array(BUCKETS + 1)
      verify = url.searchParams.get("verify") === "1"
      return reply(200, "{}")
    case "/bench/stats":
      return reply(200, JSON.stringify(stats()))
    case "/bench/drop": {
      const session = sessions.get(url.searchParams.get("session_id") ?? "")
      if (session?.current === undefined) return reply(404, '{"error":"no such connected session"}')
      session.droppedAt = now()
      session.dropped = session.current
      if (url.searchParams.get("mode") === "terminate") session.current.terminate()
      else session.current.close(1011, "bench drop")
      return reply(200, "{}")
    }
    default:
      return reply(404, '{"error":"not found"}')
  }
})

server.on("upgrade", (request, socket, head) => {
  const url = new URL(request.url ?? "/", "http://localhost")
  const id = url.searchParams.get("session_id")
  if (url.pathname !== "/streamingAvatar/ws/v1" || !id || !request.headers.api_key) {
    socket.end("HTTP/1.1 401 Unauthorized\r\n\r\n")
    return
  }
  wss.handleUpgrade(request, socket, head, (ws) => {
    let session = sessions.get(id)
    if (session === undefined) {
      session = {
        id,
        connections: 0,
        current: undefined,
        frames: 0,
        bytes: 0,
        hash: 0,
        first: 0,
        last: 0,
        audioMs: 0,
        late: 0,
        droppedAt: undefined,
        dropped: undefined,
        recoveries: []
      }
      sessions.set(id, session)
    }
    const s = session
    s.connections++
    s.current = ws
    ws.on("message", (data: Buffer) => onMessage(ws, s, data))
    ws.on("close", () => {
      if (s.current === ws) s.current = undefined
    })
    ws.on("error", () => {})
    ws.send(message("system", { status: "websocket_connected" }))
  })
})

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`)
})
// the orchestrator ends it by closing stdin (or killing it)
process.stdin.on("end", () => process.exit(0))
process.stdin.resume()
