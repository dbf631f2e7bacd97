import { expect } from 'chai';

import { runRescue } from '../src/commands/rescue.js';

function io(): { err: () => string; io: Parameters<typeof runRescue>[1] } {
  let err = '';
  return {
    err: () => err,
    io: { screen: () => undefined, stderr: (t) => { err += t; }, stdout: () => undefined, screenIsTty: false },
  };
}

describe('ddferry-reader rescue (options a job does not take)', () => {
  for (const [args, option] of [
    [['-s', '16MiB'], '-s (--size)'], [['-i', '8MiB'], '-i (--input-position)'], [['-o', '0'], '-o (--output-position)'],
    [['-m', 'd.map'], '-m (--domain-mapfile)'], [['-H', 't.map'], '-H (--test-mode)'], [['-S'], '-S (--sparse)'], [['-p'], '-p (--preallocate)'],
  ] as const) {
    it(`refuses ${option} with ERR_OPTION_UNSUPPORTED instead of ignoring it`, async () => {
      const r = io();
      const out = await runRescue(['/nonexistent/job', '--to', '/nonexistent/stick', ...args], r.io, new AbortController().signal, () => null);
      expect(out.status).to.equal(1);
      expect(r.err()).to.include(`ERR_OPTION_UNSUPPORTED: ${option} does not apply to 'rescue JOBDIR'`);
    });
  }

  it('prints its own help for --help, and plan prints its own', async () => {
    let out = '';
    const r = await runRescue(['--help'], { screen: () => undefined, stderr: () => undefined, stdout: (t) => { out += t; } }, new AbortController().signal, () => null);
    expect(r.status).to.equal(0);
    expect(out).to.match(/^Usage: ddferry-reader rescue JOBDIR/).and.contain('--log-reads');
  });
});
