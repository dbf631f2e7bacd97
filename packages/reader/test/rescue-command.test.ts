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

  for (const bad of ['gzip', 'zstd:0', 'zstd:20', 'zstd:x']) {
    it(`refuses --compress ${bad} with ERR_ARG_INVALID before opening the job`, async () => {
      const r = io();
      const out = await runRescue(['/nonexistent/job', '--to', '/nonexistent/stick', '--compress', bad], r.io, new AbortController().signal, () => null);
      expect(out.status).to.equal(1);
      expect(r.err()).to.include(`--compress takes zstd, zstd:1 to zstd:19 or none, not '${bad}'`);
    });
  }

  it('takes --compress zstd, zstd:LEVEL and none (then fails on the missing job, not the option)', async () => {
    for (const good of ['zstd', 'zstd:1', 'zstd:19', 'none']) {
      const r = io();
      await runRescue(['/nonexistent/job', '--to', '/nonexistent/stick', `--compress=${good}`], r.io, new AbortController().signal, () => null);
      expect(r.err(), good).to.not.include('--compress');
    }
  });

  it('prints its own help for --help, and plan prints its own', async () => {
    let out = '';
    const r = await runRescue(['--help'], { screen: () => undefined, stderr: () => undefined, stdout: (t) => { out += t; } }, new AbortController().signal, () => null);
    expect(r.status).to.equal(0);
    expect(out).to.match(/^Usage: ddferry-reader rescue JOBDIR/).and.contain('--log-reads');
  });
});
