/**
 * StickSpool.put with a writer that has nothing to carry, and the trip counter.
 */
import { expect } from 'chai';
import { mkdirSync, readdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Piece } from '@ddferry/protocol';
import { deriveRescueKeys, makeRescueId } from '@ddferry/protocol';

const KEYS = deriveRescueKeys('a token for the stick spool tests', makeRescueId());

import { Ledger } from '../src/job/ledger.js';
import { StickSpool } from '../src/stick/stick-spool.js';
import type { StickWriter } from '../src/stick/writer.js';
import { countTrip, TRIPS_FILE } from '../src/stick/trip-count.js';

const MIB = 1 << 20;

/** A writer like the chunk-files one: files only for pieces with data. */
const DATA_ONLY_WRITER: StickWriter = {
  names: (p) => (p.data.length === 0 ? [] : [`chunk0000-${String(p.seq).padStart(6, '0')}-01.raw`]),
  estimate: (bytes) => bytes + 4096,
  async write(p, folder) {
    if (p.data.length === 0) return { files: [], bytes: 0 };
    const name = `chunk0000-${String(p.seq).padStart(6, '0')}-01.raw`;
    writeFileSync(join(folder, name), p.data);
    return { files: [name], bytes: p.data.length };
  },
};

describe('StickSpool', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-stickspool-'));
    mkdirSync(join(dir, 'stick'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function open(): Promise<{ spool: StickSpool; ledger: Ledger }> {
    const ledger = await Ledger.open(join(dir, 'ledger'));
    const spool = await StickSpool.open({
      folder: join(dir, 'stick'), stickId: '0123456789abcdef', ledger, writer: DATA_ONLY_WRITER, keys: KEYS,
      statStick: async () => ({ free: 64 * MIB, blockSize: 4096, total: 64 * MIB }),
    });
    return { spool, ledger };
  }

  it('keeps no ledger entry for a piece the writer carries nothing of (statuses only), so it is never taken for lost', async () => {
    const { spool, ledger } = await open();
    const rescueId = makeRescueId();
    let n = 0;
    const badOnly: Piece = { rescueId, seq: ++n, chunk: 0, extents: [], delta: [{ pos: 0, size: 4096, status: '-' }], data: new Uint8Array(0) };
    await spool.put(badOnly);
    expect(ledger.size).to.equal(0);
    expect(spool.count).to.equal(0);
    const data = new Uint8Array(512).fill(7);
    const good: Piece = { rescueId, seq: ++n, chunk: 0, extents: [{ pos: 4096, size: 512, xxh64: 0n }], delta: [{ pos: 4096, size: 512, status: '+' }], data };
    await spool.put(good);
    expect(ledger.entries().map((e) => [e.seq, e.files])).to.deep.equal([[2, ['chunk0000-000002-01.raw']]]);
    expect(spool.count).to.equal(1);
  });

  it('keeps no ledger entry for a piece whose write failed: it is on no stick', async () => {
    const ledger = await Ledger.open(join(dir, 'ledger'));
    const spool = await StickSpool.open({
      folder: join(dir, 'stick'), stickId: '0123456789abcdef', ledger, keys: KEYS,
      writer: { ...DATA_ONLY_WRITER, async write() { throw Object.assign(new Error('no space'), { code: 'ENOSPC' }); } },
      statStick: async () => ({ free: 64 * MIB, blockSize: 4096, total: 64 * MIB }),
    });
    const data = new Uint8Array(512).fill(7);
    let err: unknown;
    try {
      await spool.put({ rescueId: makeRescueId(), seq: 1, chunk: 0, extents: [{ pos: 0, size: 512, xxh64: 0n }], delta: [{ pos: 0, size: 512, status: '+' }], data });
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string }).code).to.equal('ERR_STICK_FULL');
    expect(ledger.size).to.equal(0);
    expect(readdirSync(join(dir, 'ledger'))).to.deep.equal([]);
  });
});

describe('countTrip', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-trips-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('counts 1, 2, 3 across calls and keeps the count in JOBDIR/trips.json', async () => {
    expect(await countTrip(dir)).to.equal(1);
    expect(await countTrip(dir)).to.equal(2);
    expect(await countTrip(dir)).to.equal(3);
    expect(JSON.parse(readFileSync(join(dir, TRIPS_FILE), 'utf8'))).to.deep.equal({ stickTrips: 3 });
  });

  it('starts again at 1 from a damaged file instead of stopping the rescue', async () => {
    writeFileSync(join(dir, TRIPS_FILE), '{"stickTr');
    expect(await countTrip(dir)).to.equal(1);
  });
});
