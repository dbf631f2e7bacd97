/**
 * `--spool-size` bounds the bytes of the LAN spool's files, whatever size its pieces are.
 * With the map saved after every read (`--mapfile-interval=0`) each read ends a piece of
 * its own, and a piece's file holds its tar headers and description beyond its data: the
 * grants counted data only, so 8 MiB granted to an empty spool became 128 pieces of
 * 64 KiB and 384 KiB over the bound (kill.test.ts, seed 4130273489, run 11/20).
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { DEFAULT_RESCUE_OPTIONS } from '../src/engine/options.js';
import { LanDestination } from '../src/lan/lan-destination.js';
import type { Link, LinkSnapshot } from '../src/lan/link.js';
import { newLoopStatus, runLoop } from '../src/run/run-loop.js';
import { loopOptions, planLoopJob } from './helpers/loop-job.js';

const MIB = 1 << 20;

/** A link that never comes up (no assembler): every piece is fsynced into the spool and stays there. */
function downLink(): Link {
  const since = Date.now();
  const snapshot = (): LinkSnapshot => ({ url: 'ws://127.0.0.1:9', state: 'waiting', since, lastError: 'ECONNREFUSED', merged: 0, sessions: 0 });
  return { snapshot } as unknown as Link;
}

function spoolFileBytes(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const name of readdirSync(dir)) {
    bytes += statSync(join(dir, name)).size;
    ++files;
  }
  return { bytes, files };
}

describe('--spool-size with the link down', function () {
  this.timeout(90_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-spool-size-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Read until reading pauses with the spool full; the spool's files then. */
  async function fillSpool(spoolBytes: number, mapfileSaveInterval: number): Promise<{ bytes: number; files: number }> {
    const j = await planLoopJob(dir, 24 * MIB, 8 * MIB, spoolBytes);
    const controller = new AbortController();
    const status = newLoopStatus();
    const dest = new LanDestination(j.job.spool, downLink());
    const base = loopOptions(j, controller.signal);
    const run = runLoop({ ...base, destination: dest, status, reading: { ...base.reading, options: { ...DEFAULT_RESCUE_OPTIONS, mapfileSaveInterval } } });
    const deadline = Date.now() + 60_000;
    while (status.pause === null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    // the first pause may be a moment's wait between two grants: let reading go on until the
    // spool is full (the stop then stores what is open before the loop returns)
    await new Promise((resolve) => setTimeout(resolve, 300));
    controller.abort();
    await run.catch(() => undefined);
    dest.close();
    expect(status.pause, 'reading paused with the spool full').to.not.equal(null);
    return spoolFileBytes(join(j.job.dir, 'spool'));
  }

  it('holds at most --spool-size in pieces of one read each (the map saved after every read)', async () => {
    const held = await fillSpool(2 * MIB, 0);
    expect(held.files, 'pieces of one read: many files').to.be.at.least(16);
    expect(held.bytes, `${held.files} pieces in ${held.bytes} bytes`).to.be.at.most(2 * MIB);
    // and it is filled, not left mostly empty
    expect(held.bytes).to.be.at.least(MIB);
  });

  it('holds at most --spool-size in big pieces', async () => {
    const held = await fillSpool(4 * MIB, -1);
    expect(held.bytes, `${held.files} pieces in ${held.bytes} bytes`).to.be.at.most(4 * MIB);
    expect(held.bytes).to.be.at.least(2 * MIB);
  });
});
