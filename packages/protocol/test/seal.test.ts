import { createHash, hkdfSync } from 'node:crypto';

import { expect } from 'chai';
import fc from 'fast-check';

import { ProtocolError } from '../src/errors.js';
import { deriveRescueKeys, receiptMac, verifyReceiptMac } from '../src/keys.js';
import { MAX_SEQ, resolveLimits } from '../src/limits.js';
import type { Piece } from '../src/piece.js';
import {
  headerHashOf, openSealedPiece, PieceOpener, readSealedHeaderFields, SEALED_PREFIX_BYTES, sealPiece, TAG_BYTES,
} from '../src/seal.js';
import type { SealedPiece } from '../src/seal.js';
import { arbitraryPiece, KEYS, makePiece, OTHER_KEYS, OTHER_RESCUE_ID, PLAN, RESCUE_ID, seal, SECRET } from './helpers.js';

const limits = resolveLimits({ maxFrameBytes: 1000, maxMessageBytes: 8192, maxHeaderBytes: 4096 });
const options = { keys: KEYS, plan: PLAN, limits };

function expectCode(fn: () => unknown, code: string): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as ProtocolError).code).to.equal(code);
    return err as ProtocolError;
  }
  return expect.fail(`expected ${code}`);
}

/** A copy of `header` with the byte at `at` xor `mask`. */
function flip(bytes: Uint8Array, at: number, mask = 0x01): Uint8Array {
  const out = new Uint8Array(bytes);
  out[at] = (out[at] ?? 0) ^ mask;
  return out;
}

function withHeader(s: SealedPiece, header: Uint8Array): SealedPiece {
  return { ...s, header, headerHash: headerHashOf(header) };
}

/** A three-frame piece of chunk 0. */
function threeFrames(seq = 7): { piece: Piece; sealed: SealedPiece } {
  const piece = makePiece(seq, 0, [[0, 1200, '+'], [0, 512, '-'], [0, 1300, '+']]);
  return { piece, sealed: seal(piece, { limits }) };
}

describe('deriveRescueKeys', () => {
  it('is HKDF-SHA256 of the secret with salt ddferry/<rescue id>, as docs/seal.md says', () => {
    const salt = `ddferry/${RESCUE_ID}`;
    const want = (info: string): string => Buffer.from(hkdfSync('sha256', Buffer.from(SECRET), salt, info, 32)).toString('hex');
    expect(Buffer.from(KEYS.sealKey).toString('hex')).to.equal(want('piece-seal v1'));
    expect(Buffer.from(KEYS.receiptKey).toString('hex')).to.equal(want('receipt-mac v1'));
    expect(KEYS.rescueId).to.equal(RESCUE_ID);
  });

  it('gives other keys for another rescue or another secret, and the same from bytes or text', () => {
    expect(Buffer.from(OTHER_KEYS.sealKey).equals(Buffer.from(KEYS.sealKey))).to.equal(false);
    expect(Buffer.from(deriveRescueKeys(`${SECRET}!`, RESCUE_ID).sealKey).equals(Buffer.from(KEYS.sealKey))).to.equal(false);
    expect(Buffer.from(deriveRescueKeys(Buffer.from(SECRET), RESCUE_ID).receiptKey).equals(Buffer.from(KEYS.receiptKey))).to.equal(true);
    expect(() => deriveRescueKeys(SECRET, '')).to.throw(TypeError);
  });

  it('MACs receipts with the receipt key only', () => {
    const mac = receiptMac(KEYS, 'text');
    expect(mac).to.match(/^[0-9a-f]{64}$/);
    expect(verifyReceiptMac(KEYS, 'text', mac)).to.equal(true);
    expect(verifyReceiptMac(KEYS, 'text!', mac)).to.equal(false);
    expect(verifyReceiptMac(OTHER_KEYS, 'text', mac)).to.equal(false);
    expect(verifyReceiptMac(KEYS, 'text', mac.slice(0, 63))).to.equal(false);
  });
});

describe('sealPiece / openSealedPiece', () => {
  it('round-trips any piece, frame by frame, with its header hash', () => {
    fc.assert(fc.property(arbitraryPiece(), fc.integer({ min: 100, max: 3000 }), (piece, frameBytes) => {
      const sealed = sealPiece(piece, KEYS, { limits, frameBytes: Math.min(frameBytes, 1000) });
      expect(sealed.frames).to.have.length(Math.ceil(piece.data.length / Math.min(frameBytes, 1000)));
      expect(sealed.dataSize).to.equal(piece.data.length);
      expect(sealed.headerHash).to.equal(createHash('sha256').update(sealed.header).digest('hex').slice(0, 32));
      const opened = openSealedPiece(sealed, options);
      expect(opened).to.deep.equal({ ...piece, data: opened.data, headerHash: sealed.headerHash });
      expect(Buffer.from(opened.data).equals(Buffer.from(piece.data))).to.equal(true);
    }), { numRuns: 150, seed: 5 });
  });

  it('leaks neither the data, the extents nor the secret: only seq and rescue id are in clear', () => {
    const data = Buffer.from('PARTITION TABLE AND SECRETS '.repeat(40));
    const piece = makePiece(3, 1, [[0, data.length, '+']]);
    const mine: Piece = { ...piece, data, extents: [{ ...piece.extents[0]!, xxh64: 0x1234_5678_9abc_def0n }] };
    const sealed = seal(mine, { limits });
    const all = Buffer.concat([sealed.header, ...sealed.frames.flatMap((f) => [f.ciphertext, f.tag])]);
    expect(all.includes(Buffer.from('PARTITION'))).to.equal(false);
    expect(all.includes(Buffer.from(SECRET))).to.equal(false);
    expect(all.includes(Buffer.from('123456789abcdef0', 'hex'))).to.equal(false);
    expect(all.includes(Buffer.from(KEYS.sealKey))).to.equal(false);
    expect(readSealedHeaderFields(sealed.header)).to.include({ rescueId: RESCUE_ID, seq: 3 });
  });

  it('carries the reader\'s status line sealed, also in a piece without data or statuses, and refuses a bad one', () => {
    const piece: Piece = { ...makePiece(9, 0, [[0, 600, '+']]), mapState: { currentPos: 600, currentStatus: '+', currentPass: 1 } };
    const opened = openSealedPiece(seal(piece, { limits }), options);
    expect(opened.mapState).to.deep.equal({ currentPos: 600, currentStatus: '+', currentPass: 1 });
    const empty: Piece = { ...makePiece(10, 0, []), mapState: { currentPos: 4096, currentStatus: 'F', currentPass: 3 } };
    expect(openSealedPiece(seal(empty, { limits }), options)).to.deep.include({ extents: [], delta: [], mapState: empty.mapState });
    expect(openSealedPiece(seal(makePiece(11, 0, [[0, 10, '+']]), { limits }), options)).to.not.have.property('mapState');
    expectCode(() => sealPiece({ ...piece, mapState: { currentPos: 1, currentStatus: 'x' as never, currentPass: 1 } }, KEYS, { limits }), 'ERR_PROTO_BAD_FIELD');
  });

  it('seals the same piece twice under two salts: two identities', () => {
    const p = makePiece(4, 0, [[0, 100, '+']]);
    expect(seal(p).headerHash).to.not.equal(seal(p).headerHash);
  });

  it('refuses a flipped bit anywhere in the header, its tag or a frame, and a frame tag', () => {
    const { sealed } = threeFrames();
    for (let at = 0; at < sealed.header.length; at++) {
      let code: string | undefined;
      try {
        openSealedPiece(withHeader(sealed, flip(sealed.header, at)), options);
      } catch (err) {
        code = (err as ProtocolError).code;
      }
      // the prefix is checked for layout first; everything else by the tag
      expect(code, `byte ${at}`).to.be.oneOf(['ERR_SEAL_MALFORMED', 'ERR_PIECE_BAD_SEQ', 'ERR_PIECE_WRONG_RESCUE', 'ERR_SEAL_AUTH_FAILED']);
      if (at >= SEALED_PREFIX_BYTES || (at >= 29 && at < 45)) expect(code, `byte ${at}`).to.equal('ERR_SEAL_AUTH_FAILED');
    }
    for (const i of [0, 1, 2]) {
      const f = sealed.frames[i]!;
      for (const [ciphertext, tag] of [[flip(f.ciphertext, 0), f.tag], [flip(f.ciphertext, f.ciphertext.length - 1, 0x80), f.tag], [f.ciphertext, flip(f.tag, 15)]] as const) {
        const frames = sealed.frames.map((g, j) => (j === i ? { ciphertext, tag } : g));
        const err = expectCode(() => openSealedPiece({ ...sealed, frames }, options), 'ERR_SEAL_FRAME_AUTH_FAILED');
        expect(err.seq).to.equal(7);
      }
    }
  });

  it('refuses a truncated seal: header cut anywhere, a tag cut short, a missing last frame', () => {
    const { sealed } = threeFrames();
    for (const n of [0, 4, 20, SEALED_PREFIX_BYTES, sealed.header.length - TAG_BYTES, sealed.header.length - 1]) {
      expectCode(() => openSealedPiece(withHeader(sealed, sealed.header.subarray(0, n)), options), 'ERR_SEAL_MALFORMED');
    }
    const cut = sealed.frames.map((f, i) => (i === 1 ? { ciphertext: f.ciphertext, tag: f.tag.subarray(0, 15) } : f));
    expectCode(() => openSealedPiece({ ...sealed, frames: cut }, options), 'ERR_PIECE_SIZE_MISMATCH');
    expectCode(() => openSealedPiece({ ...sealed, frames: sealed.frames.slice(0, 2) }, options), 'ERR_PIECE_SIZE_MISMATCH');
    const trimmed = sealed.frames.map((f, i) => (i === 2 ? { ciphertext: f.ciphertext.subarray(1), tag: f.tag } : f));
    expectCode(() => openSealedPiece({ ...sealed, frames: trimmed }, options), 'ERR_PIECE_SIZE_MISMATCH');
  });

  it('refuses a piece sealed with the wrong secret', () => {
    const { piece } = threeFrames();
    const wrong = sealPiece(piece, deriveRescueKeys('not the token', RESCUE_ID), { limits });
    expectCode(() => openSealedPiece(wrong, options), 'ERR_SEAL_AUTH_FAILED');
  });

  it('refuses a piece of another rescue, even relabelled as this one', () => {
    const elsewhere = makePiece(7, 0, [[0, 1200, '+']], OTHER_RESCUE_ID);
    const sealed = seal(elsewhere, { limits });
    const err = expectCode(() => openSealedPiece(sealed, options), 'ERR_PIECE_WRONG_RESCUE');
    expect(err.message).to.contain(OTHER_RESCUE_ID);
    const relabelled = new Uint8Array(sealed.header);
    relabelled.set(Buffer.from(RESCUE_ID.replace(/-/g, ''), 'hex'), 5);
    expectCode(() => openSealedPiece(withHeader(sealed, relabelled), options), 'ERR_SEAL_AUTH_FAILED');
  });

  it('refuses a seq rewritten in clear, and seqs above 2^40 before any key is used', () => {
    const { sealed } = threeFrames();
    const at = (seq: bigint): Uint8Array => {
      const h = Buffer.from(sealed.header);
      h.writeBigUInt64BE(seq, 21);
      return h;
    };
    expectCode(() => openSealedPiece(withHeader(sealed, at(8n)), options), 'ERR_SEAL_AUTH_FAILED');
    expect(readSealedHeaderFields(at(BigInt(MAX_SEQ))).seq).to.equal(MAX_SEQ);
    for (const seq of [BigInt(MAX_SEQ) + 1n, 2n ** 53n - 1n, 2n ** 64n - 1n, 0n]) {
      expectCode(() => readSealedHeaderFields(at(seq)), 'ERR_PIECE_BAD_SEQ');
      expectCode(() => openSealedPiece(withHeader(sealed, at(seq)), options), 'ERR_PIECE_BAD_SEQ');
    }
    expectCode(() => seal(makePiece(MAX_SEQ + 1, 0, [[0, 10, '+']])), 'ERR_PIECE_BAD_SEQ');
  });

  it('refuses frames reordered, replayed, or taken from another piece', () => {
    const { sealed } = threeFrames();
    const [f0, f1, f2] = sealed.frames as [SealedPiece['frames'][0], SealedPiece['frames'][0], SealedPiece['frames'][0]];
    expectCode(() => openSealedPiece({ ...sealed, frames: [f1, f0, f2] }, options), 'ERR_SEAL_FRAME_AUTH_FAILED');
    expectCode(() => openSealedPiece({ ...sealed, frames: [f0, f0, f2] }, options), 'ERR_SEAL_FRAME_AUTH_FAILED');
    const same = threeFrames().sealed;
    expectCode(() => openSealedPiece({ ...sealed, frames: [f0, same.frames[1]!, f2] }, options), 'ERR_SEAL_FRAME_AUTH_FAILED');
  });

  it('refuses a piece whose authenticated header breaks the plan, before any frame', () => {
    const p = makePiece(9, 3, [[0, 1000, '+']]);
    const opener = new PieceOpener({ ...options, plan: { ...PLAN, sourceSize: PLAN.sourceSize - 1 } });
    expectCode(() => opener.header(seal(p, { limits }).header), 'ERR_PIECE_OUTSIDE_SOURCE');
    expect(opener.current).to.equal(undefined);
    expectCode(() => openSealedPiece(seal(p, { limits }), { ...options, plan: { ...PLAN, chunks: PLAN.chunks.slice(0, 3) } }), 'ERR_PIECE_UNKNOWN_CHUNK');
  });

  it('opens with its own limits: a header or a frame size just over them is refused', () => {
    const p = makePiece(11, 0, [[0, 2000, '+']]);
    const sealed = seal(p, { limits, frameBytes: 1000 });
    expect(openSealedPiece(sealed, options).seq).to.equal(11);
    expectCode(() => openSealedPiece(sealed, { ...options, limits: resolveLimits({ ...limits, maxFrameBytes: 999 }) }), 'ERR_PROTO_FRAME_TOO_LARGE');
    expectCode(() => openSealedPiece(sealed, { ...options, limits: resolveLimits({ ...limits, maxPieceBytes: 1999 }) }), 'ERR_PROTO_PIECE_TOO_LARGE');
    const ranges = makePiece(12, 0, Array.from({ length: 40 }, () => [1, 10, '+'] as const));
    const at = seal(ranges, { limits: resolveLimits({ ...limits, maxHeaderBytes: 2048 }) });
    expectCode(() => seal(ranges, { limits: resolveLimits({ ...limits, maxHeaderBytes: at.header.length - 1 }) }), 'ERR_PROTO_PIECE_TOO_LARGE');
    expectCode(() => openSealedPiece(at, { ...options, limits: resolveLimits({ ...limits, maxExtentsPerPiece: 39 }) }), 'ERR_PROTO_TOO_MANY');
    expect(openSealedPiece(at, { ...options, limits: resolveLimits({ ...limits, maxExtentsPerPiece: 40 }) }).extents).to.have.length(40);
  });

  it('detects data that does not match its xxh64 even when sealed by a key holder', () => {
    const p = makePiece(13, 0, [[0, 100, '+']]);
    const forged: Piece = { ...p, data: new Uint8Array(p.data).fill(0) };
    expectCode(() => openSealedPiece(seal(forged, { limits }), options), 'ERR_PIECE_CHECKSUM_MISMATCH');
  });

  it('refuses keys of another rescue than the piece or the plan (a bug)', () => {
    expect(() => sealPiece(makePiece(1, 0, [[0, 10, '+']]), OTHER_KEYS)).to.throw(TypeError);
    expect(() => new PieceOpener({ keys: OTHER_KEYS, plan: PLAN })).to.throw(TypeError);
  });
});
