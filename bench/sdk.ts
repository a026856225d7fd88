/**
 * The SDK behind the harness's common interface: one `ManagedRuntime` with the Node client
 * layer, one scope per session. The runtime is crossed once per operation (open, a whole
 * stream, close), never per frame, so the figures are the SDK's own.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { AvatarClient } from "../src/index.js"
import { AGORA, API_KEY, AVATAR_ID, type Driver, HEARTBEAT_MS, type SdkWay } from "./shared.js"

export const sdkDriver = (port: number, way: SdkWay): Driver => {
  const runtime = ManagedRuntime.make(
    AvatarClient.layerNode({
      apiKey: Redacted.make(API_KEY),
      discoveryUrl: `http://127.0.0.1:${port}`,
      env: "prod",
      heartbeatInterval: `${HEARTBEAT_MS} millis`
    }).pipe(
      // the recovery scenario drops links on purpose: its warnings are not wanted here
      Layer.merge(Logger.minimumLogLevel(LogLevel.Error))
    )
  )
  return {
    open: async ({ pacing, leadMs }) => {
      const scope = await runtime.runPromise(Scope.make())
      const session = await runtime.runPromise(
        AvatarClient.session({
          avatarId: AVATAR_ID,
          pacing,
          params: { agora: AGORA },
          ...(leadMs === undefined ? {} : { lead: `${leadMs} millis` as const })
        }).pipe(Scope.extend(scope))
      )
      // the pacing is the session's option, chosen at open: one way to speak serves both.
      // `session.speak` is what the README recommends for many sessions; `--sink` measures the
      // composable way, Stream.run into the session's sink
      const speak = (frames: Iterable<Uint8Array>) =>
        runtime.runPromise(
          way === "speak"
            ? session.speak(Stream.fromIterable(frames))
            : Stream.run(Stream.fromIterable(frames), session.audio)
        )
      return {
        id: session.sessionId,
        paced: speak,
        unpaced: speak,
        close: () => runtime.runPromise(Scope.close(scope, Exit.void)),
        unconfirmed: () => runtime.runPromise(Effect.map(session.info, (info) => info.audio.framesUnconfirmed))
      }
    },
    dispose: () => runtime.dispose()
  }
}
