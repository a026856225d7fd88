/**
 * Turn-taking: the playback model put to work for the session. It feeds the model from the
 * writer (each frame as it leaves), the connection (confirmations, round trips, drops) and
 * the server's `audio_start` / `audio_end` events, keeps `session.speaking` up to date, and
 * completes each utterance's `played` when the avatar has spoken it.
 *
 * The model's own changes happen at times it predicts (a stretch of speech starts or ends),
 * so one timer on the client's shared clock wakes it, and only while audio is ahead.
 */
import * as Runtime from "effect/Runtime"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as AvatarMetrics from "../../AvatarMetrics.js"
import type * as AvatarSession from "../../AvatarSession.js"
import type * as Protocol from "../../Protocol.js"
import type { FrameClockService } from "../dataplane/frameClock.js"
import { type Cut, Playback, type Played, Track } from "./playback.js"
import { Speaking } from "./state.js"

export class Turns {
  readonly playback: Playback
  /** The server sends `audio_start` / `audio_end`: they, not the model, drive `speaking`. */
  private eventsSeen = false
  private current: AvatarSession.Speaking = Speaking.Silent()
  /** `session.speaking`, made when first asked for: a SubscriptionRef costs a few KB, and most sessions of a busy process never read it. */
  private ref: SubscriptionRef.SubscriptionRef<AvatarSession.Speaking> | undefined = undefined
  private count = 0
  /** Utterances whose outcome is not known yet, whether or not their audio began. */
  private readonly live = new Set<Track>()
  /** Takes the timer off the shared clock, while it is on it. */
  private remove: (() => void) | undefined = undefined
  /** The timer on the shared clock; its `dueAt` is when it is next due (infinity while none is set). */
  private readonly timer: { dueAt: number; readonly fire: (now: number) => number | undefined }

  constructor(
    private readonly sessionId: string,
    delayMs: number,
    private readonly clock: FrameClockService,
    private readonly runtime: Runtime.Runtime<never>,
    /** Asks the server to confirm what was written (a ping): an utterance's tail must be confirmed to count as heard. */
    private readonly requestConfirmation: () => void
  ) {
    this.playback = new Playback(delayMs, (measured) => AvatarMetrics.playoutDelay.unsafeUpdate(measured, []))
    this.timer = {
      dueAt: Number.POSITIVE_INFINITY,
      fire: (now) => {
        this.update(now)
        const next = this.playback.nextChange(now)
        this.timer.dueAt = next ?? Number.POSITIVE_INFINITY
        if (next === undefined) this.remove = undefined
        return next
      }
    }
  }

  /** A new utterance; `onPlayed` hears once how it ended. */
  track(onPlayed: (played: Played) => void, onClosed: () => void = () => {}): Track {
    const track = new Track(
      `${this.sessionId.slice(0, 8)}-u${++this.count}`,
      (done, played) => {
        this.live.delete(done)
        if (played.interrupted) AvatarMetrics.utterancesInterrupted.unsafeUpdate(1, [])
        else AvatarMetrics.utterancesSpoken.unsafeUpdate(1, [])
        onPlayed(played)
      },
      (done) => {
        this.live.delete(done)
        onClosed()
      }
    )
    this.live.add(track)
    return track
  }

  /** The writer sent a frame of `track`. */
  readonly written = (track: Track, bytes: number, index: number, now: number): void => {
    const startsAt = this.playback.written(track, bytes / 32, index, now)
    // per frame, only a comparison: a timer already due sooner will look again then
    if (startsAt < this.timer.dueAt) this.schedule(startsAt)
  }

  readonly dropped = (track: Track, bytes: number): void => {
    this.playback.dropped(track, bytes / 32)
  }

  /** The server had read every frame up to `mark` when it answered at `at`. */
  confirmed(mark: number, at: number): void {
    this.playback.confirmed(mark, at)
    this.wake(at)
  }

  roundTrip(ms: number): void {
    this.playback.roundTrip(ms)
  }

  /** The connection dropped: what it had not confirmed is not counted as heard. */
  lost(now: number): void {
    this.playback.lost()
    this.wake(now)
  }

  /** An utterance gave its last frame (or stopped). */
  finished(track: Track, now: number): void {
    track.finished = true
    if (track.inFlight > 0) this.requestConfirmation()
    this.playback.empty(track)
    this.wake(now)
  }

  cut(at: number): Cut {
    const cut = this.playback.cut(at, [...this.live])
    this.set(Speaking.Silent())
    return cut
  }

  /** What the session learns from an `event` message. */
  onEvent(message: typeof Protocol.ServerEvent.Type, now: number): void {
    const event = message.pld.event
    if (event === "audio_start") {
      this.eventsSeen = true
      const track = this.playback.started(now)
      // an audio_start that matches no utterance of ours (audio from before a reconnect, a
      // server of its own mind) leaves the state as the model has it
      if (track !== undefined && (this.current._tag === "Silent" || this.current.utterance !== track.id)) {
        this.set(Speaking.Speaking({ utterance: track.id, since: now }))
      }
      // the measurement may have moved the model's placement: its next change may be sooner
      this.wake(now)
    } else if (event === "audio_end") {
      this.eventsSeen = true
      this.set(Speaking.Silent())
    }
  }

  /** Brings `speaking` and the utterances' outcomes up to `now`. */
  private update(now: number): void {
    this.playback.settle(now)
    if (this.eventsSeen) return
    const track = this.playback.speakingAt(now)
    if (track === undefined) {
      if (this.current._tag === "Speaking") this.set(Speaking.Silent())
    } else if (this.current._tag === "Silent" || this.current.utterance !== track.id) {
      this.set(Speaking.Speaking({ utterance: track.id, since: now }))
    }
  }

  /** Looks now, and keeps the timer set while the model expects a change. */
  private wake(now: number): void {
    this.update(now)
    const next = this.playback.nextChange(now)
    if (next !== undefined && next < this.timer.dueAt) this.schedule(next)
  }

  /** Sets the timer for `at`; the clock keeps the due time it was given, so a sooner one needs the timer anew. */
  private schedule(at: number): void {
    this.remove?.()
    this.timer.dueAt = at
    this.remove = this.clock.addTimer(this.timer)
  }

  /** The session has ended: what was not over yet ends where the avatar stands, and the timer stops. */
  stop(): void {
    // utterances not over yet have no outcome: whoever waits for one hears that the session closed
    for (const track of [...this.live]) track.close()
    this.set(Speaking.Silent())
    this.remove?.()
    this.remove = undefined
    this.timer.dueAt = Number.POSITIVE_INFINITY
  }

  // Set at once, in order: a forked set would land later (after a reader that asked right after
  // an interrupt), and two of them may land out of order. The set is synchronous unless another
  // fiber holds the ref; then it finishes on a fiber of its own.
  private set(next: AvatarSession.Speaking): void {
    this.current = next
    if (this.ref !== undefined) Runtime.runSyncExit(this.runtime)(SubscriptionRef.set(this.ref, next))
  }

  /** `session.speaking`: from the moment it is made, every change. */
  get speaking(): SubscriptionRef.SubscriptionRef<AvatarSession.Speaking> {
    if (this.ref === undefined) this.ref = Runtime.runSync(this.runtime)(SubscriptionRef.make(this.current))
    return this.ref
  }
}

export type { Played, Track }
