/**
 * Each file system reader of the used-space scan on synthetic volumes: FAT12/16/32
 * (copies, mirroring, damaged boot sectors), exFAT (boot checksum and backup, bitmap),
 * NTFS ($Bitmap, $MFTMirr, backup boot sector, dirty flag) and ext2/3/4 (flex_bg,
 * BLOCK_UNINIT, 64-bit, meta_bg, 4 KiB blocks, checksums, free counts, journal recovery).
 */
import { expect } from 'chai';

import type { Block } from '@ddferry/mapfile';

import { mergeBlocks } from '../src/used/ranges.js';
import { type UsedSpace, findUsedSpace } from '../src/used/used-space.js';
import { type ExtSpec, writeExt } from './helpers/used-build-ext.js';
import { writeExfat, writeFat } from './helpers/used-build-fat.js';
import { writeNtfs } from './helpers/used-build-ntfs.js';
import { flip, memoryReader, uncovered } from './helpers/used-readers.js';

const KIB = 1024;
const MIB = 1024 * KIB;

function codes(u: UsedSpace): string[] {
  return u.warnings.map((w) => w.code);
}

/** Reads of `reader` that touch `b`. */
function touching(reads: readonly Block[], b: Block): Block[] {
  return reads.filter((r) => r.pos < b.pos + b.size && b.pos < r.pos + r.size);
}

describe('used-space scan: FAT', () => {
  for (const [type, sectors, spc] of [['fat12', 4000, 1], ['fat16', 32768, 1], ['fat32', 70000, 1]] as const) {
    it(`counts the clusters a ${type.toUpperCase()} uses, the area before its clusters and the sectors past them`, async () => {
      const disk = Buffer.alloc(sectors * 512);
      const runs = [[2, 1], [5, 17], [200, 3], [3000, 40]] as const;
      const v = writeFat(disk, 0, { type, sectors, spc }, runs);
      const u = await findUsedSpace(memoryReader(disk));
      expect(u.warnings).to.deep.equal([]);
      expect(u.partitions[0]!.fs).to.equal(type);
      const end = v.dataStart + v.clusters * v.clusterSize;
      const root = type === 'fat32' ? v.ranges([[2, 1]]) : [];
      expect(u.used).to.deep.equal(mergeBlocks([{ pos: 0, size: v.dataStart }, ...root, ...v.ranges(runs), { pos: end, size: disk.length - end }]));
      expect(u.metadata).to.deep.equal(mergeBlocks([{ pos: 0, size: v.dataStart }, ...root]));
    });
  }

  it('counts a cluster used in either copy when the copies differ (ERR_USED_MAP_FAT_COPIES_DIFFER)', async () => {
    const disk = Buffer.alloc(32768 * 512);
    const v = writeFat(disk, 0, { type: 'fat16', sectors: 32768 }, [[2, 100]]);
    disk.fill(0, v.fatPos + 2 * 50, v.fatPos + 2 * 60);
    disk.writeUInt16LE(0xffff, v.fatPos + v.fatBytes + 2 * 500);
    const u = await findUsedSpace(memoryReader(disk));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_FAT_COPIES_DIFFER']);
    expect(uncovered(v.ranges([[2, 100], [500, 1]]), u.used)).to.deep.equal([]);
  });

  it('reads only the active FAT when FAT32 mirroring is off', async () => {
    const disk = Buffer.alloc(70000 * 512);
    const v = writeFat(disk, 0, { type: 'fat32', sectors: 70000, activeFat: 1 }, [[10, 5]]);
    disk.writeUInt32LE(0x0fffffff, v.fatPos + 4 * 900);
    const r = memoryReader(disk);
    const u = await findUsedSpace(r);
    expect(u.warnings).to.deep.equal([]);
    expect(uncovered(v.ranges([[900, 1]]), u.used)).to.not.deep.equal([]);
    expect(uncovered(v.ranges([[10, 5]]), u.used)).to.deep.equal([]);
    expect(touching(r.reads, { pos: v.fatPos + 4096, size: v.fatBytes - 4096 })).to.deep.equal([]);
  });

  it('counts the clusters of FAT sectors no copy can give as used (the 64 KiB piece that failed)', async () => {
    const disk = Buffer.alloc(62000 * 512);
    const v = writeFat(disk, 0, { type: 'fat16', sectors: 62000 }, [[2, 3], [40000, 10]]);
    const bad = [{ pos: v.fatPos + 1024, size: 512 }, { pos: v.fatPos + v.fatBytes + 1024, size: 512 }];
    const u = await findUsedSpace(memoryReader(disk, 512, bad));
    expect(codes(u)).to.include('ERR_USED_MAP_UNREADABLE');
    // FAT bytes 1024..1535 hold clusters 512..767; the failed piece is the FAT's first 64 KiB: clusters 0..32767
    expect(uncovered(v.ranges([[2, 32766], [40000, 10]]), u.used)).to.deep.equal([]);
    expect(uncovered(v.ranges([[33000, 1000]]), u.used)).to.deep.equal(v.ranges([[33000, 1000]]));
  });

  it('counts the partition as used when the boot sector is implausible or the FATs are not where it says', async () => {
    for (const damage of [(d: Buffer) => { d[13] = 3; }, (d: Buffer) => { d.writeUInt16LE(2, 14); }]) {
      const disk = Buffer.alloc(32768 * 512);
      writeFat(disk, 0, { type: 'fat16', sectors: 32768 }, [[2, 3]]);
      damage(disk);
      const u = await findUsedSpace(memoryReader(disk));
      expect(u.used).to.deep.equal([{ pos: 0, size: disk.length }]);
    }
  });

  it('counts a FAT32 volume as used when its boot sector and backup disagree', async () => {
    const disk = Buffer.alloc(70000 * 512);
    writeFat(disk, 0, { type: 'fat32', sectors: 70000 }, [[10, 5]]);
    disk[6 * 512 + 13] = 2;
    const u = await findUsedSpace(memoryReader(disk));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_SUPERBLOCK']);
    expect(u.used).to.deep.equal([{ pos: 0, size: disk.length }]);
  });
});

describe('used-space scan: exFAT', () => {
  const runs = [[5, 3], [100, 50], [2000, 1]] as const;
  function volume(): { disk: Buffer; v: ReturnType<typeof writeExfat>; want: Block[] } {
    const disk = Buffer.alloc(12 * MIB);
    const v = writeExfat(disk, 0, 2800, runs);
    const heapEnd = v.heap + v.clusters * v.clusterSize;
    return { disk, v, want: mergeBlocks([{ pos: 0, size: v.heap }, ...v.ranges([[2, 3], ...runs]), { pos: heapEnd, size: disk.length - heapEnd }]) };
  }

  it('counts the clusters the allocation bitmap marks, everything before the heap, and the space past it', async () => {
    const { disk, v, want } = volume();
    const u = await findUsedSpace(memoryReader(disk));
    expect(u.warnings).to.deep.equal([]);
    expect(u.partitions[0]!.fs).to.equal('exfat');
    expect(u.used).to.deep.equal(want);
    expect(uncovered([{ pos: 0, size: 24 * 512 }, { pos: v.fatPos, size: v.fatBytes }, ...v.ranges([[2, 3]])], u.metadata)).to.deep.equal([]);
  });

  it('uses the backup boot region when the main one fails its checksum (ERR_USED_MAP_BAD_SUPERBLOCK)', async () => {
    const { disk, want } = volume();
    flip(disk, 5 * 512 + 7, 1);
    const u = await findUsedSpace(memoryReader(disk));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_SUPERBLOCK']);
    expect(u.used).to.deep.equal(want);
  });

  it('counts the volume as used when both boot regions fail, or the bitmap entry is missing', async () => {
    for (const [damage, code] of [
      [(d: Buffer) => { flip(d, 100, 1); flip(d, 12 * 512 + 100, 1); }, 'ERR_USED_MAP_BAD_SUPERBLOCK'],
      [(d: Buffer, h: number) => { d[h + 2 * 4096 + 32] = 0x01; }, 'ERR_USED_MAP_NO_BITMAP'],
    ] as const) {
      const { disk, v } = volume();
      damage(disk, v.heap);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal([code]);
      expect(u.used).to.deep.equal([{ pos: 0, size: disk.length }]);
    }
  });

  it('counts the clusters of an unreadable bitmap sector as used', async () => {
    const { disk, v, want } = volume();
    const u = await findUsedSpace(memoryReader(disk, 512, [{ pos: v.bitmapPos, size: 512 }]));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_UNREADABLE']);
    expect(uncovered(want, u.used)).to.deep.equal([]);
    expect(uncovered(v.ranges([[2, 2800]]), u.used)).to.deep.equal([]);
  });
});

describe('used-space scan: NTFS', () => {
  const runs = [[40, 10], [300, 1], [1000, 200]] as const;
  function volume(dirty = false): { disk: Buffer; v: ReturnType<typeof writeNtfs>; want: Block[] } {
    const disk = Buffer.alloc(8 * MIB);
    const v = writeNtfs(disk, 0, disk.length, runs, dirty);
    const sys = [[0, 1], [4, 4], [8, 4], [12, 1]] as const;
    // past the volume (one sector short of the partition): its backup boot sector
    const want = mergeBlocks([...v.ranges([...sys, ...runs]), { pos: v.mirrorPos, size: v.clusterSize }, { pos: disk.length - 512, size: 512 }]);
    return { disk, v, want };
  }

  it('counts the clusters $Bitmap marks; the system files and both boot sectors are metadata', async () => {
    const { disk, v, want } = volume();
    const u = await findUsedSpace(memoryReader(disk));
    expect(u.warnings).to.deep.equal([]);
    expect(u.partitions[0]!.fs).to.equal('ntfs');
    expect(u.used).to.deep.equal(want);
    expect(uncovered([{ pos: 0, size: 512 }, { pos: disk.length - 512, size: 512 }, { pos: v.mftPos, size: 4 * 4096 }, { pos: v.logPos, size: 4 * 4096 }, { pos: v.bitmapPos, size: 4096 }], u.metadata)).to.deep.equal([]);
  });

  it('reads record 0 from $MFTMirr when it is torn (ERR_USED_MAP_BAD_METADATA)', async () => {
    const { disk, v, want } = volume();
    disk.writeUInt16LE(0x1234, v.mftPos + 510);
    const u = await findUsedSpace(memoryReader(disk));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_METADATA']);
    expect(u.used).to.deep.equal(want);
  });

  it('counts the volume as used when $Bitmap\'s record is damaged, or the backup boot sector disagrees', async () => {
    for (const damage of [(d: Buffer, v: { mftPos: number }) => { d.write('BAAD', v.mftPos + 6 * 1024, 'latin1'); }, (d: Buffer) => { flip(d, d.length - 512 + 0x30, 1); }]) {
      const { disk, v } = volume();
      damage(disk, v);
      const u = await findUsedSpace(memoryReader(disk));
      expect(u.used).to.deep.equal([{ pos: 0, size: disk.length }]);
      expect(u.warnings.length).to.equal(1);
    }
  });

  it('warns when the volume is marked dirty (ERR_USED_MAP_JOURNAL_DIRTY)', async () => {
    const { disk, want } = volume(true);
    const u = await findUsedSpace(memoryReader(disk));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_JOURNAL_DIRTY']);
    expect(u.used).to.deep.equal(want);
  });
});

describe('used-space scan: ext2/3/4', () => {
  const data = [[3000, 20], [3100, 1], [5200, 300]] as const;
  const variants: ReadonlyArray<[string, ExtSpec]> = [
    ['ext4: metadata_csum, flex_bg, BLOCK_UNINIT, 64-bit, journal', { groups: 8, flexBg: true, uninit: true, is64: true, journalBlocks: 64 }],
    ['ext4: gdt_csum, BLOCK_UNINIT, journal', { groups: 8, checksums: 'gdt_csum', uninit: true, journalBlocks: 64 }],
    ['ext2: no checksums', { groups: 8, checksums: 'none' }],
    ['ext4: meta_bg (16 groups per descriptor block), 64-bit', { groups: 24, metaBg: true, is64: true, blocksPerGroup: 256 }],
    ['ext4: 4 KiB blocks, reserved GDT blocks', { groups: 2, blockSize: 4096, blocksPerGroup: 4096, reservedGdt: 3 }],
  ];
  for (const [name, spec] of variants) {
    it(`counts the used blocks of ${name}`, async () => {
      const bs = spec.blockSize ?? 1024;
      const disk = Buffer.alloc(((bs === 1024 ? 1 : 0) + spec.groups * (spec.blocksPerGroup ?? 1024)) * bs);
      const runs = spec.blocksPerGroup === 256 ? [[3010, 20], [5220, 30]] as const : bs === 4096 ? [[5000, 7]] as const : data;
      const v = writeExt(disk, 0, spec, runs);
      const r = memoryReader(disk);
      const u = await findUsedSpace(r);
      expect(u.warnings).to.deep.equal([]);
      expect(u.partitions[0]!.fs).to.equal('ext4');
      expect(u.used).to.deep.equal(mergeBlocks([{ pos: 0, size: 2048 }, ...v.used]));
      expect(uncovered([{ pos: v.superblockPos, size: 1024 }, ...v.ranges([v.journal])], u.metadata)).to.deep.equal([]);
      for (const g of v.uninitGroups) expect(touching(r.reads, v.ranges([[v.blockBitmap(g), 1]])[0]!), `BLOCK_UNINIT group ${g}'s bitmap read`).to.deep.equal([]);
      if (spec.uninit) expect(v.uninitGroups.length).to.be.greaterThan(2);
    });
  }

  function volume(spec: ExtSpec = { groups: 8, flexBg: true, uninit: true, journalBlocks: 64 }): { disk: Buffer; v: ReturnType<typeof writeExt> } {
    const disk = Buffer.alloc((1 + spec.groups * 1024) * 1024);
    return { disk, v: writeExt(disk, 0, spec, data) };
  }

  it('counts a group as used when its descriptor fails its checksum (ERR_USED_MAP_BAD_GROUP)', async () => {
    const { disk, v } = volume();
    flip(disk, v.descriptorPos(5) + 0x0c, 1);
    const u = await findUsedSpace(memoryReader(disk));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_GROUP']);
    expect(uncovered([v.groupRange(5), ...v.used], u.used)).to.deep.equal([]);
  });

  it('counts a group as used when its bitmap fails its checksum or its free count (ERR_USED_MAP_BAD_BITMAP)', async () => {
    for (const spec of [{ groups: 8, flexBg: true }, { groups: 8, checksums: 'none' }] as const) {
      const { disk, v } = volume(spec);
      const at = v.ranges([[v.blockBitmap(2), 1]])[0]!.pos;
      flip(disk, at + 100, 0x0f);
      const u = await findUsedSpace(memoryReader(disk));
      expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_BITMAP']);
      expect(uncovered([v.groupRange(2), ...v.used], u.used)).to.deep.equal([]);
    }
  });

  it('counts a group as used when its bitmap lies outside it (no flex_bg: ERR_USED_MAP_BAD_GROUP)', async () => {
    const { disk, v } = volume({ groups: 8, checksums: 'none' });
    disk.writeUInt32LE(5, v.descriptorPos(3));
    const u = await findUsedSpace(memoryReader(disk));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_GROUP']);
    expect(uncovered([v.groupRange(3), ...v.used], u.used)).to.deep.equal([]);
  });

  it('counts the group of an unreadable bitmap block as used, and the other groups as their bitmaps say', async () => {
    const { disk, v } = volume();
    const bad = v.ranges([[v.blockBitmap(5), 1]])[0]!;
    const u = await findUsedSpace(memoryReader(disk, 512, [bad]));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_UNREADABLE']);
    expect(uncovered([v.groupRange(5), ...v.used], u.used)).to.deep.equal([]);
    // group 2's bitmap was read: its free blocks stay free
    expect(uncovered([v.groupRange(2)], u.used)).to.not.deep.equal([]);
  });

  it('counts the volume as used when the superblock fails its checksum (ERR_USED_MAP_BAD_SUPERBLOCK)', async () => {
    const { disk, v } = volume();
    flip(disk, v.superblockPos + 0x20, 1);
    const u = await findUsedSpace(memoryReader(disk));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_BAD_SUPERBLOCK']);
    expect(u.used).to.deep.equal([{ pos: 0, size: disk.length }]);
  });

  it('counts as used the groups whose bitmap or descriptors wait in a journal that needs recovery (ERR_USED_MAP_JOURNAL_DIRTY)', async () => {
    const sound = volume();
    const logged = [sound.v.blockBitmap(4), 9999];
    const disk = Buffer.alloc(sound.disk.length);
    const v = writeExt(disk, 0, { groups: 8, flexBg: true, uninit: true, journalBlocks: 64, dirtyLogged: logged }, data);
    const u = await findUsedSpace(memoryReader(disk));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_JOURNAL_DIRTY']);
    expect(uncovered([v.groupRange(4), ...v.used], u.used)).to.deep.equal([]);
    expect(uncovered([v.groupRange(6)], u.used)).to.not.deep.equal([]);
    // block 2 is the descriptor table: every group it describes counts as used
    const all = Buffer.alloc(disk.length);
    writeExt(all, 0, { groups: 8, flexBg: true, uninit: true, journalBlocks: 64, dirtyLogged: [2] }, data);
    const w = await findUsedSpace(memoryReader(all));
    expect(codes(w)).to.deep.equal(['ERR_USED_MAP_JOURNAL_DIRTY']);
    expect(uncovered([{ pos: 1024, size: 8 * 1024 * 1024 }], w.used)).to.deep.equal([]);
  });

  it('counts the volume as used when its journal needs recovery but cannot be read', async () => {
    const disk = Buffer.alloc((1 + 8 * 1024) * 1024);
    const v = writeExt(disk, 0, { groups: 8, flexBg: true, uninit: true, journalBlocks: 64, dirtyLogged: [5] }, data);
    const u = await findUsedSpace(memoryReader(disk, 512, v.ranges([[v.journal[0], 1]])));
    expect(codes(u)).to.deep.equal(['ERR_USED_MAP_UNREADABLE', 'ERR_USED_MAP_JOURNAL_DIRTY']);
    expect(u.used).to.deep.equal([{ pos: 0, size: disk.length }]);
  });
});
