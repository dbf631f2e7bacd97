/**
 * The compact storage of block lists: blocks are kept in pages of up to a few hundred,
 * each page a run of bytes. A page stores its first position apart (in the caller's
 * directory); in its bytes, each block is one variable-length entry holding its status
 * code and the distance from the previous block's start, in units of `2^shift` bytes:
 *
 * | byte | bits |
 * |---|---|
 * | first | 7: more bytes follow; 6-3: the 4 low bits of the distance; 2-0: the code |
 * | next ones | 7: more bytes follow; 6-0: the next 7 bits of the distance |
 *
 * The first entry's distance is 0. A block's end is the next block's start (or the
 * list's end), so sizes are never stored. `shift` is the largest power of two dividing
 * every distance of the page (up to `MAX_SHIFT`): with 512-byte sectors, a block of
 * 1 MiB takes 2 bytes. A typical rescue map needs 2 to 3 bytes a block, where a
 * position and a status in typed arrays take 9.
 */

/** Bytes of one slab of a `ByteStore`. */
const SLAB = 65536;
/** The largest unit of distances is 2^30 bytes. */
const MAX_SHIFT = 30;
const TWO_POW_32 = 4294967296;
/** Bytes an entry takes at most: 4 + 7 * 7 bits cover 2^53. */
export const MAX_ENTRY_BYTES = 8;

/** Byte slabs with a bump allocator: a page's bytes lie in one slab, at an address. */
export class ByteStore {
  readonly slabs: Uint8Array[] = [];
  #used = SLAB;
  /** Bytes allocated. */
  allocated = 0;

  /** Reserve `n` bytes (at most one slab) and return their address. */
  alloc(n: number): number {
    if (n > SLAB) throw new Error(`internal: page of ${n} bytes`);
    if (this.#used + n > SLAB) {
      this.slabs.push(new Uint8Array(SLAB));
      this.#used = 0;
    }
    const addr = (this.slabs.length - 1) * SLAB + this.#used;
    this.#used += n;
    this.allocated += n;
    return addr;
  }

  slabOf(addr: number): Uint8Array {
    return this.slabs[Math.floor(addr / SLAB)]!;
  }

  /** Offset of `addr` in its slab. */
  static offsetOf(addr: number): number {
    return addr % SLAB;
  }
}

/** Values below this take the 32-bit path of the codec (bit operations on them are exact). */
const INT_LIMIT = 0x80000000;

/**
 * The unit (as a shift) for the distances between `pos[0..n)`: the largest power of
 * two dividing all of them, at most `MAX_SHIFT`.
 */
export function pageShift(pos: Float64Array, n: number): number {
  // the trailing zeros of the bitwise or of the distances' low 32 bits are the fewest among them
  let low = 0;
  for (let k = 1; k < n; ++k) {
    const d = pos[k]! - pos[k - 1]!;
    low |= d < INT_LIMIT ? d : d % TWO_POW_32;
  }
  return low === 0 ? MAX_SHIFT : Math.min(MAX_SHIFT, 31 - Math.clz32(low & -low));
}

/**
 * Encode `pos[0..n)`, `code[0..n)` with unit `2^shift` into `out` from `off`.
 * @returns the number of bytes written (at most `n * MAX_ENTRY_BYTES`).
 */
export function encodePage(pos: Float64Array, code: Uint8Array, n: number, shift: number, out: Uint8Array, off: number): number {
  const perUnit = 2 ** -shift;
  let o = off;
  let prev = pos[0]!;
  for (let k = 0; k < n; ++k) {
    const p = pos[k]!;
    const d = (p - prev) * perUnit;
    prev = p;
    if (d < INT_LIMIT) {
      let v = d | 0;
      out[o++] = (v > 15 ? 0x80 : 0) | ((v & 15) << 3) | code[k]!;
      v >>>= 4;
      while (v > 0) {
        out[o++] = (v > 127 ? 0x80 : 0) | (v & 127);
        v >>>= 7;
      }
      continue;
    }
    // a distance of 2^31 units or more: exact arithmetic on doubles
    const low = d % 16;
    let v = (d - low) / 16;
    out[o++] = 0x80 | (low << 3) | code[k]!;
    while (v > 0) {
      const b = v % 128;
      v = (v - b) / 128;
      out[o++] = (v > 0 ? 0x80 : 0) | b;
    }
  }
  return o - off;
}

/** Decode `n` entries from `bytes` at `off` into `pos` and `code`, the first at `start`. */
export function decodePage(bytes: Uint8Array, off: number, n: number, shift: number, start: number, pos: Float64Array, code: Uint8Array): void {
  const unit = 2 ** shift;
  let o = off;
  let p = start;
  for (let k = 0; k < n; ++k) {
    let b = bytes[o++]!;
    code[k] = b & 7;
    let v = (b >> 3) & 15;
    // 4 + 7 + 7 bits stay below 2^18: the first continuation bytes are or'ed in as int32
    for (let bits = 4; b & 0x80; bits += 7) {
      b = bytes[o++]!;
      if (bits <= 18) v |= (b & 0x7f) << bits;
      else v += (b & 0x7f) * 2 ** bits;
    }
    p += v * unit;
    pos[k] = p;
  }
}

/** The byte offset of entry `index` of the page at `off` (to change its code in place). */
export function entryOffset(bytes: Uint8Array, off: number, index: number): number {
  let o = off;
  for (let k = 0; k < index; ++k) while (bytes[o++]! & 0x80);
  return o;
}

/** The set of codes (bit c for code c) among `code[0..n)`. */
export function maskOf(code: Uint8Array, n: number): number {
  let m = 0;
  for (let k = 0; k < n; ++k) m |= 1 << code[k]!;
  return m;
}

/** A growable typed array: a copy of `a` with room for `n` elements. */
export function grown<T extends Float64Array | Uint32Array | Uint16Array | Uint8Array>(a: T, n: number): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}
