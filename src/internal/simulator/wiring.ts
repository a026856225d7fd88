import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as AvatarSimulator from "../../AvatarSimulator.js"
import * as Constants from "../constants.js"
import type * as Connection from "./connection.js"
import * as Discovery from "./discovery.js"
import * as Faults from "./faults.js"
import * as Hostile from "./hostile.js"
import * as Inspector from "./inspector/app.js"
import * as Instance from "./instance.js"
import * as Messages from "./messages.js"
import * as Player from "./player.js"
import * as Records from "./records.js"
import * as Report from "./report.js"
import * as Server from "./server.js"
import * as Upgrade from "./upgrade.js"
import * as Wav from "./wav.js"

/** @internal How the simulator's errors are made: `AvatarSimulator.SimulatorError`, by its reason. */
export type MakeError = (reason: "listen" | "save", message: string) => AvatarSimulator.SimulatorError

const isUnspecified = (host: string) => host === "0.0.0.0" || host === "::" || host === ""

const instanceOptions = (options: AvatarSimulator.Options): ReadonlyArray<AvatarSimulator.InstanceOptions> =>
  options.instances === undefined
    ? [{}]
    : typeof options.instances === "number"
      ? Array.from({ length: Math.max(0, Math.floor(options.instances)) }, () => ({}))
      : options.instances

/** Unwrapped once, here, and only ever compared: the key is never logged nor recorded. */
const keyCheck = (apiKey: AvatarSimulator.Options["apiKey"]) => {
  const expected = apiKey === undefined ? undefined : Redacted.isRedacted(apiKey) ? Redacted.value(apiKey) : apiKey
  return (key: string | undefined): boolean =>
    typeof key === "string" && key.length > 0 && (expected === undefined || key === expected)
}

const dieWith = (where: string, problem: Faults.Problem) =>
  Effect.dieMessage(`AvatarSimulator.${where}: ${Faults.describe(problem)}`)

/** Ends the selected connections and waits until their fibers have ended. */
const end = (
  connections: () => ReadonlyArray<Connection.Connection>,
  request: Connection.CloseRequest
): Effect.Effect<void> =>
  Effect.suspend(() => {
    const live = connections()
    for (const c of live) c.unsafeRequestClose(request)
    return Effect.forEach(live, (c) => c.awaitClosed, { discard: true })
  })

const dropRequest = (
  name: string,
  options: { readonly mode?: AvatarSimulator.DropMode; readonly code?: number } | undefined
): Effect.Effect<Connection.CloseRequest> => {
  const problem = Faults.dropProblem(options)
  return problem !== undefined
    ? dieWith(name, problem)
    : Effect.succeed({
        mode: options?.mode ?? "close",
        code: options?.code ?? 1011,
        reason: "dropped by the simulator",
        dropped: true
      })
}

interface Parts {
  readonly discoveryUrl: string
  readonly advertisedHost: string
  readonly instances: ReadonlyArray<Instance.Instance>
  readonly records: Records.Records
  readonly discovery: Discovery.Discovery
  readonly hostile: Hostile.Hostile
  readonly error: MakeError
  readonly players: Player.Players
  readonly inspectorUrl: string | undefined
}

/** What the simulator reads and writes besides its sockets, on the platform's file system. */
const withFiles = <A>(
  effect: Effect.Effect<A, PlatformError.PlatformError, FileSystem.FileSystem>,
  error: MakeError,
  what: string
): Effect.Effect<A, AvatarSimulator.SimulatorError> =>
  effect.pipe(
    Effect.provide(NodeFileSystem.layer),
    // the system's own words (ENOENT: no such file or directory, open '...'), not the platform's wrapping
    Effect.mapError((cause) => error("save", `${what}: ${cause.description ?? cause.message}`))
  )

/** The service over the running parts. */
const service = (parts: Parts): AvatarSimulator.Service => {
  const { instances, records } = parts
  const instanceAt = (index: number) =>
    Effect.suspend(() => {
      const instance = instances[index]
      return instance === undefined
        ? Effect.dieMessage(`AvatarSimulator: there is no instance ${index} (it has ${instances.length})`)
        : Effect.succeed(instance)
    })
  const everyConnection = () => instances.flatMap((i) => Array.from(i.connections))
  return {
    discoveryUrl: parts.discoveryUrl,
    inspectorUrl: parts.inspectorUrl,
    instances: instances.map((i) => ({
      index: i.index,
      host: parts.advertisedHost,
      port: i.port,
      avatarId: i.avatarId
    })),
    setFaults: (index, faults) =>
      Effect.flatMap(instanceAt(index), (instance) => {
        const problem = Faults.validate(faults)
        return problem === undefined
          ? Effect.sync(() => instance.unsafeSetFaults(faults))
          : dieWith(`setFaults: instance ${index}`, problem)
      }),
    setDiscovery: (behaviour) => Effect.sync(() => parts.discovery.unsafeSetBehaviour(behaviour)),
    sessions: Effect.sync(() => records.sessions()),
    audio: (sessionId) => Effect.sync(() => records.audioOf(sessionId)),
    saveWav: (sessionId, path) =>
      withFiles(
        Effect.flatMap(FileSystem.FileSystem, (fs) =>
          // what arrived by the time it runs, not by the time it was made
          Effect.suspend(() => fs.writeFile(path, Wav.file(records.audioOf(sessionId))))
        ),
        parts.error,
        `cannot write ${path}`
      ),
    playback: (sessionId) => Effect.sync(() => parts.players.playback(sessionId)),
    openConnections: Effect.sync(() => records.openConnections()),
    discoveryRequests: Effect.sync(() => records.discoveryRequests()),
    dropAll: (options) => Effect.flatMap(dropRequest("dropAll", options), (request) => end(everyConnection, request)),
    drop: (index, options) =>
      Effect.flatMap(instanceAt(index), (instance) =>
        Effect.flatMap(dropRequest("drop", options), (request) => end(() => Array.from(instance.connections), request))
      ),
    sendMalformed: (index, count, kinds) =>
      Effect.flatMap(instanceAt(index), (instance) => {
        const problem = Faults.sendMalformedProblem(count, kinds)
        if (problem !== undefined) return dieWith("sendMalformed", problem)
        return Effect.suspend(() => {
          const targets = Array.from(instance.connections).filter(
            (c) => c.record.isOpen && !c.ending && c.write !== undefined
          )
          return Effect.as(
            Effect.forEach(targets, (c) => parts.hostile.send(c.write!, c.record, count, kinds), { discard: true }),
            targets.length
          )
        })
      }),
    report: Effect.sync(() =>
      Report.render(records.sessions(), records.discoveryRequests().length, records.savedFiles())
    )
  }
}

/**
 * Assembles the simulator: validates the faults, starts the discovery server and one
 * WebSocket server per instance, and says goodbye to every client when the scope closes.
 *
 * @internal
 */
export const make = (
  options: AvatarSimulator.Options,
  error: MakeError
): Effect.Effect<AvatarSimulator.Service, AvatarSimulator.SimulatorError, Scope.Scope> =>
  Effect.gen(function* () {
    const host = options.host ?? "127.0.0.1"
    const advertisedHost = isUnspecified(host) ? "127.0.0.1" : host
    const list = instanceOptions(options)
    for (const [index, instance] of list.entries()) {
      const problem = Faults.validate(instance.faults ?? {})
      if (problem !== undefined) return yield* dieWith(`make: instance ${index}`, problem)
    }
    const instances = list.map((o, index) => new Instance.Instance(index, o))
    const saveDir = options.saveDir
    if (saveDir !== undefined) {
      yield* withFiles(
        Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeDirectory(saveDir, { recursive: true })),
        error,
        `cannot create the saveDir ${saveDir}`
      )
    }
    const records = new Records.Records(options.recordAudio ?? true, saveDir, yield* Effect.clock)
    // after the goodbye below, which closes the connections and with them their files
    yield* Effect.addFinalizer(() => Effect.sync(() => records.unsafeCloseFiles()))
    const messages = new Messages.ServerMessages()
    const hostile = new Hostile.Hostile(messages)
    const players = yield* Player.make(options.playoutDelay, messages, (problem) => dieWith("make", problem))
    const keyAccepted = keyCheck(options.apiKey)
    const discovery = new Discovery.Discovery({
      shape: options.discoveryShape ?? "code",
      advertisedHost,
      instances,
      records,
      keyAccepted
    })
    const listenError = (message: string) => error("listen", message)
    const discoveryPort = yield* Server.listen(host, options.port ?? 0, discovery.app, listenError)
    const context: Upgrade.UpgradeContext = { records, keyAccepted, messages, hostile, players }
    for (const instance of instances) {
      instance.unsafeListening(yield* Server.listen(host, 0, Upgrade.app(context, instance), listenError))
    }
    // Say goodbye with 1001 (going away) before the servers go, as a service that restarts does.
    yield* Effect.addFinalizer(() =>
      end(() => instances.flatMap((i) => Array.from(i.connections)), {
        mode: "close",
        code: 1001,
        reason: "the simulator is shutting down",
        dropped: false
      })
    )
    const urlHost = advertisedHost.includes(":") ? `[${advertisedHost}]` : advertisedHost
    const discoveryUrl = `http://${urlHost}:${discoveryPort}${Constants.SERVICE_STATUS_PATH}`
    const built = service({
      discoveryUrl,
      advertisedHost,
      instances,
      records,
      discovery,
      hostile,
      error,
      players,
      inspectorUrl: options.inspector === true ? `http://${urlHost}:${discoveryPort}${Inspector.PATH}` : undefined
    })
    if (options.inspector === true) {
      const clock = yield* Effect.clock
      discovery.unsafeServeInspector(
        Inspector.make({
          discoveryUrl,
          records,
          instances,
          players,
          now: () => clock.unsafeCurrentTimeMillis(),
          setFaults: built.setFaults
        })
      )
    }
    return built
  })
