/**
 * StickSpool.put with a writer that has nothing to carry, and the trip counter.
 */
import { expect } from 'chai';
import { mkdirSync, readdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Piece } from '@ddferry/protocol';
import { deriveRescueKeys, makeExtent, makeRescueId } from '@ddferry/protocol';

const KEYS = deriveRescueKeys('a token for the stick spool tests', makeRescueId());

import { Ledger } from '../src/job/ledger.js';
import { StickSpool } from '../src/stick/stick-spool.js';
import { BUNDLE_WRITER, type StickWriter } from '../src/stick/writer.js';
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

  /** A piece of `data` at `pos` (chunk 0). */
  const pieceOf = (seq: number, pos: number, data: Uint8Array): Piece => ({
    rescueId: KEYS.rescueId, seq, chunk: 0, extents: [makeExtent(pos, data)], delta: [{ pos, size: data.length, status: '+' }], data,
  });
  const text = (size: number): Uint8Array => Buffer.alloc(size, 'etc/passwd root:x:0:0:root:/root:/bin/bash\n');
  const random = (size: number): Uint8Array => {
    const b = new Uint8Array(size);
    let x = 0x2545f491;
    for (let i = 0; i < size; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      b[i] = x >>> 24;
    }
    return b;
  };

  it('plans what is not written yet at the trip\'s compression ratio, the last piece counting at once, and counts bytes rescued and carried', async () => {
    const ledger = await Ledger.open(join(dir, 'ledger'));
    // a 64 MiB stick with 40 MiB free (2 MiB margin)
    const spool = await StickSpool.open({
      folder: join(dir, 'stick'), stickId: '0123456789abcdef', ledger, writer: BUNDLE_WRITER, keys: KEYS,
      statStick: async () => ({ free: 40 * MIB, blockSize: 4096, total: 64 * MIB }),
    });
    const none = { pieces: 0, bytes: 0, ranges: 0 };
    expect(spool.ratio, 'nothing written yet: raw').to.equal(1);
    expect(spool.fits(none, 36 * MIB)).to.equal(true);
    expect(spool.fits(none, 60 * MIB)).to.equal(false);
    await spool.put(pieceOf(1, 0, text(8 * MIB)));
    expect(spool.writtenRawBytes).to.equal(8 * MIB);
    expect(spool.writtenBytes).to.be.below(MIB);
    expect(spool.ratio).to.be.below(0.1);
    expect(spool.fits(none, 60 * MIB), '60 MiB of such data takes under 6 MiB').to.equal(true);
    const r = spool.ratio;
    expect(spool.fits({ pieces: 1, bytes: 10 * MIB, ranges: 2 }, Math.floor(20 * MIB / r))).to.equal(true);
    expect(spool.fits({ pieces: 1, bytes: 10 * MIB, ranges: 2 }, Math.ceil(39 * MIB / r)), 'never more than fits at that ratio').to.equal(false);
    // incompressible data: the last piece's ratio counts at once
    await spool.put(pieceOf(2, 8 * MIB, random(4 * MIB)));
    expect(spool.ratio).to.be.above(0.99);
    expect(spool.fits(none, 60 * MIB)).to.equal(false);
    expect(spool.writtenBytes).to.be.above(4 * MIB);
  });

  it('carries ddrescue-chunks files raw: the ratio stays 1', async () => {
    const ledger = await Ledger.open(join(dir, 'ledger'));
    const spool = await StickSpool.open({
      folder: join(dir, 'stick'), stickId: '0123456789abcdef', ledger, writer: DATA_ONLY_WRITER, keys: KEYS,
      statStick: async () => ({ free: 40 * MIB, blockSize: 4096, total: 64 * MIB }),
    });
    await spool.put(pieceOf(1, 0, text(MIB)));
    expect(spool.ratio).to.equal(1);
    expect(readFileSync(join(dir, 'stick', 'chunk0000-000001-01.raw')).equals(Buffer.from(text(MIB)))).to.equal(true);
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
