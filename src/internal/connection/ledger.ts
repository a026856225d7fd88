/** A ping waiting for its pong: the mark it carried, and who wants to know when it is answered. */
interface PingMark {
  readonly mark: number
  readonly answered: ((at: number) => void) | undefined
}

/**
 * What the server has confirmed. Every ping and command carries the mark taken when it was
 * sent (the data plane's count of frames written); the server answers in order, so its pong or
 * ack confirms everything sent before it.
 */
export class Ledger {
  private highest = 0
  // pongs carry no id, but they come back in the order the pings went out
  private readonly pings: Array<PingMark> = []
  private readonly commands = new Map<string, number>()

  constructor(private readonly mark: () => number) {}

  /** The highest mark confirmed so far. */
  get confirmed(): number {
    return this.highest
  }

  unsafePingSent(answered?: (at: number) => void): void {
    this.pings.push({ mark: this.mark(), answered })
  }

  unsafeCommandSent(mid: string): void {
    this.commands.set(mid, this.mark())
  }

  /** Drops the mark of a command that will not be answered on this connection. */
  unsafeForget(mid: string): void {
    this.commands.delete(mid)
  }

  unsafeAcked(mid: string): void {
    this.confirm(this.commands.get(mid))
    this.commands.delete(mid)
  }

  unsafePong(at: number): void {
    const ping = this.pings.shift()
    if (ping === undefined) return
    this.confirm(ping.mark)
    ping.answered?.(at)
  }

  private confirm(mark: number | undefined): void {
    if (mark !== undefined && mark > this.highest) this.highest = mark
  }
}
