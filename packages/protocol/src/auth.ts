import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import { isProtocolError, ProtocolError } from './errors.js';
import { openSafeFile } from './safe-file.js';
import { checkSecretStrength, normalizeSecretText } from './secret-text.js';

/**
 * Challenge-response with a shared secret that never crosses the wire.
 *
 * | step | from | carries |
 * |---|---|---|
 * | Hello | reader | `clientNonce` (fresh each connection) |
 * | Challenge | assembler | `serverNonce` (fresh each connection) |
 * | Auth | reader | `authHmac(secret, serverNonce, clientNonce, rescueId)` |
 * | Welcome | assembler | `serverProof(secret, serverNonce, clientNonce, rescueId)` |
 *
 * Both values are HMAC-SHA256 keyed by the secret over a label and the three
 * inputs, each preceded by its length (32-bit big-endian), so no two different
 * inputs give the same bytes. The labels differ, so an Auth can never be
 * replayed as a proof. Each side must make a fresh nonce for every connection.
 */

/** Bytes in a nonce made by `makeNonce`. */
export const NONCE_BYTES = 32;
/** Bytes in an HMAC-SHA256. */
export const HMAC_BYTES = 32;
/** Largest token file read. */
export const MAX_TOKEN_FILE_BYTES = 4096;

const AUTH_LABEL = 'ddferry/v1 reader-auth';
const PROOF_LABEL = 'ddferry/v1 assembler-proof';

/** Shared secret: the token's text or its bytes. */
export type Secret = string | Uint8Array;

/** 32 fresh random bytes. */
export function makeNonce(): Uint8Array {
  return new Uint8Array(randomBytes(NONCE_BYTES));
}

function mac(label: string, secret: Secret, serverNonce: Uint8Array, clientNonce: Uint8Array, rescueId: string): Uint8Array {
  const h = createHmac('sha256', typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret);
  for (const part of [Buffer.from(label, 'utf8'), serverNonce, clientNonce, Buffer.from(rescueId, 'utf8')]) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(part.length);
    h.update(length);
    h.update(part);
  }
  return new Uint8Array(h.digest());
}

/** What the reader sends in Auth. */
export function authHmac(secret: Secret, serverNonce: Uint8Array, clientNonce: Uint8Array, rescueId: string): Uint8Array {
  return mac(AUTH_LABEL, secret, serverNonce, clientNonce, rescueId);
}

/** What the assembler sends in Welcome, so the reader knows it talks to the right assembler. */
export function serverProof(secret: Secret, serverNonce: Uint8Array, clientNonce: Uint8Array, rescueId: string): Uint8Array {
  return mac(PROOF_LABEL, secret, serverNonce, clientNonce, rescueId);
}

/** Constant-time equality of two byte strings (false, in constant time, for different lengths). */
export function safeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/** True if `hmac` is the reader's valid Auth for these nonces and rescue (assembler side). */
export function verifyAuthHmac(secret: Secret, serverNonce: Uint8Array, clientNonce: Uint8Array, rescueId: string, hmac: Uint8Array): boolean {
  return safeEqual(authHmac(secret, serverNonce, clientNonce, rescueId), hmac);
}

/** True if `proof` is the assembler's valid proof for these nonces and rescue (reader side). */
export function verifyServerProof(secret: Secret, serverNonce: Uint8Array, clientNonce: Uint8Array, rescueId: string, proof: Uint8Array): boolean {
  return safeEqual(serverProof(secret, serverNonce, clientNonce, rescueId), proof);
}

/**
 * Read a shared-secret token file: its text, trimmed and normalized
 * (`normalizeSecretText`: a grouped base32 token such as `K7QM-2XWD-…` is read
 * without dashes, in upper case, however it was typed). The file is opened
 * without following a symbolic link or blocking (`openSafeFile`); on POSIX
 * systems it must not be accessible to group or others; the token must carry
 * at least 128 bits (`checkSecretStrength`).
 * @throws ProtocolError `ERR_AUTH_TOKEN_READ` (missing, unreadable, a symbolic
 *   link, not a regular file, over 4 KiB), `ERR_AUTH_TOKEN_PERMISSIONS` (group
 *   or others may access it: chmod 600), `ERR_AUTH_TOKEN_EMPTY` (nothing but
 *   whitespace), `ERR_AUTH_TOKEN_WEAK` (under 128 bits).
 */
export async function readTokenFile(path: string): Promise<string> {
  let handle;
  try {
    handle = await openSafeFile(path, { what: 'the token file', maxBytes: MAX_TOKEN_FILE_BYTES });
  } catch (err) {
    const why = !isProtocolError(err) ? `Cannot open the token file (${(err as NodeJS.ErrnoException).code ?? String(err)}).`
      : err.code === 'ERR_FILE_TOO_LARGE' ? `The token file is larger than ${MAX_TOKEN_FILE_BYTES} bytes.`
        : err.code === 'ERR_FILE_SYMLINK' ? 'The token file is a symbolic link; it is not followed.' : 'The token file is not a regular file (a FIFO, a folder, a device…).';
    throw new ProtocolError('ERR_AUTH_TOKEN_READ', why, { file: path, limit: isProtocolError(err) ? err.limit : undefined, cause: err });
  }
  try {
    const st = await handle.stat();
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new ProtocolError('ERR_AUTH_TOKEN_PERMISSIONS', `The token file has mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}; others may read it.`, { file: path });
    }
    const buf = Buffer.alloc(MAX_TOKEN_FILE_BYTES + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_TOKEN_FILE_BYTES) {
      throw new ProtocolError('ERR_AUTH_TOKEN_READ', `The token file grew past ${MAX_TOKEN_FILE_BYTES} bytes while read.`, { file: path, limit: MAX_TOKEN_FILE_BYTES });
    }
    const token = normalizeSecretText(buf.subarray(0, bytesRead).toString('utf8'));
    if (token === '') throw new ProtocolError('ERR_AUTH_TOKEN_EMPTY', 'The token file is empty.', { file: path });
    checkSecretStrength(token, path);
    return token;
  } finally {
    await handle.close();
  }
}
