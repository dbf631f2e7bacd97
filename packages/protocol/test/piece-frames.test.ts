import { expect } from 'chai';
import fc from 'fast-check';

import { decodeEnvelope, encodeEnvelope } from '../src/codec.js';
import { ProtocolError } from '../src/errors.js';
import { resolveLimits } from '../src/limits.js';
import type { Message } from '../src/messages.js';
import { encodePieceData, encodePieceFrames, PieceCollector } from '../src/piece-frames.js';
import type { Piece } from '../src/piece.js';
import { arbitraryPiece, makePiece, PLAN, RESCUE_ID } from './helpers.js';

type PieceMessage = Extract<Message, { type: 'pieceHeader' | 'pieceData' | 'pieceEnd' }>;

const plan = { ...PLAN, rescueId: RESCUE_ID };
const limits = resolveLimits({ maxFrameBytes: 1000, maxMessageBytes: 4096 });

function feed(collector: PieceCollector, frames: Iterable<Uint8Array>): Piece[] {
  const out: Piece[] = [];
  for (const bytes of frames) {
    const msg = decodeEnvelope(bytes, limits) as PieceMessage;
    const piece = collector.accept(msg, bytes);
    if (piece !== undefined) out.push(piece);
  }
  return out;
}

function expectCode(fn: () => unknown, code: string): void {
  expect(fn).to.throw(ProtocolError).with.property('code', code);
}

describe('encodePieceFrames / PieceCollector', () => {
  it('round-trips pieces through frames of at most maxFrameBytes', () => {
    fc.assert(fc.property(fc.array(arbitraryPiece(), { maxLength: 4 }), (pieces) => {
      const collector = new PieceCollector({ plan });
      for (const p of pieces) {
        const frames = [...encodePieceFrames(p, limits)];
        expect(frames.length).to.equal(2 + Math.ceil(p.data.length / 1000));
        const [got] = feed(collector, frames);
        expect(got).to.deep.equal({ ...p, data: got?.data });
        expect(Buffer.from(got?.data ?? []).equals(Buffer.from(p.data))).to.equal(true);
      }
      expect(collector.pending).to.equal(undefined);
    }), { numRuns: 100, seed: 3 });
  });

  it('detects a flipped bit in a data frame by xxh64', () => {
    const p = makePiece(5, 0, [[0, 2500, '+']]);
    const frames = [...encodePieceFrames(p, limits)];
    const msg = decodeEnvelope(frames[2] as Uint8Array, limits);
    if (msg.type !== 'pieceData') throw new Error('fixture');
    const data = new Uint8Array(msg.data);
    data[17] = (data[17] ?? 0) ^ 0x04;
    frames[2] = encodeEnvelope({ ...msg, data }, limits);
    const collector = new PieceCollector({ plan, peer: 'pc-a' });
    try {
      feed(collector, frames);
      expect.fail('expected a throw');
    } catch (err) {
      expect(err).to.be.instanceOf(ProtocolError).with.property('code', 'ERR_PIECE_CHECKSUM_MISMATCH');
      expect(err).to.include({ seq: 5, peer: 'pc-a' });
    }
    expect(collector.pending).to.equal(undefined);
    expect(feed(collector, encodePieceFrames(p, limits))).to.have.length(1);
  });

  it('detects a changed header by the checksum in pieceEnd', () => {
    const p = makePiece(6, 0, [[0, 100, '+'], [0, 50, '-']]);
    const frames = [...encodePieceFrames(p, limits)];
    const header = decodeEnvelope(frames[0] as Uint8Array, limits);
    if (header.type !== 'pieceHeader') throw new Error('fixture');
    frames[0] = encodeEnvelope({ ...header, delta: header.delta.map((d) => ({ ...d, status: d.status === '-' ? '/' : d.status })) }, limits);
    expectCode(() => feed(new PieceCollector({ plan }), frames), 'ERR_PROTO_HEADER_CHECKSUM_MISMATCH');
  });

  it('refuses frames out of order, missing, or beyond the data size', () => {
    const p = makePiece(8, 0, [[0, 2500, '+']]);
    const [h, d0, d1, d2, end] = [...encodePieceFrames(p, limits)] as Uint8Array[];
    if (h === undefined || d0 === undefined || d1 === undefined || d2 === undefined || end === undefined) throw new Error('fixture');
    expectCode(() => feed(new PieceCollector({ plan }), [h, d1]), 'ERR_PROTO_OUT_OF_ORDER');
    expectCode(() => feed(new PieceCollector({ plan }), [d0]), 'ERR_PROTO_OUT_OF_ORDER');
    expectCode(() => feed(new PieceCollector({ plan }), [h, h]), 'ERR_PROTO_OUT_OF_ORDER');
    expectCode(() => feed(new PieceCollector({ plan }), [h, d0, d1, end]), 'ERR_PIECE_SIZE_MISMATCH');
    const other = encodeEnvelope({ type: 'pieceData', seq: 9, offset: 0, data: new Uint8Array(1) }, limits);
    expectCode(() => feed(new PieceCollector({ plan }), [h, other]), 'ERR_PROTO_OUT_OF_ORDER');
    const tooMuch = encodeEnvelope({ type: 'pieceData', seq: 8, offset: 2000, data: new Uint8Array(1000) }, limits);
    expectCode(() => feed(new PieceCollector({ plan }), [h, d0, d1, tooMuch]), 'ERR_PIECE_SIZE_MISMATCH');
  });

  it('validates the completed piece against the plan', () => {
    const p = makePiece(9, 3, [[0, 1000, '+']]);
    const smaller = { ...plan, sourceSize: plan.sourceSize - 1 };
    expectCode(() => feed(new PieceCollector({ plan: smaller }), encodePieceFrames(p, limits)), 'ERR_PIECE_OUTSIDE_SOURCE');
  });

  it('sends a piece without data as header and end', () => {
    const p = makePiece(10, 2, [[0, 4096, '-']]);
    const frames = [...encodePieceFrames(p, limits)];
    expect(frames).to.have.length(2);
    expect(feed(new PieceCollector({ plan }), frames)[0]?.delta).to.deep.equal(p.delta);
  });

  it('encodes pieceData byte for byte as encodeEnvelope does, and refuses what it refuses', () => {
    const big = resolveLimits({ maxFrameBytes: 1 << 20, maxMessageBytes: 2 << 20 });
    fc.assert(fc.property(
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 40 })),
      fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 16_000, max: 17_000 })),
      (seq, offset, size) => {
        const data = new Uint8Array(size).map((_, i) => (i * 7 + seq) & 0xff);
        const msg: Message = { type: 'pieceData', seq, offset, data };
        let want: Uint8Array | Error;
        try {
          want = encodeEnvelope(msg, big);
        } catch (err) {
          want = err as Error;
        }
        let got: Uint8Array | Error;
        try {
          got = encodePieceData(seq, offset, data, big);
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
    expect(() => encodePieceData(1, 0, new Uint8Array(1001), limits)).to.throw(ProtocolError).with.property('code', 'ERR_PROTO_FRAME_TOO_LARGE');
  });

  it('reuses the memory of a recycled piece for the next one of about its size, never a small one', () => {
    const wide = resolveLimits({ maxFrameBytes: 256 * 1024, maxMessageBytes: 512 * 1024 });
    const collector = new PieceCollector({ plan });
    const receive = (p: Piece): Piece => {
      let out: Piece | undefined;
      for (const bytes of encodePieceFrames(p, wide)) out = collector.accept(decodeEnvelope(bytes, wide) as PieceMessage, bytes) ?? out;
      return out!;
    };
    const first = receive(makePiece(1, 0, [[0, 1 << 20, '+']]));
    const buffer = first.data.buffer;
    collector.recycle(first.data);
    collector.recycle(first.data); // twice: kept once
    const p2 = makePiece(2, 0, [[0, 1 << 20, '+']]);
    const second = receive(p2);
    expect(second.data.buffer).to.equal(buffer);
    expect(Buffer.from(second.data).equals(Buffer.from(p2.data))).to.equal(true);
    const third = receive(makePiece(3, 1, [[0, 1 << 20, '+']]));
    expect(third.data.buffer).to.not.equal(buffer); // given out once only
    const small = receive(makePiece(4, 0, [[0, 4096, '+']]));
    collector.recycle(small.data);
    collector.recycle(third.data);
    expect(receive(makePiece(5, 0, [[0, 4096, '+']])).data.buffer).to.not.equal(small.data.buffer);
  });
});
