import { open, readFile, rm, stat, writeFile } from 'node:fs/promises';

import { parseMapfile } from '@ddferry/mapfile';
import { expect } from 'chai';

import { run } from '../src/cli.js';
import type { AssemblerError } from '../src/errors.js';
import { Image } from '../src/image.js';
import type { ImportDdrescueOptions } from '../src/import-ddrescue.js';
import { importDdrescueChunk, importDdrescueChunks, runImportDdrescue } from '../src/import-ddrescue.js';

import { bindRequest, bytesOf, FINGERPRINT, RESCUE_ID, SOURCE_SIZE, tempDir } from './helpers.js';

type Row = readonly [pos: number, size: number, status: string];

const MIB = 1024 * 1024;

/** A GNU ddrescue mapfile of `rows`. */
function mapText(rows: readonly Row[], current = '+'): string {
  const lines = ['# Mapfile. Created by a test', `0x00000000     ${current}               1`, '#      pos        size  status'];
  for (const [pos, size, status] of rows) lines.push(`0x${pos.toString(16).padStart(8, '0')}  0x${size.toString(16).padStart(8, '0')}  ${status}`);
  return `${lines.join('\n')}\n`;
}

/** The blocks of a mapfile, neighbours of one status joined. */
async function rowsOf(path: string): Promise<Row[]> {
  const m = parseMapfile(await readFile(path), { file: path });
  const c = m.blocks.compact();
  const out: Row[] = [];
  for (let i = 0; i < c.length; ++i) out.push([c.pos(i), c.size(i), c.status(i)]);
  return out;
}

/** `rows` with neighbours of one status joined. */
function compactRows(rows: readonly Row[]): Row[] {
  const out: Row[] = [];
  for (const r of rows) {
    const last = out[out.length - 1];
    if (last !== undefined && last[2] === r[2] && last[0] + last[1] === r[0]) out[out.length - 1] = [last[0], last[1] + r[1], r[2]];
    else out.push(r);
  }
  return out;
}

/** A chunk map as `ddferry-map plan` writes it: `?` around one `+` block. */
function chunkMap(pos: number, size: number, sourceSize: number): string {
  const rows: Row[] = [];
  if (pos > 0) rows.push([0, pos, '?']);
  rows.push([pos, size, '+']);
  if (pos + size < sourceSize) rows.push([pos + size, sourceSize - pos - size, '?']);
  return mapText(rows);
}

/** Write `source` bytes of the `+` rows of `common` inside `[pos, end)` at their positions: what ddrescue -m leaves. */
async function writeSparseChunk(path: string, source: Uint8Array, common: readonly Row[], pos: number, end: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (const [p, s, st] of common) {
      const a = Math.max(p, pos);
      const b = Math.min(p + s, end);
      if (st === '+' && a < b) await fh.write(source, a, b - a, a);
    }
  } finally {
    await fh.close();
  }
}

async function expectCode(p: Promise<unknown>, code: string): Promise<AssemblerError> {
  try {
    await p;
  } catch (err) {
    expect((err as { code?: unknown }).code, String(err)).to.equal(code);
    return err as AssemblerError;
  }
  throw new Error(`expected ${code}`);
}

const SIZE = 64 * 1024;
const CHUNKS: readonly (readonly [number, number])[] = [[0, 20480], [20480, 20480], [40960, SIZE - 40960]];
/** PC_A's common map after ddrescue -m of every chunk: bad and untried areas in each. */
const COMMON: readonly Row[] = [
  [0, 4096, '+'], [4096, 512, '-'], [4608, 3584, '+'], [8192, 1024, '/'], [9216, 11264, '+'],
  [20480, 6144, '+'], [26624, 2048, '*'], [28672, 12288, '+'],
  [40960, 10240, '+'], [51200, 1536, '-'], [52736, 12800, '?'],
];

describe('importDdrescueChunk', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let source: Uint8Array;
  let image: string;
  const warnings: string[] = [];
  const opened: Image[] = [];

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    source = bytesOf(SIZE, 7);
    image = `${dir}/image.raw`;
    warnings.length = 0;
    await writeFile(`${dir}/common.map`, mapText(COMMON));
    for (const [i, [pos, size]] of CHUNKS.entries()) {
      await writeFile(`${dir}/chunk${i}.map`, chunkMap(pos, size, SIZE));
      await writeSparseChunk(`${dir}/chunk${i}.raw`, source, COMMON, pos, pos + size);
    }
  });
  afterEach(async () => {
    for (const img of opened.splice(0)) await img.close();
    await cleanup();
  });

  async function openImage(path = image, options: Parameters<typeof Image.open>[1] = {}): Promise<Image> {
    const img = await Image.open(path, options);
    opened.push(img);
    return img;
  }

  function opts(i: number, extra: Partial<ImportDdrescueOptions> = {}): ImportDdrescueOptions {
    return { chunkFile: `${dir}/chunk${i}.raw`, domainMap: `${dir}/chunk${i}.map`, commonMap: `${dir}/common.map`, warn: (m) => warnings.push(m), ...extra };
  }

  async function imageBytes(): Promise<Uint8Array> {
    const buf = await readFile(image);
    const out = new Uint8Array(SIZE);
    out.set(buf.subarray(0, SIZE));
    return out;
  }

  function expectRescuedEqual(bytes: Uint8Array, rows: readonly Row[]): void {
    for (const [p, s, st] of rows) {
      if (st === '+') expect(Buffer.from(bytes.subarray(p, p + s)).equals(Buffer.from(source.subarray(p, p + s))), `bytes ${p}+${s}`).to.equal(true);
    }
  }

  it('ends with IMAGE.map equal to COMMON.map and the image equal to the source on every + byte when every chunk is imported', async () => {
    const img = await openImage();
    let written = 0;
    for (let i = 0; i < CHUNKS.length; ++i) written += (await importDdrescueChunk(img, opts(i))).writtenBytes;
    expect(await rowsOf(img.mapPath)).to.deep.equal(compactRows(COMMON));
    expectRescuedEqual(await imageBytes(), COMMON);
    expect(written).to.equal(COMMON.filter((r) => r[2] === '+').reduce((n, r) => n + r[1], 0));
    expect(img.binding).to.equal(undefined);
    expect(warnings.some((w) => w.includes('no --map'))).to.equal(false);
  });

  it('changes nothing outside the domain and raises the other statuses of COMMON.map inside it', async () => {
    const img = await openImage();
    const r = await importDdrescueChunk(img, opts(1));
    expect(await rowsOf(img.mapPath)).to.deep.equal([[0, 20480, '?'], [20480, 6144, '+'], [26624, 2048, '*'], [28672, 12288, '+'], [40960, SIZE - 40960, '?']]);
    expect(r).to.include({ sourceSize: SIZE, domainBytes: 20480, rescuedBytes: 18432, writtenBytes: 18432, keptBytes: 0, statusBytes: 2048, batches: 1 });
    const bytes = await imageBytes();
    expect(bytes.subarray(0, 20480).every((b) => b === 0)).to.equal(true);
  });

  it('writes nothing and changes nothing when the same chunk is imported twice', async () => {
    const img = await openImage();
    await importDdrescueChunk(img, opts(0));
    const map1 = await rowsOf(img.mapPath);
    const bytes1 = await imageBytes();
    const r = await importDdrescueChunk(img, opts(0));
    expect(r.writtenBytes).to.equal(0);
    expect(r.keptBytes).to.equal(r.rescuedBytes);
    expect(await rowsOf(img.mapPath)).to.deep.equal(map1);
    expect(Buffer.from(await imageBytes()).equals(Buffer.from(bytes1))).to.equal(true);
  });

  it('keeps bytes already + in IMAGE.map and statuses further forward (forward-only, first copy wins)', async () => {
    // IMAGE.map made by GNU ddrescue elsewhere: 0-2048 rescued with other bytes, 4096-4608 still '?', 8192-9216 '-'
    await writeFile(image, Buffer.alloc(2048, 0xee));
    await writeFile(`${image}.map`, mapText([[0, 2048, '+'], [2048, 6144, '?'], [8192, 1024, '-'], [9216, SIZE - 9216, '?']], '?'));
    const img = await openImage();
    const r = await importDdrescueChunk(img, opts(0));
    expect(r.keptBytes).to.equal(2048);
    expect(await rowsOf(img.mapPath)).to.deep.equal([[0, 4096, '+'], [4096, 512, '-'], [4608, 3584, '+'], [8192, 1024, '-'], [9216, 11264, '+'], [20480, SIZE - 20480, '?']]);
    const bytes = await imageBytes();
    expect(bytes.subarray(0, 2048).every((b) => b === 0xee)).to.equal(true);
    expectRescuedEqual(bytes, [[2048, 2048, '+'], [4608, 3584, '+'], [9216, 11264, '+']]);
  });

  it('takes the whole domain as rescued without --map, and warns that holes read as zeros', async () => {
    const img = await openImage();
    const r = await importDdrescueChunk(img, opts(0, { commonMap: undefined }));
    expect(r.rescuedBytes).to.equal(20480);
    expect(await rowsOf(img.mapPath)).to.deep.equal([[0, 20480, '+'], [20480, SIZE - 20480, '?']]);
    expect(warnings.join('\n')).to.match(/no --map/).and.match(/read as zeros/);
    const bytes = await imageBytes();
    expect(bytes.subarray(4096, 4608).every((b) => b === 0)).to.equal(true);
    expectRescuedEqual(bytes, [[0, 4096, '+'], [9216, 11264, '+']]);
  });

  it('imports up to the end of a short sparse chunk file without --map, with a warning', async () => {
    // chunk 2 ends with unrescued bytes: ddrescue's file stops at 51200
    const img = await openImage();
    expect((await stat(`${dir}/chunk2.raw`)).size).to.equal(51200);
    const r = await importDdrescueChunk(img, opts(2, { commonMap: undefined }));
    expect(r.rescuedBytes).to.equal(51200 - 40960);
    expect(warnings.join('\n')).to.match(/ends at byte 51200, before the domain's end \(65536\)/);
    expect(await rowsOf(img.mapPath)).to.deep.equal([[0, 40960, '?'], [40960, 10240, '+'], [51200, SIZE - 51200, '?']]);
  });

  it('reads a packed chunk file: byte k is source byte domainStart + k', async () => {
    const [pos, size] = CHUNKS[1]!;
    await writeFile(`${dir}/chunk1.packed`, source.subarray(pos, pos + size));
    const img = await openImage();
    await importDdrescueChunk(img, opts(1, { chunkFile: `${dir}/chunk1.packed`, packed: true }));
    expect(await rowsOf(img.mapPath)).to.deep.equal([[0, 20480, '?'], [20480, 6144, '+'], [26624, 2048, '*'], [28672, 12288, '+'], [40960, SIZE - 40960, '?']]);
    expectRescuedEqual(await imageBytes(), COMMON.filter((r) => r[0] >= pos && r[0] < pos + size));
  });

  it('refuses a packed file shorter than the rescued part of the domain (ERR_CHUNK_FILE_SHORT), writing nothing', async () => {
    const [pos] = CHUNKS[1]!;
    await writeFile(`${dir}/chunk1.packed`, source.subarray(pos, pos + 10000));
    const img = await openImage();
    const err = await expectCode(importDdrescueChunk(img, opts(1, { chunkFile: `${dir}/chunk1.packed`, packed: true })), 'ERR_CHUNK_FILE_SHORT');
    expect(err.message).to.include('chunk1.packed').and.include('10000 bytes').and.include('20480');
    expect(img.finishedRanges()).to.deep.equal([]);
  });

  it('refuses a sparse file that ends before bytes COMMON.map says are rescued (ERR_CHUNK_FILE_SHORT)', async () => {
    const fh = await open(`${dir}/chunk0.raw`, 'r+');
    await fh.truncate(15000);
    await fh.close();
    const img = await openImage();
    const err = await expectCode(importDdrescueChunk(img, opts(0)), 'ERR_CHUNK_FILE_SHORT');
    expect(err.message).to.include('15000 bytes').and.include('20480');
  });

  it('refuses COMMON.map and IMAGE.map of different sizes, showing both', async () => {
    await writeFile(`${image}.map`, mapText([[0, SIZE * 2, '?']], '?'));
    const img = await openImage();
    const err = await expectCode(importDdrescueChunk(img, opts(0)), 'ERR_IMAGE_MAP_SIZE');
    expect(err.message).to.include(`${SIZE} bytes`).and.include(`${SIZE * 2} bytes`).and.include('common.map');
  });

  it('refuses a domain that goes past the source (ERR_DOMAIN_OUTSIDE_SOURCE)', async () => {
    await writeFile(`${dir}/big.map`, chunkMap(SIZE - 4096, 8192, SIZE + 4096));
    const img = await openImage();
    const err = await expectCode(importDdrescueChunk(img, opts(0, { domainMap: `${dir}/big.map` })), 'ERR_DOMAIN_OUTSIDE_SOURCE');
    expect(err.message).to.include(String(SIZE + 4096)).and.include(`${SIZE} bytes`);
  });

  it('warns when the chunk map describes a source of another size, and uses its + blocks', async () => {
    await writeFile(`${dir}/other.map`, chunkMap(0, 4096, SIZE * 2));
    const img = await openImage();
    const r = await importDdrescueChunk(img, opts(0, { domainMap: `${dir}/other.map` }));
    expect(r.domainBytes).to.equal(4096);
    expect(warnings.join('\n')).to.include(`a source of ${SIZE * 2} bytes, but the source has ${SIZE}`);
  });

  it('refuses a domain map without + (ERR_DOMAIN_EMPTY) and a missing chunk file (ERR_CHUNK_FILE_OPEN)', async () => {
    await writeFile(`${dir}/empty.map`, mapText([[0, SIZE, '?']]));
    const img = await openImage();
    await expectCode(importDdrescueChunk(img, opts(0, { domainMap: `${dir}/empty.map` })), 'ERR_DOMAIN_EMPTY');
    const err = await expectCode(importDdrescueChunk(img, opts(0, { chunkFile: `${dir}/nope.raw` })), 'ERR_CHUNK_FILE_OPEN');
    expect(err.subject).to.equal(`${dir}/nope.raw`);
    await expectCode(importDdrescueChunk(img, opts(0, { chunkFile: image })), 'ERR_CHUNK_FILE_IS_IMAGE');
  });

  it('refuses a malformed COMMON.map with its file and line, before touching the image', async () => {
    await writeFile(`${dir}/common.map`, '0 + 1\n0 100 +\n50 100 +\n');
    const img = await openImage();
    const err = await expectCode(importDdrescueChunk(img, opts(0)), 'ERR_MAPFILE_NOT_CONTIGUOUS');
    expect(String(err.message)).to.include('common.map');
    expect(img.mapSize).to.equal(undefined);
  });

  it('needs a source size: a loose domain map without --map or IMAGE.map is refused (ERR_DOMAIN_SIZE_UNKNOWN)', async () => {
    await writeFile(`${dir}/loose.map`, mapText([[4096, 4096, '+']]));
    const img = await openImage();
    await expectCode(importDdrescueChunk(img, opts(0, { domainMap: `${dir}/loose.map`, commonMap: undefined })), 'ERR_DOMAIN_SIZE_UNKNOWN');
  });

  it('fsyncs and saves IMAGE.map once per batch, and a crash before a save leaves only fsynced data claimed', async () => {
    const steps: string[] = [];
    let failAt = 2;
    const img = await openImage(image, {
      onStep: (step) => {
        steps.push(step);
        if (step === 'save-map' && --failAt === 0) throw new Error('simulated crash');
      },
    });
    const crash = await importDdrescueChunk(img, opts(0, { batchBytes: 4096 })).then(() => undefined, (e: unknown) => e);
    expect(String(crash)).to.include('simulated crash');
    // first batch (4096 bytes) saved, second (two ranges) written and fsynced but not claimed
    expect(steps).to.deep.equal(['save-map', 'write', 'sync', 'save-map', 'write', 'write', 'sync', 'save-map'].slice(1));
    expect(await rowsOf(img.mapPath)).to.deep.equal([[0, 4096, '+'], [4096, 512, '-'], [4608, 3584, '?'], [8192, 1024, '/'], [9216, SIZE - 9216, '?']]);
    await img.close();
    opened.length = 0;
    steps.length = 0;
    const again = await openImage(image, { onStep: (step) => steps.push(step) });
    const r = await importDdrescueChunk(again, opts(0, { batchBytes: 4096 }));
    expect(r.batches).to.equal(4); // 3584 + 11264 bytes left, in batches of 4096
    expect(steps.filter((s) => s === 'sync')).to.have.length(4);
    expect(await rowsOf(again.mapPath)).to.deep.equal([...COMMON.slice(0, 5), [20480, SIZE - 20480, '?']]);
    expectRescuedEqual(await imageBytes(), COMMON.slice(0, 5));
  });

  it('importDdrescueChunks puts several chunks into one fsync and IMAGE.map save, ending as one by one', async () => {
    const steps: string[] = [];
    const img = await openImage(image, { onStep: (step) => steps.push(step) });
    const told: string[] = [];
    const chunks = CHUNKS.map((_, i) => ({ chunkFile: `${dir}/chunk${i}.raw`, domainMap: `${dir}/chunk${i}.map` }));
    const results = await importDdrescueChunks(img, chunks, { commonMap: `${dir}/common.map`, warn: (m) => warnings.push(m), onChunk: (c) => told.push(c.chunkFile) });
    expect(told).to.deep.equal(chunks.map((c) => c.chunkFile));
    expect(steps.filter((x) => x === 'sync')).to.have.length(1);
    expect(steps.filter((x) => x === 'save-map')).to.have.length(1);
    expect(results.map((r) => r.batches)).to.deep.equal([1, 1, 1]);
    expect(await rowsOf(img.mapPath)).to.deep.equal(compactRows(COMMON));
    expectRescuedEqual(await imageBytes(), COMMON);
    // in batches smaller than a chunk: split across commits, same end
    await img.close();
    opened.length = 0;
    for (const f of [image, `${image}.map`, `${image}.map.bak`]) await rm(f, { force: true });
    steps.length = 0;
    const again = await openImage(image, { onStep: (step) => steps.push(step) });
    const r2 = await importDdrescueChunks(again, chunks, { commonMap: `${dir}/common.map`, batchBytes: 10000 });
    expect(steps.filter((x) => x === 'sync').length).to.equal(Math.ceil(r2.reduce((n, r) => n + r.writtenBytes, 0) / 10000));
    expect(await rowsOf(again.mapPath)).to.deep.equal(compactRows(COMMON));
    expectRescuedEqual(await imageBytes(), COMMON);
  });

  it('importDdrescueChunks takes a byte found in two chunk files from the first one (first copy wins)', async () => {
    const other = bytesOf(SIZE, 99);
    await writeFile(`${dir}/whole.map`, chunkMap(0, SIZE, SIZE));
    await writeFile(`${dir}/whole.raw`, other);
    const img = await openImage();
    const results = await importDdrescueChunks(img, [{ chunkFile: `${dir}/chunk0.raw`, domainMap: `${dir}/chunk0.map` }, { chunkFile: `${dir}/whole.raw`, domainMap: `${dir}/whole.map` }], { commonMap: `${dir}/common.map` });
    const bytes = await imageBytes();
    expectRescuedEqual(bytes, COMMON.slice(0, 5));
    expect(Buffer.from(bytes.subarray(20480, 26624)).equals(Buffer.from(other.subarray(20480, 26624)))).to.equal(true);
    expect(results[1]!.keptBytes).to.equal(COMMON.slice(0, 5).filter((r) => r[2] === '+').reduce((n, r) => n + r[1], 0));
    expect(await rowsOf(img.mapPath)).to.deep.equal(compactRows(COMMON));
  });

  it('stops between batches when aborted, with the batches done saved', async () => {
    const controller = new AbortController();
    let saves = 0;
    const img = await openImage(image, {
      onStep: (step) => {
        if (step === 'save-map' && ++saves === 1) controller.abort();
      },
    });
    const err = await importDdrescueChunk(img, opts(0, { batchBytes: 4096, signal: controller.signal })).then(() => undefined, (e: unknown) => e);
    expect(err).to.equal(controller.signal.reason);
    expect(img.finishedRanges()).to.deep.equal([{ pos: 0, size: 4096 }]);
  });

  it('imports into an image bound to a ddferry rescue of the same size, and refuses another size', async () => {
    const img = await openImage();
    await img.bind(bindRequest());
    await expectCode(importDdrescueChunk(img, opts(0)), 'ERR_IMAGE_MAP_SIZE');
    await writeFile(`${dir}/c.map`, chunkMap(4096, 4096, SOURCE_SIZE));
    await writeFile(`${dir}/c.raw`, Buffer.alloc(8192, 0x5a));
    const r = await importDdrescueChunk(img, { chunkFile: `${dir}/c.raw`, domainMap: `${dir}/c.map`, warn: (m) => warnings.push(m) });
    expect(r.writtenBytes).to.equal(4096);
    expect(img.finishedRanges()).to.deep.equal([{ pos: 4096, size: 4096 }]);
    expect(img.binding?.rescueId).to.equal(RESCUE_ID);
    const again = JSON.parse(await readFile(img.bindingPath, 'utf8')) as { rescueId: string; fingerprint: { size: number } };
    expect(again.rescueId).to.equal(RESCUE_ID);
    expect(again.fingerprint.size).to.equal(FINGERPRINT.size);
  });

  it('copies a domain crossing 2^32 from a sparse chunk file to its positions', async function () {
    this.timeout(120_000);
    const big = 2 ** 32 + 8 * MIB;
    const pos = 2 ** 32 - 3 * MIB - 512;
    const size = 6 * MIB;
    const data = bytesOf(size, 99);
    await writeFile(`${dir}/big.map`, chunkMap(pos, size, big));
    await writeFile(`${dir}/bigcommon.map`, mapText([[0, pos + 4096, '?'], [pos + 4096, size - 8192, '+'], [pos + size - 4096, big - pos - size + 4096, '?']], '?'));
    const fh = await open(`${dir}/big.raw`, 'w');
    await fh.write(data, 0, size, pos);
    await fh.close();
    const img = await openImage(`${dir}/big.img`);
    const r = await importDdrescueChunk(img, { chunkFile: `${dir}/big.raw`, domainMap: `${dir}/big.map`, commonMap: `${dir}/bigcommon.map`, batchBytes: 2 * MIB });
    expect(r).to.include({ writtenBytes: size - 8192, batches: 3 });
    expect(await rowsOf(img.mapPath)).to.deep.equal([[0, pos + 4096, '?'], [pos + 4096, size - 8192, '+'], [pos + size - 4096, big - pos - size + 4096, '?']]);
    const out = await open(`${dir}/big.img`, 'r');
    const back = new Uint8Array(size);
    await out.read(back, 0, size, pos);
    await out.close();
    expect(Buffer.from(back.subarray(4096, size - 4096)).equals(Buffer.from(data.subarray(4096, size - 4096)))).to.equal(true);
    expect(back.subarray(0, 4096).every((b) => b === 0)).to.equal(true);
    expect((await stat(`${dir}/big.img`)).blocks * 512).to.be.below(64 * MIB);
  });
});

describe('ddferry-assembler import-ddrescue', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => cleanup());

  function io(): { out: string[]; err: string[]; io: { stdout(t: string): void; stderr(t: string): void } } {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { stdout: (t) => out.push(t), stderr: (t) => err.push(t) } };
  }

  it('merges a chunk, prints what it did, and warns on stderr without --map', async () => {
    await writeFile(`${dir}/c.map`, chunkMap(0, 8192, 16384));
    await writeFile(`${dir}/c.raw`, Buffer.alloc(8192, 1));
    const t = io();
    expect(await runImportDdrescue([`${dir}/c.raw`, '--domain', `${dir}/c.map`, `${dir}/img`], t.io)).to.equal(0);
    expect(t.out.join('')).to.match(/8192 bytes written/);
    expect(t.err.join('')).to.match(/warning: no --map/);
    expect(await rowsOf(`${dir}/img.map`)).to.deep.equal([[0, 8192, '+'], [8192, 8192, '?']]);
    expect((await readFile(`${dir}/img.map`, 'latin1'))).to.include('ddferry-assembler import-ddrescue');
  });

  it('merges several CHUNK.raw --domain CHUNK.map pairs in one run, each with its own domain', async () => {
    await writeFile(`${dir}/a.map`, chunkMap(0, 8192, 24576));
    await writeFile(`${dir}/b.map`, chunkMap(16384, 8192, 24576));
    await writeFile(`${dir}/a.raw`, Buffer.alloc(8192, 1));
    const b = Buffer.alloc(24576, 9);
    b.fill(2, 16384);
    await writeFile(`${dir}/b.raw`, b);
    const t = io();
    expect(await runImportDdrescue([`${dir}/a.raw`, '--domain', `${dir}/a.map`, `${dir}/b.raw`, '--domain', `${dir}/b.map`, `${dir}/img`], t.io)).to.equal(0);
    expect(t.out.join('')).to.include('imported').and.include('a.raw').and.include('b.raw');
    expect(await rowsOf(`${dir}/img.map`)).to.deep.equal([[0, 8192, '+'], [8192, 8192, '?'], [16384, 8192, '+']]);
    const img = await readFile(`${dir}/img`);
    expect(img.subarray(0, 8192).every((x) => x === 1)).to.equal(true);
    expect(img.subarray(16384, 24576).every((x) => x === 2)).to.equal(true);
    await expectCode(runImportDdrescue([`${dir}/a.raw`, `${dir}/b.raw`, '--domain', `${dir}/a.map`, `${dir}/img`], io().io), 'ERR_USAGE');
  });

  it('exits 2 for a malformed domain mapfile and 1 for a missing chunk file through ddferry-assembler, naming the file', async () => {
    await writeFile(`${dir}/bad.map`, '0 + 1\n0 100 +\nzz\n');
    const t = io();
    expect(await run(['import-ddrescue', `${dir}/c.raw`, '--domain', `${dir}/bad.map`, `${dir}/img`], t.io)).to.equal(2);
    expect(t.err.join('')).to.match(/ERR_MAPFILE_\w+/).and.include('bad.map');
    await writeFile(`${dir}/c.map`, chunkMap(0, 8192, 16384));
    const u = io();
    expect(await run(['import-ddrescue', `${dir}/missing.raw`, '--domain', `${dir}/c.map`, `${dir}/img`], u.io)).to.equal(1);
    expect(u.err.join('')).to.include('ERR_CHUNK_FILE_OPEN').and.include('missing.raw');
  });

  it('refuses a command line without --domain or IMAGE (ERR_USAGE)', async () => {
    await expectCode(runImportDdrescue([`${dir}/c.raw`, `${dir}/img`], io().io), 'ERR_USAGE');
    await expectCode(runImportDdrescue([`${dir}/c.raw`, '--domain', 'x.map'], io().io), 'ERR_USAGE');
    await expectCode(runImportDdrescue(['--bogus'], io().io), 'ERR_USAGE');
  });

  it('returns 130 when aborted before the first batch, leaving the image untouched', async () => {
    await writeFile(`${dir}/c.map`, chunkMap(0, 8192, 16384));
    await writeFile(`${dir}/c.raw`, Buffer.alloc(8192, 1));
    const controller = new AbortController();
    controller.abort();
    const t = io();
    expect(await runImportDdrescue([`${dir}/c.raw`, '--domain', `${dir}/c.map`, `${dir}/img`], t.io, controller.signal)).to.equal(130);
    expect(t.err.join('')).to.match(/interrupted/);
    await expectCode(stat(`${dir}/img.map`), 'ENOENT');
  });
});
