import { LLONG_MAX, UNBOUNDED } from './block.js';
import type { Domain } from './domain.js';
import { formatNum } from './format-num.js';
import type { MapfileStatus } from './status.js';

/** Walks blocks in order: `fn(pos, end, code)`, `code` being the processed state 0..4. */
export interface BlockWalker {
  forEachBlock(fn: (pos: number, end: number, code: number) => void): void;
  /**
   * Copy the blocks from the `from`-th on, at most `max`, into `pos`, `end` and `code`.
   * @returns how many were copied (0 at the end).
   */
  readBlocks(from: number, max: number, pos: Float64Array, end: Float64Array, code: Uint8Array): number;
  readonly length: number;
}

/** The comment header GNU ddrescue writes at the top of a mapfile. */
export interface MapfileHeader {
  /** `ddrescue` or `ddrescuelog`: the program named in line 1; `ddferry` for maps ddferry makes itself. */
  readonly program: 'ddrescue' | 'ddrescuelog' | 'ddferry';
  /** argv[0] and every argument joined with single spaces. */
  readonly commandLine: string;
  /** `%Y-%m-%d %H:%M:%S`, local time at program start (see `formatTimestamp`); '' for none (ddferry maps only). */
  readonly startTime: string;
  /** The `# Current time:` line; ddrescue writes it, ddrescuelog does not. */
  readonly currentTime?: string;
  /** The status message line (`Copying non-tried blocks... Pass 1 (forwards)`, `Finished`). */
  readonly message?: string;
}

/** The state line of a mapfile. */
export interface MapfileState {
  readonly currentPos: number;
  readonly currentStatus: MapfileStatus;
  readonly currentPass: number;
  readonly blocks: BlockWalker;
  /**
   * Where an `UNBOUNDED` end lies, relative to 2^63-1 (0 or negative). `ddrescuelog -c`
   * shifts its unbounded last block by a negative `-o` minus `-i`, so it ends below 2^63-1.
   */
  readonly unboundedShift?: number;
}

/** The version of GNU ddrescue whose format is written. */
export const DDRESCUE_VERSION = '1.27';

/** Local time as ddrescue prints it: `2026-11-23 08:01:39`. */
export function formatTimestamp(date: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
}

const HEX = Buffer.from('0123456789ABCDEF', 'latin1');
const STATUS_BYTES = Buffer.from('?*/-+', 'latin1');
const TWO_POW_32 = 4294967296;
/** The two hex digits of each byte value, as `(high digit << 8) | low digit`. */
const HEX_PAIRS = Uint16Array.from({ length: 256 }, (_, i) => (HEX[i >> 4]! << 8) | HEX[i & 15]!);

/** A number on its way into `TextSink.hexAt`. */
const ONE = new Float64Array(1);
/** Blocks `formatMapfileChunks` reads at a time. */
const READ_BATCH = 512;

/**
 * Write the lines of blocks `from..to` of the batch while `out` has room.
 * @returns the index of the first block not written.
 */
function writeLines(
  out: TextSink, limit: number, pos: Float64Array, end: Float64Array, code: Uint8Array, from: number, to: number,
  unboundedEnd: bigint, annotate: Domain | undefined, num: (v: number | bigint) => string,
): number {
  for (let k = from; k < to; ++k) {
    if (out.n > limit) return k;
    out.hexAt(pos, k);
    out.byte(0x20);
    out.byte(0x20);
    if (end[k] === UNBOUNDED) out.bigHex(unboundedEnd - BigInt(pos[k]!));
    else out.hexSizeAt(pos, end, k);
    out.byte(0x20);
    out.byte(0x20);
    out.byte(STATUS_BYTES[code[k]!]!);
    if (annotate) annotateLine(out, annotate, pos[k]!, end[k]!, unboundedEnd, num);
    out.byte(0x0a);
  }
  return to;
}

/** The `-A` comment of an in-domain block line. */
function annotateLine(out: TextSink, annotate: Domain, pos: number, end: number, unboundedEnd: bigint, num: (v: number | bigint) => string): void {
  if (!annotate.includes({ pos, size: end - pos })) return;
  const size = end === UNBOUNDED ? unboundedEnd - BigInt(pos) : end - pos;
  out.text(`\t#  ${num(pos).padStart(9)}B  ${num(size).padStart(9)}${size > 999999 ? 'B' : ' '}`);
}

/** Room a block line needs at most: two 2^63 hex numbers, a status and an annotation. */
const LINE_ROOM = 256;
/** Default size of the pieces `formatMapfileChunks` yields. */
export const FORMAT_CHUNK_SIZE = 65536;

/** A byte buffer for writing mapfile text quickly; it grows only for an overlong header. */
class TextSink {
  buf: Buffer;
  n = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(Math.max(size, LINE_ROOM * 2));
  }
  reserve(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }
  text(s: string): void {
    this.reserve(s.length * 3);
    this.n += this.buf.write(s, this.n, 'utf8');
  }
  /**
   * `0x%08llX` of `a[k]`, an exact integer below 2^53. Numbers are handed over in
   * typed arrays: a position passed as an argument would be boxed, a small garbage
   * object a block.
   */
  hexAt(a: Float64Array, k: number): void {
    const v = a[k]!;
    this.reserve(20);
    const b = this.buf;
    let n = this.n;
    b[n++] = 0x30;
    b[n++] = 0x78;
    const hi = Math.floor(v / TWO_POW_32);
    // lo and hi are each below 2^32, so 32-bit shifts on them are exact
    const lo = v - hi * TWO_POW_32;
    if (hi > 0) {
      for (let shift = 4 * (((35 - Math.clz32(hi)) >> 2) - 1); shift >= 0; shift -= 4) b[n++] = HEX[(hi >>> shift) & 15]!;
    }
    let pair = HEX_PAIRS[(lo >>> 24) & 255]!;
    b[n++] = pair >> 8;
    b[n++] = pair & 255;
    pair = HEX_PAIRS[(lo >>> 16) & 255]!;
    b[n++] = pair >> 8;
    b[n++] = pair & 255;
    pair = HEX_PAIRS[(lo >>> 8) & 255]!;
    b[n++] = pair >> 8;
    b[n++] = pair & 255;
    pair = HEX_PAIRS[lo & 255]!;
    b[n++] = pair >> 8;
    b[n++] = pair & 255;
    this.n = n;
  }
  /** `0x%08llX` of `end[k] - pos[k]`. */
  hexSizeAt(pos: Float64Array, end: Float64Array, k: number): void {
    ONE[0] = end[k]! - pos[k]!;
    this.hexAt(ONE, 0);
  }

  /** `0x%08llX` of an exact integer below 2^53. */
  hex(v: number): void {
    ONE[0] = v;
    this.hexAt(ONE, 0);
  }

  bigHex(v: bigint): void {
    this.text(`0x${v.toString(16).toUpperCase().padStart(8, '0')}`);
  }
  byte(c: number): void {
    this.reserve(1);
    this.buf[this.n++] = c;
  }
  result(): Buffer {
    return this.buf.subarray(0, this.n);
  }
}

/**
 * Write a mapfile byte-identical to GNU ddrescue 1.27 (`Mapfile::write_mapfile`):
 * header, optional Current time and message lines, the status line and one line
 * per block, `0x%08llX  0x%08llX  %c`. An `UNBOUNDED` end is written as 2^63-1
 * (plus `unboundedShift`).
 * With `annotate` (ddrescuelog -A), in-domain lines get human-readable comments.
 * For a large map, `formatMapfileChunks` gives the same bytes in pieces.
 */
export function formatMapfile(state: MapfileState, header: MapfileHeader, annotate?: Domain, binaryPrefixes = false): Buffer {
  const pieces: Buffer[] = [];
  for (const piece of formatMapfileChunks(state, header, annotate, binaryPrefixes)) pieces.push(Buffer.from(piece));
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
}

/**
 * The bytes of `formatMapfile`, in pieces of about `chunkSize` bytes, so that a map of
 * any size is written with one buffer. Each piece is valid until the next is asked
 * for (the buffer is reused): write or copy it first. The blocks must not change
 * while the pieces are taken.
 */
export function* formatMapfileChunks(
  state: MapfileState, header: MapfileHeader, annotate?: Domain, binaryPrefixes = false, chunkSize = FORMAT_CHUNK_SIZE,
): Generator<Uint8Array, void, undefined> {
  const out = new TextSink(chunkSize);
  if (header.program === 'ddferry') {
    out.text(`# Mapfile. Created by ddferry in the format of GNU ddrescue ${DDRESCUE_VERSION}\n# Command line: ${header.commandLine}\n`);
    if (header.startTime !== '') out.text(`# Start time:   ${header.startTime}\n`);
  } else {
    const program = header.program === 'ddrescue' ? 'GNU ddrescue' : 'GNU ddrescuelog';
    out.text(`# Mapfile. Created by ${program} version ${DDRESCUE_VERSION}\n# Command line: ${header.commandLine}\n# Start time:   ${header.startTime}\n`);
  }
  if (header.currentTime !== undefined) out.text(`# Current time: ${header.currentTime}\n`);
  if (header.message) out.text(`# ${header.message}\n`);
  out.text('# current_pos  current_status  current_pass\n');
  out.hex(state.currentPos);
  out.text(`     ${state.currentStatus}               ${state.currentPass}`);
  const num = (v: number | bigint): string => formatNum(v, { binary: binaryPrefixes });
  if (annotate) out.text(`\t#  ${num(state.currentPos)}B`);
  out.text('\n#      pos        size  status\n');
  const unboundedEnd = LLONG_MAX + BigInt(state.unboundedShift ?? 0);
  const limit = Math.max(out.buf.length - LINE_ROOM, out.n);
  const pos = new Float64Array(READ_BATCH);
  const end = new Float64Array(READ_BATCH);
  const code = new Uint8Array(READ_BATCH);
  for (let i = 0; ;) {
    const got = state.blocks.readBlocks(i, READ_BATCH, pos, end, code);
    if (got === 0) break;
    i += got;
    // the lines are written by a plain function, which V8 optimises (a generator's loop it would not)
    for (let k = 0; k < got;) {
      k = writeLines(out, limit, pos, end, code, k, got, unboundedEnd, annotate, num);
      if (k < got) {
        yield out.result();
        out.n = 0;
      }
    }
  }
  yield out.result();
}
