import { PassThrough, Readable, Writable } from 'node:stream';

import { expect } from 'chai';
import fc from 'fast-check';
import tar from 'tar-stream';

import { bundleSize, frameEntryName, headerEntryName, readBundle, readSealedBundle, writeBundle } from '../src/bundle.js';
import { ProtocolError } from '../src/errors.js';
import { deriveRescueKeys } from '../src/keys.js';
import { resolveLimits } from '../src/limits.js';
import { makeExtent } from '../src/piece.js';
import type { Piece } from '../src/piece.js';
import { sealPiece } from '../src/seal.js';
import type { SealedPiece } from '../src/seal.js';
import { arbitraryPiece, bytesOf, collect, KEYS, makePiece, OTHER_RESCUE_ID, PLAN, RESCUE_ID, seal } from './helpers.js';

const limits = resolveLimits({ maxFrameBytes: 1024, maxMessageBytes: 8192, maxHeaderBytes: 4096 });
const open = { keys: KEYS, plan: PLAN, limits };

async function bundleBytes(pieces: SealedPiece | readonly SealedPiece[], options: Parameters<typeof writeBundle>[2] = { limits }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await writeBundle(pieces, sink, options);
  return Buffer.concat(chunks);
}

/** The bytes fed in chunks of the given sizes, cycling. */
function chunked(bytes: Uint8Array, sizes: readonly number[]): Readable {
  const parts: Uint8Array[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    parts.push(bytes.subarray(at, at + n));
    at += n;
  }
  return Readable.from(parts);
}

type Header = Partial<tar.Header> & { name: string };

interface RawEntry {
  readonly header: Header;
  readonly data?: Uint8Array | string;
}

/** A tar made by hand, entries as given. */
async function handTar(entries: readonly RawEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.data === undefined) pack.entry(e.header);
    else pack.entry(e.header, typeof e.data === 'string' ? Buffer.from(e.data) : Buffer.from(e.data));
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The entries of a sealed piece, as `writeBundle` names them. */
function entriesOf(s: SealedPiece): RawEntry[] {
  return [
    { header: { name: headerEntryName(s.seq) }, data: s.header },
    ...s.frames.map((f, i) => ({ header: { name: frameEntryName(s.seq, i) }, data: Buffer.concat([f.ciphertext, f.tag]) })),
  ];
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<ProtocolError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as ProtocolError).code).to.equal(code);
    return err as ProtocolError;
  }
  return expect.fail(`expected ${code}`);
}

const p1 = makePiece(123, 0, [[0, 2048, '+'], [0, 512, '-'], [0, 700, '+']]);
const p2 = makePiece(124, 1, [[512, 512, '/']]);
const p3 = makePiece(125, 2, [[0, 3000, '+']]);
const [s1, s2, s3] = [p1, p2, p3].map((p) => seal(p, { limits })) as [SealedPiece, SealedPiece, SealedPiece];

function plainOf(pieces: readonly Piece[]): unknown[] {
  return pieces.map((p) => ({ ...p, data: Buffer.from(p.data) }));
}

describe('writeBundle / readBundle', () => {
  it('round-trips sealed pieces, opened with their header hashes', async () => {
    const bytes = await bundleBytes([s1, s2, s3]);
    const got = await collect(readBundle(Readable.from([bytes]), { ...open, file: 'b.tar' }));
    expect(got.map((p) => p.headerHash)).to.deep.equal([s1, s2, s3].map((s) => s.headerHash));
    expect(plainOf(got.map(({ headerHash: _h, ...p }) => p))).to.deep.equal(plainOf([p1, p2, p3]));
  });

  it('takes each piece\'s data from the alloc it is given (a pool of merged pieces\' buffers), filled whole', async () => {
    const bytes = await bundleBytes([s1, s2, s3]);
    const given: ArrayBuffer[] = [];
    const alloc = (size: number): Uint8Array => {
      const buf = new Uint8Array(new ArrayBuffer(size + 64), 0, size).fill(0xee); // old bytes, as a reused buffer holds
      given.push(buf.buffer as ArrayBuffer);
      return buf;
    };
    const got = await collect(readBundle(Readable.from([bytes]), { ...open, alloc }));
    const withData = got.filter((p) => p.data.length > 0);
    expect(withData.length).to.be.greaterThan(0);
    expect(withData.every((p) => given.includes(p.data.buffer as ArrayBuffer))).to.equal(true);
    expect(plainOf(got.map(({ headerHash: _h, ...p }) => p))).to.deep.equal(plainOf([p1, p2, p3]));
  });

  it('round-trips random pieces fed in odd-sized chunks', async () => {
    await fc.assert(fc.asyncProperty(
      fc.uniqueArray(arbitraryPiece(), { minLength: 1, maxLength: 4, selector: (p) => p.seq }),
      fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 5 }),
      async (pieces, sizes) => {
        const bytes = await bundleBytes(pieces.map((p) => seal(p, { limits })));
        const got = await collect(readBundle(chunked(bytes, sizes), open));
        expect(got.map((p) => p.seq)).to.deep.equal(pieces.map((p) => p.seq));
        got.forEach((p, i) => expect(Buffer.from(p.data).equals(Buffer.from(pieces[i]?.data ?? []))).to.equal(true));
        const sealed = await collect(readSealedBundle(chunked(bytes, sizes), { limits }));
        expect(sealed.map((p) => p.seq)).to.deep.equal(pieces.map((p) => p.seq));
      },
    ), { numRuns: 60, seed: 4 });
  });

  it('writes, per piece, its sealed header then its frames, as regular files, and nothing in clear', async () => {
    const extract = tar.extract();
    const secret = Buffer.from(p1.data.subarray(0, 64));
    const bytes = await bundleBytes([s1, s2]);
    expect(bytes.includes(secret)).to.equal(false);
    Readable.from([bytes]).pipe(extract);
    const names: string[] = [];
    for await (const entry of extract) {
      names.push(entry.header.name);
      expect(entry.header.type).to.equal('file');
      entry.resume();
    }
    expect(names).to.deep.equal(['piece-000123.header', 'piece-000123.frame-000000', 'piece-000123.frame-000001', 'piece-000123.frame-000002', 'piece-000124.header']);
    expect(bytes.length).to.equal(bundleSize([s1, s2]));
  });

  it('writes the same bytes for the same sealed pieces', async () => {
    expect((await bundleBytes(s1)).equals(await bundleBytes(s1))).to.equal(true);
  });

  it('respects a sink of highWaterMark 1', async () => {
    const big = seal(makePiece(200, 0, [[0, 600_000, '+']]));
    const through = new PassThrough({ highWaterMark: 1 });
    const reading = collect(readBundle(through, { keys: KEYS, plan: PLAN }));
    const written = await writeBundle(big, through);
    const [got] = await reading;
    expect(got?.seq).to.equal(200);
    expect(written).to.equal(bundleSize([big]));
  });

  it('refuses to write what a reader would refuse', async () => {
    await expectCode(bundleBytes([]), 'ERR_BUNDLE_EMPTY');
    await expectCode(bundleBytes([s1, seal(makePiece(124, 1, [[512, 512, '/']], OTHER_RESCUE_ID))]), 'ERR_BUNDLE_MIXED_RESCUES');
    await expectCode(bundleBytes([s1, s1]), 'ERR_BUNDLE_DUPLICATE_SEQ');
    await expectCode(bundleBytes([s1, s3], { limits: resolveLimits({ ...limits, maxBundleBytes: 8192 }) }), 'ERR_BUNDLE_TOO_LARGE');
    await expectCode(bundleBytes(s3, { limits: resolveLimits({ ...limits, maxPieceBytes: 2999 }) }), 'ERR_BUNDLE_ENTRY_TOO_LARGE');
    await expectCode(bundleBytes(s3, { limits: resolveLimits({ ...limits, maxHeaderBytes: s3.header.length - 1 }) }), 'ERR_BUNDLE_ENTRY_TOO_LARGE');
  });

  it('accepts a bundle just at maxBundleBytes', async () => {
    const size = (await bundleBytes(s3)).length;
    await bundleBytes(s3, { limits: resolveLimits({ ...limits, maxBundleBytes: size }) });
    await expectCode(bundleBytes(s3, { limits: resolveLimits({ ...limits, maxBundleBytes: size - 1 }) }), 'ERR_BUNDLE_TOO_LARGE');
  });

  describe('refuses hostile or damaged bundles', () => {
    const good = entriesOf(s1);

    async function refuse(entries: readonly RawEntry[], code: string, options: Partial<Parameters<typeof readBundle>[1]> = {}): Promise<ProtocolError> {
      const err = await expectCode(collect(readBundle(Readable.from([await handTar(entries)]), { ...open, file: 'x.tar', ...options })), code);
      expect(err.file).to.equal('x.tar');
      return err;
    }

    it('accepts the hand-made good bundle', async () => {
      expect(await collect(readBundle(Readable.from([await handTar(good)]), open))).to.have.length(1);
    });

    it('a path with .., or an absolute path', async () => {
      await refuse([good[0]!, { ...good[1]!, header: { name: '../piece-000123.frame-000000' } }], 'ERR_BUNDLE_UNSAFE_PATH');
      await refuse([{ ...good[0]!, header: { name: '/etc/piece-000123.header' } }], 'ERR_BUNDLE_UNSAFE_PATH');
    });

    it('a symlink, a hard link, a folder', async () => {
      await refuse([good[0]!, { header: { name: 'piece-000123.frame-000000', type: 'symlink', linkname: '/dev/sda' } }], 'ERR_BUNDLE_ENTRY_TYPE');
      await refuse([good[0]!, { header: { name: 'piece-000123.frame-000000', type: 'link', linkname: 'piece-000123.header' } }], 'ERR_BUNDLE_ENTRY_TYPE');
      await refuse([{ header: { name: 'piece-000123.header', type: 'directory' } }], 'ERR_BUNDLE_ENTRY_TYPE');
    });

    it('names it does not expect, in an order it does not expect', async () => {
      await refuse([good[1]!, good[0]!], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
      await refuse([good[0]!, good[2]!], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
      await refuse([good[0]!, { ...good[1]!, header: { name: 'piece-000124.frame-000000' } }], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
      await refuse([...good, { ...good[3]!, header: { name: 'piece-000123.frame-000003' } }], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
      await refuse([{ ...good[0]!, header: { name: 'manifest.json' } }], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
      await refuse([{ ...good[0]!, header: { name: 'piece-000124.header' } }], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
      await refuse([...good, good[0]!], 'ERR_BUNDLE_DUPLICATE_SEQ');
    });

    it('a name with a seq above 2^40', async () => {
      await refuse([{ ...good[0]!, header: { name: 'piece-9007199254740991.header' } }], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
    });

    it('an oversized entry, before reading it, just over each limit', async () => {
      const hdr = s1.header.length;
      await refuse(good, 'ERR_BUNDLE_ENTRY_TOO_LARGE', { limits: resolveLimits({ ...limits, maxHeaderBytes: hdr - 1 }) });
      expect(await collect(readBundle(Readable.from([await handTar(good)]), { ...open, limits: resolveLimits({ ...limits, maxHeaderBytes: hdr }) }))).to.have.length(1);
      const frame = { header: { name: 'piece-000123.frame-000000' }, data: new Uint8Array(1024 + 17) };
      await refuse([good[0]!, frame], 'ERR_BUNDLE_ENTRY_TOO_LARGE');
      const one = resolveLimits({ ...limits, maxPiecesPerBundle: 1 });
      expect(await collect(readBundle(Readable.from([await handTar(good)]), { ...open, limits: one }))).to.have.length(1);
      await refuse([...good, ...entriesOf(s2)], 'ERR_BUNDLE_TOO_LARGE', { limits: one });
    });

    it('a frame whose size differs from what its header announces', async () => {
      await refuse([good[0]!, { header: { name: 'piece-000123.frame-000000' }, data: new Uint8Array(100) }], 'ERR_BUNDLE_SIZE_MISMATCH');
    });

    it('a flipped bit in a header, a frame or a tag', async () => {
      const flipped = (e: RawEntry, at: number): RawEntry => {
        const data = Buffer.from(e.data as Uint8Array);
        data[at] = data[at]! ^ 0x10;
        return { ...e, data };
      };
      await refuse([flipped(good[0]!, 60), ...good.slice(1)], 'ERR_SEAL_AUTH_FAILED');
      const err = await refuse([good[0]!, flipped(good[1]!, 5), ...good.slice(2)], 'ERR_SEAL_FRAME_AUTH_FAILED');
      expect(err.seq).to.equal(123);
      await refuse([good[0]!, good[1]!, flipped(good[2]!, 1024 + 3), good[3]!], 'ERR_SEAL_FRAME_AUTH_FAILED');
    });

    it('frames swapped (names kept in order), or taken from another sealing of the piece', async () => {
      const swapped = [good[0]!, { ...good[2]!, header: good[1]!.header }, { ...good[1]!, header: good[2]!.header }, good[3]!];
      await refuse(swapped, 'ERR_SEAL_FRAME_AUTH_FAILED');
      const again = entriesOf(seal(p1, { limits }));
      await refuse([good[0]!, good[1]!, again[2]!, good[3]!], 'ERR_SEAL_FRAME_AUTH_FAILED');
    });

    it('a bundle sealed with another token, or of another rescue', async () => {
      await refuse(entriesOf(sealPiece(p1, deriveRescueKeys('wrong', RESCUE_ID), { limits })), 'ERR_SEAL_AUTH_FAILED');
      await refuse(entriesOf(seal(makePiece(123, 0, [[0, 100, '+']], OTHER_RESCUE_ID), { limits })), 'ERR_PIECE_WRONG_RESCUE');
    });

    it('a header entry holding another piece\'s header', async () => {
      await refuse([{ header: { name: 'piece-000124.header' }, data: s1.header }], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
    });

    it('a missing frame, or nothing at all', async () => {
      await refuse(good.slice(0, 3), 'ERR_BUNDLE_MISSING_ENTRY');
      await refuse([...good.slice(0, 2), ...entriesOf(s2)], 'ERR_BUNDLE_MISSING_ENTRY');
      await refuse([], 'ERR_BUNDLE_MISSING_ENTRY');
    });

    it('a piece against the plan, before its frames are read', async () => {
      await refuse(good, 'ERR_PIECE_EXTENT_OUTSIDE_CHUNK', { plan: { ...PLAN, chunks: [{ index: 0, pos: 0, size: 1024 }] } });
    });

    it('a truncated or corrupted tar', async () => {
      const bytes = await bundleBytes([s1, s3]);
      await expectCode(collect(readBundle(Readable.from([bytes.subarray(0, 3000)]), open)), 'ERR_BUNDLE_MALFORMED');
      const corrupt = Buffer.from(bytes);
      corrupt[100] = 0x41; // inside the mode field of the first header: the header checksum fails
      await expectCode(collect(readBundle(Readable.from([corrupt]), open)), 'ERR_BUNDLE_MALFORMED');
    });
  });

  it('passes system errors of the source unchanged', async () => {
    const bytes = await bundleBytes(s1);
    const source = new Readable({
      read() {
        this.push(bytes.subarray(0, 1024));
        this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
      },
    });
    try {
      await collect(readBundle(source, open));
      expect.fail('expected a throw');
    } catch (err) {
      expect(err).to.have.property('code', 'EIO');
    }
  });

  it('yields pieces one by one and stops cleanly when the caller stops', async () => {
    const bytes = await bundleBytes([s1, s2, s3]);
    for await (const p of readBundle(Readable.from([bytes]), open)) {
      expect(p.seq).to.equal(123);
      break;
    }
  });

  it('tells onHeader each authenticated header before its frames, skips what it skips, and passes its error through', async () => {
    const bytes = await bundleBytes([s1, s2, s3]);
    const seen: [number, string][] = [];
    const pieces = await collect(readBundle(Readable.from([bytes]), {
      ...open,
      onHeader: (h) => {
        seen.push([h.seq, h.headerHash]);
        return h.seq === 123 ? 'skip' : undefined;
      },
    }));
    expect(seen).to.deep.equal([s1, s2, s3].map((s) => [s.seq, s.headerHash]));
    expect(pieces.map((p) => p.seq)).to.deep.equal([124, 125]);
    const stop = new Error('refused by its header');
    let yielded = 0;
    try {
      const it = readBundle(Readable.from([bytes]), { ...open, onHeader: () => { throw stop; } });
      while (!(await it.next()).done) ++yielded;
      expect.fail('expected a throw');
    } catch (err) {
      expect(err).to.equal(stop);
    }
    expect(yielded).to.equal(0);
  });

  it('readSealedBundle: with shareSource, views of one source buffer (no copy); copies otherwise', async () => {
    const bytes = await bundleBytes([s1, s2, s3]);
    for (const sizes of [[bytes.length], [512], [1000, 7, 4096]]) {
      const shared = await collect(readSealedBundle(chunked(bytes, sizes), { limits, shareSource: true }));
      const copied = await collect(readSealedBundle(chunked(bytes, sizes), { limits }));
      for (const got of [shared, copied]) {
        expect(got.map((s) => [s.seq, s.headerHash, s.dataSize, s.frames.length])).to.deep.equal([s1, s2, s3].map((s) => [s.seq, s.headerHash, s.dataSize, s.frames.length]));
      }
      for (const s of shared) for (const f of s.frames) expect(f.ciphertext.buffer).to.equal(bytes.buffer);
      for (const s of copied) for (const f of s.frames) expect(f.ciphertext.buffer).to.not.equal(bytes.buffer);
    }
    const opened = await collect(readBundle(chunked(bytes, [512]), { ...open, shareSource: true }));
    expect(plainOf(opened.map(({ headerHash: _h, ...p }) => p))).to.deep.equal(plainOf([p1, p2, p3]));
  });

  describe('inPlace', () => {
    /** Frames of 8 KiB: more than a tar entry's own 1 KiB or so, as on a stick (4 MiB frames). */
    const F = 8192;
    const bigFrames = { keys: KEYS, plan: PLAN, limits: resolveLimits({ maxFrameBytes: F, maxMessageBytes: 8 * F, maxHeaderBytes: 4096 }) };
    /** A piece of one extent at the start of chunk 0 whose frames of F bytes hold what `frames` says, in order. */
    const pieceOf = (seq: number, frames: readonly ('random' | 'zero' | 'text')[]): Piece => {
      const data = Buffer.concat(frames.map((f, i) => (f === 'zero' ? Buffer.alloc(F) : f === 'text' ? Buffer.from('ddferry '.repeat(F / 8)) : Buffer.from(bytesOf(F, seq * 100 + i)))));
      return { rescueId: RESCUE_ID, seq, chunk: 0, extents: [makeExtent(0, data)], delta: [{ pos: 0, size: data.length, status: '+' }], data };
    };
    const allocs = (): { alloc: (size: number) => Uint8Array; sizes: number[] } => {
      const sizes: number[] = [];
      return { sizes, alloc: (size) => (sizes.push(size), new Uint8Array(size).fill(0xee)) };
    };

    it('deciphers raw frames where their sealed bytes lie: each piece\'s data is a view of the source\'s buffer, nothing allocated', async () => {
      const bytes = await bundleBytes([s1, s2, s3]);
      const { alloc, sizes } = allocs();
      const got = await collect(readBundle(chunked(bytes, [bytes.length]), { ...open, shareSource: true, inPlace: true, alloc }));
      expect(plainOf(got.map(({ headerHash: _h, ...p }) => p))).to.deep.equal(plainOf([p1, p2, p3]));
      expect(got.map((p) => p.headerHash)).to.deep.equal([s1, s2, s3].map((s) => s.headerHash));
      expect(sizes).to.deep.equal([]);
      for (const p of got.filter((x) => x.data.length > 0)) expect(p.data.buffer).to.equal(bytes.buffer);
      // without inPlace, or without a shared source, the source's bytes stay as they were
      const again = await bundleBytes([s1, s2, s3]);
      const copy = Buffer.from(again);
      await collect(readBundle(chunked(again, [again.length]), { ...open, shareSource: true }));
      await collect(readBundle(chunked(again, [again.length]), { ...open, inPlace: true }));
      expect(again.equals(copy)).to.equal(true);
    });

    it('moves a piece into alloc\'s memory at a zero or compressed frame that would reach a later frame\'s bytes, and its data is still right', async () => {
      const pieces = [
        pieceOf(10, ['random', 'random', 'zero', 'random']),
        pieceOf(11, ['text', 'random']),
        pieceOf(12, ['random', 'random', 'random']),
        pieceOf(13, ['zero', 'random']),
      ];
      const sealed = pieces.map((p) => seal(p, { limits: bigFrames.limits }));
      expect(sealed[0]!.frames[2]!.ciphertext.length).to.equal(0);
      expect(sealed[1]!.frames[0]!.ciphertext.length).to.be.below(F / 4);
      const bytes = await bundleBytes(sealed, { limits: bigFrames.limits });
      const { alloc, sizes } = allocs();
      const got = await collect(readBundle(chunked(bytes, [bytes.length]), { ...bigFrames, shareSource: true, inPlace: true, alloc }));
      got.forEach((p, i) => expect(Buffer.from(p.data).equals(Buffer.from(pieces[i]!.data)), `piece ${p.seq}`).to.equal(true));
      expect(got.map((p) => p.data.buffer === bytes.buffer)).to.deep.equal([false, false, true, false]);
      expect(sizes).to.deep.equal([4 * F, 2 * F, 2 * F]);
      expect(got[0]!.zeroRuns).to.deep.equal([{ pos: 2 * F, size: F }]);
    });

    it('opens any pieces fed in any chunks as without it, and refuses a flipped bit alike', async () => {
      await fc.assert(fc.asyncProperty(
        fc.uniqueArray(arbitraryPiece(), { minLength: 1, maxLength: 4, selector: (p) => p.seq }),
        fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 5 }),
        fc.nat(),
        async (pieces, sizes, flip) => {
          const bytes = await bundleBytes(pieces.map((p) => seal(p, { limits })));
          const whole = [bytes.length];
          const got = await collect(readBundle(chunked(Buffer.from(bytes), sizes), { ...open, shareSource: true, inPlace: true }));
          const gotWhole = await collect(readBundle(chunked(Buffer.from(bytes), whole), { ...open, shareSource: true, inPlace: true }));
          for (const g of [got, gotWhole]) {
            expect(g.map((p) => p.seq)).to.deep.equal(pieces.map((p) => p.seq));
            g.forEach((p, i) => expect(Buffer.from(p.data).equals(Buffer.from(pieces[i]?.data ?? []))).to.equal(true));
          }
          const bad = Buffer.from(bytes);
          const at = flip % bad.length;
          bad[at] = bad[at]! ^ 1;
          const outcome = async (inPlace: boolean): Promise<string> => collect(readBundle(chunked(Buffer.from(bad), whole), { ...open, shareSource: true, inPlace })).then(
            (ps) => ps.map((p) => `${p.seq}:${Buffer.from(p.data).toString('hex')}`).join(','),
            (err: unknown) => (err instanceof ProtocolError ? err.code : 'other error'),
          );
          expect(await outcome(true)).to.equal(await outcome(false));
        },
      ), { numRuns: 80, seed: 7 });
    });
  });

  it('names entries with at least six digits', () => {
    expect(headerEntryName(1)).to.equal('piece-000001.header');
    expect(frameEntryName(1234567, 12)).to.equal('piece-1234567.frame-000012');
  });
});
