/**
 * The chunk-file writer (`--format ddrescue-chunks`): spans, names, packed and sparse
 * files, their domain maps, the commands' list, receipts, and failures. GNU ddrescue
 * itself runs the commands in test/compat/export-gnu.test.ts.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { parseMapfile } from '@ddferry/mapfile';
import { type Piece, fileSystemTypeOf, makeExtent } from '@ddferry/protocol';

import {
  CHUNK_FILE_NAME, ChunkFileWriter, chunkFileBase, layoutForFileSystem, planSpans, readChunkFileReceipts,
} from '../src/stick/chunk-files.js';
import type { ChunkFileLayout } from '../src/stick/chunk-files.js';

const RESCUE = '0b9f3c2e-4d5a-4e6f-8a7b-1c2d3e4f5a6b';
const MIB = 1024 * 1024;
const SOURCE_SIZE = 16 * MIB;
const source = randomBytes(SOURCE_SIZE);

/** A piece of chunk `chunk` holding the source's bytes at `ranges` ([pos, size]), with a `-` after each. */
function makePiece(seq: number, chunk: number, ranges: ReadonlyArray<readonly [number, number]>): Piece {
  const extents = ranges.map(([pos, size]) => makeExtent(pos, source.subarray(pos, pos + size)));
  const delta = ranges.flatMap(([pos, size]) => [{ pos, size, status: '+' as const }, { pos: pos + size, size: 512, status: '-' as const }]);
  return { rescueId: RESCUE, seq, chunk, extents, delta, data: Buffer.concat(ranges.map(([pos, size]) => source.subarray(pos, pos + size))) };
}

/** The `+` blocks of a mapfile's text, as [pos, end). */
function finished(text: Buffer | string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  parseMapfile(Buffer.from(text)).blocks.forEachBlock((pos, end, code) => {
    if (code === 4) out.push([pos, end]);
  });
  return out;
}

function writer(layout: ChunkFileLayout, extra: Partial<ConstructorParameters<typeof ChunkFileWriter>[0]> = {}): ChunkFileWriter {
  return new ChunkFileWriter({ rescueId: RESCUE, sourceSize: SOURCE_SIZE, chunkCount: 4, chunkSize: 4 * MIB, layout, now: () => new Date(0), ...extra });
}

describe('chunk files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'chunk-files-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe('planSpans', () => {
    const o = { maxGap: MIB, maxFileSize: 4 * MIB, layout: 'packed' as const };
    it('keeps a gap of exactly maxGap in one span and splits at maxGap + 1', () => {
      const spans = planSpans([{ pos: 0, size: MIB }, { pos: 2 * MIB, size: MIB }, { pos: 4 * MIB + 1, size: 2 * MIB }], o);
      expect(spans.map((s) => [s.pos, s.end, s.parts.length])).to.deep.equal([[0, 3 * MIB, 2], [4 * MIB + 1, 6 * MIB + 1, 1]]);
      expect(spans[1]!.parts[0]!.dataOffset).to.equal(2 * MIB);
    });
    it('splits packed spans where the zeros would outnumber the data; sparse spans keep them (holes)', () => {
      const scattered = [0, 1, 2, 3].map((k) => ({ pos: k * 65536, size: 512 }));
      expect(planSpans(scattered, o).map((s) => s.parts.length)).to.deep.equal([1, 1, 1, 1]);
      expect(planSpans(scattered, { ...o, layout: 'sparse' }).map((s) => s.parts.length)).to.deep.equal([4]);
      // zeros up to the data (the next extent's included) plus 16 KiB join; one byte more splits
      const k16 = 16 * 1024;
      expect(planSpans([{ pos: 0, size: 512 }, { pos: 512 + 1024 + k16, size: 512 }], o)).to.have.length(1);
      expect(planSpans([{ pos: 0, size: 512 }, { pos: 512 + 1024 + k16 + 1, size: 512 }], o)).to.have.length(2);
      // every fourth sector good: one span per some twenty sectors, not one per sector
      const quarter = Array.from({ length: 200 }, (_, k) => ({ pos: k * 2048, size: 512 }));
      expect(planSpans(quarter, o).length).to.be.within(5, 20);
    });
    it('cuts packed spans so no file exceeds maxFileSize, and leaves sparse spans whole', () => {
      const packed = planSpans([{ pos: 1000, size: 10 * MIB }], o);
      expect(packed.map((s) => s.end - s.pos)).to.deep.equal([4 * MIB, 4 * MIB, 2 * MIB]);
      expect(packed.map((s) => s.parts[0]!.dataOffset)).to.deep.equal([0, 4 * MIB, 8 * MIB]);
      const sparse = planSpans([{ pos: 1000, size: 10 * MIB }], { ...o, layout: 'sparse' });
      expect(sparse).to.have.length(1);
    });
    it('starts a new packed span where a gap would push the file past maxFileSize', () => {
      const spans = planSpans([{ pos: 0, size: 4 * MIB - 10 }, { pos: 4 * MIB - 5, size: 10 }], o);
      expect(spans.map((s) => [s.pos, s.end])).to.deep.equal([[0, 4 * MIB - 10], [4 * MIB - 5, 4 * MIB + 5]]);
    });
    it('covers every extent byte once, in order, within the limits (property)', () => {
      fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 * MIB }), fc.integer({ min: 1, max: 3 * MIB })), { minLength: 0, maxLength: 30 }), fc.constantFrom<ChunkFileLayout>('packed', 'sparse'), (raw, layout) => {
        let at = 0;
        const extents = raw.map(([gap, size]) => {
          const e = { pos: at + gap, size };
          at = e.pos + size;
          return e;
        });
        const spans = planSpans(extents, { ...o, layout });
        const parts = spans.flatMap((s) => s.parts);
        let offset = 0;
        let end = -1;
        for (const p of parts) {
          expect(p.dataOffset).to.equal(offset);
          expect(p.pos).to.be.at.least(end);
          offset += p.size;
          end = p.pos + p.size;
        }
        expect(offset).to.equal(extents.reduce((n, e) => n + e.size, 0));
        for (const s of spans) {
          const data = s.parts.reduce((n, p) => n + p.size, 0);
          if (layout === 'packed') expect(s.end - s.pos).to.be.at.most(o.maxFileSize).and.at.most(2 * data + 16 * 1024);
          for (let k = 1; k < s.parts.length; k++) expect(s.parts[k]!.pos - (s.parts[k - 1]!.pos + s.parts[k - 1]!.size)).to.be.at.most(o.maxGap);
        }
      }));
    });
  });

  describe('names and file systems', () => {
    it('names span files chunkCCCC-SSSSSS-NN, wider when the plan or the seq needs it', () => {
      expect(chunkFileBase(3, 10, 123, 1)).to.equal('chunk0003-000123-01');
      expect(chunkFileBase(3, 12000, 1234567, 100)).to.equal('chunk00003-1234567-100');
      expect(CHUNK_FILE_NAME.test('chunk0003-000123-01.raw')).to.equal(true);
      expect(CHUNK_FILE_NAME.test('chunk0003-000123-0.raw')).to.equal(false);
      expect(CHUNK_FILE_NAME.test('../chunk0003-000123-01.raw')).to.equal(false);
    });
    it('packs on FAT32, exFAT, FUSE and unknown file systems; sparse on ext4, xfs, btrfs, tmpfs', () => {
      for (const t of ['vfat', 'msdos', 'exfat', 'fuse.fusefat', 'fuse.exfat-fuse', 'fuseblk', 'ntfs3', 'nfs4', undefined]) expect(layoutForFileSystem(t), String(t)).to.equal('packed');
      for (const t of ['ext4', 'ext3', 'xfs', 'btrfs', 'tmpfs']) expect(layoutForFileSystem(t), t).to.equal('sparse');
    });
    it('reads the file system of a folder from /proc/self/mountinfo', async () => {
      expect(await fileSystemTypeOf('/proc/self')).to.equal('proc');
      expect(await fileSystemTypeOf('/sys/kernel')).to.be.oneOf(['sysfs', 'debugfs', 'securityfs', 'tracefs', 'configfs']);
    });
  });

  describe('#write (packed)', () => {
    it('writes each span from its first byte, zeros in gaps, with maps in file and source coordinates', async () => {
      const w = writer('packed');
      const piece = makePiece(7, 1, [[4 * MIB + 1000, 5000], [4 * MIB + 10000, 512], [6 * MIB, 4096]]);
      const r = await w.write(piece, dir);
      expect(r.files).to.deep.equal(['chunk0001-000007-01.raw', 'chunk0001-000007-01.map', 'chunk0001-000007-01.src.map', 'chunk0001-000007-02.raw', 'chunk0001-000007-02.map', 'chunk0001-000007-02.src.map']);
      expect(w.names(piece)).to.deep.equal(r.files);
      expect(r.bytes).to.equal(w.sizeOf(piece));
      expect(w.estimate(piece.data.length, piece.extents.length + piece.delta.length)).to.be.at.least(r.bytes);

      const raw1 = readFileSync(join(dir, 'chunk0001-000007-01.raw'));
      const s = 4 * MIB + 1000;
      expect(raw1.length).to.equal(10512 - 1000);
      expect(raw1.subarray(0, 5000).equals(source.subarray(s, s + 5000))).to.equal(true);
      expect(raw1.subarray(5000, 9000).every((b) => b === 0)).to.equal(true);
      expect(raw1.subarray(9000).equals(source.subarray(4 * MIB + 10000, 4 * MIB + 10512))).to.equal(true);
      expect(finished(readFileSync(join(dir, 'chunk0001-000007-01.map')))).to.deep.equal([[0, 5000], [9000, 9512]]);
      expect(finished(readFileSync(join(dir, 'chunk0001-000007-01.src.map')))).to.deep.equal([[s, s + 5000], [4 * MIB + 10000, 4 * MIB + 10512]]);
      const map1 = parseMapfile(readFileSync(join(dir, 'chunk0001-000007-01.map')));
      expect(map1.blocks.end(map1.blocks.length - 1)).to.equal(raw1.length);
      const src1 = parseMapfile(readFileSync(join(dir, 'chunk0001-000007-01.src.map')));
      expect(src1.blocks.end(src1.blocks.length - 1)).to.equal(SOURCE_SIZE);
      expect(readFileSync(join(dir, 'chunk0001-000007-02.raw')).equals(source.subarray(6 * MIB, 6 * MIB + 4096))).to.equal(true);
      expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
      expect(finished(readFileSync(join(dir, 'ddrescue-image-start.map')))).to.deep.equal([]);
    });

    it('lists every span file in DDRESCUE-COMMANDS.txt and the script, with -o S and the shift', async () => {
      const w = writer('packed');
      await w.write(makePiece(1, 0, [[0, 65536]]), dir);
      await w.write(makePiece(2, 2, [[8 * MIB + 512, 1024]]), dir);
      const text = readFileSync(join(dir, 'DDRESCUE-COMMANDS.txt'), 'utf8');
      const lines = text.split('\n');
      expect(lines).to.include.members(['merge_packed chunk0000-000001-01 0 65536', `merge_packed chunk0002-000002-01 ${8 * MIB + 512} 1024`, 'IMAGE=/path/to/disk.img']);
      expect(lines.indexOf('merge_packed chunk0000-000001-01 0 65536')).to.be.below(lines.indexOf(`merge_packed chunk0002-000002-01 ${8 * MIB + 512} 1024`));
      // the first packed file's commands spelled out
      expect(text).to.include('#   ddrescue -o 0 -m chunk0000-000001-01.map chunk0000-000001-01.raw "$IMAGE" "$IMAGE.logs/chunk0000-000001-01.log"\n');
      expect(text).to.include('#   ddrescuelog --shift -o 0 "$IMAGE.logs/chunk0000-000001-01.log" > "$IMAGE.logs/chunk0000-000001-01.image.map"\n');
      expect(text).to.include('#   { cat receipts/ddrescue-done.txt && echo chunk0000-000001-01.raw; } > receipts/ddrescue-done.txt.new\n');
      expect(text).to.include('  ddrescue $Q -o "$2" -m "$1.map" "$1.raw" "$IMAGE" "$IMAGE.logs/$1.log" &&\n');
      expect(text).to.include("Bad areas (-, /, *) and what is not read yet are recorded in PC_A's");
      expect(text).to.include('ddferry-assembler import-ddrescue X.raw --domain X.src.map --packed IMAGE');
      const sh = readFileSync(join(dir, 'ddrescue-commands.sh'), 'utf8');
      expect(sh.startsWith('#!/bin/sh\n')).to.equal(true);
      expect(sh).to.include('set -eu');
      expect(sh).to.include(`\nmerge_packed chunk0002-000002-01 ${8 * MIB + 512} 1024 || [ $? -eq 2 ]\n`);
    });

    it('makes no file for a piece without data (its statuses stay in common.map)', async () => {
      const w = writer('packed');
      const piece: Piece = { rescueId: RESCUE, seq: 3, chunk: 0, extents: [], delta: [{ pos: 0, size: 512, status: '-' }], data: new Uint8Array(0) };
      expect(w.names(piece)).to.deep.equal([]);
      expect(await w.write(piece, dir)).to.deep.equal({ files: [], bytes: 0 });
      expect(readdirSync(dir).filter((n) => CHUNK_FILE_NAME.test(n))).to.deep.equal([]);
    });
  });

  describe('#write (sparse)', () => {
    it('puts each byte at its source position, with one map in source coordinates', async () => {
      const w = writer('sparse');
      const piece = makePiece(4, 3, [[12 * MIB, 8192], [12 * MIB + 65536, 512]]);
      const r = await w.write(piece, dir);
      expect(r.files).to.deep.equal(['chunk0003-000004-01.raw', 'chunk0003-000004-01.map']);
      const file = join(dir, 'chunk0003-000004-01.raw');
      const st = statSync(file);
      expect(st.size).to.equal(12 * MIB + 65536 + 512);
      expect(st.blocks * 512).to.be.below(MIB); // holes where nothing was rescued (ext4, xfs, btrfs, tmpfs)
      const raw = readFileSync(file);
      expect(raw.subarray(12 * MIB, 12 * MIB + 8192).equals(source.subarray(12 * MIB, 12 * MIB + 8192))).to.equal(true);
      expect(finished(readFileSync(join(dir, 'chunk0003-000004-01.map')))).to.deep.equal([[12 * MIB, 12 * MIB + 8192], [12 * MIB + 65536, 12 * MIB + 66048]]);
      const text = readFileSync(join(dir, 'DDRESCUE-COMMANDS.txt'), 'utf8');
      expect(text.split('\n')).to.include(`merge_sparse chunk0003-000004-01 ${12 * MIB + 66048}`);
      expect(text).to.include('#   ddrescue -m chunk0003-000004-01.map chunk0003-000004-01.raw "$IMAGE" "$IMAGE.logs/chunk0003-000004-01.log"\n');
      expect(text).to.include('#   ddrescuelog -z "$IMAGE.logs/chunk0003-000004-01.log" "$IMAGE.map" > "$IMAGE.map.new"\n');
      expect(text).not.to.match(/^# {3}ddrescuelog --shift/m);
    });
  });

  describe('a folder written before', () => {
    it('is scanned by a new writer: files listed, stale temporaries removed, a damaged map noted, deleted files dropped', async () => {
      await writer('packed').write(makePiece(1, 0, [[0, 4096]]), dir);
      await writer('packed').write(makePiece(2, 0, [[MIB, 4096]]), dir);
      writeFileSync(join(dir, '.chunk0000-000003-01.raw.tmp'), 'cut by a crash');
      writeFileSync(join(dir, 'chunk0000-000002-01.src.map'), 'garbage\n');
      const w = writer('packed');
      await w.write(makePiece(5, 1, [[4 * MIB, 4096]]), dir);
      expect(readdirSync(dir)).not.to.include('.chunk0000-000003-01.raw.tmp');
      let text = readFileSync(join(dir, 'DDRESCUE-COMMANDS.txt'), 'utf8');
      expect(text.split('\n')).to.include.members(['merge_packed chunk0000-000001-01 0 4096', `merge_packed chunk0001-000005-01 ${4 * MIB} 4096`]);
      expect(text).to.match(/NOTE: chunk0000-000002-01\.raw is not listed: its map .*chunk0000-000002-01\.src\.map cannot be used/);
      rmSync(join(dir, 'chunk0000-000001-01.raw'));
      await w.refreshCommands(dir);
      text = readFileSync(join(dir, 'DDRESCUE-COMMANDS.txt'), 'utf8');
      expect(text).not.to.include('chunk0000-000001-01');
      expect(text.split('\n')).to.include(`merge_packed chunk0001-000005-01 ${4 * MIB} 4096`);
    });
  });

  describe('failures', () => {
    it('removes what it made of the piece and rethrows the error with its code', async () => {
      const w = writer('packed');
      mkdirSync(join(dir, 'chunk0000-000009-02.raw')); // the second span's name is taken by a folder
      const piece = makePiece(9, 0, [[0, 4096], [3 * MIB, 4096]]);
      let err: unknown;
      try {
        await w.write(piece, dir);
      } catch (e) {
        err = e;
      }
      expect((err as NodeJS.ErrnoException).code).to.be.oneOf(['EISDIR', 'ENOTEMPTY', 'EEXIST']);
      expect(readdirSync(dir).filter((n) => n.includes('000009') && n !== 'chunk0000-000009-02.raw')).to.deep.equal([]);
    });
  });

  describe('readChunkFileReceipts', () => {
    it('is empty without a receipts file', async () => {
      expect((await readChunkFileReceipts(dir)).size).to.equal(0);
    });
    it('gives each merged .raw with its maps; CRLF accepted, other lines ignored', async () => {
      mkdirSync(join(dir, 'receipts'));
      writeFileSync(join(dir, 'receipts', 'ddrescue-done.txt'), 'chunk0001-000007-01.raw\nchunk0001-000007-02.raw\r\n../etc/passwd\nchunk0001-000008-01.map\n\nchunk0002-000009-01.raw');
      expect([...(await readChunkFileReceipts(dir))].sort()).to.deep.equal([
        'chunk0001-000007-01.map', 'chunk0001-000007-01.raw', 'chunk0001-000007-01.src.map',
        'chunk0001-000007-02.map', 'chunk0001-000007-02.raw', 'chunk0001-000007-02.src.map',
        'chunk0002-000009-01.map', 'chunk0002-000009-01.raw', 'chunk0002-000009-01.src.map',
      ]);
    });
    it('refuses an unreadable receipts file with ERR_CHUNK_RECEIPTS naming it', async () => {
      mkdirSync(join(dir, 'receipts', 'ddrescue-done.txt'), { recursive: true });
      let err: unknown;
      try {
        await readChunkFileReceipts(dir);
      } catch (e) {
        err = e;
      }
      expect(err).to.include({ name: 'ReaderError', code: 'ERR_CHUNK_RECEIPTS', subject: join(dir, 'receipts', 'ddrescue-done.txt') });
    });
  });

  describe('#estimate', () => {
    it('is at least the exact size of any piece of that data and range count (property)', () => {
      const w = writer('packed');
      const ws = writer('sparse');
      fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 * MIB }), fc.integer({ min: 1, max: 64 * 1024 })), { minLength: 1, maxLength: 12 }), (raw) => {
        let at = 4 * MIB;
        const ranges = raw.map(([gap, size]): [number, number] => {
          const r: [number, number] = [at + gap, size];
          at = r[0] + size;
          return r;
        }).filter(([pos, size]) => pos + size <= 8 * MIB);
        if (ranges.length === 0) return;
        const piece = makePiece(1, 1, ranges);
        const n = piece.extents.length + piece.delta.length;
        expect(w.estimate(piece.data.length, n)).to.be.at.least(w.sizeOf(piece));
        expect(ws.estimate(piece.data.length, n)).to.be.at.least(ws.sizeOf(piece));
        // pending pieces are estimated together (the stick spool sums them)
        const twice = makePiece(2, 2, ranges.map(([pos, size]): [number, number] => [pos + 4 * MIB, size]));
        expect(w.estimate(2 * piece.data.length, 2 * n)).to.be.at.least(w.sizeOf(piece) + w.sizeOf(twice));
      }), { numRuns: 50 });
    });
  });
});
