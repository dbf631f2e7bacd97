import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';
import fc from 'fast-check';

import { type Mapfile, type ParseOptions, createMapfileParser, parseMapfile } from '../src/parse.js';

const CORPUS = join(import.meta.dirname, 'fixtures', 'corpus');

type Outcome = { ok: true; state: unknown[] } | { ok: false; code: string; line: number | undefined };

function outcome(read: () => Mapfile): Outcome {
  try {
    const m = read();
    const blocks: number[][] = [];
    m.blocks.forEachBlock((p, e, c) => blocks.push([p, e, c]));
    return { ok: true, state: [m.currentPos, m.currentStatus, m.currentPass, blocks] };
  } catch (err) {
    return { ok: false, code: (err as { code: string }).code, line: (err as { line?: number }).line };
  }
}

/** Parse `bytes` fed in pieces of the given sizes (cycled). */
function inPieces(bytes: Uint8Array, sizes: readonly number[], options: ParseOptions): Mapfile {
  const p = createMapfileParser(options);
  for (let i = 0, k = 0; i < bytes.length; ++k) {
    const n = sizes[k % sizes.length]!;
    p.write(bytes.subarray(i, i + n));
    i += n;
  }
  return p.end();
}

describe('createMapfileParser', () => {
  const files = readdirSync(CORPUS).filter((f) => f.endsWith('.map'));

  it('reads every corpus file fed in odd-sized pieces as parseMapfile reads it whole', () => {
    for (const f of files) {
      const bytes = readFileSync(join(CORPUS, f));
      for (const loose of [undefined, '?' as const]) {
        const options = { file: f, ...(loose ? { loose } : {}) };
        const whole = outcome(() => parseMapfile(bytes, options));
        for (const sizes of [[1], [2, 3], [7], [127, 1], [4096]]) {
          expect(outcome(() => inPieces(bytes, sizes, options)), `${f} ${loose ?? 'strict'} in pieces of ${sizes.join(',')}`).to.deep.equal(whole);
        }
      }
    }
  });

  it('reads random text fed in random pieces as parseMapfile reads it whole', () => {
    const line = fc.oneof(
      fc.tuple(fc.nat({ max: 5000 }), fc.integer({ min: 1, max: 600 }), fc.constantFrom(...'?*/-+x'), fc.constantFrom('', ' ', '\t', '  # c', '#c', '\r'))
        .map(([p, s, c, tail]) => `${p}\t${s} ${c}${tail}\n`),
      fc.constantFrom('# comment\n', '\n', '   \n', '0x10 0X20 +\n', '010 8 -\n', '0 0 +\n', `0 ${' '.repeat(130)}+\n`, '0 512 +', '\0 1 +\n'),
    );
    const text = fc.tuple(fc.constantFrom('0 ?\n', '0x200 + 3\n', '# c\n0 /\n', ''), fc.array(line, { maxLength: 60 })).map(([head, rest]) => head + rest.join(''));
    fc.assert(fc.property(text, fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }), fc.boolean(), (t, sizes, loose) => {
      const bytes = Buffer.from(t, 'latin1');
      const options = { file: 'r.map', ...(loose ? { loose: '?' as const } : {}) };
      expect(outcome(() => inPieces(bytes, sizes, options))).to.deep.equal(outcome(() => parseMapfile(bytes, options)));
    }), { numRuns: 2000, seed: 11 });
  });

  it('reads lines of decimal, hex and octal numbers, and names the line of the first gap', () => {
    const text = '0 +\n0 0x200 +\n512 512 -\n0x400 01000 ?\n';
    const blocks: number[][] = [];
    parseMapfile(text).blocks.forEachBlock((p, e, c) => blocks.push([p, e, c]));
    expect(blocks).to.deep.equal([[0, 512, 4], [512, 1024, 3], [1024, 1536, 0]]);
    expect(outcome(() => parseMapfile(`${text}# gap below\n2000 1 +\n`, { file: 'g.map' }))).to.deep.equal({ ok: false, code: 'ERR_MAPFILE_NOT_CONTIGUOUS', line: 6 });
  });
});
