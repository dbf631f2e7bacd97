/**
 * Draws progress snapshots for a person or a script, rate-limited by an injected clock;
 * the reader and the assembler both draw theirs with it (each gives its own view).
 *
 * | mode | output | at most |
 * |---|---|---|
 * | `tty` | the view's block, redrawn in place (cursor up, erase) | one redraw a second |
 * | `lines` | the view's lines (it may print nothing when nothing changed) | once per `interval` seconds |
 * | `json` | one JSON object a line | once per `interval` seconds |
 * | `off` | nothing (`-q`) | |
 *
 * The first update draws at once; `finish` draws the final state whatever the clock.
 * Messages (link retries, stop causes) go to `messages`; on a terminal the block is
 * erased first and drawn again below the message at the next update, so messages
 * scroll above a block that stays at the bottom. A timer draws while the program waits.
 */

export type ProgressMode = 'tty' | 'lines' | 'json' | 'off';

/** Seconds between lines or JSON objects unless `--progress-interval` says otherwise. */
export const DEFAULT_PROGRESS_INTERVAL = 10;
/** Milliseconds between terminal redraws, at least. */
export const TTY_REDRAW_MS = 1000;

/** How a program's snapshot looks in each mode. */
export interface ProgressView<S> {
  /** The terminal block: lines without newlines. */
  block(s: S): string[];
  /** The text of `lines` mode (lines ending with newlines), or '' to print nothing this time. */
  lines(s: S, final: boolean): string;
  /** One line of JSON, without newline. */
  json(s: S): string;
}

export interface ProgressDisplayOptions<S> {
  readonly mode: ProgressMode;
  /** Where the display goes: the terminal (stderr) for `tty` and `lines`, stdout for `json`. */
  readonly write: (text: string) => void;
  /** Where messages go (stderr); for `tty` it must be the same terminal as `write`. */
  readonly messages: (text: string) => void;
  /** Milliseconds (`Date.now` in use; tests drive it). */
  readonly clock: () => number;
  /** Seconds between lines or JSON objects [10]; positive. */
  readonly interval?: number | undefined;
  readonly snapshot: () => S;
  readonly view: ProgressView<S>;
}

const CSI = '\x1B[';

export class ProgressDisplay<S> {
  readonly #o: ProgressDisplayOptions<S>;
  readonly #minGapMs: number;
  /** When the last draw happened (clock ms), or null before the first. */
  #lastDraw: number | null = null;
  /** Lines of the block now on the terminal (0: none, or erased). */
  #drawn = 0;
  #timer: NodeJS.Timeout | undefined;
  #finished = false;

  /** @throws RangeError for an `interval` that is not a positive finite number. */
  constructor(options: ProgressDisplayOptions<S>) {
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

  /** Show a message (a line of text, without newline) without breaking the display. */
  message(text: string): void {
    if (this.#o.mode === 'tty' && this.#drawn > 0) {
      this.#o.write(`\r${CSI}${this.#drawn}A${CSI}J`);
      this.#drawn = 0;
    }
    this.#o.messages(`${text}\n`);
  }

  /** Draw the final state, whatever the clock, once; stop the timer. */
  finish(): void {
    this.stop();
    if (this.#o.mode === 'off' || this.#finished) return;
    this.#finished = true;
    this.#lastDraw = this.#o.clock();
    this.#draw(this.#o.snapshot(), true);
  }

  /** `update` now, then from a timer (unreferenced: it never keeps the process alive). */
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

  #draw(s: S, final: boolean): void {
    const v = this.#o.view;
    if (this.#o.mode === 'json') {
      this.#o.write(`${v.json(s)}\n`);
    } else if (this.#o.mode === 'lines') {
      const text = v.lines(s, final);
      if (text) this.#o.write(text);
    } else {
      const lines = v.block(s);
      const up = this.#drawn > 0 ? `\r${CSI}${this.#drawn}A` : '';
      this.#o.write(`${up}${lines.map((l) => `${l}${CSI}K\n`).join('')}${CSI}J`);
      this.#drawn = lines.length;
    }
  }
}
