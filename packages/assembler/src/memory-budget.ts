import { type PieceBufferPool, RecycledBuffers } from '@ddferry/protocol';

/**
 * Bytes of piece data the server holds at once, over all connections: pieces
 * being received (allocated when their header arrives) and pieces waiting to
 * be merged. A connection whose next piece does not fit stops reading its
 * socket until enough is given back, instead of allocating it.
 *
 * | request | when |
 * |---|---|
 * | fits under `cap` | granted at once |
 * | does not fit | queued; granted in arrival order as bytes are given back |
 * | larger than `cap` | granted once nothing else is held (so it never waits forever) |
 *
 * It also keeps the buffers of merged pieces for the next pieces (`keep`,
 * `reuse`: fewer new pages and garbage collections), counted as held: a kept
 * buffer is dropped before any request waits for its room. So the cap bounds
 * the piece memory of all connections together, kept buffers included.
 */

/** Default `--max-memory`: 512 MiB. */
export const DEFAULT_MAX_MEMORY = 512 * 1024 * 1024;

interface Waiter {
  readonly bytes: number;
  readonly grant: () => void;
  cancelled: boolean;
}

export class MemoryBudget implements PieceBufferPool {
  readonly cap: number;
  #used = 0;
  #peak = 0;
  readonly #waiters: Waiter[] = [];
  /** Buffers of merged pieces kept for the next ones (bounded by `cap` through `#used`, where their bytes count). */
  readonly #kept = new RecycledBuffers(Number.MAX_SAFE_INTEGER);

  constructor(cap: number = DEFAULT_MAX_MEMORY) {
    if (!Number.isSafeInteger(cap) || cap <= 0) throw new RangeError(`serve option maxMemory must be a positive integer, not ${String(cap)}`);
    this.cap = cap;
  }

  /** Bytes held now, and the most held at once. */
  get used(): number {
    return this.#used;
  }

  get peak(): number {
    return this.#peak;
  }

  /** Bytes of kept buffers (part of `used`). */
  get kept(): number {
    return this.#kept.bytes;
  }

  /** Requests waiting. */
  get waiting(): number {
    return this.#waiters.filter((w) => !w.cancelled).length;
  }

  /**
   * Take `bytes` now if they fit (and nobody waits before), else queue the
   * request: `grant` is called once they are taken.
   * @returns true when taken now; else a function that cancels the request.
   */
  take(bytes: number, grant: () => void): true | (() => void) {
    if (this.#waiters.length === 0) this.#makeRoom(bytes);
    if (this.#waiters.length === 0 && this.#fits(bytes)) {
      this.#add(bytes);
      return true;
    }
    const w: Waiter = { bytes, grant, cancelled: false };
    this.#waiters.push(w);
    return () => {
      w.cancelled = true;
      this.#wake();
    };
  }

  /**
   * Give back a merged piece's `bytes` and keep its buffer, in one step: a
   * waiting piece that the buffer serves is granted on it (its allocation
   * reuses it) instead of on new memory while the old buffer waits for the
   * collector. Kept only within the cap, as `keep`.
   */
  release(bytes: number, data: Uint8Array): void {
    this.#takeBack(bytes);
    const size = data.buffer.byteLength;
    if (this.#used + size <= this.cap && this.#kept.keep(data)) this.#add(size);
    this.#wake();
  }

  /** Give back bytes taken before. */
  give(bytes: number): void {
    if (bytes === 0) return;
    this.#takeBack(bytes);
    this.#wake();
  }

  /** Count `bytes` taken before as held no more. */
  #takeBack(bytes: number): void {
    if (bytes < 0 || bytes > this.#used) throw new Error(`internal: memory budget: giving ${bytes} of ${this.#used} bytes held`);
    this.#used -= bytes;
  }

  /**
   * Keep the buffer of a merged piece (nothing uses it any more) for a next piece,
   * if it fits under the cap and no request waits; else let it go.
   */
  keep(data: Uint8Array): void {
    const size = data.buffer.byteLength;
    if (this.#waiters.some((w) => !w.cancelled) || this.#used + size > this.cap) return;
    if (this.#kept.keep(data)) this.#add(size);
  }

  /**
   * A kept buffer for `size` bytes (at least that, at most twice), not zeroed, or
   * undefined. Its bytes leave the kept ones: the caller's request holds them.
   */
  reuse(size: number): Uint8Array | undefined {
    const got = this.#kept.reuse(size);
    if (got !== undefined) this.#used -= got.buffer.byteLength;
    return got;
  }

  /** Let kept buffers go, oldest first, until `bytes` fit. */
  #makeRoom(bytes: number): void {
    while (this.#kept.bytes > 0 && !this.#fits(bytes)) this.#used -= this.#kept.dropOldest();
  }

  /** Whether `bytes` fit: under the cap, counting a kept buffer that would serve them as theirs (they reuse it). */
  #fits(bytes: number): boolean {
    return this.#used + bytes - this.#kept.servable(bytes) <= this.cap || this.#used === 0;
  }

  #add(bytes: number): void {
    this.#used += bytes;
    this.#peak = Math.max(this.#peak, this.#used);
  }

  #wake(): void {
    while (this.#waiters.length > 0) {
      const w = this.#waiters[0]!;
      if (w.cancelled) {
        this.#waiters.shift();
        continue;
      }
      this.#makeRoom(w.bytes);
      if (!this.#fits(w.bytes)) return;
      this.#waiters.shift();
      this.#add(w.bytes);
      w.grant();
    }
  }
}
