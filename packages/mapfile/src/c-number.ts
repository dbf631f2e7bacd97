/**
 * Integers as C's `strtoll(..., 0)` and `scanf("%lli")` read them: optional sign,
 * `0x`/`0X` hex, a leading `0` for octal, decimal otherwise. Values are returned
 * as bigint so that nothing is rounded; callers decide what is too large.
 */

export interface ScannedInteger {
  /** The value, or null if no digits could be read (a matching failure). */
  readonly value: bigint | null;
  /** Index just after the last character consumed. */
  readonly next: number;
}

/** C's isspace in the C locale. */
export function isCSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function digitValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return 99;
}

/**
 * Scan an integer the way glibc's `%lli` does, starting at `i` in `s` (bytes).
 * Leading white space is skipped. `0x` followed by no hex digit reads as 0 with
 * the `0x` consumed, as glibc does.
 */
export function scanCInteger(s: Uint8Array, i: number, end: number, skipSpace = true): ScannedInteger {
  if (skipSpace) while (i < end && isCSpace(s[i]!)) ++i;
  let negative = false;
  if (i < end && (s[i] === 0x2b || s[i] === 0x2d)) {
    negative = s[i] === 0x2d;
    ++i;
  }
  let radix = 10;
  if (i < end && s[i] === 0x30) {
    if (i + 1 < end && (s[i + 1] === 0x78 || s[i + 1] === 0x58)) {
      radix = 16;
      i += 2;
      if (!(i < end && digitValue(s[i]!) < 16)) return { value: 0n, next: i };
    } else {
      radix = 8;
    }
  }
  const start = i;
  let small = 0;
  let exact = true;
  while (i < end) {
    const d = digitValue(s[i]!);
    if (d >= radix) break;
    small = small * radix + d;
    if (small > Number.MAX_SAFE_INTEGER) exact = false;
    ++i;
  }
  if (i === start) return { value: null, next: i };
  let value: bigint;
  if (exact) value = BigInt(small);
  else {
    value = 0n;
    const r = BigInt(radix);
    for (let k = start; k < i; ++k) value = value * r + BigInt(digitValue(s[k]!));
  }
  return { value: negative ? -value : value, next: i };
}

/** Scan a decimal `%d` as glibc does: read as a long (clamped), then cut to int. */
export function scanCDecimalInt(s: Uint8Array, i: number, end: number): ScannedInteger {
  while (i < end && isCSpace(s[i]!)) ++i;
  let negative = false;
  if (i < end && (s[i] === 0x2b || s[i] === 0x2d)) {
    negative = s[i] === 0x2d;
    ++i;
  }
  const start = i;
  let value = 0n;
  while (i < end && s[i]! >= 0x30 && s[i]! <= 0x39) {
    if (value <= 1n << 64n) value = value * 10n + BigInt(s[i]! - 0x30);
    ++i;
  }
  if (i === start) return { value: null, next: i };
  if (negative) value = -value;
  const LONG_MAX = (1n << 63n) - 1n;
  if (value > LONG_MAX) value = LONG_MAX;
  if (value < -LONG_MAX - 1n) value = -LONG_MAX - 1n;
  return { value: BigInt.asIntN(32, value), next: i };
}

/** Where `scanCNumber` stopped, and whether it read a value. */
export const scanState = { next: 0, ok: false };

/** The value of each byte as a hex digit, or 99. */
const DIGIT = new Uint8Array(256).fill(99);
for (let c = 0; c < 10; ++c) DIGIT[0x30 + c] = c;
for (let c = 0; c < 6; ++c) DIGIT[0x61 + c] = DIGIT[0x41 + c] = 10 + c;

/**
 * Fast path of `scanCInteger` for values that fit a double exactly: returns the value
 * and sets `scanState`; returns NaN when the caller must use `scanCInteger` (no digits,
 * or a magnitude above 2^53-1).
 */
export function scanCNumber(s: Uint8Array, i: number, end: number): number {
  while (i < end && isCSpace(s[i]!)) ++i;
  const start0 = i;
  let sign = 1;
  if (i < end && (s[i] === 0x2b || s[i] === 0x2d)) {
    if (s[i] === 0x2d) sign = -1;
    ++i;
  }
  let radix = 10;
  if (i < end && s[i] === 0x30) {
    if (i + 1 < end && (s[i + 1] === 0x78 || s[i + 1] === 0x58)) {
      radix = 16;
      i += 2;
      if (!(i < end && DIGIT[s[i]!]! < 16)) {
        scanState.next = i;
        scanState.ok = true;
        return 0;
      }
    } else radix = 8;
  }
  const start = i;
  let v = 0;
  for (; i < end; ++i) {
    const d = DIGIT[s[i]!]!;
    if (d >= radix) break;
    v = v * radix + d;
  }
  if (i === start || v > Number.MAX_SAFE_INTEGER) {
    scanState.next = start0;
    scanState.ok = false;
    return Number.NaN;
  }
  scanState.next = i;
  scanState.ok = true;
  return sign * v + 0;
}
