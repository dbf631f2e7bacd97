import { mkdir, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import {
  type FileSystemName, FILE_SIZE_LIMITS, MapfileStatus, SblockVector, chunkMapName, chunkSizeForMedium, formatChunkMap,
  formatMapfile, formatTimestamp, normalizeForRescue, Domain, planChunks,
} from '@ddferry/mapfile';
import { pathExists, readMapfile } from '@ddferry/mapfile/io';
import { makeRescueId, readTokenFile } from '@ddferry/protocol';

import { ReaderError } from '../errors.js';
import { fingerprintOf } from './fingerprint.js';
import { type Job, jobPaths, writeJob } from './job.js';
import { makeJobToken } from './token.js';
import type { SlowRange } from '../source/blocking-source.js';
import { openSource } from '../source/open-source.js';
import { saveFileAtomic } from '../durable-file.js';

export interface PlanJobOptions {
  readonly source: string;
  readonly jobDir: string;
  /** Bytes per chunk; or give `medium`. */
  readonly chunkSize?: number;
  /** A stick: capacity in bytes and its file system (file-size limit). */
  readonly medium?: { readonly capacity: number; readonly fs: FileSystemName };
  /** Sector size; default the source's logical sector size. */
  readonly sectorSize?: number;
  /** A GNU ddrescue test-mode map: simulate a failing disk over `source`. */
  readonly testMode?: string;
  /** Start from an existing GNU ddrescue mapfile of this source. */
  readonly fromMapfile?: string;
  /** A token file to use instead of a new `JOBDIR/token` (checked now). */
  readonly tokenFile?: string;
  /** With `testMode`: reads that block (a disk that answers in seconds). */
  readonly testSlowReads?: readonly SlowRange[];
  readonly commandLine: string;
}

/**
 * `ddferry-reader plan`: make a job folder for a new rescue: the job file (rescue id,
 * fingerprint, plan), `common.map` (from `fromMapfile` or all non-tried) and one domain
 * mapfile per chunk.
 * @throws ReaderError `ERR_JOB_EXISTS` if the folder already holds a job.
 */
export async function planJob(o: PlanJobOptions): Promise<Job> {
  const dir = resolve(o.jobDir);
  const paths = jobPaths(dir);
  if (await pathExists(paths.job)) {
    throw new ReaderError('ERR_JOB_EXISTS', paths.job, `${paths.job}: this folder already holds a job.`, { hint: `Resume it with 'ddferry-reader rescue ${o.jobDir} ...', or plan into a new folder.` });
  }
  const src = resolve(o.source);
  const testMode = o.testMode === undefined ? undefined : resolve(o.testMode);
  const { source } = await openSource(src, { testMap: testMode });
  try {
    const size = source.size;
    if (size <= 0) throw new ReaderError('ERR_SOURCE_OPEN', src, `${src}: the size of the source is unknown.`, { hint: 'Plan a block device or a regular file.' });
    const sectorSize = o.sectorSize ?? source.identity.logicalSectorSize;
    const chunkSize = o.chunkSize ?? chunkSizeForMedium({ capacity: o.medium!.capacity, maxFileSize: FILE_SIZE_LIMITS[o.medium!.fs], fileSystem: o.medium!.fs }, sectorSize);
    const chunks = planChunks({ sourceSize: size, sectorSize, chunkSize });
    const job: Job = {
      version: 1,
      rescueId: makeRescueId(),
      source: src,
      ...(testMode === undefined ? {} : { testMode }),
      ...(o.testSlowReads === undefined || o.testSlowReads.length === 0 ? {} : { testSlowReads: o.testSlowReads }),
      ...(o.tokenFile === undefined ? {} : { tokenFile: resolve(o.tokenFile) }),
      fingerprint: fingerprintOf(source, testMode !== undefined),
      sourceSize: size,
      sectorSize,
      chunkSize: chunks.length > 1 ? chunks[0]!.size : chunkSize,
      chunkCount: chunks.length,
      createdAt: new Date().toISOString(),
    };
    await mkdir(paths.chunks, { recursive: true });
    await mkdir(paths.spool, { recursive: true });
    const leftovers = (await readdir(paths.spool)).length;
    if (leftovers > 0) throw new ReaderError('ERR_JOB_EXISTS', paths.spool, `${paths.spool}: holds files from another job.`, { hint: 'Plan into a new folder.' });
    let blocks = new SblockVector(1);
    let state = { currentPos: 0, currentStatus: MapfileStatus.copying as MapfileStatus, currentPass: 1 };
    if (o.fromMapfile !== undefined) {
      const m = await readMapfile(o.fromMapfile, { file: o.fromMapfile });
      blocks = m.blocks;
      state = { currentPos: m.currentPos, currentStatus: m.currentStatus, currentPass: m.currentPass };
    }
    const norm = normalizeForRescue(blocks, { insize: size, hardbs: sectorSize, domain: Domain.fromOptions(0, size), file: o.fromMapfile });
    await saveFileAtomic(paths.commonMap, formatMapfile(
      { ...state, blocks: norm.blocks.compact() },
      { program: 'ddferry', commandLine: o.commandLine, startTime: formatTimestamp(new Date()), message: `Rescue ${job.rescueId}` },
    ));
    for (const c of chunks) await saveFileAtomic(join(paths.chunks, chunkMapName(c.index, chunks.length)), formatChunkMap(c, size, o.commandLine));
    if (o.tokenFile === undefined) await makeJobToken(dir);
    else await readTokenFile(o.tokenFile);
    await writeJob(dir, job);
    return job;
  } finally {
    source.close();
  }
}
