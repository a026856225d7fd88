/**
 * The session's model of the avatar's playback: when each utterance is spoken, what has been
 * heard, and when it ends. The server's jitter buffer starts a stretch of speech the playout
 * delay after its first frame arrives and plays on while frames keep arriving before the
 * audio runs out; a frame that comes after that waits out the delay again. A gap in the
 * audio is silence, not speech.
 *
 * Arrival is known only roughly: a frame leaves when the writer hands it to the socket, and
 * the kernel's buffers on a slow link can hold it for seconds. The server's answers (a pong
 * or an ack, which it sends after reading everything written before the ping or command)
 * bound it. So frames are placed twice: provisionally when written (with the link delay
 * last measured), and for good when a confirmation covers them (with the link delay that
 * confirmation shows). Only confirmed frames count as played: a frame that may not have
 * arrived is never reported as heard.
 *
 * Everything here is synchronous: `written` runs once per frame and only appends.
 */

/**
 * Where a frame that arrives at `arrival` plays, after audio that ends at `end`: the server's
 * jitter buffer lets a frame that came while audio still played follow it at once, and holds
 * one that came after the buffer ran dry for the playout delay.
 */
const slot = (end: number, arrival: number, delay: number) => (arrival <= end ? end : arrival + delay)

/** How many `audio_start` measurements of the playout delay its median is taken over. */
const DELAY_SAMPLES = 5

/**
 * The middle value, and for an even count the lower of the two middle ones: a measurement is
 * far more often late (an event held up adds to it) than early, so of two the smaller is kept.
 * `values` is not changed.
 */
const lowerMedian = (values: ReadonlyArray<number>): number =>
  values.slice().sort((a, b) => a - b)[(values.length - 1) >> 1]!

/** What `played` of an utterance says when it completes. */
export interface Played {
  readonly interrupted: boolean
  readonly playedMs: number
  readonly durationMs: number
}

/** One utterance in the avatar's playback. */
export class Track {
  /** Milliseconds of audio written for it (less what a drop may have lost). */
  durationMs = 0
  /** Milliseconds of it dropped by an interrupt before they were written. */
  droppedMs = 0
  /** Every frame it will have has been offered (its producer finished, failed or was cut). */
  finished = false
  /** Frames written but not confirmed yet. */
  inFlight = 0
  /** Its first frame was written: it has a place in the playback. */
  begun = false
  /** Milliseconds of it written to a connection that dropped before confirming them: never counted as heard. */
  lostMs = 0
  /** Frames of it that a drop left unconfirmed would have played until then, had they arrived. */
  doubtfulUntil = Number.NEGATIVE_INFINITY
  /** Its session closed before it was over: it has no outcome. */
  private closed = false
  /** Set once it is over: played to the end, or cut. */
  outcome: Played | undefined = undefined
  /** Confirmed placement: [start, end) pairs in clock time, merged where contiguous. */
  private readonly segments: Array<number> = []

  constructor(
    readonly id: string,
    /** Told once, when the outcome is known. */
    private readonly onOutcome: (track: Track, played: Played) => void,
    /** Told instead, once, when the session ended before its outcome was known. */
    private readonly onClosed: (track: Track) => void
  ) {}

  /** The session ended first: there will be no outcome. */
  close(): void {
    if (this.over) return
    this.closed = true
    this.onClosed(this)
  }

  /** Nothing more will be heard of it: played to the end, cut, or its session closed. */
  get over(): boolean {
    return this.outcome !== undefined || this.closed
  }

  place(start: number, end: number): void {
    const n = this.segments.length
    if (n > 0 && start - this.segments[n - 1]! < 0.001) this.segments[n - 1] = end
    else this.segments.push(start, end)
  }

  /** Milliseconds of confirmed audio that had played by `at`. */
  playedBy(at: number): number {
    let played = 0
    for (let i = 0; i < this.segments.length; i += 2) {
      if (at > this.segments[i]!) played += Math.min(at, this.segments[i + 1]!) - this.segments[i]!
    }
    return played
  }

  /** Whether confirmed audio of it plays at `at`. */
  playsAt(at: number): boolean {
    for (let i = 0; i < this.segments.length; i += 2) {
      if (this.segments[i]! <= at && at < this.segments[i + 1]!) return true
    }
    return false
  }

  /** The moments after `at` where its confirmed audio starts or stops. */
  nextEdge(at: number): number | undefined {
    for (const edge of this.segments) if (edge > at) return edge
    return undefined
  }

  /** Moves its confirmed audio that starts at or after `from` by `delta`: the playout delay was measured again. */
  shift(from: number, delta: number): void {
    const segments = this.segments
    for (let i = 0; i < segments.length; i += 2) {
      if (segments[i]! >= from - 0.001) {
        segments[i] = segments[i]! + delta
        segments[i + 1] = segments[i + 1]! + delta
      }
    }
  }

  /** When its confirmed audio ends; `undefined` when none is placed. */
  get end(): number | undefined {
    return this.segments.length === 0 ? undefined : this.segments[this.segments.length - 1]
  }

  settle(outcome: Played): void {
    if (this.over) return
    this.outcome = outcome
    this.onOutcome(this, outcome)
  }
}

/**
 * The frames written but not yet confirmed, oldest first: a ring of numbers (three per frame:
 * its duration, when it was written, the writer's count once it was) beside a ring of owners.
 * One is added per frame of every session, so an object each (or arrays that confirmations
 * empty and frames grow again) would be garbage on the audio path; the ring only grows, by
 * doubling, to the most frames a session ever had in flight.
 */
class InFlight {
  private owners: Array<Track | undefined> = new Array(32)
  private numbers = new Float64Array(3 * 32)
  private head = 0
  private count = 0
  /** `capacity - 1`: the capacity is a power of two. */
  private wrap = 31

  get size(): number {
    return this.count
  }
  private at(i: number): number {
    return (this.head + i) & this.wrap
  }
  track(i: number): Track {
    return this.owners[this.at(i)]!
  }
  ms(i: number): number {
    return this.numbers[3 * this.at(i)]!
  }
  writtenAt(i: number): number {
    return this.numbers[3 * this.at(i) + 1]!
  }
  index(i: number): number {
    return this.numbers[3 * this.at(i) + 2]!
  }
  push(track: Track, ms: number, writtenAt: number, index: number): void {
    if (this.count > this.wrap) this.grow()
    const slot = (this.head + this.count) & this.wrap
    this.owners[slot] = track
    const n = 3 * slot
    this.numbers[n] = ms
    this.numbers[n + 1] = writtenAt
    this.numbers[n + 2] = index
    this.count++
  }
  /** Forgets the `n` oldest. */
  drop(n: number): void {
    for (let i = 0; i < n; i++) this.owners[this.at(i)] = undefined
    this.head = this.at(n)
    this.count -= n
  }
  clear(): void {
    this.drop(this.count)
    this.head = 0
  }
  private grow(): void {
    const capacity = 2 * (this.wrap + 1)
    const owners = new Array<Track | undefined>(capacity)
    const numbers = new Float64Array(3 * capacity)
    for (let i = 0; i < this.count; i++) {
      const from = this.at(i)
      owners[i] = this.owners[from]
      numbers.set(this.numbers.subarray(3 * from, 3 * from + 3), 3 * i)
    }
    this.owners = owners
    this.numbers = numbers
    this.head = 0
    this.wrap = capacity - 1
  }
}

/**
 * A stretch of speech after silence, as the model expects it: its first frame (the writer's
 * `index`-th), when that frame arrives (as written, then as its confirmation places it), and
 * when the avatar began it by its `audio_start`, once that has come.
 */
interface SegmentStart {
  readonly track: Track
  readonly index: number
  arrival: number
  /**
   * The playout delay its confirmation placed it with (it starts at `arrival + placedWith`);
   * `undefined` until a confirmation has placed it.
   */
  placedWith: number | undefined
  /** When the avatar began the stretch: the `audio_start`'s arrival less its transit. */
  startedAt: number | undefined
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
  measured = false
  /** The last few measurements of the delay, oldest first: their median is the one in use. */
  private readonly delaySamples: Array<number> = []
  /** How much later than written the server read the frames of the last confirmation. */
  private linkMs = 0
  /** Half the shortest round trip seen: how long a confirmation took to come back. */
  private oneWayMs = 0
  private roundTrips = 0
  /** When the server had read the frames of the last confirmation. */
  private lastReadBy = Number.NEGATIVE_INFINITY
  /** The end of the last confirmed frame, in clock time. */
  private confirmedEnd = Number.NEGATIVE_INFINITY
  /** The end of the last written frame, as placed when it was written. */
  private writtenEnd = Number.NEGATIVE_INFINITY
  private readonly pending = new InFlight()
  private starts: Array<SegmentStart> = []
  /** Utterances whose outcome is not known yet, in the order their audio began. */
  private tracks: Array<Track> = []

  constructor(
    delayMs: number,
    /** Each measurement of the playout delay, as it is made (for the histogram). */
    private readonly onSample: (delayMs: number) => void = () => {}
  ) {
    this.delayMs = delayMs
  }

  /**
   * A frame of `track` left, as the writer's `index`-th frame. Returns when the model expects
   * it to start playing: the earliest moment at which this frame can change what is heard.
   */
  written(track: Track, ms: number, index: number, now: number): number {
    if (!track.begun) {
      track.begun = true
      this.tracks.push(track)
    }
    track.durationMs += ms
    track.inFlight++
    const arrival = now + this.linkMs
    const start = slot(this.writtenEnd, arrival, this.delayMs)
    if (start > this.writtenEnd) {
      // kept for `audio_start` events; a server that sends none must not make them pile up
      if (this.starts.length >= 16) this.starts.shift()
      this.starts.push({ track, index, arrival, placedWith: undefined, startedAt: undefined })
    }
    this.writtenEnd = start + ms
    this.pending.push(track, ms, now, index)
    return start
  }

  dropped(track: Track, ms: number): void {
    track.droppedMs += ms
  }

  /**
   * When the server read a message written at `sentAt` whose answer arrived at `answeredAt`:
   * the answer's own transit earlier, by the one-way time heartbeats measured (none before the
   * first). Not half the message's round trip: behind a backlog the server reads it just
   * before it answers, seconds after it was written. With no answer, one way after it left.
   */
  readAt(sentAt: number, answeredAt: number | undefined): number {
    return answeredAt === undefined ? sentAt + this.oneWayMs : Math.max(sentAt, answeredAt - this.oneWayMs)
  }

  /** A round trip was measured (a heartbeat's pong). */
  roundTrip(ms: number): void {
    this.oneWayMs = this.roundTrips === 0 ? ms / 2 : Math.min(this.oneWayMs, ms / 2)
    this.roundTrips++
  }

  /** The server confirmed every frame counted by `mark`: it had read them when it answered at `at`. */
  confirmed(mark: number, at: number): void {
    const pending = this.pending
    let n = 0
    while (n < pending.size && pending.index(n) <= mark) n++
    if (n === 0) return
    // the server had read the batch's last frame by the time it answered: the link held it this long
    const readBy = at - this.oneWayMs
    this.linkMs = Math.max(0, readBy - pending.writtenAt(n - 1))
    // A last frame held a frame's duration longer than the link's one-way time means a backlog:
    // the link is slower than the writer, and the batch trickled in, in order, since the last
    // answer; spread it evenly over that time. Otherwise each frame arrived as soon after it
    // left as the last one did. (The transit itself is no backlog: on a link 41 ms one way, a
    // burst spread over it was placed half a transit early.)
    const backlog = this.linkMs - this.oneWayMs > pending.ms(n - 1)
    const from = Math.max(this.lastReadBy, pending.writtenAt(0))
    this.lastReadBy = readBy
    // the stretches not yet confirmed: the last records, in the order of their first frames
    let next = this.starts.findIndex((s) => s.placedWith === undefined)
    for (let i = 0; i < n; i++) {
      const writtenAt = pending.writtenAt(i)
      const arrival = backlog ? Math.max(writtenAt, from + ((readBy - from) * (i + 1)) / n) : writtenAt + this.linkMs
      if (next >= 0 && this.starts[next]!.index === pending.index(i)) {
        next = this.arrived(next, arrival, arrival > this.confirmedEnd)
      }
      const start = slot(this.confirmedEnd, arrival, this.delayMs)
      this.confirmedEnd = start + pending.ms(i)
      pending.track(i).place(start, this.confirmedEnd)
      pending.track(i).inFlight--
    }
    pending.drop(n)
  }

  /** The connection dropped: frames it had not confirmed may never have arrived, so none of them play. */
  lost(): number {
    const pending = this.pending
    const lost = pending.size
    let end = this.confirmedEnd
    for (let i = 0; i < lost; i++) {
      const track = pending.track(i)
      // not counted as heard, but it may be playing: the utterance is not over before it would end
      end = slot(end, pending.writtenAt(i) + this.linkMs, this.delayMs) + pending.ms(i)
      track.doubtfulUntil = Math.max(track.doubtfulUntil, end)
      track.lostMs += pending.ms(i)
      track.inFlight--
    }
    pending.clear()
    this.writtenEnd = this.confirmedEnd
    // The events of what the dropped connection carried went with it (a server sends them on
    // the connection it has): a record kept would take the first audio_start of the next one.
    this.starts = []
    return lost
  }

  /** The utterance the avatar speaks at `now` by the model (confirmed frames, then those in flight), if any. */
  speakingAt(now: number): Track | undefined {
    for (const track of this.tracks) if (track.playsAt(now)) return track
    const pending = this.pending
    let end = this.confirmedEnd
    for (let i = 0; i < pending.size; i++) {
      const start = slot(end, pending.writtenAt(i) + this.linkMs, this.delayMs)
      end = start + pending.ms(i)
      if (start > now) break
      if (now < end) return pending.track(i)
    }
    return undefined
  }

  /**
   * The next moment after `now` at which the model's answers may change, if any: where a
   * stretch of one utterance's speech starts or stops (not every frame's edge: a timer that
   * fired every frame would cost a wake per frame per session).
   */
  nextChange(now: number): number | undefined {
    let next = Number.POSITIVE_INFINITY
    for (const track of this.tracks) {
      const edge = track.nextEdge(now)
      if (edge !== undefined && edge < next) next = edge
      if (track.doubtfulUntil > now && track.doubtfulUntil < next) next = track.doubtfulUntil
    }
    next = this.nextPendingEdge(now, next)
    return Number.isFinite(next) ? next : undefined
  }

  /** The first edge of the frames in flight, as placed provisionally, after `now` and before `next`. */
  private nextPendingEdge(now: number, next: number): number {
    const pending = this.pending
    let end = this.confirmedEnd
    let owner: Track | undefined
    for (let i = 0; i < pending.size; i++) {
      const start = slot(end, pending.writtenAt(i) + this.linkMs, this.delayMs)
      // a gap, or another utterance: the run before it ends, this one starts
      if ((start > end || pending.track(i) !== owner) && start > now) {
        if (end > now && end < next) next = end
        if (start < next) next = start
      }
      if (start > next) break
      end = start + pending.ms(i)
      owner = pending.track(i)
    }
    return end > now && end < next ? end : next
  }

  /** Utterances over by `now` (finished, all confirmed, the last frame played) complete. */
  settle(now: number): void {
    while (this.tracks.length > 0) {
      const track = this.tracks[0]!
      const end = Math.max(track.end ?? Number.NEGATIVE_INFINITY, track.doubtfulUntil)
      if (!track.finished || track.inFlight > 0 || end > now) return
      this.tracks.shift()
      track.settle({
        interrupted: false,
        playedMs: Math.round(track.durationMs - track.lostMs),
        durationMs: Math.round(track.durationMs)
      })
    }
  }

  /** An utterance that ended with no audio at all is over at once. */
  empty(track: Track): void {
    if (!track.begun) {
      track.settle({ interrupted: false, playedMs: 0, durationMs: track.droppedMs })
    }
  }

  /** The avatar stops at `at` (when the server read the interrupt): every utterance not over is cut there. */
  cut(at: number, waiting: ReadonlyArray<Track>): Cut {
    const all = [...this.tracks, ...waiting.filter((t) => !this.tracks.includes(t) && !t.over)]
    const first = all.find((t) => t.playsAt(at)) ?? all.find((t) => (t.end ?? Number.POSITIVE_INFINITY) > at)
    const from = first === undefined ? all.length : all.indexOf(first)
    let unplayedMs = 0
    let playedMs = 0
    all.forEach((track, i) => {
      // whole milliseconds, the same in the interrupt's answer and in `played`, adding up
      const played = Math.round(track.playedBy(at))
      const durationMs = Math.round(track.durationMs + track.droppedMs)
      if (track === first) playedMs = played
      if (i >= from) unplayedMs += durationMs - played
      track.finished = true
      track.settle({ interrupted: played < durationMs, playedMs: played, durationMs })
    })
    for (let i = 0; i < this.pending.size; i++) this.pending.track(i).inFlight--
    this.tracks = []
    this.pending.clear()
    this.starts = []
    this.confirmedEnd = at
    this.writtenEnd = at
    return { utterance: first, playedMs, unplayedMs }
  }

  /**
   * `audio_start` arrived at `at`: the avatar began a stretch of speech. Returns the
   * utterance it belongs to. The playout delay is measured from it against the arrival of the
   * stretch's first frame as its confirmation places it (now, or when that confirmation comes):
   * placed and measured on the same estimate of the link, the two errors cancel.
   */
  started(at: number): Track | undefined {
    // A stretch whose utterance is over by the model got no audio_start (a server that sends
    // none, or fewer than the model expects): it takes no later one.
    this.starts = this.starts.filter((s) => !s.track.over)
    const start = this.starts.find((s) => s.startedAt === undefined)
    if (start === undefined) return this.speakingAt(at)
    // the event took the one-way time to come (none before a heartbeat has measured it)
    start.startedAt = at - this.oneWayMs
    const placedWith = start.placedWith
    if (placedWith !== undefined && this.measure(start)) {
      // its frames (and what followed them) were placed with the delay in use then: they move
      // to where the one measured now puts them, so the first stretch too is where the avatar is
      const delta = this.delayMs - placedWith
      if (delta !== 0) this.shift(start.arrival + placedWith, delta)
    }
    return start.track
  }

  /** Everything confirmed that was placed to start at or after `from` moves by `delta`. */
  private shift(from: number, delta: number): void {
    for (const track of this.tracks) track.shift(from, delta)
    for (const start of this.starts) {
      if (start.placedWith !== undefined && start.arrival + start.placedWith >= from - 0.001) start.placedWith += delta
    }
    if (this.confirmedEnd >= from) this.confirmedEnd += delta
    if (this.writtenEnd >= from) this.writtenEnd += delta
  }

  /**
   * The confirmation places the first frame of `starts[at]` at `arrival`, where it `begins`
   * a stretch or follows audio still playing. Returns where the next record not yet confirmed
   * is, or -1.
   */
  private arrived(at: number, arrival: number, begins: boolean): number {
    const start = this.starts[at]!
    start.arrival = arrival
    if (start.startedAt !== undefined) this.measure(start)
    else if (!begins) {
      // by what the server read, no stretch begins here: the model expects no audio_start for it
      this.starts.splice(at, 1)
    } else {
      start.placedWith = this.delayMs
      at++
    }
    return at < this.starts.length ? at : -1
  }

  /**
   * A stretch's first frame is placed and its `audio_start` has come: the delay between them.
   * Returns whether it measured one (an event before the frame's arrival measures nothing).
   */
  private measure(start: SegmentStart): boolean {
    this.starts.splice(this.starts.indexOf(start), 1)
    const measured = (start.startedAt as number) - start.arrival
    if (measured < 0) return false
    this.onSample(measured)
    // One measurement carries whatever held either end's event loop (tens of ms on a loaded
    // machine, in either direction through the arrival estimate): the median of the last few
    // follows a real change within three, and ignores one late measurement from the second on
    // and one early one from the third.
    const samples = this.delaySamples
    if (samples.length >= DELAY_SAMPLES) samples.shift()
    samples.push(measured)
    this.delayMs = lowerMedian(samples)
    this.measured = true
    return true
  }
}
