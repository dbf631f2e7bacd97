import { expect } from 'chai';

import { BufferPool } from '../src/buffer-pool.js';

describe('BufferPool', () => {
  it('gives back the same memory for a bundle of the same size or up to half as large, the smallest that fits', () => {
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
    // a stick's bundles of 8, 16 and 32 MiB: a free buffer serves a bundle half its size
    const c = pool.take(20);
    expect(c.buffer).to.equal(a.buffer);
    expect(c.length).to.equal(20);
    expect(pool.inUseBytes, 'the whole buffer is in use').to.equal(40);
    pool.give(c);
    const d = pool.take(19);
    expect(d.buffer, 'more than twice as large: a new buffer').to.not.equal(a.buffer);
    const e = pool.take(30);
    expect(e.buffer).to.equal(a.buffer);
  });

  it('frees a dropped buffer at once (emptied), not at a later garbage collection', async () => {
    const pool = new BufferPool(100);
    const a = pool.take(60);
    pool.give(a);
    const kept = new Uint8Array(a.buffer);
    expect(kept.byteLength).to.equal(60);
    // 70 does not fit beside the free 60: the 60 is dropped
    const b = pool.take(70);
    expect(b.buffer).to.not.equal(a.buffer);
    expect(a.buffer.byteLength, 'the dropped buffer gave its memory up').to.equal(0);
    expect(kept.byteLength).to.equal(0);
    pool.give(b);
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
