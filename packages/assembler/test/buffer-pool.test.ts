import { expect } from 'chai';

import { BufferPool } from '../src/buffer-pool.js';

describe('BufferPool', () => {
  it('gives back the same memory for a bundle of the same or a slightly smaller size', () => {
    const pool = new BufferPool(100);
    const a = pool.take(40);
    expect(a.length).to.equal(40);
    expect(pool.inUseBytes).to.equal(40);
    pool.give(a);
    expect(pool.inUseBytes).to.equal(0);
    const b = pool.take(36);
    expect(b.length).to.equal(36);
    expect(b.buffer).to.equal(a.buffer);
    pool.give(b);
    const c = pool.take(20);
    expect(c.buffer).to.not.equal(a.buffer);
  });

  it('keeps buffers in use and free within maxBytes, dropping free ones first', () => {
    const pool = new BufferPool(100);
    const a = pool.take(60);
    const b = pool.take(30);
    pool.give(a);
    pool.give(b);
    const c = pool.take(70);
    expect(c.buffer).to.not.equal(a.buffer);
    expect(pool.inUseBytes).to.equal(70);
    const d = pool.take(30);
    expect(d.buffer).to.equal(b.buffer);
    // asked for more than maxBytes: given, with nothing free kept
    const e = pool.take(90);
    expect(e.length).to.equal(90);
    for (const x of [c, d, e]) pool.give(x);
    expect(pool.inUseBytes).to.equal(0);
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => new BufferPool(0)).to.throw(RangeError);
    expect(() => new BufferPool(1.5)).to.throw(RangeError);
  });
});
