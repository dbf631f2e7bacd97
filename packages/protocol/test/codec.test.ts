import { expect } from 'chai';
import fc from 'fast-check';

import type { HeaderBody } from '../src/check-message.js';
import { decodeEnvelope, decodeHeaderBody, encodeEnvelope, encodeHeaderBody, peekMessageType } from '../src/codec.js';
import { ProtocolError } from '../src/errors.js';
import { DEFAULT_LIMITS, MAX_SEQ, pieceRefsPerMessage, resolveLimits } from '../src/limits.js';
import type { Message, StatusMessage, StatusRange } from '../src/messages.js';
import { envelopeSchema, headerBodySchema } from '../src/schema.js';
import { RESCUE_ID } from './helpers.js';

const MAX = Number.MAX_SAFE_INTEGER;
const count = fc.integer({ min: 0, max: MAX });
const seq = fc.integer({ min: 1, max: 2 ** 40 });
const headerHash = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex'));
const pieceRefs = fc.array(fc.record({ seq, headerHash }), { maxLength: 20 });
const uint32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });
const text = fc.string({ maxLength: 40 });
const nonce = fc.uint8Array({ minLength: 16, maxLength: 64 });
const mac = fc.uint8Array({ minLength: 32, maxLength: 32 });
/** Sorted, non-overlapping ranges. */
const ranges = fc.array(fc.tuple(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 2 ** 40 })), { maxLength: 20 }).map((steps) => {
  let pos = 0;
  return steps.map(([gap, size]) => {
    const r = { pos: pos + gap, size };
    pos = r.pos + size;
    return r;
  });
});
const blockStatus = fc.constantFrom('?', '*', '/', '-', '+') as fc.Arbitrary<StatusRange['status']>;

const fingerprint = fc.record({
  size: count, logicalSectorSize: uint32, physicalSectorSize: uint32, model: text, serial: text, wwn: text, kind: text,
});

const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant('hello' as const), protocolVersion: uint32, rescueId: fc.uuid({ version: 4 }), fingerprint, clientNonce: nonce, readerName: text,
    sectorSize: fc.constantFrom(512, 4096), chunkSize: fc.integer({ min: 1, max: 2 ** 20 }) }).map((h) => ({ ...h, chunkSize: h.chunkSize * h.sectorSize })),
  fc.record({ type: fc.constant('challenge' as const), serverNonce: nonce, protocolVersion: uint32 }),
  fc.record({ type: fc.constant('auth' as const), hmac: mac }),
  fc.record({ type: fc.constant('welcome' as const), serverProof: mac, finished: ranges, imageSize: count, maxMergedSeq: fc.integer({ min: 0, max: 2 ** 40 }) }),
  fc.record({ type: fc.constant('query' as const), seqs: fc.array(seq, { maxLength: 20 }) }),
  fc.record({ type: fc.constant('answer' as const), merged: pieceRefs, more: fc.boolean() }),
  fc.record({ type: fc.constant('pieceHeader' as const), sealedHeader: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ type: fc.constant('pieceData' as const), seq, index: fc.integer({ min: 0, max: 2 ** 50 }), sealedFrame: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ type: fc.constant('pieceEnd' as const), seq }),
  fc.record({
    type: fc.constant('receipt' as const), merged: pieceRefs,
    rejected: fc.array(fc.record({ seq, code: text, reason: text, headerHash: fc.oneof(headerHash, fc.constant('')) }), { maxLength: 5 }),
  }),
  fc.record({
    type: fc.constant('status' as const), phase: fc.constantFrom('?', '*', '/', '-', 'F', 'G', '+') as fc.Arbitrary<'?'>, message: text, pass: uint32, pos: count,
    finishedSize: count, nonTriedSize: count, nonTrimmedSize: count, nonScrapedSize: count, badSectorSize: count, readErrors: count,
    currentRate: count, averageRate: count, chunk: uint32, chunkCount: uint32, spoolBytes: count, spoolPieces: count, runTime: count,
    paused: text, pausedText: text, pausedSeconds: count, readingPos: count, readingSize: count, readingSeconds: count,
  }),
  fc.record({ type: fc.constant('error' as const), code: text, message: text, seq: fc.option(seq, { nil: undefined }) }),
);

/** Plain data to compare: Buffers and Uint8Arrays alike. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return Array.from(value);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function expectCode(fn: () => unknown, code: string): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as ProtocolError).code).to.equal(code);
    return err as ProtocolError;
  }
  expect.fail(`expected ${code}`);
}

const statusZero: Omit<StatusMessage, 'type'> = {
  phase: '?', message: '', pass: 0, pos: 0, finishedSize: 0, nonTriedSize: 0, nonTrimmedSize: 0, nonScrapedSize: 0, badSectorSize: 0,
  readErrors: 0, currentRate: 0, averageRate: 0, chunk: 0, chunkCount: 0, spoolBytes: 0, spoolPieces: 0, runTime: 0,
  paused: '', pausedText: '', pausedSeconds: 0, readingPos: 0, readingSize: 0, readingSeconds: 0,
};

/** The envelope object of `msg` (hashes as bytes), to encode without our checks. */
function envelopeFields(msg: Message): Record<string, unknown> {
  const { type, ...rest } = msg as Message & Record<string, unknown>;
  const toBytes = (v: unknown): unknown => (Array.isArray(v) ? v.map((r: { seq: number; headerHash: string }) => ({ seq: r.seq, headerHash: Buffer.from(r.headerHash, 'hex') })) : v);
  return { [type]: { ...rest, ...('merged' in rest ? { merged: toBytes(rest.merged) } : {}) } };
}

/** An envelope built with protobufjs directly, bypassing our checks. */
function raw(body: Record<string, unknown>): Uint8Array {
  const t = envelopeSchema();
  return t.encode(t.fromObject(body)).finish();
}

const hello: Message = {
  type: 'hello', protocolVersion: 2, rescueId: RESCUE_ID, readerName: 'pc-a', clientNonce: new Uint8Array(32), chunkSize: 1 << 20, sectorSize: 512,
  fingerprint: { size: 4e12, logicalSectorSize: 512, physicalSectorSize: 4096, model: 'WDC WD40EFRX', serial: 'WD-1', wwn: '', kind: 'block' },
};

/** The frame fields of a header body whose frames all travel raw. */
function rawFrames<T extends { dataSize: number; frameSize: number; frameCount: number }>(b: T): T & Pick<HeaderBody, 'frameEncodings' | 'frameBytes'> {
  return { ...b, frameEncodings: new Uint8Array(b.frameCount), frameBytes: Array.from({ length: b.frameCount }, (_, i) => Math.min(b.frameSize, b.dataSize - i * b.frameSize)) };
}

describe('encodeEnvelope / decodeEnvelope', () => {
  it('round-trips every message type', () => {
    fc.assert(fc.property(message, (msg) => {
      const decoded = decodeEnvelope(encodeEnvelope(msg));
      expect(plain(decoded)).to.deep.equal(plain(msg));
    }), { numRuns: 2000, seed: 7 });
  });

  it('round-trips any sealed header body', () => {
    const body: fc.Arbitrary<HeaderBody> = fc.record({
      chunk: uint32,
      extents: fc.array(fc.record({ pos: fc.integer({ min: 0, max: 2 ** 50 }), size: fc.integer({ min: 0, max: 2 ** 20 }), xxh64: u64 }), { maxLength: 20 }),
      delta: fc.array(fc.record({ pos: fc.integer({ min: 0, max: 2 ** 50 }), size: fc.integer({ min: 0, max: 2 ** 50 }), status: blockStatus }), { maxLength: 20 }),
      frameSize: fc.integer({ min: 1, max: DEFAULT_LIMITS.maxFrameBytes }),
    }).map((b) => {
      const dataSize = b.extents.reduce((s, e) => s + e.size, 0);
      return rawFrames({ ...b, dataSize, frameCount: Math.ceil(dataSize / b.frameSize) });
    }).filter((b) => b.dataSize <= DEFAULT_LIMITS.maxPieceBytes && b.frameCount <= 4096);
    fc.assert(fc.property(body, fc.integer({ min: 1, max: MAX_SEQ }), (b, seq) => {
      expect(decodeHeaderBody(encodeHeaderBody(b, seq), seq)).to.deep.equal(b);
    }), { numRuns: 500, seed: 9 });
  });

  it('keeps full 64-bit checksums and the largest exact positions in a header body', () => {
    const body = rawFrames({ chunk: 0xffff_ffff, dataSize: 1, delta: [], extents: [{ pos: MAX - 1, size: 1, xxh64: 0xffff_ffff_ffff_ffffn }], frameSize: 1, frameCount: 1 });
    expect(decodeHeaderBody(encodeHeaderBody(body, 7), 7)).to.deep.equal(body);
    expect(decodeEnvelope(encodeEnvelope({ type: 'status', ...statusZero, pos: MAX }))).to.include({ pos: MAX });
  });

  it('refuses an oversize message before decoding it', () => {
    const limits = resolveLimits({ maxMessageBytes: 2048, maxFrameBytes: 1024, maxHeaderBytes: 1024 });
    const garbage = new Uint8Array(2049).fill(0xff);
    const err = expectCode(() => decodeEnvelope(garbage, limits, 'peer-x'), 'ERR_PROTO_MESSAGE_TOO_LARGE');
    expect(err.limit).to.equal(2048);
    expect(err.peer).to.equal('peer-x');
    expect(err.message).to.match(/^peer-x: /);
    expect(() => decodeEnvelope(garbage.subarray(0, 2048), limits)).to.throw(ProtocolError).with.property('code', 'ERR_PROTO_MALFORMED');
  });

  it('refuses to encode a message over maxMessageBytes', () => {
    const limits = resolveLimits({ maxMessageBytes: 2048, maxFrameBytes: 1024, maxHeaderBytes: 1024 });
    const many = { type: 'query' as const, seqs: Array.from({ length: 400 }, (_, i) => 2 ** 40 - i) };
    expectCode(() => encodeEnvelope(many, limits), 'ERR_PROTO_MESSAGE_TOO_LARGE');
  });

  it('reports a truncated message with a code', () => {
    const bytes = encodeEnvelope(hello);
    for (let n = 1; n < bytes.length; n++) {
      expect(() => decodeEnvelope(bytes.subarray(0, n))).to.throw(ProtocolError);
    }
    expectCode(() => decodeEnvelope(bytes.subarray(0, bytes.length - 3)), 'ERR_PROTO_MALFORMED');
  });

  it('never throws anything but a ProtocolError on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      try {
        decodeEnvelope(bytes);
      } catch (err) {
        expect(err).to.be.instanceOf(ProtocolError);
      }
    }), { numRuns: 5000, seed: 11 });
  });

  it('never throws anything but a ProtocolError on mutated valid messages', () => {
    fc.assert(fc.property(message, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (msg, flips) => {
      const bytes = new Uint8Array(encodeEnvelope(msg));
      for (const [at, value] of flips) bytes[at % bytes.length] = value;
      try {
        decodeEnvelope(bytes);
      } catch (err) {
        expect(err).to.be.instanceOf(ProtocolError);
      }
    }), { numRuns: 3000, seed: 13 });
  });

  it('refuses a message with no body, or a body it does not know', () => {
    expectCode(() => decodeEnvelope(new Uint8Array(0)), 'ERR_PROTO_UNKNOWN_MESSAGE');
    // field 15, length-delimited, 2 bytes: a body from a later version
    expectCode(() => decodeEnvelope(new Uint8Array([0x7a, 0x02, 0x08, 0x01])), 'ERR_PROTO_UNKNOWN_MESSAGE');
  });

  it('takes the last of two bodies, as protobuf does for a oneof', () => {
    const a = encodeEnvelope({ type: 'auth', hmac: new Uint8Array(32) });
    const b = encodeEnvelope({ type: 'pieceEnd', seq: 1 });
    expect(decodeEnvelope(Buffer.concat([a, b]))).to.deep.equal({ type: 'pieceEnd', seq: 1 });
  });

  it('refuses uint64 values above 2^53-1 where numbers are exact', () => {
    const err = expectCode(() => decodeEnvelope(raw({ pieceData: { seq: '9007199254740992', index: 0, sealedFrame: new Uint8Array(1) } })), 'ERR_PROTO_NUMBER_TOO_LARGE');
    expect(err.message).to.contain('9007199254740992');
    expectCode(() => decodeEnvelope(raw({ welcome: { serverProof: new Uint8Array(32), imageSize: '18446744073709551615' } })), 'ERR_PROTO_NUMBER_TOO_LARGE');
    expectCode(() => decodeEnvelope(raw({ welcome: { serverProof: new Uint8Array(32), finished: [{ pos: MAX, size: 1 }] } })), 'ERR_PROTO_NUMBER_TOO_LARGE');
    expectCode(() => encodeEnvelope({ type: 'pieceData', seq: 2 ** 53, index: 0, sealedFrame: new Uint8Array(0) }), 'ERR_PROTO_NUMBER_TOO_LARGE');
  });

  it('refuses sequence numbers above 2^40 (MAX_SEQ) and 2^53-1, just at and just over', () => {
    for (const msg of [
      (s: number): Message => ({ type: 'pieceEnd', seq: s }),
      (s: number): Message => ({ type: 'query', seqs: [s] }),
      (s: number): Message => ({ type: 'receipt', merged: [{ seq: s, headerHash: 'ab'.repeat(16) }], rejected: [] }),
      (s: number): Message => ({ type: 'welcome', serverProof: new Uint8Array(32), finished: [], imageSize: 0, maxMergedSeq: s }),
    ]) {
      expect(decodeEnvelope(encodeEnvelope(msg(MAX_SEQ)))).to.deep.include(msg(MAX_SEQ));
      expectCode(() => encodeEnvelope(msg(MAX_SEQ + 1)), 'ERR_PROTO_BAD_FIELD');
      expectCode(() => decodeEnvelope(raw(envelopeFields(msg(MAX_SEQ + 1)))), 'ERR_PROTO_BAD_FIELD');
      expectCode(() => decodeEnvelope(raw(envelopeFields(msg(MAX)))), 'ERR_PROTO_BAD_FIELD');
    }
  });

  it('refuses header hashes that are not 16 bytes', () => {
    expectCode(() => decodeEnvelope(raw({ receipt: { merged: [{ seq: 1, headerHash: new Uint8Array(15) }] } })), 'ERR_PROTO_BAD_FIELD');
    expectCode(() => decodeEnvelope(raw({ answer: { merged: [{ seq: 1 }] } })), 'ERR_PROTO_BAD_FIELD');
    expectCode(() => encodeEnvelope({ type: 'answer', merged: [{ seq: 1, headerHash: 'AB'.repeat(16) }], more: false }), 'ERR_PROTO_BAD_FIELD');
    expect(decodeEnvelope(raw({ receipt: { rejected: [{ seq: 1, code: 'E', reason: 'r' }] } }))).to.deep.equal({
      type: 'receipt', merged: [], rejected: [{ seq: 1, code: 'E', reason: 'r', headerHash: '' }],
    });
  });

  it('refuses a missing fingerprint, a bad rescue id, short nonces and MACs', () => {
    expectCode(() => decodeEnvelope(raw({ hello: { rescueId: RESCUE_ID, clientNonce: new Uint8Array(32) } })), 'ERR_PROTO_MISSING_FIELD');
    expectCode(() => encodeEnvelope({ ...hello, rescueId: 'not-a-uuid' } as Message), 'ERR_PROTO_BAD_RESCUE_ID');
    expectCode(() => encodeEnvelope({ ...hello, rescueId: RESCUE_ID.toUpperCase() } as Message), 'ERR_PROTO_BAD_RESCUE_ID');
    expectCode(() => decodeEnvelope(raw({ challenge: { serverNonce: new Uint8Array(15) } })), 'ERR_PROTO_BAD_NONCE');
    expectCode(() => decodeEnvelope(raw({ challenge: { serverNonce: new Uint8Array(65) } })), 'ERR_PROTO_BAD_NONCE');
    expect(decodeEnvelope(raw({ challenge: { serverNonce: new Uint8Array(16) } }))).to.include({ type: 'challenge' });
    expect(decodeEnvelope(raw({ challenge: { serverNonce: new Uint8Array(64) } }))).to.include({ type: 'challenge' });
    expectCode(() => decodeEnvelope(raw({ auth: { hmac: new Uint8Array(31) } })), 'ERR_PROTO_BAD_FIELD');
    expectCode(() => decodeEnvelope(raw({ auth: {} })), 'ERR_PROTO_BAD_FIELD');
  });

  it('refuses welcome ranges that are unsorted or overlap', () => {
    const welcome = (finished: { pos: number; size: number }[]): Message => ({ type: 'welcome', serverProof: new Uint8Array(32), maxMergedSeq: 0, imageSize: 0, finished });
    expect(decodeEnvelope(encodeEnvelope(welcome([{ pos: 0, size: 5 }, { pos: 5, size: 1 }]))).type).to.equal('welcome');
    expectCode(() => encodeEnvelope(welcome([{ pos: 0, size: 5 }, { pos: 4, size: 1 }])), 'ERR_PROTO_BAD_FIELD');
    expectCode(() => decodeEnvelope(raw({ welcome: { serverProof: new Uint8Array(32), finished: [{ pos: 9, size: 1 }, { pos: 0, size: 1 }] } })), 'ERR_PROTO_BAD_FIELD');
  });

  it('refuses bad statuses and phases', () => {
    const body = rawFrames({ chunk: 0, extents: [], delta: [{ pos: 0, size: 1, status: 'x' as '+' }], dataSize: 0, frameSize: 1, frameCount: 0 });
    expectCode(() => encodeHeaderBody(body, 1), 'ERR_PROTO_BAD_FIELD');
    expectCode(() => decodeEnvelope(raw({ status: { phase: '' } })), 'ERR_PROTO_BAD_FIELD');
    expectCode(() => decodeEnvelope(raw({ pieceEnd: { seq: 0 } })), 'ERR_PROTO_BAD_FIELD');
  });

  it('refuses a header body whose extents do not add up to dataSize, or whose frames do not cover it', () => {
    const body = (dataSize: number, frameSize: number, frameCount: number): Record<string, unknown> => ({ chunk: 0, extents: [{ pos: 0, size: 9, xxh64: 1 }], delta: [], dataSize, frameSize, frameCount });
    const bytes = (b: Record<string, unknown>): Uint8Array => headerBodySchema().encode(headerBodySchema().fromObject(b)).finish();
    // seal version 1 bodies have no frame fields: every frame raw
    const v1 = (b: Uint8Array): HeaderBody => decodeHeaderBody(b, 9, DEFAULT_LIMITS, {}, 1);
    expect(v1(bytes(body(9, 4, 3)))).to.deep.include({ frameCount: 3, frameEncodings: new Uint8Array(3), frameBytes: [4, 4, 1] });
    expectCode(() => decodeHeaderBody(bytes(body(9, 4, 3)), 9), 'ERR_SEAL_MALFORMED');
    const err = expectCode(() => v1(bytes(body(10, 10, 1))), 'ERR_PIECE_SIZE_MISMATCH');
    expect(err.seq).to.equal(9);
    expectCode(() => v1(bytes(body(9, 4, 2))), 'ERR_SEAL_MALFORMED');
    expectCode(() => v1(bytes(body(9, 0, 0))), 'ERR_SEAL_MALFORMED');
    expectCode(() => decodeHeaderBody(new Uint8Array([0x0a, 0x05, 0x01]), 9), 'ERR_SEAL_MALFORMED');
  });

  describe('limits, just at and just over', () => {
    const limits = resolveLimits({
      maxFrameBytes: 1000, maxExtentsPerPiece: 3, maxDeltaRanges: 4, maxStringBytes: 10, maxSeqs: 5, maxFinishedRanges: 2, maxPieceBytes: 5000, maxHeaderBytes: 500,
    });
    const body = (extents: number, delta: number, frameSize = 1000): HeaderBody => rawFrames({
      chunk: 0,
      extents: Array.from({ length: extents }, (_, i) => ({ pos: i * 10, size: 1, xxh64: 0n })),
      delta: Array.from({ length: delta }, (_, i) => ({ pos: i * 10, size: 1, status: '+' as const })),
      dataSize: extents, frameSize, frameCount: extents === 0 ? 0 : 1,
    });

    function both(at: Message, over: Message, code: string): void {
      expect(decodeEnvelope(encodeEnvelope(at, limits), limits).type).to.equal(at.type);
      expectCode(() => encodeEnvelope(over, limits), code);
      expectCode(() => decodeEnvelope(encodeEnvelope(over), limits), code);
    }

    function bothBodies(at: HeaderBody, over: HeaderBody, code: string): void {
      expect(decodeHeaderBody(encodeHeaderBody(at, 1, limits), 1, limits)).to.deep.equal(at);
      expectCode(() => encodeHeaderBody(over, 1, limits), code);
      expectCode(() => decodeHeaderBody(encodeHeaderBody(over, 1), 1, limits), code);
    }

    it('sealed frames (a frame and its 16-byte tag) and sealed headers', () => {
      both({ type: 'pieceData', seq: 1, index: 0, sealedFrame: new Uint8Array(1016) }, { type: 'pieceData', seq: 1, index: 0, sealedFrame: new Uint8Array(1017) }, 'ERR_PROTO_FRAME_TOO_LARGE');
      both({ type: 'pieceHeader', sealedHeader: new Uint8Array(500) }, { type: 'pieceHeader', sealedHeader: new Uint8Array(501) }, 'ERR_PROTO_PIECE_TOO_LARGE');
    });
    it('extents and delta ranges per piece, frame size', () => {
      bothBodies(body(3, 4), body(4, 4), 'ERR_PROTO_TOO_MANY');
      bothBodies(body(3, 4), body(3, 5), 'ERR_PROTO_TOO_MANY');
      const frames = (dataSize: number, frameSize: number): HeaderBody => rawFrames({
        chunk: 0, extents: [{ pos: 0, size: dataSize, xxh64: 0n }], delta: [], dataSize, frameSize, frameCount: Math.ceil(dataSize / frameSize),
      });
      bothBodies(frames(3000, 1000), frames(3000, 1001), 'ERR_PROTO_FRAME_TOO_LARGE');
      expect(decodeHeaderBody(encodeHeaderBody(frames(1000, 4 << 20), 1), 1, limits).frameCount, 'one frame smaller than the limit').to.equal(1);
    });
    it('piece data size', () => {
      const piece = (size: number): HeaderBody => rawFrames({ chunk: 0, delta: [], extents: [{ pos: 0, size, xxh64: 0n }], dataSize: size, frameSize: 1000, frameCount: Math.ceil(size / 1000) });
      bothBodies(piece(5000), piece(5001), 'ERR_PROTO_PIECE_TOO_LARGE');
    });
    it('strings, counted in UTF-8 bytes', () => {
      const error = (message: string): Message => ({ type: 'error', code: 'E', message });
      both(error('é'.repeat(5)), error(`${'é'.repeat(5)}x`), 'ERR_PROTO_STRING_TOO_LONG');
    });
    it('sequence numbers and finished ranges', () => {
      const receipt = (n: number): Message => ({ type: 'receipt', merged: Array.from({ length: n }, (_, i) => ({ seq: i + 1, headerHash: '00'.repeat(16) })), rejected: [] });
      both(receipt(5), receipt(6), 'ERR_PROTO_TOO_MANY');
      const query = (n: number): Message => ({ type: 'query', seqs: Array.from({ length: n }, (_, i) => i + 1) });
      both(query(5), query(6), 'ERR_PROTO_TOO_MANY');
      const welcome = (n: number): Message => ({ type: 'welcome', serverProof: new Uint8Array(32), maxMergedSeq: 0, imageSize: 0, finished: Array.from({ length: n }, (_, i) => ({ pos: i, size: 1 })) });
      both(welcome(2), welcome(3), 'ERR_PROTO_TOO_MANY');
    });
  });
});

describe('resolveLimits', () => {
  it('merges overrides with the defaults and checks them', () => {
    expect(resolveLimits({ maxFrameBytes: 1 << 20 })).to.include({ maxFrameBytes: 1 << 20, maxMessageBytes: DEFAULT_LIMITS.maxMessageBytes });
    expect(() => resolveLimits({ maxFrameBytes: 0 })).to.throw(RangeError);
    expect(() => resolveLimits({ maxFrameBytes: 1.5 })).to.throw(RangeError);
    expect(() => resolveLimits({ minNonceBytes: 65 })).to.throw(RangeError);
    expect(() => resolveLimits({ maxFrameBytes: DEFAULT_LIMITS.maxMessageBytes })).to.throw(RangeError);
    expect(() => resolveLimits({ maxHeaderBytes: DEFAULT_LIMITS.maxMessageBytes - 1023 })).to.throw(RangeError);
    expect(resolveLimits({ maxHeaderBytes: DEFAULT_LIMITS.maxMessageBytes - 1024 }).maxHeaderBytes).to.equal(DEFAULT_LIMITS.maxMessageBytes - 1024);
    expect(resolveLimits({ maxMessageBytes: 32 * 1024, maxFrameBytes: 16 * 1024 }).maxHeaderBytes, 'default: what fits in a message').to.equal(31 * 1024);
  });

  it('fits pieceRefsPerMessage references of the largest seqs in one message', () => {
    for (const l of [DEFAULT_LIMITS, resolveLimits({ maxFrameBytes: 1000, maxMessageBytes: 4096, maxHeaderBytes: 1000 }), resolveLimits({ maxSeqs: 10 })]) {
      const n = pieceRefsPerMessage(l);
      const refs = Array.from({ length: n }, (_, i) => ({ seq: MAX_SEQ - i, headerHash: 'ff'.repeat(16) }));
      expect(encodeEnvelope({ type: 'answer', merged: refs, more: true }, l).length).to.be.at.most(l.maxMessageBytes);
      expect(encodeEnvelope({ type: 'receipt', merged: refs, rejected: [] }, l).length).to.be.at.most(l.maxMessageBytes);
    }
    expect(pieceRefsPerMessage(resolveLimits({ maxSeqs: 10 }))).to.equal(10);
  });

  it('defaults to 4 MiB frames inside 8 MiB messages', () => {
    expect(DEFAULT_LIMITS.maxFrameBytes).to.equal(4 * 1024 * 1024);
    expect(DEFAULT_LIMITS.maxMessageBytes).to.equal(8 * 1024 * 1024);
    expect(Object.isFrozen(DEFAULT_LIMITS)).to.equal(true);
  });
});

describe('peekMessageType', () => {
  it('names the body of an envelope without decoding it', () => {
    expect(peekMessageType(encodeEnvelope(hello))).to.equal('hello');
    expect(peekMessageType(encodeEnvelope({ type: 'auth', hmac: new Uint8Array(32) }))).to.equal('auth');
    const big = encodeEnvelope({ type: 'pieceData', seq: 1, index: 0, sealedFrame: new Uint8Array(300_000) });
    expect(peekMessageType(big)).to.equal('pieceData');
  });

  it('gives undefined for anything but exactly one body field', () => {
    const bytes = encodeEnvelope(hello);
    expect(peekMessageType(new Uint8Array(0))).to.equal(undefined);
    expect(peekMessageType(bytes.subarray(0, bytes.length - 1))).to.equal(undefined);
    expect(peekMessageType(Buffer.concat([bytes, bytes]))).to.equal(undefined);
    expect(peekMessageType(new Uint8Array([0x58, 0x00]))).to.equal(undefined);
    expect(peekMessageType(new Uint8Array([0x08, 0x01]))).to.equal(undefined);
    expect(peekMessageType(new Uint8Array(64).fill(0xff))).to.equal(undefined);
  });
});

describe('handshake messages', () => {
  it('are at most maxHandshakeBytes, sent or received: just at passes, just over is refused', () => {
    const h = (n: number): Message => ({ ...hello, readerName: 'x'.repeat(n) }) as Message;
    const base = encodeEnvelope(h(150)).length;
    const limits = resolveLimits({ maxHandshakeBytes: base + 100 });
    const at = encodeEnvelope(h(250), limits);
    expect(at.length).to.equal(base + 100);
    expect(decodeEnvelope(at, limits).type).to.equal('hello');
    expectCode(() => encodeEnvelope(h(251), limits), 'ERR_PROTO_MESSAGE_TOO_LARGE');
    const over = encodeEnvelope(h(251), DEFAULT_LIMITS);
    expect(expectCode(() => decodeEnvelope(over, limits, 'p'), 'ERR_PROTO_MESSAGE_TOO_LARGE').limit).to.equal(base + 100);
  });

  it('default to 4 KiB', () => {
    expect(DEFAULT_LIMITS.maxHandshakeBytes).to.equal(4096);
  });
});
