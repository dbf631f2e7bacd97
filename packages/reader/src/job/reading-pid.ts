import { readFileSync, unlinkSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { saveFileAtomic } from '../durable-file.js';
import { errnoOf } from '../errors.js';

/** `JOBDIR/reading.pid`: the pid of the job's reading process, while it lives (the file's time: when it started). */
export const READING_PID_FILE = 'reading.pid';

/** A reading process the pid file names. */
export interface ReadingPid {
  readonly pid: number;
  /** Milliseconds since the epoch, when it started. */
  readonly startedAt: number;
}

export function readingPidPath(jobDir: string): string {
  return join(jobDir, READING_PID_FILE);
}

export async function writeReadingPid(jobDir: string, pid: number): Promise<void> {
  await saveFileAtomic(readingPidPath(jobDir), `${pid}\n`);
}

/** The pid in a pid file's text, or null. */
function pidOf(text: string): number | null {
  const n = Number(text.trim());
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** Remove the pid file if it still names `pid` (a newer run may own it). Synchronous: it runs at exit. */
export function removeReadingPid(path: string, pid: number): void {
  try {
    if (pidOf(readFileSync(path, 'utf8')) === pid) unlinkSync(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
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
  let startedAt: number;
  try {
    text = await readFile(path, 'utf8');
    startedAt = (await stat(path)).mtimeMs;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
  const pid = pidOf(text);
  if (pid !== null && pid !== process.pid && isReadingProcess(pid)) return { pid, startedAt };
  // a run that ended without removing it (killed), or a cut write: nothing holds the source
  await rm(path, { force: true });
  return null;
}
