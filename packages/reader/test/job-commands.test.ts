import { expect } from 'chai';

import { runRescue } from '../src/commands/job-commands.js';

function io(): { err: () => string; io: Parameters<typeof runRescue>[1] } {
  let err = '';
  return {
    err: () => err,
    io: { screen: () => undefined, stderr: (t) => { err += t; }, stdout: () => undefined, signal: () => null, stderrIsTTY: false } as Parameters<typeof runRescue>[1],
  };
}

describe('ddferry-reader rescue (options a job does not take)', () => {
  for (const [args, option] of [
    [['-s', '16MiB'], '-s (--size)'], [['-i', '8MiB'], '-i (--input-position)'], [['-o', '0'], '-o (--output-position)'],
    [['-m', 'd.map'], '-m (--domain-mapfile)'], [['-H', 't.map'], '-H (--test-mode)'], [['-S'], '-S (--sparse)'], [['-p'], '-p (--preallocate)'],
  ] as const) {
    it(`refuses ${option} with ERR_OPTION_UNSUPPORTED instead of ignoring it`, async () => {
      const r = io();
      const out = await runRescue(['/nonexistent/job', '--to', '/nonexistent/stick', ...args], r.io);
      expect(out.status).to.equal(1);
      expect(r.err()).to.include(`ERR_OPTION_UNSUPPORTED: ${option} does not apply to 'rescue JOBDIR'`);
    });
  }
});
