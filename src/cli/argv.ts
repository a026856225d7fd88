/**
 * The command line judged before @effect/cli parses it, so that a mistake is named as the
 * user typed it: the unknown flag and its close match, the flag whose value is wrong and
 * the values it takes. @effect/cli's own errors name neither (an unknown flag before a
 * value is reported as "Received unknown argument: 'none'").
 *
 * What this does not judge (a missing file argument, a stray argument) is left to
 * @effect/cli, whose error `main` reports in the same form.
 */
import * as AutoCorrect from "@effect/cli/AutoCorrect"
import * as CliConfig from "@effect/cli/CliConfig"
import type * as Usage from "@effect/cli/Usage"
import * as Option from "effect/Option"
import { NAME } from "./help.js"
import { UsageError } from "./report.js"

/** What a flag takes after it: nothing (a switch), a whole number, any text, or one of a list. */
type Takes = "nothing" | "integer" | "text" | ReadonlyArray<string>

interface Flag {
  readonly name: string
  readonly takes: Takes
}

/** A command and its flags. */
export interface Spec {
  readonly name: string
  readonly flags: ReadonlyArray<Flag>
}

/**
 * From what the usage shows after the flag: nothing for a switch, `integer`, `a | b` for a
 * choice, else the type's name or a pseudo-name (`text`, `DIR`), which take any text. (A
 * choice of one value would read as a pseudo-name: @effect/cli still judges it.)
 */
const takesOf = (accepted: Option.Option<string>): Takes =>
  Option.match(accepted, {
    onNone: () => "nothing",
    onSome: (values) => (values === "integer" ? values : values.includes(" | ") ? values.split(" | ") : "text")
  })

const flagsOf = (usage: Usage.Usage): Array<Flag> => {
  switch (usage._tag) {
    case "Named":
      return usage.names
        .filter((n) => n.startsWith("-"))
        .map((name) => ({ name, takes: takesOf(usage.acceptedValues) }))
    case "Optional":
    case "Repeated":
      return flagsOf(usage.usage)
    case "Alternation":
    case "Concat":
      return [...flagsOf(usage.left), ...flagsOf(usage.right)]
    default:
      return []
  }
}

/** The flags @effect/cli adds to every command; it judges their values itself. */
const BUILT_IN: ReadonlyArray<Flag> = [
  { name: "--help", takes: "nothing" },
  { name: "-h", takes: "nothing" },
  { name: "--version", takes: "nothing" },
  { name: "--wizard", takes: "nothing" },
  { name: "--completions", takes: "text" },
  { name: "--log-level", takes: "text" }
]

/** A subcommand's flags, read from its usage (what `--help` lists). */
export const spec = (name: string, usage: Usage.Usage): Spec => ({ name, flags: [...BUILT_IN, ...flagsOf(usage)] })

const closest = (word: string, candidates: ReadonlyArray<string>): string | undefined => {
  const near = candidates
    .map((candidate) => ({
      candidate,
      distance: AutoCorrect.levensteinDistance(word, candidate, CliConfig.defaultConfig)
    }))
    .filter((c) => c.distance <= 2)
    .sort((a, b) => a.distance - b.distance)
  if (near.length > 0) return near[0]!.candidate
  const longer = candidates.filter((c) => word.length >= 4 && c.startsWith(word))
  return longer.length === 1 ? longer[0] : undefined
}

const describe = (takes: Takes): string =>
  takes === "integer"
    ? "a whole number"
    : takes === "text" || takes === "nothing"
      ? "a value"
      : takes.length === 2
        ? `${takes[0]} or ${takes[1]}`
        : `one of ${takes.join(", ")}`

const unknownOption = (name: string, command: Spec | undefined, commands: ReadonlyArray<Spec>): UsageError => {
  const where = command === undefined ? NAME : `${NAME} ${command.name}`
  const near = closest(
    name,
    (command?.flags ?? BUILT_IN).map((f) => f.name)
  )
  const owner = commands.find((c) => c !== command && c.flags.some((f) => f.name === name))
  const hint =
    near !== undefined
      ? `did you mean ${near}? (${where} --help lists the options)`
      : owner !== undefined
        ? `${name} is an option of ${NAME} ${owner.name}${command === undefined ? `: put it after ${owner.name}` : ""}`
        : `${where} --help lists the options`
  return new UsageError({ message: `unknown option ${name}`, hint })
}

const unknownCommand = (word: string, commands: ReadonlyArray<Spec>): UsageError => {
  const near = closest(
    word,
    commands.map((c) => c.name)
  )
  return new UsageError({
    message: `unknown command ${word}`,
    hint: `${near === undefined ? "" : `did you mean ${near}? `}(${NAME} --help lists the commands: ${commands.map((c) => c.name).join(", ")})`
  })
}

const wrongValue = (flag: Flag, value: string | undefined, command: Spec): UsageError | undefined => {
  const help = `${NAME} ${command.name} --help describes ${flag.name}`
  if (value === undefined)
    return new UsageError({ message: `${flag.name} needs a value: ${describe(flag.takes)}`, hint: help })
  const fits =
    flag.takes === "integer"
      ? value.trim() !== "" && Number.isInteger(Number(value))
      : typeof flag.takes === "string" || flag.takes.includes(value)
  return fits
    ? undefined
    : new UsageError({
        message: `${flag.name} takes ${describe(flag.takes)} (got ${JSON.stringify(value)})`,
        hint: help
      })
}

/**
 * The first mistake in `args` (the command line after the program), or `undefined` when
 * every flag is known and has a value it accepts. Flag names compare without case, as
 * @effect/cli's default configuration does; values compare exactly, as it does.
 */
export const check = (args: ReadonlyArray<string>, commands: ReadonlyArray<Spec>): UsageError | undefined => {
  let command: Spec | undefined
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    // after `--` everything is an argument
    if (arg === "--") return undefined
    if (arg.startsWith("-") && arg !== "-") {
      const equals = arg.indexOf("=")
      const name = (equals > 0 ? arg.slice(0, equals) : arg).toLowerCase()
      const flag = (command?.flags ?? BUILT_IN).find((f) => f.name === name)
      if (flag === undefined) return unknownOption(name, command, commands)
      if (flag.takes === "nothing") continue
      const value = equals > 0 ? arg.slice(equals + 1) : args[++i]
      // before the command only @effect/cli's own flags are known, and it judges their values
      const problem = command === undefined ? undefined : wrongValue(flag, value, command)
      if (problem !== undefined) return problem
    } else if (command === undefined) {
      command = commands.find((c) => c.name === arg)
      if (command === undefined) return unknownCommand(arg, commands)
    }
  }
  return undefined
}
