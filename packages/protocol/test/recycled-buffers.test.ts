import { expect } from 'chai';

import { RecycledBuffers } from '../src/recycled-buffers.js';

const MiB = 1024 * 1024;

describe('RecycledBuffers', () => {
  it('keeps whole buffers of at least minBytes within maxBytes, once each, and hands out one of size to twice the size asked', () => {
    const r = new RecycledBuffers(8 * MiB, MiB);
    const a = new Uint8Array(new ArrayBuffer(4 * MiB));
    expect(r.keep(a)).to.equal(true);
    expect(r.keep(a)).to.equal(false);
    expect(r.keep(new Uint8Array(new ArrayBuffer(512 * 1024)))).to.equal(false);
    expect(r.keep(new Uint8Array(new ArrayBuffer(4 * MiB), 1))).to.equal(false);
    expect(r.keep(new Uint8Array(new ArrayBuffer(5 * MiB)))).to.equal(false);
    expect(r.bytes).to.equal(4 * MiB);
    expect([r.servable(MiB), r.servable(5 * MiB), r.servable(3 * MiB), r.servable(2 * MiB)]).to.deep.equal([0, 0, 4 * MiB, 4 * MiB]);
    expect(r.reuse(MiB)).to.equal(undefined);
    expect(r.reuse(5 * MiB)).to.equal(undefined);
    const got = r.reuse(3 * MiB)!;
    expect(got.buffer).to.equal(a.buffer);
    expect(got.length).to.equal(3 * MiB);
    expect(r.bytes).to.equal(0);
  });

  it('lets the oldest go first', () => {
    const r = new RecycledBuffers(8 * MiB, MiB);
    r.keep(new Uint8Array(new ArrayBuffer(3 * MiB)));
    r.keep(new Uint8Array(new ArrayBuffer(2 * MiB)));
    expect(r.dropOldest()).to.equal(3 * MiB);
    expect(r.dropOldest()).to.equal(2 * MiB);
    expect(r.dropOldest()).to.equal(0);
  });
});
