/**
 * Synthetic FAT12/16/32 and exFAT volumes for the used-space unit tests: a boot sector
 * (exFAT: boot regions with their checksum), FATs with cluster chains, an exFAT
 * allocation bitmap, up-case table and root directory. Each builder returns where the
 * clusters lie, so tests can state which bytes must be used.
 */
import type { Block } from '@ddferry/mapfile';

import { exfatBootChecksum } from '../../src/used/exfat.js';

export interface FatVolume {
  readonly dataStart: number;
  readonly clusterSize: number;
  readonly clusters: number;
  readonly fatPos: number;
  readonly fatBytes: number;
  /** Byte range of cluster chain runs given as `[first, count]`. */
  readonly ranges: (runs: ReadonlyArray<readonly [number, number]>) => Block[];
}

export interface FatSpec {
  readonly type: 'fat12' | 'fat16' | 'fat32';
  readonly sectors: number;
  readonly spc?: number;
  readonly fats?: number;
  /** FAT32: only this copy is active (mirroring off). */
  readonly activeFat?: number;
}

/**
 * Write a FAT volume of `spec.sectors` sectors at byte `pos` of `disk`, with the chains
 * `runs` (`[first cluster, count]`, each one chain) allocated (FAT32's root directory,
 * cluster 2, included).
 */
export function writeFat(disk: Buffer, pos: number, spec: FatSpec, runs: ReadonlyArray<readonly [number, number]>): FatVolume {
  const bps = 512;
  const spc = spec.spc ?? 1;
  const fats = spec.fats ?? 2;
  const is32 = spec.type === 'fat32';
  const bits = spec.type === 'fat12' ? 12 : spec.type === 'fat16' ? 16 : 32;
  const reserved = is32 ? 32 : 1;
  const rootEntries = is32 ? 0 : 512;
  const rootSectors = (rootEntries * 32) / bps;
  const fatSectors = Math.ceil(((Math.floor((spec.sectors - reserved - rootSectors) / spc) + 2) * bits) / 8 / bps);
  const dataSector = reserved + fats * fatSectors + rootSectors;
  const clusters = Math.floor((spec.sectors - dataSector) / spc);
  if ((clusters < 4085 ? 'fat12' : clusters < 65525 ? 'fat16' : 'fat32') !== spec.type) throw new Error(`writeFat: ${clusters} clusters make no ${spec.type}`);
  const b = Buffer.alloc(bps);
  b.set([0xeb, 0x3c, 0x90]);
  b.write('TESTFAT ', 3, 'latin1');
  b.writeUInt16LE(bps, 11);
  b[13] = spc;
  b.writeUInt16LE(reserved, 14);
  b[16] = fats;
  b.writeUInt16LE(rootEntries, 17);
  if (spec.sectors < 65536 && !is32) b.writeUInt16LE(spec.sectors, 19);
  else b.writeUInt32LE(spec.sectors, 32);
  b[21] = 0xf8;
  if (is32) {
    b.writeUInt32LE(fatSectors, 36);
    b.writeUInt16LE(spec.activeFat === undefined ? 0 : 0x80 | spec.activeFat, 40);
    b.writeUInt32LE(2, 44);
    b.writeUInt16LE(1, 48);
    b.writeUInt16LE(6, 50);
    b[66] = 0x29;
    b.write('FAT32   ', 82, 'latin1');
  } else {
    b.writeUInt16LE(fatSectors, 22);
    b[38] = 0x29;
    b.write(spec.type === 'fat12' ? 'FAT12   ' : 'FAT16   ', 54, 'latin1');
  }
  b.writeUInt16LE(0xaa55, 510);
  b.copy(disk, pos);
  if (is32) b.copy(disk, pos + 6 * bps);
  const fat = Buffer.alloc(fatSectors * bps);
  const set = (i: number, v: number): void => {
    if (bits === 32) fat.writeUInt32LE(v, i * 4);
    else if (bits === 16) fat.writeUInt16LE(v & 0xffff, i * 2);
    else {
      const off = Math.floor((i * 3) / 2);
      const old = fat.readUInt16LE(off);
      fat.writeUInt16LE(i & 1 ? (old & 0x000f) | ((v & 0xfff) << 4) : (old & 0xf000) | (v & 0xfff), off);
    }
  };
  const eoc = bits === 32 ? 0x0fffffff : bits === 16 ? 0xffff : 0xfff;
  set(0, (eoc & ~0xff) | 0xf8);
  set(1, eoc);
  const all = is32 ? [[2, 1] as const, ...runs] : runs;
  for (const [first, count] of all) for (let c = first; c < first + count; ++c) set(c, c + 1 < first + count ? c + 1 : eoc);
  for (let k = 0; k < fats; ++k) fat.copy(disk, pos + (reserved + k * fatSectors) * bps);
  const dataStart = dataSector * bps;
  const clusterSize = spc * bps;
  return {
    dataStart: pos + dataStart, clusterSize, clusters, fatPos: pos + reserved * bps, fatBytes: fatSectors * bps,
    ranges: (rs) => rs.map(([c, n]) => ({ pos: pos + dataStart + (c - 2) * clusterSize, size: n * clusterSize })),
  };
}

export interface ExfatVolume extends FatVolume {
  readonly bitmapPos: number;
  readonly heap: number;
}

/** An exFAT volume of `clusters` clusters of 4 KiB at `pos`, with the chains `runs` allocated after its own three system clusters. */
export function writeExfat(disk: Buffer, pos: number, clusters: number, runs: ReadonlyArray<readonly [number, number]>): ExfatVolume {
  const bps = 512;
  const spcShift = 3;
  const cs = bps << spcShift;
  const fatOffset = 24;
  const fatLength = Math.ceil(((clusters + 2) * 4) / bps);
  const heapSector = Math.ceil((fatOffset + fatLength) / 8) * 8;
  const volume = heapSector + clusters * 8;
  const region = Buffer.alloc(12 * bps);
  region.set([0xeb, 0x76, 0x90]);
  region.write('EXFAT   ', 3, 'latin1');
  region.writeBigUInt64LE(BigInt(volume), 72);
  region.writeUInt32LE(fatOffset, 80);
  region.writeUInt32LE(fatLength, 84);
  region.writeUInt32LE(heapSector, 88);
  region.writeUInt32LE(clusters, 92);
  region.writeUInt32LE(4, 96);
  region.writeUInt16LE(0x0100, 104);
  region[108] = 9;
  region[109] = spcShift;
  region[110] = 1;
  region[111] = 0x80;
  region.writeUInt16LE(0xaa55, 510);
  for (let s = 1; s <= 8; ++s) region.writeUInt32LE(0xaa550000, s * bps + 508);
  const sum = exfatBootChecksum(region, bps);
  for (let o = 11 * bps; o < 12 * bps; o += 4) region.writeUInt32LE(sum, o);
  region.copy(disk, pos);
  region.copy(disk, pos + 12 * bps);
  const heap = pos + heapSector * bps;
  const fat = Buffer.alloc(fatLength * bps);
  fat.writeUInt32LE(0xfffffff8, 0);
  fat.writeUInt32LE(0xffffffff, 4);
  const bitmapBytes = Math.ceil(clusters / 8);
  const bitmapClusters = Math.ceil(bitmapBytes / cs);
  // bitmap at 2.., up-case table after it, root directory at 4 (bitmap must fit one cluster here)
  if (bitmapClusters !== 1) throw new Error('writeExfat: keep the bitmap within one cluster');
  const system: Array<readonly [number, number]> = [[2, 1], [3, 1], [4, 1]];
  const bitmap = Buffer.alloc(bitmapBytes);
  for (const [first, count] of [...system, ...runs]) {
    for (let c = first; c < first + count; ++c) {
      fat.writeUInt32LE(c + 1 < first + count ? c + 1 : 0xffffffff, c * 4);
      bitmap[(c - 2) >> 3] = bitmap[(c - 2) >> 3]! | 1 << ((c - 2) & 7);
    }
  }
  fat.copy(disk, pos + fatOffset * bps);
  bitmap.copy(disk, heap);
  const root = Buffer.alloc(cs);
  root[0] = 0x83;
  root[32] = 0x81;
  root.writeUInt32LE(2, 32 + 20);
  root.writeBigUInt64LE(BigInt(bitmapBytes), 32 + 24);
  root[64] = 0x82;
  root.writeUInt32LE(3, 64 + 20);
  root.writeBigUInt64LE(BigInt(4096), 64 + 24);
  root.copy(disk, heap + 2 * cs);
  return {
    dataStart: heap, clusterSize: cs, clusters, fatPos: pos + fatOffset * bps, fatBytes: fatLength * bps, bitmapPos: heap, heap,
    ranges: (rs) => rs.map(([c, n]) => ({ pos: heap + (c - 2) * cs, size: n * cs })),
  };
}
