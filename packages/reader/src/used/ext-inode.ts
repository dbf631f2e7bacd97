/**
 * The blocks of an ext2/3/4 file, from its inode: the extent tree (ext4) or the block
 * map with its indirect blocks (ext2/3). Used for the journal inode: where it lies
 * (metadata) and which block holds each journal block. Bounded: a tree deeper than 5,
 * more than `MAX_FILE_NODES` tree blocks, or a block outside the volume is corrupt.
 */
import { check, slice, u16, u32 } from './bytes.js';
import { type ExtSuper, parseDescriptor } from './ext-super.js';
import type { Scan } from './scan.js';

const EXTENTS_FL = 0x80000;
const MAX_FILE_NODES = 65536;
const MAX_DEPTH = 5;

/** `count` blocks of the file from file block `logical` lie at volume block `physical`. */
export interface FileExtent {
  readonly logical: number;
  readonly physical: number;
  readonly count: number;
}

export interface FileBlocks {
  readonly extents: FileExtent[];
  /** Extent tree or indirect blocks (metadata too). */
  readonly mapBlocks: number[];
}

/** The descriptor bytes of group `g`, read from the primary descriptor table. */
export type DescriptorOf = (g: number) => Promise<Uint8Array | null>;

/** The inode `n` (its `inodeSize` bytes). */
export async function readInode(scan: Scan, base: number, s: ExtSuper, n: number, descriptorOf: DescriptorOf): Promise<Uint8Array> {
  const g = Math.floor((n - 1) / s.inodesPerGroup);
  const d = await descriptorOf(g);
  check(d !== null, 'ERR_USED_MAP_UNREADABLE', `the descriptor of group ${g} cannot be read`);
  const table = parseDescriptor(s, d).inodeTable;
  const pos = base + table * s.blockSize + ((n - 1) % s.inodesPerGroup) * s.inodeSize;
  check(table > 0 && table < s.blocksCount, 'ERR_USED_MAP_BAD_METADATA', `inode table of group ${g} at block ${table}`);
  const inode = await scan.reader.read(pos, s.inodeSize);
  check(inode !== null, 'ERR_USED_MAP_UNREADABLE', `inode ${n} cannot be read`);
  return inode;
}

/** The blocks of the file whose inode is `inode`. */
export async function fileBlocks(scan: Scan, base: number, s: ExtSuper, inode: Uint8Array): Promise<FileBlocks> {
  const out: FileBlocks = { extents: [], mapBlocks: [] };
  const size = u32(inode, 4) + u32(inode, 0x6c) * 0x100000000;
  const blocks = Math.ceil(size / s.blockSize);
  const iblock = slice(inode, 0x28, 60);
  if (u32(inode, 0x20) & EXTENTS_FL) await walkExtents(scan, base, s, iblock, 0, out);
  else await walkBlockMap(scan, base, s, iblock, blocks, out);
  return out;
}

function inVolume(s: ExtSuper, block: number, count: number): boolean {
  return block >= s.firstDataBlock && count >= 0 && block + count <= s.blocksCount;
}

function push(out: FileBlocks, logical: number, physical: number): void {
  const last = out.extents[out.extents.length - 1];
  if (last !== undefined && last.logical + last.count === logical && last.physical + last.count === physical) {
    out.extents[out.extents.length - 1] = { ...last, count: last.count + 1 };
  } else out.extents.push({ logical, physical, count: 1 });
}

async function readBlock(scan: Scan, base: number, s: ExtSuper, block: number): Promise<Uint8Array> {
  check(inVolume(s, block, 1), 'ERR_USED_MAP_BAD_METADATA', `a file map points at block ${block}, outside the volume`);
  const data = await scan.reader.read(base + block * s.blockSize, s.blockSize);
  check(data !== null, 'ERR_USED_MAP_UNREADABLE', `block ${block} of a file map cannot be read`);
  return data;
}

async function walkExtents(scan: Scan, base: number, s: ExtSuper, node: Uint8Array, level: number, out: FileBlocks): Promise<void> {
  check(u16(node, 0) === 0xf30a, 'ERR_USED_MAP_BAD_METADATA', 'extent tree node without its magic');
  const entries = u16(node, 2);
  const depth = u16(node, 6);
  check(depth <= MAX_DEPTH && level <= MAX_DEPTH && 12 + 12 * entries <= node.length, 'ERR_USED_MAP_BAD_METADATA', `extent node of depth ${depth} with ${entries} entries`);
  for (let i = 0; i < entries; ++i) {
    const e = 12 + 12 * i;
    if (depth === 0) {
      const len = u16(node, e + 4);
      const count = len > 32768 ? len - 32768 : len;
      const start = u32(node, e + 8) + u16(node, e + 6) * 0x100000000;
      check(inVolume(s, start, count), 'ERR_USED_MAP_BAD_METADATA', `extent of ${count} blocks at block ${start}, outside the volume`);
      out.extents.push({ logical: u32(node, e), physical: start, count });
    } else {
      const child = u32(node, e + 4) + u16(node, e + 8) * 0x100000000;
      out.mapBlocks.push(child);
      check(out.mapBlocks.length <= MAX_FILE_NODES, 'ERR_USED_MAP_BAD_METADATA', 'extent tree too large');
      await walkExtents(scan, base, s, await readBlock(scan, base, s, child), level + 1, out);
    }
  }
}

async function walkBlockMap(scan: Scan, base: number, s: ExtSuper, iblock: Uint8Array, blocks: number, out: FileBlocks): Promise<void> {
  const per = s.blockSize / 4;
  let logical = 0;
  const visit = async (block: number, level: number): Promise<void> => {
    if (logical >= blocks) return;
    if (block === 0) {
      logical += per ** level;
      return;
    }
    if (level === 0) {
      check(inVolume(s, block, 1), 'ERR_USED_MAP_BAD_METADATA', `a block map points at block ${block}, outside the volume`);
      push(out, logical++, block);
      return;
    }
    out.mapBlocks.push(block);
    check(out.mapBlocks.length <= MAX_FILE_NODES, 'ERR_USED_MAP_BAD_METADATA', 'block map too large');
    const data = await readBlock(scan, base, s, block);
    for (let i = 0; i < per && logical < blocks; ++i) await visit(u32(data, 4 * i), level - 1);
  };
  for (let i = 0; i < 12; ++i) await visit(u32(iblock, 4 * i), 0);
  for (let k = 1; k <= 3; ++k) await visit(u32(iblock, 4 * (11 + k)), k);
}
