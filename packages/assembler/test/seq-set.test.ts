import { expect } from 'chai';
import fc from 'fast-check';

import { SeqSet } from '../src/seq-set.js';

describe('SeqSet', () => {
  it('holds what a Set holds, as sorted disjoint non-adjacent ranges', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 200 }), { maxLength: 300 }), (seqs) => {
      const set = new SeqSet();
      const model = new Set<number>();
      for (const s of seqs) {
        expect(set.add(s)).to.equal(!model.has(s));
        model.add(s);
      }
      const sorted = [...model].sort((a, b) => a - b);
      expect(set.toArray()).to.deep.equal(sorted);
      expect(set.size).to.equal(model.size);
      for (let s = 0; s <= 201; ++s) expect(set.has(s)).to.equal(model.has(s));
      const ranges = set.toRanges();
      for (let i = 1; i < ranges.length; ++i) expect(ranges[i]![0]).to.be.greaterThan(ranges[i - 1]![1] + 1);
      expect(SeqSet.fromRanges(ranges).toArray()).to.deep.equal(sorted);
      expect(set.toArray(5)).to.deep.equal(sorted.slice(-5));
    }));
  });

  it('keeps a million consecutive seqs as one range', () => {
    const set = new SeqSet();
    for (let s = 1; s <= 1_000_000; ++s) set.add(s);
    expect(set.toRanges()).to.deep.equal([[1, 1_000_000]]);
  });

  it('refuses overlapping, adjacent, unsorted or non-positive ranges with RangeError', () => {
    for (const bad of [[[1, 3], [3, 5]], [[1, 3], [4, 5]], [[5, 6], [1, 2]], [[0, 1]], [[3, 2]], [[1.5, 2]]] as [number, number][][]) {
      expect(() => SeqSet.fromRanges(bad), JSON.stringify(bad)).to.throw(RangeError);
    }
  });
});
