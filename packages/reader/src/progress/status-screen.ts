/**
 * GNU ddrescue 1.27's status screen (spec 6.1 items 6-7, 6.2; `show_status` in
 * rescuebook.cc): the six-line block, redrawn in place with cursor-up sequences.
 */
import { formatNum } from '@ddferry/mapfile';

import type { StatusRefresh, StatusSnapshot } from '../engine/reporter.js';
import { formatTime } from '../logs/format-time.js';

/** Six times `ESC[A` (cursor up), after a carriage return. */
const UP6 = `\r${'\x1B[A'.repeat(6)}`;
/** Where the slow-reads figure would be when `-a` was not given. */
const NO_SLOW_READS = ' '.repeat(22);

/**
 * The six lines of the status block, each ending in `\n`, with ddrescue's printf
 * layouts. `binaryPrefixes` is `-B` (Ki, Mi... by 1024).
 */
export function formatStatusBlock(s: StatusSnapshot, binaryPrefixes = false): string {
  const size = (n: number): string => formatNum(n, { binary: binaryPrefixes }).padStart(9);
  const rate = (n: number): string => formatNum(n, { limit: 99999, binary: binaryPrefixes }).padStart(8);
  const count = (n: number, width: number): string => String(n).padStart(width);
  const time = (t: number, dropSeconds = false): string => formatTime(t, dropSeconds).padStart(11);
  return `     ipos: ${size(s.ipos)}B, non-trimmed: ${size(s.nonTrimmed)}B,  current rate: ${rate(s.currentRate)}B/s\n`
    + `     opos: ${size(s.opos)}B, non-scraped: ${size(s.nonScraped)}B,  average rate: ${rate(s.averageRate)}B/s\n`
    + `non-tried: ${size(s.nonTried)}B,  bad-sector: ${size(s.badSize)}B,    error rate: ${rate(s.errorRate)}B/s\n`
    + `  rescued: ${size(s.finished)}B,   bad areas: ${count(s.badAreas, 8)},        run time: ${time(s.runTime)}\n`
    + `pct rescued:  ${s.percentRescued}, read errors:${count(s.readErrors, 9)},  remaining time: ${time(s.remainingTime, s.remainingTime >= 180)}\n`
    + `${s.showSlowReads ? ` slow reads:${count(s.slowReads, 9)},` : NO_SLOW_READS}`
    + `        time since last successful read: ${time(s.sinceLastSuccess)}\n`;
}

export interface StatusScreenOptions {
  /** `-B`: binary prefixes. */
  readonly binaryPrefixes: boolean;
  /** Where the screen goes (stderr in practice). */
  readonly write: (text: string) => void;
}

/**
 * Draws the block as ddrescue does: six newlines before the first one, then per
 * refresh either a newline (first refresh of a pass: the previous block stays on
 * screen) or `\r` and six cursor-ups, the block, and `\r` plus the message, padded
 * with spaces over a longer previous message.
 */
export class StatusScreen {
  readonly #binaryPrefixes: boolean;
  readonly #write: (text: string) => void;
  #started = false;
  /** Length of the last message shown (ddrescue's `oldlen`). */
  #oldLength = 0;

  constructor(options: StatusScreenOptions) {
    this.#binaryPrefixes = options.binaryPrefixes;
    this.#write = options.write;
  }

  /** True once the first block has been drawn. */
  get started(): boolean {
    return this.#started;
  }

  refresh(refresh: StatusRefresh): void {
    let out = '';
    if (!this.#started) {
      out += '\n\n\n\n\n\n';
      this.#started = true;
    }
    out += refresh.scroll ? '\n' : UP6;
    out += formatStatusBlock(refresh.snapshot, this.#binaryPrefixes);
    const message = refresh.message;
    if (message !== null && message.length > 0) {
      out += `\r${message}${' '.repeat(Math.max(0, this.#oldLength - message.length))}`;
      this.#oldLength = message.length;
    }
    this.#write(out);
  }
}
