import type { Block } from '@ddferry/mapfile';
import { ProgressDisplay, type ProgressDisplayOptions, type ProgressMode } from '@ddferry/protocol';

import { RESCUE_PROGRESS_VIEW, rescueProgressView } from './progress-view.js';
import {
  type CarriedSource, type LinkSource, type LoopSource, type PauseSource, type ProgressPhase, type ProgressSnapshot, type SpoolSource, type StickProgress,
  isFinal, progressSnapshot,
} from './snapshot.js';

/**
 * The progress of a `rescue` command as its options say: `--json` to `stdout`, a
 * terminal redraw or lines to stderr (`screen` for the terminal), off with `-q`.
 */
export function openRescueProgress(
  o: { readonly progress?: { readonly mode: ProgressMode; readonly interval?: number | undefined } | undefined; readonly engine: { readonly binaryPrefixes: boolean } },
  io: { readonly screen: (text: string) => void; readonly stderr: (text: string) => void; readonly stdout?: ((text: string) => void) | undefined },
  sources: { readonly sourceSize: number; readonly chunks: readonly Block[] },
): RescueProgress {
  const mode = o.progress?.mode ?? 'lines';
  return new RescueProgress({
    mode, interval: o.progress?.interval, write: mode === 'json' ? (io.stdout ?? io.stderr) : mode === 'tty' ? io.screen : io.stderr,
    messages: mode === 'tty' ? io.screen : io.stderr, clock: Date.now, binaryPrefixes: o.engine.binaryPrefixes, ...sources,
  });
}

export interface RescueProgressOptions extends Omit<ProgressDisplayOptions<ProgressSnapshot>, 'snapshot' | 'view'> {
  /** `-B`: Ki, Mi... by 1024 in the views. */
  readonly binaryPrefixes?: boolean | undefined;
  readonly sourceSize: number;
  readonly chunks: readonly Block[];
}

const NO_SPOOL: SpoolSource = { count: 0, bytes: 0, capacity: 0 };

/**
 * The progress of one `rescue` command: where its figures come from (set as the run
 * gets them: the loop, the spool, the link or the stick) and its display, drawn from
 * a timer, so it never waits on the engine.
 */
export class RescueProgress {
  readonly display: ProgressDisplay<ProgressSnapshot>;
  phase: ProgressPhase = 'starting';
  /** The run loop's status, once reading starts. */
  loop: LoopSource | undefined;
  spool: SpoolSource = NO_SPOOL;
  link: (() => LinkSource) | undefined;
  stick: (() => StickProgress) | undefined;
  /** Bytes rescued and stored in this run, and what they took to carry. */
  carried: (() => CarriedSource) | undefined;
  /** Why nothing is read yet (the source held by an earlier run), before the loop. */
  pause: PauseSource | null = null;
  /** Used and free space rescued, with a used-space order. */
  usedSpace: (() => { usedSize: number; usedRescued: number; freeSize: number; freeRescued: number }) | undefined;
  readonly #o: RescueProgressOptions;
  readonly #startMs: number;
  #message: string | null = null;

  constructor(options: RescueProgressOptions) {
    this.#o = options;
    this.#startMs = options.clock();
    this.display = new ProgressDisplay({ ...options, snapshot: () => this.snapshot(), view: options.binaryPrefixes ? rescueProgressView(true) : RESCUE_PROGRESS_VIEW });
  }

  /** The progress now. */
  snapshot(): ProgressSnapshot {
    const now = this.#o.clock();
    const loop = this.loop;
    const refresh = loop?.refresh ?? null;
    const message = refresh?.message?.replace(/\s+/g, ' ').trim();
    if (message) this.#message = message;
    if (this.phase === 'starting' && refresh !== null) this.phase = 'rescuing';
    return progressSnapshot({
      now,
      elapsedMs: now - this.#startMs,
      phase: this.phase,
      sourceSize: this.#o.sourceSize,
      chunks: this.#o.chunks,
      status: refresh?.snapshot ?? null,
      statusAt: loop?.refreshAt ?? now,
      lastDataAt: loop?.lastDataAt ?? 0,
      message: this.#message,
      spool: this.spool,
      link: this.link?.(),
      stick: this.stick?.(),
      carried: this.carried?.(),
      reading: loop?.reading ?? null,
      pause: loop?.pause ?? this.pause,
      usedSpace: this.usedSpace?.(),
    });
  }

  /** A message for the user (a link retry, a wait), shown without breaking the display. */
  log(line: string): void {
    this.display.message(line);
  }

  /** Start the display's timer. */
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
