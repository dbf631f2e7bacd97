import { ArgumentError, parseNumberArgument } from '@ddferry/mapfile';

import type { ReadResult, Source, SourceIdentity } from './source.js';

/** Reads overlapping `[pos, pos+size)` block for `seconds`. */
export interface SlowRead {
  readonly pos: number;
  readonly size: number;
  readonly seconds: number;
}

/** The longest block one slow range may ask for: a day. */
const MAX_SECONDS = 86_400;

/**
 * Parse `plan --test-slow-reads SPEC`: a comma list of `POS+SIZE@SECONDS`, positions and
 * sizes in ddrescue's number forms (`0x100000+64KiB@12`), seconds a decimal number.
 * @throws ArgumentError `ERR_ARG_INVALID` naming the bad item.
 */
export function parseSlowReads(spec: string, option = '--test-slow-reads'): SlowRead[] {
  const out: SlowRead[] = [];
  for (const item of spec.split(',')) {
    const m = /^([^+@]+)\+([^@]+)@([0-9]+(?:\.[0-9]+)?)$/.exec(item.trim());
    if (!m) throw new ArgumentError('ERR_ARG_INVALID', option, item, `'${item}' is not POS+SIZE@SECONDS (for example 0x100000+64KiB@12) in option '${option}'.`);
    const pos = parseNumberArgument(m[1]!, option, 1, 0);
    const size = parseNumberArgument(m[2]!, option, 1, 1);
    const seconds = Number(m[3]);
    if (!(seconds > 0 && seconds <= MAX_SECONDS) || !Number.isSafeInteger(pos + size)) {
      throw new ArgumentError('ERR_ARG_INVALID', option, item, `'${item}': seconds must be above 0 and at most ${MAX_SECONDS}, and the range below 2^53, in option '${option}'.`);
    }
    out.push({ pos, size, seconds });
  }
  return out;
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/**
 * Block the thread, uninterruptibly, for the longest slow range `[pos, pos+size)`
 * overlaps: what a read stuck in the kernel does to its process (no timer, no signal
 * handler, no message runs meanwhile).
 */
export function blockOnSlowRead(slow: readonly SlowRead[], pos: number, size: number): void {
  let ms = 0;
  for (const s of slow) if (pos < s.pos + s.size && s.pos < pos + size) ms = Math.max(ms, s.seconds * 1000);
  if (ms > 0) Atomics.wait(SLEEPER, 0, 0, ms);
}

/**
 * A source whose reads overlapping the slow ranges block before they run: a failing
 * disk that answers in seconds, for tests and demos without FUSE.
 */
export class BlockingSource implements Source {
  readonly name: string;
  readonly size: number;
  readonly identity: SourceIdentity;
  readonly #inner: Source;
  readonly #slow: readonly SlowRead[];

  constructor(inner: Source, slow: readonly SlowRead[]) {
    this.#inner = inner;
    this.#slow = slow;
    this.name = inner.name;
    this.size = inner.size;
    this.identity = inner.identity;
  }

  read(buf: Uint8Array, size: number, pos: number): ReadResult {
    blockOnSlowRead(this.#slow, pos, size);
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
