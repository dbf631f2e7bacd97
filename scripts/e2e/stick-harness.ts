/**
 * Real USB-stick file systems for tests: a file image on a loop device, formatted FAT32
 * (`mkfs.vfat -F 32`) or exFAT (`mkfs.exfat`) and mounted through FUSE (`fusefat`,
 * `mount.exfat-fuse`), as a stick is on PC_A and PC_B. Needs root, /dev/fuse, loop devices
 * and the Debian packages util-linux, fuse3, dosfstools + fusefat, exfatprogs + exfat-fuse
 * (.ci/run installs them). A missing tool fails with the package to install.
 *
 * ## How these FUSE file systems behave (measured here: fusefat 0.1a-3, exfat-fuse
 * ## 1.3.0+git20220115, fuse3 3.14, Debian 12; 64 MiB sticks)
 *
 * | question | fat32 (fusefat) | exfat (exfat-fuse) |
 * |---|---|---|
 * | /proc/self/mountinfo fs type / source | `fuse.fusefat` / `fusefat` | `fuseblk` / `/dev/loopN` (option `blksize=4096`) |
 * | fsync / fdatasync of a file | succeeds | succeeds |
 * | fsync of a folder (open O_RDONLY, fsync) | succeeds (also the root) | succeeds (also the root) |
 * | rename a file over an existing file | replaces it (one name left, new content) | replaces it |
 * | rename a FOLDER | **loses the folder's content** (the renamed folder is empty; its files are gone for good, also after remount) | works |
 * | move a file into another folder | works | works |
 * | statfs free space | `bsize` 1024, `blocks`/`bavail` exact and updated at once after writes and unlinks, **but only if the cluster is ≥ 1 KiB**: with 512-byte clusters (mkfs.vfat's default below ~260 MiB) blocks = bfree = bavail = 0; `files`/`ffree` = total/free clusters | exact: `bsize` = cluster size (4096), updated at once |
 * | full stick, mid-write | a short write (what fitted), then **EPERM, not ENOSPC**; statfs `bavail` 0 | a short write, then ENOSPC; statfs `bavail` ~0 |
 * | small writes and mkdir when full | EPERM; the create leaves an empty file; **mkdir leaves a broken folder entry** (fsck.vfat: "Start does point to root directory") | succeed while a few clusters are left |
 * | ftruncate to grow a file | EPERM | works |
 * | write past the end (a hole) | allowed, the gap is allocated and zero-filled (no sparse files) | same |
 * | max file size | 4 GiB - 1; **a write at offset ≥ 4 GiB silently wraps modulo 2^32** (1 byte written at 2^32 lands at 0, the file is 2 bytes long); a write crossing 4 GiB - 1 fails EPERM | no 4 GiB limit |
 * | names | `:` refused (EPERM); long names fine; case-insensitive (`Case.txt` = `case.txt`) | `:` refused (ENOENT); case-insensitive |
 * | volume label | **listed as a 0-byte file at the root**, in 8.3 form (`TESTSTIC.K`; a label DDFERRY makes `mkdir ddferry` fail EEXIST, then ENOTDIR below it) | not listed |
 * | chmod / link / symlink | ENOSYS / EPERM / ENOSYS | works / EPERM / ENOSYS |
 * | open 'wx' on an existing name | EEXIST | EEXIST |
 * | speed (dd 32 MiB, conv=fsync) | ~15 MB/s with 512-byte clusters, ~75 MB/s with 4 KiB | ~250 MB/s |
 * | unmount | `fusermount -u` returns before the daemon has closed the device: wait for the daemon (here it runs in the foreground as our child) before `losetup -d` or a new mount | same |
 * | stderr | a debug line per cluster read or written, even without -d (~1 MB per 64 MiB) | with -d (the only way to keep it in the foreground): a line per call |
 *
 * What the reader and the assembler must do about it:
 * - free space: statfs `bavail * bsize` is right on both, provided the FAT cluster is
 *   ≥ 1 KiB (sticks from 512 MiB up always are; tests format with 4 KiB clusters). A
 *   statfs that says `blocks === 0` is "unknown", not "full".
 * - stick full: treat EPERM from write() on a stick (with statfs `bavail * bsize` below
 *   what was being written) like ENOSPC: stop cleanly, remove the temporary.
 * - never rename a folder on a stick; write `.tmp` files in the final folder and rename the file.
 * - create folders (`ddferry/<id>/`, `receipts/`) only when there is free space (mkdir on a
 *   full fusefat breaks the folder entry).
 * - keep every file below 4 GiB, well below (fusefat does not refuse offsets ≥ 4 GiB: it wraps).
 * - no `:` in names, and no two names differing only by case; a root entry `ddferry` that is
 *   not a folder (a FAT label "DDFERRY") needs a clear error naming it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';

export type StickFs = 'fat32' | 'exfat';

export interface StickOptions {
  readonly fs: StickFs;
  /** Bytes of the stick image. */
  readonly size: number;
  /** FAT32 cluster size (default 4096: see the table above for why not 512). */
  readonly clusterSize?: number;
  /** The volume label (default TESTSTICK; fusefat lists a FAT label as a file at the root). */
  readonly label?: string;
  /** Folder for the image and the mount point (default: a new temporary folder). */
  readonly dir?: string;
}

export interface Stick {
  readonly fs: StickFs;
  /** The mount point (the stick's root folder). */
  readonly mount: string;
  /** The loop device, `/dev/loopN`. */
  readonly device: string;
  /** The image file behind the loop device. */
  readonly image: string;
  /** Whether it is mounted now. */
  readonly mounted: boolean;
  /** Free bytes as statfs says (`bavail * bsize`). */
  free(): number;
  /** The file system type /proc/self/mountinfo shows (`fuse.fusefat`, `fuseblk`). */
  mountType(): string;
  /**
   * Leave about `bytes` free by writing (and fsyncing) a filler file at the stick's root;
   * with 0, write until a write fails (the stick is full to the last cluster). Returns
   * the filler's path; `unfill()` removes it.
   */
  fill(bytes: number): string;
  unfill(): void;
  /** Unmount (fusermount -u) and wait for the FUSE daemon to exit. */
  unmount(): Promise<void>;
  /** Mount again (after `unmount`). */
  mountAgain(): Promise<void>;
  /** Unmount and mount again: what was not durable is gone. */
  remount(): Promise<void>;
  /** fsck of the unmounted device without changes: exit status and output. */
  check(): { readonly ok: boolean; readonly output: string };
  /** Unmount if mounted, detach the loop device, remove the image and folder. Never throws twice. */
  destroy(): Promise<void>;
}

const FILLER = 'ddferry-test-filler.bin';
const PATHS = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/** The full path of `tool`, or an error naming the Debian package that has it. */
function need(tool: string, pkg: string): string {
  for (const p of PATHS) {
    if (p === '') continue;
    const f = join(p, tool);
    if (existsSync(f)) return f;
  }
  throw new Error(`stick harness: ${tool} is missing: apt-get install -y ${pkg}`);
}

function run(cmd: string, args: readonly string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`stick harness: ${what}: ${cmd} could not start (${r.error.message})`);
  if (r.status !== 0) throw new Error(`stick harness: ${what}: ${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** The mountinfo line of `mount`, as [fs type, source], or undefined. */
function mountInfo(mount: string): [string, string] | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0 || f[4] !== mount) continue;
    return [f[dash + 1]!, f[dash + 2]!];
  }
  return undefined;
}

/** SIGKILL the daemon's process group (the shell, the daemon, tail). */
function killGroup(c: ChildProcess): void {
  try {
    if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sticks not destroyed yet: torn down on process exit even if a test forgot. */
const alive = new Set<{ emergency(): void }>();
let exitHook = false;

function watchExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const s of alive) s.emergency();
  });
}

/**
 * A FAT32 or exFAT stick on a loop device, mounted through FUSE.
 * @throws Error naming the missing tool and its Debian package, or the failing step.
 */
export async function makeStick(options: StickOptions): Promise<Stick> {
  const fsType = options.fs;
  const losetup = need('losetup', 'util-linux');
  const fusermount = (() => {
    try {
      return need('fusermount3', 'fuse3');
    } catch {
      return need('fusermount', 'fuse3');
    }
  })();
  const mkfs = fsType === 'fat32' ? need('mkfs.vfat', 'dosfstools') : need('mkfs.exfat', 'exfatprogs');
  const daemon = fsType === 'fat32' ? need('fusefat', 'fusefat') : need('mount.exfat-fuse', 'exfat-fuse');
  const fsck = fsType === 'fat32' ? need('fsck.vfat', 'dosfstools') : need('fsck.exfat', 'exfatprogs');
  if (!existsSync('/dev/fuse')) throw new Error('stick harness: /dev/fuse is missing: load the fuse module (modprobe fuse) or run the container with --device /dev/fuse');
  const cluster = options.clusterSize ?? 4096;
  if (fsType === 'fat32' && (cluster < 512 || cluster > 65536 || (cluster & (cluster - 1)) !== 0)) throw new RangeError(`clusterSize ${cluster} is not a power of two from 512 to 65536`);

  const ownDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), `ddferry-stick-${fsType}-`));
  const image = join(dir, `${fsType}.img`);
  const mount = resolve(dir, 'mnt');
  let device = '';
  let child: ChildProcess | undefined;
  let childExit: Promise<void> | undefined;
  let spawnError = '';
  const logFile = join(dir, `${fsType}-daemon.log`);
  /** The daemon log's last lines. */
  const childErr = (): string => {
    let text = spawnError;
    try {
      text += readFileSync(logFile, 'latin1').slice(-1500);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return text.trim();
  };
  let destroyed = false;

  const startDaemon = async (): Promise<void> => {
    // foreground (fusefat -f; exfat-fuse has no -f, its -d implies it) so the daemon is our child and its exit is seen
    const args = fsType === 'fat32' ? ['-f', '-o', 'rw+', device, mount] : ['-d', device, mount];
    // The daemon's stderr goes through `tail` into a file, never into a pipe we read: a test
    // making synchronous calls on the mount cannot drain a pipe, and a daemon blocked on a
    // full pipe hangs every call (a deadlock). fusefat logs a line per cluster: tail keeps
    // the last 16 KiB. The shell and the daemon form their own process group.
    const log = openSync(logFile, 'w');
    let c: ChildProcess;
    try {
      c = spawn('/bin/sh', ['-c', '"$0" "$@" 2>&1 >/dev/null | tail -c 16384 >&3', daemon, ...args], { stdio: ['ignore', 'ignore', 'ignore', log], detached: true });
    } finally {
      closeSync(log);
    }
    child = c;
    let exited: { code: number | null; signal: string | null } | undefined;
    childExit = new Promise<void>((res) => c.on('exit', (code, signal) => {
      exited = { code, signal };
      res();
    }));
    c.on('error', (err) => {
      spawnError = err.message;
      exited ??= { code: null, signal: null };
    });
    const end = Date.now() + 15_000;
    while (mountInfo(mount) === undefined) {
      if (exited !== undefined) throw new Error(`stick harness: ${daemon} ${args.join(' ')} exited (${exited.code ?? exited.signal}) before mounting: ${childErr()}`);
      if (Date.now() > end) {
        killGroup(c);
        await childExit;
        throw new Error(`stick harness: ${daemon} did not mount ${mount} within 15 s: ${childErr()}`);
      }
      await sleep(20);
    }
  };

  const stopDaemon = async (): Promise<void> => {
    if (child === undefined) return;
    let last = '';
    for (let i = 0; mountInfo(mount) !== undefined; ++i) {
      const r = spawnSync(fusermount, ['-u', mount], { encoding: 'utf8' });
      if (r.status === 0) break;
      last = (r.stderr || '').trim();
      if (i >= 50) throw new Error(`stick harness: ${fusermount} -u ${mount} keeps failing (${last}): a process still uses the stick?`);
      await sleep(100);
    }
    const gone = await Promise.race([childExit!.then(() => true), sleep(20_000).then(() => false)]);
    if (!gone) {
      killGroup(child);
      await childExit;
      throw new Error(`stick harness: ${daemon} did not exit within 20 s of the unmount of ${mount} (killed)`);
    }
    child = undefined;
  };

  /** Synchronous last-resort teardown (process exit, or a failure while making the stick). */
  const emergency = (): void => {
    if (mountInfo(mount) !== undefined) spawnSync(fusermount, ['-u', '-z', mount]);
    if (child !== undefined) killGroup(child);
    if (device !== '') spawnSync(losetup, ['-d', device]);
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  const entry = { emergency };

  try {
    mkdirSync(mount, { recursive: true });
    closeSync(openSync(image, 'w'));
    truncateSync(image, options.size);
    device = run(losetup, ['-f', '--show', image], 'attaching a loop device (needs root and loop devices)').trim();
    if (!/^\/dev\/loop\d+$/.test(device)) throw new Error(`stick harness: losetup -f --show printed "${device}", not /dev/loopN`);
    watchExit();
    alive.add(entry);
    if (fsType === 'fat32') run(mkfs, ['-F', '32', '-s', String(cluster / 512), '-n', options.label ?? 'TESTSTICK', device], 'formatting FAT32');
    else run(mkfs, ['-L', options.label ?? 'TESTSTICK', device], 'formatting exFAT');
    await startDaemon();
  } catch (err) {
    emergency();
    alive.delete(entry);
    throw err;
  }

  const stick: Stick = {
    fs: fsType,
    mount,
    device,
    image,
    get mounted() {
      return child !== undefined;
    },
    free() {
      const s = statfsSync(mount);
      return s.bavail * s.bsize;
    },
    mountType() {
      const m = mountInfo(mount);
      if (m === undefined) throw new Error(`stick harness: ${mount} is not mounted`);
      return m[0];
    },
    fill(bytes: number) {
      const file = join(mount, FILLER);
      const fd = openSync(file, 'a');
      try {
        const block = Buffer.alloc(1 << 20, 0xa5);
        for (;;) {
          const over = stick.free() - bytes;
          if (over <= 0) break;
          const n = Math.min(block.length, over);
          try {
            writeSync(fd, block, 0, n);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'ENOSPC' || code === 'EPERM') break;
            throw err;
          }
          if (n < 4096) break;
        }
        // bytes 0: eat the last clusters too (exfat-fuse still takes small writes when statfs says ~0)
        for (let i = 0; bytes === 0 && i < 4096; ++i) {
          try {
            if (writeSync(fd, block, 0, 4096) < 4096) break;
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'ENOSPC' || code === 'EPERM') break;
            throw err;
          }
        }
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return file;
    },
    unfill() {
      rmSync(join(mount, FILLER), { force: true });
    },
    async unmount() {
      await stopDaemon();
    },
    async mountAgain() {
      if (child !== undefined) throw new Error(`stick harness: ${mount} is mounted already`);
      await startDaemon();
    },
    async remount() {
      await stopDaemon();
      await startDaemon();
    },
    check() {
      if (child !== undefined) throw new Error('stick harness: check() needs the stick unmounted');
      const r = spawnSync(fsck, ['-n', device], { encoding: 'utf8' });
      if (r.error) throw new Error(`stick harness: ${fsck} could not start (${r.error.message})`);
      return { ok: r.status === 0, output: `${r.stdout}${r.stderr}`.trim() };
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await stopDaemon();
      } finally {
        alive.delete(entry);
        // the daemon is gone (or killed): the device is free
        emergency();
      }
    },
  };
  return stick;
}
