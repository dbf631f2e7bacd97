import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { authHmac, makeNonce, NONCE_BYTES, readTokenFile, safeEqual, serverProof, verifyAuthHmac, verifyServerProof } from '../src/auth.js';
import { ProtocolError } from '../src/errors.js';
import { makeSecretText } from '../src/secret-text.js';
import { OTHER_RESCUE_ID, RESCUE_ID } from './helpers.js';

describe('auth', () => {
  it('accepts the reader and the assembler when both know the secret', () => {
    const clientNonce = makeNonce();
    const serverNonce = makeNonce();
    const hmac = authHmac('s3cret', serverNonce, clientNonce, RESCUE_ID);
    expect(verifyAuthHmac('s3cret', serverNonce, clientNonce, RESCUE_ID, hmac)).to.equal(true);
    const proof = serverProof(Buffer.from('s3cret'), serverNonce, clientNonce, RESCUE_ID);
    expect(verifyServerProof('s3cret', serverNonce, clientNonce, RESCUE_ID, proof)).to.equal(true);
  });

  it('refuses a wrong secret, other nonces, another rescue', () => {
    const c = makeNonce();
    const s = makeNonce();
    const hmac = authHmac('s3cret', s, c, RESCUE_ID);
    expect(verifyAuthHmac('s3cret!', s, c, RESCUE_ID, hmac)).to.equal(false);
    expect(verifyAuthHmac('s3cret', makeNonce(), c, RESCUE_ID, hmac)).to.equal(false);
    expect(verifyAuthHmac('s3cret', s, makeNonce(), RESCUE_ID, hmac)).to.equal(false);
    expect(verifyAuthHmac('s3cret', s, c, OTHER_RESCUE_ID, hmac)).to.equal(false);
    expect(verifyAuthHmac('s3cret', s, c, RESCUE_ID, hmac.subarray(0, 31))).to.equal(false);
  });

  it('never accepts an Auth as a server proof (different labels)', () => {
    const c = makeNonce();
    const s = makeNonce();
    expect(verifyServerProof('k', s, c, RESCUE_ID, authHmac('k', s, c, RESCUE_ID))).to.equal(false);
  });

  it('separates the fields: moving bytes between nonces changes the MAC', () => {
    const a = new Uint8Array([1, 2, 3, 4]);
    const b = new Uint8Array([5, 6]);
    expect(safeEqual(authHmac('k', a, b, RESCUE_ID), authHmac('k', new Uint8Array([1, 2, 3]), new Uint8Array([4, 5, 6]), RESCUE_ID))).to.equal(false);
  });

  it('makes a fresh nonce each time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const n = makeNonce();
      expect(n.length).to.equal(NONCE_BYTES);
      seen.add(Buffer.from(n).toString('hex'));
    }
    expect(seen.size).to.equal(100);
  });

  describe('#readTokenFile', () => {
    let dir = '';
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ddferry-token-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    async function token(text: string, mode: number): Promise<string> {
      const path = join(dir, 'token');
      await writeFile(path, text);
      await chmod(path, mode);
      return path;
    }

    async function expectCode(path: string, code: string): Promise<ProtocolError> {
      try {
        await readTokenFile(path);
      } catch (err) {
        expect(err).to.be.instanceOf(ProtocolError);
        expect((err as ProtocolError).code).to.equal(code);
        expect((err as ProtocolError).file).to.equal(path);
        return err as ProtocolError;
      }
      return expect.fail(`expected ${code}`);
    }

    const STRONG = '0123456789abcdef0123456789abcdef';

    it('reads the token trimmed', async () => {
      expect(await readTokenFile(await token(`  ${STRONG}\n`, 0o600))).to.equal(STRONG);
      expect(await readTokenFile(await token(STRONG, 0o400))).to.equal(STRONG);
    });

    it('reads a grouped base32 token whatever its case, dashes and surrounding whitespace', async () => {
      const made = makeSecretText();
      const want = made.replaceAll('-', '');
      expect(await readTokenFile(await token(`${made}\n`, 0o600))).to.equal(want);
      expect(await readTokenFile(await token(` ${made.toLowerCase().replaceAll('-', '')} \r\n`, 0o600))).to.equal(want);
      expect(await readTokenFile(await token(made.toLowerCase().replaceAll('-', ' '), 0o600))).to.equal(want);
    });

    it('refuses a one-byte token, and one just under 128 bits, saying how to make one (finding 6)', async () => {
      const err = await expectCode(await token('x\n', 0o600), 'ERR_AUTH_TOKEN_WEAK');
      expect(err.message).to.contain('ddferry-assembler token').and.to.contain('openssl rand -hex 16');
      await expectCode(await token('0123456789abcdef0123456789abcde', 0o600), 'ERR_AUTH_TOKEN_WEAK');
    });

    it('refuses an empty token', async () => {
      await expectCode(await token(' \n\t', 0o600), 'ERR_AUTH_TOKEN_EMPTY');
    });

    it('refuses a token others may read, saying to chmod 600', async () => {
      const err = await expectCode(await token(STRONG, 0o644), 'ERR_AUTH_TOKEN_PERMISSIONS');
      expect(err.message).to.contain('chmod 600');
      await expectCode(await token(STRONG, 0o640), 'ERR_AUTH_TOKEN_PERMISSIONS');
    });

    it('refuses a missing file, a folder, and an oversized file', async () => {
      await expectCode(join(dir, 'none'), 'ERR_AUTH_TOKEN_READ');
      await expectCode(dir, 'ERR_AUTH_TOKEN_READ');
      await expectCode(await token('x'.repeat(5000), 0o600), 'ERR_AUTH_TOKEN_READ');
    });

    it('refuses a symbolic link to a token, and a FIFO at once (finding 8)', async () => {
      const real = await token(STRONG, 0o600);
      await symlink(real, join(dir, 'link'));
      const link = await expectCode(join(dir, 'link'), 'ERR_AUTH_TOKEN_READ');
      expect((link.cause as ProtocolError).code).to.equal('ERR_FILE_SYMLINK');
      execFileSync('mkfifo', ['-m', '600', join(dir, 'fifo')]);
      const fifo = await expectCode(join(dir, 'fifo'), 'ERR_AUTH_TOKEN_READ');
      expect((fifo.cause as ProtocolError).code).to.equal('ERR_FILE_NOT_REGULAR');
    });
  });
});
