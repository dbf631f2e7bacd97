import { type RescueId, stickRescueParts } from '@ddferry/protocol';

import type { JobFolder } from '../job/job-folder.js';
import type { RescueProgress } from '../progress/progress.js';
import { formatBytes } from '../progress/units.js';
import type { DeltaRange } from '../run/delta-list.js';
import { completionMessage } from '../run/completion.js';
import { PieceBuilder } from '../run/piece-builder.js';
import { type RescueRequest, rescueIntoDestination } from '../run/rescue-run.js';
import { ReaderError, isReaderError } from '../errors.js';
import { ChunkFileWriter, layoutForFolder } from './chunk-files.js';
import { settleStick } from './settle.js';
import { type StickSpace, stickMargin, stickSealBytes } from './space.js';
import { StickDestination } from './stick-destination.js';
import { type StickFolder, openStickFolder } from './stick-folder.js';
import { StickSpool } from './stick-spool.js';
import { countTrip } from './trip-count.js';
import { BUNDLE_WRITER, type StickWriter } from './writer.js';

/** Exit status of a stick run that stopped because the stick is full: carry it to PC_B. */
export const EXIT_STICK_FULL = 4;

/** The formats `--format` takes. */
export type StickFormat = 'bundles' | 'ddrescue-chunks';

export interface StickTripOptions {
  readonly job: JobFolder;
  readonly request: RescueRequest;
  /** The stick's mount point. */
  readonly to: string;
  /** Default `bundles`. */
  readonly format?: StickFormat | undefined;
  /** A lost stick's id: its pieces not merged are reclaimed ('forgotten'). */
  readonly forgetStick?: string | undefined;
  /** The token file this run uses (PC_B needs a copy of it), for the messages. */
  readonly tokenFile?: string | undefined;
  /** Free space of the stick (tests simulate a capacity); default `statfs`. */
  readonly statStick?: ((dir: string) => Promise<StickSpace>) | undefined;
  /** The writer, instead of the one `format` names (tests inject faults). */
  readonly writer?: StickWriter | undefined;
  readonly progress: RescueProgress;
  readonly log: (line: string) => void;
  readonly signal: AbortSignal;
}

/** How a trip ended: an exit status, or a signal to re-raise. */
export type TripResult = { readonly status: number; readonly signal?: NodeJS.Signals };

/**
 * Move the pieces a LAN run left in the local spool onto the stick, oldest first, while
 * they fit (each: on the stick durably, then out of the spool). Stops at a signal.
 * @returns how many moved.
 */
async function moveSpoolToStick(o: StickTripOptions, stickSpool: StickSpool, readMax: number): Promise<number> {
  const { job } = o;
  const seqs = job.spool.seqs();
  if (seqs.length === 0) return 0;
  o.progress.phase = 'moving';
  let moved = 0;
  for (const seq of seqs) {
    if (o.signal.aborted) break;
    // the piece as sealed when spooled: a LAN run may have sent it already (its receipt lost), and the image
    // knows it by that header hash; sealed again it would be another piece under the same seq (ERR_PIECE_SEQ_CONFLICT)
    const { sealed, piece } = await job.spool.readBoth(seq);
    if (!stickSpool.fits({ pieces: 1, bytes: piece.data.length, ranges: piece.extents.length + piece.delta.length }, readMax)) break;
    try {
      await stickSpool.put(piece, sealed);
    } catch (err) {
      if (isReaderError(err) && err.code === 'ERR_STICK_FULL') break;
      throw err;
    }
    await job.spool.remove([seq]);
    ++moved;
  }
  const left = job.spool.count;
  o.log(`ddferry-reader: moved ${moved} piece(s) from ${job.paths.spool} onto the stick${left > 0 ? `; ${left} stay there for a later trip` : ''}.`);
  return moved;
}

/**
 * `ddferry-reader rescue JOBDIR --to DIR`: the stick is the destination. Start of each
 * trip: receipts applied (merged pieces freed, refused or missing ones given back to
 * `common.map`), pieces of the local spool moved onto the stick; then GNU ddrescue's
 * rescue (the run loop) until done, a signal, or the stick full.
 * @returns 0 done reading, 4 stick full (carry it to PC_B), 1 error, or a signal to re-raise.
 */
export async function stickTrip(o: StickTripOptions, stopSignal: () => NodeJS.Signals | null): Promise<TripResult> {
  const { job, log, progress } = o;
  const signalled = (): TripResult => {
    const s = stopSignal();
    return s ? { status: 1, signal: s } : { status: 1 };
  };
  const stick: StickFolder = await openStickFolder(o.to, job.job, o.statStick);
  const writer: StickWriter = o.writer ?? (o.format === 'ddrescue-chunks'
    ? new ChunkFileWriter({ rescueId: job.job.rescueId, sourceSize: job.job.sourceSize, chunkCount: job.chunks.length, chunkSize: job.job.chunkSize, layout: await layoutForFolder(stick.folder) })
    : BUNDLE_WRITER);
  const stickSpool = await StickSpool.open({
    folder: stick.folder, stickId: stick.stickId, ledger: job.ledger, writer, keys: job.keys, statStick: o.statStick, compression: job.compression,
  });
  if (stickSpool.space.total === 0) {
    log(`ddferry-reader: ${stick.root}: the file system does not tell its size (statfs gives 0 blocks): writing until the stick is full, with no room kept for PC_B's receipt; `
      + 'if the import on PC_B cannot write its receipt, it says what to delete on the stick.');
  }
  const trip = await countTrip(job.dir);
  progress.stick = () => ({
    trip, freeBytes: stickSpool.space.total === 0 ? null : stickSpool.space.free, bundles: stickSpool.count,
    rescuedBytes: stickSpool.writtenRawBytes, carriedBytes: stickSpool.writtenBytes, ratio: stickSpool.ratio,
    usableBytes: stickSpool.space.total === 0 ? null : Math.max(0, stickSpool.space.total - stickMargin(stickSpool.space.total)),
    roomBytes: stickSpool.space.total === 0 ? null : Math.max(0, stickSpool.space.free - stickMargin(stickSpool.space.total)),
  });
  progress.carried = () => ({ rescuedBytes: stickSpool.writtenRawBytes, carriedBytes: stickSpool.writtenBytes });
  progress.spool = { get count() { return stickSpool.count; }, get bytes() { return stickSpool.bytes; }, get capacity() { return stickSpool.capacity; } };

  // statuses of reclaimed pieces, shipped again in a piece of their own
  const reship = async (ranges: readonly DeltaRange[]): Promise<void> => {
    const b = new PieceBuilder({ rescueId: job.job.rescueId, chunks: job.chunks, nextSeq: () => job.seq.next() });
    for (const d of ranges) b.statusChanged(d.pos, d.size, d.status);
    for (const piece of b.seal()) {
      try {
        await stickSpool.put(piece);
      } catch (err) {
        if (!isReaderError(err) || (err.code !== 'ERR_STICK_FULL' && err.code !== 'ERR_STICK_WRITE')) throw err;
        await job.spool.put(piece);
      }
    }
  };
  if (!stick.isNew || o.forgetStick !== undefined) await settleStick({ job, stick, stickSpool, reship, log, to: o.to, forget: o.forgetStick });
  const elsewhere = new Map<string, number>();
  for (const x of job.ledger.entries()) if (x.stickId !== stick.stickId) elsewhere.set(x.stickId, (elsewhere.get(x.stickId) ?? 0) + 1);
  for (const [id, n] of elsewhere) log(`ddferry-reader: ${n} piece(s) are on stick ${id}: import it on PC_B and bring it back here to free them (if that stick is lost or was wiped: --forget-stick ${id} reads them again).`);

  const readMax = o.request.options.cluster * o.request.options.hardbs;
  await moveSpoolToStick(o, stickSpool, readMax);
  if (o.signal.aborted) return signalled();

  // the commands run on PC_B: its paths are named by what they are, never by this machine's paths
  const pcb = o.format === 'ddrescue-chunks'
    ? `   cd STICK/${stickRescueParts(job.job.rescueId as RescueId).join('/')} && sh ddrescue-commands.sh IMAGE     (on PC_B; STICK: where the stick is mounted there, IMAGE: the image file there; see DDRESCUE-COMMANDS.txt)\n`
    : `   ddferry-assembler import STICK IMAGE --token-file TOKEN     (on PC_B; STICK: where the stick is mounted there, IMAGE: the image file there, TOKEN: PC_B's copy of ${o.tokenFile ?? 'this job\'s token'} from here)\n`;
  const tellTrip = (headline: string): void => {
    const kept = job.spool.count > 0 ? ` ${job.spool.count} more piece(s) read on this trip wait in ${job.paths.spool} for the next stick trip.` : '';
    log(`${headline}: ${stickSpool.count} piece(s) (${formatBytes(stickSpool.bytes)}) wait in ${stick.folder}.${kept} Carry it to PC_B and run:\n${pcb}`
      + 'then bring it back and run the same command again here.');
  };
  const full = (): TripResult => {
    tellTrip(`ddferry-reader: The stick ${o.to} is full`);
    return { status: EXIT_STICK_FULL };
  };
  if (stickSpool.failure && !stickSpool.full) throw stickSpool.failure;
  if (stickSpool.full || job.spool.count > 0 || !stickSpool.fits({ pieces: 0, bytes: 0, ranges: 0 }, readMax)) {
    if (stickSpool.count > 0) return full();
    throw new ReaderError('ERR_STICK_FULL', stick.root, `${stick.root} has ${formatBytes(stickSpool.space.free)} free: not enough for one piece and the margin the stick keeps.`, {
      hint: 'Free space on the stick or use a bigger one, then run the same command again.',
    });
  }

  progress.phase = 'starting';
  const dest = new StickDestination(stickSpool, job.spool, o.signal);
  const end = await rescueIntoDestination({
    job, request: o.request, destination: dest, sealBytes: stickSealBytes(stickSpool.space.total), sealMillis: 60_000, progress, log, signal: o.signal,
  });
  if (dest.failure) {
    log(`ddferry-reader: ${dest.failure.code}: ${dest.failure.message} ${dest.failure.hint}`.trimEnd());
    return { status: 1 };
  }
  if (end.kind === 'aborted') return signalled();
  if (dest.fullError) log(`ddferry-reader: ${dest.fullError.code}: ${dest.fullError.message}`);
  if (end.kind === 'full') return full();
  if (end.outcome.finalMessage) log(`ddferry-reader: ${end.outcome.finalMessage}`);
  if (end.outcome.status !== 0) return { status: end.outcome.status };
  const waiting = [...elsewhere.values()].reduce((a, b) => a + b, 0);
  if (stickSpool.count > 0 || job.spool.count > 0) {
    tellTrip(`ddferry-reader: Everything is read; the stick ${o.to} still has to be imported`);
  } else if (waiting > 0) {
    log(`ddferry-reader: Everything is read; ${waiting} piece(s) on other sticks still have to be imported on PC_B.`);
  } else {
    log(completionMessage(job.map, job.job.rescueId));
  }
  return { status: 0 };
}
