import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { runCli, withoutRunLines } from './cli-harness.js';

interface GoldenCase {
  readonly name: string;
  readonly args: readonly string[];
  readonly stdin: string | null;
  readonly exitCode: number;
  readonly stdout: string | null;
  readonly stdoutBase64?: string;
  readonly stderr: string;
  readonly copy?: { readonly from: string; readonly to: string };
  readonly fileDeleted?: boolean;
}

const FIXTURES = join(import.meta.dirname, 'fixtures', 'ddrescuelog');
const CASES = JSON.parse(readFileSync(join(FIXTURES, 'cases.json'), 'utf8')) as GoldenCase[];

describe('ddferry-map ddrescuelog (golden cases made by GNU ddrescuelog 1.27)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-golden-'));
    cpSync(FIXTURES, dir, { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  for (const c of CASES) {
    it(`matches ddrescuelog ${c.args.join(' ')} (${c.name})`, async () => {
      if (c.copy) cpSync(join(dir, c.copy.from), join(dir, c.copy.to));
      const r = await runCli(['ddrescuelog', ...c.args], dir, Buffer.from(c.stdin ?? '', 'latin1'));
      expect(r.stderr, 'stderr').to.equal(c.stderr);
      if (c.stdoutBase64 !== undefined) expect(r.stdout.toString('base64'), 'stdout bytes').to.equal(c.stdoutBase64);
      else expect(withoutRunLines(r.stdout.toString('latin1')), 'stdout').to.equal(withoutRunLines(c.stdout ?? ''));
      expect(r.status, 'exit status').to.equal(c.exitCode);
      if (c.fileDeleted !== undefined && c.copy) expect(!existsSync(join(dir, c.copy.to)), 'file deleted').to.equal(c.fileDeleted);
    });
  }
});
