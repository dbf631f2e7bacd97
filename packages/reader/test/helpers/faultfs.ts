/**
 * A fault-injecting block source for tests: a file served through FUSE (faultfs.c)
 * whose reads fail with real kernel EIO on chosen bad byte ranges, like a failing
 * disk. A read whose range holds a bad byte returns the good prefix rounded down to a
 * 512-byte sector (a short read), or EIO when that prefix is empty, so a pread loop
 * sees the good data, then EIO on the next pread. The daemon opens the file with
 * FUSE direct_io, so every pread (with or without O_DIRECT) reaches it with the
 * application's own offset and size, split only at `FAULTFS_MAX_READ` bytes.
 *
 * Slow ranges (`slow`, `delayAllMs`) make reads hang in the kernel like a disk that
 * retries a sector for seconds: the daemon sleeps before it answers, and the reading
 * thread waits in state D, so not even SIGKILL ends the read (or its process) early.
 * Reads are served one at a time in arrival order (a read waits for a sleeping one),
 * while stat() and open() are answered at once. `slowReads()` tells which delayed reads
 * have started, the read log which have been answered, and both name the process
 * (`pid`) that asked.
 *
 * Needs root, /dev/fuse, gcc, pkg-config and libfuse3 (Debian: fuse3 libfuse3-dev
 * pkg-config gcc). When something is missing, `mountFaultFs` throws an Error that
 * says what and how to install it; it never skips.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsConstants, readFileSync, rmSync } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FaultFsOptions {
  /** The file whose size and data the FUSE file `disk` serves. */
  backing: string;
  /** Unreadable byte ranges. */
  bad: ReadonlyArray<{ pos: number; size: number }>;
  /** The first N reads behave normally; every later read fails with ENXIO. */
  vanishAfterReads?: number;
  /** Where the daemon logs reads (truncated at mount); a file in the mount's temp dir by default. */
  log?: string;
  /**
   * Slow ranges: a read overlapping one sleeps `delayMs` in the daemon before it is
   * answered (as `bad` says); only the first `times` such reads if `times` is given,
   * every one otherwise. A read overlapping several sleeps for the longest.
   */
  slow?: ReadonlyArray<{ pos: number; size: number; delayMs: number; times?: number }>;
  /** Every read no slow range delays sleeps this many milliseconds (default 0). */
  delayAllMs?: number;
}

/**
 * One read that reached the daemon. `result` is the byte count returned, `EIO` or
 * `ENXIO`; `pid` the process that asked (its thread group id).
 */
export interface FaultFsRead {
  offset: number;
  size: number;
  result: string;
  pid: number;
}

/** A delayed read, logged when its sleep starts. */
export interface FaultFsSlowRead {
  offset: number;
  size: number;
  pid: number;
  delayMs: number;
}

export interface FaultFs {
  /** The `disk` file. */
  path: string;
  mountpoint: string;
  /** The reads answered so far, in order. */
  readLog(): Promise<FaultFsRead[]>;
  /** The delayed reads started so far (answered or still sleeping), in order. */
  slowReads(): Promise<FaultFsSlowRead[]>;
  /** Unmounts, stops the daemon and removes the temp dir; safe to call twice. */
  unmount(): Promise<void>;
}

/** The mount's max_read: larger preads reach the daemon split into pieces of this size. */
export const FAULTFS_MAX_READ = 131072;

const INSTALL_HINT = 'apt-get install -y fuse3 libfuse3-dev pkg-config gcc';
const MOUNT_TIMEOUT_MS = 10_000;
const EXIT_TIMEOUT_MS = 5_000;

const SOURCE = fileURLToPath(new URL('./faultfs.c', import.meta.url));

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the program could not be started at all (ENOENT: not installed). */
  spawnError?: NodeJS.ErrnoException;
}

function run(file: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) => {
      if (error === null) {
        resolve({ code: 0, stdout, stderr });
        return;
      }
      const code = typeof error.code === 'number' ? error.code : null;
      const spawnError = typeof error.code === 'string' ? (error as NodeJS.ErrnoException) : undefined;
      resolve({ code, stdout, stderr, ...(spawnError ? { spawnError } : {}) });
    });
  });
}

/** Everything faultfs needs, as one message per missing piece. */
async function missingPrerequisites(): Promise<string[]> {
  const missing: string[] = [];
  const uid = process.getuid?.();
  if (uid !== 0) missing.push(`not running as root (uid ${uid ?? 'unknown'}); faultfs mounts FUSE file systems and must run as root`);
  try {
    await access('/dev/fuse', fsConstants.R_OK | fsConstants.W_OK);
  } catch (error) {
    missing.push(`/dev/fuse is not usable (${(error as NodeJS.ErrnoException).code ?? String(error)}); `
      + 'install fuse3 and load the fuse module (modprobe fuse), or in a container pass --device /dev/fuse --cap-add SYS_ADMIN');
  }
  const gcc = await run('gcc', ['--version']);
  if (gcc.code !== 0) missing.push(`gcc is not available (${gcc.spawnError?.code ?? gcc.stderr.trim()}); install package gcc`);
  const fuse3 = await run('pkg-config', ['--exists', '--print-errors', 'fuse3']);
  if (fuse3.spawnError) missing.push(`pkg-config is not available (${fuse3.spawnError.code}); install package pkg-config`);
  else if (fuse3.code !== 0) {
    const why = fuse3.stderr.trim().replace(/\s+/g, ' ') || `exit ${fuse3.code}`;
    missing.push(`pkg-config cannot find fuse3 (${why}); install package libfuse3-dev`);
  }
  const fusermount = await run('fusermount3', ['-V']);
  if (fusermount.spawnError) missing.push(`fusermount3 is not available (${fusermount.spawnError.code}); install package fuse3`);
  return missing;
}

let binary: Promise<string> | undefined;

/** Checks the prerequisites and compiles faultfs.c once per process (cached on disk by source hash). */
function faultfsBinary(): Promise<string> {
  binary ??= buildBinary();
  return binary;
}

async function buildBinary(): Promise<string> {
  const missing = await missingPrerequisites();
  if (missing.length > 0) {
    throw new Error(`faultfs cannot run: ${missing.join('; ')}. On Debian/Ubuntu: ${INSTALL_HINT}`);
  }
  const flags = await run('pkg-config', ['--cflags', '--libs', 'fuse3']);
  if (flags.code !== 0) throw new Error(`pkg-config --cflags --libs fuse3 failed: ${flags.stderr.trim()}. On Debian/Ubuntu: ${INSTALL_HINT}`);
  const fuseFlags = flags.stdout.trim().split(/\s+/).filter((flag) => flag !== '');
  const source = readFileSync(SOURCE);
  const hash = createHash('sha256').update(source).update('\0').update(fuseFlags.join(' ')).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `ddferry-faultfs-${hash}`);
  // The daemon's file name becomes the mount's type (fuse.faultfs).
  const exe = join(dir, 'faultfs');
  try {
    await access(exe, fsConstants.X_OK);
    return exe;
  } catch {
    // not built yet
  }
  await mkdir(dir, { recursive: true });
  const partial = join(dir, `faultfs.${process.pid}.${Date.now()}.tmp`);
  const gcc = await run('gcc', ['-O2', '-Wall', '-o', partial, SOURCE, ...fuseFlags]);
  if (gcc.code !== 0) {
    await rm(partial, { force: true });
    throw new Error(`compiling ${SOURCE} failed (gcc exit ${gcc.code}):\n${gcc.stderr}`);
  }
  await chmod(partial, 0o755);
  await rename(partial, exe); // atomic: concurrent test processes never see half a binary
  return exe;
}

/** The mount points in /proc/self/mountinfo (field 5, with the kernel's octal escapes undone). */
function mountedAt(mountpoint: string): boolean {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  return info.split('\n').some((line) => {
    const field = line.split(' ')[4];
    if (field === undefined) return false;
    return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))) === mountpoint;
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

interface Live {
  dir: string;
  mountpoint: string;
  child: ChildProcess;
}

/** Mounts still up; unmounted lazily if the test process exits without unmount(). */
const live = new Set<Live>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const { dir, mountpoint, child } of live) {
      try {
        execFileSync('fusermount3', ['-u', '-z', mountpoint], { stdio: 'ignore' });
      } catch {
        try {
          execFileSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
        } catch {
          // Nothing more can be done while exiting.
        }
      }
      child.kill('SIGKILL');
      if (!mountedAt(mountpoint)) rmSync(dir, { recursive: true, force: true });
    }
  });
}

function checkBad(bad: FaultFsOptions['bad']): string {
  return bad.map(({ pos, size }, i) => {
    if (!Number.isSafeInteger(pos) || pos < 0 || !Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`faultfs: bad[${i}] = { pos: ${pos}, size: ${size} } is not a pair of non-negative integers`);
    }
    return `${pos} ${size}\n`;
  }).join('');
}

function checkSlow(slow: NonNullable<FaultFsOptions['slow']>): string {
  return slow.map(({ pos, size, delayMs, times }, i) => {
    const ok = [pos, size, delayMs, times ?? 0].every((n) => Number.isSafeInteger(n) && n >= 0);
    if (!ok) throw new RangeError(`faultfs: slow[${i}] = { pos: ${pos}, size: ${size}, delayMs: ${delayMs}, times: ${times} } is not made of non-negative integers`);
    return `${pos} ${size} ${delayMs}${times === undefined ? '' : ` ${times}`}\n`;
  }).join('');
}

/** The lines of a daemon log, each split into `fields` fields. */
async function logLines(file: string, fields: number): Promise<string[][]> {
  const text = await readFile(file, 'utf8');
  return text.split('\n').filter((line) => line !== '').map((line) => {
    const f = line.split(' ');
    if (f.length !== fields || f.some((x) => x === '')) throw new Error(`faultfs: bad log line ${JSON.stringify(line)} in ${file}`);
    return f;
  });
}

/**
 * Mount a faultfs file system serving `options.backing` as `disk`.
 * @throws Error naming what is missing (root, /dev/fuse, gcc, libfuse3) or why the mount failed; RangeError for bad options.
 */
export async function mountFaultFs(options: FaultFsOptions): Promise<FaultFs> {
  const badList = checkBad(options.bad);
  const slowList = checkSlow(options.slow ?? []);
  const delayAll = options.delayAllMs ?? 0;
  if (!Number.isSafeInteger(delayAll) || delayAll < 0) throw new RangeError(`faultfs: delayAllMs = ${delayAll} is not a non-negative integer`);
  const vanish = options.vanishAfterReads;
  if (vanish !== undefined && (!Number.isSafeInteger(vanish) || vanish < 0)) {
    throw new RangeError(`faultfs: vanishAfterReads = ${vanish} is not a non-negative integer`);
  }
  const exe = await faultfsBinary();
  await stat(options.backing); // a clear ENOENT here beats a daemon that exits at once

  const dir = await mkdtemp(join(tmpdir(), 'ddferry-faultfs-mnt-'));
  const mountpoint = join(dir, 'mnt');
  const badPath = join(dir, 'bad.txt');
  const logPath = options.log ?? join(dir, 'reads.log');
  const slowPath = join(dir, 'slow.txt');
  const slowLogPath = join(dir, 'slow.log');
  await mkdir(mountpoint);
  await writeFile(badPath, badList);
  await writeFile(slowPath, slowList);
  await writeFile(logPath, '');
  await writeFile(slowLogPath, '');

  const args = [
    options.backing, badPath, mountpoint,
    `--log=${logPath}`,
    ...(vanish !== undefined ? [`--vanish-after=${vanish}`] : []),
    `--slow=${slowPath}`, `--slow-log=${slowLogPath}`,
    ...(delayAll > 0 ? [`--delay-all=${delayAll}`] : []),
    '-o', `max_read=${FAULTFS_MAX_READ}`,
  ];
  const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer): void => {
    if (output.length < 64 * 1024) output += chunk.toString('utf8');
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let spawnError: Error | undefined;
  child.on('error', (error) => {
    spawnError = error;
  });

  const entry: Live = { dir, mountpoint, child };
  live.add(entry);
  installExitHook();

  let unmounted = false;
  const unmount = async (): Promise<void> => {
    if (unmounted) return;
    unmounted = true;
    if (mountedAt(mountpoint)) {
      const fusermount = await run('fusermount3', ['-u', mountpoint]);
      if (fusermount.code !== 0) await run('umount', ['-l', mountpoint]);
    }
    if (!(await waitForExit(child, EXIT_TIMEOUT_MS))) {
      child.kill('SIGKILL');
      await waitForExit(child, EXIT_TIMEOUT_MS);
    }
    // A killed daemon leaves a dead mount (ENOTCONN) behind.
    if (mountedAt(mountpoint)) await run('umount', ['-l', mountpoint]);
    live.delete(entry);
    if (mountedAt(mountpoint)) {
      throw new Error(`faultfs: ${mountpoint} is still mounted after fusermount3 -u and umount -l; left ${dir} in place`);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const path = join(mountpoint, 'disk');
  const deadline = Date.now() + MOUNT_TIMEOUT_MS;
  for (;;) {
    if (spawnError || exited(child)) {
      await unmount();
      const how = spawnError ? String(spawnError) : `exit code ${child.exitCode}, signal ${child.signalCode}`;
      throw new Error(`faultfs daemon failed to mount ${mountpoint} (${how}):\n${output}`);
    }
    if (mountedAt(mountpoint)) {
      try {
        await stat(path);
        break;
      } catch {
        // mounted but not answering yet
      }
    }
    if (Date.now() > deadline) {
      await unmount();
      throw new Error(`faultfs: ${mountpoint} not mounted after ${MOUNT_TIMEOUT_MS} ms:\n${output}`);
    }
    await sleep(20);
  }

  const readLog = async (): Promise<FaultFsRead[]> => (await logLines(logPath, 4))
    .map(([offset, size, result, pid]) => ({ offset: Number(offset), size: Number(size), result: result!, pid: Number(pid) }));
  const slowReads = async (): Promise<FaultFsSlowRead[]> => (await logLines(slowLogPath, 4))
    .map(([offset, size, pid, ms]) => ({ offset: Number(offset), size: Number(size), pid: Number(pid), delayMs: Number(ms) }));

  return { path, mountpoint, readLog, slowReads, unmount };
}
