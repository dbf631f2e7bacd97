import { MapfileError, parseNumberArgument } from '@ddferry/mapfile';

import type { ReadResult, Source, SourceIdentity } from './source.js';

/** A range whose reads block for `seconds` (`plan --test-slow-reads POS+SIZE@SECONDS`). */
export interface SlowRange {
  readonly pos: number;
  readonly size: number;
  readonly seconds: number;
}

/** The longest block a slow range may ask for: an hour (a test source, not a benchmark). */
export const MAX_SLOW_SECONDS = 3600;

const OPTION = '--test-slow-reads';

/**
 * A source whose reads hang, for tests of a reader that must stay responsive while a
 * failing disk takes seconds per read: a read overlapping a slow range blocks the
 * calling thread for the range's `seconds` (the longest, if it overlaps several), then
 * the inner source answers it. The thread sleeps in `Atomics.wait`: no timer, no I/O
 * callback, no signal handler of its event loop runs meanwhile, as when a read is
 * stuck in the kernel; it does not spin. Every read overlapping a range blocks, each
 * time it is made.
 *
 * A GNU ddrescue test-mode source (`TestModeSource`) judges bad reads without calling
 * `read`: to block those too, wrap the test-mode source and call `block(pos, size)`
 * where the engine judges a read.
 */
export class BlockingSource implements Source {
  readonly name: string;
  readonly size: number;
  readonly identity: SourceIdentity;
  readonly #inner: Source;
  readonly #slow: readonly SlowRange[];
  readonly #cell = new Int32Array(new SharedArrayBuffer(4));

  /**
   * @param slow ranges with whole non-negative `pos`, positive whole `size` and
   *   `seconds` in (0, MAX_SLOW_SECONDS]; `parseSlowReads` makes them.
   * @throws RangeError for a range outside those bounds.
   */
  constructor(inner: Source, slow: readonly SlowRange[]) {
    slow.forEach((r, i) => {
      const ok = Number.isSafeInteger(r.pos) && r.pos >= 0 && Number.isSafeInteger(r.size) && r.size > 0
        && Number.isSafeInteger(r.pos + r.size) && Number.isFinite(r.seconds) && r.seconds > 0 && r.seconds <= MAX_SLOW_SECONDS;
      if (!ok) throw new RangeError(`BlockingSource: slow[${i}] = ${JSON.stringify(r)} is not a range of whole bytes with 0 < seconds <= ${MAX_SLOW_SECONDS}`);
    });
    this.#inner = inner;
    this.#slow = slow.map((r) => ({ pos: r.pos, size: r.size, seconds: r.seconds }));
    this.name = inner.name;
    this.size = inner.size;
    this.identity = inner.identity;
  }

  /** The seconds a read of `[pos, pos+size)` blocks: the longest overlapping slow range's, or 0. */
  delayOf(pos: number, size: number): number {
    let seconds = 0;
    for (const r of this.#slow) {
      if (r.pos < pos + size && pos < r.pos + r.size && r.seconds > seconds) seconds = r.seconds;
    }
    return seconds;
  }

  /**
   * Block the calling thread for `delayOf(pos, size)` seconds.
   * @returns the seconds blocked (0 if the read overlaps no slow range).
   */
  block(pos: number, size: number): number {
    const seconds = this.delayOf(pos, size);
    if (seconds <= 0) return 0;
    const end = performance.now() + seconds * 1000;
    // nobody notifies the cell: each wait times out; loop in case one returns early
    for (let left = seconds * 1000; left > 0; left = end - performance.now()) Atomics.wait(this.#cell, 0, 0, left);
    return seconds;
  }

  read(buf: Uint8Array, size: number, pos: number): ReadResult {
    this.block(pos, size);
    return this.#inner.read(buf, size, pos);
  }

  stillThere(): boolean {
    return this.#inner.stillThere();
  }

  reopen(): void {
    this.#inner.reopen();
  }

  close(): void {
    this.#inner.close();
  }
}

function invalid(spec: string, why: string): MapfileError {
  return new MapfileError('ERR_ARG_INVALID', `${OPTION} '${spec}': ${why}. Give a comma list of POS+SIZE@SECONDS, e.g. 0x100000+64KiB@12.`, { option: OPTION, value: spec });
}

/**
 * Parse `--test-slow-reads SPEC`: a comma list of `POS+SIZE@SECONDS`, POS and SIZE in
 * GNU ddrescue's number forms (`0x100000`, `64KiB`, `8s` with `sectorSize`), SECONDS a
 * decimal number (`12`, `0.5`). Example: `0x100000+64KiB@12,8MiB+512@3.5`.
 * @param sectorSize the bytes of `s` (default 512).
 * @throws MapfileError `ERR_ARG_INVALID` for a malformed list or item, an empty SIZE,
 *   a range past 2^53-1 or SECONDS outside (0, 3600]; `ERR_ARG_BAD_NUMBER`,
 *   `ERR_ARG_BAD_MULTIPLIER`, `ERR_ARG_OUT_OF_LIMITS`, `ERR_ARG_TOO_LARGE` for a bad
 *   POS or SIZE (as `parseNumberArgument`), all with `option` `--test-slow-reads`.
 */
export function parseSlowReads(spec: string, sectorSize = 512): SlowRange[] {
  if (spec.trim() === '') throw invalid(spec, 'no range given');
  return spec.split(',').map((item) => {
    const m = /^([^+@]+)\+([^+@]+)@([^+@]+)$/.exec(item.trim());
    if (!m) throw invalid(spec, `'${item}' is not POS+SIZE@SECONDS`);
    const pos = parseNumberArgument(m[1]!, OPTION, sectorSize, 0);
    const size = parseNumberArgument(m[2]!, OPTION, sectorSize, 0);
    if (size === 0) throw invalid(spec, `'${item}' has an empty SIZE`);
    if (!Number.isSafeInteger(pos + size)) throw invalid(spec, `'${item}' ends past 2^53-1`);
    const text = m[3]!;
    const seconds = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || !(seconds > 0) || seconds > MAX_SLOW_SECONDS) {
      throw invalid(spec, `'${item}': SECONDS must be a decimal number above 0 and at most ${MAX_SLOW_SECONDS}, not '${text}'`);
    }
    return { pos, size, seconds };
  });
}
