import * as Protocol from "../../Protocol.js"

/**
 * What the simulator sends, encoded. One counter per simulator: the service's mids are
 * unique within a session, and ours are unique across the whole simulator.
 *
 * @internal
 */
export class ServerMessages {
  private counter = 0

  nextMid(): string {
    return `sim-${(++this.counter).toString(36)}`
  }

  encode(type: string, pld: object): string {
    return JSON.stringify({ v: Protocol.VERSION, type, mid: this.nextMid(), pld })
  }
}
