import type { Chunk } from '@ddferry/mapfile';
import fc from 'fast-check';

import { deriveRescueKeys } from '../src/keys.js';
import type { RescueKeys } from '../src/keys.js';
import type { Extent, StatusRange } from '../src/messages.js';
import { makeExtent } from '../src/piece.js';
import type { Piece, PiecePlan } from '../src/piece.js';
import { sealPiece } from '../src/seal.js';
import type { SealedPiece, SealOptions } from '../src/seal.js';

export const RESCUE_ID = '0f3c2a4e-9b1d-4c6e-8a7f-1234567890ab';
export const OTHER_RESCUE_ID = '7d2e9f10-3a4b-4c5d-9e6f-abcdefabcdef';
export const SECRET = 'correct horse battery staple';
/** The test rescue's keys. */
export const KEYS: RescueKeys = deriveRescueKeys(SECRET, RESCUE_ID);
/** The same token, another rescue. */
export const OTHER_KEYS: RescueKeys = deriveRescueKeys(SECRET, OTHER_RESCUE_ID);

/** Seal with the test rescue's keys (or those of the piece's rescue, same token). */
export function seal(piece: Piece, options: SealOptions = {}): SealedPiece {
  return sealPiece(piece, piece.rescueId === RESCUE_ID ? KEYS : deriveRescueKeys(SECRET, piece.rescueId), options);
}

/** Four chunks of 1 MiB; the source ends 1000 bytes into the last. */
export const CHUNKS: readonly Chunk[] = [
  { index: 0, pos: 0, size: 1 << 20 },
  { index: 1, pos: 1 << 20, size: 1 << 20 },
  { index: 2, pos: 2 << 20, size: 1 << 20 },
  { index: 3, pos: 3 << 20, size: 1000 },
];
export const PLAN: PiecePlan = { rescueId: RESCUE_ID, sourceSize: (3 << 20) + 1000, sectorSize: 512, chunks: CHUNKS };

/** `size` pseudo-random bytes (xorshift32, high byte): incompressible, so its frames travel raw. */
export function bytesOf(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size);
  let x = ((seed * 2654435761) ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x >>> 24;
  }
  return b;
}

/**
 * A valid piece in `chunk`: `layout` lists [gap, size, status] steps from the
 * chunk's start; `+` steps carry data, the others only a delta range.
 */
export function makePiece(seq: number, chunk: number, layout: readonly (readonly [number, number, StatusRange['status']])[], rescueId = RESCUE_ID): Piece {
  const c = CHUNKS[chunk];
  if (c === undefined) throw new Error(`no chunk ${chunk}`);
  let pos = c.pos;
  const extents: Extent[] = [];
  const delta: StatusRange[] = [];
  const datas: Uint8Array[] = [];
  for (const [gap, size, status] of layout) {
    pos += gap;
    delta.push({ pos, size, status });
    if (status === '+') {
      const data = bytesOf(size, pos + seq);
      extents.push(makeExtent(pos, data));
      datas.push(data);
    }
    pos += size;
  }
  return { rescueId, seq, chunk, extents, delta, data: Buffer.concat(datas) };
}

/** Arbitrary valid pieces of `PLAN`. */
export function arbitraryPiece(): fc.Arbitrary<Piece> {
  const step = fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 1, max: 5000 }), fc.constantFrom('?', '*', '/', '-', '+', '+') as fc.Arbitrary<StatusRange['status']>);
  return fc.record({
    seq: fc.integer({ min: 1, max: 2 ** 40 }),
    chunk: fc.integer({ min: 0, max: 2 }),
    layout: fc.array(step, { maxLength: 12 }),
  }).map(({ seq, chunk, layout }) => makePiece(seq, chunk, layout));
}

/** Collect an async iterable. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
