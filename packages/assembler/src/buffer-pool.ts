import { MessageChannel } from 'node:worker_threads';

/**
 * Give a buffer's memory back now, not at a later garbage collection: its memory moves
 * into a message that is never read, and goes with it when the port closes. Nothing may
 * use the buffer (nor a view of it) afterwards; it is empty from here on.
 */
function freeNow(buf: Uint8Array): void {
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(null, [buf.buffer as ArrayBuffer]);
  port1.close();
  port2.close();
}

/**
 * Buffers for whole bundles, used again once their bundle is merged: a fresh
 * large buffer costs a page fault per 4 KiB page and pressure on the garbage
 * collector (external memory), which together cost more CPU than checking the
 * bundle. The pool keeps buffers in use plus free ones within `maxBytes`.
 */
export class BufferPool {
  readonly #maxBytes: number;
  readonly #free: Uint8Array[] = [];
  #freeBytes = 0;
  #inUseBytes = 0;

  /** @param maxBytes most bytes of buffers in use and free together (more are in use only if asked for). */
  constructor(maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new RangeError(`maxBytes must be a positive integer, not ${String(maxBytes)}`);
    this.#maxBytes = maxBytes;
  }

  /** Bytes of the buffers taken and not given back. */
  get inUseBytes(): number {
    return this.#inUseBytes;
  }

  /**
   * A buffer of `size` bytes (its contents are whatever was there: the caller
   * overwrites them), a view of the smallest free one at most twice as large, else new.
   * (At most a quarter larger before: a stick of 8, 16 and 32 MiB bundles had its import
   * allocate 144 MiB of buffers and drop 88, and its peak RSS was 175 MiB.)
   */
  take(size: number): Uint8Array {
    let pick = -1;
    for (let i = 0; i < this.#free.length; ++i) {
      const cap = this.#free[i]!.length;
      if (cap >= size && cap <= 2 * size && (pick < 0 || cap < this.#free[pick]!.length)) pick = i;
    }
    let buf: Uint8Array;
    if (pick >= 0) {
      buf = this.#free.splice(pick, 1)[0]!;
      this.#freeBytes -= buf.length;
    } else {
      buf = new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size);
      this.#trim(size);
    }
    this.#inUseBytes += buf.length;
    return buf.length === size ? buf : buf.subarray(0, size);
  }

  /** Give back a buffer from `take` (or a view of it from its start); nothing may use it afterwards. */
  give(buf: Uint8Array): void {
    const whole = new Uint8Array(buf.buffer, 0, buf.buffer.byteLength);
    this.#inUseBytes -= whole.length;
    this.#free.push(whole);
    this.#freeBytes += whole.length;
    this.#trim(0);
  }

  /** Drop free buffers, oldest first, until `extra` more bytes fit in `maxBytes`; their memory goes at once (`freeNow`). */
  #trim(extra: number): void {
    while (this.#free.length > 0 && this.#inUseBytes + this.#freeBytes + extra > this.#maxBytes) {
      const dropped = this.#free.shift()!;
      this.#freeBytes -= dropped.length;
      freeNow(dropped);
    }
  }
}
