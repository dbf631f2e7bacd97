import { expect } from 'chai';

import { ProtocolError } from '../src/errors.js';
import { checkSecretStrength, estimateSecretBits, makeSecretText, MIN_SECRET_BITS, normalizeSecretText } from '../src/secret-text.js';

describe('secret-text', () => {
  describe('#makeSecretText', () => {
    it('makes seven groups of four base32 characters, fresh each time, of at least 128 bits', () => {
      const seen = new Set<string>();
      for (let i = 0; i < 200; i++) {
        const t = makeSecretText();
        expect(t).to.match(/^[A-Z2-7]{4}(?:-[A-Z2-7]{4}){6}$/);
        expect(estimateSecretBits(t)).to.be.at.least(MIN_SECRET_BITS);
        seen.add(t);
      }
      expect(seen.size).to.equal(200);
    });

    it('uses every base32 character (no bias to a part of the alphabet)', () => {
      const chars = new Set<string>();
      for (let i = 0; i < 50; i++) for (const c of makeSecretText().replaceAll('-', '')) chars.add(c);
      expect(chars.size).to.equal(32);
    });
  });

  describe('#normalizeSecretText', () => {
    it('takes 26 or more base32 characters without dashes and spaces, in upper case', () => {
      expect(normalizeSecretText('  k7qm-2xwd ab3d-qqqq-rrrr-sstt-uuvv\n')).to.equal('K7QM2XWDAB3DQQQQRRRRSSTTUUVV');
      expect(normalizeSecretText('K7QM--2XWD-ABCD-EFGH-IJKL-MNOP-QR')).to.equal('K7QM2XWDABCDEFGHIJKLMNOPQR');
    });

    it('only trims any other text (shorter, hex with 0, 1, 8 or 9, base64, passphrases)', () => {
      expect(normalizeSecretText('K7QM-2XWD-ABCD-EFGH-IJKL-MNOP-Q')).to.equal('K7QM-2XWD-ABCD-EFGH-IJKL-MNOP-Q');
      expect(normalizeSecretText(' 0123abcd \n')).to.equal('0123abcd');
      expect(normalizeSecretText('a+b/c=')).to.equal('a+b/c=');
      expect(normalizeSecretText('-abc')).to.equal('-abc');
      expect(normalizeSecretText('a shared secret for the test')).to.equal('a shared secret for the test');
    });
  });

  describe('#estimateSecretBits', () => {
    it('counts the length times the bits of the smallest usual alphabet', () => {
      expect(estimateSecretBits('')).to.equal(0);
      expect(estimateSecretBits('x')).to.equal(4);
      expect(estimateSecretBits('0'.repeat(39))).to.equal(129);
      expect(estimateSecretBits('ab'.repeat(16))).to.equal(128);
      expect(estimateSecretBits('XY'.repeat(13) + '23')).to.equal(140);
      expect(estimateSecretBits('A'.repeat(22) + '+/')).to.equal(144);
      expect(estimateSecretBits(`${'A'.repeat(20)}+==`)).to.equal(126);
      expect(estimateSecretBits('a b!')).to.equal(26);
    });
  });

  describe('#checkSecretStrength', () => {
    it('accepts 128 bits and refuses one bit less, naming the file and how to make one', () => {
      expect(() => checkSecretStrength('0123456789abcdef0123456789abcdef')).not.to.throw();
      try {
        checkSecretStrength('0123456789abcdef0123456789abcde', '/etc/token');
        expect.fail('expected ERR_AUTH_TOKEN_WEAK');
      } catch (err) {
        expect(err).to.be.instanceOf(ProtocolError);
        expect((err as ProtocolError).code).to.equal('ERR_AUTH_TOKEN_WEAK');
        expect((err as ProtocolError).file).to.equal('/etc/token');
        expect((err as ProtocolError).message).to.contain('124 bits').and.to.contain('ddferry-assembler token');
      }
    });
  });
});
