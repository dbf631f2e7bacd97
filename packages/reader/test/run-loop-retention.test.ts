/**
 * A stored piece waiting to be durable (a LAN piece before its receipt or its fsync) is
 * its delta and its promise, not its data: the builder reuses or lets go of the data's
 * buffer once the piece is stored. The closure that commits the delta captured the
 * whole piece, so a LAN run whose receipts lagged behind reading held every piece's
 * buffer until its receipt (a heap snapshot of an 8 GiB run: 8 pieces, 28 MiB).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { expect } from 'chai';

import type { Piece } from '@ddferry/protocol';

import type { Destination, StoreResult } from '../src/run/destination.js';
import { runLoop } from '../src/run/run-loop.js';
import { loopOptions, planLoopJob } from './helpers/loop-job.js';

const MIB = 1 << 20;

/** V8's full collection, without exposing `gc` to the rest of the test process. */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc') as () => void;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

describe('runLoop: pieces waiting to be durable', function () {
  this.timeout(90_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-loop-retention-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('do not keep their data alive: only the builder\'s few kept buffers outlive the stores', async () => {
    const size = 48 * MIB;
    // chunks of 1.5 MiB: pieces of 1 MiB straddle chunks, and the builder makes new buffers for the second piece of a window
    const j = await planLoopJob(dir, size, 1.5 * MIB, 1024 * MIB);
    const buffers: Array<WeakRef<ArrayBufferLike>> = [];
    const resolvers: Array<() => void> = [];
    let stored = 0;
    let allStored: () => void = () => undefined;
    const everything = new Promise<void>((resolve) => {
      allStored = resolve;
    });
    const dest: Destination = {
      spool: { count: 0, bytes: 0, capacity: Number.MAX_SAFE_INTEGER },
      async store(piece: Piece): Promise<StoreResult> {
        if (piece.data.length > 0) buffers.push(new WeakRef(piece.data.buffer));
        stored += piece.data.length;
        if (stored >= size) allStored();
        // durable once the test says so: a receipt that lags
        return { durable: new Promise<void>((resolve) => resolvers.push(resolve)) };
      },
      room: () => Number.POSITIVE_INFINITY,
      isFull: () => false,
      pause: () => null,
      onRoom: () => undefined,
    };
    const controller = new AbortController();
    const run = runLoop(loopOptions(j, controller.signal, { destination: dest, sealBytes: MIB, sealMillis: 60_000 }));
    await Promise.race([everything, run]);
    expect(stored, 'every byte stored before any piece is durable').to.equal(size);
    const gc = collector();
    for (let i = 0; i < 3; ++i) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    const distinct = new Set(buffers.map((w) => w.deref()).filter((b) => b !== undefined));
    for (const r of resolvers) r();
    const end = await run;
    expect(end.kind).to.equal('done');
    // the builder keeps at most four buffers for the next pieces; the last piece's may still be referenced
    expect(distinct.size, `${distinct.size} piece buffers alive (of ${buffers.length} pieces' buffers, some shared) while ${resolvers.length} pieces wait to be durable`).to.be.at.most(6);
    expect(resolvers.length, 'pieces stored').to.be.at.least(24);
  });
});
