import * as Effect from "effect/Effect"
import type * as AvatarSimulator from "../../AvatarSimulator.js"
import * as Constants from "../constants.js"
import type * as Connection from "./connection.js"
import * as Faults from "./faults.js"

/**
 * One instance: what discovery reports about it, its faults and what they have used up,
 * and its connections. Only one connection may hold it at a time.
 *
 * @internal
 */
export class Instance {
  readonly avatarId: string
  readonly status: string
  readonly healthy: boolean
  /**
   * Closed while the instance is stalled: every message it sends, and every upgrade it
   * answers, waits on it.
   */
  readonly gate: Effect.Latch
  private listeningOn = 0
  private current: AvatarSimulator.Faults = {}
  private frameFaults = false
  private tooSoonLeft = 0
  private refuseLeft = 0
  private holder: Connection.Connection | undefined = undefined
  /** The connections whose fiber has not ended, in connection order. */
  private readonly live = new Set<Connection.Connection>()

  constructor(
    readonly index: number,
    options: AvatarSimulator.InstanceOptions
  ) {
    this.avatarId = options.avatarId ?? Constants.DEFAULT_AVATAR_ID
    this.status = options.status ?? "available"
    this.healthy = options.healthy ?? true
    this.gate = Effect.unsafeMakeLatch(options.faults?.stall !== true)
    this.use(options.faults ?? {})
  }

  get port(): number {
    return this.listeningOn
  }

  get faults(): AvatarSimulator.Faults {
    return this.current
  }

  /** Whether a chat frame must look at the faults at all. */
  get actsAfterFrames(): boolean {
    return this.frameFaults
  }

  get connections(): Iterable<Connection.Connection> {
    return this.live
  }

  unsafeListening(port: number): void {
    this.listeningOn = port
  }

  /** Replaces the faults and restarts their counts; a stall starts or ends at once. */
  unsafeSetFaults(faults: AvatarSimulator.Faults): void {
    const wasStalled = this.current.stall === true
    this.use(faults)
    const stalled = faults.stall === true
    if (stalled === wasStalled) return
    // Held-back messages are released first; what the sockets read once resumed arrives
    // later (from I/O, or a tick later from their buffers), so it is answered after them.
    // A connection that has not opened yet pauses itself when it opens.
    if (stalled) this.gate.unsafeClose()
    else this.gate.unsafeOpen()
    for (const c of this.live) {
      if (stalled && !c.ending) c.unsafePause()
      else if (!stalled) c.unsafeResume()
    }
  }

  /**
   * The close code a new connection attempt is refused with, if any, using up what the
   * refusal uses up. A bad key comes first and uses nothing.
   */
  unsafeRefusal(keyAccepted: boolean): number | undefined {
    const faults = this.current
    if (faults.rejectKey === true || !keyAccepted) return 4001
    if (this.refuseLeft > 0 && faults.refuseFirst !== undefined) {
      this.refuseLeft--
      return faults.refuseFirst.code
    }
    if (faults.occupied === true || this.holder !== undefined) return 4003
    if (this.tooSoonLeft > 0) {
      this.tooSoonLeft--
      return 4004
    }
    return undefined
  }

  /** A connection starts: accepted ones hold the instance. */
  unsafeAdd(connection: Connection.Connection, accepted: boolean): void {
    this.live.add(connection)
    if (accepted) this.holder = connection
  }

  /** The connection no longer holds the instance: the next session can take it. */
  unsafeRelease(connection: Connection.Connection): void {
    if (this.holder === connection) this.holder = undefined
  }

  /** The connection's fiber has ended. */
  unsafeRemove(connection: Connection.Connection): void {
    this.unsafeRelease(connection)
    this.live.delete(connection)
  }

  private use(faults: AvatarSimulator.Faults): void {
    this.current = faults
    this.frameFaults = Faults.actsAfterFrames(faults)
    this.tooSoonLeft = faults.tooSoon ?? 0
    this.refuseLeft = faults.refuseFirst?.attempts ?? 0
  }
}
