import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/**
 * The size V8's new space (both semi-spaces) is held to in the processes that move
 * data (`capYoungGeneration`). V8 doubles it from 2 MiB each time as many bytes have
 * lived through minor collections as it holds, up to 32 MiB; over a long run every
 * process gets there (the forced minor collections of `droppedBuffers` only hasten it),
 * so a 8 GiB copy kept ~30 MiB more than a 1 GiB one. LAN of 4 GiB, 3 pairs, default
 * vs this: reader peak RSS 161-166 → 144-148 MiB, assembler user CPU 11.4-12.2 →
 * 7.3-8.3 s, wall 18.4-19.2 → 15.8-17.3 s. Held at 2 MiB (never grown), a 1 GiB LAN
 * run was ~10 % slower: the minor collections come too often.
 */
export const YOUNG_GENERATION_CAP_BYTES = 8 * 1024 * 1024;

let capping: { readonly cap: number; readonly observer: PerformanceObserver } | null = null;
let growing = true;

function newSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

/** Let the new space grow (V8's factor 2) while it is under the cap, and stop it there. */
function adjust(cap: number): void {
  const grow = newSpaceBytes() < cap;
  if (grow === growing) return;
  growing = grow;
  setFlagsFromString(`--semi-space-growth-factor=${grow ? 2 : 1}`);
}

/**
 * Hold V8's young generation to `cap` bytes for the rest of the process. Node takes
 * the heap's sizes only at start-up (`--max-semi-space-size`), but V8 reads its growth
 * factor each time it grows the new space: at the cap the factor becomes 1 (no
 * growth), and 2 again should the new space shrink under it (V8 shrinks it when
 * memory is short). The size is looked at after each collection (a `gc` performance
 * observer, called between two callbacks of the event loop); the new space doubles
 * at most once per collection, so it ends at the cap or one doubling over it.
 * Idempotent; a later call with another cap replaces the first.
 */
export function capYoungGeneration(cap = YOUNG_GENERATION_CAP_BYTES): void {
  if (capping?.cap === cap) return;
  capping?.observer.disconnect();
  const observer = new PerformanceObserver(() => adjust(cap));
  observer.observe({ entryTypes: ['gc'] });
  capping = { cap, observer };
  adjust(cap);
}
