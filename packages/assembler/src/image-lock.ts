/**
 * `IMAGE.lock`: one assembler process at a time per image. Two processes (a
 * `serve` and an `import`, say) each keep the image's map in memory and save it
 * whole, so the later save would take back the other's statuses; the lock
 * refuses the second process instead.
 *
 * The file holds `PID HOST COMMAND`. A lock whose process is gone (a kill -9,
 * a crash, a reboot) is stale and taken over: the pid no longer runs, or runs
 * something that is not ddferry (pid reuse). The process holding the lock may
 * open the image again (the server refuses duplicates itself).
 */
import { readFileSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';

import { AssemblerError, errnoOf, messageOf } from './errors.js';

/** The lock's path for an image. */
export function lockPathOf(image: string): string {
  return `${image}.lock`;
}

/** True if `pid` runs a ddferry process on this machine. */
function isDdferryProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (errnoOf(err) !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('ddferry');
  } catch (err) {
    // no /proc (not Linux): a live pid is taken as the owner
    return errnoOf(err) !== 'ENOENT' || !readableProc();
  }
}

function readableProc(): boolean {
  try {
    readFileSync('/proc/self/cmdline');
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Take the lock of `image` for this process.
 * @throws AssemblerError `ERR_IMAGE_LOCKED` (another live ddferry process holds it, named),
 *   `ERR_IMAGE_OPEN` (the lock cannot be written).
 */
export async function lockImage(image: string, command: string): Promise<void> {
  const path = lockPathOf(image);
  const mine = `${process.pid} ${hostname()} ${command.replace(/\s+/g, ' ').slice(0, 300)}\n`;
  for (let attempt = 0; attempt < 2; ++attempt) {
    try {
      const fh = await open(path, 'wx', 0o644);
      try {
        await fh.writeFile(mine);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return;
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') {
        throw new AssemblerError('ERR_IMAGE_OPEN', path, `Cannot write the image's lock file (${errnoOf(err) ?? messageOf(err)}). Check that the image's folder is writable.`, { cause: err });
      }
    }
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') continue; // released meanwhile
      throw new AssemblerError('ERR_IMAGE_OPEN', path, `Cannot read the image's lock file (${errnoOf(err) ?? messageOf(err)}).`, { cause: err });
    }
    const [pidText, host] = text.split(' ');
    const pid = Number(pidText);
    if (pid === process.pid && host === hostname()) return;
    if (Number.isSafeInteger(pid) && pid > 0 && host === hostname() && isDdferryProcess(pid)) {
      throw new AssemblerError('ERR_IMAGE_LOCKED', image, `Another ddferry process uses this image: ${text.trim()}. Stop it first (Ctrl-C on 'ddferry-assembler serve'), then run this command again. If no ddferry process runs, delete ${path}.`);
    }
    if (host !== hostname() && host !== undefined && host !== '') {
      throw new AssemblerError('ERR_IMAGE_LOCKED', image, `The image is locked by a process on another machine: ${text.trim()}. If it no longer runs, delete ${path}.`);
    }
    await rm(path, { force: true }); // stale: its process is gone
  }
  throw new AssemblerError('ERR_IMAGE_LOCKED', image, `Could not take the lock ${path}: another process takes it at the same time. Run one assembler per image.`);
}

/** Release the lock if this process holds it. */
export async function unlockImage(image: string): Promise<void> {
  const path = lockPathOf(image);
  try {
    const [pid, host] = (await readFile(path, 'utf8')).split(' ');
    if (Number(pid) === process.pid && host === hostname()) await rm(path, { force: true });
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}
