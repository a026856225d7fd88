/**
 * The `akool-avatar` command: `stream` and `simulate`.
 *
 * The command line is judged here before @effect/cli runs it, so that every usage error is
 * reported in the command's own `error:` / `hint:` form (@effect/cli prints its own text,
 * which names no flag), and `--help` is rendered here, under the program's name and
 * without colour when it does not go to a terminal.
 */
import * as BuiltInOptions from "@effect/cli/BuiltInOptions"
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as CommandDescriptor from "@effect/cli/CommandDescriptor"
import * as CommandDirective from "@effect/cli/CommandDirective"
import type * as ValidationError from "@effect/cli/ValidationError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Argv from "./argv.js"
import * as Help from "./help.js"
import { report, UsageError } from "./report.js"
import * as simulate from "./simulate.js"
import * as stream from "./stream.js"

const VERSION = "0.1.0"

export const command = Command.make(Help.NAME).pipe(
  Command.withDescription("Stream audio to Akool streaming avatars, or run the built-in simulator of the service."),
  Command.withSubcommands([stream.command, simulate.command])
)

const specs = [
  Argv.spec("stream", Command.getUsage(stream.command)),
  Argv.spec("simulate", Command.getUsage(simulate.command))
]

const runParsed = Command.run(command, { name: Help.NAME, version: VERSION })

/** The subcommand the user typed, if any (`Argv.check` has made sure the first word is one). */
const typedCommand = (args: ReadonlyArray<string>): string | undefined =>
  args.find((arg) => specs.some((s) => s.name === arg))

/** What @effect/cli found wrong, as a usage error of the command the user typed. */
const usageError = (error: ValidationError.ValidationError, typed: string | undefined): UsageError => {
  const line = Help.line(error.error)
  return new UsageError({
    message: line === "" ? "the command line is incomplete" : line.charAt(0).toLowerCase() + line.slice(1),
    hint:
      typed === undefined
        ? `${Help.NAME} --help lists the commands`
        : `${Help.NAME} ${typed} --help lists the options and arguments`
  })
}

const printHelp = (help: Help.Help) => Console.log(Help.render(help, VERSION, Help.colour(process.stdout, process.env)))

/**
 * Judges the command line: `"run"` when @effect/cli is to run it, `"done"` when the help
 * was printed here; a mistake fails with a `UsageError`.
 */
const judge = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const problem = Argv.check(args, specs)
    if (problem !== undefined) return yield* problem
    const typed = typedCommand(args)
    const directive = yield* CommandDescriptor.parse(
      command.descriptor,
      [Help.NAME, ...args],
      CliConfig.defaultConfig
    ).pipe(Effect.mapError((error) => usageError(error, typed)))
    if (CommandDirective.isBuiltIn(directive) && BuiltInOptions.isShowHelp(directive.option)) {
      yield* printHelp(directive.option)
      return "done" as const
    }
    if (CommandDirective.isUserDefined(directive) && directive.leftover.length > 0) {
      const [first] = directive.leftover
      // @effect/cli reads no option after the argument `-`
      return yield* first!.startsWith("-")
        ? new UsageError({
            message: `unexpected argument ${first}: options after - are not read`,
            hint: "put the options before the input, e.g. --format s16le --rate 24000 -"
          })
        : new UsageError({
            message: `unexpected argument ${first}`,
            hint: `${typed === undefined ? Help.NAME : `${Help.NAME} ${typed}`} --help lists the arguments it takes`
          })
    }
    if (CommandDirective.isUserDefined(directive) && typed === undefined) {
      // the program alone: @effect/cli would print its own help, in colour
      yield* printHelp({ usage: Command.getUsage(command), helpDoc: Command.getHelp(command, CliConfig.defaultConfig) })
      return "done" as const
    }
    return "run" as const
  })

/** Runs the command line `argv` (`process.argv`: the runtime, the script, then the arguments). */
export const run = (argv: ReadonlyArray<string>) =>
  report(false)(judge(argv.slice(2))).pipe(Effect.flatMap((next) => (next === "run" ? runParsed(argv) : Effect.void)))
