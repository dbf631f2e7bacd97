/**
 * A synthetic ext2/3/4 volume for the used-space unit tests: superblock, group
 * descriptors (32 or 64 bytes; classic table or meta_bg), block and inode bitmaps, inode
 * tables (packed in group 0 with flex_bg), BLOCK_UNINIT groups, gdt_csum or
 * metadata_csum checksums, and an internal journal (inode 8, one extent) that may hold
 * a transaction waiting for recovery.
 */
import type { Block } from '@ddferry/mapfile';

import { crc16, crc32c } from '../../src/used/crc.js';

export interface ExtSpec {
  readonly blockSize?: 1024 | 4096;
  readonly blocksPerGroup?: number;
  readonly groups: number;
  readonly checksums?: 'metadata_csum' | 'gdt_csum' | 'none';
  readonly flexBg?: boolean;
  readonly is64?: boolean;
  readonly metaBg?: boolean;
  /** BLOCK_UNINIT (and INODE_UNINIT) on groups holding nothing but their superblock copy. */
  readonly uninit?: boolean;
  readonly reservedGdt?: number;
  /** Blocks of an internal journal; 0 for none. */
  readonly journalBlocks?: number;
  /** Volume blocks logged in a transaction waiting for recovery. */
  readonly dirtyLogged?: readonly number[];
}

export interface ExtVolume {
  readonly blockSize: number;
  readonly blocksCount: number;
  readonly superblockPos: number;
  /** Byte position of group `g`'s descriptor (primary table). */
  readonly descriptorPos: (g: number) => number;
  readonly blockBitmap: (g: number) => number;
  readonly groupRange: (g: number) => Block;
  /** Byte ranges of `[block, count]` runs. */
  readonly ranges: (runs: ReadonlyArray<readonly [number, number]>) => Block[];
  /** Every used block (metadata, journal, data) as byte ranges. */
  readonly used: Block[];
  readonly journal: readonly [number, number];
  readonly uninitGroups: readonly number[];
}

const INODES_PER_GROUP = 32;
const INODE_SIZE = 256;

function hasSuper(g: number): boolean {
  if (g <= 1) return true;
  if (!(g & 1)) return false;
  for (const b of [3, 5, 7]) {
    let p = b;
    while (p < g) p *= b;
    if (p === g) return true;
  }
  return false;
}

/** Write an ext volume at byte `pos` with the data runs `data` (`[block, count]`) allocated. */
export function writeExt(disk: Buffer, pos: number, spec: ExtSpec, data: ReadonlyArray<readonly [number, number]>): ExtVolume {
  const bs = spec.blockSize ?? 1024;
  const first = bs === 1024 ? 1 : 0;
  const bpg = spec.blocksPerGroup ?? 1024;
  const G = spec.groups;
  const count = first + G * bpg;
  const descSize = spec.is64 ? 64 : 32;
  const perBlock = bs / descSize;
  const descBlocks = Math.ceil((G * descSize) / bs);
  const reservedGdt = spec.reservedGdt ?? 0;
  const itb = (INODES_PER_GROUP * INODE_SIZE) / bs;
  const csum = spec.checksums ?? 'metadata_csum';
  const used = new Uint8Array(count);
  /** Blocks a BLOCK_UNINIT group cannot hold: data, the journal, other groups' metadata. */
  const foreign = new Uint8Array(count);
  const mark = (b: number, n: number, what: string, owner = -1): void => {
    for (let i = b; i < b + n; ++i) {
      if (i >= count || used[i]) throw new Error(`writeExt: block ${i} (${what}) taken or outside`);
      used[i] = 1;
      if (owner < 0 || Math.floor((i - first) / bpg) !== owner) foreign[i] = 1;
    }
  };
  const groupFirst = (g: number): number => first + g * bpg;
  const sysBlocks: number[] = new Array<number>(G).fill(0);
  const descBlockOf: number[] = [];
  for (let g = 0; g < G; ++g) {
    let at = groupFirst(g);
    if (hasSuper(g)) {
      mark(at++, 1, 'superblock', g);
      if (!spec.metaBg) {
        if (g === 0) for (let i = 0; i < descBlocks; ++i) descBlockOf.push(at + i);
        mark(at, descBlocks + reservedGdt, 'descriptors', g);
        at += descBlocks + reservedGdt;
      }
    }
    const r = g % perBlock;
    if (spec.metaBg && (r === 0 || r === 1 || r === perBlock - 1)) {
      if (r === 0) descBlockOf.push(at);
      mark(at++, 1, 'meta_bg descriptors', g);
    }
    sysBlocks[g] = at - groupFirst(g);
  }
  const bb: number[] = [];
  const ib: number[] = [];
  const it: number[] = [];
  let cursor = groupFirst(0) + sysBlocks[0]!;
  for (let g = 0; g < G; ++g) {
    if (!spec.flexBg) cursor = groupFirst(g) + sysBlocks[g]!;
    bb[g] = cursor++;
    ib[g] = spec.flexBg ? -1 : cursor++;
    if (!spec.flexBg) {
      it[g] = cursor;
      cursor += itb;
    }
  }
  if (spec.flexBg) {
    for (let g = 0; g < G; ++g) ib[g] = cursor++;
    for (let g = 0; g < G; ++g) {
      it[g] = cursor;
      cursor += itb;
    }
  }
  for (let g = 0; g < G; ++g) {
    mark(bb[g]!, 1, 'block bitmap', g);
    mark(ib[g]!, 1, 'inode bitmap', g);
    mark(it[g]!, itb, 'inode table', g);
  }
  const jn = spec.journalBlocks ?? 0;
  const journalStart = spec.flexBg ? cursor : groupFirst(0) + sysBlocks[0]! + 2 + itb;
  if (jn > 0) mark(journalStart, jn, 'journal');
  for (const [b, n] of data) mark(b, n, 'data');
  const checked = csum !== 'none';
  const uninit: number[] = [];
  const base = pos;
  const uuid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const seed = crc32c(0xffffffff, uuid);
  const table = Buffer.alloc(descBlocks * bs);
  let totalFree = 0;
  for (let g = 0; g < G; ++g) {
    const f = groupFirst(g);
    const bitmap = Buffer.alloc(bs);
    let free = 0;
    let own = 0;
    for (let i = 0; i < bpg; ++i) {
      if (used[f + i]) bitmap[i >> 3] = bitmap[i >> 3]! | 1 << (i & 7);
      else free++;
      if (foreign[f + i]) own++;
    }
    for (let i = bpg; i < bs * 8; ++i) bitmap[i >> 3] = bitmap[i >> 3]! | 1 << (i & 7);
    totalFree += free;
    const blockUninit = spec.uninit === true && checked && g > 0 && own === 0;
    if (blockUninit) uninit.push(g);
    else bitmap.copy(disk, base + bb[g]! * bs);
    const d = Buffer.alloc(descSize);
    d.writeUInt32LE(bb[g]!, 0);
    d.writeUInt32LE(ib[g]!, 4);
    d.writeUInt32LE(it[g]!, 8);
    d.writeUInt16LE(free, 0x0c);
    d.writeUInt16LE(g === 0 ? INODES_PER_GROUP - 11 : INODES_PER_GROUP, 0x0e);
    d.writeUInt16LE((blockUninit ? 0x2 : 0) | (checked && g > 0 ? 0x1 : 0), 0x12);
    d.writeUInt16LE(checked ? (g === 0 ? INODES_PER_GROUP - 11 : INODES_PER_GROUP) : 0, 0x1c);
    if (csum === 'metadata_csum') {
      const c = crc32c(seed, bitmap.subarray(0, bpg / 8));
      d.writeUInt16LE(c & 0xffff, 0x18);
      if (descSize >= 64) d.writeUInt16LE(c >>> 16, 0x38);
    }
    const le = Buffer.alloc(4);
    le.writeUInt32LE(g);
    if (csum === 'metadata_csum') {
      let c = crc32c(seed, le);
      c = crc32c(c, d.subarray(0, 0x1e));
      c = crc32c(c, Buffer.alloc(2));
      c = crc32c(c, d.subarray(0x20));
      d.writeUInt16LE(c & 0xffff, 0x1e);
    } else if (csum === 'gdt_csum') {
      let c = crc16(0xffff, uuid);
      c = crc16(c, le);
      c = crc16(c, d.subarray(0, 0x1e));
      if (descSize > 32) c = crc16(c, d.subarray(0x20));
      d.writeUInt16LE(c, 0x1e);
    }
    d.copy(table, g * descSize);
  }
  for (let i = 0; i < descBlocks; ++i) table.copy(disk, base + descBlockOf[i]! * bs, i * bs, (i + 1) * bs);
  const dirty = (spec.dirtyLogged?.length ?? 0) > 0;
  if (jn > 0) writeJournal(disk, base + journalStart * bs, bs, jn, spec.dirtyLogged ?? []);
  const inode = Buffer.alloc(INODE_SIZE);
  inode.writeUInt16LE(0x8180, 0);
  inode.writeUInt32LE(jn * bs, 4);
  inode.writeUInt32LE(0x80000, 0x20);
  inode.writeUInt16LE(0xf30a, 0x28);
  inode.writeUInt16LE(1, 0x2a);
  inode.writeUInt16LE(4, 0x2c);
  inode.writeUInt32LE(0, 0x34);
  inode.writeUInt16LE(jn, 0x38);
  inode.writeUInt32LE(journalStart, 0x3c);
  if (jn > 0) inode.copy(disk, base + it[0]! * bs + 7 * INODE_SIZE);
  const sb = Buffer.alloc(1024);
  sb.writeUInt32LE(INODES_PER_GROUP * G, 0);
  sb.writeUInt32LE(count, 4);
  sb.writeUInt32LE(totalFree, 12);
  sb.writeUInt32LE(INODES_PER_GROUP * G - 11, 16);
  sb.writeUInt32LE(first, 20);
  sb.writeUInt32LE(Math.log2(bs / 1024), 24);
  sb.writeUInt32LE(Math.log2(bs / 1024), 28);
  sb.writeUInt32LE(bpg, 32);
  sb.writeUInt32LE(bpg, 36);
  sb.writeUInt32LE(INODES_PER_GROUP, 40);
  sb.writeUInt16LE(0xef53, 56);
  sb.writeUInt16LE(1, 58);
  sb.writeUInt32LE(1, 76);
  sb.writeUInt32LE(11, 84);
  sb.writeUInt16LE(INODE_SIZE, 88);
  sb.writeUInt32LE((jn > 0 ? 0x4 : 0) | (reservedGdt > 0 ? 0x10 : 0), 92);
  sb.writeUInt32LE(0x2 | 0x40 | (spec.is64 ? 0x80 : 0) | (spec.flexBg ? 0x200 : 0) | (spec.metaBg ? 0x10 : 0) | (dirty ? 0x4 : 0), 96);
  sb.writeUInt32LE(0x1 | 0x2 | (csum === 'gdt_csum' ? 0x10 : 0) | (csum === 'metadata_csum' ? 0x400 : 0), 100);
  uuid.copy(sb, 104);
  sb.writeUInt16LE(reservedGdt, 0xce);
  sb.writeUInt32LE(jn > 0 ? 8 : 0, 0xe0);
  if (spec.is64) sb.writeUInt16LE(64, 0xfe);
  if (spec.flexBg) sb[0x174] = 4;
  if (csum === 'metadata_csum') {
    sb[0x175] = 1;
    sb.writeUInt32LE(crc32c(0xffffffff, sb.subarray(0, 0x3fc)), 0x3fc);
  }
  sb.copy(disk, base + 1024);
  const usedRanges: Block[] = [];
  for (let b = 0; b < count; ++b) {
    if (!used[b]) continue;
    const last = usedRanges[usedRanges.length - 1];
    if (last !== undefined && last.pos + last.size === base + b * bs) usedRanges[usedRanges.length - 1] = { pos: last.pos, size: last.size + bs };
    else usedRanges.push({ pos: base + b * bs, size: bs });
  }
  return {
    blockSize: bs, blocksCount: count, superblockPos: base + 1024,
    descriptorPos: (g) => base + descBlockOf[Math.floor(g / perBlock)]! * bs + (g % perBlock) * descSize,
    blockBitmap: (g) => bb[g]!,
    groupRange: (g) => ({ pos: base + groupFirst(g) * bs, size: bpg * bs }),
    ranges: (rs) => rs.map(([b, n]) => ({ pos: base + b * bs, size: n * bs })),
    used: usedRanges, journal: [journalStart, jn], uninitGroups: uninit,
  };
}

/** A JBD2 journal (v2, 32-bit tags, no checksums); with `logged`, one transaction from block 1 waiting for recovery. */
function writeJournal(disk: Buffer, at: number, bs: number, blocks: number, logged: readonly number[]): void {
  const block = (j: number): Buffer => disk.subarray(at + j * bs, at + (j + 1) * bs);
  const header = (b: Buffer, type: number, seq: number): void => {
    b.writeUInt32BE(0xc03b3998, 0);
    b.writeUInt32BE(type, 4);
    b.writeUInt32BE(seq, 8);
  };
  const sb = block(0);
  header(sb, 4, 0);
  sb.writeUInt32BE(bs, 12);
  sb.writeUInt32BE(blocks, 16);
  sb.writeUInt32BE(1, 20);
  sb.writeUInt32BE(5, 24);
  sb.writeUInt32BE(logged.length > 0 ? 1 : 0, 28);
  if (logged.length === 0) return;
  const desc = block(1);
  header(desc, 1, 5);
  let o = 12;
  logged.forEach((b, i) => {
    desc.writeUInt32BE(b, o);
    desc.writeUInt16BE((i > 0 ? 0x2 : 0) | (i === logged.length - 1 ? 0x8 : 0), o + 6);
    o += 8 + (i === 0 ? 16 : 0);
  });
  header(block(2 + logged.length), 2, 5);
}
