/**
 * Runs the simulator standalone until Ctrl-C:
 *
 *     npm run simulate -- --port 8051 [--instances 2] [--api-key KEY] [--shape code|readme]
 *
 * Point a client at the discovery URL it prints. On exit it prints what it received.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as AvatarSimulator from "../src/AvatarSimulator.js"

const usage = "usage: npm run simulate -- [--port 8051] [--instances 2] [--api-key KEY] [--shape code|readme]"

const parseArgs = (argv: ReadonlyArray<string>): AvatarSimulator.Options => {
  let options: AvatarSimulator.Options = {}
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    const value = argv[i + 1]
    const need = (): string => {
      if (value === undefined || value.startsWith("--")) throw new Error(`${flag} needs a value\n${usage}`)
      i++
      return value
    }
    const integer = (min: number): number => {
      const n = Number(need())
      if (!Number.isInteger(n) || n < min) throw new Error(`${flag} must be an integer >= ${min}\n${usage}`)
      return n
    }
    switch (flag) {
      case "--port":
        options = { ...options, port: integer(0) }
        break
      case "--instances":
        options = { ...options, instances: integer(1) }
        break
      case "--api-key":
        options = { ...options, apiKey: need() }
        break
      case "--host":
        options = { ...options, host: need() }
        break
      case "--shape": {
        const shape = need()
        if (shape !== "code" && shape !== "readme") throw new Error(`--shape is "code" or "readme"\n${usage}`)
        options = { ...options, discoveryShape: shape }
        break
      }
      case "--help":
      case "-h":
        console.log(usage)
        process.exit(0)
        break
      default:
        throw new Error(`unknown argument ${flag}\n${usage}`)
    }
  }
  return options
}

const program = Effect.gen(function* () {
  const options = yield* Effect.try({
    try: () => parseArgs(process.argv.slice(2)),
    catch: (e) => (e instanceof Error ? e.message : String(e))
  })
  const simulator = yield* AvatarSimulator.make(options)
  yield* Effect.addFinalizer(() => Effect.flatMap(simulator.report, (report) => Console.log(`\n${report}`)))
  yield* Console.log(`Akool streaming-avatar simulator`)
  yield* Console.log(`  discovery: ${simulator.discoveryUrl}`)
  for (const instance of simulator.instances) {
    yield* Console.log(
      `  instance ${instance.index}: ws://${instance.host}:${instance.port}/streamingAvatar/ws/v1 (avatar ${instance.avatarId})`
    )
  }
  yield* Console.log(
    options.apiKey === undefined ? "  accepting any non-empty api_key" : "  accepting only the given api_key"
  )
  yield* Console.log("Ctrl-C to stop.")
  return yield* Effect.never
}).pipe(
  Effect.scoped,
  Effect.catchAll((error) =>
    Console.error(typeof error === "string" ? error : error.message).pipe(
      Effect.zipRight(Effect.sync(() => process.exit(2)))
    )
  )
)

NodeRuntime.runMain(program)
