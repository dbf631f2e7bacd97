import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

import { expect } from 'chai';

import { CIPHER_SLICE_BYTES, cipherInto } from '../src/cipher-slices.js';

describe('cipherInto', () => {
  const key = randomBytes(32);
  const iv = randomBytes(12);

  it('gives the bytes and the tag of one update, for lengths around the slice size', () => {
    for (const size of [0, 1, CIPHER_SLICE_BYTES - 1, CIPHER_SLICE_BYTES, CIPHER_SLICE_BYTES + 1, 3 * CIPHER_SLICE_BYTES + 17]) {
      const plain = randomBytes(size);
      const whole = createCipheriv('aes-256-gcm', key, iv);
      const expected = Buffer.concat([whole.update(plain), whole.final()]);
      const sliced = createCipheriv('aes-256-gcm', key, iv);
      const out = Buffer.alloc(size, 0xee);
      expect(cipherInto(sliced, plain, out)).to.equal(out);
      sliced.final();
      expect(out.equals(expected), `size ${size}`).to.equal(true);
      expect(sliced.getAuthTag().equals(whole.getAuthTag())).to.equal(true);
      const back = createDecipheriv('aes-256-gcm', key, iv);
      const plainAgain = cipherInto(back, out, Buffer.alloc(size));
      back.setAuthTag(whole.getAuthTag());
      back.final();
      expect(Buffer.from(plainAgain).equals(plain)).to.equal(true);
    }
  });

  it('writes into a view of a larger buffer and nothing around it', () => {
    const plain = randomBytes(2 * CIPHER_SLICE_BYTES + 5);
    const big = Buffer.alloc(plain.length + 200, 0xaa);
    cipherInto(createCipheriv('aes-256-gcm', key, iv), plain, big.subarray(100, 100 + plain.length));
    expect(big.subarray(0, 100).every((b) => b === 0xaa)).to.equal(true);
    expect(big.subarray(100 + plain.length).every((b) => b === 0xaa)).to.equal(true);
  });

  it('ciphers in place, or into memory just before the input (a piece laid over its sealed frames)', () => {
    const plain = randomBytes(3 * CIPHER_SLICE_BYTES + 11);
    const whole = createCipheriv('aes-256-gcm', key, iv);
    const expected = Buffer.concat([whole.update(plain), whole.final()]);
    for (const back of [0, 1, 16, CIPHER_SLICE_BYTES + 3]) {
      const mem = Buffer.alloc(plain.length + back + 50, 0xaa);
      plain.copy(mem, back);
      const src = mem.subarray(back, back + plain.length);
      cipherInto(createCipheriv('aes-256-gcm', key, iv), src, mem.subarray(0, plain.length));
      expect(mem.subarray(0, plain.length).equals(expected), `${back} bytes before`).to.equal(true);
    }
  });

  it('refuses a destination that starts inside the input past its start: it would write over input still to read', () => {
    const mem = Buffer.alloc(2 * CIPHER_SLICE_BYTES + 10);
    const src = mem.subarray(0, CIPHER_SLICE_BYTES + 5);
    expect(() => cipherInto(createCipheriv('aes-256-gcm', key, iv), src, mem.subarray(1, CIPHER_SLICE_BYTES + 6))).to.throw(RangeError, /input still to be read/);
  });

  it('refuses a destination of another length', () => {
    expect(() => cipherInto(createCipheriv('aes-256-gcm', key, iv), Buffer.alloc(10), Buffer.alloc(9))).to.throw(RangeError);
  });
});
