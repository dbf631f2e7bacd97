/**
 * exFAT: the allocation bitmap (found in the root directory, read along its FAT chain)
 * says which clusters of the cluster heap are used. The boot region is checked by its
 * checksum; when the main one fails, the backup is used. Metadata: both boot regions,
 * the FAT(s), the allocation bitmap(s), the up-case table and the root directory.
 * Everything before the cluster heap counts as used.
 */
import type { Block } from '@ddferry/mapfile';

import { MAX_READ } from './byte-reader.js';
import { type BitmapExtent, scanBitmap } from './bitmap.js';
import { CorruptError, ascii, check, u32, u64, u8 } from './bytes.js';
import type { Scan } from './scan.js';

/** Longest cluster chain followed for the root directory, the bitmap or the up-case table. */
const MAX_CHAIN = 1 << 20;
/** A root directory larger than this is corrupt. */
const MAX_ROOT_BYTES = 64 * 1024 * 1024;

interface ExfatLayout {
  readonly bps: number;
  readonly clusterSize: number;
  readonly volumeSize: number;
  readonly fatPos: number;
  readonly fatBytes: number;
  readonly fats: number;
  readonly heap: number;
  readonly clusters: number;
  readonly rootCluster: number;
}

/** The boot checksum of the 11 sectors `region` (VolumeFlags and PercentInUse skipped). */
export function exfatBootChecksum(region: Uint8Array, bps: number): number {
  let sum = 0;
  for (let i = 0; i < 11 * bps; ++i) {
    if (i === 106 || i === 107 || i === 112) continue;
    sum = (((sum & 1) ? 0x80000000 : 0) + (sum >>> 1) + region[i]!) >>> 0;
  }
  return sum;
}

function parseBoot(region: Uint8Array, bps: number): ExfatLayout {
  check(ascii(region, 3, 8) === 'EXFAT   ', 'ERR_USED_MAP_BAD_SUPERBLOCK', 'no EXFAT signature');
  const sum = exfatBootChecksum(region, bps);
  for (let o = 11 * bps; o < 12 * bps; o += 4) check(u32(region, o) === sum, 'ERR_USED_MAP_BAD_SUPERBLOCK', 'boot region checksum mismatch');
  const spcShift = u8(region, 109);
  check(u8(region, 108) + spcShift <= 25, 'ERR_USED_MAP_BAD_SUPERBLOCK', `cluster shift ${spcShift}`);
  const L: ExfatLayout = {
    bps, clusterSize: bps * 2 ** spcShift, volumeSize: u64(region, 72, 'ERR_USED_MAP_BAD_SUPERBLOCK') * bps,
    fatPos: u32(region, 80) * bps, fatBytes: u32(region, 84) * bps, fats: u8(region, 110),
    heap: u32(region, 88) * bps, clusters: u32(region, 92), rootCluster: u32(region, 96),
  };
  check(L.fats === 1 || L.fats === 2, 'ERR_USED_MAP_BAD_SUPERBLOCK', `${L.fats} FATs`);
  check(L.fatPos >= 24 * bps && L.fatPos + L.fats * L.fatBytes <= L.heap, 'ERR_USED_MAP_BAD_SUPERBLOCK', 'the FATs overlap the boot region or the cluster heap');
  check(L.fatBytes >= (L.clusters + 2) * 4, 'ERR_USED_MAP_BAD_SUPERBLOCK', `a FAT of ${L.fatBytes} bytes cannot map ${L.clusters} clusters`);
  check(L.heap + L.clusters * L.clusterSize <= L.volumeSize, 'ERR_USED_MAP_BAD_SUPERBLOCK', 'the cluster heap ends past the volume');
  check(L.rootCluster >= 2 && L.rootCluster < L.clusters + 2, 'ERR_USED_MAP_BAD_SUPERBLOCK', `root directory cluster ${L.rootCluster}`);
  return L;
}

/** The boot region's layout: the main one, else the backup (`ERR_USED_MAP_BAD_SUPERBLOCK` warned). */
async function readBoot(scan: Scan, part: Block): Promise<ExfatLayout> {
  const first = await scan.reader.read(part.pos, 512);
  check(first !== null, 'ERR_USED_MAP_UNREADABLE', 'the boot sector cannot be read');
  const shift = u8(first, 108);
  check(shift >= 9 && shift <= 12, 'ERR_USED_MAP_BAD_SUPERBLOCK', `bytes per sector shift ${shift}`);
  const bps = 2 ** shift;
  let problem = '';
  for (const copy of [0, 1]) {
    const region = 24 * bps <= part.size ? await scan.reader.read(part.pos + copy * 12 * bps, 12 * bps) : null;
    if (region === null) {
      problem ||= 'the boot region cannot be read';
      continue;
    }
    try {
      const L = parseBoot(region, bps);
      if (copy === 1) scan.warn('ERR_USED_MAP_BAD_SUPERBLOCK', `exfat at byte ${part.pos}: main boot region: ${problem}; the backup is used`);
      return L;
    } catch (err) {
      if (!(err instanceof CorruptError)) throw err;
      problem ||= err.message;
    }
  }
  throw new CorruptError('ERR_USED_MAP_BAD_SUPERBLOCK', `main and backup boot regions: ${problem}`);
}

/** The runs of clusters of the chain from `first` (`[cluster, count]`), at most `maxClusters` long. */
async function chainRuns(scan: Scan, base: number, L: ExfatLayout, first: number, maxClusters: number): Promise<Array<[number, number]>> {
  const runs: Array<[number, number]> = [];
  let c = first;
  for (let n = 0; n < maxClusters; ++n) {
    check(c >= 2 && c < L.clusters + 2, 'ERR_USED_MAP_BAD_METADATA', `cluster chain reaches cluster ${c}, outside the heap`);
    const last = runs[runs.length - 1];
    if (last !== undefined && last[0] + last[1] === c) last[1]++;
    else runs.push([c, 1]);
    if (n + 1 === maxClusters) break;
    const e = await scan.reader.read(base + L.fatPos + c * 4, 4);
    check(e !== null, 'ERR_USED_MAP_UNREADABLE', `FAT entry of cluster ${c} cannot be read`);
    const next = u32(e, 0);
    if (next >= 0xfffffff8) break;
    c = next;
  }
  return runs;
}

/**
 * Scan the exFAT volume of partition `part`.
 * @throws CorruptError when the boot regions, the root directory or the bitmap cannot be trusted.
 */
export async function scanExfat(scan: Scan, part: Block): Promise<{ fs: string; size: number; claimed: number }> {
  const L = await readBoot(scan, part);
  const base = part.pos;
  let size = L.volumeSize;
  if (size > part.size) {
    scan.warn('ERR_USED_MAP_FS_TOO_LARGE', `exfat at byte ${part.pos}: the volume claims ${size} bytes, its partition has ${part.size}`);
    size = part.size;
  }
  check(L.heap <= size, 'ERR_USED_MAP_BAD_SUPERBLOCK', 'the cluster heap starts past the partition');
  const clusterPos = (c: number): number => base + L.heap + (c - 2) * L.clusterSize;
  scan.used(base, L.heap);
  scan.metadata(base, 24 * L.bps);
  scan.metadata(base + L.fatPos, L.fats * L.fatBytes);
  const rootRuns = await chainRuns(scan, base, L, L.rootCluster, Math.max(1, Math.floor(MAX_ROOT_BYTES / L.clusterSize)));
  const bitmaps: Array<{ first: number; length: number }> = [];
  const others: Array<{ first: number; length: number }> = [];
  let ended = false;
  for (const [c, n] of rootRuns) {
    scan.metadata(clusterPos(c), n * L.clusterSize);
    for (let at = 0; at < n * L.clusterSize && !ended; at += MAX_READ) {
      const dir = await scan.reader.read(clusterPos(c) + at, Math.min(MAX_READ, n * L.clusterSize - at));
      check(dir !== null, 'ERR_USED_MAP_UNREADABLE', 'the root directory cannot be read');
      for (let o = 0; o + 32 <= dir.length; o += 32) {
        const type = u8(dir, o);
        if (type === 0) {
          ended = true;
          break;
        }
        if (type === 0x81) bitmaps.push({ first: u32(dir, o + 20), length: u64(dir, o + 24) });
        if (type === 0x82) others.push({ first: u32(dir, o + 20), length: u64(dir, o + 24) });
      }
    }
    if (ended) break;
  }
  if (bitmaps.length === 0) {
    throw new CorruptError('ERR_USED_MAP_NO_BITMAP', 'the root directory has no allocation bitmap entry');
  }
  for (const t of others) {
    if (t.first < 2 || t.first >= L.clusters + 2) continue;
    for (const [c, n] of await chainRuns(scan, base, L, t.first, Math.min(MAX_CHAIN, Math.ceil(t.length / L.clusterSize) || 1))) {
      scan.metadata(clusterPos(c), n * L.clusterSize);
    }
  }
  for (const b of bitmaps.slice(0, 2)) {
    check(b.length >= Math.ceil(L.clusters / 8), 'ERR_USED_MAP_BAD_BITMAP', `an allocation bitmap of ${b.length} bytes cannot map ${L.clusters} clusters`);
    const runs = await chainRuns(scan, base, L, b.first, Math.ceil(Math.ceil(L.clusters / 8) / L.clusterSize));
    const extents: BitmapExtent[] = [];
    let bit = 0;
    for (const [c, n] of runs) {
      scan.metadata(clusterPos(c), n * L.clusterSize);
      const bits = Math.min(L.clusters - bit, n * L.clusterSize * 8);
      extents.push({ pos: clusterPos(c), first: bit + 2, bits });
      bit += bits;
    }
    check(bit >= L.clusters, 'ERR_USED_MAP_BAD_BITMAP', 'the allocation bitmap chain is shorter than the bitmap');
    await scanBitmap(scan, extents, (c, n) => scan.used(clusterPos(c), n * L.clusterSize));
  }
  const heapEnd = L.heap + L.clusters * L.clusterSize;
  if (heapEnd < size) scan.used(base + heapEnd, size - heapEnd);
  return { fs: 'exfat', size, claimed: L.volumeSize };
}
