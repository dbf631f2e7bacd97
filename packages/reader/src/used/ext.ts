/**
 * ext2, ext3 and ext4: each block group's block bitmap says which blocks (clusters with
 * bigalloc) are used. Descriptors and bitmaps are checked (checksums with gdt_csum or
 * metadata_csum, the free count, the locations); a group that fails counts as used
 * whole. `BLOCK_UNINIT` groups (believed only when descriptors are checksummed) hold only
 * their metadata. A journal that needs recovery makes every group whose bitmap or
 * descriptor block it holds count as used. Metadata: the boot block, the superblock and
 * descriptor copies (with reserved GDT blocks), the bitmaps, the inode tables (the part
 * holding used inodes when the descriptors tell it), and the journal.
 */
import type { Block } from '@ddferry/mapfile';

import { MAX_READ } from './byte-reader.js';
import { countClear, forEachRun } from './bitmap.js';
import { CorruptError, check, slice } from './bytes.js';
import { fileBlocks, readInode } from './ext-inode.js';
import { loggedBlocks } from './ext-journal.js';
import {
  BG_BLOCK_UNINIT, BG_INODE_UNINIT, type ExtSuper, type GroupDescriptor, SUPERBLOCK_POS, SUPERBLOCK_SIZE, bitmapChecksumOk, descriptorBlock,
  descriptorChecksumOk, groupBlocks, groupFirstBlock, hasGroupChecksums, inodeTableBlocks, parseDescriptor, parseExtSuper, superAndDescriptorBlocks,
} from './ext-super.js';
import type { Scan } from './scan.js';

interface Pending {
  readonly g: number;
  readonly raw: Uint8Array;
  readonly d: GroupDescriptor;
}

class ExtScan {
  readonly scan: Scan;
  readonly s: ExtSuper;
  readonly base: number;
  logged = new Set<number>();
  /** The first batch of descriptor blocks, read before the journal (whose inode it locates). */
  firstBatch: { block: number; data: Uint8Array | null } | null = null;

  constructor(scan: Scan, s: ExtSuper, base: number) {
    this.scan = scan;
    this.s = s;
    this.base = base;
  }

  blocks(block: number, count: number, metadata: boolean): void {
    const pos = this.base + block * this.s.blockSize;
    if (metadata) this.scan.metadata(pos, count * this.s.blockSize);
    else this.scan.used(pos, count * this.s.blockSize);
  }

  groupUsed(g: number): void {
    this.blocks(groupFirstBlock(this.s, g), groupBlocks(this.s, g), false);
  }

  async descriptorOf(g: number): Promise<Uint8Array | null> {
    const s = this.s;
    const perBlock = s.blockSize / s.descSize;
    const at = descriptorBlock(s, Math.floor(g / perBlock));
    const fb = this.firstBatch;
    const block = fb?.data && at >= fb.block && (at - fb.block + 1) * s.blockSize <= fb.data.length
      ? fb.data.subarray((at - fb.block) * s.blockSize, (at - fb.block + 1) * s.blockSize)
      : await this.scan.reader.read(this.base + at * s.blockSize, s.blockSize);
    return block === null ? null : slice(block, (g % perBlock) * s.descSize, s.descSize);
  }

  /** Check group `g`'s descriptor, mark its metadata; its bitmap to read, or null when the group is settled. */
  group(g: number, raw: Uint8Array, staleDescriptors: boolean): Pending | null {
    const s = this.s;
    for (const [b, n] of superAndDescriptorBlocks(s, g)) this.blocks(b, n, true);
    if (staleDescriptors) {
      this.groupUsed(g);
      return null;
    }
    if (!descriptorChecksumOk(s, g, raw)) {
      this.scan.warn('ERR_USED_MAP_BAD_GROUP', `ext4 at byte ${this.base}: group ${g}: descriptor checksum mismatch: the group counts as used`);
      this.groupUsed(g);
      return null;
    }
    const d = parseDescriptor(s, raw);
    const first = groupFirstBlock(s, g);
    const end = first + groupBlocks(s, g);
    const itable = inodeTableBlocks(s);
    const inside = (b: number, n: number): boolean => (s.flexBg ? b >= s.firstDataBlock && b + n <= s.blocksCount : b >= first && b + n <= end);
    if (!inside(d.blockBitmap, 1) || !inside(d.inodeBitmap, 1) || !inside(d.inodeTable, itable)) {
      this.scan.warn('ERR_USED_MAP_BAD_GROUP', `ext4 at byte ${this.base}: group ${g}: bitmaps or inode table outside the volume: the group counts as used`);
      this.groupUsed(g);
      return null;
    }
    const checked = hasGroupChecksums(s);
    this.blocks(d.blockBitmap, 1, true);
    this.blocks(d.inodeBitmap, 1, true);
    const usedInodes = !checked ? s.inodesPerGroup : d.flags & BG_INODE_UNINIT ? 0 : Math.max(0, s.inodesPerGroup - d.itableUnused);
    this.blocks(d.inodeTable, Math.min(itable, Math.ceil((usedInodes * s.inodeSize) / s.blockSize)), true);
    this.blocks(d.inodeTable, itable, false);
    if (this.logged.has(d.blockBitmap)) {
      this.groupUsed(g);
      return null;
    }
    if (checked && d.flags & BG_BLOCK_UNINIT) return null;
    return { g, raw, d };
  }

  /** Read the bitmaps of `pending`, contiguous ones together, and mark their used blocks. */
  async bitmaps(pending: Pending[]): Promise<void> {
    const s = this.s;
    pending.sort((a, b) => a.d.blockBitmap - b.d.blockBitmap);
    const maxBlocks = Math.max(1, Math.floor(MAX_READ / s.blockSize));
    for (let i = 0; i < pending.length;) {
      let k = i + 1;
      while (k < pending.length && k - i < maxBlocks && pending[k]!.d.blockBitmap === pending[k - 1]!.d.blockBitmap + 1) ++k;
      const first = pending[i]!.d.blockBitmap;
      // in pieces: an unreadable bitmap block costs its 64 KiB piece, not the whole batch
      const pieces = [];
      for await (const b of this.scan.reader.batches(this.base + first * s.blockSize, (pending[k - 1]!.d.blockBitmap - first + 1) * s.blockSize)) pieces.push(b);
      for (const p of pending.slice(i, k)) {
        const at = this.base + p.d.blockBitmap * s.blockSize;
        const piece = pieces.find((b) => b.pos <= at && at + s.blockSize <= b.pos + b.size);
        if (piece?.data) this.bitmap(p, piece.data.subarray(at - piece.pos, at - piece.pos + s.blockSize));
        else this.groupUsed(p.g);
      }
      i = k;
    }
  }

  bitmap(p: Pending, bitmap: Uint8Array): void {
    const s = this.s;
    const first = groupFirstBlock(s, p.g);
    const nBlocks = groupBlocks(s, p.g);
    const nClusters = Math.ceil(nBlocks / s.clusterRatio);
    const free = countClear(bitmap, 0, nClusters);
    if (!bitmapChecksumOk(s, p.raw, bitmap) || free !== p.d.freeClusters) {
      this.scan.warn('ERR_USED_MAP_BAD_BITMAP', `ext4 at byte ${this.base}: group ${p.g}: the block bitmap ${bitmapChecksumOk(s, p.raw, bitmap) ? `has ${free} free clusters, its descriptor says ${p.d.freeClusters}` : 'fails its checksum'}: the group counts as used`);
      this.groupUsed(p.g);
      return;
    }
    forEachRun(bitmap, nClusters, (c, n) => this.blocks(first + c * s.clusterRatio, Math.min(n * s.clusterRatio, nBlocks - c * s.clusterRatio), false));
  }
}

/**
 * Scan the ext2/3/4 volume of partition `part`.
 * @throws CorruptError when the superblock, or a journal that needs recovery, cannot be trusted.
 */
export async function scanExt(scan: Scan, part: Block): Promise<{ fs: string; size: number; claimed: number }> {
  const sb = await scan.reader.read(part.pos + SUPERBLOCK_POS, SUPERBLOCK_SIZE);
  check(sb !== null, 'ERR_USED_MAP_UNREADABLE', 'the superblock cannot be read');
  const s = parseExtSuper(sb);
  let size = s.blocksCount * s.blockSize;
  if (size > part.size) {
    scan.warn('ERR_USED_MAP_FS_TOO_LARGE', `ext4 at byte ${part.pos}: the volume claims ${size} bytes, its partition has ${part.size}`);
    size = part.size;
  }
  const x = new ExtScan(scan, s, part.pos);
  scan.metadata(part.pos, SUPERBLOCK_POS + SUPERBLOCK_SIZE);
  const perBlock = s.blockSize / s.descSize;
  const maxBlocks = Math.max(1, Math.floor(MAX_READ / s.blockSize));
  const batchEnd = (i: number): number => {
    let k = i + 1;
    while (k < s.descBlocks && k - i < maxBlocks && descriptorBlock(s, k) === descriptorBlock(s, k - 1) + 1) ++k;
    return k;
  };
  const readBatch = async (i: number, k: number): Promise<Uint8Array | null> => {
    const first = descriptorBlock(s, i);
    check(first + (k - i) <= s.blocksCount, 'ERR_USED_MAP_BAD_SUPERBLOCK', `group descriptors at block ${first} past the volume`);
    return scan.reader.read(part.pos + first * s.blockSize, (k - i) * s.blockSize);
  };
  x.firstBatch = { block: descriptorBlock(s, 0), data: await readBatch(0, batchEnd(0)) };
  if (s.hasJournal && s.journalInode > 0) {
    try {
      const file = await fileBlocks(scan, part.pos, s, await readInode(scan, part.pos, s, s.journalInode, (n) => x.descriptorOf(n)));
      for (const e of file.extents) x.blocks(e.physical, e.count, true);
      for (const b of file.mapBlocks) x.blocks(b, 1, true);
      if (s.needsRecovery) x.logged = await loggedBlocks(scan, part.pos, s, file);
    } catch (err) {
      if (!(err instanceof CorruptError)) throw err;
      if (s.needsRecovery) throw new CorruptError('ERR_USED_MAP_JOURNAL_DIRTY', `the journal needs recovery and cannot be read: ${err.message}`);
      scan.warn('ERR_USED_MAP_BAD_METADATA', `ext4 at byte ${part.pos}: the journal inode: ${err.message}`);
    }
    if (x.logged.size > 0) {
      scan.warn('ERR_USED_MAP_JOURNAL_DIRTY', `ext4 at byte ${part.pos}: the journal needs recovery (${x.logged.size} logged blocks): the groups whose bitmaps or descriptors it holds count as used`);
    }
  }
  for (let i = 0; i < s.descBlocks;) {
    const k = batchEnd(i);
    const data = i === 0 ? x.firstBatch.data : await readBatch(i, k);
    const pending = [];
    for (let gi = i * perBlock; gi < Math.min(s.groups, k * perBlock); ++gi) {
      const inBlock = Math.floor(gi / perBlock);
      if (data === null) {
        for (const [b, n] of superAndDescriptorBlocks(s, gi)) x.blocks(b, n, true);
        x.groupUsed(gi);
        continue;
      }
      const raw = slice(data, (gi - i * perBlock) * s.descSize, s.descSize);
      const p = x.group(gi, raw, x.logged.has(descriptorBlock(s, inBlock)));
      if (p !== null) pending.push(p);
    }
    await x.bitmaps(pending);
    i = k;
  }
  return { fs: 'ext4', size, claimed: s.blocksCount * s.blockSize };
}
