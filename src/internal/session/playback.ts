/**
 * The session's model of the avatar's playback: when each utterance is spoken, what has been
 * heard, and when it ends. The server plays a frame once it has arrived and sat out the
 * playout delay, right after the frame before it: `start = max(end of the last frame,
 * arrival + playoutDelay)`. A gap in the audio is silence, not speech.
 *
 * Arrival is known only roughly: a frame leaves when the writer hands it to the socket, and
 * the kernel's buffers on a slow link can hold it for seconds. The server's answers (a pong
 * or an ack, which it sends after reading everything written before the ping or command)
 * bound it. So frames are placed twice: provisionally when written (with the link delay
 * last measured), and for good when a confirmation covers them (with the link delay that
 * confirmation shows). Only confirmed frames count as played: a frame that may not have
 * arrived is never reported as heard.
 *
 * Everything here is synchronous and allocation-light: `written` runs once per frame.
 */

/** What `played` of an utterance says when it completes. */
export interface Played {
  readonly interrupted: boolean
  readonly playedMs: number
  readonly durationMs: number
}

/** One utterance in the avatar's playback. */
export class Track {
  /** Milliseconds of audio written for it. */
  durationMs = 0
  /** Milliseconds of it dropped by an interrupt before they were written. */
  droppedMs = 0
  /** Every frame it will have has been offered (its producer finished or was cut). */
  finished = false
  /** Confirmed placement, as [start, end) pairs in clock time, merged where contiguous. */
  private readonly segments: Array<number> = []
  /** Set once it is over: played to the end, or cut. */
  outcome: Played | undefined = undefined

  constructor(
    readonly id: string,
    /** Told once, when the outcome is known. */
    readonly onOutcome: (played: Played) => void
  ) {}

  place(start: number, end: number): void {
    const n = this.segments.length
    if (n > 0 && Math.abs(this.segments[n - 1]! - start) < 1e-6) this.segments[n - 1] = end
    else this.segments.push(start, end)
  }

  /** Milliseconds of confirmed audio that had played by `at`. */
  playedBy(at: number): number {
    let played = 0
    for (let i = 0; i < this.segments.length; i += 2) {
      const start = this.segments[i]!
      const end = this.segments[i + 1]!
      if (at > start) played += Math.min(at, end) - start
    }
    return played
  }

  /** When its confirmed audio ends, if any is placed. */
  get placedEnd(): number | undefined {
    return this.segments.length === 0 ? undefined : this.segments[this.segments.length - 1]
  }

  /** The start of its first confirmed frame, if any is placed. */
  get placedStart(): number | undefined {
    return this.segments.length === 0 ? undefined : this.segments[0]
  }

  settle(outcome: Played): void {
    if (this.outcome !== undefined) return
    this.outcome = outcome
    this.onOutcome(outcome)
  }
}

/** A frame written but not yet confirmed. */
interface Pending {
  readonly track: Track
  readonly ms: number
  readonly writtenAt: number
  /** The writer's count of frames once this one was written (what a confirmation mark counts). */
  readonly index: number
}

/** What an interrupt cut. */
export interface Cut {
  /** The utterance that was being spoken (or, if none was, the first one waiting). */
  readonly utterance: Track | undefined
  readonly playedMs: number
  /** Of that utterance and of those queued behind it. */
  readonly unplayedMs: number
}

export class Playback {
  /** The playout delay in use: configured, until `audio_start` events measure it. */
  delayMs: number
  /** How much later than written the server read the frames of the last confirmation. */
  private linkMs = 0
  /** Half the shortest round trip seen: how long a confirmation took to come back. */
  private oneWayMs = Number.POSITIVE_INFINITY
  /** The end of the last confirmed frame, in clock time. */
  private confirmedEnd = Number.NEGATIVE_INFINITY
  private pending: Array<Pending> = []
  /** Utterances whose outcome is not known yet, in the order their audio began. */
  private tracks: Array<Track> = []

  constructor(delayMs: number) {
    this.delayMs = delayMs
  }

  begin(track: Track): void {
    this.tracks.push(track)
  }

  /** A frame of `track` left, as the writer's `index`-th frame. */
  written(track: Track, ms: number, index: number, now: number): void {
    track.durationMs += ms
    this.pending.push({ track, ms, writtenAt: now, index })
  }

  dropped(track: Track, ms: number): void {
    track.droppedMs += ms
  }

  /** A round trip was measured (a heartbeat's pong). */
  roundTrip(ms: number): void {
    this.oneWayMs = Math.min(this.oneWayMs, ms / 2)
  }

  /** The server confirmed every frame counted by `mark` (it had read them when it answered at `at`). */
  confirmed(mark: number, at: number): void {
    let n = 0
    while (n < this.pending.length && this.pending[n]!.index <= mark) n++
    if (n === 0) return
    const last = this.pending[n - 1]!
    const oneWay = Number.isFinite(this.oneWayMs) ? this.oneWayMs : 0
    // the server read the batch's last frame by the time it answered: the link held it this long
    this.linkMs = Math.max(0, at - oneWay - last.writtenAt)
    for (let i = 0; i < n; i++) {
      const frame = this.pending[i]!
      const start = Math.max(this.confirmedEnd, frame.writtenAt + this.linkMs + this.delayMs)
      this.confirmedEnd = start + frame.ms
      frame.track.place(start, this.confirmedEnd)
    }
    this.pending = this.pending.slice(n)
  }

  /** The connection dropped: frames it had not confirmed may never have arrived, so none of them play. */
  lost(): number {
    const lost = this.pending.length
    for (const frame of this.pending) frame.track.durationMs -= frame.ms
    this.pending = []
    return lost
  }

  /** Where the avatar is at `now`, confirmed frames and those still in flight alike: the utterance it speaks, if any. */
  speakingAt(now: number): Track | undefined {
    let end = this.confirmedEnd
    for (const track of this.tracks) {
      const start = track.placedStart
      if (start !== undefined && start <= now && now < track.placedEnd!) return track
    }
    for (const frame of this.pending) {
      const start = Math.max(end, frame.writtenAt + this.linkMs + this.delayMs)
      end = start + frame.ms
      if (start <= now && now < end) return frame.track
      if (start > now) break
    }
    return undefined
  }

  /** The next moment after `now` at which `speakingAt` may change, if any frame is ahead. */
  nextChange(now: number): number | undefined {
    let next = Number.POSITIVE_INFINITY
    let end = this.confirmedEnd
    const consider = (t: number) => {
      if (t > now && t < next) next = t
    }
    consider(this.confirmedEnd)
    for (const track of this.tracks) {
      const start = track.placedStart
      if (start !== undefined) consider(start)
    }
    for (const frame of this.pending) {
      const start = Math.max(end, frame.writtenAt + this.linkMs + this.delayMs)
      consider(start)
      end = start + frame.ms
      consider(end)
      if (start > next) break
    }
    return Number.isFinite(next) ? next : undefined
  }

  /** Utterances that have finished playing by `now` (finished, all confirmed, the last frame over) complete. */
  settle(now: number): void {
    while (this.tracks.length > 0) {
      const track = this.tracks[0]!
      const inFlight = this.pending.length > 0 && this.pending[0]!.track === track
      const end = track.placedEnd ?? Number.NEGATIVE_INFINITY
      if (!track.finished || inFlight || this.pending.some((p) => p.track === track) || end > now) return
      this.tracks.shift()
      track.settle({ interrupted: false, playedMs: track.durationMs, durationMs: track.durationMs })
    }
  }

  /** The avatar stops at `at` (the server read the interrupt then): every utterance not over is cut there. */
  cut(at: number): Cut {
    const speaking = this.tracks.find((t) => (t.placedStart ?? Number.POSITIVE_INFINITY) <= at && at < (t.placedEnd ?? 0))
    const first = speaking ?? this.tracks.find((t) => t.outcome === undefined)
    let unplayed = 0
    let playedOfFirst = 0
    for (const track of this.tracks) {
      const played = track.playedBy(at)
      if (track === first) playedOfFirst = played
      if (first !== undefined && this.tracks.indexOf(track) >= this.tracks.indexOf(first)) {
        unplayed += track.durationMs + track.droppedMs - played
      }
      track.finished = true
      track.settle({ interrupted: true, playedMs: played, durationMs: track.durationMs + track.droppedMs })
    }
    this.tracks = []
    this.pending = []
    this.confirmedEnd = at
    return { utterance: first, playedMs: playedOfFirst, unplayedMs: unplayed }
  }

  /** `audio_start` arrived at `at` for the utterance that began playing: the real playout delay. */
  measureStart(at: number): number | undefined {
    const track = this.tracks.find((t) => t.outcome === undefined)
    const start = track?.placedStart
    if (track === undefined || start === undefined) return undefined
    const measured = this.delayMs + (at - start)
    if (measured < 0) return undefined
    this.delayMs = measured
    return measured
  }
}
