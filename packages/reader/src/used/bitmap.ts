/**
 * Allocation bitmaps read in batches: bit `i` (least significant bit first, as NTFS,
 * exFAT and ext all store them) set means unit `first + i` is used. A batch that cannot
 * be read counts every unit it maps as used.
 */
import type { Scan } from './scan.js';

/** A stretch of bitmap on disk and the units it maps: `bits` bits from byte `pos`, for units `first` on. */
export interface BitmapExtent {
  readonly pos: number;
  readonly first: number;
  readonly bits: number;
}

/**
 * Report runs of used units of `extents` through `onUsed(firstUnit, count)`, in order of
 * the extents. Units of an unreadable batch are reported used.
 */
export async function scanBitmap(scan: Scan, extents: readonly BitmapExtent[], onUsed: (unit: number, count: number) => void): Promise<void> {
  for (const x of extents) {
    const bytes = Math.ceil(x.bits / 8);
    for await (const batch of scan.reader.batches(x.pos, bytes)) {
      const firstBit = (batch.pos - x.pos) * 8;
      const nBits = Math.min(x.bits - firstBit, batch.size * 8);
      if (nBits <= 0) break;
      if (batch.data === null) {
        onUsed(x.first + firstBit, nBits);
        continue;
      }
      forEachRun(batch.data, nBits, (i, n) => onUsed(x.first + firstBit + i, n));
    }
  }
}

/** Call `fn(start, count)` for each run of set bits among the first `nBits` bits of `data`. */
export function forEachRun(data: Uint8Array, nBits: number, fn: (start: number, count: number) => void): void {
  let start = -1;
  const fullBytes = Math.floor(nBits / 8);
  for (let i = 0; i < fullBytes; ++i) {
    const b = data[i]!;
    if (b === 0xff && start >= 0) continue;
    if (b === 0 && start < 0) continue;
    for (let k = 0; k < 8; ++k) {
      const set = (b >> k) & 1;
      const bit = i * 8 + k;
      if (set && start < 0) start = bit;
      else if (!set && start >= 0) {
        fn(start, bit - start);
        start = -1;
      }
    }
  }
  for (let bit = fullBytes * 8; bit < nBits; ++bit) {
    const set = (data[bit >> 3]! >> (bit & 7)) & 1;
    if (set && start < 0) start = bit;
    else if (!set && start >= 0) {
      fn(start, bit - start);
      start = -1;
    }
  }
  if (start >= 0) fn(start, nBits - start);
}

const ONES = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let v = i; v; v >>= 1) n += v & 1;
  return n;
});

/** Number of clear bits among bits `[from, to)` of `data`. */
export function countClear(data: Uint8Array, from: number, to: number): number {
  let n = 0;
  let bit = from;
  for (; bit < to && bit & 7; ++bit) if (!((data[bit >> 3]! >> (bit & 7)) & 1)) n++;
  for (; bit + 8 <= to; bit += 8) n += 8 - ONES[data[bit >> 3]!]!;
  for (; bit < to; ++bit) if (!((data[bit >> 3]! >> (bit & 7)) & 1)) n++;
  return n;
}
