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
const NEWLINE = 0x0a;
const HASH = 0x23;
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/** Where the line reader is (GNU ddrescue's `my_fgets`, one byte at a time): before a line. */
const SKIP = 0;
/** In a comment before a line. */
const SKIP_COMMENT = 1;
/** In a line. */
const LINE = 2;
/** In a comment that ends a line. */
const LINE_COMMENT = 3;

function skipSpace(s: Uint8Array, i: number, end: number): number {
  while (i < end && isCSpace(s[i]!)) ++i;
  return i;
}

/** White space that does not end a line. */
function skipBlank(s: Uint8Array, i: number, end: number): number {
  while (i < end && s[i] !== NEWLINE && isCSpace(s[i]!)) ++i;
  return i;
}

/** An incremental mapfile reader: give it the file in pieces of any size, then `end()`. */
export interface MapfileParser {
  /** Read the next piece. @throws MapfileError as `parseMapfile`. */
  write(chunk: Uint8Array): void;
  /** The mapfile, after the last piece. @throws MapfileError as `parseMapfile`. */
  end(): Mapfile;
}

/**
 * A parser that reads a mapfile in pieces, exactly as `parseMapfile` reads it whole:
 * the file is never held in memory, only a line of at most 127 bytes.
 */
export function createMapfileParser(options: ParseOptions = {}): MapfileParser {
  return new Parser(options);
}

/**
 * Reads lines the way GNU ddrescue does: comments (`#` at the start of a line or after
 * white space) and blank lines are skipped, leading white space is dropped, and a line
 * keeps at most 127 characters. Line numbers count physical lines. Block lines of the
 * usual shape are read straight from the piece, without copying.
 */
class Parser implements MapfileParser {
  readonly #file: string;
  readonly #loose: BlockStatus | undefined;
  #state: number = SKIP;
  /** The line read so far, and its length. */
  readonly #buf = new Uint8Array(MAX_LINE + 1);
  #len = 0;
  /** Whether the last byte read was white space (a `#` then starts a comment). */
  #afterSpace = false;
  #linenum = 0;
  #statusRead = false;
  #currentPos = 0;
  #currentStatus: MapfileStatus = '?';
  #currentPass = 1;
  readonly #blocks = new SblockVector(1024);
  readonly #looseBlocks: LooseBlock[] = [];

  constructor(options: ParseOptions) {
    this.#file = options.file ?? '(stdin)';
    this.#loose = options.loose;
  }

  write(s: Uint8Array): void {
    const n = s.length;
    const buf = this.#buf;
    const fast = this.#statusRead && this.#loose === undefined;
    let state = this.#state;
    let len = this.#len;
    let afterSpace = this.#afterSpace;
    for (let i = 0; i < n;) {
      const ch = s[i]!;
      if (state === SKIP) {
        if (ch === NEWLINE) ++this.#linenum;
        else if (ch === HASH) state = SKIP_COMMENT;
        else if (!isCSpace(ch)) {
          const next = fast ? this.#fastLine(s, i, n) : -1;
          if (next >= 0) {
            i = next;
            continue;
          }
          state = LINE;
          buf[0] = ch;
          len = 1;
          afterSpace = false;
        }
        ++i;
      } else if (state === SKIP_COMMENT) {
        if (ch === NEWLINE) {
          ++this.#linenum;
          state = SKIP;
        }
        ++i;
      } else if (state === LINE) {
        ++i;
        if (ch === HASH && afterSpace) {
          state = LINE_COMMENT;
          continue;
        }
        if (len < MAX_LINE) buf[len++] = ch;
        if (ch === NEWLINE) {
          state = SKIP;
          ++this.#linenum;
          this.#line(len);
          if (!fast && this.#statusRead && this.#loose === undefined) {
            // the rest of this piece can take the fast path
            this.#state = state;
            this.write(s.subarray(i));
            return;
          }
        } else afterSpace = isCSpace(ch);
      } else {
        ++i;
        if (ch === NEWLINE) {
          if (len < MAX_LINE) buf[len++] = ch;
          state = SKIP;
          ++this.#linenum;
          this.#line(len);
        }
      }
    }
    this.#state = state;
    this.#len = len;
    this.#afterSpace = afterSpace;
  }

  end(): Mapfile {
    if (this.#state === LINE || this.#state === LINE_COMMENT) {
      // a last line without a newline ends as if it had one
      if (this.#len < MAX_LINE) this.#buf[this.#len++] = NEWLINE;
      ++this.#linenum;
      this.#state = SKIP;
      this.#line(this.#len);
    }
    const { currentPos, currentStatus, currentPass } = { currentPos: this.#currentPos, currentStatus: this.#currentStatus, currentPass: this.#currentPass };
    if (this.#statusRead && this.#loose !== undefined) {
      return { currentPos, currentStatus, currentPass, blocks: fillGaps(this.#looseBlocks, processedState(this.#loose)) };
    }
    return { currentPos, currentStatus, currentPass, blocks: this.#blocks };
  }

  #fail(code: MapfileParseCode): never {
    throw mapfileParseError(code, this.#file, this.#linenum);
  }

  /**
   * A strict block line of the usual shape (two exact numbers, a status, contiguous
   * with the list, ending in this piece) read in place from `s` at `i`.
   * @returns the index after its newline, or -1 (nothing read) for the general path.
   */
  #fastLine(s: Uint8Array, i: number, n: number): number {
    const pos = scanCNumber(s, i, n);
    if (!scanState.ok || pos < 0) return -1;
    const j = skipBlank(s, scanState.next, n);
    if (j === scanState.next || j >= n || s[j] === NEWLINE) return -1;
    const size = scanCNumber(s, j, n);
    if (!scanState.ok || size <= 0 || pos + size > Number.MAX_SAFE_INTEGER) return -1;
    const k = skipBlank(s, scanState.next, n);
    if (k >= n || k - i >= MAX_LINE) return -1;
    const code = CODE_OF_BYTE[s[k]!]!;
    if (code < 0) return -1;
    const blocks = this.#blocks;
    const count = blocks.length;
    if (count > 0 && pos !== blocks.end(count - 1)) return -1;
    // the rest of the line is ignored; it is usually just the newline
    let nl = k + 1;
    while (nl < n && nl < k + 8 && s[nl] !== NEWLINE) ++nl;
    if (nl >= n || s[nl] !== NEWLINE) nl = s.indexOf(NEWLINE, nl);
    if (nl < 0) return -1;
    blocks.push(pos, pos + size, code);
    ++this.#linenum;
    return nl + 1;
  }

  /** Read the line in `buf[0..len)`. */
  #line(lenIn: number): void {
    const s = this.#buf;
    // sscanf sees the line as a C string: it ends at the first NUL
    let len = 0;
    while (len < lenIn && s[len] !== 0) ++len;
    if (!this.#statusRead) {
      this.#statusRead = true;
      this.#statusLine(s, len);
      return;
    }
    const loose = this.#loose;
    if (fastBlockLine(s, len, loose === undefined ? this.#blocks : null)) return;
    const a = scanCInteger(s, 0, len);
    const b = a.value === null ? a : scanCInteger(s, a.next, len);
    const i = skipSpace(s, b.next, len);
    const st = b.value !== null && i < len ? String.fromCharCode(s[i]!) : '';
    const code = st.length === 1 ? '?*/-+'.indexOf(st) : -1;
    const pos = a.value;
    const size = b.value;
    if (pos === null || size === null || pos < 0n || code < 0 || !(size > 0n || (size === 0n && pos === 0n))) {
      this.#fail('ERR_MAPFILE_BAD_BLOCK_LINE');
    }
    if (pos > MAX_EXACT) this.#fail('ERR_MAPFILE_NUMBER_TOO_LARGE');
    // glibc clamps an overflowing %lli to 2^63-1, and a ddrescue Block clamps its end there:
    // any block reaching 2^63-1 is ddrescue's "to the end".
    const clampedSize = size > LLONG_MAX ? LLONG_MAX : size;
    let blockEnd: number;
    if (pos + clampedSize >= LLONG_MAX) blockEnd = UNBOUNDED;
    else if (pos + size > MAX_EXACT) blockEnd = this.#fail('ERR_MAPFILE_NUMBER_TOO_LARGE');
    else blockEnd = Number(pos + size);
    const blockPos = Number(pos);
    if (loose === undefined) {
      const blocks = this.#blocks;
      const n = blocks.length;
      if (n > 0 && (blockPos !== blocks.end(n - 1) || blocks.end(n - 1) === UNBOUNDED)) this.#fail('ERR_MAPFILE_NOT_CONTIGUOUS');
      blocks.push(blockPos, blockEnd, code);
    } else if (!insertSorted(this.#looseBlocks, { pos: blockPos, end: blockEnd, code })) {
      this.#fail('ERR_MAPFILE_STATUS_OVERLAP');
    }
  }

  #statusLine(s: Uint8Array, end: number): void {
    const p = scanCInteger(s, 0, end);
    const i = skipSpace(s, p.next, end);
    const ch = p.value !== null && i < end ? String.fromCharCode(s[i]!) : '';
    let pass: bigint | null = 1n;
    if (ch !== '') {
      const d = scanCDecimalInt(s, i + 1, end);
      if (d.value !== null) pass = d.value;
    }
    if (p.value === null || p.value < 0n || !isMapfileStatus(ch) || pass < 1n) this.#fail('ERR_MAPFILE_BAD_STATUS_LINE');
    if (p.value > MAX_EXACT) this.#fail('ERR_MAPFILE_NUMBER_TOO_LARGE');
    this.#currentPos = Number(p.value);
    this.#currentStatus = ch as MapfileStatus;
    this.#currentPass = Number(pass);
  }
}

/**
 * Parse a GNU ddrescue 1.27 mapfile exactly as ddrescue reads it.
 *
 * Numbers may be decimal, hex (`0x`) or octal (leading `0`). Positions and sizes
 * above 2^53-1 are refused, except a block that ends exactly at 2^63-1, which is
 * ddrescue's "to the end" and is read as an `UNBOUNDED` end. An empty file (or one
 * with only comments) is a valid mapfile with no blocks. For a large file,
 * `readMapfile` (from `@ddferry/mapfile/io`) reads it in pieces with `createMapfileParser`.
 * @throws MapfileError with code `ERR_MAPFILE_BAD_STATUS_LINE`,
 *   `ERR_MAPFILE_BAD_BLOCK_LINE`, `ERR_MAPFILE_NOT_CONTIGUOUS`,
 *   `ERR_MAPFILE_STATUS_OVERLAP` or `ERR_MAPFILE_NUMBER_TOO_LARGE`, naming file and line.
 */
export function parseMapfile(text: Uint8Array | string, options: ParseOptions = {}): Mapfile {
  const parser = createMapfileParser(options);
  parser.write(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
  return parser.end();
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
