/**
 * The `akool-avatar` command: `stream` and `simulate`.
 */
import * as Command from "@effect/cli/Command"
import * as simulate from "./simulate.js"
import * as stream from "./stream.js"

export const command = Command.make("akool-avatar").pipe(
  Command.withDescription("Stream audio to Akool streaming avatars, or run the built-in simulator of the service."),
  Command.withSubcommands([stream.command, simulate.command])
)

export const run = Command.run(command, { name: "akool-avatar", version: "0.1.0" })
