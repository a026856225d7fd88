#!/usr/bin/env node
/**
 * The `akool-avatar` executable (package.json `bin`).
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import { run } from "../cli/main.js"
import { exitCode } from "../cli/report.js"

run(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  // failures were reported where they happened; the exit code says how it ended
  NodeRuntime.runMain({ disableErrorReporting: true, teardown: (exit, onExit) => onExit(exitCode(exit)) })
)
