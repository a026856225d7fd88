import * as Path from "node:path"
import type * as Clock from "effect/Clock"
import type * as AvatarSimulator from "../../AvatarSimulator.js"
import * as Wav from "./wav.js"

/** @internal An answer to a command, as it left. */
export interface Answer {
  readonly mid: string
  readonly kind: "ack" | "error"
  readonly at: number
}

/**
 * What one connection received. The per-frame path is a few property writes: no fiber, no
 * Effect, no allocation beyond the frame itself, and none at all when audio is not recorded.
 *
 * @internal
 */
export class ConnectionRecord {
  private readonly frames: Array<AvatarSimulator.ChatFrame> = []
  private chatFrames = 0
  private audioBytes = 0
  private readonly mids: Array<string> = []
  private readonly commands: Array<AvatarSimulator.CommandRecord> = []
  private pings = 0
  private invalid = 0
  private open = false
  private closeCode: number | undefined = undefined
  private dropped = false
  private closedAt: number | undefined = undefined
  /** What the simulator answered each command with, and when it left: a few per session, never per frame. */
  private readonly answers: Array<Answer> = []

  constructor(
    readonly id: number,
    readonly instance: number,
    readonly sessionId: string,
    readonly avatarId: string,
    readonly refusedWith: number | undefined,
    /** The audio of the session, shared by its connections; absent when audio is not recorded. */
    private readonly audio: Array<Uint8Array> | undefined,
    /** The session's WAV file, shared by its connections; absent without `saveDir`. */
    private readonly wav: Wav.GrowingWav | undefined,
    /** The simulator's clock, for the times of the connection's edges and answers. */
    private readonly clock: Clock.Clock,
    /** When the upgrade arrived. */
    readonly openedAt: number = clock.unsafeCurrentTimeMillis()
  ) {}

  /** When the connection ended, once it has. */
  get endedAt(): number | undefined {
    return this.closedAt
  }

  /** The answers that have left, in order. */
  get answered(): ReadonlyArray<Answer> {
    return this.answers
  }

  get frameCount(): number {
    return this.chatFrames
  }

  get isOpen(): boolean {
    return this.open
  }

  unsafeChat(mid: string, base64: string, clock: Clock.Clock): void {
    this.chatFrames++
    if (this.audio === undefined && this.wav === undefined) {
      // A load test sends frames for hours: nothing kept here may grow with them.
      this.audioBytes += Buffer.byteLength(base64, "base64")
      return
    }
    const bytes = Buffer.from(base64, "base64")
    this.audioBytes += bytes.byteLength
    this.wav?.unsafeAppend(bytes)
    // the file grows on disk, not here: a load test may save its audio
    if (this.audio === undefined) return
    this.mids.push(mid)
    this.frames.push({ mid, bytes, at: clock.unsafeCurrentTimeMillis() })
    this.audio.push(bytes)
  }

  /** A valid message other than chat. */
  unsafeMessage(mid: string): void {
    this.mids.push(mid)
  }

  unsafeCommand(command: AvatarSimulator.CommandRecord): void {
    this.commands.push(command)
  }

  unsafePing(): void {
    this.pings++
  }

  unsafeInvalid(): void {
    this.invalid++
  }

  unsafeOpened(): void {
    this.open = true
  }

  unsafeDropped(dropped: boolean): void {
    this.dropped = dropped
  }

  /** An answer to the command `mid` has left (an ack, or an error that names it). */
  unsafeAnswered(mid: string, kind: Answer["kind"]): void {
    this.answers.push({ mid, kind, at: this.clock.unsafeCurrentTimeMillis() })
  }

  unsafeClosed(code: number): void {
    this.open = false
    this.closeCode = code
    this.closedAt = this.clock.unsafeCurrentTimeMillis()
    // a reconnect opens it again: a long run does not keep a descriptor per session
    this.wav?.unsafeClose()
  }

  hasMid(mid: string): boolean {
    return this.mids.includes(mid)
  }

  /**
   * The same fields as `snapshot`, over the record's own arrays rather than copies: for the
   * inspector, which reads them a few times a second and changes nothing.
   */
  peek(): AvatarSimulator.SessionRecord {
    return {
      id: this.id,
      instance: this.instance,
      sessionId: this.sessionId,
      avatarId: this.avatarId,
      frames: this.frames,
      frameCount: this.chatFrames,
      audioBytes: this.audioBytes,
      mids: this.mids,
      commands: this.commands,
      pings: this.pings,
      invalid: this.invalid,
      refusedWith: this.refusedWith,
      open: this.open,
      closeCode: this.closeCode,
      dropped: this.dropped
    }
  }

  /** The record as it is now, with copies of its lists (it changes as frames arrive). */
  snapshot(): AvatarSimulator.SessionRecord {
    const now = this.peek()
    return { ...now, frames: now.frames.slice(), mids: now.mids.slice(), commands: now.commands.slice() }
  }
}

/**
 * Everything one simulator received: its connections in order, the audio of each session
 * across its connections, and the discovery requests.
 *
 * @internal
 */
export class Records {
  private counter = 0
  private readonly connections: Array<ConnectionRecord> = []
  private readonly audio = new Map<string, Array<Uint8Array>>()
  private readonly discovery: Array<AvatarSimulator.DiscoveryRequest> = []
  private readonly wavs = new Map<string, Wav.GrowingWav>()

  constructor(
    private readonly recordAudio: boolean,
    /** Where each session's audio is written as a WAV as it arrives, if anywhere. */
    private readonly saveDir: string | undefined,
    private readonly clock: Clock.Clock
  ) {}

  /** Every connection, in order, as it is now. */
  get all(): ReadonlyArray<ConnectionRecord> {
    return this.connections
  }

  unsafeConnection(
    instance: number,
    sessionId: string,
    avatarId: string,
    refusedWith: number | undefined
  ): ConnectionRecord {
    const record = new ConnectionRecord(
      ++this.counter,
      instance,
      sessionId,
      avatarId,
      refusedWith,
      this.recordAudio ? this.chunksOf(sessionId) : undefined,
      this.saveDir === undefined ? undefined : this.wavOf(this.saveDir, sessionId),
      this.clock
    )
    this.connections.push(record)
    return record
  }

  unsafeDiscoveryRequest(request: AvatarSimulator.DiscoveryRequest): void {
    this.discovery.push(request)
  }

  sessions(): Array<AvatarSimulator.SessionRecord> {
    return this.connections.map((c) => c.snapshot())
  }

  audioOf(sessionId: string): Uint8Array {
    const chunks = this.audio.get(sessionId)
    return chunks === undefined ? new Uint8Array(0) : new Uint8Array(Buffer.concat(chunks))
  }

  openConnections(): number {
    return this.connections.filter((c) => c.isOpen).length
  }

  discoveryRequests(): Array<AvatarSimulator.DiscoveryRequest> {
    return this.discovery.slice()
  }

  /** Per session id with a file: its path, and why it stopped growing if it did. */
  savedFiles(): ReadonlyMap<string, { readonly path: string; readonly problem: string | undefined }> {
    return new Map(
      Array.from(this.wavs)
        .filter(([, wav]) => wav.exists)
        .map(([sessionId, wav]) => [sessionId, { path: wav.path, problem: wav.problem }])
    )
  }

  unsafeCloseFiles(): void {
    for (const wav of this.wavs.values()) wav.unsafeClose()
  }

  private wavOf(saveDir: string, sessionId: string): Wav.GrowingWav {
    const known = this.wavs.get(sessionId)
    if (known !== undefined) return known
    const created = new Wav.GrowingWav(Path.join(saveDir, Wav.fileName(sessionId)))
    this.wavs.set(sessionId, created)
    return created
  }

  private chunksOf(sessionId: string): Array<Uint8Array> {
    const chunks = this.audio.get(sessionId)
    if (chunks !== undefined) return chunks
    const created: Array<Uint8Array> = []
    this.audio.set(sessionId, created)
    return created
  }
}
