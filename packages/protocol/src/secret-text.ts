import { randomBytes } from 'node:crypto';

import { ProtocolError } from './errors.js';

/**
 * Shared secrets a person can read on one machine and type on the other, and
 * a floor on their strength.
 *
 * `makeSecretText()` gives 28 base32 characters (RFC 4648 alphabet, 140 random
 * bits) in groups of four: `K7QM-2XWD-…`. `normalizeSecretText` makes every way
 * of typing it the same secret: a text of at least 26 base32 letters and
 * digits (128 bits), split or not by dashes and spaces, is taken without them,
 * in upper case; any other text (a passphrase, hex with 0, 1, 8 or 9, base64)
 * is only trimmed. Both sides (and the live page) apply it, so
 * `k7qm2xwd…` typed by hand equals the `K7QM-2XWD-…` of the token file.
 *
 * `estimateSecretBits` is a ceiling, not a measure: the length times log2 of
 * the smallest usual alphabet holding every character (digits 10, hex 16,
 * letters of one case 26, base32 32, letters of one case and digits 36,
 * letters and digits 62, base64 64, printable ASCII 95). A random token
 * reaches it; `password1234` looks stronger than it is. It stops one-byte and
 * short tokens, which any peer could guess.
 */

/** Bits a token must be estimated to carry. */
export const MIN_SECRET_BITS = 128;

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
/** Base32 characters carrying 128 bits: shorter texts are never taken for a base32 token. */
const MIN_BASE32_CHARS = 26;
const SECRET_CHARS = 28;
const GROUP = 4;

const ALPHABETS: readonly (readonly [RegExp, number])[] = [
  [/^[0-9]+$/, 10],
  [/^[0-9a-f]+$/, 16],
  [/^[0-9A-F]+$/, 16],
  [/^[a-z]+$/, 26],
  [/^[A-Z]+$/, 26],
  [/^[A-Z2-7]+$/, 32],
  [/^[a-z0-9]+$/, 36],
  [/^[A-Z0-9]+$/, 36],
  [/^[A-Za-z0-9]+$/, 62],
  [/^[A-Za-z0-9+/_-]+$/, 64],
  [/^[\x20-\x7e]+$/, 95],
];

/** A fresh secret: 28 base32 characters (140 bits) in groups of four joined by dashes. */
export function makeSecretText(): string {
  const bytes = randomBytes(Math.ceil((SECRET_CHARS * 5) / 8));
  let chars = '';
  for (let i = 0; i < SECRET_CHARS; i++) {
    // the i-th group of 5 bits, big-endian across the bytes
    const bit = i * 5;
    const two = (bytes[bit >> 3]! << 8) | (bytes[(bit >> 3) + 1] ?? 0);
    chars += BASE32[(two >> (11 - (bit & 7))) & 31];
  }
  return chars.match(new RegExp(`.{1,${GROUP}}`, 'g'))!.join('-');
}

/**
 * The secret a typed or read token stands for (see the module comment):
 * base32 text without dashes and spaces, in upper case; any other text trimmed.
 */
export function normalizeSecretText(text: string): string {
  const t = text.trim();
  const bare = t.replace(/[ -]/g, '');
  if (bare.length >= MIN_BASE32_CHARS && /^[A-Za-z2-7]+(?:[ -]+[A-Za-z2-7]+)*$/.test(t)) return bare.toUpperCase();
  return t;
}

/** The estimated strength of a token in bits (see the module comment); 0 for ''. */
export function estimateSecretBits(text: string): number {
  const t = normalizeSecretText(text).replace(/=+$/, '');
  if (t === '') return 0;
  const chars = Array.from(t);
  const size = ALPHABETS.find(([re]) => re.test(t))?.[1] ?? 95;
  return Math.floor(chars.length * Math.log2(size));
}

/**
 * Refuse a token estimated under `MIN_SECRET_BITS` (`estimateSecretBits`).
 * @param file the token file, named in the error.
 * @throws ProtocolError `ERR_AUTH_TOKEN_WEAK`, with how to make a strong one.
 */
export function checkSecretStrength(text: string, file?: string): void {
  const bits = estimateSecretBits(text);
  if (bits >= MIN_SECRET_BITS) return;
  throw new ProtocolError('ERR_AUTH_TOKEN_WEAK', `The token carries about ${bits} bits; at least ${MIN_SECRET_BITS} are needed, or another peer could guess it.`, { file });
}
