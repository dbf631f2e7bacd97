/**
 * The storage of a `StatusMap`: block starts and status codes in compact pages (see
 * page-codec.ts), with a directory of typed arrays (each page's first position, byte
 * slot, count and the set of codes it holds). One page at a time is decoded, into a
 * cache, for reading and changing; it is encoded back when another page is needed.
 *
 * A cursor is a number, `page * SPAN + index`, or -1 for none. Any change may move
 * entries between pages: cursors are invalid after a change.
 *
 * | operation | cost |
 * |---|---|
 * | `locate` | binary search of the directory, then of one page (a decode if not cached) |
 * | `insertAfter`, `remove`, `setPos`, `setCode` | O(page); a page split or merge shifts the directory |
 * | `nextWithMask`, `prevWithMask` | one byte per page skipped, then one page |
 *
 * Pages taken over from an `SblockVector` stay in its byte store, read-only, until they
 * change; the slots of changed pages are reclaimed by copying the live pages to a new
 * store once the dead bytes outweigh them.
 */
import { ByteStore, MAX_ENTRY_BYTES, decodePage, encodePage, grown, maskOf, pageShift } from './page-codec.js';
import { VECTOR_PAGE, type VectorPages } from './sblock-vector.js';

/** Most entries a page holds; a fuller page is split in two. */
const MAX = 64;
/** A page with fewer entries is merged with the next one if they fit. */
const MIN = 8;
/** Cursor stride: above any page count. */
export const SPAN = 1024;
/** Most entries a page holds for a moment: a full page plus one, or a page taken over from a vector. */
const ROOM = Math.max(MAX, VECTOR_PAGE) + 1;
const scratchBytes = new Uint8Array(ROOM * MAX_ENTRY_BYTES);

export class PagedBlocks {
  #store = new ByteStore();
  /** The byte store of pages taken over from a vector, read-only. */
  #foreign: ByteStore | null = null;
  /** Bytes of slots no page uses any more. */
  #garbage = 0;
  #pages = 0;
  #length = 0;
  #start: Float64Array;
  #addr: Float64Array;
  #len: Uint16Array;
  /** Bytes of the page's slot in the own store; 0 for a page in the foreign store. */
  #cap: Uint16Array;
  #shift: Uint8Array;
  /** Codes present (a superset until the page is encoded again). */
  #mask: Uint8Array;
  #count: Uint16Array;
  #cp = -1;
  #cn = 0;
  #dirty = false;
  readonly #cpos = new Float64Array(ROOM);
  readonly #ccode = new Uint8Array(ROOM);
  /** Where the last walk stopped: block index and its page's first index. */
  #walkIndex = -1;
  #walkPage = 0;
  #walkBase = 0;

  /** Take over `v`'s pages (read in place) and its tail. */
  constructor(v: VectorPages | null) {
    const n = Math.max(4, (v?.pages ?? 0) + 2);
    this.#start = new Float64Array(n);
    this.#addr = new Float64Array(n);
    this.#len = new Uint16Array(n);
    this.#cap = new Uint16Array(n);
    this.#shift = new Uint8Array(n);
    this.#mask = new Uint8Array(n);
    this.#count = new Uint16Array(n);
    if (!v) return;
    if (v.pages > 0) {
      this.#foreign = v.store;
      this.#start.set(v.start.subarray(0, v.pages));
      this.#addr.set(v.addr.subarray(0, v.pages));
      this.#len.set(v.len.subarray(0, v.pages));
      this.#shift.set(v.shift.subarray(0, v.pages));
      this.#mask.set(v.mask.subarray(0, v.pages));
      this.#count.fill(v.tailPos.length, 0, v.pages);
      this.#pages = v.pages;
      this.#length = v.pages * v.tailPos.length;
    }
    if (v.tailN > 0) {
      const p = this.#pages;
      this.#pages = p + 1;
      this.#count[p] = v.tailN;
      this.#length += v.tailN;
      this.#cpos.set(v.tailPos.subarray(0, v.tailN));
      this.#ccode.set(v.tailCode.subarray(0, v.tailN));
      this.#start[p] = v.tailPos[0]!;
      this.#mask[p] = maskOf(v.tailCode, v.tailN);
      this.#cp = p;
      this.#cn = v.tailN;
      this.#dirty = true;
      this.#flush();
    }
  }

  get length(): number {
    return this.#length;
  }

  #load(p: number): void {
    if (this.#cp === p) return;
    this.#flush();
    const addr = this.#addr[p]!;
    const store = this.#cap[p] === 0 ? this.#foreign! : this.#store;
    this.#cn = this.#count[p]!;
    decodePage(store.slabOf(addr), ByteStore.offsetOf(addr), this.#cn, this.#shift[p]!, this.#start[p]!, this.#cpos, this.#ccode);
    this.#cp = p;
  }

  /** Encode the cached page back, in its slot if it fits, else in a new one. */
  #flush(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    const p = this.#cp;
    const n = this.#cn;
    const shift = pageShift(this.#cpos, n);
    const len = encodePage(this.#cpos, this.#ccode, n, shift, scratchBytes, 0);
    if (len > this.#cap[p]!) {
      this.#garbage += this.#cap[p]!;
      const cap = Math.min(scratchBytes.length, len + (len >> 3) + 16);
      this.#addr[p] = this.#store.alloc(cap);
      this.#cap[p] = cap;
    }
    const addr = this.#addr[p]!;
    this.#store.slabOf(addr).set(scratchBytes.subarray(0, len), ByteStore.offsetOf(addr));
    this.#len[p] = len;
    this.#shift[p] = shift;
    this.#mask[p] = maskOf(this.#ccode, n);
    this.#start[p] = this.#cpos[0]!;
    this.#count[p] = n;
    if (this.#garbage > 65536 && this.#garbage > this.#store.allocated - this.#garbage) this.#reclaim();
  }

  /** Copy every page's bytes into a new store, dropping dead slots and the foreign store. */
  #reclaim(): void {
    const store = new ByteStore();
    for (let p = 0; p < this.#pages; ++p) {
      const addr = this.#addr[p]!;
      const from = this.#cap[p] === 0 ? this.#foreign! : this.#store;
      const len = this.#len[p]!;
      const cap = Math.min(scratchBytes.length, len + (len >> 3) + 16);
      const to = store.alloc(cap);
      const off = ByteStore.offsetOf(addr);
      store.slabOf(to).set(from.slabOf(addr).subarray(off, off + len), ByteStore.offsetOf(to));
      this.#addr[p] = to;
      this.#cap[p] = cap;
    }
    this.#store = store;
    this.#foreign = null;
    this.#garbage = 0;
  }

  /** Open a directory slot at page `p` (moving pages p.. up). */
  #insertPage(p: number): void {
    if (this.#pages === this.#start.length) {
      const n = this.#pages * 2;
      this.#start = grown(this.#start, n);
      this.#addr = grown(this.#addr, n);
      this.#len = grown(this.#len, n);
      this.#cap = grown(this.#cap, n);
      this.#shift = grown(this.#shift, n);
      this.#mask = grown(this.#mask, n);
      this.#count = grown(this.#count, n);
    }
    for (const a of [this.#start, this.#addr, this.#len, this.#cap, this.#shift, this.#mask, this.#count]) a.copyWithin(p + 1, p, this.#pages);
    ++this.#pages;
    if (this.#cp >= p) ++this.#cp;
    this.#walkIndex = -1;
  }

  /** Drop directory slot `p` (its page is empty or merged). */
  #removePage(p: number): void {
    this.#garbage += this.#cap[p]!;
    for (const a of [this.#start, this.#addr, this.#len, this.#cap, this.#shift, this.#mask, this.#count]) a.copyWithin(p, p + 1, this.#pages);
    --this.#pages;
    if (this.#cp === p) {
      this.#cp = -1;
      this.#dirty = false;
    } else if (this.#cp > p) --this.#cp;
    this.#walkIndex = -1;
  }

  /** The cursor of the entry with the greatest position ≤ `pos`, or -1. */
  locate(pos: number): number {
    if (this.#pages === 0 || this.#start[0]! > pos) return -1;
    let lo = 0;
    let hi = this.#pages - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#start[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    const p = lo;
    this.#load(p);
    const a = this.#cpos;
    lo = 0;
    hi = this.#cn - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (a[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return p * SPAN + lo;
  }

  first(): number {
    return this.#pages > 0 ? 0 : -1;
  }

  last(): number {
    const p = this.#pages - 1;
    return p >= 0 ? p * SPAN + this.#count[p]! - 1 : -1;
  }

  next(c: number): number {
    const p = Math.floor(c / SPAN);
    if (c - p * SPAN + 1 < this.#count[p]!) return c + 1;
    return p + 1 < this.#pages ? (p + 1) * SPAN : -1;
  }

  prev(c: number): number {
    const p = Math.floor(c / SPAN);
    if (c - p * SPAN > 0) return c - 1;
    return p > 0 ? (p - 1) * SPAN + this.#count[p - 1]! - 1 : -1;
  }

  posAt(c: number): number {
    const p = Math.floor(c / SPAN);
    const i = c - p * SPAN;
    if (i === 0) return this.#start[p]!;
    this.#load(p);
    return this.#cpos[i]!;
  }

  codeAt(c: number): number {
    const p = Math.floor(c / SPAN);
    this.#load(p);
    return this.#ccode[c - p * SPAN]!;
  }

  /** The first entry at or after `c` whose code is in `mask` (bit c for code c), or -1. */
  nextWithMask(c: number, mask: number): number {
    let p = Math.floor(c / SPAN);
    for (let i = c - p * SPAN; p < this.#pages; ++p, i = 0) {
      if ((this.#mask[p]! & mask) === 0) continue;
      this.#load(p);
      const codes = this.#ccode;
      for (let k = i; k < this.#cn; ++k) if (mask & (1 << codes[k]!)) return p * SPAN + k;
    }
    return -1;
  }

  /** The last entry at or before `c` whose code is in `mask`, or -1. */
  prevWithMask(c: number, mask: number): number {
    if (c < 0) return -1;
    let p = Math.floor(c / SPAN);
    for (let i = c - p * SPAN; p >= 0; i = --p >= 0 ? this.#count[p]! - 1 : 0) {
      if ((this.#mask[p]! & mask) === 0) continue;
      this.#load(p);
      const codes = this.#ccode;
      for (let k = i; k >= 0; --k) if (mask & (1 << codes[k]!)) return p * SPAN + k;
    }
    return -1;
  }

  /**
   * Call `fn(pos, end, code)` for the entries from the `from`-th on while it returns
   * true; an entry ends where the next starts, the last at `end`.
   * @returns the index of the first entry not visited (`length` at the end).
   */
  walk(from: number, end: number, fn: (pos: number, end: number, code: number) => boolean): number {
    const pos = new Float64Array(ROOM);
    const ends = new Float64Array(ROOM);
    const code = new Uint8Array(ROOM);
    for (let i = from; ;) {
      const got = this.read(i, ROOM, end, pos, ends, code);
      if (got === 0) return i;
      for (let k = 0; k < got; ++k) {
        if (!fn(pos[k]!, ends[k]!, code[k]!)) {
          // resume at this entry next time
          this.read(i + k, 0, end, pos, ends, code);
          return i + k;
        }
      }
      i += got;
    }
  }

  /**
   * Copy the entries from the `from`-th on, at most `max`, into `pos`, `end` (the next
   * start, or `last` for the last entry) and `code`. Resuming where the last read or
   * walk stopped costs O(1). @returns how many were copied (0 at the end).
   */
  read(from: number, max: number, last: number, pos: Float64Array, end: Float64Array, code: Uint8Array): number {
    let p = 0;
    let base = 0;
    if (from === this.#walkIndex) {
      p = this.#walkPage;
      base = this.#walkBase;
    }
    while (p < this.#pages && base + this.#count[p]! <= from) base += this.#count[p++]!;
    let k = 0;
    for (; p < this.#pages && k < max; base += this.#count[p++]!) {
      this.#load(p);
      const n = this.#cn;
      const next = p + 1 < this.#pages ? this.#start[p + 1]! : last;
      const src = this.#cpos;
      for (let j = Math.max(0, from + k - base); j < n && k < max; ++j, ++k) {
        pos[k] = src[j]!;
        code[k] = this.#ccode[j]!;
        end[k] = j + 1 < n ? src[j + 1]! : next;
      }
      if (k === max) break;
    }
    this.#walkIndex = from + k;
    this.#walkPage = p;
    this.#walkBase = base;
    return k;
  }

  /** Change the code of the entry at `c`. */
  setCode(c: number, code: number): void {
    const p = Math.floor(c / SPAN);
    this.#load(p);
    this.#ccode[c - p * SPAN] = code;
    this.#mask[p] = this.#mask[p]! | (1 << code);
    this.#dirty = true;
  }

  /** Change the position of the entry at `c`; the caller keeps the order. */
  setPos(c: number, pos: number): void {
    const p = Math.floor(c / SPAN);
    const i = c - p * SPAN;
    this.#load(p);
    this.#cpos[i] = pos;
    if (i === 0) this.#start[p] = pos;
    this.#dirty = true;
  }

  /** Insert `(pos, code)` just after `c` (or first, when `c` is -1). */
  insertAfter(c: number, pos: number, code: number): void {
    if (this.#pages === 0) {
      this.#insertPage(0);
      this.#cap[0] = 0;
      this.#flush();
      this.#cp = 0;
      this.#cn = 0;
    }
    const p = c < 0 ? 0 : Math.floor(c / SPAN);
    const i = c < 0 ? 0 : c - p * SPAN + 1;
    this.#load(p);
    const n = this.#cn;
    this.#cpos.copyWithin(i + 1, i, n);
    this.#ccode.copyWithin(i + 1, i, n);
    this.#cpos[i] = pos;
    this.#ccode[i] = code;
    this.#cn = n + 1;
    this.#count[p] = n + 1;
    this.#mask[p] = this.#mask[p]! | (1 << code);
    if (i === 0) this.#start[p] = pos;
    ++this.#length;
    this.#dirty = true;
    this.#walkIndex = -1;
    if (n + 1 > MAX) this.#split(p);
  }

  /** Split the cached page `p` in two halves. */
  #split(p: number): void {
    const n = this.#cn;
    const half = n >> 1;
    this.#insertPage(p + 1);
    const q = p + 1;
    const pos = this.#cpos.subarray(half, n);
    const code = this.#ccode.subarray(half, n);
    const shift = pageShift(pos, n - half);
    const len = encodePage(pos, code, n - half, shift, scratchBytes, 0);
    const cap = Math.min(scratchBytes.length, len + (len >> 3) + 16);
    const addr = this.#store.alloc(cap);
    this.#store.slabOf(addr).set(scratchBytes.subarray(0, len), ByteStore.offsetOf(addr));
    this.#start[q] = pos[0]!;
    this.#addr[q] = addr;
    this.#cap[q] = cap;
    this.#len[q] = len;
    this.#shift[q] = shift;
    this.#mask[q] = maskOf(code, n - half);
    this.#count[q] = n - half;
    this.#cn = half;
    this.#count[p] = half;
    this.#dirty = true;
    this.#flush();
  }

  /** Remove the entry at `c`. */
  remove(c: number): void {
    const p = Math.floor(c / SPAN);
    const i = c - p * SPAN;
    this.#load(p);
    const n = this.#cn - 1;
    this.#cpos.copyWithin(i, i + 1, n + 1);
    this.#ccode.copyWithin(i, i + 1, n + 1);
    this.#cn = n;
    this.#count[p] = n;
    --this.#length;
    this.#dirty = true;
    this.#walkIndex = -1;
    if (n === 0) {
      this.#removePage(p);
      return;
    }
    if (i === 0) this.#start[p] = this.#cpos[0]!;
    if (n < MIN && p + 1 < this.#pages && n + this.#count[p + 1]! <= MAX) this.#mergeNext(p);
  }

  /** Append page `p + 1` to the cached page `p`. */
  #mergeNext(p: number): void {
    const q = p + 1;
    const m = this.#count[q]!;
    const addr = this.#addr[q]!;
    const store = this.#cap[q] === 0 ? this.#foreign! : this.#store;
    decodePage(store.slabOf(addr), ByteStore.offsetOf(addr), m, this.#shift[q]!, this.#start[q]!, this.#cpos.subarray(this.#cn), this.#ccode.subarray(this.#cn));
    this.#cn += m;
    this.#count[p] = this.#cn;
    this.#mask[p] = this.#mask[p]! | this.#mask[q]!;
    this.#removePage(q);
  }
}
