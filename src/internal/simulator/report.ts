import { BYTES_PER_SECOND } from "../../Audio.js"
import type * as AvatarSimulator from "../../AvatarSimulator.js"

/** PCM s16le, 16 kHz, mono. */

const closeOf = (c: AvatarSimulator.SessionRecord): string =>
  c.open ? "open" : c.dropped ? `${c.closeCode} dropped` : String(c.closeCode)

const sum = (
  connections: ReadonlyArray<AvatarSimulator.SessionRecord>,
  count: (c: AvatarSimulator.SessionRecord) => number
) => connections.reduce((total, c) => total + count(c), 0)

/** Where a session's audio was saved, and why it stopped if it did. */
export interface Saved {
  readonly path: string
  readonly problem: string | undefined
}

const savedOf = (saved: Saved | undefined): string =>
  saved === undefined
    ? ""
    : saved.problem === undefined
      ? `, saved to ${saved.path}`
      : `, saving to ${saved.path} stopped: ${saved.problem}`

const sessionLine = (
  sessionId: string,
  connections: ReadonlyArray<AvatarSimulator.SessionRecord>,
  saved: Saved | undefined
): string => {
  const bytes = sum(connections, (c) => c.audioBytes)
  const commands = connections.flatMap((c) => c.commands.map((command) => command.cmd))
  return (
    `  session ${sessionId || "(none)"}: ${(bytes / BYTES_PER_SECOND).toFixed(2)} s of audio (${bytes} bytes), ` +
    `${sum(connections, (c) => c.frameCount)} frame(s), ${commands.length} command(s)${commands.length > 0 ? ` [${commands.join(", ")}]` : ""}, ` +
    `${sum(connections, (c) => c.pings)} ping(s), ${sum(connections, (c) => c.invalid)} invalid, ` +
    `${connections.length} connection(s) [${connections.map(closeOf).join(", ")}]${savedOf(saved)}`
  )
}

/**
 * The report: one line for the simulator, one per session id (its connections together).
 *
 * @internal
 */
export const render = (
  connections: ReadonlyArray<AvatarSimulator.SessionRecord>,
  discoveryRequests: number,
  saved: ReadonlyMap<string, Saved> = new Map()
): string => {
  const bySession = new Map<string, Array<AvatarSimulator.SessionRecord>>()
  for (const c of connections) {
    const list = bySession.get(c.sessionId)
    if (list === undefined) bySession.set(c.sessionId, [c])
    else list.push(c)
  }
  const open = connections.filter((c) => c.open).length
  return [
    `AvatarSimulator: ${bySession.size} session(s), ${connections.length} connection(s), ${open} open, ${discoveryRequests} discovery request(s)`,
    ...Array.from(bySession, ([sessionId, list]) => sessionLine(sessionId, list, saved.get(sessionId)))
  ].join("\n")
}
