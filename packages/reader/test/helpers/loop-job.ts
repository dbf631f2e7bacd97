/**
 * The run loop's tests: a job planned over a source file of random bytes, opened as
 * `rescue` opens it, and `runLoop`'s options to read it whole into the job's spool.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DEFAULT_RESCUE_OPTIONS } from '../../src/engine/options.js';
import { SILENT_REPORTER } from '../../src/engine/reporter.js';
import { type JobFolder, openJobFolder } from '../../src/job/job-folder.js';
import { planJob } from '../../src/job/plan-job.js';
import { LocalDestination } from '../../src/run/local-destination.js';
import { newLoopStatus, type RunLoopOptions } from '../../src/run/run-loop.js';

export interface LoopJob {
  readonly source: string;
  readonly size: number;
  readonly job: JobFolder;
}

/** `dir/disk.bin` of `size` random bytes, planned in chunks of `chunkSize` as `dir/job` and opened. */
export async function planLoopJob(dir: string, size: number, chunkSize: number, spoolBytes: number): Promise<LoopJob> {
  const source = join(dir, 'disk.bin');
  writeFileSync(source, randomBytes(size));
  const jobDir = join(dir, 'job');
  await planJob({ source, jobDir, chunkSize, commandLine: 'test plan' });
  const job = await openJobFolder(jobDir, { secret: readFileSync(join(jobDir, 'token'), 'utf8').trim(), spoolBytes, hardbs: 512, commandLine: 'test', saveInterval: -1, syncInterval: 300 });
  return { source, size, job };
}

/** `runLoop`'s options for reading the whole source into the job's spool, silently; `extra` replaces any. */
export function loopOptions(j: LoopJob, signal: AbortSignal, extra: Partial<RunLoopOptions> = {}): RunLoopOptions {
  const { job, source, size } = j;
  return {
    rescueId: job.job.rescueId,
    chunks: job.chunks,
    reading: { source, options: DEFAULT_RESCUE_OPTIONS, domains: [{ pos: 0, size }], insize: size, startTime: Math.floor(Date.now() / 1000) },
    map: job.map,
    seq: job.seq,
    destination: new LocalDestination(job.spool),
    checkSource: () => undefined,
    reporter: SILENT_REPORTER,
    readLog: false,
    status: newLoopStatus(),
    log: () => undefined,
    signal,
    ...extra,
  };
}
