import { resolve } from 'node:path';

import { BlockStatus, Domain, StatusMap, formatTimestamp, normalizeForRescue } from '@ddferry/mapfile';
import { readMapfile, removeStaleTemporaries } from '@ddferry/mapfile/io';
import { deriveRescueKeys, readTokenFile } from '@ddferry/protocol';

import { DdrescueReporter } from '../ddrescue/reporter.js';
import { interruptibleSleep, signalExitStatus } from '../ddrescue/run.js';
import type { DdrescueCommand } from '../ddrescue/options.js';
import { type RescueOutcome, doRescue } from '../engine/do-rescue.js';
import { MapfileUpdater } from '../engine/mapfile-updater.js';
import { Rescuebook } from '../engine/rescuebook.js';
import { ReaderError } from '../errors.js';
import { assertPlannedDevice } from '../job/check-device.js';
import { jobChunks, jobPaths, readJob } from '../job/job.js';
import { openSource } from '../job/open-source.js';
import { allocAligned } from '../source/aligned-buffer.js';
import { openLanLedger } from './lan-ledger.js';
import { PieceSink } from './piece-sink.js';
import type { ProgressMode } from './progress-display.js';
import { type RescueProgress, openRescueProgress } from './progress.js';
import { Spool } from './spool.js';
import { statusMessage } from './status-report.js';
import { type StickFormat, type StickTripIo, rescueStickJob } from './stick-trip.js';
import { WsShipper } from './ws-shipper.js';

export interface RescueJobOptions {
  readonly jobDir: string;
  /** `ws://HOST:PORT` of the assembler, or a mounted stick's folder (stick-trip.ts). */
  readonly to: string;
  /** Stick only: bundles (default) or chunk files for GNU ddrescue. */
  readonly format?: StickFormat;
  /** Stick only: the id of a lost stick, whose unmerged pieces are read again. */
  readonly forgetStick?: string;
  readonly tokenFile?: string;
  /** Bytes the local spool may hold (default 256 MiB). */
  readonly spoolBytes?: number;
  /** The source's path now, if `/dev` names changed since planning. */
  readonly source?: string;
  /** Rescue chunk after chunk (the manual `ddrescue -m chunkNNNN.map` recipe) instead of over the whole disk. */
  readonly chunkAtATime?: boolean;
  /** The engine's options, parsed as `ddrescue`'s (files ignored). */
  readonly engine: DdrescueCommand;
  readonly commandLine: string;
  /** The progress display (default: lines every 10 s on stderr); see progress-display.ts. */
  readonly progress?: { readonly mode: ProgressMode; readonly interval?: number | undefined };
}

/** Where a rescue job writes and how it learns of signals: the same for the LAN and the stick paths. */
export type RescueJobIo = StickTripIo;

/**
 * `ddferry-reader rescue JOBDIR --to ws://...`: GNU ddrescue's rescue over the whole
 * source (ddrescue's order: copying over the whole disk, then trimming, scraping,
 * retrying), with rescued data sealed into pieces in the spool before `common.map` says
 * `+`, shipped to the assembler, and freed by its receipts.
 * @returns the exit status, or a signal to re-raise.
 */
export async function rescueJob(o: RescueJobOptions, io: RescueJobIo): Promise<{ status: number; signal?: NodeJS.Signals }> {
  if (!/^wss?:\/\//.test(o.to)) return rescueStickJob(o, io);
  const dir = resolve(o.jobDir);
  const job = await readJob(dir);
  const paths = jobPaths(dir);
  const chunks = jobChunks(job);
  const e = o.engine.rescue;
  const { source, testSource } = await openSource(o.source === undefined ? job.source : resolve(o.source), { direct: e.directIn, testMap: job.testMode });
  let shipper: WsShipper | undefined;
  let progress: RescueProgress | undefined;
  try {
    assertPlannedDevice(job, source);
    const plan = { rescueId: job.rescueId, sourceSize: job.sourceSize, sectorSize: job.sectorSize, chunks };
    const secret = o.tokenFile === undefined ? '' : await readTokenFile(o.tokenFile);
    const spool = await Spool.open({ dir: paths.spool, seqFile: paths.seq, capacity: o.spoolBytes ?? 256 << 20, plan, keys: deriveRescueKeys(secret, job.rescueId) });
    progress = openRescueProgress(o, io, { sourceSize: job.sourceSize, chunks, spool });
    const log = progress.log.bind(progress);
    const ledgerWelcome = await openLanLedger(dir, paths.seq, spool, log);
    shipper = new WsShipper({
      url: o.to, secret, rescueId: job.rescueId, fingerprint: job.fingerprint, chunkSize: job.chunkSize, sectorSize: job.sectorSize, spool, log,
    });
    progress.link = { url: o.to, source: shipper };
    shipper.start();
    progress.start();
    const welcome = await shipper.firstWelcome(5000);
    if (shipper.fatal !== null) {
      const code = (shipper.fatal as { refusal?: string; code?: string }).refusal ?? (shipper.fatal as { code?: string }).code ?? 'ERR_LINK';
      throw new ReaderError('ERR_LINK', o.to, `${o.to} refused this reader: ${shipper.fatal.message.replace(/^.*?the assembler refused: /, '').replace(/\.+$/, '')}. Nothing was read. `
        + (code.startsWith('ERR_AUTH') ? 'Copy the same token file to both machines (--token-file), then run the same command again.'
          : 'Point the reader at the assembler of this rescue (each rescue needs its own image), then run the same command again.'));
    }
    // a Welcome no longer lists merged seqs: ledger entries (pieces on sticks) are freed by the
    // stick's authenticated receipts, which name each piece by its header hash (R5)
    await ledgerWelcome(null);
    if (!welcome) log(`ddferry-reader: ${o.to}: no answer yet; rescuing into the spool (${spool.capacity} bytes) and retrying the link.`);

    // common.map, with what the image already holds marked finished: never read twice
    await removeStaleTemporaries(paths.commonMap);
    const m = await readMapfile(paths.commonMap, { file: paths.commonMap });
    const whole = Domain.fromOptions(0, job.sourceSize);
    let blocks = normalizeForRescue(m.blocks, { insize: job.sourceSize, hardbs: e.hardbs, domain: whole, file: paths.commonMap }).blocks;
    if (welcome && welcome.finished.length > 0) {
      const known = new StatusMap(blocks);
      for (const r of welcome.finished) markFinished(known, whole, r.pos, r.size);
      blocks = known.toVector();
    }
    let state = { currentPos: m.currentPos, currentStatus: m.currentStatus, currentPass: m.currentPass };
    const startSeconds = Math.floor(Date.now() / 1000);
    const updater = new MapfileUpdater({
      path: paths.commonMap, commandLine: o.commandLine, startTime: formatTimestamp(new Date(startSeconds * 1000)),
      saveInterval: e.mapfileSaveInterval, syncInterval: e.mapfileSyncInterval, clock: () => Math.floor(Date.now() / 1000),
    });
    const sink = new PieceSink({ rescueId: job.rescueId, chunks, spool });
    const iobuf = allocAligned(e.cluster * e.hardbs + e.hardbs, Math.max(4096, e.hardbs));
    // ddrescue's order over the whole disk, or the manual recipe: `ddrescue -m chunkNNNN.map` chunk after chunk
    const domains = o.chunkAtATime ? chunks.map((c) => Domain.fromOptions(c.pos, c.size)) : [whole];
    let outcome: RescueOutcome = { status: 0, interrupted: false, messages: [], finalMessage: '' };
    // the assembler's live page: the running engine's figures, about once a second
    let current: Rescuebook | undefined;
    shipper.setStatusSource(() => (current === undefined ? null : statusMessage(current, { chunks, spool, runTime: Math.floor(Date.now() / 1000) - startSeconds })));
    for (const domain of domains) {
      const norm = normalizeForRescue(blocks, { insize: job.sourceSize, hardbs: e.hardbs, domain, file: paths.commonMap });
      // the progress display draws the status block (with the ddferry lines); the reporter keeps the logs
      const reporter = new DdrescueReporter({ verbosity: -1, binaryPrefixes: o.engine.binaryPrefixes, write: io.screen });
      const rb = new Rescuebook({
        source, testSource, sink, reporter: progress.wrap(reporter), map: new StatusMap(norm.blocks), domain: norm.domain, insize: job.sourceSize, offset: 0,
        ...state, mapfile: updater, options: e, iobuf,
        clock: () => Math.floor(Date.now() / 1000), startTime: startSeconds,
        interrupted: () => io.signal() !== null,
        sleep: (s) => interruptibleSleep(s, io.signal),
      });
      current = rb;
      outcome = await doRescue(rb);
      if (outcome.finalMessage) log(`ddferry-reader: ${outcome.finalMessage}`);
      if (updater.lastError) log(`ddferry-reader: ERR_MAPFILE_WRITE: ${paths.commonMap}: ${updater.lastError.message}`);
      for (const w of reporter.close()) log(`ddferry-reader: ${w}`);
      if (outcome.status !== 0 || outcome.interrupted) break;
      blocks = rb.map.toVector();
      state = { currentPos: rb.currentPos, currentStatus: rb.currentStatus, currentPass: rb.currentPass };
    }
    const sig = io.signal();
    if (outcome.interrupted && sig) return progress.end({ status: signalExitStatus(sig), signal: sig });
    // everything read is in the spool; wait until the assembler holds it
    if (spool.count > 0) {
      progress.phase = 'draining';
      if (o.engine.verbosity >= 0) log(`Waiting for ${o.to} to acknowledge ${spool.count} piece(s)...`);
      const drained = shipper.drained();
      while (spool.count > 0 && !io.signal()) await Promise.race([drained, new Promise((r) => setTimeout(r, 200))]);
      const s2 = io.signal();
      if (s2) {
        log(`ddferry-reader: interrupted with ${spool.count} piece(s) still in the spool; run the same command again to ship them.`);
        return progress.end({ status: signalExitStatus(s2), signal: s2 });
      }
    }
    return progress.end({ status: outcome.status });
  } finally {
    progress?.finish('failed');
    shipper?.stop();
    source.close();
  }
}

/** Mark `[pos, pos+size)` finished in `map` block by block (data safe on PC_B). */
function markFinished(map: StatusMap, domain: Domain, pos: number, size: number): void {
  let p = pos;
  const end = Math.min(pos + size, domain.end);
  while (p < end) {
    const b = map.sblockAt(p);
    if (!b) return;
    const bEnd = Math.min(b.pos + b.size, end);
    if (b.status !== BlockStatus.finished && domain.includes({ pos: p, size: bEnd - p })) map.changeChunkStatus({ pos: p, size: bEnd - p }, BlockStatus.finished, domain);
    p = bEnd;
  }
}
