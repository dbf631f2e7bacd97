/**
 * An ext3/4 journal (JBD2) that needs recovery: its transactions hold newer copies of
 * blocks than the volume, block bitmaps and group descriptors among them, so the bitmaps
 * on disk may miss blocks allocated just before the failure. This walks the log from
 * `s_start` (descriptor blocks only, no data) and returns every volume block it holds.
 */
import { be32, check } from './bytes.js';
import type { FileBlocks } from './ext-inode.js';
import type { ExtSuper } from './ext-super.js';
import type { Scan } from './scan.js';

const JBD2_MAGIC = 0xc03b3998;
const DESCRIPTOR = 1;
const COMMIT = 2;
const SUPERBLOCK_V1 = 3;
const SUPERBLOCK_V2 = 4;
const REVOKE = 5;
const FEATURE_64BIT = 0x2;
const FEATURE_CSUM_V2 = 0x8;
const FEATURE_CSUM_V3 = 0x10;
const FEATURE_FAST_COMMIT = 0x20;
const FLAG_SAME_UUID = 0x2;
const FLAG_LAST_TAG = 0x8;

/** The volume block of journal block `j`, or null outside the journal file. */
function physical(file: FileBlocks, j: number): number | null {
  let lo = 0;
  let hi = file.extents.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const e = file.extents[mid]!;
    if (j < e.logical) hi = mid;
    else if (j >= e.logical + e.count) lo = mid + 1;
    else return e.physical + (j - e.logical);
  }
  return null;
}

/**
 * The volume blocks logged in the journal `file` from its start (an empty set when the
 * journal is clean).
 * @throws CorruptError when the journal superblock cannot be read or trusted.
 */
export async function loggedBlocks(scan: Scan, base: number, s: ExtSuper, file: FileBlocks): Promise<Set<number>> {
  const extents = [...file.extents].sort((a, b) => a.logical - b.logical);
  const f: FileBlocks = { extents, mapBlocks: file.mapBlocks };
  const readJournal = async (j: number): Promise<Uint8Array | null> => {
    const p = physical(f, j);
    return p === null ? null : scan.reader.read(base + p * s.blockSize, s.blockSize);
  };
  const jsb = await readJournal(0);
  check(jsb !== null, 'ERR_USED_MAP_UNREADABLE', 'the journal superblock cannot be read');
  const type = be32(jsb, 4);
  check(be32(jsb, 0) === JBD2_MAGIC && (type === SUPERBLOCK_V1 || type === SUPERBLOCK_V2), 'ERR_USED_MAP_BAD_METADATA', 'no journal superblock');
  check(be32(jsb, 12) === s.blockSize, 'ERR_USED_MAP_BAD_METADATA', `journal block size ${be32(jsb, 12)}`);
  const maxlen = be32(jsb, 16);
  const first = be32(jsb, 20);
  let seq = be32(jsb, 24);
  const start = be32(jsb, 28);
  const logged = new Set<number>();
  if (start === 0) return logged;
  check(first >= 1 && first < maxlen && start >= first && start < maxlen, 'ERR_USED_MAP_BAD_METADATA', `journal start ${start} outside ${first} to ${maxlen}`);
  const incompat = type === SUPERBLOCK_V2 ? be32(jsb, 40) : 0;
  check((incompat & FEATURE_FAST_COMMIT) === 0, 'ERR_USED_MAP_JOURNAL_DIRTY', 'fast commits wait in the journal: their allocations cannot be told');
  const is64 = (incompat & FEATURE_64BIT) !== 0;
  const v3 = (incompat & FEATURE_CSUM_V3) !== 0;
  const v2 = (incompat & FEATURE_CSUM_V2) !== 0;
  const tagBytes = v3 ? 16 : (v2 ? 14 : 12) - (is64 ? 0 : 4);
  const tail = v2 || v3 ? 4 : 0;
  const wrap = (j: number): number => (j >= maxlen ? first + (j - maxlen) : j);
  let j = start;
  for (let steps = 0; steps < maxlen; ++steps) {
    const block = await readJournal(j);
    if (block === null || be32(block, 0) !== JBD2_MAGIC || be32(block, 8) !== seq) break;
    const kind = be32(block, 4);
    if (kind === DESCRIPTOR) {
      let tags = 0;
      for (let o = 12; o + tagBytes <= s.blockSize - tail;) {
        const flags = v3 ? be32(block, o + 4) : (block[o + 6]! << 8) | block[o + 7]!;
        const hi = is64 ? be32(block, o + 8) * 0x100000000 : 0;
        logged.add(be32(block, o) + hi);
        tags++;
        o += tagBytes + (flags & FLAG_SAME_UUID ? 0 : 16);
        if (flags & FLAG_LAST_TAG) break;
      }
      j = wrap(j + 1 + tags);
    } else if (kind === COMMIT) {
      seq = (seq + 1) >>> 0;
      j = wrap(j + 1);
    } else if (kind === REVOKE) j = wrap(j + 1);
    else break;
  }
  return logged;
}
