import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { STICK_RECEIPTS_FOLDER, STICK_RESCUE_FILE } from '@ddferry/protocol';

import { syncFolder } from '../durable-file.js';
import { errnoOf } from '../errors.js';
import type { JobFolder } from '../job/job-folder.js';
import { formatBytes } from '../progress/units.js';
import type { DeltaRange } from '../run/delta-list.js';
import { readChunkFileReceipts } from './chunk-files.js';
import { readStickReceipts, reshipRanges, settle } from './receipts.js';
import type { StickFolder } from './stick-folder.js';
import type { StickSpool } from './stick-spool.js';

/** Bytes a file takes: its size, or less when it is sparse. */
export function spaceOf(s: { size: number; blocks: number }): number {
  return Math.min(s.size, s.blocks * 512);
}

/** Regular files of the rescue folder (not rescue.json, not folders), with the bytes each takes. */
async function folderFiles(folder: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const d of await readdir(folder, { withFileTypes: true })) {
    if (!d.isFile() || d.name === STICK_RESCUE_FILE) continue;
    out.set(d.name, await stat(join(folder, d.name)).then(spaceOf, () => 0));
  }
  return out;
}

async function unlinkAll(folder: string, names: Iterable<string>, sizes: ReadonlyMap<string, number>): Promise<number> {
  let freed = 0;
  for (const n of names) {
    try {
      await rm(join(folder, n));
      freed += sizes.get(n) ?? 0;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  }
  return freed;
}

export interface SettleContext {
  readonly job: JobFolder;
  readonly stick: StickFolder;
  readonly stickSpool: StickSpool;
  /** Ship these statuses again, in a piece of their own (made durable before anything is deleted). */
  readonly reship: (ranges: readonly DeltaRange[]) => Promise<void>;
  readonly log: (line: string) => void;
  readonly to: string;
  /** A lost stick's id: its pieces not merged are reclaimed. */
  readonly forget: string | undefined;
}

/**
 * Apply the receipts of the stick, in an order that survives kill -9 at any point: the
 * counter saved; what the image holds marked rescued in `common.map` (never read again);
 * reclaimed ranges set back and saved; their other statuses shipped again in a new piece
 * (durable); only then files and ledger entries deleted, then loose refused files, then
 * the receipts.
 */
export async function settleStick(c: SettleContext): Promise<void> {
  const { folder } = c.stick;
  const { job } = c;
  // temporaries of writes cut by a crash (never complete files)
  for (const d of await readdir(folder, { withFileTypes: true })) {
    if (d.isFile() && d.name.startsWith('.') && d.name.endsWith('.tmp')) await rm(join(folder, d.name), { force: true });
  }
  const receipts = await readStickReceipts(folder, job.keys, c.log);
  // temporaries of receipts whose write was cut on PC_B (kill -9 of an import); `receipts` is a real
  // folder here (readStickReceipts refuses a link)
  const receiptsDir = join(folder, STICK_RECEIPTS_FOLDER);
  for (const d of await readdir(receiptsDir, { withFileTypes: true }).catch(() => [])) {
    if (d.isFile() && d.name.startsWith('.receipt-') && d.name.endsWith('.tmp')) await rm(join(receiptsDir, d.name), { force: true });
  }
  const doneFiles = await readChunkFileReceipts(folder);
  const files = await folderFiles(folder);
  const s = settle(job.ledger.entries(), { ...receipts, doneFiles }, c.stick.stickId, new Set(files.keys()), c.forget, (seq) => job.spool.has(seq));
  if (s.merged.length + s.reclaimed.length + s.local.length > 0) await job.seq.save();
  // the image holds the merged pieces: their data is never read again
  job.map.markFinished(s.merged.flatMap((e) => e.delta.filter((d) => d.status === '+')));
  let reclaimedBytes = 0;
  if (s.reclaimed.length > 0) {
    const entries = s.reclaimed.map((x) => x.entry);
    reclaimedBytes = job.map.reclaim(entries.flatMap((e) => e.delta.filter((d) => d.status === '+')));
    await job.map.saveNow();
    const reship = reshipRanges(job.map.map, entries);
    if (reship.length > 0) await c.reship(reship);
  } else if (s.merged.length > 0) {
    await job.map.saveNow();
  }
  const ours = [...s.merged.filter((x) => x.stickId === c.stick.stickId), ...s.reclaimed.map((x) => x.entry)];
  let freed = await unlinkAll(folder, ours.flatMap((x) => x.files), files);
  await job.ledger.remove([...s.merged, ...s.reclaimed.map((x) => x.entry), ...s.local].map((x) => x.seq));
  freed += await unlinkAll(folder, s.stray, files);
  await unlinkAll(folder, receipts.files, new Map());
  await syncFolder(folder);
  if (freed > 0) await c.stickSpool.writer.refreshCommands?.(folder);
  await c.stickSpool.refresh();
  const reasons = new Map<string, number>();
  for (const x of s.reclaimed) {
    const key = x.reason === 'missing' || x.reason === 'forgotten' ? x.reason : x.reason.split(':')[0]!;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  const why = [...reasons].map(([k, n]) => `${n} ${k}`).join(', ');
  c.log(`ddferry-reader: stick ${c.to}: merged ${s.merged.length} piece(s), reclaimed ${s.reclaimed.length}${why ? ` (${why}; ${formatBytes(reclaimedBytes)} to read again)` : ''}, freed ${formatBytes(freed)}; ${s.pending.length} piece(s) still wait for an import.`);
  for (const x of s.reclaimed) if (x.reason !== 'missing' && x.reason !== 'forgotten') c.log(`ddferry-reader: piece ${x.entry.seq} (${x.entry.files.join(', ')}) was ${x.reason}`);
}
