/**
 * Cuts arbitrary byte chunks into frames of exactly `frameBytes` (an even number, so every
 * frame holds whole 16-bit samples). Bytes that do not fill a frame are carried to the next
 * chunk; `flush` hands out the remainder at the end. Synchronous and allocation-light: it
 * runs once per input chunk on the audio path.
 */
export class Framer {
  private carry: Uint8Array | undefined
  private carryLength = 0

  constructor(readonly frameBytes: number) {}

  /** Bytes held back, waiting for more input. */
  get pending(): number {
    return this.carryLength
  }

  push(chunk: Uint8Array, out: Array<Uint8Array>): void {
    const size = this.frameBytes
    let offset = 0
    if (this.carryLength > 0) {
      const carry = this.carry!
      const take = Math.min(size - this.carryLength, chunk.byteLength)
      carry.set(chunk.subarray(0, take), this.carryLength)
      this.carryLength += take
      offset = take
      if (this.carryLength < size) return
      out.push(carry)
      this.carry = undefined
      this.carryLength = 0
    }
    // frames are copied: the caller may reuse its buffer once the chunk is consumed
    while (chunk.byteLength - offset >= size) {
      out.push(chunk.slice(offset, offset + size))
      offset += size
    }
    const rest = chunk.byteLength - offset
    if (rest > 0) {
      this.carry = new Uint8Array(size)
      this.carry.set(chunk.subarray(offset), 0)
      this.carryLength = rest
    }
  }

  /**
   * The whole samples still held (as a last, shorter frame), and whether one stray byte
   * (half a sample) remained.
   */
  flush(): { readonly frame: Uint8Array | undefined; readonly strayByte: boolean } {
    const length = this.carryLength
    const whole = length - (length % 2)
    const frame = whole > 0 ? this.carry!.slice(0, whole) : undefined
    const strayByte = length % 2 === 1
    this.carry = undefined
    this.carryLength = 0
    return { frame, strayByte }
  }
}
