/**
 * The progress of `ddferry-reader rescue`: one plain, JSON-ready snapshot of the
 * engine's status block (the figures GNU ddrescue shows), the chunk being read, the
 * spool, and the link to the assembler or the stick trip. The snapshot is taken from
 * the figures the engine already hands its reporter (at most once a second, as
 * ddrescue refreshes its screen): nothing is counted per read, so the engine does not
 * get slower.
 *
 * | part | from |
 * |---|---|
 * | `rescue` | the last `StatusRefresh` of the engine (null before the first read) |
 * | `chunk` | the chunk holding `rescue.ipos` (binary search in the plan) |
 * | `spool` | `Spool.count`, `.bytes`, `.capacity` |
 * | `link` | the shipper's `state` and `merged` (null in stick mode) |
 * | `stick` | the stick shipper's trip, free space and bundles (null over the LAN) |
 */
import type { Block } from '@ddferry/mapfile';

import type { RescueReporter, StatusRefresh, StatusSnapshot } from '../engine/reporter.js';
import { ProgressDisplay, type ProgressDisplayOptions, type ProgressMode } from './progress-display.js';

/** Where the run is. `finished`, `interrupted` and `failed` are final. */
export type ProgressPhase = 'starting' | 'rescuing' | 'draining' | 'finished' | 'interrupted' | 'failed';

/** The link to the assembler, as the shipper tells it. */
export type LinkState = 'connecting' | 'connected' | 'waiting';

/** What a LAN shipper tells (`WsShipper` has these fields). */
export interface LinkSource {
  readonly state: LinkState;
  /** Pieces merged (receipts seen) in this run. */
  readonly merged: number;
}

/** What a stick shipper tells. */
export interface StickProgress {
  /** Trip number: 1 for the first stick visit of this job; null while the job does not count trips. */
  readonly trip: number | null;
  /** Bytes free on the stick's file system; null when it does not tell (fusefat with 512-byte clusters). */
  readonly freeBytes: number | null;
  /** Bundles of this rescue now on the stick (not yet receipted). */
  readonly bundles: number;
}

/** The spool's figures (`Spool` has these fields). */
export interface SpoolSource {
  readonly count: number;
  readonly bytes: number;
  readonly capacity: number;
}

/**
 * ddrescue's status block in bytes and seconds; `remainingTime` and
 * `sinceLastSuccess` are null for ddrescue's `n/a`.
 */
export interface RescueFigures {
  readonly ipos: number;
  readonly opos: number;
  readonly nonTried: number;
  readonly nonTrimmed: number;
  readonly nonScraped: number;
  readonly badSector: number;
  readonly rescued: number;
  /** The engine's domain: the whole source, or the chunk with `--chunk-at-a-time`. */
  readonly domainSize: number;
  /** `rescued` in percent of `domainSize`, as ddrescue prints it (2 decimals). */
  readonly pctRescued: number;
  readonly badAreas: number;
  readonly readErrors: number;
  /** Null unless `-a` was given (ddrescue counts and shows slow reads only then). */
  readonly slowReads: number | null;
  readonly currentRate: number;
  readonly averageRate: number;
  readonly errorRate: number;
  readonly runTime: number;
  readonly remainingTime: number | null;
  readonly sinceLastSuccess: number | null;
  /** The engine's phase message (`Copying non-tried blocks... Pass 1 (forwards)`), or null. */
  readonly message: string | null;
}

/** The progress at one moment; see the module comment. Keys are stable (the `--json` lines). */
export interface ProgressSnapshot {
  /** Seconds since the command started. */
  readonly time: number;
  readonly phase: ProgressPhase;
  readonly sourceSize: number;
  readonly rescue: RescueFigures | null;
  /** `index` counts from 0; `offset` is `rescue.ipos - pos`. Null before the first read. */
  readonly chunk: { readonly index: number; readonly count: number; readonly pos: number; readonly size: number; readonly offset: number } | null;
  readonly spool: { readonly pieces: number; readonly bytes: number; readonly capacity: number };
  readonly link: { readonly url: string; readonly state: LinkState; readonly merged: number } | null;
  readonly stick: StickProgress | null;
}

/** What `progressSnapshot` is made from. */
export interface ProgressInputs {
  /** Milliseconds since the command started. */
  readonly elapsedMs: number;
  readonly phase: ProgressPhase;
  readonly sourceSize: number;
  /** The plan's chunks, sorted by `pos`. */
  readonly chunks: readonly Block[];
  /** The engine's last refresh, or null. */
  readonly status: StatusSnapshot | null;
  readonly message: string | null;
  readonly spool: SpoolSource;
  /** The assembler's address and the shipper, over the LAN. */
  readonly link?: { readonly url: string; readonly source: LinkSource } | undefined;
  /** The stick's figures, in stick mode. */
  readonly stick?: StickProgress | undefined;
}

/** Index of the chunk holding `pos` (the last one if `pos` is past the end), or -1 if there is none. */
export function chunkIndexAt(chunks: readonly Block[], pos: number): number {
  let lo = 0;
  let hi = chunks.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (chunks[mid]!.pos <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The snapshot, from plain inputs (no I/O, O(log chunks)). Exported for the Status
 * messages of the shipper, which tell the assembler the same figures.
 */
export function progressSnapshot(i: ProgressInputs): ProgressSnapshot {
  const s = i.status;
  let chunk: ProgressSnapshot['chunk'] = null;
  if (s) {
    const index = chunkIndexAt(i.chunks, s.ipos);
    const c = i.chunks[index];
    if (c) chunk = { index, count: i.chunks.length, pos: c.pos, size: c.size, offset: Math.max(0, Math.min(s.ipos - c.pos, c.size)) };
  }
  const rescue: RescueFigures | null = s === null ? null : {
    ipos: s.ipos,
    opos: s.opos,
    nonTried: s.nonTried,
    nonTrimmed: s.nonTrimmed,
    nonScraped: s.nonScraped,
    badSector: s.badSize,
    rescued: s.finished,
    domainSize: s.nonTried + s.nonTrimmed + s.nonScraped + s.badSize + s.finished,
    pctRescued: parsePercent(s.percentRescued),
    badAreas: s.badAreas,
    readErrors: s.readErrors,
    slowReads: s.showSlowReads ? s.slowReads : null,
    currentRate: s.currentRate,
    averageRate: s.averageRate,
    errorRate: s.errorRate,
    runTime: s.runTime,
    remainingTime: s.remainingTime < 0 ? null : s.remainingTime,
    sinceLastSuccess: s.sinceLastSuccess < 0 ? null : s.sinceLastSuccess,
    message: i.message,
  };
  return {
    time: Math.max(0, Math.floor(i.elapsedMs / 1000)),
    phase: i.phase,
    sourceSize: i.sourceSize,
    rescue,
    chunk,
    spool: { pieces: i.spool.count, bytes: i.spool.bytes, capacity: i.spool.capacity },
    link: i.link ? { url: i.link.url, state: i.link.source.state, merged: i.link.source.merged } : null,
    stick: i.stick ? { trip: i.stick.trip, freeBytes: i.stick.freeBytes, bundles: i.stick.bundles } : null,
  };
}

function isFinal(phase: ProgressPhase): boolean {
  return phase === 'finished' || phase === 'interrupted' || phase === 'failed';
}

/** ` 93.71%` → 93.71; ddrescue's `+INF`/`NAN` (empty domain) → 100. */
function parsePercent(text: string): number {
  const n = Number.parseFloat(text);
  return Number.isFinite(n) ? n : 100;
}

export interface RescueProgressOptions extends Omit<ProgressDisplayOptions, 'snapshot'> {
  readonly sourceSize: number;
  readonly chunks: readonly Block[];
  readonly spool: SpoolSource;
}

/**
 * The progress of a `rescue` command as its options say: `--json` to `stdout`, a
 * terminal redraw or lines to stderr (`screen` for the terminal), off with `-q`.
 */
export function openRescueProgress(
  o: { readonly progress?: { readonly mode: ProgressMode; readonly interval?: number | undefined } | undefined; readonly engine: { readonly binaryPrefixes: boolean } },
  io: { readonly screen: (text: string) => void; readonly stderr: (text: string) => void; readonly stdout?: ((text: string) => void) | undefined },
  sources: { readonly sourceSize: number; readonly chunks: readonly Block[]; readonly spool: SpoolSource },
): RescueProgress {
  const mode = o.progress?.mode ?? 'lines';
  return new RescueProgress({
    mode, interval: o.progress?.interval, write: mode === 'json' ? (io.stdout ?? io.stderr) : mode === 'tty' ? io.screen : io.stderr,
    messages: mode === 'tty' ? io.screen : io.stderr, clock: Date.now, binaryPrefixes: o.engine.binaryPrefixes, ...sources,
  });
}

/**
 * The progress of one `rescue` command: the state the snapshot is made from, and its
 * display. `wrap` puts it between the engine and its reporter; `link` and `stick`
 * are set once their shippers exist.
 */
export class RescueProgress {
  readonly display: ProgressDisplay;
  phase: ProgressPhase = 'starting';
  link: { readonly url: string; readonly source: LinkSource } | undefined;
  stick: (() => StickProgress) | undefined;
  readonly #o: RescueProgressOptions;
  readonly #startMs: number;
  #status: StatusSnapshot | null = null;
  #message: string | null = null;

  constructor(options: RescueProgressOptions) {
    this.#o = options;
    this.#startMs = options.clock();
    this.display = new ProgressDisplay({ ...options, snapshot: () => this.snapshot() });
  }

  /** The progress now. */
  snapshot(): ProgressSnapshot {
    return progressSnapshot({
      elapsedMs: this.#o.clock() - this.#startMs,
      phase: this.phase,
      sourceSize: this.#o.sourceSize,
      chunks: this.#o.chunks,
      status: this.#status,
      message: this.#message,
      spool: this.#o.spool,
      link: this.link,
      stick: this.stick?.(),
    });
  }

  /** The engine's refresh: kept for the snapshot, then the display may draw. */
  noteRefresh(refresh: StatusRefresh): void {
    this.#status = refresh.snapshot;
    // one line: the final message comes with ddrescue's leading newline
    const message = refresh.message?.replace(/\s+/g, ' ').trim();
    if (message) this.#message = message;
    if (this.phase === 'starting') this.phase = 'rescuing';
    this.display.update();
  }

  /**
   * A reporter that gives `inner` everything and keeps the refreshes and echoes here.
   * `inner` should not draw a screen of its own (verbosity -1).
   */
  wrap(inner: RescueReporter): RescueReporter {
    return {
      phaseStarted: (elapsed, pct, message) => inner.phaseStarted(elapsed, pct, message),
      readDone: (pos, size, copied, error) => inner.readDone(pos, size, copied, error),
      statusRefreshed: (refresh) => {
        inner.statusRefreshed(refresh);
        this.noteRefresh(refresh);
      },
      echo: (message) => {
        inner.echo(message);
        if (this.display.mode !== 'off') this.display.message(`ddferry-reader: ${message}`);
      },
      endOfRun: (elapsed, pct, pos, status) => inner.endOfRun(elapsed, pct, pos, status),
    };
  }

  /** A message for the user (a link retry, a wait), shown without breaking the display. */
  log(line: string): void {
    this.display.message(line);
  }

  /** Start the display's timer (redraws while the engine waits). */
  start(): void {
    this.display.start();
  }

  /** The final phase: the last draw, line or JSON object, and the timer stops. Only the first call counts. */
  finish(phase: 'finished' | 'interrupted' | 'failed'): void {
    if (isFinal(this.phase)) return;
    this.phase = phase;
    this.display.finish();
  }

  /** `finish` with the phase a command's result means (a signal: interrupted; status 0: finished), and the result. */
  end<R extends { readonly status: number; readonly signal?: NodeJS.Signals | undefined }>(result: R): R {
    this.finish(result.signal ? 'interrupted' : result.status === 0 ? 'finished' : 'failed');
    return result;
  }
}
