/**
 * Cuts arbitrary byte chunks into frames of exactly `frameBytes` (an even number, so every
 * frame holds whole 16-bit samples). Bytes that do not fill a frame are carried to the next
 * chunk; `flush` hands out the remainder at the end.
 *
 * It runs on the audio path, so it copies as little as it can: a frame that lies within one
 * input chunk is a view of that chunk (a chunk of exactly one frame is passed on as it is),
 * and only a frame that spans two chunks is assembled in a buffer of its own. The caller's
 * chunks are therefore read when the frame is written, not when it is cut: they must not be
 * changed after they were handed over (the rule of Node's `stream.write` too).
 *
 * `feed` and `take` cut lazily, one frame at a time, so a producer that hands over a minute
 * of audio in one chunk never has a minute of frames cut ahead of the outbox.
 */
export class Framer {
  private carry: Uint8Array | undefined
  private carryLength = 0
  private input: Uint8Array | undefined
  private offset = 0

  constructor(readonly frameBytes: number) {}

  /** Bytes held back, waiting for more input. */
  get pending(): number {
    return this.carryLength
  }

  /** Bytes fed but not yet cut into frames (including those held back). */
  get unread(): number {
    return this.carryLength + (this.input === undefined ? 0 : this.input.byteLength - this.offset)
  }

  /** Hands over the next chunk; `take` cuts it. The previous chunk must have been used up. */
  feed(chunk: Uint8Array): void {
    this.input = chunk
    this.offset = 0
  }

  /** The next whole frame, or `undefined` once the chunk fed last is used up (its remainder is carried). */
  take(): Uint8Array | undefined {
    const input = this.input
    if (input === undefined) return undefined
    const size = this.frameBytes
    if (this.carryLength > 0) {
      const carry = this.carry!
      const n = Math.min(size - this.carryLength, input.byteLength - this.offset)
      carry.set(input.subarray(this.offset, this.offset + n), this.carryLength)
      this.carryLength += n
      this.offset += n
      if (this.carryLength < size) {
        this.input = undefined
        return undefined
      }
      this.carry = undefined
      this.carryLength = 0
      return carry
    }
    const left = input.byteLength - this.offset
    if (left >= size) {
      const frame = left === size && this.offset === 0 ? input : input.subarray(this.offset, this.offset + size)
      this.offset += size
      return frame
    }
    if (left > 0) {
      this.carry = new Uint8Array(size)
      this.carry.set(input.subarray(this.offset), 0)
      this.carryLength = left
    }
    this.input = undefined
    return undefined
  }

  /** Cuts all of `chunk` at once, appending the frames to `out`. */
  push(chunk: Uint8Array, out: Array<Uint8Array>): void {
    this.feed(chunk)
    for (let frame = this.take(); frame !== undefined; frame = this.take()) out.push(frame)
  }

  /**
   * The whole samples still held (as a last, shorter frame), and whether one stray byte
   * (half a sample) remained.
   */
  flush(): { readonly frame: Uint8Array | undefined; readonly strayByte: boolean } {
    const length = this.carryLength
    const whole = length - (length % 2)
    const frame = whole > 0 ? this.carry!.subarray(0, whole) : undefined
    const strayByte = length % 2 === 1
    this.carry = undefined
    this.carryLength = 0
    return { frame, strayByte }
  }
}
