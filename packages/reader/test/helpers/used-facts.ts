/**
 * What the file systems' own tools say about a volume, for the used-space compat
 * tests: where it ends and where its metadata lies (dumpe2fs, debugfs, ntfsinfo,
 * dump.exfat, fsck.fat -v), in bytes from the partition's start. Independent of the
 * scan under test.
 */
import type { Block } from '@ddferry/mapfile';

import { type TestFs, readAt, sh } from './used-disks.js';

export interface FsFacts {
  /** Bytes of the partition the file system spans. */
  readonly fsEnd: number;
  /** Metadata the tools locate, by name. */
  readonly metadata: ReadonlyArray<{ readonly name: string; readonly blocks: readonly Block[] }>;
  /** Space inside the volume that no allocation map covers, by name (the scan counts it used). */
  readonly unmapped?: { readonly name: string; readonly blocks: readonly Block[] };
}

function num(text: string, re: RegExp, what: string): number {
  const m = re.exec(text);
  if (m === null) throw new Error(`cannot find ${what} in:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
}

function extFacts(dev: string): FsFacts {
  const text = sh('dumpe2fs', [dev]);
  const bs = num(text, /^Block size:\s+(\d+)/m, 'Block size');
  const count = num(text, /^Block count:\s+(\d+)/m, 'Block count');
  const blocks = (re: RegExp): Block[] => [...text.matchAll(re)].map((m) => ({ pos: Number(m[1]) * bs, size: ((m[2] === undefined ? Number(m[1]) : Number(m[2])) - Number(m[1]) + 1) * bs }));
  const metadata = [
    { name: 'ext superblocks', blocks: blocks(/superblock at (\d+)/g) },
    { name: 'ext group descriptors', blocks: blocks(/Group descriptors at (\d+)-(\d+)/g) },
    { name: 'ext reserved GDT blocks', blocks: blocks(/Reserved GDT blocks at (\d+)-(\d+)/g) },
    { name: 'ext block bitmaps', blocks: blocks(/Block bitmap at (\d+)/g) },
    { name: 'ext inode bitmaps', blocks: blocks(/Inode bitmap at (\d+)/g) },
  ];
  if (/has_journal/.test(text)) {
    const list = sh('debugfs', ['-R', 'blocks <8>', dev]).trim().split(/\s+/).map(Number);
    metadata.push({ name: 'ext journal', blocks: list.map((b) => ({ pos: b * bs, size: bs })) });
  }
  return { fsEnd: count * bs, metadata };
}

/**
 * The used blocks of the ext volume on `dev` by libext2fs (dumpe2fs's per-group free
 * block lists, BLOCK_UNINIT groups included): the volume less its free blocks. With
 * bigalloc the lists name the first block of each free cluster.
 */
export function dumpe2fsDomain(dev: string, offset: number): Block[] {
  const text = sh('dumpe2fs', [dev]);
  const bs = num(text, /^Block size:\s+(\d+)/m, 'Block size');
  const count = num(text, /^Block count:\s+(\d+)/m, 'Block count');
  const cluster = /^Cluster size:\s+(\d+)/m.exec(text);
  const ratio = cluster === null ? 1 : Number(cluster[1]) / bs;
  const free: Block[] = [];
  for (const line of text.matchAll(/^\s+Free blocks: (.+)$/gm)) {
    for (const r of line[1]!.split(', ')) {
      const [a, b] = r.split('-').map(Number) as [number, number | undefined];
      free.push({ pos: a * bs, size: (Math.min(count, (b ?? a) + ratio) - a) * bs });
    }
  }
  free.sort((x, y) => x.pos - y.pos);
  const used: Block[] = [];
  let at = 0;
  for (const f of free) {
    if (f.pos > at) used.push({ pos: offset + at, size: f.pos - at });
    at = Math.max(at, f.pos + f.size);
  }
  if (at < count * bs) used.push({ pos: offset + at, size: count * bs - at });
  return used;
}

function ntfsFacts(dev: string): FsFacts {
  const text = sh('ntfsinfo', ['-m', '-f', dev]);
  const cs = num(text, /Cluster Size:\s+(\d+)/, 'Cluster Size');
  const recordSize = num(text, /MFT Record Size:\s+(\d+)/, 'MFT Record Size');
  const mft = num(text, /LCN of Data Attribute for FILE_MFT:\s+(\d+)/, 'the MFT position');
  const mirror = num(text, /LCN of Data Attribute for File_MFTMirr:\s+(\d+)/, 'the MFTMirr position');
  const boot = readAt(dev, 0, 512);
  return {
    // the boot sector's total sectors: the backup boot sector lies just past them
    fsEnd: Number(boot.readBigUInt64LE(40)) * boot.readUInt16LE(11),
    metadata: [
      { name: 'NTFS $MFT (system records)', blocks: [{ pos: mft * cs, size: 16 * recordSize }] },
      { name: 'NTFS $MFTMirr', blocks: [{ pos: mirror * cs, size: 4 * recordSize }] },
      { name: 'NTFS boot sector', blocks: [{ pos: 0, size: 512 }] },
    ],
  };
}

function exfatFacts(dev: string): FsFacts {
  const text = sh('dump.exfat', [dev]);
  const ss = 2 ** num(text, /Sector Size Bits:\s+(\d+)/, 'Sector Size Bits');
  const cs = ss * 2 ** num(text, /Sector per Cluster bits:\s+(\d+)/, 'Sector per Cluster bits');
  const heap = num(text, /Cluster Heap Offset \(sector offset\):\s+(\d+)/, 'Cluster Heap Offset') * ss;
  const clusterPos = (c: number): number => heap + (c - 2) * cs;
  const bitmap = num(text, /Bitmap start cluster:\s+(\d+)/, 'Bitmap start cluster');
  const bitmapSize = num(text, /Bitmap size:\s+(\d+)/, 'Bitmap size');
  const upcase = num(text, /Upcase table start cluster:\s+(\d+)/, 'Upcase table start cluster');
  const root = num(text, /Root Cluster \(cluster offset\):\s+(\d+)/, 'Root Cluster');
  return {
    fsEnd: num(text, /Volume Length\(sectors\):\s+(\d+)/, 'Volume Length') * ss,
    metadata: [
      { name: 'exFAT boot regions', blocks: [{ pos: 0, size: 24 * ss }] },
      { name: 'exFAT FAT', blocks: [{ pos: num(text, /FAT Offset\(sector offset\):\s+(\d+)/, 'FAT Offset') * ss, size: num(text, /FAT Length\(sectors\):\s+(\d+)/, 'FAT Length') * ss }] },
      { name: 'exFAT allocation bitmap', blocks: [{ pos: clusterPos(bitmap), size: Math.ceil(bitmapSize / cs) * cs }] },
      { name: 'exFAT up-case table', blocks: [{ pos: clusterPos(upcase), size: cs }] },
      { name: 'exFAT root directory', blocks: [{ pos: clusterPos(root), size: cs }] },
    ],
  };
}

function fatFacts(dev: string): FsFacts {
  const text = sh('fsck.fat', ['-n', '-v', dev]);
  const ss = num(text, /(\d+) bytes per logical sector/, 'bytes per logical sector');
  const first = num(text, /First FAT starts at byte (\d+)/, 'First FAT');
  const perFat = num(text, /(\d+) bytes per FAT/, 'bytes per FAT');
  const fats = num(text, /(\d+) FATs/, 'FATs');
  const fsEnd = num(text, /(\d+) sectors total/, 'sectors total') * ss;
  const clustersEnd = num(text, /Data area starts at byte (\d+)/, 'Data area') + num(text, /data clusters \((\d+) bytes\)/, 'data clusters');
  return {
    fsEnd,
    unmapped: { name: 'FAT: sectors past the last cluster', blocks: [{ pos: clustersEnd, size: fsEnd - clustersEnd }] },
    metadata: [
      { name: 'FAT boot sector and reserved sectors', blocks: [{ pos: 0, size: first }] },
      { name: 'FAT tables', blocks: [{ pos: first, size: fats * perFat }] },
      { name: 'FAT root directory area', blocks: [{ pos: first + fats * perFat, size: num(text, /Data area starts at byte (\d+)/, 'Data area') - first - fats * perFat }] },
    ],
  };
}

/** The facts of the volume on `dev`. */
export function fsFacts(dev: string, fs: TestFs): FsFacts {
  if (fs.startsWith('ext')) return extFacts(dev);
  if (fs === 'ntfs') return ntfsFacts(dev);
  if (fs === 'exfat') return exfatFacts(dev);
  return fatFacts(dev);
}
