import { resolve } from 'node:path';

import { MapfileStatus, formatTimestamp, mapfileStatusName } from '@ddferry/mapfile';

import type { RescueOptions } from '../engine/options.js';
import type { RescueReporter } from '../engine/reporter.js';
import { assertPlannedDevice } from '../job/check-device.js';
import { fingerprintOf, noSerialWarning } from '../job/fingerprint.js';
import type { JobFolder } from '../job/job-folder.js';
import { leftoverReadingProcess, readingPidPath, removeReadingPid, writeReadingPid } from '../job/reading-pid.js';
import { type UsedProgress, usedDomain, usedProgress } from '../job/used-order.js';
import { EventLogger } from '../logs/event-logger.js';
import { RateLogger } from '../logs/rate-logger.js';
import { ReadLogger } from '../logs/read-logger.js';
import { DdrescueReporter } from '../progress/ddrescue-reporter.js';
import type { RescueProgress } from '../progress/progress.js';
import { clockTime } from '../progress/snapshot.js';
import type { Destination } from './destination.js';
import type { ReadingDomain } from './reading-messages.js';
import { type RunEnd, newLoopStatus, runLoop } from './run-loop.js';

/** What a `rescue` command asks, whatever its destination. */
export interface RescueRequest {
  /** The engine's options (ddrescue's). */
  readonly options: RescueOptions;
  /** The source's path now (the job's, or `--source`). */
  readonly source: string;
  /** Rescue chunk after chunk (the manual `ddrescue -m chunkNNNN.map` recipe) instead of over the whole disk. */
  readonly chunkAtATime: boolean;
  readonly commandLine: string;
  /** ddrescue's logs (`--log-events`, `--log-rates`, `--log-reads`), absolute paths. */
  readonly logs: { readonly events?: string | undefined; readonly rates?: string | undefined; readonly reads?: string | undefined };
}

export interface RescueRunOptions {
  readonly job: JobFolder;
  readonly request: RescueRequest;
  readonly destination: Destination;
  /** Seal pieces at this many bytes and milliseconds (defaults: 8 MiB, 2 s). */
  readonly sealBytes?: number;
  readonly sealMillis?: number;
  /** Read what the used-space scan asks instead of the job's domains (`used-map`, `plan --used-first`). */
  readonly scan?: boolean;
  readonly progress: RescueProgress;
  readonly log: (line: string) => void;
  readonly signal: AbortSignal;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolveSleep) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolveSleep();
    }
    signal.addEventListener('abort', done);
  });
}

/**
 * Wait while the reading process of an earlier run still holds the source (stuck in a
 * read the kernel will not cancel): two processes reading a dying disk is the one thing
 * not to do. @returns false if the wait was aborted.
 */
async function waitForSource(o: RescueRunOptions): Promise<boolean> {
  const left = await leftoverReadingProcess(o.job.dir);
  if (left === null) return true;
  const since = Date.now();
  o.log(`ddferry-reader: ERR_SOURCE_BUSY: the reading process of an earlier run (pid ${left.pid}, started ${clockTime(left.startedAt)}) still waits for a read of ${o.request.source} to return; `
    + 'the kernel holds that read and nothing can cancel it. Waiting for it to end (it ends by itself once the disk answers); Ctrl-C stops waiting.');
  o.progress.phase = 'waiting';
  o.progress.pause = { reason: 'source-busy', since, text: `waiting for the reading process of an earlier run (pid ${left.pid}) to end` };
  while (!o.signal.aborted && (await leftoverReadingProcess(o.job.dir)) !== null) await sleep(500, o.signal);
  o.progress.pause = null;
  if (o.signal.aborted) return false;
  o.log(`ddferry-reader: the earlier reading process ended after ${Math.round((Date.now() - since) / 1000)} s; reading goes on.`);
  return true;
}

/**
 * The domains a rescue goes through, in order: with the job's used-space order
 * (`plan --used-first`), the file systems' metadata, then the used space, then (unless
 * `--used-only`) the whole source; else the whole source in ddrescue's order, or chunk
 * after chunk (`--chunk-at-a-time`).
 */
export function rescueDomains(job: JobFolder, chunkAtATime: boolean): ReadingDomain[] {
  const order: ReadingDomain[] = [];
  const used = job.used;
  if (used !== undefined) order.push({ mapText: used.metadataText }, { mapText: used.usedText });
  if (used?.only === true) return order;
  if (chunkAtATime) return [...order, ...job.chunks.map((c) => ({ pos: c.pos, size: c.size }))];
  return [...order, { pos: 0, size: job.job.sourceSize }];
}

/**
 * Rescue the job's source into `destination` with GNU ddrescue's algorithm, the reads
 * in a reading process of their own (run-loop.ts), ddrescue's logs kept here.
 * @returns how the loop ended; `aborted` after a signal, with the map saved.
 * @throws ReaderError as `runLoop`.
 */
export async function rescueIntoDestination(o: RescueRunOptions): Promise<RunEnd> {
  const { job, request: r } = o;
  if (!(await waitForSource(o))) return { kind: 'aborted' };
  const f = job.job.fingerprint;
  const warning = noSerialWarning(r.source, f);
  if (warning !== null) o.log(`ddferry-reader: ${warning}`);

  const startSeconds = Math.floor(Date.now() / 1000);
  const header = { commandLine: r.commandLine, startTime: formatTimestamp(new Date(startSeconds * 1000)) };
  const eventLog = r.logs.events === undefined ? undefined : EventLogger.open(resolve(r.logs.events), header);
  const rateLog = r.logs.rates === undefined ? undefined : RateLogger.open(resolve(r.logs.rates), header);
  const readLog = r.logs.reads === undefined ? undefined : ReadLogger.open(resolve(r.logs.reads), header);
  const logs = new DdrescueReporter({ verbosity: -1, binaryPrefixes: false, write: () => undefined, readLog, rateLog, eventLog });
  // the engine's stop causes (and a signal's 'Interrupted by user') go to the screen too, as ddrescue's do
  const reporter: RescueReporter & { close(): string[] } = {
    phaseStarted: (e, p, m) => logs.phaseStarted(e, p, m),
    readDone: (pos, size, copied, error) => logs.readDone(pos, size, copied, error),
    statusRefreshed: (r) => logs.statusRefreshed(r),
    echo: (m) => {
      logs.echo(m);
      o.log(`ddferry-reader: ${m}`);
    },
    endOfRun: (e, p, pos, st) => logs.endOfRun(e, p, pos, st),
    close: () => logs.close(),
  };
  const status = newLoopStatus();
  o.progress.loop = status;
  o.progress.spool = o.destination.spool;
  if (job.used !== undefined && o.scan !== true) {
    const domain = usedDomain(job.used);
    let cached: { at: number; value: UsedProgress } | undefined;
    o.progress.usedSpace = () => {
      const now = Date.now();
      if (cached === undefined || now - cached.at >= 1000) cached = { at: now, value: usedProgress(job.map.map, domain, job.job.sourceSize) };
      return cached.value;
    };
  }
  o.progress.phase = 'starting';
  const domains = rescueDomains(job, r.chunkAtATime);
  let end: RunEnd;
  try {
    end = await runLoop({
      rescueId: job.job.rescueId,
      chunks: job.chunks,
      reading: {
        source: r.source, testMap: job.job.testMode, slowReads: job.job.testSlowReads,
        options: r.options, domains, scan: o.scan, insize: job.job.sourceSize, startTime: startSeconds, pidFile: readingPidPath(job.dir),
      },
      map: job.map,
      seq: job.seq,
      destination: o.destination,
      checkSource: (identity) => {
        assertPlannedDevice(job.job, r.source, { size: identity.size, identity });
        const w = noSerialWarning(r.source, fingerprintOf({ size: identity.size, identity }, job.job.testMode !== undefined));
        if (w !== null && warning === null) o.log(`ddferry-reader: ${w}`);
      },
      sealBytes: o.sealBytes,
      sealMillis: o.sealMillis,
      reporter,
      readLog: readLog !== undefined,
      onStarted: (pid) => writeReadingPid(job.dir, pid),
      status,
      log: o.log,
      signal: o.signal,
    });
    if (end.kind === 'aborted') {
      // what ddrescue's events log says when a signal ends a run
      const s = status.refresh?.snapshot;
      reporter.echo('Interrupted by user');
      reporter.endOfRun(s?.runTime ?? 0, s?.percentRescued ?? '', status.state?.currentPos ?? 0, mapfileStatusName(status.state?.currentStatus ?? MapfileStatus.copying));
    }
  } finally {
    for (const w of reporter.close()) o.log(`ddferry-reader: ${w}`);
    // the reading process removes its pid file when it ends; a run that saw it end does too (a crash leaves it)
    if (status.readerPid !== null && !status.readerAlive) removeReadingPid(readingPidPath(job.dir), status.readerPid);
  }
  return end;
}
