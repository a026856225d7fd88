/**
 * How the command line reports a failure: one readable line, a hint that says what to do,
 * and with `--verbose` the full cause. Exit codes: 1 for a failure, 2 for a usage error,
 * 130 for Ctrl-C.
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Help from "./help.js"

/** A command line that cannot work: a bad flag value, a missing setting. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string; readonly hint?: string }> {}

/** A check the command makes on its own work failed (the simulator did not receive what was sent). */
export class CheckFailed extends Data.TaggedError("CheckFailed")<{ readonly message: string; readonly hint: string }> {}

/** The error was reported; exit with `code`. */
export class CliExit extends Data.TaggedError("CliExit")<{ readonly code: number }> {}

const field = (error: unknown, name: string): string | undefined =>
  Predicate.hasProperty(error, name) && error[name] !== undefined ? String(error[name]) : undefined

const DECODE_HINTS: Record<string, string> = {
  "unknown-format":
    "akool-avatar reads WAV and MP3 files; for raw PCM give its format: --format s16le --rate 24000 [--channels 2]",
  "unsupported-codec": "convert it to PCM WAV or MP3 first, e.g. ffmpeg -i INPUT -ar 16000 -ac 1 output.wav",
  truncated: "the file is incomplete: copy, download or export it again",
  malformed: "the file is damaged or is not what its name says: export it again",
  "not-raw": "leave out --format (or use --format auto) so the file's header is read"
}

const hintFor = (error: unknown): string => {
  if (ValidationError.isValidationError(error)) return `${Help.NAME} --help lists the commands and their options`
  const tag = field(error, "_tag")
  const reason = field(error, "reason")
  switch (tag) {
    case "UsageError":
      return field(error, "hint") ?? "akool-avatar stream --help lists the options"
    case "CheckFailed":
      return field(error, "hint") ?? "run with --verbose"
    case "AudioDecodeError":
      return DECODE_HINTS[reason ?? ""] ?? "akool-avatar stream --help lists the input formats"
    case "AudioStreamError":
      return reason === "session-closed"
        ? "the session ended before all audio was sent: run again, or --verbose for the cause"
        : "for raw PCM, check --format, --rate and --channels"
    case "SystemError":
      return reason === "NotFound"
        ? "check the path (use - to read standard input)"
        : reason === "PermissionDenied"
          ? "check the file's permissions"
          : "check the path and that it is a readable file"
    case "AuthenticationError":
      return "check AKOOL_API_KEY (unset it to stream to the built-in simulator instead)"
    case "ServiceDiscoveryError":
      return "check AKOOL_DISCOVERY_URL (or --discovery-url), the network, and --env test|prod"
    case "ConnectionError":
      return "the avatar service could not be reached or dropped the connection: try again, or run with --verbose"
    case "CommandError":
      return reason === "agora-timeout" || reason === "rejected"
        ? "check the Agora settings: --agora-app-id, --agora-channel, --agora-token, --agora-uid"
        : "the service did not answer in time: try again, or run with --verbose"
    case "RetryError":
      return Predicate.hasProperty(error, "lastError") ? hintFor(error.lastError) : "try again later"
    case "ServerError":
      return "the avatar service refused the request: check the avatar id and the Agora settings"
    case "ConfigurationError":
      return `check ${field(error, "option") ?? "the options"} (akool-avatar stream --help)`
    case "SimulatorError":
      return "pick another --port, or 0 for any free port"
    default:
      return ConfigError.isConfigError(error)
        ? "check the environment variable it names"
        : "run with --verbose and report the output: this is a bug"
  }
}

/** One line: the error's own message, without a stack. */
const lineFor = (cause: Cause.Cause<unknown>): { readonly line: string; readonly error: unknown } =>
  Option.match(Cause.failureOption(cause), {
    onSome: (error) => ({
      error,
      line: ConfigError.isConfigError(error)
        ? String(error)
        : ValidationError.isValidationError(error)
          ? Help.line(error.error)
          : (field(error, "message") ?? field(error, "description") ?? String(error))
    }),
    onNone: () => {
      const defect = Option.getOrUndefined(Cause.dieOption(cause))
      return { error: defect, line: `unexpected error: ${field(defect, "message") ?? String(defect)}` }
    }
  })

/**
 * Prints a failure as `error: ...` and `hint: ...` (and the cause with `verbose`), then
 * fails with `CliExit`. An interruption (Ctrl-C) passes through untouched.
 */
export const report =
  (verbose: boolean) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, CliExit, R> =>
    Effect.catchAllCause(self, (cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
      const { line, error } = lineFor(cause)
      const usage = Predicate.isTagged(error, "UsageError") || ValidationError.isValidationError(error)
      return Console.error(`error: ${line}`).pipe(
        Effect.zipRight(Console.error(`hint: ${hintFor(error)}`)),
        Effect.zipRight(verbose ? Console.error(`\n${Cause.pretty(cause)}`) : Effect.void),
        Effect.zipRight(Effect.fail(new CliExit({ code: usage ? 2 : 1 })))
      )
    })

/** The process's exit code for the program's end. */
export const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return 0
  if (Cause.isInterruptedOnly(exit.cause)) return 130
  return Option.match(Cause.failureOption(exit.cause), {
    onNone: () => 1,
    onSome: (error) =>
      Predicate.isTagged(error, "CliExit") ? (error as CliExit).code : ValidationError.isValidationError(error) ? 2 : 1
  })
}
