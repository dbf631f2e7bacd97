import { tmpdir } from 'node:os';

import { expect } from 'chai';

import { runCli } from './cli-harness.js';

describe('ddferry-map (usage)', () => {
  for (const command of ['show', 'plan']) {
    it(`${command}: an unknown option is a usage error (exit 1, ERR_USAGE, a hint), never a stack trace`, async () => {
      const r = await runCli([command, '--bogus', 'x'], tmpdir());
      expect(r.status).to.equal(1);
      expect(r.stderr).to.equal(`ddferry-map: Unknown option '--bogus'. [ERR_USAGE]\nTry 'ddferry-map ${command} --help'.\n`);
    });

    it(`${command} --help prints the usage and exits 0`, async () => {
      const r = await runCli([command, '--help'], tmpdir());
      expect(r.status).to.equal(0);
      expect(r.stdout.toString()).to.match(/^Usage:/).and.to.include(`ddferry-map ${command} `);
    });
  }

  it('plan: an option without its value is a usage error', async () => {
    const r = await runCli(['plan', '1MiB', 'out', '--chunk-size'], tmpdir());
    expect(r.status).to.equal(1);
    expect(r.stderr).to.include('[ERR_USAGE]');
  });
});
