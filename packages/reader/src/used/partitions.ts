/**
 * Tell what sector 0 holds: a GPT (protective MBR, or an `EFI PART` header at LBA 1 in
 * sectors of 512 or 4096 bytes), an MBR with its extended partitions, a file system
 * without any table, or nothing known (the whole disk counts as used). Then check the
 * partitions against each other: overlapping partitions are kept, with a warning, and
 * the space outside the partitions counts as used.
 */
import { hasGptSignature, readGpt } from './gpt.js';
import { PROTECTIVE_TYPE, type PartitionTable, hasBootSignature, looksLikeMbr, mbrEntries, readMbr } from './mbr.js';
import { probeFileSystem } from './probe.js';
import { mergeBlocks, subtractBlocks } from './ranges.js';
import type { Scan } from './scan.js';

/** Read the partition table at the start of the disk. */
export async function readPartitionTable(scan: Scan): Promise<PartitionTable> {
  const table: PartitionTable = { kind: 'none', partitions: [], gapsUsed: false, unknown: [] };
  const size = scan.reader.size;
  const ss = scan.reader.sectorSize;
  if (size < 512) {
    table.unknown.push({ pos: 0, size });
    return table;
  }
  // the probe's read covers sector 0, which then comes from the cache
  const fs = await probeFileSystem(scan, 0, size);
  const sector0 = await scan.reader.read(0, Math.max(512, Math.min(ss, size)));
  if (sector0 === null) {
    table.unknown.push({ pos: 0, size });
    return table;
  }
  const bootable = hasBootSignature(sector0);
  if (fs === 'ntfs' || fs === 'exfat' || (fs === 'fat' && !(bootable && mbrEntries(sector0).some((e) => e.type === PROTECTIVE_TYPE)))) {
    table.partitions.push({ pos: 0, size, type: 'none' });
    return table;
  }
  const protective = bootable && mbrEntries(sector0).some((e) => e.type === PROTECTIVE_TYPE);
  for (const unit of ss === 4096 ? [4096, 512] : [ss, ss === 512 ? 4096 : 512]) {
    if ((protective || unit === ss) && await hasGptSignature(scan, unit)) {
      table.kind = 'gpt';
      await readGpt(scan, unit, table);
      return checkOverlaps(scan, table);
    }
  }
  if (protective) {
    table.kind = 'gpt';
    await readGpt(scan, ss, table);
    return checkOverlaps(scan, table);
  }
  if (looksLikeMbr(sector0)) {
    table.kind = 'mbr';
    await readMbr(scan, sector0, table);
    checkOverlaps(scan, table);
    if (!table.gapsUsed) await probeGaps(scan, table);
    return table;
  }
  if (fs === 'ext') {
    table.partitions.push({ pos: 0, size, type: 'none' });
    return table;
  }
  scan.warn('ERR_USED_MAP_NO_TABLE', 'no partition table and no known file system at byte 0: the whole disk counts as used');
  table.unknown.push({ pos: 0, size });
  return table;
}

/**
 * An MBR has no checksum: a wiped or deleted entry looks like an empty slot. Where a
 * gap between partitions begins (at the gap, at the next 63-sector boundary, and at the
 * next two 1 MiB boundaries: the usual partition starts), a file system means a lost
 * entry: the gaps then count as used (`ERR_USED_MAP_BAD_MBR`). At most four probes per gap.
 */
async function probeGaps(scan: Scan, table: PartitionTable): Promise<void> {
  const ss = scan.reader.sectorSize;
  const size = scan.reader.size;
  // what a broken EBR chain left already counts as used: no need to look there
  const taken = mergeBlocks([{ pos: 0, size: ss }, ...table.partitions, ...table.unknown]);
  for (const gap of subtractBlocks({ pos: 0, size }, taken)) {
    const up = (unit: number): number => Math.ceil(gap.pos / unit) * unit;
    // the next MiB too: a gap may begin with an EBR, its logical partition a MiB further
    const starts = [...new Set([up(ss), up(63 * ss), up(2048 * ss), up(2048 * ss) + 2048 * ss])].filter((p) => p + 2048 <= gap.pos + gap.size);
    for (const at of starts) {
      const fs = await probeFileSystem(scan, at, gap.pos + gap.size - at);
      if (fs === 'unknown' || fs === 'unreadable') continue;
      scan.warn('ERR_USED_MAP_BAD_MBR', `a file system (${fs}) at byte ${at} lies outside every partition of the MBR (a lost or deleted entry?): the space outside partitions counts as used`);
      table.gapsUsed = true;
      return;
    }
  }
}

function checkOverlaps(scan: Scan, table: PartitionTable): PartitionTable {
  const sorted = [...table.partitions].sort((a, b) => a.pos - b.pos);
  for (let i = 1; i < sorted.length; ++i) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (b.pos < a.pos + a.size) {
      scan.warn('ERR_USED_MAP_BAD_PARTITION', `partitions at bytes ${a.pos} and ${b.pos} overlap: each is read, and the space outside partitions counts as used`);
      table.gapsUsed = true;
    }
  }
  table.partitions.sort((a, b) => a.pos - b.pos);
  return table;
}
