import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Bytes of buffers dropped between two minor collections (`droppedBuffers`).
 * Measured on an import of 256 MiB (medians of 3): every 4 MiB 0.48 s and peak
 * RSS 137 MiB; every 1 MiB 0.50 s; every 16 MiB 0.48 s and 149 MiB; never
 * 0.69 s and 159 MiB.
 */
export const SCAVENGE_EVERY_BYTES = 4 * 1024 * 1024;

type Gc = (options?: { readonly type?: 'minor' | 'major'; readonly execution?: 'sync' | 'async' }) => void;

/** V8's collector, undefined until first needed, null where it cannot be had. */
let gc: Gc | null | undefined;
let dropped = 0;
/** Collections run after the I/O callback in progress (`collectAfterCallbacks`). */
let deferred = false;
/** A deferred collection is waiting for its turn. */
let scheduled = false;

/**
 * V8's `gc` function without exposing it: the flag is set for the time of making one
 * new context, then set back, so neither the program nor later contexts see a `gc`.
 */
function collector(): Gc | null {
  if (gc !== undefined) return gc;
  const exposed = typeof (globalThis as { gc?: unknown }).gc === 'function';
  try {
    if (exposed) {
      gc = (globalThis as unknown as { gc: Gc }).gc;
    } else {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as Gc;
    }
  } catch {
    gc = null;
  } finally {
    if (!exposed) setFlagsFromString('--no-expose-gc');
  }
  return gc;
}

function collectNow(): void {
  dropped = 0;
  collector()?.({ type: 'minor' });
}

/**
 * Say that `bytes` of buffers just became garbage (a cipher's outputs copied
 * elsewhere, a socket's chunks parsed, a pipe's chunks copied into a piece).
 * Every `SCAVENGE_EVERY_BYTES` a minor collection runs, so their memory goes
 * back to malloc while its pages are still in the CPU's cache and the process's
 * RSS, and serves the next buffers. Left to itself, V8 collects the young
 * generation by its own objects' size: a 64 KiB Buffer weighs 80 bytes there, so
 * hundreds of MiB of dead buffers pile up between two scavenges, are faulted in,
 * and are handed back to the kernel in bursts (`raiseMallocThresholds` keeps
 * part of them). A minor collection of a young generation of small objects takes
 * tens of microseconds.
 */
export function droppedBuffers(bytes: number): void {
  dropped += bytes;
  if (dropped < SCAVENGE_EVERY_BYTES) return;
  if (!deferred) {
    collectNow();
    return;
  }
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    collectNow();
  });
}

/**
 * From now on, the collection `droppedBuffers` calls for runs once the I/O callback in
 * progress has returned (`setImmediate`), not inside it. For a process whose callbacks
 * hold a large young buffer while they drop others: the assembler holds a socket message
 * of 4 MiB while its frame is deciphered; a collection then moves the message towards the
 * old generation, and the full collections that follow cost more than the minor ones do
 * (LAN of 512 MiB: 54 full collections in the assembler, 13 with this; its CPU time
 * 1.29 → 0.83 s in the same runs).
 */
export function collectAfterCallbacks(): void {
  deferred = true;
}

/**
 * Count `bytes` of buffers that just became garbage, as `droppedBuffers` does, without
 * collecting now: the next `droppedBuffers` collects them. For a caller that still holds
 * a large young buffer, such as a socket message being handled: a buffer that lives
 * through two minor collections is moved to the old generation, where only a full
 * collection frees it (on the assembler, messages of 4 MiB moved there set off 54 full
 * collections in a LAN run of 512 MiB).
 */
export function countDroppedBuffers(bytes: number): void {
  dropped += bytes;
}
