import * as Duration from "effect/Duration"
import type * as AvatarSimulator from "../../../AvatarSimulator.js"
import type * as Instance from "../instance.js"
import * as Player from "../player.js"
import type * as Records from "../records.js"

/**
 * What the inspector shows, read from what the simulator keeps anyway: the records of the
 * connections, the players and the instances. Nothing here is kept between requests.
 *
 * @internal
 */
export interface Sources {
  readonly discoveryUrl: string
  readonly records: Records.Records
  readonly instances: ReadonlyArray<Instance.Instance>
  readonly players: Player.Players
  readonly now: () => number
}

/** PCM s16le, 16 kHz, mono: 32 bytes a millisecond. */
const BYTES_PER_MS = 32

/** The waveform's resolution: one min/max pair per 10 ms of audio. */
const BUCKET_MS = 10

const MASK = "•••• (masked)"

/** The keys whose values are secrets wherever they appear in a payload. */
const SECRET = /token|api[_-]?key|secret|password|authori[sz]ation|credential|signature/i

/**
 * A payload with every secret replaced: the Agora token of `set-params`, and any key or token
 * a client might put anywhere. An empty value stays empty (a channel without tokens).
 *
 * @internal
 */
export const mask = (value: unknown, key = ""): unknown => {
  if (SECRET.test(key) && value !== "" && value !== undefined && value !== null) return MASK
  if (Array.isArray(value)) return value.map((v) => mask(v))
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mask(v, k)]))
  }
  return value
}

/** Faults as JSON: a duration as its milliseconds. */
const faultsJson = (faults: AvatarSimulator.Faults): Record<string, unknown> =>
  Object.fromEntries(
    Object.entries(faults)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, k.endsWith("Delay") ? Duration.toMillis(Duration.decode(v as Duration.DurationInput)) : v])
  )

/** @internal One instance and its faults. */
export const instanceView = (instance: Instance.Instance) => ({
  index: instance.index,
  port: instance.port,
  avatarId: instance.avatarId,
  faults: faultsJson(instance.faults),
  connections: Array.from(instance.connections).filter((c) => c.record.isOpen).length
})

/** The connections of each session id, in the order the sessions first connected. */
const bySession = (records: Records.Records): Map<string, Array<Records.ConnectionRecord>> => {
  const sessions = new Map<string, Array<Records.ConnectionRecord>>()
  for (const record of records.all) {
    const list = sessions.get(record.sessionId)
    if (list === undefined) sessions.set(record.sessionId, [record])
    else list.push(record)
  }
  return sessions
}

const round = (n: number) => Math.round(n * 1000) / 1000

const stateOf = (records: ReadonlyArray<AvatarSimulator.SessionRecord>): "live" | "dropped" | "ended" => {
  if (records.some((r) => r.open)) return "live"
  const accepted = records.filter((r) => r.refusedWith === undefined)
  return accepted[accepted.length - 1]?.dropped === true ? "dropped" : "ended"
}

/** One session's summary; `records` are its connections' records (`peek`), and `segments` its playback. */
const summary = (
  sources: Sources,
  sessionId: string,
  connections: ReadonlyArray<Records.ConnectionRecord>,
  records: ReadonlyArray<AvatarSimulator.SessionRecord> = connections.map((c) => c.peek()),
  segments: ReadonlyArray<AvatarSimulator.PlayedSegment> = sources.players.playback(sessionId)
) => {
  const accepted = records.filter((r) => r.refusedWith === undefined)
  const commands = records.flatMap((r) => r.commands)
  const setParams = commands.filter((c) => c.cmd === "set-params")
  const last = connections[connections.length - 1]!
  const instance = sources.instances[last.instance]
  const audioBytes = records.reduce((n, r) => n + r.audioBytes, 0)
  const frames = records.reduce((n, r) => n + r.frameCount, 0)
  const ended = connections.map((c) => c.endedAt ?? c.openedAt)
  return {
    id: sessionId,
    avatarId: last.avatarId,
    state: stateOf(records),
    instance: last.instance,
    connections: connections.length,
    reconnects: Math.max(0, accepted.length - 1),
    refusals: records.length - accepted.length,
    drops: records.filter((r) => r.dropped).length,
    frames,
    audioMs: round(audioBytes / BYTES_PER_MS),
    openedAt: connections[0]!.openedAt,
    lastAt: Math.max(...ended, ...records.flatMap((r) => r.frames.slice(-1).map((f) => f.at))),
    setParams: setParams.length === 0 ? null : mask(setParams[setParams.length - 1]!.pld),
    commands: commands.length,
    answers: connections.reduce((n, c) => n + c.answered.length, 0),
    speaking: segments.some((s) => s.playing),
    playedMs: round(segments.reduce((n, s) => n + s.playedMs, 0)),
    faults: instance === undefined ? {} : faultsJson(instance.faults),
    recordsAudio: frames === 0 || records.some((r) => r.frames.length > 0)
  }
}

/** @internal The summary of one session, as the list and the live updates show it. */
export type Summary = ReturnType<typeof summary>

/**
 * The whole simulator as the page's list shows it; `now` is the simulator's clock.
 *
 * @internal
 */
export const state = (sources: Sources) => ({
  now: sources.now(),
  discoveryUrl: sources.discoveryUrl,
  playoutDelayMs: sources.players.playoutDelayMs,
  instances: sources.instances.map(instanceView),
  sessions: Array.from(bySession(sources.records), ([id, connections]) => summary(sources, id, connections))
})

interface Arrival {
  readonly at: number
  readonly bytes: Uint8Array
  readonly connection: number
}

/**
 * Each frame against its slot, by the player's own rule (`Player.frameStart`): a frame's
 * slot is the end of the frame before it, the moment the jitter buffer needs it to go on
 * playing; a frame that arrives after it is late, and playback had a gap. The first frame,
 * and the first after an interrupt, have no slot: they start a stretch of speech.
 */
const timing = (arrivals: ReadonlyArray<Arrival>, cuts: ReadonlyArray<number>, playoutDelayMs: number) => {
  let end = Number.NEGATIVE_INFINITY
  let fresh = true
  let cut = 0
  return arrivals.map((f) => {
    while (cut < cuts.length && cuts[cut]! <= f.at) {
      end = cuts[cut++]!
      fresh = true
    }
    const ms = f.bytes.byteLength / BYTES_PER_MS
    const slot = fresh ? null : end
    const late = slot !== null && f.at > slot
    end = Player.frameStart(end, f.at, playoutDelayMs) + ms
    fresh = false
    return {
      at: f.at,
      ms: round(ms),
      connection: f.connection,
      slot: slot === null ? null : round(slot),
      lateness: slot === null ? null : round(f.at - slot),
      late
    }
  })
}

/** Min and max of each 10 ms of the audio, from -1 to 1. */
const peaks = (arrivals: ReadonlyArray<Arrival>) => {
  const bucket = (BUCKET_MS * BYTES_PER_MS) / 2
  const min: Array<number> = []
  const max: Array<number> = []
  let sample = 0
  for (const { bytes } of arrivals) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i + 1 < bytes.byteLength; i += 2, sample++) {
      const v = view.getInt16(i, true) / 32768
      const b = Math.floor(sample / bucket)
      if (b >= min.length) {
        min.push(v)
        max.push(v)
      } else {
        if (v < min[b]!) min[b] = v
        if (v > max[b]!) max[b] = v
      }
    }
  }
  return { bucketMs: BUCKET_MS, min: min.map(round), max: max.map(round) }
}

/**
 * Everything about one session: its connections and their edges, its commands and the
 * answers, every frame's arrival against its slot, the waveform, and the playback.
 * `undefined` for a session id the simulator has not seen.
 *
 * @internal
 */
export const session = (sources: Sources, sessionId: string) => {
  const connections = bySession(sources.records).get(sessionId)
  if (connections === undefined) return undefined
  const records = connections.map((c) => c.peek())
  const segments = sources.players.playback(sessionId)
  const answers = new Map(connections.flatMap((c) => c.answered.map((a) => [a.mid, a] as const)))
  const commands = records.flatMap((r) =>
    r.commands.map((c) => ({
      cmd: c.cmd,
      mid: c.mid,
      at: c.at,
      connection: r.id,
      pld: mask(c.pld),
      answer: answers.get(c.mid) ?? null
    }))
  )
  // an interrupt answered with an error was not carried out: it cut nothing
  const interrupts = commands.filter((c) => c.cmd === "interrupt" && c.answer?.kind !== "error").map((c) => c.at)
  const arrivals = records
    .flatMap((r) => r.frames.map((f) => ({ at: f.at, bytes: f.bytes, connection: r.id })))
    .sort((a, b) => a.at - b.at)
  return {
    ...summary(sources, sessionId, connections, records, segments),
    now: sources.now(),
    playoutDelayMs: sources.players.playoutDelayMs,
    connectionList: connections.map((c, i) => ({
      id: c.id,
      instance: c.instance,
      openedAt: c.openedAt,
      closedAt: c.endedAt ?? null,
      refusedWith: records[i]!.refusedWith ?? null,
      closeCode: records[i]!.closeCode ?? null,
      dropped: records[i]!.dropped,
      frames: records[i]!.frameCount,
      pings: records[i]!.pings,
      invalid: records[i]!.invalid
    })),
    commandList: commands,
    dropList: connections.flatMap((c, i) =>
      records[i]!.dropped
        ? [{ at: c.endedAt ?? c.openedAt, connection: c.id, code: records[i]!.closeCode ?? null }]
        : []
    ),
    reconnectList: connections
      .filter((c) => c.refusedWith === undefined)
      .slice(1)
      .map((c) => ({ at: c.openedAt, connection: c.id })),
    interrupts,
    frameList: timing(arrivals, interrupts, sources.players.playoutDelayMs),
    waveform: peaks(arrivals),
    segments
  }
}
