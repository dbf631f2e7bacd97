import { expect } from 'chai';
import fc from 'fast-check';

import { decodeEnvelope, encodeEnvelope } from '../src/codec.js';
import { ProtocolError } from '../src/errors.js';
import { deriveRescueKeys } from '../src/keys.js';
import { resolveLimits } from '../src/limits.js';
import type { Message } from '../src/messages.js';
import { encodePieceData, encodePieceFrames, PieceCollector } from '../src/piece-frames.js';
import type { OpenedPiece, Piece } from '../src/piece.js';
import { FRAME_ROOM_BYTES, sealPiece, TAG_BYTES } from '../src/seal.js';
import { arbitraryPiece, KEYS, makePiece, OTHER_RESCUE_ID, PLAN, RESCUE_ID, seal } from './helpers.js';

type PieceMessage = Extract<Message, { type: 'pieceHeader' | 'pieceData' | 'pieceEnd' }>;

const plan = { ...PLAN, rescueId: RESCUE_ID };
const limits = resolveLimits({ maxFrameBytes: 1000, maxMessageBytes: 4096, maxHeaderBytes: 3000 });

function collector(options: { peer?: string } = {}): PieceCollector {
  return new PieceCollector({ plan, keys: KEYS, limits, ...options });
}

function feed(c: PieceCollector, frames: Iterable<Uint8Array>, within = limits): OpenedPiece[] {
  const out: OpenedPiece[] = [];
  for (const bytes of frames) {
    const piece = c.accept(decodeEnvelope(bytes, within) as PieceMessage);
    if (piece !== undefined) out.push(piece);
  }
  return out;
}

function frames(p: Piece): Uint8Array[] {
  return [...encodePieceFrames(seal(p, { limits }), limits)];
}

function expectCode(fn: () => unknown, code: string): void {
  expect(fn).to.throw(ProtocolError).with.property('code', code);
}

/** `bytes` (an encoded pieceData) with one bit of its sealed frame flipped at `at`. */
function flipFrame(bytes: Uint8Array, at: number): Uint8Array {
  const msg = decodeEnvelope(bytes, limits);
  if (msg.type !== 'pieceData') throw new Error('fixture');
  const sealedFrame = new Uint8Array(msg.sealedFrame);
  sealedFrame[at] = (sealedFrame[at] ?? 0) ^ 0x04;
  return encodeEnvelope({ ...msg, sealedFrame }, limits);
}

describe('encodePieceFrames / PieceCollector', () => {
  it('round-trips sealed pieces through frames of at most maxFrameBytes', () => {
    fc.assert(fc.property(fc.array(arbitraryPiece(), { maxLength: 4 }), (pieces) => {
      const c = collector();
      for (const p of pieces) {
        const sealed = seal(p, { limits });
        const sent = [...encodePieceFrames(sealed, limits)];
        expect(sent.length).to.equal(2 + Math.ceil(p.data.length / 1000));
        const [got] = feed(c, sent);
        expect(got).to.deep.equal({ ...p, data: got?.data, headerHash: sealed.headerHash });
        expect(Buffer.from(got?.data ?? []).equals(Buffer.from(p.data))).to.equal(true);
      }
      expect(c.pending).to.equal(undefined);
    }), { numRuns: 100, seed: 3 });
  });

  it('refuses a flipped bit in a frame, in its tag, or in the header, and takes the next piece afresh', () => {
    const p = makePiece(5, 0, [[0, 2500, '+']]);
    const sent = frames(p);
    for (const [i, at, code] of [[2, 17, 'ERR_SEAL_FRAME_AUTH_FAILED'], [2, 1010, 'ERR_SEAL_FRAME_AUTH_FAILED'], [3, 500, 'ERR_SEAL_FRAME_AUTH_FAILED']] as const) {
      const bad = [...sent];
      bad[i] = flipFrame(bad[i]!, at);
      const c = collector({ peer: 'pc-a' });
      try {
        feed(c, bad);
        expect.fail('expected a throw');
      } catch (err) {
        expect(err).to.be.instanceOf(ProtocolError).with.property('code', code);
        expect(err).to.include({ seq: 5, peer: 'pc-a' });
      }
      expect(c.pending).to.equal(undefined);
      expect(feed(c, frames(p))).to.have.length(1);
    }
    const header = decodeEnvelope(sent[0]!, limits);
    if (header.type !== 'pieceHeader') throw new Error('fixture');
    for (const at of [30, 60, header.sealedHeader.length - 1]) {
      const sealedHeader = new Uint8Array(header.sealedHeader);
      sealedHeader[at] = (sealedHeader[at] ?? 0) ^ 0x01;
      expectCode(() => feed(collector(), [encodeEnvelope({ type: 'pieceHeader', sealedHeader }, limits)]), 'ERR_SEAL_AUTH_FAILED');
    }
  });

  it('refuses frames reordered, replayed, missing, beyond the data, or from another piece', () => {
    const p = makePiece(8, 0, [[0, 2500, '+']]);
    const [h, d0, d1, d2, end] = frames(p);
    if (h === undefined || d0 === undefined || d1 === undefined || d2 === undefined || end === undefined) throw new Error('fixture');
    expectCode(() => feed(collector(), [h, d1]), 'ERR_PROTO_OUT_OF_ORDER');
    expectCode(() => feed(collector(), [d0]), 'ERR_PROTO_OUT_OF_ORDER');
    expectCode(() => feed(collector(), [h, h]), 'ERR_PROTO_OUT_OF_ORDER');
    expectCode(() => feed(collector(), [h, d0, d1, end]), 'ERR_PIECE_SIZE_MISMATCH');
    expectCode(() => feed(collector(), [h, d0, d1, d2, d2]), 'ERR_PROTO_OUT_OF_ORDER');
    // frame 1 sent as frame 0 and frame 0 as frame 1: the index in the AAD and nonce differs
    const as = (bytes: Uint8Array, index: number): Uint8Array => {
      const m = decodeEnvelope(bytes, limits);
      if (m.type !== 'pieceData') throw new Error('fixture');
      return encodeEnvelope({ ...m, index }, limits);
    };
    expectCode(() => feed(collector(), [h, as(d1, 0)]), 'ERR_SEAL_FRAME_AUTH_FAILED');
    expectCode(() => feed(collector(), [h, d0, as(d0, 1)]), 'ERR_SEAL_FRAME_AUTH_FAILED');
    // same seq, same data, another piece (another salt, another key)
    const other = makePiece(8, 0, [[0, 2500, '+']]);
    const [, o0] = frames(other);
    expectCode(() => feed(collector(), [h, o0!]), 'ERR_SEAL_FRAME_AUTH_FAILED');
    const foreign = encodeEnvelope({ type: 'pieceData', seq: 9, index: 0, sealedFrame: new Uint8Array(17) }, limits);
    expectCode(() => feed(collector(), [h, foreign]), 'ERR_PROTO_OUT_OF_ORDER');
    const tooMuch = encodeEnvelope({ type: 'pieceData', seq: 8, index: 3, sealedFrame: new Uint8Array(100) }, limits);
    expectCode(() => feed(collector(), [h, d0, d1, d2, tooMuch]), 'ERR_PIECE_SIZE_MISMATCH');
    const short = encodeEnvelope({ type: 'pieceData', seq: 8, index: 0, sealedFrame: new Uint8Array(999) }, limits);
    expectCode(() => feed(collector(), [h, short]), 'ERR_PIECE_SIZE_MISMATCH');
  });

  it('refuses a piece sealed with another token, or for another rescue', () => {
    const p = makePiece(9, 1, [[0, 100, '+']]);
    const wrong = [...encodePieceFrames(sealPiece(p, deriveRescueKeys('another token', RESCUE_ID), { limits }), limits)];
    expectCode(() => feed(collector(), wrong), 'ERR_SEAL_AUTH_FAILED');
    const elsewhere = makePiece(9, 1, [[0, 100, '+']], OTHER_RESCUE_ID);
    expectCode(() => feed(collector(), [...encodePieceFrames(seal(elsewhere, { limits }), limits)]), 'ERR_PIECE_WRONG_RESCUE');
  });

  it('checks the opened header against the plan before any frame', () => {
    const p = makePiece(9, 3, [[0, 1000, '+']]);
    const smaller = { ...plan, sourceSize: plan.sourceSize - 1 };
    const c = new PieceCollector({ plan: smaller, keys: KEYS, limits });
    const [h] = frames(p);
    expectCode(() => c.accept(decodeEnvelope(h!, limits) as PieceMessage), 'ERR_PIECE_OUTSIDE_SOURCE');
    expect(c.pending).to.equal(undefined);
  });

  it('sends a piece without data as header and end', () => {
    const p = makePiece(10, 2, [[0, 4096, '-']]);
    const sent = frames(p);
    expect(sent).to.have.length(2);
    expect(feed(collector(), sent)[0]?.delta).to.deep.equal(p.delta);
  });

  it('encodes pieceData byte for byte as encodeEnvelope does, and refuses what it refuses', () => {
    const big = resolveLimits({ maxFrameBytes: 1 << 20, maxMessageBytes: 2 << 20, maxHeaderBytes: 1 << 20 });
    fc.assert(fc.property(
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 40 })),
      fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 16_000, max: 17_000 })),
      (seq, index, size) => {
        const ciphertext = new Uint8Array(size).map((_, i) => (i * 7 + seq) & 0xff);
        const tag = new Uint8Array(16).fill(9);
        const msg: Message = { type: 'pieceData', seq, index, sealedFrame: Buffer.concat([ciphertext, tag]) };
        let want: Uint8Array | Error;
        try {
          want = encodeEnvelope(msg, big);
        } catch (err) {
          want = err as Error;
        }
        let got: Uint8Array | Error;
        try {
          got = encodePieceData(seq, index, { ciphertext, tag }, big);
        } catch (err) {
          got = err as Error;
        }
        if (want instanceof Error) {
          expect(got).to.be.instanceOf(ProtocolError);
          expect((got as ProtocolError).code).to.equal((want as ProtocolError).code);
        } else {
          expect(Buffer.from(got as Uint8Array).equals(Buffer.from(want))).to.equal(true);
        }
      },
    ), { numRuns: 300 });
    expect(() => encodePieceData(1, 0, { ciphertext: new Uint8Array(1001), tag: new Uint8Array(16) }, limits)).to.throw(ProtocolError).with.property('code', 'ERR_PROTO_FRAME_TOO_LARGE');
    expect(encodePieceData(1, 0, { ciphertext: new Uint8Array(1000), tag: new Uint8Array(16) }, limits)).to.have.length.above(1016);
  });

  it('seals each frame after FRAME_ROOM_BYTES of room (zeros) and before its tag, in one block', () => {
    const wide = resolveLimits({ maxFrameBytes: 4096, maxMessageBytes: 16_384, maxHeaderBytes: 8192 });
    const p = makePiece(1, 0, [[0, 3 * 4096 + 100, '+']]);
    const sealed = sealPiece(p, KEYS, { limits: wide });
    expect(sealed.frames).to.have.length(4);
    const block = sealed.frames[0]!.ciphertext.buffer;
    let at = sealed.frames[0]!.ciphertext.byteOffset - FRAME_ROOM_BYTES;
    for (const f of sealed.frames) {
      expect(f.ciphertext.buffer).to.equal(block);
      expect(f.tag.buffer).to.equal(block);
      expect([...new Uint8Array(block, at, FRAME_ROOM_BYTES)].every((b) => b === 0)).to.equal(true);
      expect(f.ciphertext.byteOffset).to.equal(at + FRAME_ROOM_BYTES);
      expect(f.tag.byteOffset).to.equal(f.ciphertext.byteOffset + f.ciphertext.length);
      at = f.tag.byteOffset + TAG_BYTES;
    }
    expect(feed(new PieceCollector({ plan, keys: KEYS, limits: wide }), encodePieceFrames(sealed, wide), wide)[0]?.data).to.deep.equal(p.data);
  });

  it('with inPlace, writes a pieceData prefix into the room before the frame and gives a view of the block: the same bytes, nothing else changed', () => {
    const wide = resolveLimits({ maxFrameBytes: 4096, maxMessageBytes: 16_384, maxHeaderBytes: 8192 });
    for (const seq of [1, 300, 2 ** 40]) {
      const p = makePiece(seq, 1, [[512, 2 * 4096 + 7, '+']]);
      const sealed = sealPiece(p, KEYS, { limits: wide });
      const copies = [...encodePieceFrames(sealed, wide)];
      const block = new Uint8Array(sealed.frames[0]!.ciphertext.buffer);
      const before = Buffer.from(block);
      const views = [...encodePieceFrames(sealed, wide, undefined, { inPlace: true })];
      expect(views.map((v) => Buffer.from(v).toString('hex'))).to.deep.equal(copies.map((c) => Buffer.from(c).toString('hex')));
      const changed: number[] = [];
      for (let i = 0; i < block.length; ++i) if (block[i] !== before[i]) changed.push(i);
      sealed.frames.forEach((f, i) => {
        const v = views[i + 1]!;
        expect(v.buffer, `frame ${i} is a view of the block`).to.equal(block.buffer);
        expect(v.byteOffset + v.length).to.equal(f.tag.byteOffset + TAG_BYTES);
        expect(f.ciphertext.byteOffset - v.byteOffset).to.be.at.most(FRAME_ROOM_BYTES);
      });
      // only room bytes changed: the ciphertexts and tags are as sealed
      for (const i of changed) expect(sealed.frames.some((f) => i >= f.ciphertext.byteOffset - FRAME_ROOM_BYTES && i < f.ciphertext.byteOffset), `byte ${i}`).to.equal(true);
      expect(feed(new PieceCollector({ plan, keys: KEYS, limits: wide }), views, wide)[0]?.data).to.deep.equal(p.data);
    }
  });

  it('with inPlace, copies a frame without room before it, or whose tag does not follow it', () => {
    const ciphertext = new Uint8Array(100).fill(3);
    const tag = new Uint8Array(16).fill(4);
    const noRoom = new Uint8Array(116);
    noRoom.set(ciphertext);
    noRoom.set(tag, 100);
    const cases = [
      { ciphertext: noRoom.subarray(0, 100), tag: noRoom.subarray(100) }, // no room
      { ciphertext: new Uint8Array(200).subarray(64, 164), tag }, // room, tag elsewhere
      (() => {
        const b = new Uint8Array(200);
        return { ciphertext: b.subarray(64, 164), tag: b.subarray(170, 186) }; // tag not right after
      })(),
    ];
    for (const frame of cases) {
      const before = Buffer.from(frame.ciphertext.buffer as ArrayBuffer).toString('hex');
      const out = encodePieceData(7, 1, frame, limits, undefined, { inPlace: true });
      expect(out.buffer).to.not.equal(frame.ciphertext.buffer);
      expect(Buffer.from(out).equals(Buffer.from(encodePieceData(7, 1, frame, limits)))).to.equal(true);
      expect(Buffer.from(frame.ciphertext.buffer as ArrayBuffer).toString('hex')).to.equal(before);
    }
  });

  it('reuses the memory of a recycled piece for the next one of about its size, never a small one', () => {
    const wide = resolveLimits({ maxFrameBytes: 256 * 1024, maxMessageBytes: 512 * 1024, maxHeaderBytes: 256 * 1024 });
    const c = new PieceCollector({ plan, keys: KEYS, limits: wide });
    const receive = (p: Piece): Piece => {
      let out: Piece | undefined;
      for (const bytes of encodePieceFrames(seal(p, { limits: wide }), wide)) out = c.accept(decodeEnvelope(bytes, wide) as PieceMessage) ?? out;
      return out!;
    };
    const first = receive(makePiece(1, 0, [[0, 1 << 20, '+']]));
    const buffer = first.data.buffer;
    c.recycle(first.data);
    c.recycle(first.data); // twice: kept once
    const p2 = makePiece(2, 0, [[0, 1 << 20, '+']]);
    const second = receive(p2);
    expect(second.data.buffer).to.equal(buffer);
    expect(Buffer.from(second.data).equals(Buffer.from(p2.data))).to.equal(true);
    const third = receive(makePiece(3, 1, [[0, 1 << 20, '+']]));
    expect(third.data.buffer).to.not.equal(buffer); // given out once only
    const small = receive(makePiece(4, 0, [[0, 4096, '+']]));
    c.recycle(small.data);
    c.recycle(third.data);
    expect(receive(makePiece(5, 0, [[0, 4096, '+']])).data.buffer).to.not.equal(small.data.buffer);
  });
});
