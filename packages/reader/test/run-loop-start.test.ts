/**
 * The run loop's start: the reading process opens the source and says so ('opened')
 * while the loop may still be writing JOBDIR/reading.pid (`onStarted`). Seen in the
 * packaged programs' chroot test: the identity came first, was dropped, and both
 * processes waited for each other for ever.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { DEFAULT_RESCUE_OPTIONS } from '../src/engine/options.js';
import type { RescueReporter } from '../src/engine/reporter.js';
import { openJobFolder } from '../src/job/job-folder.js';
import { planJob } from '../src/job/plan-job.js';
import { LocalDestination } from '../src/run/local-destination.js';
import { newLoopStatus, runLoop } from '../src/run/run-loop.js';

const MIB = 1 << 20;

describe('runLoop start', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-loop-start-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the source identity the reading process sends while onStarted still runs, and reads the whole source', async () => {
    const source = join(dir, 'disk.bin');
    const data = randomBytes(2 * MIB);
    writeFileSync(source, data);
    const jobDir = join(dir, 'job');
    await planJob({ source, jobDir, chunkSize: MIB, commandLine: 'test plan' });
    const job = await openJobFolder(jobDir, { secret: readFileSync(join(jobDir, 'token'), 'utf8').trim(), spoolBytes: 64 * MIB, hardbs: 512, commandLine: 'test', saveInterval: -1, syncInterval: 300 });
    const reporter: RescueReporter = { phaseStarted: () => undefined, readDone: () => undefined, statusRefreshed: () => undefined, echo: () => undefined, endOfRun: () => undefined };
    const controller = new AbortController();
    // a slow disk under the job folder: writing the pid file takes longer than the reading process takes to open the source
    const timer = setTimeout(() => controller.abort(), 30_000);
    try {
      const end = await runLoop({
        rescueId: job.job.rescueId,
        chunks: job.chunks,
        reading: { source, options: DEFAULT_RESCUE_OPTIONS, domains: [{ pos: 0, size: 2 * MIB }], insize: 2 * MIB, startTime: Math.floor(Date.now() / 1000) },
        map: job.map,
        seq: job.seq,
        destination: new LocalDestination(job.spool),
        checkSource: () => undefined,
        reporter,
        readLog: false,
        onStarted: () => new Promise((resolve) => setTimeout(resolve, 1500)),
        status: newLoopStatus(),
        log: () => undefined,
        signal: controller.signal,
      });
      expect(end.kind, 'the loop ended by itself, not by the 30 s abort').to.equal('done');
    } finally {
      clearTimeout(timer);
    }
    expect(job.spool.bytes).to.be.greaterThan(2 * MIB);
  });
});
