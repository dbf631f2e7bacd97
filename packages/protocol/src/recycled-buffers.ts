/**
 * Buffers of pieces nothing uses any more (merged, stored), kept for the next pieces:
 * reused memory costs a copy, new memory a page fault per page and, later, a garbage
 * collection. The one mechanism behind the collector's, the assembler's memory
 * budget's, the import's and the reader's piece builder's reuse.
 *
 * | call | does |
 * |---|---|
 * | `keep(data)` | keeps `data`'s whole buffer if `data` starts it, it holds at least `minBytes`, it is not kept already and `maxBytes` still has room |
 * | `reuse(size)` | hands out (and forgets) the oldest kept buffer of at least `size` bytes and at most twice that, as a view of `size` bytes, not zeroed |
 * | `servable(size)` | the bytes of the buffer `reuse(size)` would hand out, 0 if none |
 * | `dropOldest()` | lets the oldest kept buffer go (for a caller that needs its room) |
 */
export class RecycledBuffers {
  readonly maxBytes: number;
  readonly minBytes: number;
  /** Oldest first. */
  readonly #kept: ArrayBuffer[] = [];
  #bytes = 0;

  constructor(maxBytes: number, minBytes = 1024 * 1024) {
    this.maxBytes = maxBytes;
    this.minBytes = minBytes;
  }

  /** Bytes kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /** @returns true if `data`'s buffer is kept now. */
  keep(data: Uint8Array): boolean {
    const buf = data.buffer;
    if (!(buf instanceof ArrayBuffer) || data.byteOffset !== 0 || buf.byteLength < this.minBytes) return false;
    if (this.#bytes + buf.byteLength > this.maxBytes || this.#kept.includes(buf)) return false;
    this.#kept.push(buf);
    this.#bytes += buf.byteLength;
    return true;
  }

  /** Bytes of the kept buffer `reuse(size)` would hand out, 0 if none. */
  servable(size: number): number {
    return this.#kept[this.#serving(size)]?.byteLength ?? 0;
  }

  /** A kept buffer for `size` bytes, or undefined. */
  reuse(size: number): Uint8Array | undefined {
    const i = this.#serving(size);
    if (i < 0) return undefined;
    const buf = this.#kept.splice(i, 1)[0]!;
    this.#bytes -= buf.byteLength;
    return new Uint8Array(buf, 0, size);
  }

  /** Index of the oldest kept buffer of `size` to twice `size` bytes, or -1. */
  #serving(size: number): number {
    return this.#kept.findIndex((b) => b.byteLength >= size && b.byteLength <= 2 * size);
  }

  /** @returns the bytes let go, 0 when nothing is kept. */
  dropOldest(): number {
    const buf = this.#kept.shift();
    if (buf === undefined) return 0;
    this.#bytes -= buf.byteLength;
    return buf.byteLength;
  }
}
