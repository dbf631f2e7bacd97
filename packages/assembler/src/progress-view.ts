/**
 * The assembler's progress, drawn: two lines per reader on a terminal (redrawn in
 * place at most once a second), one line per reader that changed at each interval
 * otherwise, or one JSON object per interval with `--json`. The first update draws at
 * once; `finish` draws the final state whatever the clock.
 */
import { formatNum } from '@ddferry/mapfile';

import { AssemblerError } from './errors.js';
import { AssemblerProgress } from './progress.js';
import type { AssemblerProgressSnapshot, BundleProgressEvent, ImageSource, ReaderProgress } from './progress.js';

export type ProgressMode = 'tty' | 'lines' | 'json' | 'off';

/** Seconds between lines or JSON objects unless `--progress-interval` says otherwise. */
export const DEFAULT_PROGRESS_INTERVAL = 10;
/** Milliseconds between terminal redraws, at least. */
export const TTY_REDRAW_MS = 1000;
/** Longest error message in the text views (JSON has it whole). */
const MAX_ERROR_TEXT = 100;

const CSI = '\x1B[';

/** A size in ddrescue's way (`4193 kB`), at most four digits. */
function bytes(n: number): string {
  return `${formatNum(n, { limit: 9999 })}B`;
}

function who(r: ReaderProgress): string {
  const id = r.rescueId === null ? '' : `rescue ${r.rescueId} `;
  const from = r.bundles === null ? `from ${r.peer}` : r.peer.replace(/^stick /, 'from the stick ');
  const image = r.image === null ? '' : ` -> ${r.image}`;
  const state = r.bundles === null ? r.state : `${r.state}, bundle ${r.bundles.index}/${r.bundles.total}`;
  return `${id}${from}${image}: ${state}`;
}

function figures(r: ReaderProgress): string {
  const error = r.lastError === null ? 'none' : `${r.lastError.code}: ${clip(r.lastError.message)}`;
  const image = r.image === null ? 'no image' : `image ${r.pctRescued.toFixed(2)}% rescued (${bytes(r.imageRescued)} of ${bytes(r.imageSize)})`;
  return `merged ${r.piecesMerged} piece${r.piecesMerged === 1 ? '' : 's'}, ${bytes(r.bytesMerged)}, ${(r.rate / 1e6).toFixed(1)} MB/s; ${image}; last error: ${error}`;
}

function clip(text: string): string {
  const one = text.replace(/\s+/g, ' ');
  return one.length <= MAX_ERROR_TEXT ? one : `${one.slice(0, MAX_ERROR_TEXT - 1)}…`;
}

/** The terminal view: per reader, who and where, then the figures (no newlines). */
export function formatProgressBlock(s: AssemblerProgressSnapshot): string[] {
  if (s.readers.length === 0) return ['no reader yet'];
  return s.readers.flatMap((r) => [who(r), `    ${figures(r)}`]);
}

/** The line view of one reader (no newline). */
export function formatReaderLine(time: number, r: ReaderProgress): string {
  return `ddferry-assembler: [${formatSeconds(time)}] ${who(r)}; ${figures(r)}`;
}

/** The `--json` view (no newline): `{"type":"progress","time":…,"readers":[…]}`. */
export function formatProgressJson(s: AssemblerProgressSnapshot): string {
  return JSON.stringify({ type: 'progress', ...s });
}

/** `1h:02m:03s`, `2m:03s`, `3s`. */
function formatSeconds(t: number): string {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const h = Math.floor(t / 3600);
  const m = Math.floor(t / 60) % 60;
  const sec = t % 60;
  return h > 0 ? `${h}h:${p2(m)}m:${p2(sec)}s` : m > 0 ? `${m}m:${p2(sec)}s` : `${sec}s`;
}

/** What makes a reader's line worth printing again. */
function signature(r: ReaderProgress): string {
  return JSON.stringify([r.state, r.peer, r.image, r.piecesMerged, r.bytesMerged, r.bundles, r.lastError]);
}

export interface ProgressDisplayOptions {
  readonly mode: ProgressMode;
  /** The terminal (stderr) for `tty` and `lines`; stdout for `json`. */
  readonly write: (text: string) => void;
  /** Where messages go (stderr); for `tty` the same terminal as `write`. */
  readonly messages: (text: string) => void;
  /** Milliseconds. */
  readonly clock: () => number;
  /** Seconds between lines or JSON objects [10]; positive. */
  readonly interval?: number | undefined;
  readonly snapshot: () => AssemblerProgressSnapshot;
}

/** Draws snapshots by the table in the module comment. */
export class ProgressDisplay {
  readonly #o: ProgressDisplayOptions;
  readonly #minGapMs: number;
  #lastDraw: number | null = null;
  #drawn = 0;
  readonly #printed = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #finished = false;

  /** @throws RangeError for an `interval` that is not a positive finite number. */
  constructor(options: ProgressDisplayOptions) {
    const interval = options.interval ?? DEFAULT_PROGRESS_INTERVAL;
    if (!(interval > 0) || !Number.isFinite(interval)) throw new RangeError(`progress interval must be a positive number of seconds, not ${String(interval)}`);
    this.#o = options;
    this.#minGapMs = options.mode === 'tty' ? TTY_REDRAW_MS : interval * 1000;
  }

  get mode(): ProgressMode {
    return this.#o.mode;
  }

  /** Draw if the mode's gap has passed since the last draw (or nothing was drawn yet). */
  update(): void {
    if (this.#o.mode === 'off' || this.#finished) return;
    const now = this.#o.clock();
    if (this.#lastDraw !== null && now - this.#lastDraw < this.#minGapMs) return;
    this.#lastDraw = now;
    this.#draw(this.#o.snapshot(), false);
  }

  /** A message line (no newline), shown without breaking a terminal block. */
  message(text: string): void {
    if (this.#o.mode === 'tty' && this.#drawn > 0) {
      this.#o.write(`\r${CSI}${this.#drawn}A${CSI}J`);
      this.#drawn = 0;
    }
    this.#o.messages(`${text}\n`);
  }

  /** The final state, once, whatever the clock; the timer stops. */
  finish(): void {
    this.stop();
    if (this.#o.mode === 'off' || this.#finished) return;
    this.#finished = true;
    this.#draw(this.#o.snapshot(), true);
  }

  /** `update` now, then from an unreferenced timer. */
  start(): void {
    if (this.#o.mode === 'off' || this.#timer !== undefined) return;
    this.update();
    this.#timer = setInterval(() => this.update(), Math.min(TTY_REDRAW_MS, this.#minGapMs));
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #draw(s: AssemblerProgressSnapshot, final: boolean): void {
    if (this.#o.mode === 'json') {
      this.#o.write(`${formatProgressJson(s)}\n`);
    } else if (this.#o.mode === 'lines') {
      let out = '';
      const seen = new Set<string>();
      for (const r of s.readers) {
        const key = `${r.rescueId ?? ''}\n${r.rescueId === null ? r.peer : ''}`;
        seen.add(key);
        const sig = signature(r);
        if (!final && this.#printed.get(key) === sig) continue;
        this.#printed.set(key, sig);
        out += `${formatReaderLine(s.time, r)}\n`;
      }
      for (const key of this.#printed.keys()) if (!seen.has(key)) this.#printed.delete(key);
      if (out) this.#o.write(out);
    } else {
      const lines = formatProgressBlock(s);
      const up = this.#drawn > 0 ? `\r${CSI}${this.#drawn}A` : '';
      this.#o.write(`${up}${lines.map((l) => `${l}${CSI}K\n`).join('')}${CSI}J`);
      this.#drawn = lines.length;
    }
  }
}

/**
 * `--progress-interval S`: seconds, 0.1 to 86400.
 * @throws AssemblerError `ERR_USAGE`.
 */
export function parseProgressInterval(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0.1 || n > 86400) {
    throw new AssemblerError('ERR_USAGE', '--progress-interval', `"${text}" is not a number of seconds from 0.1 to 86400.`);
  }
  return n;
}

/** What `importProgress` gives the import command. */
export interface ImportProgress {
  /** Pass as `importStick`'s `onBundle`. */
  onBundle(e: BundleProgressEvent): void;
  /** A warning or message line, shown without breaking a terminal block. */
  message(text: string): void;
  /** The final state (once); call when the import returned or failed. */
  finish(): void;
}

/**
 * The progress of one stick import (`ddferry-assembler import DIR IMAGE`), drawn like
 * serve's: feed it the bundle events, call `finish` at the end.
 */
export function importProgress(o: Omit<ProgressDisplayOptions, 'snapshot'> & { readonly folder: string; readonly image: ImageSource }): ImportProgress {
  const book = new AssemblerProgress({ images: [o.image], clock: o.clock });
  const display = new ProgressDisplay({ ...o, snapshot: () => book.snapshot() });
  display.start();
  return {
    onBundle(e) {
      book.bundle(o.folder, o.image, e);
      display.update();
    },
    message: (text) => display.message(text),
    finish: () => display.finish(),
  };
}
