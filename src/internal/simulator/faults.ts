import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type * as AvatarSimulator from "../../AvatarSimulator.js"
import * as Hostile from "./hostile.js"

/**
 * What a server could not act on: where in the faults (`dropAfterFrames.code`) and what is
 * wrong with the value there. `AvatarSimulator.make`/`setFaults` die with it; the CLI turns
 * it into a usage error about the flag that set it.
 *
 * @internal
 */
export interface Problem {
  readonly path: string
  readonly message: string
}

/** @internal */
export const describe = (problem: Problem): string => `${problem.path}: ${problem.message}`

const problem = (path: string, message: string): Problem => ({ path, message })

const show = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : String(value))

const first = (...problems: ReadonlyArray<Problem | undefined>): Problem | undefined =>
  problems.find((p) => p !== undefined)

/**
 * The codes a server may send in a close frame (RFC 6455 section 7.4), which are those `ws`
 * lets a peer send: 1004 is reserved, and 1005 and 1006 only ever describe a close that
 * carried no code.
 *
 * @internal
 */
export const isServerCloseCode = (code: unknown): code is number =>
  typeof code === "number" &&
  Number.isInteger(code) &&
  ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999))

/** @internal */
export const wholeProblem = (
  path: string,
  value: unknown,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER
): Problem | undefined =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
    ? undefined
    : problem(
        path,
        `${show(value)} is not a whole number ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}`
      )

/** @internal */
export const closeCodeProblem = (path: string, code: unknown): Problem | undefined =>
  isServerCloseCode(code) ? undefined : problem(path, `${show(code)} is not a close code a server may send`)

const dropModeProblem = (path: string, mode: unknown): Problem | undefined =>
  mode === undefined || mode === "close" || mode === "terminate"
    ? undefined
    : problem(path, `${show(mode)} is not "close" or "terminate"`)

/** @internal */
export const kindsProblem = (path: string, kinds: unknown): Problem | undefined => {
  if (kinds === undefined) return undefined
  if (!Array.isArray(kinds)) {
    return problem(path, `${show(kinds)} is not a list of malformed kinds (${Hostile.MALFORMED_KINDS.join(", ")})`)
  }
  if (kinds.length === 0) return problem(path, "the list of malformed kinds is empty")
  const unknown = kinds.find((kind) => !Hostile.isMalformedKind(kind))
  return unknown === undefined
    ? undefined
    : problem(path, `${show(unknown)} is not a malformed kind; the kinds are ${Hostile.MALFORMED_KINDS.join(", ")}`)
}

const flagProblem = (path: string, value: unknown): Problem | undefined =>
  typeof value === "boolean" ? undefined : problem(path, `${show(value)} is not true or false`)

const textProblem = (path: string, value: unknown): Problem | undefined =>
  typeof value === "string" ? undefined : problem(path, `${show(value)} is not a string`)

/**
 * A delay a server can wait for, for the faults and `playoutDelay`. A negative number of
 * milliseconds would silently mean zero: it is a mistake, not a delay.
 *
 * @internal
 */
export const durationProblem = (path: string, value: unknown): Problem | undefined =>
  (typeof value === "number" ? value >= 0 : Option.isSome(Duration.decodeUnknown(value)))
    ? undefined
    : problem(path, `${show(value)} is not a duration (milliseconds >= 0, or a Duration)`)

interface Rule<A> {
  readonly check: (path: string, value: A) => Problem | undefined
  /**
   * It acts when a chat frame arrives. The per-frame path looks at the faults only when one
   * of these is set, and it learns which they are from here.
   */
  readonly afterFrames: boolean
  /** Its value is an object of fields (what a JSON body must give it). */
  readonly object?: true
}

type Rules = { readonly [K in keyof AvatarSimulator.Faults]-?: Rule<NonNullable<AvatarSimulator.Faults[K]>> }

const flag: Rule<boolean> = { check: flagProblem, afterFrames: false }
const duration: Rule<Duration.DurationInput> = { check: durationProblem, afterFrames: false }

// Every field of `Faults` must have its rule here: a new fault does not compile without one.
const rules: Rules = {
  rejectKey: flag,
  occupied: flag,
  tooSoon: { check: (path, n) => wholeProblem(path, n, 0), afterFrames: false },
  refuseFirst: {
    object: true,
    check: (path, refuse) =>
      first(
        refuse.code === 4001 || refuse.code === 4003 || refuse.code === 4004
          ? undefined
          : problem(`${path}.code`, `${show(refuse.code)} is not 4001, 4003 or 4004`),
        wholeProblem(`${path}.attempts`, refuse.attempts, 0)
      ),
    afterFrames: false
  },
  refuseUpgrade: { check: (path, status) => wholeProblem(path, status, 100, 599), afterFrames: false },
  noPong: flag,
  noWebsocketConnected: flag,
  websocketConnectedDelay: duration,
  noAgoraConnected: flag,
  agoraConnectedDelay: duration,
  noAck: flag,
  commandError: {
    object: true,
    check: (path, error) =>
      first(wholeProblem(`${path}.code`, error.code, 0), textProblem(`${path}.message`, error.message)),
    afterFrames: false
  },
  errorAfterFrames: {
    object: true,
    check: (path, error) =>
      first(
        wholeProblem(`${path}.frames`, error.frames, 1),
        wholeProblem(`${path}.code`, error.code, 0),
        textProblem(`${path}.message`, error.message)
      ),
    afterFrames: true
  },
  ackDelay: duration,
  dropAfterFrames: {
    object: true,
    check: (path, drop) =>
      first(
        wholeProblem(`${path}.frames`, drop.frames, 1),
        dropModeProblem(`${path}.mode`, drop.mode),
        drop.code === undefined ? undefined : closeCodeProblem(`${path}.code`, drop.code)
      ),
    afterFrames: true
  },
  stall: flag,
  malformed: {
    object: true,
    check: (path, malformed) =>
      first(
        wholeProblem(`${path}.afterFrames`, malformed.afterFrames, 1),
        wholeProblem(`${path}.count`, malformed.count, 0),
        kindsProblem(`${path}.kinds`, malformed.kinds)
      ),
    afterFrames: true
  },
  noAudioEvents: flag,
  audioEventDelay: duration
}

const keys = Object.keys(rules) as ReadonlyArray<keyof AvatarSimulator.Faults>
const afterFrameKeys = keys.filter((key) => rules[key].afterFrames)

/**
 * The one judgement of a set of faults, for `make`, `setFaults` and the CLI: the first value
 * a server could not act on, if any.
 *
 * @internal
 */
export const validate = (faults: AvatarSimulator.Faults): Problem | undefined => {
  for (const key of keys) {
    const value = faults[key]
    if (value === undefined) continue
    const found = (rules[key].check as (path: string, value: unknown) => Problem | undefined)(key, value)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * The same judgement of faults that come as data from outside (the inspector's JSON), which
 * the types do not vouch for: an object of known fields, each of the right kind.
 *
 * @internal
 */
export const validateUnknown = (faults: unknown): Problem | undefined => {
  if (typeof faults !== "object" || faults === null || Array.isArray(faults)) {
    return problem("faults", `${JSON.stringify(faults)} is not an object of fault switches`)
  }
  for (const [key, value] of Object.entries(faults)) {
    // own keys only: `toString` or `__proto__` is not a fault because every object has one
    const rule = Object.hasOwn(rules, key) ? (rules as Record<string, Rule<unknown>>)[key] : undefined
    if (rule === undefined) {
      return problem(key, `there is no such fault; the faults are ${keys.join(", ")}`)
    }
    if (value === null) return problem(key, "null is not a value: leave the fault out to turn it off")
    if (rule.object === true && (typeof value !== "object" || Array.isArray(value))) {
      return problem(key, `${show(value)} is not an object of its fields`)
    }
  }
  return validate(faults as AvatarSimulator.Faults)
}

/** @internal Some fault acts after N chat frames: computed when faults change, read on every frame. */
export const actsAfterFrames = (faults: AvatarSimulator.Faults): boolean =>
  afterFrameKeys.some((key) => faults[key] !== undefined)

/** @internal The options of `drop` and `dropAll`: a code is only sent with `"close"`. */
export const dropProblem = (
  options: { readonly mode?: AvatarSimulator.DropMode; readonly code?: number } | undefined
): Problem | undefined =>
  first(
    dropModeProblem("mode", options?.mode),
    (options?.mode ?? "close") === "close" && options?.code !== undefined
      ? closeCodeProblem("code", options.code)
      : undefined
  )

/** @internal The arguments of `sendMalformed`. */
export const sendMalformedProblem = (count: number, kinds: ReadonlyArray<unknown> | undefined): Problem | undefined =>
  first(wholeProblem("count", count, 0), kindsProblem("kinds", kinds))
