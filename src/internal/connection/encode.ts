import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { ConfigurationError } from "../../AvatarError.js"
import * as Protocol from "../../Protocol.js"
import { describeCause } from "./closeCodes.js"

/** A client message that passed its Schema, as the text frame it travels as. */
export interface Encoded {
  readonly text: string
  /** The command it carries (`set-params`, `interrupt`, `leave_channel`), else its type. */
  readonly name: string
}

type Encoder = (message: unknown) => Either.Either<string, ParseResult.ParseError>

const encoder = <A, I>(schema: Schema.Schema<A, I>): Encoder => Schema.encodeEither(Schema.parseJson(schema)) as Encoder

// One Schema per kind of message, picked by its `type` and `cmd`: against the whole union, a
// bad `set-params` would also be reported as a bad `interrupt`.
const encoders: Record<string, Encoder> = {
  "set-params": encoder(Protocol.SetParamsCommand),
  interrupt: encoder(Protocol.InterruptCommand),
  chat: encoder(Protocol.Chat),
  ping: encoder(Protocol.Ping),
  leave_channel: encoder(Protocol.LeaveChannel)
}

const rejected = (option: string, message: string) =>
  Either.left(new ConfigurationError({ option, message: `${message}; nothing was sent` }))

const preview = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

const kindOf = (message: Record<PropertyKey, unknown>): Either.Either<string, ConfigurationError> => {
  switch (message.type) {
    case "command": {
      const cmd = Predicate.isRecord(message.pld) ? message.pld.cmd : undefined
      return cmd === "set-params" || cmd === "interrupt"
        ? Either.right(cmd)
        : rejected("cmd", `A command's cmd must be "set-params" or "interrupt" (got ${preview(cmd)})`)
    }
    case "event":
      return Either.right("leave_channel")
    case "chat":
    case "ping":
      return Either.right(message.type)
    default:
      return rejected(
        "type",
        `A client message's type must be "command", "event", "chat" or "ping" (got ${preview(message.type)})`
      )
  }
}

/** "Expected string, actual 123" as "must be a string (got 123)". */
const describeIssue = (issue: ParseResult.ArrayFormatterIssue): string => {
  if (issue._tag === "Missing") return "is missing"
  const expected = /^Expected (.*), actual (.*)$/s.exec(issue.message)
  if (expected === null) return issue.message
  const [, type, actual] = expected
  const article = type === "string" || type === "number" || type === "boolean" ? "a " : ""
  return `must be ${article}${type} (got ${actual})`
}

const fromParseError = (name: string, error: ParseResult.ParseError): Either.Either<never, ConfigurationError> => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return rejected("message", `${name} does not encode: ${error.message}`)
  // the payload is where callers put their values: its fields are named as they are inside it
  const path = (issue.path[0] === "pld" ? issue.path.slice(1) : issue.path).map(String)
  const field = path.length === 0 ? "message" : path.join(".")
  return rejected(field, `${name} ${field} ${describeIssue(issue)}`)
}

/**
 * Encodes a client message from anywhere (untyped JavaScript included): what does not match
 * its Schema is a `ConfigurationError` that names the field, never an exception.
 */
export const encode = (message: Protocol.ClientMessage): Either.Either<Encoded, ConfigurationError> => {
  const value: unknown = message
  if (!Predicate.isRecord(value)) {
    return rejected("message", `A client message must be an object (got ${preview(value)})`)
  }
  try {
    return Either.flatMap(kindOf(value), (name) =>
      Either.match(encoders[name]!(value), {
        onLeft: (error) => fromParseError(name, error),
        onRight: (text) => Either.right({ text, name })
      })
    )
  } catch (cause) {
    // a getter that throws, a proxy: still the caller's message, still not a defect
    return rejected("message", `A client message could not be read: ${describeCause(cause)}`)
  }
}
