import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { planChunks } from '@ddferry/mapfile';
import type { Chunk } from '@ddferry/mapfile';
import { type Fingerprint, isRescueId } from '@ddferry/protocol';

import { ReaderError } from '../errors.js';
import { saveFileAtomic } from '../durable-file.js';

/**
 * A job folder on PC_A: one rescue of one source.
 *
 * | file | holds |
 * |---|---|
 * | `job.json` | the rescue id, the source and its fingerprint, the chunk plan |
 * | `common.map` | the GNU ddrescue mapfile of the whole source (usable by `ddrescue` itself) |
 * | `chunks/chunkNNNN.map` | one domain mapfile per chunk, for `ddrescue -m` |
 * | `spool/` | sealed pieces waiting for a receipt |
 * | `seq.json` | the last sequence number acknowledged and deleted from the spool |
 * | `ledger/piece-NNNNNN.json` | what each piece carried on a stick held, until PC_B's receipt (stick-trip.ts) |
 * | `trips.json` | how many stick trips the job has made (for progress lines) |
 * | `token` | the shared secret `plan` made (unless `--token-file` named one): the same file on PC_B |
 * | `reading.pid` | the pid of the job's reading process while it lives |
 */
export interface Job {
  readonly version: 1;
  readonly rescueId: string;
  /** Absolute path of the source as planned (`/dev` names may change: the fingerprint decides). */
  readonly source: string;
  /** Absolute path of a GNU ddrescue test-mode map (`-H`), if the source is simulated. */
  readonly testMode?: string;
  /** `plan --used-first` (`first`) or `--used-only` (`only`): metadata, then used space, then (not with `only`) the rest. */
  readonly usedOrder?: 'first' | 'only';
  /** The token file `plan --token-file` named (absolute); without it, `JOBDIR/token`. */
  readonly tokenFile?: string;
  /** With `testMode`: reads overlapping these ranges block for their seconds (`plan --test-slow-reads`). */
  readonly testSlowReads?: ReadonlyArray<{ readonly pos: number; readonly size: number; readonly seconds: number }>;
  readonly fingerprint: Fingerprint;
  readonly sourceSize: number;
  readonly sectorSize: number;
  readonly chunkSize: number;
  readonly chunkCount: number;
  readonly createdAt: string;
}

export const JOB_FILE = 'job.json';
export const COMMON_MAP = 'common.map';
export const CHUNKS_FOLDER = 'chunks';
export const SPOOL_FOLDER = 'spool';

export function jobPaths(dir: string): { job: string; commonMap: string; chunks: string; spool: string; seq: string } {
  return { job: join(dir, JOB_FILE), commonMap: join(dir, COMMON_MAP), chunks: join(dir, CHUNKS_FOLDER), spool: join(dir, SPOOL_FOLDER), seq: join(dir, 'seq.json') };
}

/** The chunks of a job's plan. */
export function jobChunks(job: Job): Chunk[] {
  return planChunks({ sourceSize: job.sourceSize, sectorSize: job.sectorSize, chunkSize: job.chunkSize });
}

/** Read and check `JOBDIR/job.json`. @throws ReaderError `ERR_JOB_NOT_FOUND` or `ERR_JOB_BAD`. */
export async function readJob(dir: string): Promise<Job> {
  const path = jobPaths(dir).job;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ReaderError('ERR_JOB_NOT_FOUND', path, `${path}: no job here (${(err as Error).message}). Make one with 'ddferry-reader plan SOURCE ${dir}'.`, { cause: err });
  }
  let job: Job;
  try {
    job = JSON.parse(text) as Job;
  } catch (err) {
    throw new ReaderError('ERR_JOB_BAD', path, `${path}: not a job file (${(err as Error).message}). Restore it from a copy, or plan again into a new folder.`, { cause: err });
  }
  const ok = job.version === 1 && isRescueId(job.rescueId) && Number.isSafeInteger(job.sourceSize) && job.sourceSize > 0
    && Number.isSafeInteger(job.sectorSize) && job.sectorSize > 0 && Number.isSafeInteger(job.chunkSize) && job.chunkSize > 0
    && job.chunkSize % job.sectorSize === 0 && typeof job.source === 'string' && typeof job.fingerprint === 'object';
  if (!ok) throw new ReaderError('ERR_JOB_BAD', path, `${path}: the job file is damaged (a field is missing or out of range). Restore it from a copy, or plan again into a new folder.`);
  return job;
}

/** Write `job.json` atomically. */
export async function writeJob(dir: string, job: Job): Promise<void> {
  await saveFileAtomic(jobPaths(dir).job, `${JSON.stringify(job, null, 2)}\n`);
}
