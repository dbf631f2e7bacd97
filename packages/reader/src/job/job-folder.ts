import { resolve } from 'node:path';

import type { Chunk } from '@ddferry/mapfile';
import { type FrameEncodeOptions, type PiecePlan, type RescueId, type RescueKeys, type Secret, deriveRescueKeys } from '@ddferry/protocol';

import { CommonMap } from './common-map.js';
import { type Job, jobChunks, jobPaths, readJob } from './job.js';
import { LEDGER_FOLDER, Ledger } from './ledger.js';
import { SeqCounter } from './seq-counter.js';
import { Spool, spoolSeqs } from './spool.js';
import { type UsedOrder, loadUsedOrder } from './used-order.js';

/** A job folder opened for a run: the one owner of its counter, map, spool and ledger. */
export interface JobFolder {
  readonly dir: string;
  readonly job: Job;
  readonly paths: ReturnType<typeof jobPaths>;
  readonly chunks: readonly Chunk[];
  readonly plan: PiecePlan;
  /** The rescue's keys (from the shared secret): pieces are sealed with them, receipts checked. */
  readonly keys: RescueKeys;
  readonly seq: SeqCounter;
  readonly map: CommonMap;
  /** The local spool (`JOBDIR/spool`): LAN pieces, and stick pieces that did not fit. */
  readonly spool: Spool;
  /** Pieces carried on sticks (`JOBDIR/ledger`). */
  readonly ledger: Ledger;
  /** The used-space order (`plan --used-first`), if the job has one. */
  readonly used: UsedOrder | undefined;
  /** How pieces' frames are encoded when sealed (`--compress`): zero runs and zstd by default. */
  readonly compression: FrameEncodeOptions;
}

export interface OpenJobOptions {
  /** The shared secret (`--token-file`, or `JOBDIR/token`). */
  readonly secret: Secret;
  /** Bytes the local spool may hold. */
  readonly spoolBytes: number;
  /** The engine's sector size (the map is normalised with it). */
  readonly hardbs: number;
  readonly commandLine: string;
  readonly saveInterval: number;
  readonly syncInterval: number;
  /** How frames are encoded when sealed. Default zero runs and zstd level 3. */
  readonly compression?: FrameEncodeOptions | undefined;
}

/**
 * Open `JOBDIR` for a run: job.json, the counter (above every number the spool and the
 * ledger hold), common.map, the local spool and the ledger.
 * @throws ReaderError `ERR_JOB_NOT_FOUND`, `ERR_JOB_BAD`, `ERR_LEDGER_BAD`; MapfileError for a malformed common.map.
 */
export async function openJobFolder(jobDir: string, o: OpenJobOptions): Promise<JobFolder> {
  const dir = resolve(jobDir);
  const job = await readJob(dir);
  const paths = jobPaths(dir);
  const chunks = jobChunks(job);
  const plan: PiecePlan = { rescueId: job.rescueId as RescueId, sourceSize: job.sourceSize, sectorSize: job.sectorSize, chunks };
  const keys = deriveRescueKeys(o.secret, job.rescueId);
  const ledger = await Ledger.open(resolve(dir, LEDGER_FOLDER));
  const seq = await SeqCounter.open(paths.seq, [ledger.maxSeq, ...(await spoolSeqs(paths.spool))]);
  const compression = o.compression ?? {};
  const spool = await Spool.open({ dir: paths.spool, capacity: o.spoolBytes, plan, keys, compression }, seq);
  const map = await CommonMap.open({ path: paths.commonMap, sourceSize: job.sourceSize, hardbs: o.hardbs, commandLine: o.commandLine, saveInterval: o.saveInterval, syncInterval: o.syncInterval });
  if (spool.adopted.length > 0) {
    // pieces an interrupted run wrote without fsync, found whole and made durable: the map says so now (R1 held: + only once durable)
    map.markFinished(spool.adopted.flatMap((p) => p.extents));
    await map.saveNow();
  }
  const used = await loadUsedOrder(dir, job.usedOrder);
  return { dir, job, paths, chunks, plan, keys, seq, map, spool, ledger, used, compression };
}
