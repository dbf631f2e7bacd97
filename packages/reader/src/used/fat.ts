/**
 * FAT12, FAT16 and FAT32: the FAT is the allocation map (an entry of 0 is a free
 * cluster, anything else is used, bad clusters included). Every copy of the FAT is read
 * (only the active one when FAT32 mirroring is off) in batches, and a cluster used in any
 * copy counts as used, so damage to one copy cannot shrink the domain. Metadata: the
 * reserved sectors (boot sector, FSInfo, backup boot sector), the FATs, and the root
 * directory (its fixed area, or on FAT32 its cluster chain).
 */
import type { Block } from '@ddferry/mapfile';

import { MAX_READ } from './byte-reader.js';
import { check, u16, u32, u8 } from './bytes.js';
import { looksLikeFat } from './probe.js';
import type { Scan } from './scan.js';

/** The FAT type by cluster count, as the Microsoft FAT specification decides it. */
export function fatTypeOf(clusters: number): 'fat12' | 'fat16' | 'fat32' {
  return clusters < 4085 ? 'fat12' : clusters < 65525 ? 'fat16' : 'fat32';
}

/** Longest root directory chain followed on FAT32, in clusters. */
const MAX_ROOT_CLUSTERS = 65536;

export interface FatLayout {
  readonly type: 'fat12' | 'fat16' | 'fat32';
  readonly bytesPerSector: number;
  readonly clusterSize: number;
  readonly reserved: number;
  readonly fats: number;
  readonly fatBytes: number;
  readonly dataStart: number;
  readonly clusters: number;
  readonly volumeSize: number;
  readonly activeFat: number | null;
  readonly rootCluster: number;
  readonly media: number;
}

/** The layout the boot sector `boot` describes, in bytes from the volume's start; checked for consistency. */
export function fatLayout(boot: Uint8Array): FatLayout {
  check(looksLikeFat(boot), 'ERR_USED_MAP_BAD_SUPERBLOCK', 'the boot sector is not a FAT boot sector');
  const bps = u16(boot, 11);
  const spc = u8(boot, 13);
  const reserved = u16(boot, 14);
  const fats = u8(boot, 16);
  const rootEntries = u16(boot, 17);
  const total = u16(boot, 19) || u32(boot, 32);
  const fatSectors = u16(boot, 22) || u32(boot, 36);
  const rootSectors = Math.ceil((rootEntries * 32) / bps);
  const dataSector = reserved + fats * fatSectors + rootSectors;
  check(dataSector < total, 'ERR_USED_MAP_BAD_SUPERBLOCK', `data area at sector ${dataSector} past the volume's ${total} sectors`);
  const clusters = Math.floor((total - dataSector) / spc);
  check(clusters >= 1 && clusters <= 0x0ffffff5, 'ERR_USED_MAP_BAD_SUPERBLOCK', `${clusters} clusters`);
  const type = fatTypeOf(clusters);
  const bits = type === 'fat12' ? 12 : type === 'fat16' ? 16 : 32;
  const fatBytes = fatSectors * bps;
  check(Math.ceil(((clusters + 2) * bits) / 8) <= fatBytes, 'ERR_USED_MAP_BAD_SUPERBLOCK', `a FAT of ${fatBytes} bytes cannot map ${clusters} clusters`);
  const extFlags = type === 'fat32' ? u16(boot, 40) : 0;
  const activeFat = extFlags & 0x80 ? extFlags & 0x0f : null;
  check(activeFat === null || activeFat < fats, 'ERR_USED_MAP_BAD_SUPERBLOCK', `active FAT ${activeFat} of ${fats}`);
  return {
    type, bytesPerSector: bps, clusterSize: spc * bps, reserved: reserved * bps, fats, fatBytes,
    dataStart: dataSector * bps, clusters, volumeSize: total * bps, activeFat, rootCluster: type === 'fat32' ? u32(boot, 44) : 0,
    media: u8(boot, 21),
  };
}

/** Part of a FAT copy: its bytes (zeros where unreadable) and the unreadable ranges in it. */
interface FatPart {
  readonly data: Uint8Array;
  readonly bad: Block[];
  unreadable(at: number, n: number): boolean;
}

/** `bytes` of a FAT copy from `pos`, read in pieces so a bad sector costs only its piece. */
async function readFatPart(scan: Scan, pos: number, bytes: number): Promise<FatPart> {
  const data = new Uint8Array(bytes);
  const bad: Block[] = [];
  for await (const b of scan.reader.batches(pos, bytes)) {
    if (b.data === null) bad.push({ pos: b.pos - pos, size: b.size });
    else data.set(b.data, b.pos - pos);
  }
  return { data, bad, unreadable: (at, n) => bad.some((x) => x.pos < at + n && at < x.pos + x.size) };
}

/** Entry `i` of a FAT held in `fat`, whose first byte is that of entry `first` (FAT12: `first` even). */
function entry(fat: Uint8Array, type: FatLayout['type'], i: number, first: number): number {
  if (type === 'fat32') return u32(fat, (i - first) * 4) & 0x0fffffff;
  if (type === 'fat16') return u16(fat, (i - first) * 2);
  const off = Math.floor(((i - first) * 3) / 2);
  const v = u16(fat, off);
  return i & 1 ? v >> 4 : v & 0xfff;
}

/**
 * Scan the FAT volume of partition `part`: used clusters and metadata into `scan`.
 * @returns the type and the bytes of the partition the volume spans.
 * @throws CorruptError when the boot sector cannot be trusted.
 */
export async function scanFat(scan: Scan, part: Block): Promise<{ fs: string; size: number; claimed: number }> {
  const head = await scan.reader.read(part.pos, 512);
  check(head !== null, 'ERR_USED_MAP_UNREADABLE', 'the boot sector cannot be read');
  const L = fatLayout(head);
  if (L.type === 'fat32') await checkBackupBoot(scan, part, head, L);
  let size = L.volumeSize;
  if (size > part.size) {
    scan.warn('ERR_USED_MAP_FS_TOO_LARGE', `${L.type} at byte ${part.pos}: the volume claims ${size} bytes, its partition has ${part.size}`);
    size = part.size;
  }
  const base = part.pos;
  scan.metadata(base, Math.min(size, L.dataStart));
  const bits = L.type === 'fat12' ? 12 : L.type === 'fat16' ? 16 : 32;
  const copies = L.activeFat === null ? [...Array(L.fats).keys()] : [L.activeFat];
  // Batches hold a whole number of entries: FAT12's whole FAT fits in one (at most 6 KiB).
  const perBatch = L.type === 'fat32' ? MAX_READ / 4 : L.type === 'fat16' ? MAX_READ / 2 : L.clusters + 2;
  let differ = 0;
  let firstTable: Uint8Array | null = null;
  for (let first = 0; first < L.clusters + 2; first += perBatch) {
    const last = Math.min(L.clusters + 2, first + perBatch);
    const from = Math.floor((first * bits) / 8);
    const bytes = Math.ceil((last * bits) / 8) - from;
    const tables: FatPart[] = [];
    for (const k of copies) {
      const fatPos = base + L.reserved + k * L.fatBytes + from;
      if (fatPos + bytes > base + size) continue;
      const t = await readFatPart(scan, fatPos, bytes);
      tables.push(t);
      if (first === 0 && k === copies[0] && t.bad.length === 0) firstTable = t.data;
    }
    // Entry 0 holds the media byte: a FAT found elsewhere means the boot sector is wrong.
    const sound = tables.filter((t) => first !== 0 || !t.unreadable(0, 2));
    check(first !== 0 || sound.length === 0 || sound.some((t) => (entry(t.data, L.type, 0, 0) & 0xff) === L.media), 'ERR_USED_MAP_BAD_SUPERBLOCK',
      `no FAT copy starts with the media byte 0x${L.media.toString(16)}: the boot sector does not say where the FATs are`);
    let runStart = -1;
    for (let c = Math.max(2, first); c <= last; ++c) {
      let isUsed = false;
      if (c < last) {
        const at = Math.floor(((c - first) * bits) / 8);
        const readable = tables.filter((t) => !t.unreadable(at, Math.ceil(bits / 8) + 1));
        const used = readable.map((t) => entry(t.data, L.type, c, first) !== 0);
        isUsed = used.length === 0 || used.some(Boolean);
        if (isUsed && !used.every(Boolean)) differ++;
      }
      if (c < last && isUsed && runStart < 0) runStart = c;
      if ((c === last || !isUsed) && runStart >= 0) {
        const pos = L.dataStart + (runStart - 2) * L.clusterSize;
        scan.used(base + pos, Math.min(size, L.dataStart + (c - 2) * L.clusterSize) - pos);
        runStart = -1;
      }
    }
  }
  if (differ > 0) scan.warn('ERR_USED_MAP_FAT_COPIES_DIFFER', `${L.type} at byte ${part.pos}: ${differ} cluster(s) used in one FAT copy and free in another count as used`);
  const clustersEnd = L.dataStart + L.clusters * L.clusterSize;
  if (clustersEnd < size) scan.used(base + clustersEnd, size - clustersEnd);
  if (L.type === 'fat32') await markRootChain(scan, base, L, copies[0]!, firstTable);
  return { fs: L.type, size, claimed: L.volumeSize };
}

/**
 * FAT32 keeps a copy of its boot sector (usually sector 6): when the two disagree on the
 * layout (bytes 11 to 47 but the active FAT flags), the volume cannot be trusted.
 */
async function checkBackupBoot(scan: Scan, part: Block, boot: Uint8Array, L: FatLayout): Promise<void> {
  const at = u16(boot, 50);
  if (at === 0 || at === 0xffff || at * L.bytesPerSector >= L.reserved) return;
  const copy = await scan.reader.read(part.pos + at * L.bytesPerSector, 512);
  if (copy === null) return;
  for (let i = 11; i < 48; ++i) {
    check(i === 40 || i === 41 || copy[i] === boot[i], 'ERR_USED_MAP_BAD_SUPERBLOCK', `the boot sector and its backup at sector ${at} differ at byte ${i}`);
  }
}

/** The FAT32 root directory's clusters, as metadata; a broken chain just ends it (its clusters are used anyway). */
async function markRootChain(scan: Scan, base: number, L: FatLayout, copy: number, firstTable: Uint8Array | null): Promise<void> {
  let c = L.rootCluster;
  for (let n = 0; n < MAX_ROOT_CLUSTERS && c >= 2 && c < L.clusters + 2; ++n) {
    scan.metadata(base + L.dataStart + (c - 2) * L.clusterSize, L.clusterSize);
    let next: number;
    if (firstTable !== null && c * 4 + 4 <= firstTable.length) next = u32(firstTable, c * 4) & 0x0fffffff;
    else {
      const e = await scan.reader.read(base + L.reserved + copy * L.fatBytes + c * 4, 4);
      if (e === null) return;
      next = u32(e, 0) & 0x0fffffff;
    }
    if (next === c) return;
    c = next;
  }
}
