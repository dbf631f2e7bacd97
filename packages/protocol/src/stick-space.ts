import { readFile, realpath, statfs } from 'node:fs/promises';

/**
 * How much room a stick has, as both sides read it: the reader to keep room for receipts
 * and stop before the stick is full, the assembler to say what to free when its receipt
 * does not fit. `statfs` is right on FAT32 (fusefat) and exFAT (exfat-fuse) with one
 * exception, measured on fusefat 0.1a: with 512-byte clusters (what mkfs.vfat makes below
 * 260 MiB) it says 0 blocks and 0 free, yet its `f_files` and `f_ffree` are the FAT's
 * total and free clusters (exact, updated at once). Any other file system that says 0
 * blocks tells nothing (`total` 0).
 */
export interface StickSpace {
  /** Bytes available to this user. */
  readonly free: number;
  /** The file system's block (allocation unit). */
  readonly blockSize: number;
  /** The file system's size; 0 if unknown (then only a failed write tells the stick is full). */
  readonly total: number;
}

/**
 * The file system type of the mount holding `folder` (`/proc/self/mountinfo`: the
 * longest mount point that is a prefix of the folder's real path), e.g. `vfat`,
 * `fuse.fusefat`, `ext4`; undefined where mountinfo cannot be read.
 */
export async function fileSystemTypeOf(folder: string): Promise<string | undefined> {
  let info: string;
  try {
    info = await readFile('/proc/self/mountinfo', 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const path = await realpath(folder);
  let best: { point: string; type: string } | undefined;
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (fields.length < 7 || sep < 0 || fields[sep + 1] === undefined) continue;
    const point = fields[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const inside = point === '/' || path === point || path.startsWith(`${point}/`);
    if (inside && (best === undefined || point.length >= best.point.length)) best = { point, type: fields[sep + 1]! };
  }
  return best?.type;
}

/** The FAT cluster fusefat hides: it reports 0 blocks exactly when the cluster is smaller than its 1 KiB `bsize`. */
const FUSEFAT_SMALL_CLUSTER = 512;

/** What `statfs` tells, as `statStick` reads it. */
export interface StatfsFigures {
  readonly bsize: number;
  readonly blocks: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
}

/**
 * The space of a file system from its `statfs` figures and its type (`fuse.fusefat`...):
 * see the module comment. Blocks 0 on fusefat: clusters from `files`/`ffree`; blocks 0
 * elsewhere: unknown (`total` 0, `free` unbounded), not "full". On fusefat the block is
 * the FAT cluster (`blocks x bsize / files`), not its 1 KiB `bsize`.
 */
export function spaceFromStatfs(s: StatfsFigures, type: string | undefined): StickSpace {
  const fusefat = type === 'fuse.fusefat';
  if (s.blocks === 0) {
    if (fusefat && s.files > 0 && s.ffree <= s.files) return { free: s.ffree * FUSEFAT_SMALL_CLUSTER, blockSize: FUSEFAT_SMALL_CLUSTER, total: s.files * FUSEFAT_SMALL_CLUSTER };
    return { free: Number.MAX_SAFE_INTEGER, blockSize: Math.max(512, s.bsize), total: 0 };
  }
  const cluster = fusefat && s.files > 0 ? Math.max(s.bsize, Math.round((s.blocks * s.bsize) / s.files)) : s.bsize;
  return { free: s.bavail * s.bsize, blockSize: cluster, total: s.blocks * s.bsize };
}

/** The space of the file system holding `dir`, by `statfs` and the mount's type (`spaceFromStatfs`). */
export async function statStickSpace(dir: string): Promise<StickSpace> {
  const [s, type] = await Promise.all([statfs(dir), fileSystemTypeOf(dir)]);
  return spaceFromStatfs(s, type);
}

