import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { AvatarMetrics, AvatarSimulator } from "../src/index.js"
import { API_KEY, agora, clientFor, eventually, fastRetry, pcm, recordingTracer } from "./support.js"

const AVATAR = "dvp_Tristan_cloth2_1080P"

const counter = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)
const histogramCount = (metric: typeof AvatarMetrics.ackLatency) => Effect.map(Metric.value(metric), (s) => s.count)

const snapshot = Effect.all({
  opened: counter(AvatarMetrics.sessionsOpened),
  active: counter(AvatarMetrics.sessionsActive),
  reconnects: counter(AvatarMetrics.reconnects),
  frames: counter(AvatarMetrics.framesSent),
  bytes: counter(AvatarMetrics.bytesSent),
  dropped: counter(AvatarMetrics.framesDropped),
  depth: counter(AvatarMetrics.outboxDepth),
  acks: histogramCount(AvatarMetrics.ackLatency),
  heartbeats: histogramCount(AvatarMetrics.heartbeatRoundTrip)
})

describe("observability", () => {
  it.scopedLive("the akool_avatar_* metrics count what a session does", () =>
    Effect.gen(function* () {
      const before = yield* snapshot
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const session = yield* client.session({
            avatarId: AVATAR,
            pacing: "none",
            heartbeatInterval: "50 millis",
            retry: fastRetry(3)
          })
          yield* session.setParams({ agora })
          const during = yield* snapshot
          expect(during.opened - before.opened).toBe(1)
          expect(during.active - before.active).toBe(1)

          // 10 frames of 40 ms, written
          yield* Stream.run(Stream.make(pcm(12_800)), session.audio)
          const written = yield* snapshot
          expect(written.frames - before.frames).toBe(10)
          expect(written.bytes - before.bytes).toBe(12_800)
          expect(written.depth - before.depth).toBe(0)

          // a heartbeat answered, and a drop survived
          yield* eventually(snapshot, (s) => s.heartbeats > before.heartbeats)
          yield* sim.dropAll({ code: 1011 })
          yield* eventually(snapshot, (s) => s.reconnects - before.reconnects === 1)
          yield* eventually(session.info, (i) => i.connected && i.agoraConnected)

          yield* session.interrupt
        })
      )
      const after = yield* snapshot
      expect(after.active - before.active).toBe(0)
      // set-params twice (the reconnect re-applies it), interrupt and leave_channel: each acked once
      expect(after.acks - before.acks).toBe(4)
      expect(after.depth - before.depth).toBe(0)
    })
  )

  it.scopedLive("the public operations have spans with useful attributes, never the key or the Agora token", () =>
    Effect.gen(function* () {
      const { tracer, spans } = yield* recordingTracer
      const sim = yield* AvatarSimulator.make()
      const client = yield* clientFor(sim)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const session = yield* client.session({ avatarId: AVATAR, retry: fastRetry(3) })
          yield* session.setParams({ agora })
          yield* sim.dropAll({ code: 1011 })
          yield* eventually(session.info, (i) => i.reconnects === 1 && i.agoraConnected)
          yield* session.interrupt
        })
      ).pipe(Effect.withTracer(tracer))

      const named = (name: string) => spans.filter((s) => s.name === name)
      for (const name of [
        "Discovery.instances",
        "Connection.connect",
        "AvatarSession.connect",
        "AvatarSession.setParams",
        "AvatarSession.reconnect",
        "AvatarSession.interrupt",
        "AvatarSession.close"
      ]) {
        expect(named(name).length, name).toBeGreaterThan(0)
      }
      const connect = named("AvatarSession.connect")[0]!
      expect(connect.attributes.get("akool.avatar_id")).toBe(AVATAR)
      expect(connect.attributes.get("akool.instance")).toMatch(/^127\.0\.0\.1:\d+$/)
      expect(named("AvatarSession.reconnect")[0]!.attributes.get("akool.reconnect.cause")).toContain("1011")
      expect(named("AvatarSession.setParams")[0]!.attributes.get("akool.agora.channel")).toBe(agora.channel)

      const everything = JSON.stringify(
        spans.map((s) => ({ name: s.name, attributes: [...s.attributes], status: s.status._tag }))
      )
      expect(everything).not.toContain(API_KEY)
      expect(everything).not.toContain(agora.token)
      expect(Option.isSome(Option.fromNullable(spans.find((s) => s.status._tag === "Ended")))).toBe(true)
    })
  )

  it.scopedLive(
    "turn-taking is measured: the playout delay, utterances spoken and interrupted, played ms on the span",
    () =>
      Effect.gen(function* () {
        const { tracer, spans } = yield* recordingTracer
        const before = yield* Effect.all({
          spoken: counter(AvatarMetrics.utterancesSpoken),
          interrupted: counter(AvatarMetrics.utterancesInterrupted),
          delays: histogramCount(AvatarMetrics.playoutDelay)
        })
        const sim = yield* AvatarSimulator.make()
        const client = yield* clientFor(sim)
        yield* Effect.scoped(
          Effect.gen(function* () {
            const session = yield* client.session({ avatarId: AVATAR, lead: "200 millis" })
            yield* (yield* session.say(Stream.make(pcm(8_000)))).played
            yield* session.say(Stream.make(pcm(64_000, 2)))
            yield* Effect.sleep("500 millis")
            yield* session.interrupt
          })
        ).pipe(Effect.withTracer(tracer))
        const after = yield* Effect.all({
          spoken: counter(AvatarMetrics.utterancesSpoken),
          interrupted: counter(AvatarMetrics.utterancesInterrupted),
          delays: histogramCount(AvatarMetrics.playoutDelay)
        })
        expect(after.spoken - before.spoken).toBe(1)
        expect(after.interrupted - before.interrupted).toBe(1)
        // each audio_start the simulator sent measured the delay once
        expect(after.delays - before.delays).toBeGreaterThanOrEqual(2)
        const interrupt = spans.find((span) => span.name === "AvatarSession.interrupt")!
        const played = interrupt.attributes.get("akool.played_ms") as number
        expect(played).toBeGreaterThan(200)
        expect(played).toBeLessThan(500)
      })
  )
})
