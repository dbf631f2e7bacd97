import { createHmac, hkdfSync } from 'node:crypto';

import type { Secret } from './auth.js';
import { safeEqual } from './auth.js';

/**
 * The keys of one rescue, derived from the shared secret (the token) with
 * HKDF-SHA256 (RFC 5869):
 *
 * | key | ikm | salt | info | bytes |
 * |---|---|---|---|---|
 * | `sealKey` | the secret's UTF-8 bytes | `ddferry/<rescue id>` | `piece-seal v1` | 32 |
 * | `receiptKey` | the secret's UTF-8 bytes | `ddferry/<rescue id>` | `receipt-mac v1` | 32 |
 *
 * Keys of two rescues differ even with one token, so a piece or a receipt of
 * one rescue never authenticates in another. Neither the secret nor a key is
 * ever written to a stick or sent on the wire.
 */

/** Bytes of each derived key. */
export const KEY_BYTES = 32;

/** The keys of one rescue (see the module comment). Never log or serialize them. */
export interface RescueKeys {
  /** The rescue they belong to. */
  readonly rescueId: string;
  /** Seals pieces: each piece's own key is derived from it and the piece's salt. */
  readonly sealKey: Uint8Array;
  /** Authenticates stick receipts (`receiptMac`). */
  readonly receiptKey: Uint8Array;
}

function bytesOf(secret: Secret): Uint8Array {
  return typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
}

/** HKDF-SHA256 of `ikm`, as `KEY_BYTES` bytes. */
export function hkdf(ikm: Uint8Array, salt: Uint8Array | string, info: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, KEY_BYTES));
}

/**
 * The keys of rescue `rescueId` for this secret.
 * @throws TypeError for an empty rescue id (a bug: callers have a checked one).
 */
export function deriveRescueKeys(secret: Secret, rescueId: string): RescueKeys {
  if (typeof rescueId !== 'string' || rescueId === '') throw new TypeError('deriveRescueKeys needs a rescue id');
  const ikm = bytesOf(secret);
  const salt = `ddferry/${rescueId}`;
  return Object.freeze({ rescueId, sealKey: hkdf(ikm, salt, 'piece-seal v1'), receiptKey: hkdf(ikm, salt, 'receipt-mac v1') });
}

/** HMAC-SHA256 of `text` (UTF-8) with the receipt key, as 64 lowercase hex digits. */
export function receiptMac(keys: RescueKeys, text: string): string {
  return createHmac('sha256', keys.receiptKey).update(text, 'utf8').digest('hex');
}

/** True if `mac` (hex) is `receiptMac(keys, text)`, compared in constant time. */
export function verifyReceiptMac(keys: RescueKeys, text: string, mac: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(mac)) return false;
  return safeEqual(Buffer.from(receiptMac(keys, text), 'hex'), Buffer.from(mac, 'hex'));
}
