import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { BlockStatus, Domain, type MapfileStatus, StatusMap, formatTimestamp, normalizeForRescue } from '@ddferry/mapfile';
import { readMapfile, removeStaleTemporaries } from '@ddferry/mapfile/io';
import {
  type RescueKeys, STICK_RESCUE_FILE, type StickRescue, deriveRescueKeys, describeFingerprint, formatStickRescue, parseStickRescue, readTokenFile,
  sameDevice, stickRescueParts,
} from '@ddferry/protocol';

import { DdrescueReporter } from '../ddrescue/reporter.js';
import { interruptibleSleep, signalExitStatus } from '../ddrescue/run.js';
import type { DdrescueCommand } from '../ddrescue/options.js';
import { type RescueOutcome, doRescue } from '../engine/do-rescue.js';
import { MapfileUpdater } from '../engine/mapfile-updater.js';
import { Rescuebook } from '../engine/rescuebook.js';
import { ReaderError, errnoOf } from '../errors.js';
import { assertPlannedDevice } from '../job/check-device.js';
import { type Job, jobChunks, jobPaths, readJob } from '../job/job.js';
import { openSource } from '../job/open-source.js';
import { allocAligned } from '../source/aligned-buffer.js';
import { ChunkFileWriter, layoutForFolder, readChunkFileReceipts } from './chunk-files.js';
import { LEDGER_FOLDER, Ledger } from './ledger.js';
import { PieceSink } from './piece-sink.js';
import type { ProgressMode } from './progress-display.js';
import { type RescueProgress, openRescueProgress } from './progress.js';
import { Spool } from './spool.js';
import { readStickReceipts, reclaimRanges, settle } from './stick-receipts.js';
import { type StickSpace, statStick, stickMargin, stickSealBytes } from './stick-space.js';
import { StickSpool } from './stick-spool.js';
import { BUNDLE_WRITER, type StickWriter, syncFolder, writeFileDurably } from './stick-writer.js';
import { countTrip } from './trip-count.js';

/** Exit status of a stick run that stopped because the stick is full: carry it to PC_B. */
export const EXIT_STICK_FULL = 4;

/** The formats `--format` takes. */
export type StickFormat = 'bundles' | 'ddrescue-chunks';

export interface StickTripOptions {
  readonly jobDir: string;
  /** The stick's mount point. */
  readonly to: string;
  /** Default `bundles`. */
  readonly format?: StickFormat;
  readonly source?: string;
  readonly chunkAtATime?: boolean;
  readonly engine: DdrescueCommand;
  readonly commandLine: string;
  /** Free space of the stick (tests simulate a capacity); default `statfs`. */
  readonly statStick?: (dir: string) => Promise<StickSpace>;
  /** A lost stick's id: its pieces not merged are reclaimed ('forgotten'). */
  readonly forgetStick?: string;
  /** The shared token's file: bundles are sealed, and receipts checked, with the rescue's keys. Required. */
  readonly tokenFile?: string;
  /** The writer, instead of the one `format` names (tests inject faults). */
  readonly writer?: StickWriter;
  /** The progress display (default: lines every 10 s on stderr); see progress-display.ts. */
  readonly progress?: { readonly mode: ProgressMode; readonly interval?: number | undefined };
}

export interface StickTripIo {
  readonly screen: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Where `--json` progress goes. */
  readonly stdout?: (text: string) => void;
  readonly signal: () => NodeJS.Signals | null;
}

const MIB = 1 << 20;

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(bytes < 10 * MIB ? 1 : 0)} MiB`;
}

/** The rescue folder of a stick, checked against the job (or made, with a new stick id). */
interface StickFolder {
  readonly root: string;
  readonly folder: string;
  readonly stickId: string;
  /** True if this run made the folder: nothing to settle. */
  readonly isNew: boolean;
}

function describeStickRescue(r: Pick<StickRescue, 'rescueId' | 'fingerprint' | 'sourceSize' | 'sectorSize' | 'chunkSize'>): string {
  return `rescue ${r.rescueId}: ${describeFingerprint(r.fingerprint)}; plan: ${r.sourceSize} bytes, sectors of ${r.sectorSize}, chunks of ${r.chunkSize}`;
}

/**
 * Find or make `ROOT/ddferry/<rescue-id>/rescue.json`.
 * @throws ReaderError `ERR_STICK_NOT_A_FOLDER`, `ERR_STICK_WRONG_RESCUE`; ProtocolError `ERR_STICK_BAD_RESCUE_FILE`.
 */
export async function openStickFolder(to: string, job: Job, stat0: (dir: string) => Promise<StickSpace> = statStick): Promise<StickFolder> {
  const root = resolve(to);
  let isDir = false;
  try {
    isDir = (await stat(root)).isDirectory();
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'ENOTDIR') throw err;
  }
  if (!isDir) {
    throw new ReaderError('ERR_STICK_NOT_A_FOLDER', root, `${root} is not a folder. Mount the stick and give its mount point (e.g. --to /media/usb), or give ws://HOST:PORT to ship over the LAN.`);
  }
  const folder = join(root, ...stickRescueParts(job.rescueId as StickRescue['rescueId']));
  const file = join(folder, STICK_RESCUE_FILE);
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  const ours = { rescueId: job.rescueId as StickRescue['rescueId'], fingerprint: job.fingerprint, sourceSize: job.sourceSize, sectorSize: job.sectorSize, chunkSize: job.chunkSize };
  if (text !== undefined) {
    const r = parseStickRescue(text, file);
    if (r.rescueId !== job.rescueId || r.sourceSize !== job.sourceSize || r.sectorSize !== job.sectorSize || r.chunkSize !== job.chunkSize || !sameDevice(r.fingerprint, job.fingerprint)) {
      throw new ReaderError('ERR_STICK_WRONG_RESCUE', file, `${file} belongs to another rescue.\n  this job:  ${describeStickRescue(ours)}\n  the stick: ${describeStickRescue(r)}\n`
        + 'Use another stick (or another folder on it), or run the job that made this folder.');
    }
    return { root, folder, stickId: r.stickId, isNew: false };
  }
  // fusefat breaks a folder entry made on a full stick: make the folder only with room to spare
  const space = await stat0(root);
  if (space.total > 0 && space.free < stickMargin(space.total) + 64 * 1024) {
    throw new ReaderError('ERR_STICK_FULL', root, `${root} has ${mib(space.free)} free: not enough to start a rescue folder on it (the stick keeps ${mib(stickMargin(space.total))} free). Free space on the stick or use a bigger one, then run the same command again.`);
  }
  await mkdir(folder, { recursive: true });
  const stickId = randomBytes(8).toString('hex');
  await writeFileDurably(folder, STICK_RESCUE_FILE, async (out) => {
    await new Promise<void>((res, rej) => out.write(formatStickRescue({ ...ours, stickId }), (err) => (err ? rej(err) : res())));
  });
  await syncFolder(join(root, stickRescueParts(ours.rescueId)[0]));
  return { root, folder, stickId, isNew: true };
}

/** Set `[pos, pos+size)` to `status` in `map` block by block, where `when` holds. */
function setStatus(map: StatusMap, domain: Domain, pos: number, size: number, status: BlockStatus, when: (st: BlockStatus) => boolean): void {
  let p = pos;
  const end = Math.min(pos + size, domain.end);
  while (p < end) {
    const b = map.sblockAt(p);
    if (!b) return;
    const bEnd = Math.min(b.pos + b.size, end);
    if (when(b.status) && domain.includes({ pos: p, size: bEnd - p })) map.changeChunkStatus({ pos: p, size: bEnd - p }, status, domain);
    p = bEnd;
  }
}

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

/**
 * `ddferry-reader rescue JOBDIR --to DIR`: the stick is the spool. Start of each run:
 * receipts applied (merged pieces freed, refused or missing ones given back to
 * `common.map`), pieces of the local spool moved onto the stick; then GNU ddrescue's
 * rescue until done, a signal, or the stick full (checked before every read).
 * @returns 0 done reading, 4 stick full (carry it to PC_B), 1 error, or a signal to re-raise.
 */
export async function rescueStickJob(o: StickTripOptions, io: StickTripIo): Promise<{ status: number; signal?: NodeJS.Signals }> {
  const hook: { progress?: RescueProgress } = {};
  try {
    const result = await stickTrip(o, io, hook);
    // a full stick ends the trip as planned
    hook.progress?.finish(result.signal ? 'interrupted' : result.status === 0 || result.status === EXIT_STICK_FULL ? 'finished' : 'failed');
    return result;
  } catch (err) {
    throw codedSystemError(err, resolve(o.to), resolve(o.jobDir));
  } finally {
    hook.progress?.finish('failed');
  }
}

const FULL_CODES = new Set(['ENOSPC', 'EFBIG', 'EDQUOT', 'EPERM']);

/**
 * A system error (ENOSPC, EIO...) the trip did not expect, as a coded error naming its
 * file: on the stick `ERR_STICK_FULL` (no space; fusefat says EPERM) or `ERR_STICK_WRITE`,
 * elsewhere `ERR_SPOOL`. Coded errors pass unchanged.
 */
function codedSystemError(err: unknown, root: string, jobDir: string): unknown {
  const code = errnoOf(err);
  if (code === undefined || code.startsWith('ERR_')) return err;
  const path = (err as { path?: unknown }).path;
  const file = typeof path === 'string' ? path : root;
  const what = (err as Error).message;
  if (file.startsWith(root)) {
    return FULL_CODES.has(code)
      ? new ReaderError('ERR_STICK_FULL', file, `${file}: the stick is full (${what}). Free space on it or use another stick, then run the same command again.`, { cause: err })
      : new ReaderError('ERR_STICK_WRITE', file, `${file}: ${what}. Check the stick is plugged in and mounted read-write, then run the same command again.`, { cause: err });
  }
  return new ReaderError('ERR_SPOOL', file, `${file}: ${what}. ${file.startsWith(jobDir) ? 'Free space on PC_A\'s disk holding the job folder' : 'Fix the cause'}, then run the same command again.`, { cause: err });
}

/** `rescueStickJob`, with the progress display it opens put in `hook`. */
async function stickTrip(o: StickTripOptions, io: StickTripIo, hook: { progress?: RescueProgress }): Promise<{ status: number; signal?: NodeJS.Signals }> {
  const dir = resolve(o.jobDir);
  const job = await readJob(dir);
  const paths = jobPaths(dir);
  const chunks = jobChunks(job);
  const e = o.engine.rescue;
  const log = (line: string): void => (hook.progress ? hook.progress.log(line) : io.stderr(`${line}\n`));
  if (o.tokenFile === undefined) {
    throw new ReaderError('ERR_STICK_NO_TOKEN', '--token-file', 'Pieces on a stick are sealed with the shared token, so that nobody without it can read or forge them: give --token-file FILE (chmod 600), and the same file to ddferry-assembler import on PC_B.');
  }
  const keys: RescueKeys = deriveRescueKeys(await readTokenFile(o.tokenFile), job.rescueId);
  const stick = await openStickFolder(o.to, job, o.statStick);
  const { source, testSource } = await openSource(o.source === undefined ? job.source : resolve(o.source), { direct: e.directIn, testMap: job.testMode });
  try {
    assertPlannedDevice(job, source);
    const plan = { rescueId: job.rescueId, sourceSize: job.sourceSize, sectorSize: job.sectorSize, chunks };
    const ledger = await Ledger.open(join(dir, LEDGER_FOLDER));
    const local = await Spool.open({ dir: paths.spool, seqFile: paths.seq, capacity: Number.MAX_SAFE_INTEGER, plan, keys });
    const localSeqs = local.seqs();
    const writer: StickWriter = o.writer ?? (o.format === 'ddrescue-chunks'
      ? new ChunkFileWriter({ rescueId: job.rescueId, sourceSize: job.sourceSize, chunkCount: chunks.length, chunkSize: job.chunkSize, layout: await layoutForFolder(stick.folder) })
      : BUNDLE_WRITER);
    const spool = await StickSpool.open({
      folder: stick.folder, stickId: stick.stickId, ledger, seqFile: paths.seq, seqFloor: localSeqs[localSeqs.length - 1] ?? 0, writer, keys, statStick: o.statStick,
    });

    // common.map
    await removeStaleTemporaries(paths.commonMap);
    const m = await readMapfile(paths.commonMap, { file: paths.commonMap });
    const whole = Domain.fromOptions(0, job.sourceSize);
    const map = new StatusMap(normalizeForRescue(m.blocks, { insize: job.sourceSize, hardbs: e.hardbs, domain: whole, file: paths.commonMap }).blocks);
    let state: { currentPos: number; currentStatus: MapfileStatus; currentPass: number } = { currentPos: m.currentPos, currentStatus: m.currentStatus, currentPass: m.currentPass };
    const startSeconds = Math.floor(Date.now() / 1000);
    const updater = new MapfileUpdater({
      path: paths.commonMap, commandLine: o.commandLine, startTime: formatTimestamp(new Date(startSeconds * 1000)),
      saveInterval: e.mapfileSaveInterval, syncInterval: e.mapfileSyncInterval, clock: () => Math.floor(Date.now() / 1000),
    });
    const saveMap = async (blocks: StatusMap, message: string): Promise<void> => {
      if (!(await updater.write({ ...state, message, blocks }))) {
        throw new ReaderError('ERR_SPOOL', paths.commonMap, `ERR_MAPFILE_WRITE: ${paths.commonMap}: ${updater.lastError?.message ?? 'the save failed'} Free space on PC_A, then run the same command again.`);
      }
    };
    if (spool.space.total === 0) log(`ddferry-reader: ${stick.root}: the file system does not tell its free space (statfs gives 0 blocks; FAT with 512-byte clusters?): writing until the stick is full.`);
    const sink = new PieceSink({ rescueId: job.rescueId, chunks, spool, sealBytes: stickSealBytes(spool.space.total), sealMillis: 60_000 });
    hook.progress = openRescueProgress(o, io, { sourceSize: job.sourceSize, chunks, spool });
    const trip = await countTrip(dir);
    hook.progress.stick = () => ({ trip, freeBytes: spool.space.total === 0 ? null : spool.space.free, bundles: spool.count });
    hook.progress.start();

    // what PC_B did with the last trip's pieces
    if (!stick.isNew || o.forgetStick !== undefined) await settleStick({ stick, ledger, spool, sink, map, whole, keys, saveMap, log, to: o.to, forget: o.forgetStick });
    const elsewhere = new Map<string, number>();
    for (const x of ledger.entries()) if (x.stickId !== stick.stickId) elsewhere.set(x.stickId, (elsewhere.get(x.stickId) ?? 0) + 1);
    for (const [id, n] of elsewhere) log(`ddferry-reader: ${n} piece(s) are on stick ${id}: import it on PC_B and bring it back here to free them (if that stick is lost or was wiped: --forget-stick ${id} reads them again).`);

    // pieces a LAN run left in the local spool go onto the stick
    const readMax = e.cluster * e.hardbs;
    let moved = 0;
    for (const seq of localSeqs) {
      const piece = await local.read(seq);
      if (!spool.fits({ pieces: 1, bytes: piece.data.length, ranges: piece.extents.length + piece.delta.length }, 0)) break;
      try {
        await spool.put(piece);
      } catch (err) {
        if ((err as ReaderError).code === 'ERR_STICK_FULL') break;
        throw err;
      }
      local.notePeerSeqs(spool.lastSeq);
      await local.remove([seq]);
      ++moved;
    }
    if (moved > 0) log(`ddferry-reader: moved ${moved} piece(s) from ${paths.spool} onto the stick.`);

    const pcb = o.format === 'ddrescue-chunks'
      ? `   cd ${stick.folder} && sh ddrescue-commands.sh /path/to/image     (PC_B; see DDRESCUE-COMMANDS.txt there)\n`
      : `   ddferry-assembler import ${o.to} /path/to/image --token-file TOKEN     (PC_B; TOKEN: a copy of ${o.tokenFile})\n`;
    const tellTrip = (headline: string): void => {
      log(`${headline}: ${spool.count} piece(s) (${mib(spool.bytes)}) wait in ${stick.folder}. Carry it to PC_B and run:\n${pcb}`
        + 'then bring it back and run the same command again here.');
    };
    const full = (): { status: number } => {
      tellTrip(`ddferry-reader: The stick ${o.to} is full`);
      return { status: EXIT_STICK_FULL };
    };
    if (spool.failure && !spool.full) throw spool.failure;
    if (spool.full || local.count > 0 || !spool.fits(sink.pending(), readMax)) {
      if (spool.count > 0) return full();
      throw new ReaderError('ERR_STICK_FULL', stick.root, `${stick.root} has ${mib(spool.space.free)} free: not enough for one piece and the margin the stick keeps. Free space on the stick or use a bigger one, then run the same command again.`);
    }

    // ddrescue's order over the whole disk, or the manual recipe: `ddrescue -m chunkNNNN.map` chunk after chunk
    let stickFull = false;
    const iobuf = allocAligned(e.cluster * e.hardbs + e.hardbs, Math.max(4096, e.hardbs));
    const domains = o.chunkAtATime ? chunks.map((c) => Domain.fromOptions(c.pos, c.size)) : [whole];
    let blocks = map.toVector();
    let outcome: RescueOutcome = { status: 0, interrupted: false, messages: [], finalMessage: '' };
    for (const domain of domains) {
      const norm = normalizeForRescue(blocks, { insize: job.sourceSize, hardbs: e.hardbs, domain, file: paths.commonMap });
      // the progress display draws the status block (with the ddferry lines); the reporter keeps the logs
      const reporter = new DdrescueReporter({ verbosity: -1, binaryPrefixes: o.engine.binaryPrefixes, write: io.screen });
      const rb = new Rescuebook({
        source, testSource, sink, reporter: hook.progress.wrap(reporter), map: new StatusMap(norm.blocks), domain: norm.domain, insize: job.sourceSize, offset: 0,
        ...state, mapfile: updater, options: e, iobuf,
        clock: () => Math.floor(Date.now() / 1000), startTime: startSeconds,
        interrupted: () => {
          if (io.signal() !== null) return true;
          if (!stickFull && !spool.fits(sink.pending(), readMax)) stickFull = true;
          return stickFull;
        },
        sleep: (s) => interruptibleSleep(s, io.signal),
      });
      outcome = await doRescue(rb);
      state = { currentPos: rb.currentPos, currentStatus: rb.currentStatus, currentPass: rb.currentPass };
      if (sink.failure) {
        // pieces the stick could not take: their `+` goes back to non-tried before the map is saved (R1)
        for (const b of sink.lost) setStatus(rb.map, whole, b.pos, b.size, BlockStatus.nonTried, (st) => st === BlockStatus.finished);
        await saveMap(rb.map, rb.currentMessage);
        log(`ddferry-reader: ${(sink.failure as ReaderError).code ?? 'ERR_STICK_WRITE'}: ${sink.failure.message}`);
        if (spool.full) return full();
        return { status: 1 };
      }
      if (outcome.finalMessage) log(`ddferry-reader: ${outcome.finalMessage}`);
      if (updater.lastError) log(`ddferry-reader: ERR_MAPFILE_WRITE: ${paths.commonMap}: ${updater.lastError.message}`);
      for (const w of reporter.close()) log(`ddferry-reader: ${w}`);
      if (outcome.status !== 0 || outcome.interrupted) break;
      blocks = rb.map.toVector();
    }
    const sig = io.signal();
    if (outcome.interrupted && sig) return { status: signalExitStatus(sig), signal: sig };
    if (outcome.interrupted && stickFull) return full();
    if (outcome.status !== 0) return { status: outcome.status };
    const waiting = [...elsewhere.values()].reduce((a, b) => a + b, 0);
    if (spool.count > 0) {
      tellTrip(`ddferry-reader: Everything is read; the stick ${o.to} still has to be imported`);
    } else if (waiting > 0) {
      log(`ddferry-reader: Everything is read; ${waiting} piece(s) on other sticks still have to be imported on PC_B.`);
    } else {
      log(`ddferry-reader: The rescue is complete: PC_B holds every piece; nothing is left to read or carry (${job.rescueId}).`);
    }
    return { status: 0 };
  } finally {
    source.close();
  }
}

interface SettleContext {
  readonly stick: StickFolder;
  readonly ledger: Ledger;
  readonly spool: StickSpool;
  readonly sink: PieceSink;
  readonly map: StatusMap;
  readonly whole: Domain;
  readonly keys: RescueKeys;
  readonly saveMap: (map: StatusMap, message: string) => Promise<void>;
  readonly log: (line: string) => void;
  readonly to: string;
  readonly forget: string | undefined;
}

/**
 * Apply the receipts of the stick, in an order that survives kill -9 at any point:
 * the seq counter saved; reclaimed ranges set back in `common.map` and saved; their other
 * statuses sealed into a new piece (durable); only then files and ledger entries deleted,
 * then loose refused files, then the receipts.
 */
async function settleStick(c: SettleContext): Promise<void> {
  const { folder } = c.stick;
  // temporaries of writes cut by a crash (never complete files)
  for (const d of await readdir(folder, { withFileTypes: true })) {
    if (d.isFile() && d.name.startsWith('.') && d.name.endsWith('.tmp')) await rm(join(folder, d.name), { force: true });
  }
  const receipts = await readStickReceipts(folder, c.keys, c.log);
  const doneFiles = await readChunkFileReceipts(folder);
  const files = await folderFiles(folder);
  const s = settle(c.ledger.entries(), { ...receipts, doneFiles }, c.stick.stickId, new Set(files.keys()), c.forget);
  for (const seq of receipts.merged.keys()) c.spool.noteSeqs(seq);
  if (s.merged.length + s.reclaimed.length > 0) await c.spool.saveSeq();
  let reclaimedBytes = 0;
  if (s.reclaimed.length > 0) {
    const r = reclaimRanges(c.map, c.whole, s.reclaimed.map((x) => x.entry));
    reclaimedBytes = r.bytes;
    await c.saveMap(c.map, 'reclaimed');
    for (const d of r.reship) c.sink.statusChanged(d.pos, d.size, d.status);
    try {
      await c.sink.sync();
    } catch (err) {
      // the stick is full or gone: the new piece's ledger entry holds these statuses, the next run ships them
      if (!(err instanceof ReaderError)) throw err;
      c.sink.failure = null;
    }
  }
  const ours = [...s.merged.filter((x) => x.stickId === c.stick.stickId), ...s.reclaimed.map((x) => x.entry)];
  let freed = await unlinkAll(folder, ours.flatMap((x) => x.files), files);
  await c.ledger.remove([...s.merged, ...s.reclaimed.map((x) => x.entry)].map((x) => x.seq));
  freed += await unlinkAll(folder, s.stray, files);
  await unlinkAll(folder, receipts.files, new Map());
  await syncFolder(folder);
  if (freed > 0) await c.spool.writer.refreshCommands?.(folder);
  await c.spool.refresh();
  const reasons = new Map<string, number>();
  for (const x of s.reclaimed) {
    const key = x.reason === 'missing' || x.reason === 'forgotten' ? x.reason : x.reason.split(':')[0]!;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  const why = [...reasons].map(([k, n]) => `${n} ${k}`).join(', ');
  c.log(`ddferry-reader: stick ${c.to}: merged ${s.merged.length} piece(s), reclaimed ${s.reclaimed.length}${why ? ` (${why}; ${mib(reclaimedBytes)} to read again)` : ''}, freed ${mib(freed)}; ${s.pending.length} piece(s) still wait for an import.`);
  for (const x of s.reclaimed) if (x.reason !== 'missing' && x.reason !== 'forgotten') c.log(`ddferry-reader: piece ${x.entry.seq} (${x.entry.files.join(', ')}) was ${x.reason}`);
}
