/**
 * Utterances: what a producer hands over is cut into frames and offered to the outbox as it
 * has room, and an utterance finishes once every frame it gave is written. The Sink, `speak`
 * and `sendAudio` are three ways into the same `Utterance`.
 */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as Audio from "../../Audio.js"
import { AudioStreamError, type AvatarError } from "../../AvatarError.js"
import type * as AvatarSession from "../../AvatarSession.js"
import type { FrameClockService } from "../dataplane/frameClock.js"
import { Framer } from "../dataplane/framer.js"
import type { Outbox } from "../dataplane/outbox.js"
import { describe } from "./options.js"
import type { Track, Turns } from "./turns.js"

/** What the utterances of a session share. */
export interface Speaker {
  readonly outbox: Outbox
  readonly clock: FrameClockService
  readonly frameBytes: number
  readonly turns: Turns
  /** An utterance starts and ends: the session is `Streaming` while any runs. */
  readonly begin: Effect.Effect<void>
  readonly end: Effect.Effect<void>
  /** The session's interrupt, for `Utterance.interrupt`. */
  readonly interrupt: Effect.Effect<AvatarSession.Interrupted, AvatarError>
  /** Where `say` runs its utterances: the session's scope. */
  readonly scope: Scope.Scope
}

/**
 * A chunk as bytes: a `Uint8Array` (a `Buffer` too) as it is, any other view of binary data
 * (an `Int16Array` of samples, a `DataView`) and an `ArrayBuffer` as a view of the same
 * memory; anything else is not audio.
 */
const toBytes = (chunk: unknown): Uint8Array | undefined => {
  if (chunk instanceof Uint8Array) return chunk
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk)
  return undefined
}

/** One utterance: its framing state, from its first chunk to its last frame. */
class Utterance {
  private readonly framer: Framer
  /** The outbox's interrupt count when it began: a later interrupt ends it. */
  private readonly epoch: number
  /** Bytes taken from the producer, for the odd-length message. */
  private total = 0
  /** A frame cut but not yet taken by the full outbox. */
  private next: Uint8Array | undefined = undefined
  /** An interrupt ended it: the rest of the stream is not wanted. */
  private stopped = false
  private checked = false

  constructor(
    private readonly speaker: Speaker,
    /** Its place in the avatar's playback. */
    readonly track: Track
  ) {
    this.framer = new Framer(speaker.frameBytes)
    this.epoch = speaker.outbox.interrupts
  }

  /** Queues one chunk; `false` (and the utterance stopped) when an interrupt ended it. */
  offer(input: Chunk.Chunk<unknown>): Effect.Effect<boolean, AudioStreamError> {
    return Effect.map(
      Effect.suspend(() => (this.interrupted() ? Effect.succeed(false) : this.offerAll(input, 0))),
      (more) => {
        if (!more) this.stopped = true
        return more
      }
    )
  }

  /** The end: the last, shorter frame, then the wait until every frame is written. */
  finish(): Effect.Effect<void, AudioStreamError> {
    return Effect.suspend(() => {
      if (this.stopped) return Effect.void
      const { frame, strayByte } = this.framer.flush()
      this.next = frame
      const { outbox } = this.speaker
      return Effect.flatMap(frame ? this.offerAll(Chunk.empty(), 0) : Effect.succeed(true), (more) =>
        more
          ? Effect.zipRight(
              outbox.awaitSettled(outbox.accepted),
              strayByte ? Audio.strayByteError(this.total) : Effect.void
            )
          : Effect.void
      )
    })
  }

  private interrupted(): boolean {
    return this.speaker.outbox.interrupts !== this.epoch
  }

  /**
   * Cuts `input` from `index` on into frames and queues them as the outbox has room, waiting
   * for room as needed; `false` when an interrupt ended the utterance. Frames are cut only as
   * they are queued, so a long chunk costs no more memory than the outbox holds.
   */
  private offerAll(input: Chunk.Chunk<unknown>, start: number): Effect.Effect<boolean, AudioStreamError> {
    return Effect.suspend(() => {
      const { outbox, clock } = this.speaker
      if (outbox.failure) return Effect.fail(outbox.failure)
      if (this.interrupted()) return Effect.succeed(false)
      if (outbox.sealed) return Effect.fail(this.refused(input, start))
      let index = start
      while (true) {
        if (this.next === undefined) {
          this.next = this.framer.take()
          if (this.next === undefined) {
            if (index >= input.length) break
            const chunk = Chunk.unsafeGet(input, index)
            const bytes = toBytes(chunk)
            if (bytes === undefined) {
              // the frames before it were taken: they go out as any others
              if (outbox.pump(clock.now())) clock.schedule(outbox)
              return Effect.fail(this.notBytes(chunk))
            }
            index++
            this.total += bytes.byteLength
            this.framer.feed(bytes)
            continue
          }
        }
        if (!this.checked) {
          this.checked = true
          if (Audio.looksLikeWav(this.next)) return Effect.fail(Audio.wavHeaderError())
        }
        if (!outbox.offer(this.next, this.track)) {
          // what cannot go out now goes out on the shared clock's next ticks
          if (outbox.pump(clock.now())) clock.schedule(outbox)
          const resumeAt = index
          return Effect.zipRight(outbox.awaitSpace, this.offerAll(input, resumeAt))
        }
        this.next = undefined
      }
      if (outbox.pump(clock.now())) clock.schedule(outbox)
      return Effect.succeed(true)
    })
  }

  private refused(input: Chunk.Chunk<unknown>, index: number): AudioStreamError {
    let bytes = (this.next?.byteLength ?? 0) + this.framer.unread
    for (let i = index; i < input.length; i++) bytes += toBytes(Chunk.unsafeGet(input, i))?.byteLength ?? 0
    const unsent = Math.ceil(bytes / this.speaker.frameBytes)
    return new AudioStreamError({
      reason: "session-closed",
      unsentFrames: unsent,
      message: `The session is closing: ${unsent} frame(s) offered after it began closing were not taken`
    })
  }

  private notBytes(chunk: unknown): AudioStreamError {
    return new AudioStreamError({
      reason: "not-pcm",
      message: `Audio chunks must be Uint8Array (or Buffer, ArrayBuffer, or another typed array) of 16 kHz 16-bit mono PCM; got ${describe(chunk)}. The frames before it were taken.`
    })
  }
}

/** The Sink, `speak`, `sendAudio` and `say`'s body of one session. */
export const make = (speaker: Speaker) => {
  const { turns, clock } = speaker
  const unnamed = () => turns.track(() => {})
  // whatever ends an utterance (its last frame, an interrupt, a failure), its track is told
  const release = (u: Utterance) =>
    Effect.zipRight(
      Effect.sync(() => turns.finished(u.track, clock.now())),
      speaker.end
    )

  /** One utterance outside a sink: the session streams while it runs. */
  const utterance = <A, E, R>(track: Track, body: (u: Utterance) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.acquireUseRelease(Effect.as(speaker.begin, new Utterance(speaker, track)), (u) => body(u), release)

  // One channel, not a stack of Sink combinators: every real-time session holds one of these
  // open for as long as it speaks, and its cost per session counts.
  const audio: Sink.Sink<void, Uint8Array, unknown, AudioStreamError> = Sink.fromChannel(
    Channel.suspend(() => {
      const u = new Utterance(speaker, unnamed())
      const loop: Channel.Channel<
        never,
        Chunk.Chunk<Uint8Array>,
        AudioStreamError,
        never,
        void,
        unknown
      > = Channel.readWithCause({
        onInput: (chunk: Chunk.Chunk<Uint8Array>) =>
          Channel.flatMap(Channel.fromEffect(u.offer(chunk)), (more) => (more ? loop : Channel.void)),
        onFailure: Channel.failCause,
        onDone: () => Channel.fromEffect(u.finish())
      })
      return Channel.acquireUseRelease(
        speaker.begin,
        () => loop,
        () => release(u)
      )
    })
  )

  /** The pull loop of `speak`: no channel executors beyond the one that `toPull` runs the stream on. */
  const speakAs = <E, R>(
    track: Track,
    speech: Stream.Stream<Uint8Array, E, R>
  ): Effect.Effect<void, AudioStreamError | E, R> =>
    utterance(track, (u) =>
      Effect.scoped(
        Effect.flatMap(Stream.toPull(speech), (pull) => {
          const loop: Effect.Effect<void, AudioStreamError | E, R> = Effect.matchEffect(pull, {
            // the stream's end (None), or its own failure
            onFailure: (end): Effect.Effect<void, AudioStreamError | E> =>
              Option.isNone(end) ? u.finish() : Effect.fail(end.value),
            onSuccess: (chunk) => Effect.flatMap(u.offer(chunk), (more) => (more ? loop : Effect.void))
          })
          return loop
        })
      )
    )

  const speak = <E, R>(speech: Stream.Stream<Uint8Array, E, R>): Effect.Effect<void, AudioStreamError | E, R> =>
    Effect.suspend(() => speakAs(unnamed(), speech))

  /** One buffer as a whole utterance, without building a stream for it. */
  const sendAudio = (bytes: Uint8Array): Effect.Effect<void, AudioStreamError> =>
    Effect.suspend(() =>
      utterance(unnamed(), (u) => Effect.flatMap(u.offer(Chunk.of(bytes)), (more) => (more ? u.finish() : Effect.void)))
    )

  /** Starts `speech` as an utterance on a fiber of the session's scope; returns its handle at once. */
  const say = <E, R>(speech: Stream.Stream<Uint8Array, E, R>): Effect.Effect<AvatarSession.Utterance<E>, never, R> =>
    Effect.gen(function* () {
      const written = yield* Deferred.make<void, AudioStreamError | E>()
      const played = yield* Deferred.make<AvatarSession.Played, AudioStreamError | E>()
      const closed = () =>
        new AudioStreamError({
          reason: "session-closed",
          message: `The session closed before utterance ${track.id} was heard to its end`
        })
      const track = turns.track(
        (outcome) => Deferred.unsafeDone(played, Exit.succeed(outcome)),
        () => Deferred.unsafeDone(played, Exit.fail(closed()))
      )
      yield* speakAs(track, speech).pipe(
        Effect.onExit((exit) => {
          // the session closed under it: a typed end for whoever waits, not an interruption
          const ended = Exit.isInterrupted(exit)
            ? Exit.fail(
                new AudioStreamError({
                  reason: "session-closed",
                  message: `The session closed while utterance ${track.id} was being spoken`
                })
              )
            : exit
          // a failure ends `played` too (what was written still plays, but the utterance failed)
          return Effect.zipRight(
            Deferred.done(written, ended),
            Exit.isFailure(ended) ? Deferred.failCause(played, ended.cause) : Effect.void
          )
        }),
        Effect.forkIn(speaker.scope)
      )
      return {
        id: track.id,
        written: Deferred.await(written),
        played: Deferred.await(played),
        interrupt: Effect.suspend(() =>
          !track.over
            ? speaker.interrupt
            : Effect.succeed({ utterance: undefined, playedMs: 0, unplayedMs: 0, droppedFrames: 0 })
        )
      }
    })

  return { audio, speak, sendAudio, say }
}
