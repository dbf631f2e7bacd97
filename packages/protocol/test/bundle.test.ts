import { PassThrough, Readable, Writable } from 'node:stream';

import { expect } from 'chai';
import fc from 'fast-check';
import tar from 'tar-stream';

import { readBundle, writeBundle } from '../src/bundle.js';
import { ProtocolError } from '../src/errors.js';
import { resolveLimits } from '../src/limits.js';
import { formatManifest, pieceEntryName } from '../src/manifest.js';
import type { Piece } from '../src/piece.js';
import { arbitraryPiece, collect, makePiece, OTHER_RESCUE_ID, PLAN } from './helpers.js';

async function bundleBytes(pieces: Piece | readonly Piece[], options?: Parameters<typeof writeBundle>[2]): Promise<Buffer> {
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

const p1 = makePiece(123, 0, [[0, 4096, '+'], [0, 512, '-'], [0, 700, '+']]);
const p2 = makePiece(124, 1, [[512, 512, '/']]);
const p3 = makePiece(125, 2, [[0, 3000, '+']]);

describe('writeBundle / readBundle', () => {
  it('round-trips pieces', async () => {
    const bytes = await bundleBytes([p1, p2, p3]);
    const got = await collect(readBundle(Readable.from([bytes]), { plan: PLAN, file: 'b.tar' }));
    expect(got.map((p) => ({ ...p, data: Buffer.from(p.data) }))).to.deep.equal([p1, p2, p3].map((p) => ({ ...p, data: Buffer.from(p.data) })));
  });

  it('round-trips random pieces fed in odd-sized chunks', async () => {
    await fc.assert(fc.asyncProperty(
      fc.uniqueArray(arbitraryPiece(), { minLength: 1, maxLength: 4, selector: (p) => p.seq }),
      fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 5 }),
      async (pieces, sizes) => {
        const bytes = await bundleBytes(pieces);
        const got = await collect(readBundle(chunked(bytes, sizes)));
        expect(got.map((p) => p.seq)).to.deep.equal(pieces.map((p) => p.seq));
        got.forEach((p, i) => expect(Buffer.from(p.data).equals(Buffer.from(pieces[i]?.data ?? []))).to.equal(true));
      },
    ), { numRuns: 60, seed: 4 });
  });

  it('writes the manifest first, then piece-NNNNNN.bin entries, as regular files', async () => {
    const extract = tar.extract();
    Readable.from([await bundleBytes([p1, p2])]).pipe(extract);
    const names: string[] = [];
    for await (const entry of extract) {
      names.push(entry.header.name);
      expect(entry.header.type).to.equal('file');
      entry.resume();
    }
    expect(names).to.deep.equal(['manifest.json', 'piece-000123.bin', 'piece-000124.bin']);
  });

  it('writes the same bytes for the same pieces', async () => {
    expect((await bundleBytes(p1)).equals(await bundleBytes(p1))).to.equal(true);
  });

  it('respects a sink of highWaterMark 1', async () => {
    const big = makePiece(200, 0, [[0, 600_000, '+']]);
    const through = new PassThrough({ highWaterMark: 1 });
    const reading = collect(readBundle(through));
    const written = await writeBundle(big, through);
    const [got] = await reading;
    expect(got?.seq).to.equal(200);
    expect(written).to.equal(512 + 512 + 512 + 600_064 + 1024);
  });

  it('refuses to write what a reader would refuse', async () => {
    await expectCode(bundleBytes([]), 'ERR_BUNDLE_EMPTY');
    await expectCode(bundleBytes([p1, { ...p2, rescueId: OTHER_RESCUE_ID }]), 'ERR_BUNDLE_MIXED_RESCUES');
    await expectCode(bundleBytes([p1, p1]), 'ERR_BUNDLE_DUPLICATE_SEQ');
    await expectCode(bundleBytes([p1, p3], { limits: resolveLimits({ maxBundleBytes: 8192 }) }), 'ERR_BUNDLE_TOO_LARGE');
    await expectCode(bundleBytes(p3, { limits: resolveLimits({ maxPieceBytes: 2999 }) }), 'ERR_BUNDLE_ENTRY_TOO_LARGE');
    await expectCode(bundleBytes({ ...p1, data: p1.data.subarray(1) }), 'ERR_PIECE_SIZE_MISMATCH');
  });

  it('accepts a bundle just at maxBundleBytes', async () => {
    const size = (await bundleBytes(p3)).length;
    await bundleBytes(p3, { limits: resolveLimits({ maxBundleBytes: size }) });
    await expectCode(bundleBytes(p3, { limits: resolveLimits({ maxBundleBytes: size - 1 }) }), 'ERR_BUNDLE_TOO_LARGE');
  });

  describe('refuses hostile or damaged bundles', () => {
    const manifest = formatManifest(p1.rescueId, [p1]);
    const entry = (name: string, data: Uint8Array | string = p1.data, extra: Partial<tar.Header> = {}): RawEntry => ({ header: { name, ...extra }, data });

    async function refuse(entries: readonly RawEntry[], code: string, options = {}): Promise<ProtocolError> {
      const err = await expectCode(collect(readBundle(Readable.from([await handTar(entries)]), { file: 'x.tar', ...options })), code);
      expect(err.file).to.equal('x.tar');
      return err;
    }

    it('accepts the hand-made good bundle', async () => {
      const got = await collect(readBundle(Readable.from([await handTar([entry('manifest.json', manifest), entry('piece-000123.bin')])])));
      expect(got).to.have.length(1);
    });

    it('a path with ..', async () => {
      await refuse([entry('manifest.json', manifest), entry('../x')], 'ERR_BUNDLE_UNSAFE_PATH');
      await refuse([entry('a/../../manifest.json', manifest)], 'ERR_BUNDLE_UNSAFE_PATH');
    });

    it('an absolute path', async () => {
      await refuse([entry('/etc/manifest.json', manifest)], 'ERR_BUNDLE_UNSAFE_PATH');
      await refuse([entry('manifest.json', manifest), entry('/tmp/piece-000123.bin')], 'ERR_BUNDLE_UNSAFE_PATH');
    });

    it('a symlink, a hard link, a folder', async () => {
      await refuse([entry('manifest.json', manifest), { header: { name: 'piece-000123.bin', type: 'symlink', linkname: '/dev/sda' } }], 'ERR_BUNDLE_ENTRY_TYPE');
      await refuse([entry('manifest.json', manifest), { header: { name: 'piece-000123.bin', type: 'link', linkname: 'manifest.json' } }], 'ERR_BUNDLE_ENTRY_TYPE');
      await refuse([{ header: { name: 'manifest.json', type: 'directory' } }], 'ERR_BUNDLE_ENTRY_TYPE');
    });

    it('names it does not expect, in an order it does not expect', async () => {
      await refuse([entry('piece-000123.bin'), entry('manifest.json', manifest)], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
      await refuse([entry('manifest.json', manifest), entry('piece-000124.bin')], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
      await refuse([entry('manifest.json', manifest), entry('piece-000123.bin'), entry('piece-000123.bin')], 'ERR_BUNDLE_UNEXPECTED_ENTRY');
    });

    it('an oversized entry, before reading it', async () => {
      const limits = resolveLimits({ maxPieceBytes: p1.data.length - 1 });
      const tooBig = formatManifest(p1.rescueId, [{ ...p1, data: new Uint8Array(0), extents: [] , delta: [] }]);
      await refuse([entry('manifest.json', tooBig), entry('piece-000123.bin', new Uint8Array(p1.data.length))], 'ERR_BUNDLE_ENTRY_TOO_LARGE', { limits });
      await refuse([entry('manifest.json', manifest)], 'ERR_BUNDLE_ENTRY_TOO_LARGE', { limits: resolveLimits({ maxManifestBytes: manifest.length - 1 }) });
    });

    it('an entry whose size differs from the manifest', async () => {
      await refuse([entry('manifest.json', manifest), entry('piece-000123.bin', p1.data.subarray(1))], 'ERR_BUNDLE_SIZE_MISMATCH');
    });

    it('a tampered manifest', async () => {
      const tampered = manifest.replace('"pos":0,', '"pos":512,');
      expect(tampered).to.not.equal(manifest);
      await refuse([entry('manifest.json', tampered), entry('piece-000123.bin')], 'ERR_BUNDLE_MANIFEST_CHECKSUM');
      await refuse([entry('manifest.json', manifest.replace(/"manifestXxh64":"[0-9a-f]+"/, '"manifestXxh64":"x"'))], 'ERR_BUNDLE_BAD_MANIFEST');
      await refuse([entry('manifest.json', '{not json')], 'ERR_BUNDLE_BAD_MANIFEST');
    });

    it('a manifest with a valid checksum but bad content', async () => {
      const bad = JSON.parse(manifest) as Record<string, unknown>;
      delete bad.manifestXxh64;
      const resum = async (body: Record<string, unknown>): Promise<string> => {
        const { xxh64, hexOf } = await import('../src/xxh64.js');
        return JSON.stringify({ ...body, manifestXxh64: hexOf(xxh64(Buffer.from(JSON.stringify(body)))) });
      };
      await refuse([entry('manifest.json', await resum({ ...bad, version: 2 }))], 'ERR_BUNDLE_BAD_MANIFEST');
      await refuse([entry('manifest.json', await resum({ ...bad, pieces: [] }))], 'ERR_BUNDLE_BAD_MANIFEST');
      await refuse([entry('manifest.json', await resum({ ...bad, extra: 1 }))], 'ERR_BUNDLE_BAD_MANIFEST');
      const pieces = bad.pieces as Record<string, unknown>[];
      await refuse([entry('manifest.json', await resum({ ...bad, pieces: [{ ...pieces[0], seq: 2 ** 53 }] }))], 'ERR_BUNDLE_BAD_MANIFEST');
    });

    it('tampered data', async () => {
      const data = new Uint8Array(p1.data);
      data[4100] = (data[4100] ?? 0) ^ 0x80;
      const err = await refuse([entry('manifest.json', manifest), entry('piece-000123.bin', data)], 'ERR_PIECE_CHECKSUM_MISMATCH');
      expect(err.seq).to.equal(123);
    });

    it('a bundle of another rescue, when the plan names ours', async () => {
      const other = formatManifest(OTHER_RESCUE_ID, [{ ...p1, rescueId: OTHER_RESCUE_ID }]);
      await refuse([entry('manifest.json', other), entry('piece-000123.bin')], 'ERR_PIECE_WRONG_RESCUE', { plan: PLAN });
    });

    it('a missing piece, or no manifest at all', async () => {
      await refuse([entry('manifest.json', manifest)], 'ERR_BUNDLE_MISSING_ENTRY');
      await refuse([], 'ERR_BUNDLE_MISSING_ENTRY');
    });

    it('a truncated or corrupted tar', async () => {
      const bytes = await bundleBytes([p1, p3]);
      await expectCode(collect(readBundle(Readable.from([bytes.subarray(0, 3000)]))), 'ERR_BUNDLE_MALFORMED');
      const corrupt = Buffer.from(bytes);
      corrupt[100] = 0x41; // inside the mode field of the first header: the header checksum fails
      await expectCode(collect(readBundle(Readable.from([corrupt]))), 'ERR_BUNDLE_MALFORMED');
    });
  });

  it('passes system errors of the source unchanged', async () => {
    const bytes = await bundleBytes(p1);
    const source = new Readable({
      read() {
        this.push(bytes.subarray(0, 1024));
        this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
      },
    });
    try {
      await collect(readBundle(source));
      expect.fail('expected a throw');
    } catch (err) {
      expect(err).to.have.property('code', 'EIO');
    }
  });

  it('yields pieces one by one and stops cleanly when the caller stops', async () => {
    const bytes = await bundleBytes([p1, p2, p3]);
    for await (const p of readBundle(Readable.from([bytes]))) {
      expect(p.seq).to.equal(123);
      break;
    }
  });

  it('tells onManifest the checked manifest before any piece data, and passes its error through unchanged', async () => {
    const bytes = await bundleBytes([p1, p2]);
    const seen: number[][] = [];
    const pieces = await collect(readBundle(Readable.from([bytes]), { onManifest: (m) => seen.push(m.pieces.map((p) => p.seq)) }));
    expect(seen).to.deep.equal([[p1.seq, p2.seq]]);
    expect(pieces).to.have.length(2);
    const stop = new Error('refused by its manifest');
    let yielded = 0;
    try {
      const it = readBundle(Readable.from([bytes]), { onManifest: () => { throw stop; } });
      while (!(await it.next()).done) ++yielded;
      expect.fail('expected a throw');
    } catch (err) {
      expect(err).to.equal(stop);
    }
    expect(yielded).to.equal(0);
  });

  it('with shareSource, gives views of one source buffer read in slices (no copy), and copies otherwise', async () => {
    const bytes = await bundleBytes([p1, p2, p3]);
    for (const sizes of [[bytes.length], [512], [1000, 7, 4096]]) {
      const shared = await collect(readBundle(chunked(bytes, sizes), { plan: PLAN, shareSource: true }));
      const copied = await collect(readBundle(chunked(bytes, sizes), { plan: PLAN }));
      expect(shared.map((p) => Buffer.from(p.data))).to.deep.equal([p1, p2, p3].map((p) => Buffer.from(p.data)));
      expect(copied.map((p) => Buffer.from(p.data))).to.deep.equal([p1, p2, p3].map((p) => Buffer.from(p.data)));
      for (const p of shared) if (p.data.length > 0) expect(p.data.buffer).to.equal(bytes.buffer);
      for (const p of copied) expect(p.data.buffer).to.not.equal(bytes.buffer);
    }
    // slices of different buffers cannot be one view: copied, and still checked
    const separate = Readable.from(Array.from({ length: Math.ceil(bytes.length / 333) }, (_, k) => Buffer.from(bytes.subarray(k * 333, (k + 1) * 333))));
    const got = await collect(readBundle(separate, { plan: PLAN, shareSource: true }));
    expect(got.map((p) => Buffer.from(p.data))).to.deep.equal([p1, p2, p3].map((p) => Buffer.from(p.data)));
    const tampered = Buffer.from(bytes);
    const at = tampered.length - 1024 - 512 - 1;
    tampered[at] = tampered[at]! ^ 1;
    await expectCode(collect(readBundle(chunked(tampered, [512]), { plan: PLAN, shareSource: true })), 'ERR_PIECE_CHECKSUM_MISMATCH');
  });

  it('names pieces with at least six digits', () => {
    expect(pieceEntryName(1)).to.equal('piece-000001.bin');
    expect(pieceEntryName(1234567)).to.equal('piece-1234567.bin');
  });
});
