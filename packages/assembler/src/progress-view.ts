/**
 * The assembler's progress, drawn: two lines per reader on a terminal (redrawn in
 * place at most once a second), one line per reader that changed at each interval
 * otherwise, or one JSON object per interval with `--json`. The first update draws at
 * once; `finish` draws the final state whatever the clock.
 */
import { formatNum } from '@ddferry/mapfile';
import { ProgressDisplay, type ProgressDisplayOptions as SharedDisplayOptions, type ProgressView } from '@ddferry/protocol';

import { AssemblerError } from './errors.js';
import { AssemblerProgress } from './progress.js';
import type { AssemblerProgressSnapshot, BundleProgressEvent, ImageSource, ReaderProgress } from './progress.js';

/** Longest error message in the text views (JSON has it whole). */
const MAX_ERROR_TEXT = 100;

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

/**
 * The assembler's views for the shared progress display (protocol's `ProgressDisplay`):
 * in `lines` mode a reader's line is printed again only when what it says changed (and
 * every reader's at the end). Each display needs its own view (it remembers what it printed).
 */
export function assemblerProgressView(): ProgressView<AssemblerProgressSnapshot> {
  const printed = new Map<string, string>();
  return {
    block: (s) => formatProgressBlock(s),
    json: (s) => formatProgressJson(s),
    lines(s, final) {
      let out = '';
      const seen = new Set<string>();
      for (const r of s.readers) {
        const key = `${r.rescueId ?? ''}\n${r.rescueId === null ? r.peer : ''}`;
        seen.add(key);
        const sig = signature(r);
        if (!final && printed.get(key) === sig) continue;
        printed.set(key, sig);
        out += `${formatReaderLine(s.time, r)}\n`;
      }
      for (const key of printed.keys()) if (!seen.has(key)) printed.delete(key);
      return out;
    },
  };
}

/** What the assembler's displays are made with: protocol's options, less the view. */
export type ProgressDisplayOptions = Omit<SharedDisplayOptions<AssemblerProgressSnapshot>, 'view'>;

/** A display of the assembler's progress (the shared display with the assembler's view). */
export function assemblerDisplay(o: ProgressDisplayOptions): ProgressDisplay<AssemblerProgressSnapshot> {
  return new ProgressDisplay({ ...o, view: assemblerProgressView() });
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
  const display = assemblerDisplay({ ...o, snapshot: () => book.snapshot() });
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
