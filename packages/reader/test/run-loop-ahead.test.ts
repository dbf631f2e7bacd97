/**
 * The run loop's bound on bytes read and not yet stored (`MEMORY_AHEAD_BYTES`, 24 MiB)
 * never stops a piece from filling: a stick's pieces are up to 32 MiB, sealed by size or
 * after a minute. Under a bound smaller than a piece, reading waited for a seal that
 * waited for reading, and each piece went out a minute late and short.
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

describe('runLoop memory ahead', function () {
  this.timeout(90_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-loop-ahead-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('fills a 32 MiB piece whole before it is sealed (pieces bigger than the bound on bytes held ahead)', async () => {
    const size = 40 * MIB;
    const source = join(dir, 'disk.bin');
    writeFileSync(source, randomBytes(size));
    const jobDir = join(dir, 'job');
    await planJob({ source, jobDir, chunkSize: 64 * MIB, commandLine: 'test plan' });
    const job = await openJobFolder(jobDir, { secret: readFileSync(join(jobDir, 'token'), 'utf8').trim(), spoolBytes: 256 * MIB, hardbs: 512, commandLine: 'test', saveInterval: -1, syncInterval: 300 });
    const reporter: RescueReporter = { phaseStarted: () => undefined, readDone: () => undefined, statusRefreshed: () => undefined, echo: () => undefined, endOfRun: () => undefined };
    const controller = new AbortController();
    // a piece waiting for its one-minute seal is what this test looks for: stop well before
    const timer = setTimeout(() => controller.abort(), 40_000);
    const stored: number[] = [];
    const dest = new LocalDestination(job.spool);
    const store = dest.store.bind(dest);
    dest.store = (piece) => {
      stored.push(piece.data.length);
      return store(piece);
    };
    try {
      const end = await runLoop({
        rescueId: job.job.rescueId,
        chunks: job.chunks,
        reading: { source, options: DEFAULT_RESCUE_OPTIONS, domains: [{ pos: 0, size }], insize: size, startTime: Math.floor(Date.now() / 1000) },
        map: job.map,
        seq: job.seq,
        destination: dest,
        sealBytes: 32 * MIB,
        sealMillis: 60_000,
        checkSource: () => undefined,
        reporter,
        readLog: false,
        status: newLoopStatus(),
        log: () => undefined,
        signal: controller.signal,
      });
      expect(end.kind, 'the loop ended by itself, not by the 40 s abort').to.equal('done');
    } finally {
      clearTimeout(timer);
    }
    expect(stored.filter((n) => n > 0)[0], 'the first piece holds 32 MiB').to.be.at.least(32 * MIB);
    expect(stored.reduce((a, b) => a + b, 0)).to.equal(size);
  });
});
