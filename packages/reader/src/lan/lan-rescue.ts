
import type { ReaderError } from '../errors.js';
import type { JobFolder } from '../job/job-folder.js';
import { formatBytes } from '../progress/units.js';
import type { RescueProgress } from '../progress/progress.js';
import { completionMessage } from '../run/completion.js';
import { type RescueRequest, rescueIntoDestination } from '../run/rescue-run.js';
import { LanDestination } from './lan-destination.js';
import { Link } from './link.js';
import { statusMessage } from './status-report.js';
import { renumberConflict, reportSticks, settleMerged } from './welcome.js';

export interface LanRescueOptions {
  readonly job: JobFolder;
  readonly request: RescueRequest;
  /** `ws://HOST:PORT` of the assembler. */
  readonly url: string;
  /** The shared secret (the job was opened with it: its keys seal the pieces). */
  readonly secret: string;
  readonly progress: RescueProgress;
  readonly log: (line: string) => void;
  readonly signal: AbortSignal;
  /** Seconds to wait for the first Welcome before reading into the spool [5]. */
  readonly welcomeSeconds?: number;
  /** The link's timings (tests shorten them). */
  readonly link?: { readonly pingMs?: number; readonly deadMs?: number; readonly maxBackoffMs?: number };
}

/** How a LAN run ended: an exit status, or a signal to re-raise. */
export type LanResult = { readonly status: number; readonly signal?: NodeJS.Signals };

/**
 * `ddferry-reader rescue JOBDIR --to ws://...`: the link to the assembler first (its
 * Welcome says what the image holds: never read again), then the run loop into the
 * local spool while the link ships it, then the drain until the assembler holds
 * everything. A refusal the same command can never pass (a wrong token, another rescue)
 * stops the run.
 * @returns 0 when the image holds everything read; 1 with a coded message otherwise.
 */
export async function lanRescue(o: LanRescueOptions, stopSignal: () => NodeJS.Signals | null): Promise<LanResult> {
  const { job, progress, log } = o;
  // a permanent refusal stops the run like a signal, but is reported as an error
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  o.signal.addEventListener('abort', onAbort);
  let fatal: ReaderError | null = null;
  const settling = { spool: job.spool, ledger: job.ledger, seq: job.seq, url: o.url, log };
  reportSticks(job.ledger, log);
  const link = new Link({
    url: o.url, secret: o.secret, rescueId: job.job.rescueId, fingerprint: job.job.fingerprint, chunkSize: job.job.chunkSize, sectorSize: job.job.sectorSize,
    spool: job.spool, log, ...o.link,
    held: () => [...new Set([...job.spool.seqs(), ...job.ledger.entries().map((e) => e.seq)])].sort((a, b) => a - b),
    onMerged: (refs) => settleMerged(refs, settling),
    onConflict: (seq) => renumberConflict(seq, settling),
    onFatal: (err) => {
      fatal = err;
      stop.abort();
    },
  });
  progress.link = () => link.snapshot();
  progress.spool = job.spool;
  progress.carried = () => job.spool.carried;
  link.start();
  try {
    const welcome = await Promise.race([
      link.firstWelcome((o.welcomeSeconds ?? 5) * 1000),
      new Promise<null>((resolve) => stop.signal.addEventListener('abort', () => resolve(null))),
    ]);
    if (fatal) throw fatal;
    if (o.signal.aborted) return { status: 1, ...signalled(stopSignal) };
    if (welcome) {
      // what the image holds is never read again (R4)
      const marked = job.map.markFinished(welcome.finished);
      if (marked > 0) {
        log(`ddferry-reader: the image already holds ${formatBytes(marked)} that common.map did not say were rescued: marked rescued, never read.`);
        await job.map.saveNow();
      }
    } else {
      log(`ddferry-reader: ${o.url}: no answer yet; rescuing into the spool (${formatBytes(job.spool.capacity)}) and retrying the link.`);
    }
    const dest = new LanDestination(job.spool, link);
    const startMs = Date.now();
    link.setStatusSource(() => {
      const loop = progress.loop;
      const state = job.map.state;
      const s = loop?.refresh?.snapshot;
      return statusMessage({
        currentStatus: state.currentStatus, currentMessage: state.message, currentPass: state.currentPass, currentPos: s?.ipos ?? state.currentPos,
        readErrors: s?.readErrors ?? 0, cRate: s?.currentRate ?? 0, aRate: s?.averageRate ?? 0, map: job.map,
      }, {
        chunks: job.chunks, spool: job.spool, runTime: Math.floor((Date.now() - startMs) / 1000),
        pause: loop?.pause ?? progress.pause, reading: loop?.reading ?? null,
      });
    });
    const end = await rescueIntoDestination({ job, request: o.request, destination: dest, progress, log, signal: stop.signal });
    if (fatal) throw fatal;
    if (end.kind === 'aborted') {
      if (job.spool.count > 0) log(`ddferry-reader: interrupted with ${job.spool.count} piece(s) in the spool; run the same command again to ship them.`);
      return { status: 1, ...signalled(stopSignal) };
    }
    if (end.kind === 'done') {
      if (end.outcome.finalMessage) log(`ddferry-reader: ${end.outcome.finalMessage}`);
      if (end.outcome.status !== 0) return { status: end.outcome.status };
    }
    // everything read is in the spool: wait until the assembler holds it
    if (job.spool.count > 0) {
      progress.phase = 'draining';
      log(`ddferry-reader: everything is read; waiting for ${o.url} to merge ${job.spool.count} piece(s)...`);
      await Promise.race([link.drained(), new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve()))]);
      if (fatal) throw fatal;
      if (o.signal.aborted) {
        log(`ddferry-reader: interrupted with ${job.spool.count} piece(s) still in the spool; run the same command again to ship them.`);
        return { status: 1, ...signalled(stopSignal) };
      }
    }
    const onSticks = job.ledger.size;
    if (onSticks > 0) {
      log(`ddferry-reader: Everything is read; ${onSticks} piece(s) carried on sticks still have to be imported on PC_B.`);
    } else {
      log(completionMessage(job.map, job.job.rescueId));
    }
    return { status: 0 };
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    link.stop();
  }
}

function signalled(stopSignal: () => NodeJS.Signals | null): { signal?: NodeJS.Signals } {
  const s = stopSignal();
  return s ? { signal: s } : {};
}
