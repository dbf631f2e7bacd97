/**
 * The run loop's start: the reading process opens the source and says so ('opened')
 * while the loop may still be writing JOBDIR/reading.pid (`onStarted`). Seen in the
 * packaged programs' chroot test: the identity came first, was dropped, and both
 * processes waited for each other for ever.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { runLoop } from '../src/run/run-loop.js';
import { loopOptions, planLoopJob } from './helpers/loop-job.js';

const MIB = 1 << 20;

describe('runLoop start', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-loop-start-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the source identity the reading process sends while onStarted still runs, and reads the whole source', async () => {
    const j = await planLoopJob(dir, 2 * MIB, MIB, 64 * MIB);
    const controller = new AbortController();
    // a slow disk under the job folder: writing the pid file takes longer than the reading process takes to open the source
    const timer = setTimeout(() => controller.abort(), 30_000);
    try {
      const end = await runLoop(loopOptions(j, controller.signal, { onStarted: () => new Promise((resolve) => setTimeout(resolve, 1500)) }));
      expect(end.kind, 'the loop ended by itself, not by the 30 s abort').to.equal('done');
    } finally {
      clearTimeout(timer);
    }
    expect(j.job.spool.bytes).to.be.greaterThan(2 * MIB);
  });
});
