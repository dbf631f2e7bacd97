/**
 * Number formatting exactly as GNU ddrescue 1.27 prints it on screen and in
 * `ddrescuelog -t` and `-A`.
 */

const SI_PREFIXES = ['k', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y', 'R', 'Q'];
const BINARY_PREFIXES = ['Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei', 'Zi', 'Yi', 'Ri', 'Qi'];

function abs(n: bigint): bigint {
  return n < 0n ? -n : n;
}

/**
 * `format_num`: divide by 1000 (or 1024 with binary prefixes) while the magnitude
 * exceeds `limit` (clamped to 999..999999), truncating, and append the prefix.
 * Returns e.g. `"16777 k"` or `"479232 "`; callers append the unit.
 */
export function formatNum(value: number | bigint, options: { limit?: number; binary?: boolean } = {}): string {
  let num = BigInt(value);
  const limit = BigInt(Math.max(999, Math.min(999999, options.limit ?? 999999)));
  const factor = options.binary ? 1024n : 1000n;
  const prefixes = options.binary ? BINARY_PREFIXES : SI_PREFIXES;
  let p = '';
  for (let i = 0; i < prefixes.length && abs(num) > limit; ++i) {
    num /= factor;
    p = prefixes[i]!;
  }
  return `${BigInt.asIntN(32, num)} ${p}`;
}

/**
 * `format_percentage(num, den, iwidth, prec, rounding)`: the integer part padded to
 * `iwidth`; with `prec` < 0, only the decimals needed (up to -prec); rounded if asked.
 */
export function formatPercentage(numIn: number | bigint, denIn: number | bigint, iwidth = 3, precIn = -2, rounding = true): string {
  const LL = (1n << 63n) - 1n;
  let num = BigInt(numIn);
  let den = BigInt(denIn);
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  if (abs(num) <= LL / 100n && den <= LL / 10n) num *= 100n;
  else if (abs(num) <= LL / 10n) {
    num *= 10n;
    den /= 10n;
  } else den /= 100n;
  if (den === 0n) return num > 0n ? '+INF' : num < 0n ? '-INF' : 'NAN';
  const trunc = precIn < 0;
  let prec = Math.abs(precIn);
  const q = num / den;
  const chars = [...(num < 0n && q === 0n ? '-0' : q.toString()).padStart(iwidth, ' ')];
  let rest = abs(num) % den;
  if (prec > 0 && (rest > 0n || !trunc)) {
    chars.push('.');
    while (prec > 0 && (rest > 0n || !trunc)) {
      rest *= 10n;
      chars.push(String(rest / den));
      rest %= den;
      --prec;
    }
  }
  if (rounding && rest * 2n >= den) roundUp(chars);
  return `${chars.join('')}%`;
}

/** Add one to the last digit of `chars`, carrying as ddrescue does. */
function roundUp(chars: string[]): void {
  const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
  for (let j = chars.length - 1; j >= 0; --j) {
    const c = chars[j]!;
    if (c === '.') continue;
    if (c >= '0' && c < '9') {
      chars[j] = String.fromCharCode(c.charCodeAt(0) + 1);
      return;
    }
    if (c === '9') chars[j] = '0';
    if (j > 0 && chars[j - 1] === '.') continue;
    if (j > 0 && chars[j - 1] === ' ') {
      chars[j - 1] = '1';
      return;
    }
    if (j > 1 && chars[j - 2] === ' ' && chars[j - 1] === '-') {
      chars[j - 2] = '-';
      chars[j - 1] = '1';
      return;
    }
    if (j === 0 || !isDigit(chars[j - 1])) {
      chars.splice(j, 0, '1');
      chars.pop();
      return;
    }
  }
}

/** `format_num3`: groups of three digits with `_`, and a k/Ki... suffix when exact. */
export function formatNum3(value: number | bigint): string {
  let num = BigInt(value);
  const negative = num < 0n;
  let suffix = '';
  if (num > 1024n || num < -1024n) {
    const bin = 'KMGTPEZYRQ';
    const si = 'kMGTPEZYRQ';
    let prefix = '';
    for (let i = 0; i < 10 && num !== 0n && num % 1024n === 0n; ++i) {
      num /= 1024n;
      prefix = bin[i]!;
    }
    if (prefix) suffix = `${prefix}i`;
    else {
      for (let i = 0; i < 10 && num !== 0n && num % 1000n === 0n; ++i) {
        num /= 1000n;
        prefix = si[i]!;
      }
      suffix = prefix;
    }
  }
  const digits = abs(num).toString();
  const split = abs(num) >= 10000n;
  let out = '';
  for (let i = 0; i < digits.length; ++i) {
    const fromEnd = digits.length - i;
    out += digits[i];
    if (split && fromEnd > 1 && (fromEnd - 1) % 3 === 0) out += '_';
  }
  return `${negative ? '-' : ''}${out}${suffix}`;
}
