/**
 * Bounds-checked little- and big-endian field reads for on-disk structures. Every field
 * the used-space scan takes from the disk goes through these: a structure cut short by
 * corruption throws `CorruptError` (the caller then counts what it describes as used),
 * never a `RangeError` or a wrong number.
 */
import type { UsedMapWarningCode } from './warnings.js';

/** A structure that cannot be trusted: the scan of the area it describes falls back to "all used". */
export class CorruptError extends Error {
  override readonly name = 'CorruptError';
  readonly code: UsedMapWarningCode;

  constructor(code: UsedMapWarningCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Throw `CorruptError(code, message)` unless `ok`. */
export function check(ok: boolean, code: UsedMapWarningCode, message: string): asserts ok {
  if (!ok) throw new CorruptError(code, message);
}

function need(buf: Uint8Array, off: number, n: number): void {
  if (!Number.isInteger(off) || off < 0 || off + n > buf.length) {
    throw new CorruptError('ERR_USED_MAP_BAD_METADATA', `a field at byte ${off} lies outside its ${buf.length}-byte structure`);
  }
}

export function u8(buf: Uint8Array, off: number): number {
  need(buf, off, 1);
  return buf[off]!;
}

export function u16(buf: Uint8Array, off: number): number {
  need(buf, off, 2);
  return buf[off]! | (buf[off + 1]! << 8);
}

export function u32(buf: Uint8Array, off: number): number {
  need(buf, off, 4);
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16)) + buf[off + 3]! * 0x1000000;
}

/** A 64-bit little-endian field; above 2^53-1 it is corrupt for any disk this scan reads. */
export function u64(buf: Uint8Array, off: number, code: UsedMapWarningCode = 'ERR_USED_MAP_BAD_METADATA'): number {
  const lo = u32(buf, off);
  const hi = u32(buf, off + 4);
  check(hi < 0x200000, code, `a 64-bit field at byte ${off} is above 2^53`);
  return hi * 0x100000000 + lo;
}

export function be32(buf: Uint8Array, off: number): number {
  need(buf, off, 4);
  return buf[off]! * 0x1000000 + ((buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!);
}

/** Latin-1 text of `n` bytes (signatures such as `NTFS    `, `EFI PART`). */
export function ascii(buf: Uint8Array, off: number, n: number): string {
  need(buf, off, n);
  let s = '';
  for (let i = 0; i < n; ++i) s += String.fromCharCode(buf[off + i]!);
  return s;
}

/** The bytes `[off, off + n)` of `buf` (a view, not a copy). */
export function slice(buf: Uint8Array, off: number, n: number): Uint8Array {
  need(buf, off, n);
  return buf.subarray(off, off + n);
}

/** True if `n` is a power of two between `min` and `max`. */
export function isPowerOfTwo(n: number, min: number, max: number): boolean {
  return Number.isInteger(n) && n >= min && n <= max && (n & (n - 1)) === 0;
}
