import { expect } from 'chai';

import { Domain } from '../src/domain.js';
import { MapfileError } from '../src/errors.js';
import { extendToInputSize, joinSubsectors, normalizeForRescue } from '../src/normalize.js';
import { parseMapfile } from '../src/parse.js';
import type { SblockVector } from '../src/sblock-vector.js';

const lines = (v: SblockVector): string[] => [...v].map((b) => `${b.pos.toString(16)} ${b.size.toString(16)} ${b.status}`);

describe('load-time normalisation', () => {
  it('joins a partial sector to the less processed side (spec 1.7 example)', () => {
    const v = parseMapfile('0 ?\n0 0x800 +\n0x800 0x80 -\n0x880 0x780 ?\n').blocks;
    expect(lines(joinSubsectors(v, 512))).to.deep.equal(['0 800 +', '800 800 ?']);
  });

  it('moves a border down to the sector start when the left side is more processed', () => {
    const v = parseMapfile('0 ?\n0 0x300 -\n0x300 0x300 ?\n').blocks;
    expect(lines(joinSubsectors(v, 512))).to.deep.equal(['0 200 -', '200 400 ?']);
  });

  it('extends to the input size and cuts a trailing non-finished block', () => {
    const v = parseMapfile('0 ?\n0x200 0x200 +\n0x400 0x10000 ?\n').blocks;
    expect(lines(extendToInputSize(v, 0x1000))).to.deep.equal(['0 200 ?', '200 200 +', '400 c00 ?']);
    expect(lines(extendToInputSize(parseMapfile('0 ?\n0 0x200 +\n').blocks, 0x1000))).to.deep.equal(['0 200 +', '200 e00 ?']);
    expect(lines(extendToInputSize(parseMapfile('0 ?\n0 0x1000 +\n0x1000 0x1000 ?\n').blocks, 0x1000))).to.deep.equal(['0 1000 +']);
  });

  it('refuses rescued data past the end of the input, naming the file', () => {
    const v = parseMapfile('0 ?\n0 0x2000 +\n').blocks;
    expect(() => extendToInputSize(v, 0x1000, 'x.map')).to.throw(MapfileError).with.property('code', 'ERR_MAPFILE_RESCUED_PAST_END');
    const w = parseMapfile('0 ?\n0 0x800 +\n0x800 0x1000 ?\n').blocks;
    expect(() => extendToInputSize(w, 0x400, 'x.map')).to.throw(MapfileError).with.property('code', 'ERR_MAPFILE_BEGINS_PAST_END');
  });

  it('splits at domain borders after compacting', () => {
    const v = parseMapfile('0 ?\n0 0x1000 ?\n0x1000 0x1000 ?\n').blocks;
    const r = normalizeForRescue(v, { insize: 0x2000, hardbs: 512, domain: Domain.fromOptions(0x400, 0x800) });
    expect(lines(r.blocks)).to.deep.equal(['0 400 ?', '400 800 ?', 'c00 1400 ?']);
  });
});
