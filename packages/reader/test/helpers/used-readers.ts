/**
 * `ByteReader`s for the used-space tests: over bytes in memory or over a disk image
 * file, with optional bad ranges (a read touching one gives `null`, as a bad sector
 * does) and a log of what was read.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

import type { Block } from '@ddferry/mapfile';

import type { ByteReader } from '../../src/used/byte-reader.js';
import { mergeBlocks } from '../../src/used/ranges.js';

export interface TestReader extends ByteReader {
  /** Every read asked for, in order. */
  readonly reads: Block[];
}

function touchesBad(bad: readonly Block[], pos: number, size: number): boolean {
  return bad.some((b) => b.pos < pos + size && pos < b.pos + b.size);
}

/** A reader over `bytes`; reads touching `bad` give `null`. */
export function memoryReader(bytes: Uint8Array, sectorSize = 512, bad: readonly Block[] = []): TestReader {
  const reads: Block[] = [];
  return {
    size: bytes.length, sectorSize, reads,
    async read(pos, size) {
      reads.push({ pos, size });
      if (pos < 0 || pos + size > bytes.length) throw new RangeError(`read of ${size} at ${pos} past the end ${bytes.length}`);
      return touchesBad(bad, pos, size) ? null : Uint8Array.from(bytes.subarray(pos, pos + size));
    },
  };
}

/** A reader over the image file `path` (opened for each read); reads touching `bad` give `null`. */
export function fileReader(path: string, sectorSize = 512, bad: readonly Block[] = []): TestReader {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  closeSync(fd);
  const reads: Block[] = [];
  return {
    size, sectorSize, reads,
    async read(pos, n) {
      reads.push({ pos, size: n });
      if (touchesBad(bad, pos, n)) return null;
      const f = openSync(path, 'r');
      try {
        const buf = Buffer.alloc(n);
        return readSync(f, buf, 0, n, pos) === n ? buf : null;
      } finally {
        closeSync(f);
      }
    },
  };
}

/** Bytes of `inner` (any order) not covered by `outer` (sorted and disjoint). */
export function uncovered(inner: readonly Block[], outer: readonly Block[]): Block[] {
  const out: Block[] = [];
  let k = 0;
  for (const b of mergeBlocks(inner)) {
    let at = b.pos;
    const end = b.pos + b.size;
    while (k < outer.length && outer[k]!.pos + outer[k]!.size <= at) ++k;
    for (let j = k; j < outer.length && outer[j]!.pos < end; ++j) {
      const o = outer[j]!;
      if (o.pos > at) out.push({ pos: at, size: o.pos - at });
      at = Math.max(at, o.pos + o.size);
      if (at >= end) break;
    }
    if (at < end) out.push({ pos: at, size: end - at });
  }
  return out;
}

export function total(blocks: readonly Block[]): number {
  return blocks.reduce((n, b) => n + b.size, 0);
}

/** XOR the byte at `at` of `buf` with `mask` (damage for tests). */
export function flip(buf: Uint8Array, at: number, mask: number): void {
  buf[at] = buf[at]! ^ mask;
}
