/**
 * Random damage to the structures the used-space scan reads (fast-check): bytes
 * overwritten in partition tables, boot sectors, superblocks, group descriptors,
 * bitmaps, FATs and MFT records of synthetic disks. The scan must never throw, must
 * return well-formed ranges inside the disk, and where the damage can be told
 * (checksums, copies, bounds) must never lose a used range of the sound disk.
 */
import { expect } from 'chai';
import fc from 'fast-check';

import type { Block } from '@ddferry/mapfile';

import { mergeBlocks } from '../src/used/ranges.js';
import { type UsedSpace, findUsedSpace } from '../src/used/used-space.js';
import { writeExt } from './helpers/used-build-ext.js';
import { writeExfat, writeFat } from './helpers/used-build-fat.js';
import { writeNtfs } from './helpers/used-build-ntfs.js';
import { LINUX_DATA, writeGpt, writeMbr } from './helpers/used-build-tables.js';
import { type TestReader, memoryReader, uncovered } from './helpers/used-readers.js';

const MIB = 1 << 20;
const RUNS = 200;

type Edit = readonly [number, Uint8Array];

/** A reader of `base` with `edits` written over it (no copy of the disk). */
function damagedReader(base: Buffer, edits: readonly Edit[]): TestReader {
  const inner = memoryReader(base);
  return {
    ...inner,
    async read(pos, size) {
      const data = await inner.read(pos, size);
      if (data === null) return null;
      for (const [at, bytes] of edits) {
        for (let i = 0; i < bytes.length; ++i) if (at + i >= pos && at + i < pos + size) data[at + i - pos] = bytes[i]!;
      }
      return data;
    },
  };
}

/** 1 to 4 runs of 1 to 8 random bytes or of 1 to 64 zeros (a wiped sector's worth), each starting inside one of `regions`. */
function edits(regions: readonly Block[]): fc.Arbitrary<Edit[]> {
  const bytes = fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 64 }).map((n) => new Uint8Array(n)));
  const one = fc.tuple(fc.nat({ max: regions.length - 1 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), bytes)
    .map(([r, f, bytes]): Edit => [regions[r]!.pos + Math.floor(f * regions[r]!.size), bytes]);
  return fc.array(one, { minLength: 1, maxLength: 4 });
}

function wellFormed(u: UsedSpace, size: number): void {
  for (const list of [u.used, u.metadata]) {
    expect(mergeBlocks(list)).to.deep.equal(list);
    for (const b of list) expect(b.pos >= 0 && b.size > 0 && b.pos + b.size <= size).to.equal(true);
  }
  expect(uncovered(u.metadata, u.used)).to.deep.equal([]);
  for (const w of u.warnings) expect(w.code).to.match(/^ERR_USED_MAP_[A-Z_]+$/);
}

interface Scenario {
  readonly name: string;
  /** The sound disk, and where damage goes: the bytes that matter (used entries, fields, headers). */
  readonly build: () => { disk: Buffer; regions: Block[] };
  /** The damage can be told: nothing used may be lost. Else only: no throw, well-formed. */
  readonly safe: boolean;
  readonly runs?: number;
}

function mbrWithExtended(): { disk: Buffer; regions: Block[] } {
  const disk = Buffer.alloc(16 * MIB);
  writeMbr(disk, [{ type: 0x06, lba: 2048, count: 8192 }], {
    lba: 10240, count: 20480,
    logicals: [{ type: 0x83, lba: 12288, count: 8192, ebr: 10240 }, { type: 0x01, lba: 22528, count: 4096, ebr: 20480 }],
  });
  writeFat(disk, MIB, { type: 'fat16', sectors: 8192 }, [[2, 40], [900, 300]]);
  writeExt(disk, 12288 * 512, { groups: 3, flexBg: true, uninit: true, journalBlocks: 32 }, [[1500, 100]]);
  writeFat(disk, 22528 * 512, { type: 'fat12', sectors: 4096 }, [[2, 10], [2000, 5]]);
  return { disk, regions: [{ pos: 446, size: 66 }, { pos: 10240 * 512 + 446, size: 66 }, { pos: 20480 * 512 + 446, size: 66 }] };
}

function gptDisk(): Buffer {
  const disk = Buffer.alloc(16 * MIB);
  writeGpt(disk, [{ first: 2048, last: 8191 }, { first: 8192, last: 14335, type: LINUX_DATA }]);
  writeFat(disk, MIB, { type: 'fat16', sectors: 6144 }, [[2, 9], [1000, 30]]);
  writeExt(disk, 4 * MIB, { groups: 2, checksums: 'gdt_csum', is64: true }, [[600, 40]]);
  return disk;
}

/** An ext volume of 8 groups with data in groups 2, 5 and 6; damage to its superblock, descriptors and (`bitmaps`) the used parts of its bitmaps. */
function extDisk(checksums: 'metadata_csum' | 'gdt_csum', bitmaps: boolean): { disk: Buffer; regions: Block[] } {
  const disk = Buffer.alloc((1 + 8 * 1024) * 1024);
  const data = [[3000, 20], [5200, 300], [7000, 1]] as const;
  const v = writeExt(disk, 0, { groups: 8, flexBg: true, uninit: true, is64: checksums === 'metadata_csum', checksums, journalBlocks: 64 }, data);
  const regions = [{ pos: v.descriptorPos(0), size: 8 * (checksums === 'metadata_csum' ? 64 : 32) }];
  if (bitmaps) {
    regions.push({ pos: v.superblockPos, size: 1024 });
    regions.push({ pos: v.blockBitmap(0) * 1024, size: 64 });
    for (const [b, n] of data) {
      const g = Math.floor((b - 1) / 1024);
      const bit = b - 1 - g * 1024;
      regions.push({ pos: v.blockBitmap(g) * 1024 + (bit >> 3), size: Math.ceil(n / 8) + 1 });
    }
  }
  return { disk, regions };
}

/** A FAT volume with chains, and the FAT entries of those chains in copy `copy`. */
function fatDisk(type: 'fat16' | 'fat32', sectors: number, copy: number): { disk: Buffer; regions: Block[] } {
  const disk = Buffer.alloc(sectors * 512);
  const runs = [[3, 100], [5000, 3000]] as const;
  const v = writeFat(disk, 0, { type, sectors }, runs);
  const e = type === 'fat32' ? 4 : 2;
  return { disk, regions: runs.map(([c, n]) => ({ pos: v.fatPos + copy * v.fatBytes + c * e, size: n * e })) };
}

function exfatDisk(): Buffer {
  const d = Buffer.alloc(12 * MIB);
  writeExfat(d, 0, 2800, [[5, 3], [100, 50]]);
  return d;
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'MBR and EBR tables', build: mbrWithExtended, safe: true },
  { name: 'the primary GPT (header and entries)', build: () => ({ disk: gptDisk(), regions: [{ pos: 512, size: 92 }, { pos: 1024, size: 256 }] }), safe: true },
  {
    name: 'both GPTs', safe: true,
    build: () => {
      const disk = gptDisk();
      return { disk, regions: [{ pos: 512, size: 92 }, { pos: disk.length - 512, size: 92 }, { pos: disk.length - 33 * 512, size: 256 }] };
    },
  },
  { name: 'an ext4 superblock, descriptors and the used parts of block bitmaps (metadata_csum)', build: () => extDisk('metadata_csum', true), safe: true },
  { name: 'ext4 descriptors (gdt_csum)', build: () => extDisk('gdt_csum', false), safe: true },
  { name: 'the used entries of the first copy of a FAT16', build: () => fatDisk('fat16', 32768, 0), safe: true },
  { name: 'the used entries of the second copy of a FAT32', build: () => fatDisk('fat32', 70000, 1), safe: true, runs: 60 },
  { name: 'the main exFAT boot region', build: () => ({ disk: exfatDisk(), regions: [{ pos: 0, size: 12 * 512 }] }), safe: true },
  {
    name: 'an exFAT FAT, bitmap and root directory', safe: false,
    build: () => {
      const disk = exfatDisk();
      return { disk, regions: [{ pos: disk.readUInt32LE(80) * 512, size: 4096 }, { pos: disk.readUInt32LE(88) * 512, size: 3 * 4096 }] };
    },
  },
  {
    name: 'an NTFS boot sector, MFT records and $Bitmap', safe: false,
    build: () => {
      const disk = Buffer.alloc(8 * MIB);
      writeNtfs(disk, 0, disk.length, [[40, 10], [1000, 200]]);
      return { disk, regions: [{ pos: 0, size: 512 }, { pos: 4 * 4096, size: 16 * 1024 }, { pos: 12 * 4096, size: 512 }] };
    },
  },
  {
    name: 'a FAT12 boot sector', safe: false,
    build: () => {
      const disk = Buffer.alloc(4000 * 512);
      writeFat(disk, 0, { type: 'fat12', sectors: 4000 }, [[2, 100]]);
      return { disk, regions: [{ pos: 0, size: 64 }] };
    },
  },
];

describe('used-space scan under random damage (fast-check)', () => {
  for (const s of SCENARIOS) {
    it(`${s.safe ? 'keeps every used range' : 'never throws and stays well-formed'} when ${s.name} are overwritten`, async () => {
      const { disk, regions } = s.build();
      const sound = await findUsedSpace(memoryReader(disk));
      expect(sound.warnings).to.deep.equal([]);
      await fc.assert(fc.asyncProperty(edits(regions), async (e) => {
        const u = await findUsedSpace(damagedReader(disk, e));
        wellFormed(u, disk.length);
        if (s.safe) expect(uncovered(sound.used, u.used), JSON.stringify(u.warnings)).to.deep.equal([]);
      }), { numRuns: s.runs ?? RUNS });
    });
  }
});
