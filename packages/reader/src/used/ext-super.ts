/**
 * The ext2/3/4 superblock and the fixed layout it implies: block groups, where each
 * group keeps a superblock and group descriptor backup (sparse_super, sparse_super2,
 * meta_bg), where the descriptors lie, and the checksums of the superblock, the
 * descriptors (gdt_csum or metadata_csum) and the block bitmaps.
 */
import { check, isPowerOfTwo, slice, u16, u32 } from './bytes.js';
import { crc16, crc32c } from './crc.js';

const COMPAT_HAS_JOURNAL = 0x4;
const COMPAT_SPARSE_SUPER2 = 0x200;
const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_JOURNAL_DEV = 0x8;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_FLEX_BG = 0x200;
const INCOMPAT_CSUM_SEED = 0x2000;
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_GDT_CSUM = 0x10;
const RO_COMPAT_BIGALLOC = 0x200;
const RO_COMPAT_METADATA_CSUM = 0x400;

/** Byte offset of the superblock in the volume. */
export const SUPERBLOCK_POS = 1024;
export const SUPERBLOCK_SIZE = 1024;

export interface ExtSuper {
  readonly blockSize: number;
  /** Blocks per allocation unit (a bitmap bit): 1, or more with bigalloc. */
  readonly clusterRatio: number;
  readonly blocksCount: number;
  readonly firstDataBlock: number;
  readonly blocksPerGroup: number;
  readonly clustersPerGroup: number;
  readonly inodesPerGroup: number;
  readonly inodeSize: number;
  readonly descSize: number;
  readonly groups: number;
  readonly descBlocks: number;
  readonly reservedGdt: number;
  readonly firstMetaBg: number;
  readonly backupBgs: readonly [number, number];
  readonly journalInode: number;
  readonly hasJournal: boolean;
  readonly needsRecovery: boolean;
  readonly metaBg: boolean;
  readonly flexBg: boolean;
  readonly sparseSuper: boolean;
  readonly sparseSuper2: boolean;
  readonly metadataCsum: boolean;
  readonly gdtCsum: boolean;
  readonly csumSeed: number;
  readonly uuid: Uint8Array;
}

/**
 * The superblock `sb` (1024 bytes), checked: magic, checksum (metadata_csum), sizes a
 * volume can have. `ERR_USED_MAP_BAD_SUPERBLOCK` otherwise.
 */
export function parseExtSuper(sb: Uint8Array): ExtSuper {
  const bad = 'ERR_USED_MAP_BAD_SUPERBLOCK';
  check(u16(sb, 56) === 0xef53, bad, 'no ext2/3/4 magic');
  const compat = u32(sb, 0x5c);
  const incompat = u32(sb, 0x60);
  const roCompat = u32(sb, 0x64);
  const metadataCsum = (roCompat & RO_COMPAT_METADATA_CSUM) !== 0;
  if (metadataCsum) check(crc32c(0xffffffff, slice(sb, 0, 0x3fc)) === u32(sb, 0x3fc), bad, 'superblock checksum mismatch');
  check((incompat & INCOMPAT_JOURNAL_DEV) === 0, bad, 'an external journal device, not a file system');
  const logBlock = u32(sb, 0x18);
  check(logBlock <= 6, bad, `block size 2^(10+${logBlock})`);
  const blockSize = 1024 << logBlock;
  const bigalloc = (roCompat & RO_COMPAT_BIGALLOC) !== 0;
  const logCluster = u32(sb, 0x1c);
  check(!bigalloc || (logCluster >= logBlock && logCluster <= logBlock + 16), bad, `cluster size 2^(10+${logCluster})`);
  const clusterRatio = bigalloc ? 2 ** (logCluster - logBlock) : 1;
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const blocksCount = u32(sb, 0x04) + (is64 ? u32(sb, 0x150) * 0x100000000 : 0);
  const firstDataBlock = u32(sb, 0x14);
  check(firstDataBlock === (blockSize === 1024 && !bigalloc ? 1 : 0), bad, `first data block ${firstDataBlock}`);
  check(blocksCount > firstDataBlock && Number.isSafeInteger(blocksCount * blockSize), bad, `${blocksCount} blocks`);
  const clustersPerGroup = bigalloc ? u32(sb, 0x24) : u32(sb, 0x20);
  const blocksPerGroup = u32(sb, 0x20);
  check(clustersPerGroup >= 8 && clustersPerGroup <= 8 * blockSize && clustersPerGroup % 8 === 0, bad, `${clustersPerGroup} clusters per group`);
  check(blocksPerGroup === clustersPerGroup * clusterRatio, bad, `${blocksPerGroup} blocks per group for ${clustersPerGroup} clusters`);
  const inodesPerGroup = u32(sb, 0x28);
  check(inodesPerGroup >= 1 && inodesPerGroup <= 8 * blockSize, bad, `${inodesPerGroup} inodes per group`);
  const rev = u32(sb, 0x4c);
  const inodeSize = rev === 0 ? 128 : u16(sb, 0x58);
  check(isPowerOfTwo(inodeSize, 128, blockSize), bad, `inode size ${inodeSize}`);
  const descSize = is64 ? u16(sb, 0xfe) : 32;
  check(!is64 || isPowerOfTwo(descSize, 64, 1024), bad, `group descriptor size ${descSize}`);
  const groups = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
  const metaBg = (incompat & INCOMPAT_META_BG) !== 0;
  const firstMetaBg = metaBg ? u32(sb, 0x104) : 0;
  const descBlocks = Math.ceil((groups * descSize) / blockSize);
  const reservedGdt = u16(sb, 0xce);
  check(reservedGdt <= blockSize / 4, bad, `${reservedGdt} reserved GDT blocks`);
  check(!metaBg || firstMetaBg <= descBlocks, bad, `first meta_bg ${firstMetaBg} of ${descBlocks}`);
  const uuid = slice(sb, 0x68, 16);
  const csumSeed = incompat & INCOMPAT_CSUM_SEED ? u32(sb, 0x270) : crc32c(0xffffffff, uuid);
  return {
    blockSize, clusterRatio, blocksCount, firstDataBlock, blocksPerGroup, clustersPerGroup, inodesPerGroup, inodeSize, descSize,
    groups, descBlocks, reservedGdt, firstMetaBg, backupBgs: [u32(sb, 0x24c), u32(sb, 0x250)],
    journalInode: u32(sb, 0xe0), hasJournal: (compat & COMPAT_HAS_JOURNAL) !== 0, needsRecovery: (incompat & INCOMPAT_RECOVER) !== 0,
    metaBg, flexBg: (incompat & INCOMPAT_FLEX_BG) !== 0, sparseSuper: (roCompat & RO_COMPAT_SPARSE_SUPER) !== 0,
    sparseSuper2: (compat & COMPAT_SPARSE_SUPER2) !== 0, metadataCsum, gdtCsum: !metadataCsum && (roCompat & RO_COMPAT_GDT_CSUM) !== 0,
    csumSeed, uuid: Uint8Array.from(uuid),
  };
}

function isPowerOf(n: number, base: number): boolean {
  let p = base;
  while (p < n) p *= base;
  return p === n;
}

/** True if group `g` holds a superblock backup (ext2fs_bg_has_super). */
export function hasSuper(s: ExtSuper, g: number): boolean {
  if (g === 0) return true;
  if (s.sparseSuper2) return g === s.backupBgs[0] || g === s.backupBgs[1];
  if (g <= 1 || !s.sparseSuper) return true;
  if (!(g & 1)) return false;
  return isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

/** First block of group `g`. */
export function groupFirstBlock(s: ExtSuper, g: number): number {
  return s.firstDataBlock + g * s.blocksPerGroup;
}

/** Blocks in group `g` (the last group may be short). */
export function groupBlocks(s: ExtSuper, g: number): number {
  return Math.min(s.blocksPerGroup, s.blocksCount - groupFirstBlock(s, g));
}

/** The superblock and descriptor blocks group `g` holds (ext2fs_super_and_bgd_loc2), as `[block, count]` runs. */
export function superAndDescriptorBlocks(s: ExtSuper, g: number): Array<[number, number]> {
  let first = groupFirstBlock(s, g);
  if (first === 0 && s.blockSize === 1024) first = 1;
  const out: Array<[number, number]> = [];
  const sup = hasSuper(s, g);
  if (sup) out.push([first, 1]);
  const perBlock = s.blockSize / s.descSize;
  const metaGroup = Math.floor(g / perBlock);
  if (!s.metaBg || metaGroup < s.firstMetaBg) {
    if (sup) out.push([first + 1, (s.metaBg ? s.firstMetaBg : s.descBlocks) + s.reservedGdt]);
  } else {
    const r = g % perBlock;
    if (r === 0 || r === 1 || r === perBlock - 1) out.push([first + (sup ? 1 : 0), 1]);
  }
  return out;
}

/** The block holding descriptor block `i` (ext2fs_descriptor_block_loc2, primary copy). */
export function descriptorBlock(s: ExtSuper, i: number): number {
  let first = s.firstDataBlock;
  if (first === 0 && s.blockSize === 1024) first = 1;
  if (!s.metaBg || i < s.firstMetaBg) return first + 1 + i;
  const g = i * (s.blockSize / s.descSize);
  return groupFirstBlock(s, g) + (hasSuper(s, g) ? 1 : 0);
}

/** True if the descriptor `d` of group `g` carries a checksum and it matches. */
export function descriptorChecksumOk(s: ExtSuper, g: number, d: Uint8Array): boolean {
  if (!s.metadataCsum && !s.gdtCsum) return true;
  const le = Uint8Array.of(g & 0xff, (g >>> 8) & 0xff, (g >>> 16) & 0xff, (g >>> 24) & 0xff);
  const stored = u16(d, 0x1e);
  const head = slice(d, 0, 0x1e);
  const tail = d.subarray(0x20, s.descSize);
  if (s.metadataCsum) {
    let c = crc32c(s.csumSeed, le);
    c = crc32c(c, head);
    c = crc32c(c, Uint8Array.of(0, 0));
    c = crc32c(c, tail);
    return (c & 0xffff) === stored;
  }
  let c = crc16(0xffff, s.uuid);
  c = crc16(c, le);
  c = crc16(c, head);
  if (s.descSize > 32) c = crc16(c, tail);
  return c === stored;
}

/** True if the block bitmap `bitmap` matches the checksum in descriptor `d` (always true without metadata_csum). */
export function bitmapChecksumOk(s: ExtSuper, d: Uint8Array, bitmap: Uint8Array): boolean {
  if (!s.metadataCsum) return true;
  const c = crc32c(s.csumSeed, slice(bitmap, 0, s.clustersPerGroup / 8));
  const lo = u16(d, 0x18);
  if (s.descSize >= 0x3c) return c === (lo | (u16(d, 0x38) << 16)) >>> 0;
  return (c & 0xffff) === lo;
}

export interface GroupDescriptor {
  readonly blockBitmap: number;
  readonly inodeBitmap: number;
  readonly inodeTable: number;
  readonly freeClusters: number;
  readonly flags: number;
  readonly itableUnused: number;
}

export const BG_INODE_UNINIT = 0x1;
export const BG_BLOCK_UNINIT = 0x2;

/** The fields of descriptor `d`. */
export function parseDescriptor(s: ExtSuper, d: Uint8Array): GroupDescriptor {
  const wide = s.descSize >= 64;
  const hi32 = (off: number): number => (wide ? u32(d, off) * 0x100000000 : 0);
  const hi16 = (off: number): number => (wide ? u16(d, off) * 0x10000 : 0);
  return {
    blockBitmap: u32(d, 0) + hi32(0x20), inodeBitmap: u32(d, 4) + hi32(0x24), inodeTable: u32(d, 8) + hi32(0x28),
    freeClusters: u16(d, 0x0c) + hi16(0x2c), flags: u16(d, 0x12), itableUnused: u16(d, 0x1c) + hi16(0x32),
  };
}

/** Blocks of inode table per group. */
export function inodeTableBlocks(s: ExtSuper): number {
  return Math.ceil((s.inodesPerGroup * s.inodeSize) / s.blockSize);
}

/** True if the group's flags may be believed (the descriptors are checksummed). */
export function hasGroupChecksums(s: ExtSuper): boolean {
  return s.metadataCsum || s.gdtCsum;
}
