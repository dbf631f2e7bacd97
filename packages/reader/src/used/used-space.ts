/**
 * The used-space scan: partition tables, then each partition's file system, give the
 * domain to rescue first. It reads only through the given `ByteReader`.
 *
 * | what is found                                | counts as                              |
 * |----------------------------------------------|----------------------------------------|
 * | MBR, EBRs, GPT headers and entry arrays      | metadata                               |
 * | space outside partitions                     | free; used when a table entry is implausible, when a partition is smaller than its file system, or (MBR, which has no checksum) when a partition holds nothing known |
 * | partition with ext2/3/4, NTFS, FAT, exFAT    | its used blocks; its metadata          |
 * | partition space past its file system's end   | used                                   |
 * | partition of unknown content                 | used, whole                            |
 * | damaged superblock, table or bitmap          | used (the part it describes), warned   |
 * | unreadable sectors (reader gives `null`)     | used (what they describe), warned      |
 */
import type { Block } from '@ddferry/mapfile';

import type { ByteReader } from './byte-reader.js';
import { CorruptError } from './bytes.js';
import { scanExfat } from './exfat.js';
import { scanExt } from './ext.js';
import { scanFat } from './fat.js';
import type { TablePartition } from './mbr.js';
import { scanNtfs } from './ntfs.js';
import { readPartitionTable } from './partitions.js';
import { probeFileSystem } from './probe.js';
import { alignBlocks, mergeBlocks, subtractBlocks } from './ranges.js';
import { Scan } from './scan.js';
import type { UsedMapWarning } from './warnings.js';

/** How a partition was read. */
export type UsedFs = 'ext4' | 'ntfs' | 'fat12' | 'fat16' | 'fat32' | 'exfat' | 'unknown' | 'unreadable';

export interface UsedPartition {
  readonly pos: number;
  readonly size: number;
  /** The table's type: `0x83` (MBR), a GPT type GUID, or `none` for a file system without a table. */
  readonly type: string;
  /** `ext4` for ext2, ext3 and ext4 alike. */
  readonly fs: UsedFs;
}

export interface UsedSpace {
  /** Sorted, disjoint, merged, sector-aligned: used data plus metadata, the domain to rescue first. */
  readonly used: readonly Block[];
  /** Sorted, disjoint, sector-aligned: the file systems' and tables' own metadata, a subset of `used`; rescued first of all. */
  readonly metadata: readonly Block[];
  /** What was found: each partition with its type and how it was read. */
  readonly partitions: readonly UsedPartition[];
  /** Coded warnings (`ERR_USED_MAP_…`): a damaged table or bitmap, an unreadable sector, an implausible number. */
  readonly warnings: readonly UsedMapWarning[];
}

export interface FindUsedSpaceOptions {
  /** Checked between reads; the scan then throws its reason. */
  readonly signal?: AbortSignal;
}

const SCANNERS = { ext: scanExt, ntfs: scanNtfs, fat: scanFat, exfat: scanExfat } as const;

/** How a partition was read, and whether its table entry looks wrong (its file system says it is larger). */
async function scanPartition(scan: Scan, p: TablePartition): Promise<{ fs: UsedFs; tooSmall: boolean }> {
  const probed = await probeFileSystem(scan, p.pos, p.size);
  if (probed === 'unknown' || probed === 'unreadable') {
    scan.used(p.pos, p.size);
    return { fs: probed, tooSmall: false };
  }
  const name: UsedFs = probed === 'ext' ? 'ext4' : probed === 'fat' ? 'fat32' : probed;
  try {
    const { fs, size, claimed } = await SCANNERS[probed](scan, p);
    if (size < p.size) scan.used(p.pos + size, p.size - size);
    return { fs: fs as UsedFs, tooSmall: claimed > p.size };
  } catch (err) {
    if (!(err instanceof CorruptError)) throw err;
    scan.warn(err.code, `${probed === 'fat' ? 'FAT' : name} at byte ${p.pos}: ${err.message}: the whole partition counts as used`);
    scan.used(p.pos, p.size);
    return { fs: name, tooSmall: false };
  }
}

/**
 * Find the used space of the disk `reader` reads: partition tables (MBR with extended
 * partitions, GPT with its backup), then in each partition the allocation maps of
 * ext2/3/4, NTFS, FAT12/16/32 or exFAT. Damage never shrinks the result: what a damaged
 * or unreadable structure describes counts as used, with a warning. Reads are at most
 * 4 MiB each, sector-aligned, and never repeated for a failed range.
 * @throws the signal's reason when `options.signal` aborts.
 */
export async function findUsedSpace(reader: ByteReader, options: FindUsedSpaceOptions = {}): Promise<UsedSpace> {
  const scan = new Scan(reader, options.signal);
  const table = await readPartitionTable(scan);
  const partitions: UsedPartition[] = [];
  let gapsUsed = table.gapsUsed;
  for (const p of table.partitions) {
    const { fs, tooSmall } = await scanPartition(scan, p);
    partitions.push({ ...p, fs });
    // An MBR has no checksum: a partition that holds nothing known, or that is smaller than
    // its file system, may be a damaged entry whose real partition lies partly in a gap.
    if (tooSmall || (table.kind === 'mbr' && (fs === 'unknown' || fs === 'unreadable'))) gapsUsed = true;
  }
  for (const u of table.unknown) scan.used(u.pos, u.size);
  if (gapsUsed) {
    for (const gap of subtractBlocks({ pos: 0, size: reader.size }, mergeBlocks(table.partitions))) scan.used(gap.pos, gap.size);
  }
  const ss = reader.sectorSize;
  const metadata = alignBlocks(scan.metadataBlocks(), ss, reader.size);
  const used = alignBlocks([...scan.usedBlocks(), ...metadata], ss, reader.size);
  return { used, metadata, partitions, warnings: scan.warnings.list() };
}
