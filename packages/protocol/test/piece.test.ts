import { expect } from 'chai';
import fc from 'fast-check';

import { ProtocolError } from '../src/errors.js';
import { checkPieceShape, validatePiece, verifyPieceData } from '../src/piece.js';
import type { Piece } from '../src/piece.js';
import { arbitraryPiece, makePiece, OTHER_RESCUE_ID, PLAN } from './helpers.js';

function expectCode(fn: () => unknown, code: string, seq?: number): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as ProtocolError).code).to.equal(code);
    if (seq !== undefined) {
      expect((err as ProtocolError).seq).to.equal(seq);
      expect((err as ProtocolError).message).to.contain(`piece ${seq}:`);
    }
    return err as ProtocolError;
  }
  return expect.fail(`expected ${code}`);
}

const good = makePiece(7, 1, [[0, 4096, '+'], [0, 512, '-'], [0, 1024, '+'], [100, 512, '*']]);

describe('validatePiece', () => {
  it('accepts valid pieces', () => {
    validatePiece(good, PLAN);
    fc.assert(fc.property(arbitraryPiece(), (p) => validatePiece(p, PLAN)), { numRuns: 300, seed: 1 });
  });

  it('accepts a piece in the short last chunk, up to the end of the source', () => {
    validatePiece(makePiece(1, 3, [[0, 1000, '+']]), PLAN);
  });

  it('refuses a piece of another rescue', () => {
    expectCode(() => validatePiece({ ...good, rescueId: OTHER_RESCUE_ID }, PLAN), 'ERR_PIECE_WRONG_RESCUE', 7);
  });

  it('refuses a chunk the plan does not have, and bad sequence numbers', () => {
    expectCode(() => validatePiece({ ...good, chunk: 9 }, PLAN), 'ERR_PIECE_UNKNOWN_CHUNK', 7);
    expectCode(() => validatePiece({ ...good, seq: 0 }, PLAN), 'ERR_PIECE_BAD_SEQ');
    expectCode(() => validatePiece({ ...good, seq: 1.5 }, PLAN), 'ERR_PIECE_BAD_SEQ');
    validatePiece({ ...good, seq: 2 ** 40 }, PLAN);
    expectCode(() => validatePiece({ ...good, seq: 2 ** 40 + 1 }, PLAN), 'ERR_PIECE_BAD_SEQ');
    expectCode(() => validatePiece({ ...good, seq: 2 ** 53 - 1 }, PLAN), 'ERR_PIECE_BAD_SEQ');
  });

  it('refuses unsorted, overlapping and empty extents', () => {
    const [a, b] = good.extents;
    if (a === undefined || b === undefined) throw new Error('fixture');
    expectCode(() => validatePiece({ ...good, extents: [b, a] }, PLAN), 'ERR_PIECE_EXTENTS_NOT_SORTED', 7);
    expectCode(() => validatePiece({ ...good, extents: [a, { ...b, pos: a.pos + 1 }] }, PLAN), 'ERR_PIECE_EXTENTS_NOT_SORTED', 7);
    expectCode(() => validatePiece({ ...good, extents: [a, { ...b, size: 0 }] }, PLAN), 'ERR_PIECE_BAD_EXTENT', 7);
    expectCode(() => validatePiece({ ...good, extents: [{ ...a, pos: -1 }] }, PLAN), 'ERR_PIECE_BAD_EXTENT', 7);
  });

  it('refuses extents and delta ranges outside the chunk or the source', () => {
    const outside = makePiece(3, 0, [[(1 << 20) - 512, 1024, '+']]);
    expectCode(() => validatePiece(outside, PLAN), 'ERR_PIECE_EXTENT_OUTSIDE_CHUNK', 3);
    const pastSource = makePiece(4, 3, [[0, 1001, '+']]);
    expectCode(() => validatePiece(pastSource, PLAN), 'ERR_PIECE_OUTSIDE_SOURCE', 4);
    const deltaOutside = makePiece(5, 0, [[(1 << 20) - 512, 1024, '-']]);
    expectCode(() => validatePiece(deltaOutside, PLAN), 'ERR_PIECE_DELTA_OUTSIDE_CHUNK', 5);
  });

  it('refuses data whose length or xxh64 does not match', () => {
    expectCode(() => validatePiece({ ...good, data: good.data.subarray(1) }, PLAN), 'ERR_PIECE_SIZE_MISMATCH', 7);
    const flipped = new Uint8Array(good.data);
    flipped[5000] = (flipped[5000] ?? 0) ^ 1;
    const err = expectCode(() => validatePiece({ ...good, data: flipped }, PLAN), 'ERR_PIECE_CHECKSUM_MISMATCH', 7);
    expect(err.message).to.contain(`extent at ${(1 << 20) + 4096 + 512}`);
  });

  it('detects any flipped bit', () => {
    fc.assert(fc.property(arbitraryPiece().filter((p) => p.data.length > 0), fc.nat(), fc.integer({ min: 0, max: 7 }), (p, at, bit) => {
      const data = new Uint8Array(p.data);
      const i = at % data.length;
      data[i] = (data[i] ?? 0) ^ (1 << bit);
      expectCode(() => verifyPieceData({ ...p, data }), 'ERR_PIECE_CHECKSUM_MISMATCH', p.seq);
    }), { numRuns: 200, seed: 2 });
  });

  it('refuses unsorted, overlapping and invalid delta ranges', () => {
    const [d0, d1] = good.delta;
    if (d0 === undefined || d1 === undefined) throw new Error('fixture');
    const rest = good.delta.slice(2);
    expectCode(() => validatePiece({ ...good, delta: [d1, d0, ...rest] }, PLAN), 'ERR_PIECE_DELTA_NOT_SORTED', 7);
    expectCode(() => validatePiece({ ...good, delta: [d0, { ...d1, pos: d1.pos - 1 }, ...rest] }, PLAN), 'ERR_PIECE_DELTA_NOT_SORTED', 7);
    expectCode(() => validatePiece({ ...good, delta: [d0, { ...d1, status: 'x' as '+' }, ...rest] }, PLAN), 'ERR_PIECE_BAD_DELTA', 7);
  });

  it('refuses an extent not marked + in the delta', () => {
    const p: Piece = { ...good, delta: good.delta.map((d, i) => (i === 2 ? { ...d, status: '-' as const } : d)) };
    expectCode(() => validatePiece(p, PLAN), 'ERR_PIECE_EXTENT_NOT_FINISHED', 7);
    expectCode(() => validatePiece({ ...good, delta: good.delta.slice(1) }, PLAN), 'ERR_PIECE_EXTENT_NOT_FINISHED', 7);
  });

  it('refuses a + delta range without data (nothing marked rescued without its bytes)', () => {
    const p: Piece = { ...good, delta: good.delta.map((d, i) => (i === 1 ? { ...d, status: '+' as const } : d)) };
    expectCode(() => validatePiece(p, PLAN), 'ERR_PIECE_FINISHED_WITHOUT_DATA', 7);
    const extra = { pos: (2 << 20) - 512, size: 512, status: '+' as const };
    expectCode(() => validatePiece({ ...good, delta: [...good.delta, extra] }, PLAN), 'ERR_PIECE_FINISHED_WITHOUT_DATA', 7);
    expectCode(() => validatePiece({ ...good, extents: good.extents.slice(0, 1), data: good.data.subarray(0, 4096) }, PLAN), 'ERR_PIECE_FINISHED_WITHOUT_DATA', 7);
  });

  it('accepts touching extents under one + range, and one extent under touching + ranges', () => {
    const p = makePiece(2, 0, [[0, 512, '+'], [0, 512, '+']]);
    const [e0, e1] = p.extents;
    if (e0 === undefined || e1 === undefined) throw new Error('fixture');
    validatePiece({ ...p, delta: [{ pos: 0, size: 1024, status: '+' }] }, PLAN);
    checkPieceShape(p);
  });

  it('names the file when given', () => {
    const err = expectCode(() => validatePiece({ ...good, chunk: 9 }, PLAN, { file: '/stick/b.tar' }), 'ERR_PIECE_UNKNOWN_CHUNK');
    expect(err.file).to.equal('/stick/b.tar');
    expect(err.message).to.match(/^\/stick\/b\.tar: piece 7: /);
  });
});
