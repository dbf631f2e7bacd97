import type { PieceBufferPool } from '@ddferry/protocol';

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

/** Buffers smaller than this are not worth keeping. */
const KEEP_MIN_BYTES = 1024 * 1024;

export class MemoryBudget implements PieceBufferPool {
  readonly cap: number;
  #used = 0;
  #peak = 0;
  readonly #waiters: Waiter[] = [];
  /** Buffers of merged pieces kept for the next ones, oldest first; their bytes count in `#used`. */
  readonly #kept: ArrayBuffer[] = [];
  #keptBytes = 0;

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
    return this.#keptBytes;
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

  /** Give back bytes taken before. */
  give(bytes: number): void {
    if (bytes === 0) return;
    if (bytes < 0 || bytes > this.#used) throw new Error(`internal: memory budget: giving ${bytes} of ${this.#used} bytes held`);
    this.#used -= bytes;
    this.#wake();
  }

  /**
   * Keep the buffer of a merged piece (nothing uses it any more) for a next piece,
   * if it fits under the cap and no request waits; else let it go.
   */
  keep(data: Uint8Array): void {
    const buf = data.buffer;
    if (!(buf instanceof ArrayBuffer) || data.byteOffset !== 0 || buf.byteLength < KEEP_MIN_BYTES) return;
    if (this.#waiters.some((w) => !w.cancelled) || this.#used + buf.byteLength > this.cap || this.#kept.includes(buf)) return;
    this.#kept.push(buf);
    this.#keptBytes += buf.byteLength;
    this.#add(buf.byteLength);
  }

  /**
   * A kept buffer for `size` bytes (at least that, at most twice), not zeroed, or
   * undefined. Its bytes leave the kept ones: the caller's request holds them.
   */
  reuse(size: number): Uint8Array | undefined {
    const i = this.#kept.findIndex((b) => b.byteLength >= size && b.byteLength <= 2 * size);
    if (i < 0) return undefined;
    const buf = this.#kept.splice(i, 1)[0]!;
    this.#drop(buf);
    return new Uint8Array(buf, 0, size);
  }

  /** Let kept buffers go, oldest first, until `bytes` fit. */
  #makeRoom(bytes: number): void {
    while (this.#kept.length > 0 && !(this.#used + bytes <= this.cap)) this.#drop(this.#kept.shift()!);
  }

  #drop(buf: ArrayBuffer): void {
    this.#keptBytes -= buf.byteLength;
    this.#used -= buf.byteLength;
  }

  #fits(bytes: number): boolean {
    return this.#used + bytes <= this.cap || this.#used === 0;
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
