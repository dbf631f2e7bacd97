/**
 * The run loop's bound on bytes read and not yet stored (`MEMORY_AHEAD_BYTES`, 16 MiB;
 * a piece and 12 MiB more where pieces are bigger) never stops a piece from filling: a stick's pieces are up to 32 MiB, sealed by size or
 * after a minute. Under a bound smaller than a piece, reading waited for a seal that
 * waited for reading, and each piece went out a minute late and short.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { LocalDestination } from '../src/run/local-destination.js';
import { runLoop } from '../src/run/run-loop.js';
import { loopOptions, planLoopJob } from './helpers/loop-job.js';

const MIB = 1 << 20;

describe('runLoop memory ahead', function () {
  this.timeout(90_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-loop-ahead-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Read a source of `size` bytes with pieces of 32 MiB sealed by size (their one-minute
   * seal far off), each store taking `storeMs` more; the sizes of the pieces stored, in
   * order. The loop must end by itself, well before `abortMs`.
   */
  async function storedPieces(size: number, chunkSize: number, spoolBytes: number, storeMs: number, abortMs: number): Promise<number[]> {
    const j = await planLoopJob(dir, size, chunkSize, spoolBytes);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), abortMs);
    const stored: number[] = [];
    const dest = new LocalDestination(j.job.spool);
    const store = dest.store.bind(dest);
    dest.store = async (piece) => {
      stored.push(piece.data.length);
      if (storeMs > 0) await new Promise((resolve) => setTimeout(resolve, storeMs));
      return store(piece);
    };
    try {
      const end = await runLoop(loopOptions(j, controller.signal, { destination: dest, sealBytes: 32 * MIB, sealMillis: 60_000 }));
      expect(end.kind, `the loop ended by itself, not by the ${abortMs / 1000} s abort`).to.equal('done');
    } finally {
      clearTimeout(timer);
    }
    const pieces = stored.filter((n) => n > 0);
    expect(pieces.reduce((a, b) => a + b, 0)).to.equal(size);
    return pieces;
  }

  it('does not cut pieces short while the one before is stored slowly (a wait for room seals only when nothing is being stored)', async () => {
    // pieces of 6 MiB under the 16 MiB bound: with one stored and one queued, the open piece reaches 4 MiB
    // and the reading process waits for room while a store is in progress (each takes 150 ms, as spool
    // writes throttled by write-back do); that wait sealed the open piece at 4 MiB
    const j = await planLoopJob(dir, 96 * MIB, 256 * MIB, 512 * MIB);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 60_000);
    const stored: number[] = [];
    const dest = new LocalDestination(j.job.spool);
    const store = dest.store.bind(dest);
    dest.store = async (piece) => {
      stored.push(piece.data.length);
      await new Promise((resolve) => setTimeout(resolve, 150));
      return store(piece);
    };
    try {
      const end = await runLoop(loopOptions(j, controller.signal, { destination: dest, sealBytes: 6 * MIB, sealMillis: 60_000 }));
      expect(end.kind, 'the loop ended by itself, not by the 60 s abort').to.equal('done');
    } finally {
      clearTimeout(timer);
    }
    const pieces = stored.filter((n) => n > 0);
    expect(pieces.reduce((a, b) => a + b, 0)).to.equal(96 * MIB);
    expect(pieces.slice(0, -1).filter((n) => n < 6 * MIB), `pieces of ${pieces.map((n) => (n / MIB).toFixed(1)).join(', ')} MiB`).to.deep.equal([]);
  });

  it('fills a 32 MiB piece whole before it is sealed (pieces bigger than the bound on bytes held ahead)', async () => {
    // a piece waiting for its one-minute seal is what this test looks for: stop well before
    const pieces = await storedPieces(40 * MIB, 64 * MIB, 256 * MIB, 0, 40_000);
    expect(pieces[0], 'the first piece holds 32 MiB').to.be.at.least(32 * MIB);
  });

  it('keeps a stick\'s big pieces big while the one before is stored slowly (the LAN\'s smaller bound does not cut them)', async () => {
    // a stick written at a few MB/s: each piece takes a while to store
    const pieces = await storedPieces(128 * MIB, 256 * MIB, 512 * MIB, 150, 60_000);
    // each piece but the last is whole (32 MiB) or holds what the bound leaves beside one being stored (12 MiB)
    expect(pieces.slice(0, -1).filter((n) => n < 12 * MIB), `pieces of ${pieces.map((n) => n / MIB).join(', ')} MiB`).to.deep.equal([]);
  });
});
