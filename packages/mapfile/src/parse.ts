import { LLONG_MAX, UNBOUNDED } from './block.js';
import { isCSpace, scanCDecimalInt, scanCInteger, scanCNumber, scanState } from './c-number.js';
import { type MapfileParseCode, mapfileParseError } from './errors.js';
import { SblockVector } from './sblock-vector.js';
import { type BlockStatus, type MapfileStatus, isMapfileStatus, processedState } from './status.js';

/** The state a mapfile holds. */
export interface Mapfile {
  readonly currentPos: number;
  readonly currentStatus: MapfileStatus;
  readonly currentPass: number;
  readonly blocks: SblockVector;
}

/** Options of `parseMapfile`. */
export interface ParseOptions {
  /** Name used in errors. Default `(stdin)`. */
  readonly file?: string;
  /**
   * Loose reading (ddrescue's `-L` for domain and test-mode maps, and `ddrescuelog -C`):
   * blocks may come in any order with gaps; overlapping blocks of the same status are
   * merged; gaps are filled with this status, and a last block of this status is
   * stretched to the end (2^63-1). Strict reading (the default) requires contiguity.
   */
  readonly loose?: BlockStatus;
}

const MAX_LINE = 127;
const EOF = -1;
const NEWLINE = 0x0a;
const HASH = 0x23;
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Reads lines the way GNU ddrescue does: comments (`#` at the start of a line or after
 * white space) and blank lines are skipped, leading white space is dropped, and a line
 * keeps at most 127 characters. Line numbers count physical lines.
 */
class LineReader {
  readonly #bytes: Uint8Array;
  #i = 0;
  linenum = 0;
  readonly buf = new Uint8Array(MAX_LINE + 1);
  len = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  #getc(allowComment: boolean): number {
    const bytes = this.#bytes;
    if (this.#i >= bytes.length) return EOF;
    let ch = bytes[this.#i++]!;
    if (ch === HASH && allowComment) {
      do ch = this.#i < bytes.length ? bytes[this.#i++]! : EOF;
      while (ch !== NEWLINE && ch !== EOF);
    }
    return ch;
  }

  /** Read the next data line into `buf[0..len)`; false at end of file. */
  next(): boolean {
    let len = 1;
    let ch = EOF;
    while (len === 1) {
      do {
        ch = this.#getc(true);
        if (ch === NEWLINE) ++this.linenum;
      } while (ch !== EOF && isCSpace(ch));
      len = 0;
      for (;;) {
        if (ch === EOF) {
          if (len > 0) ch = NEWLINE;
          else break;
        }
        if (len < MAX_LINE) this.buf[len++] = ch;
        if (ch === NEWLINE) {
          ++this.linenum;
          break;
        }
        ch = this.#getc(isCSpace(ch));
      }
    }
    // sscanf sees the line as a C string: it ends at the first NUL
    const nul = this.buf.subarray(0, len).indexOf(0);
    this.len = nul >= 0 ? nul : len;
    return len > 0;
  }
}

function skipSpace(s: Uint8Array, i: number, end: number): number {
  while (i < end && isCSpace(s[i]!)) ++i;
  return i;
}

/**
 * Parse a GNU ddrescue 1.27 mapfile exactly as ddrescue reads it.
 *
 * Numbers may be decimal, hex (`0x`) or octal (leading `0`). Positions and sizes
 * above 2^53-1 are refused, except a block that ends exactly at 2^63-1, which is
 * ddrescue's "to the end" and is read as an `UNBOUNDED` end. An empty file (or one
 * with only comments) is a valid mapfile with no blocks.
 * @throws MapfileError with code `ERR_MAPFILE_BAD_STATUS_LINE`,
 *   `ERR_MAPFILE_BAD_BLOCK_LINE`, `ERR_MAPFILE_NOT_CONTIGUOUS`,
 *   `ERR_MAPFILE_STATUS_OVERLAP` or `ERR_MAPFILE_NUMBER_TOO_LARGE`, naming file and line.
 */
export function parseMapfile(text: Uint8Array | string, options: ParseOptions = {}): Mapfile {
  const file = options.file ?? '(stdin)';
  const bytes = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  const reader = new LineReader(bytes);
  const fail = (code: MapfileParseCode): never => {
    throw mapfileParseError(code, file, reader.linenum);
  };
  let currentPos = 0;
  let currentStatus: MapfileStatus = '?';
  let currentPass = 1;
  const loose = options.loose;
  const blocks = new SblockVector(1024);
  const looseBlocks: LooseBlock[] = [];
  if (reader.next()) {
    const s = reader.buf;
    const end = reader.len;
    const p = scanCInteger(s, 0, end);
    let i = skipSpace(s, p.next, end);
    const ch = p.value !== null && i < end ? String.fromCharCode(s[i]!) : '';
    let pass: bigint | null = 1n;
    if (ch !== '') {
      const d = scanCDecimalInt(s, i + 1, end);
      if (d.value !== null) pass = d.value;
    }
    if (p.value === null || p.value < 0n || !isMapfileStatus(ch) || pass < 1n) fail('ERR_MAPFILE_BAD_STATUS_LINE');
    if (p.value! > MAX_EXACT) fail('ERR_MAPFILE_NUMBER_TOO_LARGE');
    currentPos = Number(p.value);
    currentStatus = ch as MapfileStatus;
    currentPass = Number(pass);

    while (reader.next()) {
      if (fastBlockLine(s, reader.len, loose === undefined ? blocks : null)) continue;
      const a = scanCInteger(s, 0, reader.len);
      const b = a.value === null ? a : scanCInteger(s, a.next, reader.len);
      i = skipSpace(s, b.next, reader.len);
      const st = b.value !== null && i < reader.len ? String.fromCharCode(s[i]!) : '';
      const code = st.length === 1 ? '?*/-+'.indexOf(st) : -1;
      const pos = a.value;
      const size = b.value;
      if (pos === null || size === null || pos < 0n || code < 0 || !(size > 0n || (size === 0n && pos === 0n))) {
        fail('ERR_MAPFILE_BAD_BLOCK_LINE');
      }
      if (pos! > MAX_EXACT) fail('ERR_MAPFILE_NUMBER_TOO_LARGE');
      // glibc clamps an overflowing %lli to 2^63-1, and a ddrescue Block clamps its end there:
      // any block reaching 2^63-1 is ddrescue's "to the end".
      const clampedSize = size! > LLONG_MAX ? LLONG_MAX : size!;
      let blockEnd: number;
      if (pos! + clampedSize >= LLONG_MAX) blockEnd = UNBOUNDED;
      else if (pos! + size! > MAX_EXACT) blockEnd = fail('ERR_MAPFILE_NUMBER_TOO_LARGE');
      else blockEnd = Number(pos! + size!);
      const blockPos = Number(pos!);
      if (loose === undefined) {
        const n = blocks.length;
        if (n > 0 && (blockPos !== blocks.end(n - 1) || blocks.end(n - 1) === UNBOUNDED)) fail('ERR_MAPFILE_NOT_CONTIGUOUS');
        blocks.push(blockPos, blockEnd, code);
      } else if (!insertSorted(looseBlocks, { pos: blockPos, end: blockEnd, code })) {
        fail('ERR_MAPFILE_STATUS_OVERLAP');
      }
    }
    if (loose !== undefined) return { currentPos, currentStatus, currentPass, blocks: fillGaps(looseBlocks, processedState(loose)) };
  }
  return { currentPos, currentStatus, currentPass, blocks };
}

interface LooseBlock {
  pos: number;
  end: number;
  code: number;
}

/** Insert in order, or merge with overlapping blocks of the same status. */
function insertSorted(v: LooseBlock[], sb: LooseBlock): boolean {
  const n = v.length;
  if (n === 0 || sb.pos >= v[n - 1]!.end) {
    v.push(sb);
    return true;
  }
  // first index whose block starts at or after sb's end
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (v[mid]!.pos >= sb.end) hi = mid;
    else lo = mid + 1;
  }
  const i = lo;
  if (i < n && (i === 0 || sb.pos >= v[i - 1]!.end)) {
    v.splice(i, 0, sb);
    return true;
  }
  // blocks first..i-1 overlap sb
  lo = 0;
  hi = i;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (v[mid]!.end > sb.pos) hi = mid;
    else lo = mid + 1;
  }
  const first = lo;
  if (first >= i) return false;
  for (let k = first; k < i; ++k) if (v[k]!.code !== sb.code) return false;
  const merged = v[first]!;
  merged.pos = Math.min(sb.pos, merged.pos);
  merged.end = Math.max(sb.end, v[i - 1]!.end);
  v.splice(first + 1, i - 1 - first);
  return true;
}

/** Fill gaps (also below the first block) with `code`; stretch a last block of `code` to the end. */
function fillGaps(v: readonly LooseBlock[], code: number): SblockVector {
  const out = new SblockVector(v.length * 2 + 1);
  if (v.length === 0) return out;
  if (v[0]!.pos > 0) out.push(0, v[0]!.pos, code);
  for (const b of v) {
    if (out.length > 0 && b.pos > out.end(out.length - 1)) out.push(out.end(out.length - 1), b.pos, code);
    out.push(b.pos, b.end, b.code);
  }
  if (out.code(out.length - 1) === code) out.setLastEnd(UNBOUNDED);
  return out;
}

const CODE_OF_BYTE = new Int8Array(256).fill(-1);
for (let k = 0; k < 5; ++k) CODE_OF_BYTE['?*/-+'.charCodeAt(k)] = k;

/**
 * The common case of a strict block line, without bigints: two exact numbers, a status,
 * contiguous with the list. Returns false (having changed nothing) for anything else,
 * which the general path then reads and judges.
 */
function fastBlockLine(s: Uint8Array, len: number, blocks: SblockVector | null): boolean {
  if (!blocks) return false;
  const pos = scanCNumber(s, 0, len);
  if (!scanState.ok || pos < 0) return false;
  const size = scanCNumber(s, scanState.next, len);
  if (!scanState.ok || size <= 0 || pos + size > Number.MAX_SAFE_INTEGER) return false;
  const i = skipSpace(s, scanState.next, len);
  if (i >= len) return false;
  const code = CODE_OF_BYTE[s[i]!]!;
  if (code < 0) return false;
  const n = blocks.length;
  if (n > 0 && pos !== blocks.end(n - 1)) return false;
  blocks.push(pos, pos + size, code);
  return true;
}
