/**
 * The used-space scan's driver on synthetic disks built in memory: MBRs with extended
 * partitions (and chains that loop or break), GPTs (primary or backup damaged, 4096-byte
 * sectors, entries out of range), file systems without a table, nothing known; how it
 * reads (bounded, aligned, once, abortable); and the mapfile it writes.
 */
import { expect } from 'chai';

import { type Block, parseMapfile } from '@ddferry/mapfile';

import { MAX_READ, SPLIT_READ, ScanReader } from '../src/used/byte-reader.js';
import { alignBlocks, mergeBlocks } from '../src/used/ranges.js';
import { formatUsedMapfile } from '../src/used/used-mapfile.js';
import { type UsedSpace, findUsedSpace } from '../src/used/used-space.js';
import { WarningLog } from '../src/used/warnings.js';
import { writeExt } from './helpers/used-build-ext.js';
import { type FatVolume, writeFat } from './helpers/used-build-fat.js';
import { LINUX_DATA, putEntry, writeGpt, writeMbr } from './helpers/used-build-tables.js';
import { flip, memoryReader, total, uncovered } from './helpers/used-readers.js';

const KIB = 1024;
const MIB = 1024 * KIB;

/** What a FAT volume spanning `part` makes used: up to its data area, its chains, the sectors past its last cluster. */
function fatUsed(v: FatVolume, part: Block, runs: ReadonlyArray<readonly [number, number]>): Block[] {
  const end = v.dataStart + v.clusters * v.clusterSize;
  return [{ pos: part.pos, size: v.dataStart - part.pos }, ...v.ranges(runs), { pos: end, size: part.pos + part.size - end }];
}

function codes(u: UsedSpace): string[] {
  return u.warnings.map((w) => w.code);
}

/** The checks every result must pass: sorted, disjoint, aligned, inside the disk, metadata within used. */
function expectWellFormed(u: UsedSpace, size: number, ss = 512): void {
  for (const list of [u.used, u.metadata]) {
    expect(mergeBlocks(list)).to.deep.equal(list);
    for (const b of list) {
      expect(b.pos % ss === 0 && (b.pos + b.size) % ss === 0 || b.pos + b.size === size, `${b.pos}+${b.size} aligned`).to.equal(true);
      expect(b.pos + b.size).to.be.at.most(size);
    }
  }
  expect(uncovered(u.metadata, u.used)).to.deep.equal([]);
}

/** A 16 MiB MBR disk: FAT16 at 1 MiB (4 MiB), ext4 at 6 MiB (3 MiB), nothing after 9 MiB. */
function mbrDisk(): { disk: Buffer; want: Block[]; fat: FatVolume } {
  const disk = Buffer.alloc(16 * MIB);
  writeMbr(disk, [{ type: 0x06, lba: 2048, count: 8192 }, { type: 0x83, lba: 12288, count: 6144 }]);
  const fatRuns = [[2, 5], [40, 100], [3000, 1]] as const;
  const fat = writeFat(disk, MIB, { type: 'fat16', sectors: 8192, spc: 1 }, fatRuns);
  const ext = writeExt(disk, 6 * MIB, { groups: 2, flexBg: true, uninit: true, journalBlocks: 32 }, [[300, 10], [700, 2]]);
  const extEnd = 6 * MIB + ext.blocksCount * 1024;
  // the ext boot block (block 0, before the superblock) is metadata too
  const want = mergeBlocks([{ pos: 0, size: 512 }, ...fatUsed(fat, { pos: MIB, size: 4 * MIB }, fatRuns), { pos: 6 * MIB, size: 1024 }, ...ext.used, { pos: extEnd, size: 9 * MIB - extEnd }]);
  return { disk, want, fat };
}

describe('findUsedSpace', () => {
  describe('MBR', () => {
    it('reads each partition\'s file system; the MBR is metadata; the gaps are free', async () => {
      const { disk, want } = mbrDisk();
      const u = await findUsedSpace(memoryReader(disk));
      expect(u.warnings).to.deep.equal([]);
      expect(u.partitions).to.deep.equal([
        { pos: MIB, size: 4 * MIB, type: '0x06', fs: 'fat16' },
        { pos: 6 * MIB, size: 3 * MIB, type: '0x83', fs: 'ext4' },
      ]);
      expect(u.used).to.deep.equal(alignBlocks(want, 512, disk.length));
      expect(u.metadata[0]).to.deep.equal({ pos: 0, size: 512 });
      expectWellFormed(u, disk.length);
    });

    it('follows the EBR chain of an extended partition to each logical partition; each EBR is metadata', async () => {
      const disk = Buffer.alloc(16 * MIB);
      writeMbr(disk, [{ type: 0x01, lba: 2048, count: 2048 }], {
        lba: 4096, count: 16384,
        logicals: [{ type: 0x01, lba: 6144, count: 2048, ebr: 4096 }, { type: 0x83, lba: 10240, count: 4096, ebr: 8192 }, { type: 0x01, lba: 16384, count: 2048, ebr: 14336 }],
      });
      const fats = [2048, 6144, 16384].map((lba) => writeFat(disk, lba * 512, { type: 'fat12', sectors: 2048 }, [[2, 3]]));
      const u = await findUsedSpace(memoryReader(disk));
      expect(u.warnings).to.deep.equal([]);
      expect(u.partitions.map((p) => [p.pos / 512, p.fs])).to.deep.equal([[2048, 'fat12'], [6144, 'fat12'], [10240, 'unknown'], [16384, 'fat12']]);
      for (const ebr of [4096, 8192, 14336]) expect(uncovered([{ pos: ebr * 512, size: 512 }], u.metadata)).to.deep.equal([]);
      for (const f of fats) expect(uncovered(f.ranges([[2, 3]]), u.used)).to.deep.equal([]);
      // an unknown partition in an MBR makes the gaps used (its entry may be wrong); the FAT volumes' free space stays free
      const gaps = [{ pos: 0, size: MIB }, { pos: 2 * MIB, size: MIB }, { pos: 4 * MIB, size: MIB }, { pos: 7 * MIB, size: MIB }, { pos: 9 * MIB, size: 7 * MIB }];
      expect(uncovered(gaps, u.used)).to.deep.equal([]);
      expect(total(u.used)).to.be.below(disk.length - 2 * MIB);
    });

    it('stops an EBR chain that loops back, with ERR_USED_MAP_EBR_LOOP, and counts the rest of the extended partition as used', async () => {
      const disk = Buffer.alloc(16 * MIB);
      writeMbr(disk, [], {
        lba: 2048, count: 12288,
        logicals: [{ type: 0x01, lba: 4096, count: 2048, ebr: 2048 }, { type: 0x01, lba: 8192, count: 2048, ebr: 6144 }],
      });
      putEntry(disk, 6144 * 512, 1, { type: 0x05, lba: 2048, count: 4096 }, 2048);
      writeFat(disk, 4096 * 512, { type: 'fat12', sectors: 2048 }, [[2, 1]]);
      writeFat(disk, 8192 * 512, { type: 'fat12', sectors: 2048 }, [[2, 1]]);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_EBR_LOOP']);
      expect(u.partitions.map((p) => p.pos / 512)).to.deep.equal([4096, 8192]);
      // the extended partition but its two logical partitions (read as usual) counts as used
      expect(uncovered([{ pos: MIB, size: MIB }, { pos: 3 * MIB, size: MIB }, { pos: 5 * MIB, size: 2 * MIB }], u.used)).to.deep.equal([]);
      expect(uncovered([{ pos: 7 * MIB, size: 9 * MIB }], u.used)).to.not.deep.equal([]);
    });

    it('stops at an EBR without its signature (ERR_USED_MAP_BAD_EBR), the rest of the extended partition used', async () => {
      const disk = Buffer.alloc(16 * MIB);
      writeMbr(disk, [], { lba: 2048, count: 12288, logicals: [{ type: 0x01, lba: 4096, count: 2048, ebr: 2048 }, { type: 0x01, lba: 8192, count: 2048, ebr: 6144 }] });
      writeFat(disk, 4096 * 512, { type: 'fat12', sectors: 2048 }, [[2, 1]]);
      disk.writeUInt16LE(0, 6144 * 512 + 510);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_EBR']);
      expect(u.partitions.map((p) => p.pos / 512)).to.deep.equal([4096]);
      expect(uncovered([{ pos: MIB, size: MIB }, { pos: 3 * MIB, size: 4 * MIB }], u.used)).to.deep.equal([]);
    });

    it('crops a partition running past the end of the disk (ERR_USED_MAP_BAD_MBR) and counts the gaps as used', async () => {
      const disk = Buffer.alloc(8 * MIB);
      writeMbr(disk, [{ type: 0x01, lba: 2048, count: 2048 }, { type: 0x01, lba: 8192, count: 0xffff0000 }]);
      writeFat(disk, MIB, { type: 'fat12', sectors: 2048 }, [[2, 1]]);
      writeFat(disk, 4 * MIB, { type: 'fat12', sectors: 2048 }, [[2, 1]]);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_MBR']);
      expect(u.partitions[1]).to.include({ pos: 4 * MIB, size: 4 * MIB });
      expect(uncovered([{ pos: 2 * MIB, size: 2 * MIB }], u.used)).to.deep.equal([]);
    });

    it('counts the gaps as used when an entry is empty but names sectors (ERR_USED_MAP_BAD_MBR)', async () => {
      const { disk } = mbrDisk();
      putEntry(disk, 0, 2, { type: 0, lba: 20000, count: 100 });
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_MBR']);
      expect(uncovered([{ pos: 9 * MIB, size: 7 * MIB }], u.used)).to.deep.equal([]);
    });

    it('counts the gaps as used when a partition is smaller than its file system (ERR_USED_MAP_FS_TOO_LARGE)', async () => {
      const { disk, want } = mbrDisk();
      putEntry(disk, 0, 1, { type: 0x83, lba: 12288, count: 2048 });
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_FS_TOO_LARGE']);
      expect(uncovered(want, u.used)).to.deep.equal([]);
      expect(uncovered([{ pos: 9 * MIB, size: 7 * MIB }], u.used)).to.deep.equal([]);
    });
  });

  describe('GPT', () => {
    function gptDisk(ss = 512): { disk: Buffer; want: Block[] } {
      const disk = Buffer.alloc(16 * MIB);
      const per = ss / 512;
      writeGpt(disk, [{ first: 2048 / per, last: 8192 / per - 1 }, { first: 8192 / per, last: 14336 / per - 1, type: LINUX_DATA }], ss);
      const fatRuns = [[2, 9], [1000, 30]] as const;
      const fat = writeFat(disk, MIB, { type: 'fat16', sectors: 6144 }, fatRuns);
      const ext = writeExt(disk, 4 * MIB, { groups: 2, checksums: 'gdt_csum', is64: true }, [[600, 40]]);
      const extEnd = 4 * MIB + ext.blocksCount * 1024;
      const arrayBytes = 16 * KIB;
      const tables = [{ pos: 0, size: 2 * ss + arrayBytes }, { pos: disk.length - ss - arrayBytes, size: ss + arrayBytes }];
      return { disk, want: mergeBlocks([...tables, ...fatUsed(fat, { pos: MIB, size: 3 * MIB }, fatRuns), { pos: 4 * MIB, size: 1024 }, ...ext.used, { pos: extEnd, size: 7 * MIB - extEnd }]) };
    }

    it('reads the partitions of the primary GPT; both headers and entry arrays are metadata', async () => {
      const { disk, want } = gptDisk();
      const u = await findUsedSpace(memoryReader(disk));
      expect(u.warnings).to.deep.equal([]);
      expect(u.partitions).to.deep.equal([
        { pos: MIB, size: 3 * MIB, type: 'ebd0a0a2-b9e5-4433-87c0-68b6b72699c7', fs: 'fat16' },
        { pos: 4 * MIB, size: 3 * MIB, type: '0fc63daf-8483-4772-8e79-3d69d8477de4', fs: 'ext4' },
      ]);
      expect(u.used).to.deep.equal(want);
      expect(uncovered([{ pos: 0, size: 34 * 512 }, { pos: disk.length - 33 * 512, size: 33 * 512 }], u.metadata)).to.deep.equal([]);
      expectWellFormed(u, disk.length);
    });

    it('uses the backup when the primary header fails its CRC-32 (ERR_USED_MAP_GPT_PRIMARY_BAD)', async () => {
      const { disk, want } = gptDisk();
      flip(disk, 512 + 40, 1);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_GPT_PRIMARY_BAD']);
      expect(u.partitions.length).to.equal(2);
      expect(u.used).to.deep.equal(want);
    });

    it('uses the backup when the primary entry array fails its CRC-32', async () => {
      const { disk, want } = gptDisk();
      disk.writeBigUInt64LE(1n, 1024 + 40);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_GPT_PRIMARY_BAD']);
      expect(u.used).to.deep.equal(want);
    });

    it('uses the primary when the backup is unreadable (ERR_USED_MAP_GPT_BACKUP_BAD)', async () => {
      const { disk, want } = gptDisk();
      const u = await findUsedSpace(memoryReader(disk, 512, [{ pos: disk.length - 512, size: 512 }]));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_UNREADABLE', 'ERR_USED_MAP_GPT_BACKUP_BAD']);
      expect(u.used).to.deep.equal(want);
    });

    it('counts the whole disk as used when neither GPT is sound (ERR_USED_MAP_BAD_GPT)', async () => {
      const { disk } = gptDisk();
      disk[512] = 0;
      flip(disk, disk.length - 512 + 20, 0xff);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_GPT']);
      expect(u.used).to.deep.equal([{ pos: 0, size: disk.length }]);
    });

    it('reads a GPT in 4096-byte sectors', async () => {
      const { disk, want } = gptDisk(4096);
      const u = await findUsedSpace(memoryReader(disk, 4096));
      expect(u.warnings).to.deep.equal([]);
      expect(u.partitions.map((p) => [p.pos, p.fs])).to.deep.equal([[MIB, 'fat16'], [4 * MIB, 'ext4']]);
      expect(uncovered(want.filter((b) => b.pos >= MIB && b.pos < 8 * MIB), u.used)).to.deep.equal([]);
      expectWellFormed(u, disk.length, 4096);
    });

    it('ignores an entry outside the disk (ERR_USED_MAP_BAD_PARTITION) and counts the gaps as used', async () => {
      const disk = Buffer.alloc(8 * MIB);
      writeGpt(disk, [{ first: 2048, last: 4095 }, { first: 8192, last: 99999 }]);
      writeFat(disk, MIB, { type: 'fat12', sectors: 2048 }, [[2, 1]]);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_PARTITION']);
      expect(u.partitions.length).to.equal(1);
      expect(uncovered([{ pos: 2 * MIB, size: 6 * MIB }], u.used)).to.deep.equal([]);
    });
  });

  describe('without a partition table', () => {
    it('reads a FAT volume spanning the disk', async () => {
      const disk = Buffer.alloc(4 * MIB);
      const fat = writeFat(disk, 0, { type: 'fat12', sectors: 8192, spc: 4 }, [[2, 100]]);
      const u = await findUsedSpace(memoryReader(disk));
      expect(u.partitions).to.deep.equal([{ pos: 0, size: disk.length, type: 'none', fs: 'fat12' }]);
      expect(u.used).to.deep.equal(alignBlocks(fatUsed(fat, { pos: 0, size: disk.length }, [[2, 100]]), 512, disk.length));
    });

    it('reads an ext volume at byte 0', async () => {
      const disk = Buffer.alloc(2 * MIB + KIB);
      const ext = writeExt(disk, 0, { groups: 2, checksums: 'none' }, [[1500, 7]]);
      expect(ext.blocksCount * 1024).to.equal(disk.length);
      const u = await findUsedSpace(memoryReader(disk));
      expect(u.partitions).to.deep.equal([{ pos: 0, size: disk.length, type: 'none', fs: 'ext4' }]);
      expect(u.used).to.deep.equal(mergeBlocks([{ pos: 0, size: 1024 }, ...ext.used]));
    });

    it('counts a disk with no table and no known file system as used (ERR_USED_MAP_NO_TABLE)', async () => {
      const disk = Buffer.alloc(MIB, 0x5a);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_NO_TABLE']);
      expect(u.used).to.deep.equal([{ pos: 0, size: disk.length }]);
    });

    it('counts the whole disk as used when sector 0 cannot be read', async () => {
      const { disk } = mbrDisk();
      const u = await findUsedSpace(memoryReader(disk, 512, [{ pos: 0, size: 512 }]));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_UNREADABLE']);
      expect(u.used).to.deep.equal([{ pos: 0, size: disk.length }]);
    });
  });

  describe('reads', () => {
    it('are sector-aligned, at most 4 MiB, inside the disk, and never of the same sector twice on a sound disk', async () => {
      for (const { disk } of [mbrDisk()]) {
        const r = memoryReader(disk);
        await findUsedSpace(r);
        const seen = new Set<number>();
        for (const x of r.reads) {
          expect(x.pos % 512, `read at ${x.pos}`).to.equal(0);
          expect(x.size % 512).to.equal(0);
          expect(x.size).to.be.at.most(MAX_READ);
          expect(x.pos + x.size).to.be.at.most(disk.length);
          for (let s = x.pos; s < x.pos + x.size; s += 512) {
            expect(seen.has(s), `sector at byte ${s} read twice`).to.equal(false);
            seen.add(s);
          }
        }
      }
    });

    it('stop with the signal\'s reason when aborted', async () => {
      const { disk } = mbrDisk();
      const controller = new AbortController();
      const inner = memoryReader(disk);
      const reader = { ...inner, read: async (pos: number, size: number) => {
        if (inner.reads.length === 3) controller.abort();
        return inner.read(pos, size);
      } };
      let caught: unknown;
      await findUsedSpace(reader, { signal: controller.signal }).catch((err: unknown) => { caught = err; });
      expect((caught as Error).name).to.equal('AbortError');
      expect(inner.reads.length).to.equal(4);
    });

    it('split a failed batch into 64 KiB pieces, read a bad sector at most twice, and never again', async () => {
      const bad = { pos: 5 * MIB + 1000 * 512, size: 512 };
      const r = memoryReader(Buffer.alloc(10 * MIB), 512, [bad]);
      const s = new ScanReader(r, new WarningLog());
      const got: Array<[number, number, boolean]> = [];
      for await (const b of s.batches(0, 10 * MIB)) got.push([b.pos, b.size, b.data !== null]);
      expect(got.filter(([, , ok]) => !ok)).to.deep.equal([[Math.floor(bad.pos / SPLIT_READ) * SPLIT_READ, SPLIT_READ, false]]);
      expect(total(got.map(([pos, size]) => ({ pos, size })))).to.equal(10 * MIB);
      expect(r.reads.filter((x) => x.pos <= bad.pos && bad.pos < x.pos + x.size).length).to.equal(2);
      expect(await s.read(bad.pos - 512, 1024)).to.equal(null);
      expect(r.reads.filter((x) => x.pos <= bad.pos && bad.pos < x.pos + x.size).length).to.equal(2);
    });
  });
});

describe('formatUsedMapfile', () => {
  it('writes a GNU ddrescue domain mapfile: + over the used ranges, ? elsewhere, to the end of the source', async () => {
    const { disk, want } = mbrDisk();
    const u = await findUsedSpace(memoryReader(disk));
    const text = formatUsedMapfile(u, disk.length, 'ddferry-reader used-map /dev/sdX');
    const map = parseMapfile(text);
    const plus: Block[] = [];
    let end = 0;
    for (let i = 0; i < map.blocks.length; ++i) {
      expect(map.blocks.pos(i)).to.equal(end);
      end = map.blocks.end(i);
      if (map.blocks.code(i) === 4) plus.push({ pos: map.blocks.pos(i), size: map.blocks.size(i) });
      else expect(map.blocks.code(i)).to.equal(0);
    }
    expect(end).to.equal(disk.length);
    expect(plus).to.deep.equal(alignBlocks(want, 512, disk.length));
    expect(text.toString('latin1')).to.match(/^# Mapfile\. Created by ddferry/);
    expect(text.toString('latin1')).to.include('# Command line: ddferry-reader used-map /dev/sdX');
  });

  it('writes the metadata alone with { domain: \'metadata\' }, and crops ranges past the size given', () => {
    const u: UsedSpace = { used: [{ pos: 0, size: 4096 }], metadata: [{ pos: 0, size: 512 }, { pos: 3584, size: 1024 }], partitions: [], warnings: [] };
    const text = formatUsedMapfile(u, 4000, 'x', { domain: 'metadata' }).toString('latin1');
    expect(text.split('\n').filter((l) => /^0x\S+ +0x/.test(l))).to.deep.equal([
      '0x00000000  0x00000200  +', '0x00000200  0x00000C00  ?', '0x00000E00  0x000001A0  +',
    ]);
  });
});
