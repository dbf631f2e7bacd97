/**
 * ddrescuelog's operations, each as GNU ddrescuelog 1.27 performs it: the same
 * reading mode, domain cropping, splitting, compaction, output and exit status.
 */
import { isAbsolute, resolve } from 'node:path';

import { LLONG_MAX, UNBOUNDED, makeBlock } from '../block.js';
import { isCSpace, scanCInteger } from '../c-number.js';
import type { Domain } from '../domain.js';
import { formatNum, formatPercentage } from '../format-num.js';
import { removeFile, saveMapfile } from '../io.js';
import { CompactingBuilder, SblockVector } from '../sblock-vector.js';
import { StatusMap } from '../status-map.js';
import { BLOCK_STATUS_CHARS, type BlockStatus, mapfileStatusName, processedState } from '../status.js';
import { type Context, Exit } from './context.js';

const FINISHED = 4;

function exact(n: number): bigint {
  return n === UNBOUNDED ? LLONG_MAX : BigInt(n);
}

function* bordersOf(v: SblockVector): IterableIterator<number> {
  for (let i = 0; i < v.length; ++i) {
    yield v.pos(i);
    yield v.end(i);
  }
}

/** The blocks of `v` inside the domain, in order: index callbacks, stopping past its end. */
function forEachInDomain(v: SblockVector, domain: Domain, fn: (i: number) => void): void {
  for (let i = 0; i < v.length; ++i) {
    const sb = { pos: v.pos(i), size: v.size(i) };
    if (!domain.includes(sb)) {
      if (domain.end <= sb.pos) break;
      continue;
    }
    fn(i);
  }
}

function notReadable(ctx: Context, name: string): number {
  ctx.fileError(name === '-' ? '(stdin)' : name, 'Mapfile does not exist or is not readable.');
  return 1;
}

function stateOf(m: { currentPos: number; currentStatus: '?' | '*' | '/' | '-' | 'F' | 'G' | '+'; currentPass: number }, blocks: SblockVector) {
  return { currentPos: m.currentPos, currentStatus: m.currentStatus, currentPass: m.currentPass, blocks };
}

/** `-t`: the summary of one mapfile. */
export async function showStatus(ctx: Context, domainIn: Domain, name: string, loose: boolean): Promise<number> {
  const m = await ctx.readMapfile(name, loose ? '?' : undefined);
  if (!m) return notReadable(ctx, name);
  const blocks = m.blocks.compact();
  const extent = blocks.extent();
  const domain = domainIn.crop(extent);
  if (domain.isEmpty()) return ctx.emptyDomain();
  const trueSblocks = blocks.length;
  const v = blocks.splitAt(domain.borders());
  const sizes = [0n, 0n, 0n, 0n, 0n];
  const areas = [0, 0, 0, 0, 0];
  forEachInDomain(v, domain, (i) => {
    const c = v.code(i);
    sizes[c]! += v.end(i) === UNBOUNDED ? LLONG_MAX - BigInt(v.pos(i)) : BigInt(v.size(i));
    ++areas[c]!;
  });
  const domainSize = domain.inSizeExact();
  const num = (n: number | bigint): string => `${formatNum(n, { binary: ctx.binaryPrefixes }).padStart(9)}B`;
  const area = (n: number): string => String(n).padStart(6);
  let out = '';
  if (ctx.verbosity >= 1) out += `\n${name}`;
  out += `\n   current pos: ${num(m.currentPos)},  current status: ${mapfileStatusName(m.currentStatus)}\n`;
  const extentSize = extent.size === UNBOUNDED ? LLONG_MAX - BigInt(extent.pos) : BigInt(extent.size);
  out += `mapfile extent: ${num(extentSize)},  in ${area(trueSblocks)} area(s)\n`;
  if (domain.pos > 0 || domain.end < extent.pos + extent.size || domain.blocks.length > 1) {
    out += `  domain begin: ${num(domain.pos)},  domain end: ${num(exact(domain.end))}\n`;
    out += `   domain size: ${num(domainSize)},  in ${area(domain.blocks.length)} area(s)\n`;
  }
  const line = (label: string, c: number): string => `${label}: ${num(sizes[c]!)},  in ${area(areas[c]!)} area(s)  (${formatPercentage(sizes[c]!, domainSize)})\n`;
  out += `\n${line('     non-tried', 0)}${line('       rescued', 4)}${line('   non-trimmed', 1)}${line('   non-scraped', 2)}${line('    bad-sector', 3)}`;
  ctx.io.stdout(out);
  return 0;
}

/** `-a OLD,NEW` and `-n`: change in-domain statuses like `tr`. */
export async function changeTypes(ctx: Context, domainIn: Domain, name: string, types1: string, types2: string): Promise<number> {
  const m = await ctx.readMapfile(name);
  if (!m) return notReadable(ctx, name);
  const domain = domainIn.crop(m.blocks.extent());
  if (domain.isEmpty()) return ctx.emptyDomain();
  const codes = BLOCK_STATUS_CHARS.split('').map((status, code) => {
    const j = types1.indexOf(status);
    return j >= 0 ? processedState(types2[j] as BlockStatus) : code;
  });
  ctx.writeMapfile(stateOf(m, changedInDomain(m.blocks, domain, codes)));
  return 0;
}

/**
 * `blocks` split at the domain's borders, the code `c` of each piece inside the domain
 * replaced by `codes[c]`, then compacted: ddrescuelog's split, change and compaction
 * in one pass, building one new list instead of three (the -a of a map of a million
 * blocks holds 6 MiB less).
 */
function changedInDomain(blocks: SblockVector, domain: Domain, codes: readonly number[]): SblockVector {
  const out = new CompactingBuilder(blocks.length);
  blocks.forEachSplitAt(domain.borders(), (pos, end, code) => out.push(pos, end, domain.includes({ pos, size: end - pos }) ? codes[code]! : code));
  return out.finish();
}

/** `-A`: the mapfile with human-readable comments on in-domain lines. */
export async function annotate(ctx: Context, domainIn: Domain, name: string): Promise<number> {
  const m = await ctx.readMapfile(name);
  if (!m) return notReadable(ctx, name);
  const domain = domainIn.crop(m.blocks.extent());
  if (domain.isEmpty()) return ctx.emptyDomain();
  ctx.writeMapfile(stateOf(m, m.blocks.splitAt(domain.borders())), domain);
  return 0;
}

/** `-x`, `-y`, `-z`: xor, and, or of the finished blocks of a second mapfile. */
export async function logicOp(ctx: Context, domainIn: Domain, name: string, second: string, op: 'xor' | 'and' | 'or'): Promise<number> {
  const m1 = await ctx.readMapfile(name);
  if (!m1) return notReadable(ctx, name);
  const c1 = m1.blocks.compact();
  const m2 = await ctx.readMapfile(second);
  if (!m2) return notReadable(ctx, second);
  const c2 = m2.blocks.compact();
  const domain = domainIn.crop(c1.extent()).crop(c2.extent());
  if (domain.isEmpty()) return ctx.emptyDomain();
  const d1 = c1.splitAt(domain.borders());
  const d2 = c2.splitAt(domain.borders());
  const v1 = d1.splitAt(bordersOf(d2));
  const v2 = d2.splitAt(bordersOf(v1));
  let j = 0;
  for (let i = 0; i < v1.length; ++i, ++j) {
    while (i < v1.length && !domain.includes({ pos: v1.pos(i), size: v1.size(i) })) ++i;
    while (j < v2.length && !domain.includes({ pos: v2.pos(j), size: v2.size(j) })) ++j;
    if (i >= v1.length || j >= v2.length) break;
    if (v1.pos(i) !== v2.pos(j) || v1.end(i) !== v2.end(j)) {
      ctx.error('internal error: blocks got out of sync.');
      throw new Exit(3);
    }
    const f1 = v1.code(i) === FINISHED;
    const f2 = v2.code(j) === FINISHED;
    if (op === 'and' && f1 && !f2) v1.setCode(i, 3);
    else if (op === 'or' && !f1 && f2) v1.setCode(i, FINISHED);
    else if (op === 'xor' && f2) v1.setCode(i, f1 ? 3 : FINISHED);
  }
  ctx.writeMapfile(stateOf(m1, v1.compact()));
  return 0;
}

/** `-p` and `-P`: compare two mapfiles in the domain (`-P`: finished blocks only). */
export async function compare(ctx: Context, domainIn: Domain, name: string, second: string, asDomain: boolean, loose: boolean): Promise<number> {
  const load = async (n: string, d: Domain): Promise<{ v: SblockVector; domain: Domain } | number> => {
    const m = await ctx.readMapfile(n, asDomain && loose ? '?' : undefined);
    if (!m) return notReadable(ctx, n);
    const c = m.blocks.compact();
    const domain = d.crop(c.extent());
    if (domain.isEmpty()) return ctx.emptyDomain();
    return { v: c.splitAt(domain.borders()), domain };
  };
  const a = await load(name, domainIn);
  if (typeof a === 'number') return a;
  const b = await load(second, domainIn);
  if (typeof b === 'number') return b;
  let differ = false;
  if (!asDomain && !a.domain.equals(b.domain)) differ = true;
  else {
    const skip = (x: { v: SblockVector; domain: Domain }, k: number): number => {
      while (k < x.v.length && (!x.domain.includes({ pos: x.v.pos(k), size: x.v.size(k) }) || (asDomain && x.v.code(k) !== FINISHED))) ++k;
      return k;
    };
    for (let i = 0, j = 0; ; ++i, ++j) {
      i = skip(a, i);
      j = skip(b, j);
      if (i < a.v.length !== j < b.v.length) {
        differ = true;
        break;
      }
      if (i >= a.v.length) break;
      if (a.v.pos(i) !== b.v.pos(j) || a.v.end(i) !== b.v.end(j) || a.v.code(i) !== b.v.code(j)) {
        differ = true;
        break;
      }
    }
  }
  if (differ && ctx.verbosity >= 0) ctx.io.stderr(`ddrescuelog: Mapfiles '${name}' and '${second}' differ.\n`);
  return differ ? 1 : 0;
}

/** `-C[T]`: read loosely filling gaps with T, and print compacted. */
export async function complete(ctx: Context, name: string, type: BlockStatus): Promise<number> {
  const m = await ctx.readMapfile(name, type);
  if (!m) return notReadable(ctx, name);
  ctx.writeMapfile(stateOf(m, m.blocks.compact()));
  return 0;
}

/** `-d` and `-D`: exit 0 if every in-domain block is finished; `-d` then deletes the file. */
export async function testIfDone(ctx: Context, domainIn: Domain, name: string, del: boolean): Promise<number> {
  const m = await ctx.readMapfile(name);
  if (!m) return notReadable(ctx, name);
  const domain = domainIn.crop(m.blocks.extent());
  if (domain.isEmpty()) return ctx.emptyDomain();
  const v = m.blocks.splitAt(domain.borders());
  let done = true;
  forEachInDomain(v, domain, (i) => {
    if (v.code(i) !== FINISHED) done = false;
  });
  const pname = name === '-' ? '(stdin)' : name;
  if (!done) {
    if (ctx.verbosity >= 1) ctx.fileError(pname, 'Mapfile not done.');
    return 1;
  }
  if (!del || name === '-') return 0;
  try {
    await removeFile(isAbsolute(name) ? name : resolve(ctx.io.cwd, name));
  } catch (err) {
    ctx.fileError(name, `Error deleting mapfile: ${strerror(err)}`);
    return 1;
  }
  if (ctx.verbosity >= 1) ctx.fileError(name, 'Mapfile successfully deleted.');
  return 0;
}

/** `--shift`: move every block by `opos - ipos`. */
export async function shiftBlocks(ctx: Context, domainIn: Domain, name: string, ipos: number, opos: number): Promise<number> {
  if (ipos !== 0 && opos !== 0) {
    ctx.error("Either '-i' or '-o' must be 0");
    return 1;
  }
  const m = await ctx.readMapfile(name);
  if (!m) return notReadable(ctx, name);
  const domain = domainIn.crop(m.blocks.extent());
  if (domain.isEmpty()) return ctx.emptyDomain();
  const v = m.blocks;
  v.truncate(domain.end, true);
  ctx.writeMapfile(stateOf(m, v.shift(opos - ipos, 0).compact()));
  return 0;
}

function testOffset(ctx: Context, offset: number, hardbs: number): void {
  if (Math.abs(offset) % hardbs !== 0) {
    ctx.error("Offset between '-i' and '-o' must be 0 or a multiple of sector size.");
    throw new Exit(1);
  }
}

export type BitmapFormat = 'list' | 'bitmap-le' | 'bitmap-be';

/** Collects output bytes and hands them to stdout in slices. */
class ByteOut {
  readonly #ctx: Context;
  #buf = Buffer.allocUnsafe(1 << 16);
  #n = 0;
  constructor(ctx: Context) {
    this.#ctx = ctx;
  }
  put(byte: number): void {
    if (this.#n === this.#buf.length) this.flush();
    this.#buf[this.#n++] = byte;
  }
  text(s: string): void {
    if (this.#n + s.length > this.#buf.length) this.flush();
    if (s.length > this.#buf.length) this.#ctx.io.stdout(s);
    else this.#n += this.#buf.write(s, this.#n, 'latin1');
  }
  flush(): void {
    if (this.#n > 0) this.#ctx.io.stdout(Buffer.from(this.#buf.subarray(0, this.#n)));
    this.#buf = Buffer.allocUnsafe(1 << 16);
    this.#n = 0;
  }
}

/** `-l TYPES`: block numbers (badblocks format) or a bitmap of the blocks of those types. */
export async function listBlocks(ctx: Context, domainIn: Domain, name: string, offset: number, hardbs: number, format: BitmapFormat, types: string): Promise<number> {
  testOffset(ctx, offset, hardbs);
  if (format !== 'list' && ctx.io.stdoutIsTTY) {
    ctx.fileError('(stdout)', "I won't write bitmap data to a terminal.");
    throw new Exit(1);
  }
  const m = await ctx.readMapfile(name);
  if (!m) return notReadable(ctx, name);
  const domain = domainIn.crop(m.blocks.extent());
  if (domain.isEmpty()) return ctx.emptyDomain();
  const v = m.blocks.splitAt(domain.borders());
  const out = new ByteOut(ctx);
  if (format === 'list') {
    let last = -1;
    forEachInDomain(v, domain, (i) => {
      if (!types.includes(v.status(i))) return;
      let block = Math.floor((v.pos(i) + offset) / hardbs);
      for (const end = v.end(i) + offset; block * hardbs < end; ++block) {
        if (block > last) {
          last = block;
          out.text(`${block}\n`);
        }
      }
    });
  } else {
    writeBitmap(out, v, domain, offset, hardbs, types, format === 'bitmap-le');
  }
  out.flush();
  return 0;
}

/** ddrescuelog's `to_bitmap`: one bit per block of `hardbs` bytes, 1 where the status is in `types`. */
function writeBitmap(out: ByteOut, v: SblockVector, domain: Domain, offset: number, hardbs: number, types: string, le: boolean): void {
  let bitnum = 0;
  let byte = 0;
  const bit = (k: number): number => 1 << (le ? k : 7 - k);
  const putBits = (bitsIn: number, isOne: boolean): void => {
    let bits = bitsIn;
    while (bits > 0 && bitnum !== 0) {
      --bits;
      if (isOne) byte |= bit(bitnum);
      if (++bitnum >= 8) {
        bitnum = 0;
        out.put(byte);
      }
    }
    if (bits <= 0) return;
    const whole = isOne ? 0xff : 0;
    for (; bits >= 8; bits -= 8) out.put(whole);
    byte = 0;
    for (; bits > 0; --bits, ++bitnum) if (isOne) byte |= bit(bitnum);
  };
  let skip = offset < 0 ? Math.floor(-offset / hardbs) : 0;
  let pos = v.length > 0 ? v.pos(0) : 0;
  let prevWasOne = false;
  if (offset >= hardbs) putBits(Math.floor(offset / hardbs), false);
  if (pos >= hardbs) putBits(Math.floor(pos / hardbs), false);
  for (let i = 0; i < v.length; ++i) {
    const sbPos = v.pos(i);
    const sbEnd = v.end(i);
    const isOne = domain.includes({ pos: sbPos, size: sbEnd - sbPos }) && types.includes(v.status(i));
    if (pos % hardbs !== 0) {
      const rest = hardbs - (pos % hardbs);
      if (isOne) prevWasOne = true;
      if (sbEnd - sbPos < rest) {
        pos += sbEnd - sbPos;
        continue;
      }
      if (skip > 0) --skip;
      else putBits(1, prevWasOne);
      pos += rest;
    }
    let run = Math.floor((sbEnd - pos) / hardbs);
    pos += run * hardbs;
    if (skip > 0) {
      if (skip >= run) {
        skip -= run;
        run = 0;
      } else {
        run -= skip;
        skip = 0;
      }
    }
    if (run > 0) putBits(run, isOne);
    if (pos < sbEnd) {
      pos = sbEnd;
      prevWasOne = isOne;
    }
  }
  if (pos % hardbs !== 0 && skip <= 0) putBits(1, prevWasOne);
  if (bitnum !== 0) out.put(byte);
}

/** `-c[T1T2]`: make a mapfile from a block list or bitmap on stdin. */
export async function createMapfile(ctx: Context, domain: Domain, name: string, offset: number, hardbs: number, format: BitmapFormat, type1: BlockStatus, type2: BlockStatus, force: boolean): Promise<number> {
  if (domain.isEmpty()) return ctx.emptyDomain();
  testOffset(ctx, offset, hardbs);
  if (format !== 'list' && ctx.io.stdinIsTTY) {
    ctx.fileError('(stdin)', "I won't read bitmap data from a terminal.");
    throw new Exit(1);
  }
  const toStdout = name === '-';
  if (!toStdout && !force && (await ctx.readMapfile(name))) {
    ctx.fileError(name, "Mapfile exists. Use '--force' to overwrite it.");
    return 1;
  }
  const whole = new SblockVector(1);
  whole.push(0, UNBOUNDED, processedState(type2));
  const map = new StatusMap(whole.splitAt(domain.borders()));
  const input = await ctx.io.readStdin();
  const ok = format === 'list'
    ? markFromList(ctx, map, domain, input, hardbs, type1)
    : markFromBitmap(ctx, map, domain, input, hardbs, type1, format === 'bitmap-le');
  if (!ok) return 2;
  const v = map.toVector();
  v.truncate(domain.end, true);
  // ddrescuelog shifts the 2^63-1 end too: with -o < -i the last block ends below it
  const state = { currentPos: 0, currentStatus: '?' as const, currentPass: 1, blocks: v.shift(offset, processedState(type2)).compact(), unboundedShift: Math.min(offset, 0) };
  if (toStdout) {
    ctx.writeMapfile(state);
    return 0;
  }
  try {
    await saveMapfile(isAbsolute(name) ? name : resolve(ctx.io.cwd, name), ctx.format(state));
  } catch (err) {
    ctx.fileError(name, `Error writing mapfile: ${strerror((err as { cause?: unknown }).cause ?? err)}`);
    return 1;
  }
  return 0;
}

function markFromList(ctx: Context, map: StatusMap, domain: Domain, input: Uint8Array, hardbs: number, type1: BlockStatus): boolean {
  const limit = Math.floor(Number.MAX_SAFE_INTEGER / hardbs);
  let i = 0;
  for (let linenum = 1; ; ++linenum) {
    while (i < input.length && isCSpace(input[i]!)) ++i;
    if (i >= input.length) return true;
    const s = scanCInteger(input, i, input.length, false);
    if (s.value === null || s.value < 0n || s.value > BigInt(limit)) {
      if (ctx.verbosity >= 0) ctx.io.stderr(`ddrescuelog: (stdin): Error reading block number at line ${linenum}\n`);
      return false;
    }
    i = s.next;
    const b = makeBlock(Number(s.value) * hardbs, hardbs);
    if (domain.includes(b)) map.changeChunkStatus(b, type1, domain);
  }
}

function markFromBitmap(ctx: Context, map: StatusMap, domain: Domain, input: Uint8Array, hardbs: number, type1: BlockStatus, le: boolean): boolean {
  const markRun = (first: number, last: number): boolean => {
    if (last > Math.floor(Number.MAX_SAFE_INTEGER / hardbs)) {
      ctx.fileError('(stdin)', 'Too many blocks in bitmap.');
      return false;
    }
    const b = { pos: first * hardbs, size: (last - first) * hardbs };
    if (domain.includes(b)) map.changeChunkStatus(b, type1, domain);
    else if (domain.overlaps(b)) {
      for (let s = { pos: b.pos, size: hardbs }; s.pos < b.pos + b.size && domain.includes(s); s = { pos: s.pos + hardbs, size: hardbs }) {
        map.changeChunkStatus(s, type1, domain);
      }
    }
    return true;
  };
  let first = -1;
  for (let bytenum = 0; bytenum < input.length; ++bytenum) {
    const byte = input[bytenum]!;
    for (let k = 0; k < 8; ++k) {
      const set = le ? (byte >> k) & 1 : (byte >> (7 - k)) & 1;
      if (set) {
        if (first < 0) first = 8 * bytenum + k;
      } else if (first >= 0) {
        if (!markRun(first, 8 * bytenum + k)) return false;
        first = -1;
      }
    }
  }
  return first < 0 || markRun(first, 8 * input.length);
}

function strerror(err: unknown): string {
  const code = (err as { code?: string }).code;
  const known: Record<string, string> = {
    ENOENT: 'No such file or directory', EACCES: 'Permission denied', EISDIR: 'Is a directory',
    ENOSPC: 'No space left on device', EROFS: 'Read-only file system', EPERM: 'Operation not permitted',
  };
  return (code && known[code]) ?? (err as Error).message;
}
