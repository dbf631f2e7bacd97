/**
 * Spec 3's golden cases, replayed: GNU ddrescue 1.27 made the fixtures (see
 * fixtures/golden/README.md and scripts/fixtures/make-reader-golden.sh); ddferry-reader's
 * `ddrescue` mode must give the same exit status, final mapfile (header lines aside),
 * read log (time fields aside), events log and output file.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

import { expect } from 'chai';

import { runDdrescue } from '../src/commands/ddrescue.js';
import { makeDetBin, mapBody, normalizeReadLog } from './helpers/ddrescue-compare.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'golden');

interface GoldenCase {
  readonly name: string;
  readonly args: readonly string[];
  readonly startFrom: { readonly map: string; readonly out: string } | null;
  readonly startMapFile?: string;
  readonly testMapFile?: string;
  readonly domainFile?: string;
  readonly rc: number;
  readonly map?: string | null;
  readonly reads: number | null;
  readonly readsFile: string | null;
  readonly outSha256: string | null;
  readonly outSize: number | null;
  readonly events?: string;
}

const CASES = JSON.parse(readFileSync(join(FIXTURES, 'cases.json'), 'utf8')) as GoldenCase[];

describe('golden cases from GNU ddrescue 1.27 (spec 3)', function () {
  let dir: string;
  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-golden-'));
    const det = makeDetBin();
    expect(createHash('sha256').update(det).digest('hex')).to.equal('ad9ba2503287d72bdf0e40b9d35260fb704a72e9d02609f39a8aca967beff2bd');
    writeFileSync(join(dir, 'det.bin'), det);
    for (const f of ['testmap', 'GL.testmap', 'Gm.domain.map']) copyFileSync(join(FIXTURES, f), join(dir, f));
  });
  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    it(`${c.name}: ddrescue ${c.args.join(' ')} gives ddrescue's exit status, mapfile, read log and output`, async function () {
      const d = join(dir, c.name);
      mkdirSync(d);
      if (c.startFrom) {
        copyFileSync(join(dir, c.startFrom.map, 'out.map'), join(d, 'out.map'));
        copyFileSync(join(dir, c.startFrom.out, 'out.img'), join(d, 'out.img'));
      }
      if (c.startMapFile) copyFileSync(join(FIXTURES, c.startMapFile), join(d, 'out.map'));
      const args = c.args.map((a) => a
        .replace('{TESTMAP}', join(dir, c.testMapFile ?? 'testmap'))
        .replace('{DOMAIN}', join(dir, c.domainFile ?? 'Gm.domain.map'))
        .replace('{EVENTS}', join(d, 'events.log')));
      let screen = '';
      let stderr = '';
      const result = await runDdrescue([...args, `--log-reads=${join(d, 'reads.log')}`, join(dir, 'det.bin'), join(d, 'out.img'), join(d, 'out.map')], {
        screen: (t) => { screen += t; },
        stderr: (t) => { stderr += t; },
        stdout: () => undefined,
        cwd: d,
        signal: () => null,
      });
      expect(result.status, `exit status (stderr: ${stderr})`).to.equal(c.rc);
      if (c.map === undefined || c.map === null) {
        expect(existsSync(join(d, 'out.map')), 'no mapfile written').to.equal(false);
        return;
      }
      expect(mapBody(readFileSync(join(d, 'out.map'), 'latin1')), 'final mapfile').to.equal(mapBody(c.map));
      const expected = gunzipSync(readFileSync(join(FIXTURES, c.readsFile!))).toString('latin1');
      const ours = normalizeReadLog(readFileSync(join(d, 'reads.log'), 'latin1'));
      if (ours !== expected) {
        const a = ours.split('\n');
        const b = expected.split('\n');
        const i = a.findIndex((l, k) => l !== b[k]);
        expect(a.slice(Math.max(0, i - 2), i + 3), `read log differs at line ${i + 1}`).to.deep.equal(b.slice(Math.max(0, i - 2), i + 3));
      }
      expect(ours.split('\n').filter((l) => /^0x/.test(l)).length, 'reads').to.equal(c.reads);
      const out = readFileSync(join(d, 'out.img'));
      expect(statSync(join(d, 'out.img')).size, 'output size').to.equal(c.outSize);
      expect(createHash('sha256').update(out).digest('hex'), 'output sha256').to.equal(c.outSha256);
      if (c.events !== undefined) {
        const ev = readFileSync(join(d, 'events.log'), 'latin1')
          .replace(/^(# Events Logfile\.).*$/m, '$1')
          .replace(/^# Command line: .*$/m, '# Command line:')
          .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/g, 'TIME')
          .replace(/^ *\d[0-9dhms:]*s(?= {2})/gm, (m) => 'TIME'.padStart(m.length));
        const want = c.events.replace(/^(# Events Logfile\.).*$/m, '$1').replace(/^# Command line: .*$/m, '# Command line:');
        expect(ev, 'events log').to.equal(want);
      }
      void screen;
    });
  }
});
