import { AuthenticationError, ConnectionError } from "../../AvatarError.js"
import type { DropError } from "../../Connection.js"

/** How `ws` reports a refused upgrade: the status is only in the message. */
const unexpectedStatus = /Unexpected server response: (\d{3})/

/** Some text for whatever a socket failed with: an Error, an error event, or anything else. */
export const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message
  if (typeof cause === "object" && cause !== null) {
    const c = cause as { message?: unknown; error?: unknown }
    if (typeof c.message === "string" && c.message !== "") return c.message
    if (c.error instanceof Error) return c.error.message
  }
  return String(cause)
}

/** 4001 is a bad key, 4003 an occupied instance, 4004 a reconnect too soon; any other code is a drop. */
export const fromCloseCode = (code: number, closeReason: string, instance: string): DropError => {
  const suffix = closeReason ? ` (${closeReason})` : ""
  switch (code) {
    case 4001:
      return new AuthenticationError({
        source: "websocket",
        message: `The instance ${instance} refused the API key (close code 4001${suffix}); check AKOOL_API_KEY`
      })
    case 4003:
      return new ConnectionError({
        reason: "occupied",
        code,
        instance,
        message: `The instance ${instance} is occupied: it allows one connection (close code 4003${suffix})`
      })
    case 4004:
      return new ConnectionError({
        reason: "too-soon",
        code,
        instance,
        message: `The instance ${instance} refused a reconnect this soon (close code 4004${suffix}); wait before retrying`
      })
    default:
      return new ConnectionError({
        reason: "closed",
        code,
        instance,
        message: `The connection to ${instance} closed unexpectedly (code ${code}${suffix})`
      })
  }
}

/** A socket that failed before it opened: a refused upgrade (by HTTP status) or no connection at all. */
export const fromOpenFailure = (detail: string, instance: string): DropError => {
  const status = unexpectedStatus.exec(detail)
  if (status) {
    const code = Number(status[1])
    if (code === 401 || code === 403) {
      return new AuthenticationError({
        source: "websocket",
        message: `The instance ${instance} refused the API key (HTTP ${code} on upgrade); check AKOOL_API_KEY`
      })
    }
    return new ConnectionError({
      reason: "refused",
      code,
      instance,
      message: `The instance ${instance} refused the WebSocket upgrade with HTTP ${code}`
    })
  }
  return new ConnectionError({
    reason: "refused",
    instance,
    message: `Could not connect to ${instance}: ${detail}`
  })
}
