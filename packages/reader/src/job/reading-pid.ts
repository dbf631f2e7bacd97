import { readFileSync, unlinkSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { saveFileAtomic } from '../durable-file.js';
import { errnoOf } from '../errors.js';

/** `JOBDIR/reading.pid`: the reading process of the job's last run, while it lives. */
export const READING_PID_FILE = 'reading.pid';

/** What the pid file says. */
export interface ReadingPid {
  readonly pid: number;
  /** Milliseconds since the epoch, when it started. */
  readonly startedAt: number;
  readonly source: string;
}

export function readingPidPath(jobDir: string): string {
  return join(jobDir, READING_PID_FILE);
}

export async function writeReadingPid(jobDir: string, p: ReadingPid): Promise<void> {
  await saveFileAtomic(readingPidPath(jobDir), `${JSON.stringify(p)}\n`);
}

/** Remove the pid file if it still names `pid` (a newer run may own it). Synchronous: it runs at exit. */
export function removeReadingPid(path: string, pid: number): void {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as { pid?: unknown };
    if (v.pid === pid) unlinkSync(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
  }
}

/** True if `pid` is a live ddferry reading process. */
function isReadingProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes('__reading-process');
  } catch {
    return false;
  }
}

/**
 * The reading process of an earlier run that still lives (stuck in a read of the
 * source, which the kernel holds), or null. A stale file is removed.
 */
export async function leftoverReadingProcess(jobDir: string): Promise<ReadingPid | null> {
  const path = readingPidPath(jobDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
  let v: ReadingPid | null = null;
  try {
    v = JSON.parse(text) as ReadingPid;
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
  }
  if (v !== null && Number.isSafeInteger(v.pid) && v.pid > 0 && v.pid !== process.pid && isReadingProcess(v.pid)) return v;
  // a run that ended without removing it (killed), or a cut write: nothing holds the source
  await rm(path, { force: true });
  return null;
}
