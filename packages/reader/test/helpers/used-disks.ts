/**
 * Real disk images for the used-space compat tests (root): partitioned with sfdisk,
 * formatted with the Debian tools, filled through the real drivers (the kernel's where
 * it has one, else FUSE), and mapped by partclone. Each helper fails with what is
 * missing (tool, package, permission) rather than skipping.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import type { Block } from '@ddferry/mapfile';

export type TestFs = 'ext4' | 'ext4-1k' | 'ext4-meta_bg' | 'ext4-bigalloc' | 'ext3' | 'ext2' | 'ntfs' | 'exfat' | 'fat12' | 'fat16' | 'fat32';

/** Each tool the compat tests run and the Debian package that has it. */
export const USED_MAP_TOOLS: ReadonlyArray<readonly [string, string]> = [
  ['sfdisk', 'fdisk'], ['losetup', 'mount'], ['blockdev', 'util-linux'], ['mkfs.ext4', 'e2fsprogs'], ['dumpe2fs', 'e2fsprogs'],
  ['debugfs', 'e2fsprogs'], ['mkntfs', 'ntfs-3g'], ['ntfs-3g', 'ntfs-3g'], ['ntfsinfo', 'ntfs-3g'], ['mkfs.exfat', 'exfatprogs'],
  ['dump.exfat', 'exfatprogs'], ['mount.exfat-fuse', 'exfat-fuse'], ['mkfs.vfat', 'dosfstools'], ['fsck.fat', 'dosfstools'],
  ['fusefat', 'fusefat'], ['partclone.ext4', 'partclone'], ['partclone.ntfs', 'partclone'], ['partclone.exfat', 'partclone'],
  ['partclone.fat', 'partclone'], ['ddrescue', 'gddrescue'], ['mshowfat', 'mtools'],
];

/** `n` bytes of the file or device `path` from byte `pos`. */
export function readAt(path: string, pos: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, b, 0, n, pos);
  } finally {
    closeSync(fd);
  }
  return b;
}

/** Run `cmd`; its stdout, or an error with its output. */
export function sh(cmd: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'latin1', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** Throw naming every missing tool and its package, or the missing root or /dev/fuse. */
export function requireUsedMapTools(): void {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('must run as root (loop devices, mount)');
  for (const [tool, pkg] of USED_MAP_TOOLS) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      problems.push(`${tool} is missing: apt-get install ${pkg}`);
    }
  }
  if (!existsSync('/dev/fuse')) problems.push('/dev/fuse is missing: FUSE is needed for ntfs-3g, exfat-fuse and fusefat');
  if (problems.length > 0) throw new Error(`the used-space compat tests cannot run:\n  ${problems.join('\n  ')}`);
}

export interface DiskPartition extends Block {
  readonly fs: TestFs;
  /** The type sfdisk reports: `83`, `c`, or a GPT type GUID (upper case). */
  readonly type: string;
}

export interface PartSpec {
  readonly fs: TestFs;
  readonly mib: number;
  /** MBR only: a logical partition inside the extended one. */
  readonly logical?: boolean;
  /** Free space before it, in MiB. */
  readonly gapMib?: number;
}

const BASIC_DATA = 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7';
const LINUX_DATA = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
const MBR_TYPE: Record<TestFs, string> = { ext4: '83', 'ext4-1k': '83', 'ext4-meta_bg': '83', 'ext4-bigalloc': '83', ext3: '83', ext2: '83', ntfs: '7', exfat: '7', fat12: '1', fat16: '6', fat32: 'c' };

/** A sparse image of `mib` MiB partitioned by sfdisk as `parts` say; the partitions as sfdisk placed them. */
export function makeDisk(path: string, label: 'gpt' | 'dos', mib: number, parts: readonly PartSpec[]): DiskPartition[] {
  writeFileSync(path, '');
  sh('truncate', ['-s', `${mib}M`, path]);
  const lines = [`label: ${label}`, 'unit: sectors'];
  let at = 2048;
  const primaries = parts.filter((p) => !p.logical);
  for (const p of primaries) {
    at += (p.gapMib ?? 0) * 2048;
    lines.push(`start=${at}, size=${p.mib * 2048}, type=${label === 'gpt' ? (p.fs.startsWith('ext') ? LINUX_DATA : BASIC_DATA) : MBR_TYPE[p.fs]}`);
    at += p.mib * 2048;
  }
  const logicals = parts.filter((p) => p.logical);
  if (logicals.length > 0) {
    const extSize = logicals.reduce((n, p) => n + p.mib + 1 + (p.gapMib ?? 0), 0) * 2048;
    lines.push(`start=${at}, size=${extSize}, type=5`);
    let l = at;
    for (const p of logicals) {
      l += (1 + (p.gapMib ?? 0)) * 2048;
      lines.push(`start=${l}, size=${p.mib * 2048}, type=${MBR_TYPE[p.fs]}`);
      l += p.mib * 2048;
    }
  }
  sh('sfdisk', ['-q', path], `${lines.join('\n')}\n`);
  const json = JSON.parse(sh('sfdisk', ['--json', path])) as { partitiontable: { partitions: Array<{ start: number; size: number; type: string }> } };
  const found = json.partitiontable.partitions.filter((p) => !['5', 'f', '85'].includes(p.type));
  const order = [...primaries, ...logicals];
  if (found.length !== order.length) throw new Error(`sfdisk made ${found.length} partitions, ${order.length} wanted`);
  return found.map((p, i) => ({ pos: p.start * 512, size: p.size * 512, fs: order[i]!.fs, type: p.type }));
}

/** Attach `[pos, pos + size)` of `img` to a loop device and run `fn`; detached afterwards. */
export async function withLoop<T>(img: string, part: Block, fn: (dev: string) => Promise<T> | T): Promise<T> {
  const dev = sh('losetup', ['-f', '--show', '-o', String(part.pos), '--sizelimit', String(part.size), img]).trim();
  try {
    return await fn(dev);
  } finally {
    sh('blockdev', ['--flushbufs', dev]);
    sh('losetup', ['-d', dev]);
  }
}

export function mkfs(dev: string, fs: TestFs): void {
  switch (fs) {
    case 'ext4': sh('mkfs.ext4', ['-q', '-F', '-b', '4096', dev]); break;
    // 1 KiB blocks: 8 groups per 64 MiB, flex_bg packing their bitmaps, BLOCK_UNINIT on the empty ones
    case 'ext4-1k': sh('mkfs.ext4', ['-q', '-F', '-b', '1024', dev]); break;
    case 'ext4-meta_bg': sh('mkfs.ext4', ['-q', '-F', '-b', '1024', '-O', 'meta_bg,^resize_inode', dev]); break;
    case 'ext4-bigalloc': sh('mkfs.ext4', ['-q', '-F', '-b', '1024', '-O', 'bigalloc', '-C', '16384', dev]); break;
    case 'ext3': sh('mkfs.ext3', ['-q', '-F', '-b', '1024', dev]); break;
    case 'ext2': sh('mkfs.ext2', ['-q', '-F', dev]); break;
    case 'ntfs': sh('mkntfs', ['-q', '-F', '-Q', dev]); break;
    case 'exfat': sh('mkfs.exfat', [dev]); break;
    case 'fat12': sh('mkfs.vfat', ['-F', '12', dev]); break;
    case 'fat16': sh('mkfs.vfat', ['-F', '16', dev]); break;
    case 'fat32': sh('mkfs.vfat', ['-F', '32', '-s', '1', dev]); break;
  }
}

/** Processes holding `path` open (FUSE daemons keep the device open until they have written everything). */
function holders(path: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === path) out.push(Number(pid));
      } catch {
        // the descriptor closed meanwhile
      }
    }
  }
  return out;
}

async function waitClosed(dev: string): Promise<void> {
  for (let i = 0; i < 200; ++i) {
    if (holders(dev).length === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${dev} is still open after unmounting (pids ${holders(dev).join(' ')})`);
}

/** How each file system was mounted, for the test names. */
export const mountedBy = new Map<TestFs, string>();

function mount(dev: string, fs: TestFs, mnt: string): void {
  const tryKernel = (type: string): boolean => {
    try {
      execFileSync('mount', ['-t', type, dev, mnt], { stdio: 'ignore' });
      mountedBy.set(fs, `kernel ${type}`);
      return true;
    } catch {
      return false;
    }
  };
  if (fs.startsWith('ext')) {
    sh('mount', ['-t', 'ext4', dev, mnt]);
    mountedBy.set(fs, 'kernel ext4');
  } else if (fs === 'ntfs') {
    sh('ntfs-3g', [dev, mnt]);
    mountedBy.set(fs, 'ntfs-3g');
  } else if (fs === 'exfat') {
    if (!tryKernel('exfat')) {
      sh('mount.exfat-fuse', [dev, mnt]);
      mountedBy.set(fs, 'exfat-fuse');
    }
  } else if (!tryKernel('vfat')) {
    sh('fusefat', ['-o', 'rw+', dev, mnt]);
    mountedBy.set(fs, 'fusefat');
  }
}

/**
 * Mount `dev`, write files of assorted sizes in folders, delete some, write more
 * (fragmenting the free space), unmount, and wait for the driver to let go.
 * @returns the bytes written that remain.
 */
export async function fill(dev: string, fs: TestFs, size: number, mnt: string): Promise<number> {
  mkdirSync(mnt, { recursive: true });
  mount(dev, fs, mnt);
  let kept = 0;
  try {
    const sizes = [0, 1, 511, 513, 4096, 4097, 10000, 65536, 100000, 300000];
    const files: Array<[string, number]> = [];
    for (let d = 0; d < 3; ++d) {
      const dir = join(mnt, `dir${d}`);
      mkdirSync(dir);
      for (const [i, n] of sizes.entries()) files.push([join(dir, `f${i}.bin`), n * (d + 1)]);
    }
    files.push([join(mnt, 'big1.bin'), Math.floor(size * 0.12)], [join(mnt, 'big2.bin'), Math.floor(size * 0.06)]);
    for (const [p, n] of files) writeFileSync(p, randomBytes(n));
    for (const [i, [p]] of files.entries()) if (i % 3 === 1) rmSync(p);
    kept = files.filter((_, i) => i % 3 !== 1).reduce((n, [, k]) => n + k, 0);
    writeFileSync(join(mnt, 'after-delete.bin'), randomBytes(Math.floor(size * 0.05)));
    kept += Math.floor(size * 0.05);
  } finally {
    sh('umount', [mnt]);
    await waitClosed(dev);
  }
  return kept;
}

/**
 * fusefat leaves FAT entry 1's "clean" and "no error" bits clear, and partclone.fat
 * then refuses the volume ("I/O error"); set them in every FAT copy, as a clean unmount
 * by another driver would. No allocation changes.
 */
export function markFatClean(dev: string, fs: TestFs): void {
  if (fs !== 'fat16' && fs !== 'fat32') return;
  const boot = readAt(dev, 0, 512);
  const fd = openSync(dev, 'r+');
  try {
    const bps = boot.readUInt16LE(11);
    const reserved = boot.readUInt16LE(14);
    const fatSize = boot.readUInt16LE(22) || boot.readUInt32LE(36);
    const v = fs === 'fat16' ? Buffer.from([0xff, 0xff]) : Buffer.from([0xff, 0xff, 0xff, 0x0f]);
    for (let k = 0; k < boot[16]!; ++k) writeSync(fd, v, 0, v.length, (reserved + k * fatSize) * bps + v.length);
  } finally {
    closeSync(fd);
  }
}

/** partclone's ddrescue domain (`-D`) of `dev`, shifted by `offset` (`--offset_domain`): its `+` blocks. */
export function partcloneDomain(dev: string, fs: TestFs, offset: number, out: string): Block[] {
  const tool = fs.startsWith('ext') ? 'partclone.extfs' : fs.startsWith('fat') ? 'partclone.fat' : `partclone.${fs}`;
  sh(tool, ['-D', '-q', '-s', dev, '-O', out, `--offset_domain=${offset}`]);
  const blocks: Block[] = [];
  for (const line of readFileSync(out, 'latin1').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length === 3 && /^0x/i.test(f[0]!) && f[2] === '+') blocks.push({ pos: Number(f[0]), size: Number(f[1]) });
  }
  return blocks;
}

/**
 * The clusters of every file and folder of the FAT volume on `dev`, by mtools
 * (`mdir -/ -b`, then `mshowfat`), plus everything before the data area, shifted by
 * `offset`: the FAT12 reference, where partclone.fat 0.3.23 misreads the FAT.
 */
export function mtoolsDomain(dev: string, offset: number): Block[] {
  const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
  const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'latin1', env, stdio: ['ignore', 'pipe', 'pipe'] });
  const boot = readAt(dev, 0, 512);
  const bps = boot.readUInt16LE(11);
  const cluster = boot[13]! * bps;
  const dataStart = (boot.readUInt16LE(14) + boot[16]! * (boot.readUInt16LE(22) || boot.readUInt32LE(36))) * bps + Math.ceil((boot.readUInt16LE(17) * 32) / bps) * bps;
  const blocks: Block[] = [{ pos: offset, size: dataStart }];
  const paths = run('mdir', ['-/', '-b', '-i', dev, '::']).split('\n').map((l) => l.trim().replace(/\/$/, '')).filter((l) => l.startsWith('::/'));
  for (const path of paths) {
    for (const m of run('mshowfat', ['-i', dev, path]).matchAll(/<(\d+)(?:-(\d+))?>/g)) {
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      blocks.push({ pos: offset + dataStart + (a - 2) * cluster, size: (b - a + 1) * cluster });
    }
  }
  return blocks;
}
