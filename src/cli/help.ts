/**
 * The help text as `akool-avatar` prints it: under the program's own name, with every
 * default, and in colour only on a terminal that has not asked for none.
 */
import * as CliConfig from "@effect/cli/CliConfig"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as Options from "@effect/cli/Options"
import * as Usage from "@effect/cli/Usage"
import * as Option from "effect/Option"

export const NAME = "akool-avatar"

/**
 * Colour only on a terminal, and not when `NO_COLOR` is set to anything but the empty
 * string (no-color.org).
 */
export const colour = (stream: { readonly isTTY?: boolean }, env: Record<string, string | undefined>): boolean =>
  stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === "")

// ESC [ parameters letter: the SGR codes @effect/printer-ansi writes, and any other CSI
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g")

/** The text without its escape codes. */
export const plain = (text: string): string => text.replace(ANSI, "")

/** A help document as one line of plain text, e.g. a parse error of @effect/cli. */
export const line = (doc: HelpDoc.HelpDoc): string =>
  plain(HelpDoc.toAnsiText(doc))
    .trim()
    .replace(/\s*\n+\s*/g, " ")

/** `Options.withDefault`, with the default written into the description that `--help` shows. */
export const defaulted = <A>(option: Options.Options<A>, description: string, value: A): Options.Options<A> =>
  option.pipe(Options.withDescription(`${description} (default: ${String(value)})`), Options.withDefault(value))

/** What `--help` shows: the usage and the help document of a command. */
export interface Help {
  readonly usage: Usage.Usage
  readonly helpDoc: HelpDoc.HelpDoc
}

const firstName = (usage: Usage.Usage): string | undefined =>
  usage._tag === "Named" ? usage.names[0] : usage._tag === "Concat" ? firstName(usage.left) : undefined

/**
 * What `--help` prints. @effect/cli's own text shows a subcommand's usage without the
 * program's name (`$ stream ...`) and is always in colour; this one is what a user types.
 */
export const render = (help: Help, version: string, inColour: boolean): string => {
  const usage =
    firstName(help.usage) === NAME ? help.usage : Usage.concat(Usage.named([NAME], Option.none()), help.usage)
  const lines = Usage.enumerate(usage, CliConfig.defaultConfig).map((span) =>
    HelpDoc.p(Span.concat(Span.text("$ "), span))
  )
  const doc = [
    HelpDoc.h1(Span.code(NAME)),
    HelpDoc.p(`${NAME} ${version}`),
    HelpDoc.h1("USAGE"),
    ...lines,
    help.helpDoc
  ].reduce((all, next) => HelpDoc.sequence(all, next))
  const text = HelpDoc.toAnsiText(doc)
  return inColour ? text : plain(text)
}
