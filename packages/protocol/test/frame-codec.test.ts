import { createCipheriv } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';

import { compress as wasmCompress, init as wasmInit } from '@bokuweb/zstd-wasm';
import { expect } from 'chai';

import { readBundle, readSealedBundle, writeBundle } from '../src/bundle.js';
import { decodeEnvelope } from '../src/codec.js';
import { ProtocolError } from '../src/errors.js';
import {
  checkZstdFrame, encodeFrame, encodeFrameSync, FRAME_RAW, FRAME_ZERO, FRAME_ZSTD, isAllZero, MAX_FRAME_RATIO,
} from '../src/frame-codec.js';
import type { EncodedFrame } from '../src/frame-codec.js';
import { hkdf } from '../src/keys.js';
import { resolveLimits } from '../src/limits.js';
import { encodePieceFrames, PieceCollector } from '../src/piece-frames.js';
import { makeExtent } from '../src/piece.js';
import type { OpenedPiece, Piece } from '../src/piece.js';
import { headerBodySchema } from '../src/schema.js';
import {
  headerHashOf, openSealedPiece, PieceOpener, readSealedHeaderFields, SEALED_PREFIX_BYTES, sealEncoded, sealPiece, sealPieceAsync, TAG_BYTES,
} from '../src/seal.js';
import type { SealedPiece } from '../src/seal.js';
import { zstdCompressSync } from '../src/zstd.js';
import { bytesOf, collect, KEYS, PLAN } from './helpers.js';

await wasmInit();

const FRAME = 64 * 1024;
const limits = resolveLimits({ maxFrameBytes: FRAME, maxMessageBytes: FRAME + 4096, maxHeaderBytes: 3000, maxPieceBytes: 1 << 20 });
const options = { keys: KEYS, plan: PLAN, limits };

/** Text as a used disk has it: compressible, not zeros. */
function textOf(size: number, seed = 1): Uint8Array {
  const words = ['usr', 'lib', 'x86_64', 'linux', 'gnu', 'libc.so.6', 'GLIBC_2.34', 'ELF', 'share', 'doc', 'copyright', 'License', 'GPL'];
  const out = Buffer.alloc(size);
  let at = 0;
  for (let i = seed; at < size; i = (i * 7 + 3) % 1009) at += out.write(`${words[i % words.length]}/${i} `, at);
  return out;
}

/** A piece of chunk 0 holding `data` as one extent at position `pos`. */
function pieceOf(data: Uint8Array, seq = 5, pos = 0): Piece {
  return { rescueId: KEYS.rescueId, seq, chunk: 0, extents: [makeExtent(pos, data)], delta: [{ pos, size: data.length, status: '+' }], data };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ProtocolError);
    return (err as ProtocolError).code;
  }
  return expect.fail('expected a ProtocolError');
}

function encodings(sealed: SealedPiece): number[] {
  const h = new PieceOpener(options).header(sealed.header);
  return [...h.frameEncodings];
}

/** Seal `raw` (one piece, frames of FRAME bytes) with frame i encoded as `frames[i]`. */
function crafted(raw: Uint8Array, frames: readonly EncodedFrame[]): SealedPiece {
  return sealEncoded(pieceOf(raw), KEYS, limits, FRAME, frames);
}

describe('frame encodings', () => {
  describe('encodeFrameSync / encodeFrame', () => {
    it('makes a zero run of zeros, zstd of text, raw of random data', async () => {
      expect(encodeFrameSync(new Uint8Array(FRAME))).to.deep.include({ encoding: FRAME_ZERO });
      expect(encodeFrameSync(new Uint8Array(FRAME)).bytes).to.have.length(0);
      const text = encodeFrameSync(textOf(FRAME));
      expect(text.encoding).to.equal(FRAME_ZSTD);
      expect(text.bytes.length).to.be.below(FRAME / 2);
      const random = bytesOf(FRAME, 3);
      expect(encodeFrameSync(random)).to.deep.equal({ encoding: FRAME_RAW, bytes: random });
      expect((await encodeFrame(textOf(FRAME))).encoding).to.equal(FRAME_ZSTD);
      expect((await encodeFrame(new Uint8Array(FRAME))).encoding).to.equal(FRAME_ZERO);
    });

    it('sends raw a frame that zstd does not shrink by 3 %, and everything raw with compression none', () => {
      // 98 % random, 2 % zeros: zstd saves under 3 %
      const mostly = Buffer.concat([bytesOf(FRAME - 1300, 4), new Uint8Array(1300)]);
      expect(encodeFrameSync(mostly).encoding).to.equal(FRAME_RAW);
      const half = Buffer.concat([bytesOf(FRAME / 2, 4), new Uint8Array(FRAME / 2)]);
      expect(encodeFrameSync(half).encoding).to.equal(FRAME_ZSTD);
      expect(encodeFrameSync(new Uint8Array(FRAME), { compression: 'none' }).encoding).to.equal(FRAME_RAW);
      expect(encodeFrameSync(textOf(FRAME), { compression: 'none' }).encoding).to.equal(FRAME_RAW);
      expect(() => encodeFrameSync(textOf(10), { level: 0 })).to.throw(RangeError);
    });

    it('tells zeros from a single set byte anywhere, over several zero pages', () => {
      const big = new Uint8Array((1 << 20) * 2 + 7);
      expect(isAllZero(big)).to.equal(true);
      expect(isAllZero(new Uint8Array(0))).to.equal(true);
      for (const at of [0, (1 << 20) - 1, 1 << 20, big.length - 1]) {
        big[at] = 1;
        expect(isAllZero(big), String(at)).to.equal(false);
        big[at] = 0;
      }
    });
  });

  describe('sealed pieces with encoded frames', () => {
    it('round-trips raw, zero and compressed frames, mixed in one piece, the last frame short', async () => {
      const raw = Buffer.concat([textOf(FRAME), new Uint8Array(FRAME), bytesOf(FRAME, 9), textOf(FRAME, 2), new Uint8Array(777)]);
      for (const sealed of [sealPiece(pieceOf(raw), KEYS, { limits }), await sealPieceAsync(pieceOf(raw), KEYS, { limits })]) {
        expect(encodings(sealed)).to.deep.equal([FRAME_ZSTD, FRAME_ZERO, FRAME_RAW, FRAME_ZSTD, FRAME_ZERO]);
        expect(sealed.frames.map((f) => f.ciphertext.length).slice(1, 3)).to.deep.equal([0, FRAME]);
        expect(sealed.dataSize).to.be.below(raw.length / 2);
        const opened = openSealedPiece(sealed, options);
        expect(Buffer.from(opened.data).equals(raw)).to.equal(true);
        expect(opened.zeroRuns).to.deep.equal([{ pos: FRAME, size: FRAME }, { pos: 4 * FRAME, size: 777 }]);
      }
    });

    it('round-trips odd sizes: one byte, a prime, one frame plus one byte, a lone zero frame', () => {
      for (const raw of [textOf(1), textOf(4099), textOf(FRAME + 1), new Uint8Array(FRAME + 1), bytesOf(3 * FRAME - 5, 1), new Uint8Array(513)]) {
        const sealed = sealPiece(pieceOf(raw), KEYS, { limits });
        const opened = openSealedPiece(sealed, options);
        expect(Buffer.from(opened.data).equals(Buffer.from(raw)), String(raw.length)).to.equal(true);
      }
      const zero = openSealedPiece(sealPiece(pieceOf(new Uint8Array(513)), KEYS, { limits }), options);
      expect(zero.zeroRuns).to.deep.equal([{ pos: 0, size: 513 }]);
      expect(zero.data).to.have.length(513);
    });

    it('goes through a bundle and back, zero runs (a sealed frame of 16 bytes) included, keyless or opened', async () => {
      const raw = Buffer.concat([new Uint8Array(FRAME), textOf(FRAME), new Uint8Array(FRAME)]);
      const sealed = sealPiece(pieceOf(raw), KEYS, { limits });
      const sink = new PassThrough();
      const bytes = Promise.all([writeBundle(sealed, sink, { limits }), collect(sink)]);
      const tar = Buffer.concat((await bytes)[1]);
      const [keyless] = await collect(readSealedBundle(Readable.from([tar]), { limits }));
      expect(keyless!.frames.map((f) => f.ciphertext.length + f.tag.length)).to.deep.equal([16, sealed.frames[1]!.ciphertext.length + 16, 16]);
      expect(Buffer.from(openSealedPiece(keyless!, options).data).equals(raw)).to.equal(true);
      const [opened] = await collect(readBundle(Readable.from([tar]), { keys: KEYS, plan: PLAN, limits }));
      expect(Buffer.from(opened!.data).equals(raw)).to.equal(true);
      expect(opened!.zeroRuns).to.deep.equal([{ pos: 0, size: FRAME }, { pos: 2 * FRAME, size: FRAME }]);
    });

    it('decodes a zero run into recycled memory as zeros (the collector reuses buffers)', () => {
      const raw = Buffer.concat([textOf(4 * FRAME), new Uint8Array(4 * FRAME)]);
      const collector = new PieceCollector({ plan: { ...PLAN, rescueId: KEYS.rescueId }, keys: KEYS, limits });
      const dirty = Buffer.alloc(1 << 20, 0xaa);
      collector.recycle(dirty);
      let opened: OpenedPiece | undefined;
      for (const m of encodePieceFrames(sealPiece(pieceOf(raw), KEYS, { limits }), limits)) {
        opened = collector.accept(decodeEnvelope(m, limits) as Parameters<PieceCollector['accept']>[0]) ?? opened;
      }
      expect(opened?.data.buffer).to.equal(dirty.buffer);
      expect(Buffer.from(opened!.data).equals(raw)).to.equal(true);
    });
  });

  describe('hostile frames (sealed by a token holder)', () => {
    const raw = textOf(FRAME);
    const good = zstdCompressSync(raw, 3);

    it('refuses a corrupted compressed frame: ERR_SEAL_FRAME_CORRUPT', () => {
      const damaged = new Uint8Array(good);
      damaged[Math.floor(damaged.length / 2)]! ^= 0x5a;
      const bad = [
        damaged,
        Buffer.concat([good, good.subarray(0, 9)]), // a second frame after the first
        good.subarray(0, good.length - 3), // truncated
        Buffer.concat([Buffer.from([0, 0, 0, 0]), good.subarray(4)]), // no magic
      ];
      for (const bytes of bad) {
        const sealed = crafted(raw, [{ encoding: FRAME_ZSTD, bytes }]);
        expect(code(() => openSealedPiece(sealed, options))).to.equal('ERR_SEAL_FRAME_CORRUPT');
      }
      const zeroWithBytes = crafted(new Uint8Array(FRAME), [{ encoding: FRAME_ZSTD, bytes: zstdCompressSync(new Uint8Array(FRAME), 3) }]);
      expect(Buffer.from(openSealedPiece(zeroWithBytes, options).data).equals(Buffer.alloc(FRAME)), 'zeros as zstd are fine').to.equal(true);
    });

    it('refuses a decompression bomb: a content size beyond the limits, a ratio beyond the bound, output beyond the raw size', () => {
      // a frame header claiming 1 GiB: refused from its header, before anything is decoded or allocated
      const huge = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0]), Buffer.from([0, 0, 0, 0x40]), good.subarray(6)]);
      expect(code(() => checkZstdFrame(huge, FRAME, FRAME, 0, {}))).to.equal('ERR_SEAL_FRAME_BOMB');
      expect(code(() => openSealedPiece(crafted(raw, [{ encoding: FRAME_ZSTD, bytes: huge }]), options))).to.equal('ERR_SEAL_FRAME_BOMB');
      // a header announcing 64 KiB from 1 byte: over MAX_FRAME_RATIO, refused from the header, before any frame;
      // the sender refuses to seal it too
      const template = crafted(raw, [{ encoding: FRAME_ZSTD, bytes: good }]);
      const ratio = (bytes: number): Uint8Array => sealHeader(template, bodyOf(raw, [FRAME_ZSTD], [bytes]), 2);
      expect(code(() => new PieceOpener(options).header(ratio(FRAME / MAX_FRAME_RATIO - 1)))).to.equal('ERR_SEAL_FRAME_BOMB');
      expect(new PieceOpener(options).header(ratio(FRAME / MAX_FRAME_RATIO)).frameBytes, 'just at the bound').to.deep.equal([FRAME / MAX_FRAME_RATIO]);
      expect(code(() => crafted(raw, [{ encoding: FRAME_ZSTD, bytes: good.subarray(0, 1) }]))).to.equal('ERR_SEAL_FRAME_BOMB');
      // a frame without a content size that decodes to twice the raw size: stopped at the raw size
      const twice = zstdCompressSync(Buffer.concat([raw, raw]), 3);
      expect(code(() => openSealedPiece(crafted(raw, [{ encoding: FRAME_ZSTD, bytes: twice }]), options))).to.equal('ERR_SEAL_FRAME_BOMB');
      // RLE blocks alone making more than the raw size
      const rle = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50]), rleBlock(FRAME, false), rleBlock(FRAME, true)]);
      expect(code(() => openSealedPiece(crafted(raw, [{ encoding: FRAME_ZSTD, bytes: rle }]), options))).to.equal('ERR_SEAL_FRAME_BOMB');
    });

    it('refuses a frame claiming a wrong raw size: ERR_SEAL_FRAME_RAW_SIZE', () => {
      // a content size (in the zstd header) of 1000 bytes less than the frame's
      const short = Buffer.from(wasmCompress(raw.subarray(0, FRAME - 1000), 3));
      expect(code(() => openSealedPiece(crafted(raw, [{ encoding: FRAME_ZSTD, bytes: short }]), options))).to.equal('ERR_SEAL_FRAME_RAW_SIZE');
      // no content size, decodes to fewer bytes
      const fewer = zstdCompressSync(raw.subarray(0, FRAME - 1000), 3);
      expect(code(() => openSealedPiece(crafted(raw, [{ encoding: FRAME_ZSTD, bytes: fewer }]), options))).to.equal('ERR_SEAL_FRAME_RAW_SIZE');
      // the right content size opens
      const right = Buffer.from(wasmCompress(raw, 3));
      expect(Buffer.from(openSealedPiece(crafted(raw, [{ encoding: FRAME_ZSTD, bytes: right }]), options).data).equals(Buffer.from(raw))).to.equal(true);
    });

    it('refuses header frame fields that cannot be: a raw frame of another size, a zero run with bytes, zstd not smaller, an unknown encoding', () => {
      const cases: EncodedFrame[] = [
        { encoding: FRAME_RAW, bytes: raw.subarray(1) },
        { encoding: FRAME_ZERO, bytes: raw.subarray(0, 1) },
        { encoding: FRAME_ZSTD, bytes: raw },
        { encoding: 3 as typeof FRAME_RAW, bytes: raw },
      ];
      for (const f of cases) expect(code(() => crafted(raw, [f])), String(f.encoding)).to.equal('ERR_SEAL_MALFORMED');
    });

    it('checks the xxh64 of the raw bytes after decoding', () => {
      const other = textOf(FRAME, 7);
      const sealed = crafted(raw, [{ encoding: FRAME_ZSTD, bytes: zstdCompressSync(other, 3) }]);
      expect(code(() => openSealedPiece(sealed, options))).to.equal('ERR_PIECE_CHECKSUM_MISMATCH');
    });
  });
});

/** A zstd RLE block of `size` bytes of 0x61. */
function rleBlock(size: number, last: boolean): Buffer {
  const h = (size << 3) | (1 << 1) | (last ? 1 : 0);
  return Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, 0x61]);
}

/** The body of `pieceOf(raw)` cut in frames of FRAME, as protobuf's `fromObject` takes it (version 1: no frame fields). */
function bodyOf(raw: Uint8Array, encodings?: number[], bytes?: number[]): Record<string, unknown> {
  const p = pieceOf(raw);
  return {
    chunk: 0, extents: p.extents.map((e) => ({ pos: e.pos, size: e.size, xxh64: e.xxh64.toString() })), delta: p.delta,
    dataSize: raw.length, frameSize: FRAME, frameCount: Math.ceil(raw.length / FRAME),
    ...(encodings === undefined ? {} : { frameEncodings: Uint8Array.from(encodings), frameBytes: bytes }),
  };
}

/**
 * A sealed header with `template`'s routing fields and salt (so its frames still
 * authenticate) sealing `body` as given, at seal `version`: what a token holder can make.
 */
function sealHeader(template: SealedPiece, body: Record<string, unknown>, version: number): Uint8Array {
  const fields = readSealedHeaderFields(template.header);
  const type = headerBodySchema();
  const plain = type.encode(type.fromObject(body)).finish();
  const header = Buffer.alloc(SEALED_PREFIX_BYTES + plain.length + TAG_BYTES);
  header.set(template.header.subarray(0, 45));
  header[4] = version;
  header.writeUInt32BE(plain.length, 45);
  const c = createCipheriv('aes-256-gcm', hkdf(KEYS.sealKey, fields.salt, 'piece v1'), Buffer.from('hdr1\0\0\0\0\0\0\0\0', 'latin1'), { authTagLength: TAG_BYTES });
  c.setAAD(header.subarray(0, SEALED_PREFIX_BYTES));
  header.set(c.update(plain), SEALED_PREFIX_BYTES);
  c.final();
  header.set(c.getAuthTag(), SEALED_PREFIX_BYTES + plain.length);
  return header;
}

describe('seal version 1 (written before frames were encoded)', () => {
  it('still opens: every frame raw', () => {
    const raw = Buffer.concat([textOf(FRAME), new Uint8Array(100)]);
    const template = sealPiece(pieceOf(raw), KEYS, { limits, compression: 'none' });
    const header = sealHeader(template, bodyOf(raw), 1);
    const opened = openSealedPiece({ ...template, header, headerHash: headerHashOf(header) }, options);
    expect(Buffer.from(opened.data).equals(raw)).to.equal(true);
    expect(opened.zeroRuns).to.equal(undefined);
    expect(code(() => openSealedPiece({ ...template, header: sealHeader(template, bodyOf(raw), 3) }, options))).to.equal('ERR_SEAL_MALFORMED');
  });
});
