import { expect } from 'chai';
import fc from 'fast-check';

import { UNBOUNDED } from '../src/block.js';
import { SblockVector } from '../src/sblock-vector.js';
import { StatusMap } from '../src/status-map.js';

type Row = [number, number, number];

function rows(v: SblockVector): Row[] {
  const out: Row[] = [];
  v.forEachBlock((p, e, c) => out.push([p, e, c]));
  return out;
}

/** Blocks of random sizes (some not multiples of anything), statuses and, now and then, gaps. */
const blockList = fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 0, max: 4 })), { maxLength: 700 })
  .map((spec) => {
    const out: Row[] = [];
    let pos = 0;
    for (const [gap, size, code] of spec) {
      pos += gap === 0 ? 512 : 0;
      out.push([pos, pos + size, code]);
      pos += size;
    }
    return out;
  });

describe('SblockVector', () => {
  it('gives back what was pushed, by index and in order, across pages', () => {
    fc.assert(fc.property(blockList, (list) => {
      const v = new SblockVector();
      for (const [p, e, c] of list) v.push(p, e, c);
      expect(v.length).to.equal(list.length);
      expect(rows(v)).to.deep.equal(list);
      for (let i = list.length - 1; i >= 0; i -= 7) {
        expect([v.pos(i), v.end(i), v.code(i)]).to.deep.equal(list[i]);
        expect(v.findIndex(list[i]![0])).to.equal(i);
      }
      if (list.length > 0) expect(v.walkFrom(list.length >> 1, () => false)).to.equal(list.length >> 1);
    }), { numRuns: 200, seed: 5 });
  });

  it('keeps the ends before gaps, and an unbounded last end', () => {
    const v = new SblockVector();
    v.push(0, 512, 4);
    v.push(1024, 2048, 3);
    v.push(2048, UNBOUNDED, 0);
    expect(rows(v)).to.deep.equal([[0, 512, 4], [1024, 2048, 3], [2048, UNBOUNDED, 0]]);
    expect(v.findIndex(700)).to.equal(-1);
    expect(() => new StatusMap(v)).to.throw(/contiguous/);
  });

  it('truncates inside a page and goes on appending', () => {
    const v = new SblockVector();
    for (let i = 0; i < 1000; ++i) v.push(i * 512, (i + 1) * 512, i % 5);
    v.truncateAt(300);
    expect(v.length).to.equal(300);
    expect(v.end(299)).to.equal(300 * 512);
    v.push(300 * 512, 301 * 512, 4);
    expect(rows(v).slice(-2)).to.deep.equal([[299 * 512, 300 * 512, 4], [300 * 512, 301 * 512, 4]]);
    expect(v.truncate(100 * 512 + 7, true)).to.equal(true);
    expect(v.length).to.equal(101);
    expect(v.end(100)).to.equal(100 * 512 + 7);
  });

  it('copies its pages before changing a code once a StatusMap reads them', () => {
    const v = new SblockVector();
    for (let i = 0; i < 1000; ++i) v.push(i * 512, (i + 1) * 512, 0);
    const map = new StatusMap(v);
    v.setCode(5, 4);
    expect(v.code(5)).to.equal(4);
    expect(map.sblockAt(5 * 512)!.status).to.equal('?');
    expect(map.countOf('+')).to.equal(0);
    const after = new StatusMap(v);
    expect([after.countOf('+'), after.sizeOf('+'), after.sizeOf('?')]).to.deep.equal([1, 512, 999 * 512]);
  });

  it('gives a StatusMap the sums of sizes and counts by status, also with an unbounded last block', () => {
    const v = new SblockVector();
    v.push(0, 512, 4);
    v.push(512, 4096, 3);
    v.push(4096, UNBOUNDED, 0);
    const map = new StatusMap(v);
    expect([map.sizeOf('+'), map.sizeOf('-'), map.sizeOf('?'), map.countOf('?'), map.countOf('*')]).to.deep.equal([512, 3584, UNBOUNDED, 1, 0]);
    v.truncate(8192, true);
    const cut = new StatusMap(v);
    expect([cut.sizeOf('?'), cut.extent().size]).to.deep.equal([4096, 8192]);
  });
});
