import { expect } from 'chai';

import { MAPFILE_PARSE_CODES, MapfileError, isMapfileError, mapfileParseError, mapfileSizeError, messageWithHint } from '../src/errors.js';
import { parseNumberArgument } from '../src/args.js';
import { parseMapfile } from '../src/parse.js';

describe('MapfileError', () => {
  it('keeps the code out of the message and the hint apart, with the context fields', () => {
    const e = mapfileParseError('ERR_MAPFILE_NOT_CONTIGUOUS', 'x.map', 4);
    expect(e).to.be.instanceOf(MapfileError).and.to.include({ name: 'MapfileError', code: 'ERR_MAPFILE_NOT_CONTIGUOUS', file: 'x.map', line: 4, reason: 'Blocks are not contiguous.' });
    expect(e.message).to.equal('x.map: line 4: Blocks are not contiguous.');
    expect(e.hint).to.match(/^Fix: each block must start where the previous one ends/);
    expect(messageWithHint(e)).to.equal(`${e.message} ${e.hint}`);
    const s = mapfileSizeError('ERR_MAPFILE_BEGINS_PAST_END', 'y.map', 512);
    expect(s).to.include({ code: 'ERR_MAPFILE_BEGINS_PAST_END', file: 'y.map', insize: 512 });
    for (const err of [e, s]) expect(err.message).to.not.include(err.code);
  });

  it('carries the option and value of a bad argument, with no hint', () => {
    let caught: unknown;
    try {
      parseNumberArgument('12x', '-s', 512);
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(MapfileError).and.to.include({ code: 'ERR_ARG_BAD_MULTIPLIER', option: '-s', value: '12x', hint: '' });
    expect(messageWithHint(caught as MapfileError)).to.equal((caught as MapfileError).message);
  });

  it('is told apart by isMapfileError, and parse codes by MAPFILE_PARSE_CODES', () => {
    let caught: unknown;
    try {
      parseMapfile('0 +\n0 512 x\n', { file: 'z.map' });
    } catch (err) {
      caught = err;
    }
    expect(isMapfileError(caught)).to.equal(true);
    expect(MAPFILE_PARSE_CODES.has((caught as MapfileError).code)).to.equal(true);
    expect(isMapfileError(new Error('x'))).to.equal(false);
    expect(isMapfileError(Object.assign(new Error('x'), { code: 'ERR_MAPFILE_READ' }))).to.equal(false);
    expect(MAPFILE_PARSE_CODES.has('ERR_MAPFILE_NOT_FOUND')).to.equal(false);
  });
});
