import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';
import fc from 'fast-check';

import { MapfileError } from '../src/errors.js';
import { parseMapfile } from '../src/parse.js';
import { runCli, withoutRunLines } from './cli-harness.js';

interface CorpusRun {
  readonly file: string;
  readonly mode: 'strict' | 'loose' | 'complete';
  readonly command: string;
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

const CORPUS = join(import.meta.dirname, 'fixtures', 'corpus');
const RUNS = JSON.parse(readFileSync(join(CORPUS, 'index.json'), 'utf8')) as CorpusRun[];
const ERROR_LINE = /^ddrescuelog: (.*): Error in mapfile, line (\d+): (.*)$/m;
const TOO_LARGE = /Number too large/;

describe('the mapfile corpus (each file run through GNU ddrescuelog 1.27)', () => {
  for (const r of RUNS) {
    it(`behaves like "${r.command}"`, async () => {
      const args = r.command.split(' ').slice(1);
      const ours = await runCli(['ddrescuelog', ...args], CORPUS);
      const theirs = ERROR_LINE.exec(r.stderr);
      if (TOO_LARGE.test(ours.stderr)) {
        // ddferry refuses numbers above 2^53-1 that ddrescue clamps or accepts: a coded error on a line
        expect(ours.status).to.equal(2);
        return;
      }
      expect(ours.stderr, 'stderr').to.equal(r.stderr);
      expect(ours.status, 'exit status').to.equal(r.exitCode);
      expect(withoutRunLines(ours.stdout.toString('latin1')), 'stdout').to.equal(withoutRunLines(r.stdout));
      if (theirs) {
        // the library refuses the same file with a coded error naming the same line
        const loose = r.mode === 'strict' ? undefined : '?';
        const bytes = readFileSync(join(CORPUS, r.file));
        let caught: unknown;
        try {
          parseMapfile(bytes, { file: r.file, ...(loose ? { loose } : {}) });
        } catch (err) {
          caught = err;
        }
        expect(caught).to.be.instanceOf(MapfileError);
        const e = caught as MapfileError;
        expect(e.code).to.match(/^ERR_MAPFILE_/);
        expect(e.file).to.equal(r.file);
        expect(e.line).to.equal(Number(theirs[2]));
        expect(e.reason).to.equal(theirs[3]);
      }
    });
  }
});

describe('parseMapfile on random bytes', () => {
  it('returns a mapfile or throws a coded MapfileError, never anything else', () => {
    const byte = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(...Buffer.from('0123456789xX?*/-+FG# \t\r\n')));
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 400 }), fc.boolean(), (bytes, loose) => {
        try {
          const m = parseMapfile(Uint8Array.from(bytes), { file: 'fuzz.map', ...(loose ? { loose: '?' as const } : {}) });
          expect(m.blocks.length).to.be.at.least(0);
        } catch (err) {
          expect(err).to.be.instanceOf(MapfileError);
          expect((err as MapfileError).code).to.match(/^ERR_MAPFILE_/);
          expect((err as MapfileError).line).to.be.a('number');
        }
      }),
      { numRuns: 3000, seed: 20261123 },
    );
  });
});
