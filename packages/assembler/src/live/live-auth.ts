/**
 * The live page's login: a challenge and HMAC-SHA256 keyed by the serve
 * process's token, like the reader's handshake but with labels of its own, so
 * a page login can never be replayed as a reader's Auth or proof, nor the
 * reverse.
 *
 * | step | from | carries |
 * |---|---|---|
 * | challenge | assembler | `serverNonce` (32 fresh bytes per connection), whether a token is needed |
 * | auth | page | `clientNonce` (32 fresh bytes), `viewerAuthHmac(token, serverNonce, clientNonce)` |
 * | welcome | assembler | `viewerProof(token, serverNonce, clientNonce)`: the page checks the server knows the token |
 *
 * Each input is preceded by its length (32-bit big-endian), as in the
 * protocol's `authHmac`; the page computes the same bytes with WebCrypto (or
 * its own SHA-256 where the browser hides WebCrypto on plain http).
 */
import { createHmac } from 'node:crypto';

import type { Secret } from '@ddferry/protocol';
import { safeEqual } from '@ddferry/protocol';

/** Label of the page's HMAC; differs from the reader's `ddferry/v1 reader-auth`. */
export const VIEWER_AUTH_LABEL = 'ddferry/v1 live-viewer-auth';
/** Label of the server's answer; differs from the reader handshake's `ddferry/v1 assembler-proof`. */
export const VIEWER_PROOF_LABEL = 'ddferry/v1 live-server-proof';

function mac(label: string, secret: Secret, serverNonce: Uint8Array, clientNonce: Uint8Array): Uint8Array {
  const h = createHmac('sha256', typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret);
  for (const part of [Buffer.from(label, 'utf8'), serverNonce, clientNonce]) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(part.length);
    h.update(length);
    h.update(part);
  }
  return new Uint8Array(h.digest());
}

/** What the page sends to log in. */
export function viewerAuthHmac(secret: Secret, serverNonce: Uint8Array, clientNonce: Uint8Array): Uint8Array {
  return mac(VIEWER_AUTH_LABEL, secret, serverNonce, clientNonce);
}

/** What the server answers, so the page knows the server holds the token. */
export function viewerProof(secret: Secret, serverNonce: Uint8Array, clientNonce: Uint8Array): Uint8Array {
  return mac(VIEWER_PROOF_LABEL, secret, serverNonce, clientNonce);
}

/** True if `hmac` is a valid page login for these nonces (constant time). */
export function verifyViewerAuth(secret: Secret, serverNonce: Uint8Array, clientNonce: Uint8Array, hmac: Uint8Array): boolean {
  return safeEqual(viewerAuthHmac(secret, serverNonce, clientNonce), hmac);
}
