/**
 * The LAN's durable-acknowledged path: pieces put without fsync while the link keeps
 * up, durable on their receipt or on a late fsync, adopted after the process dies, and
 * committed to the map only once durable.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { planChunks } from '@ddferry/mapfile';
import type { Piece, RescueId } from '@ddferry/protocol';
import { deriveRescueKeys, makeExtent, makeRescueId } from '@ddferry/protocol';
import { expect } from 'chai';

import { SeqCounter } from '../src/job/seq-counter.js';
import { Spool } from '../src/job/spool.js';
import { LanDestination, UNSYNCED_MAX_MS } from '../src/lan/lan-destination.js';
import type { Link } from '../src/lan/link.js';

const RESCUE_ID = makeRescueId();
const SIZE = 1 << 20;
const CHUNKS = planChunks({ sourceSize: SIZE, sectorSize: 512, chunkSize: 64 * 1024 });
const PLAN = { rescueId: RESCUE_ID, sourceSize: SIZE, sectorSize: 512, chunks: CHUNKS };
const KEYS = deriveRescueKeys('a token for the unsynced spool tests', RESCUE_ID);

function piece(seq: number, pos: number, size: number): Piece {
  const data = Buffer.alloc(size, seq);
  return {
    rescueId: RESCUE_ID as RescueId, seq, chunk: Math.floor(pos / (64 * 1024)), extents: [makeExtent(pos, data)],
    delta: [{ pos, size, status: '+' }], data,
  };
}

/** 'settled' if `p` settles within `ms`, else 'pending'. */
async function state(p: Promise<void>, ms = 50): Promise<'settled' | 'rejected' | 'pending'> {
  return Promise.race([
    p.then(() => 'settled' as const, () => 'rejected' as const),
    new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms)),
  ]);
}

describe('the spool without fsync (the LAN while the link keeps up)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-unsynced-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function open(): Promise<{ spool: Spool; seq: SeqCounter }> {
    const seq = await SeqCounter.open(join(dir, 'seq.json'));
    const spool = await Spool.open({ dir: join(dir, 'spool'), capacity: 8 << 20, plan: PLAN, keys: KEYS }, seq);
    return { spool, seq };
  }

  it('writes piece-N.tar.unsynced, not durable until a receipt removes it', async () => {
    const { spool } = await open();
    await spool.put(piece(1, 0, 4096), { sync: false });
    expect(readdirSync(join(dir, 'spool'))).to.deep.equal(['piece-000001.tar.unsynced']);
    const durable = spool.durable(1);
    expect(await state(durable)).to.equal('pending');
    // the link reads it back (or takes it from memory) like any piece
    expect((await spool.read(1)).data).to.deep.equal(Buffer.alloc(4096, 1));
    await spool.remove([1]);
    expect(await state(durable)).to.equal('settled');
    expect(readdirSync(join(dir, 'spool'))).to.deep.equal([]);
  });

  it('sync(ms) fsyncs and renames the pieces at least that old, and they become durable; younger ones wait', async () => {
    const { spool } = await open();
    await spool.put(piece(1, 0, 4096), { sync: false });
    await new Promise((r) => setTimeout(r, 120));
    await spool.put(piece(2, 65536, 4096), { sync: false });
    await spool.sync(100);
    expect(await state(spool.durable(1))).to.equal('settled');
    expect(await state(spool.durable(2))).to.equal('pending');
    expect(readdirSync(join(dir, 'spool')).sort()).to.deep.equal(['piece-000001.tar', 'piece-000002.tar.unsynced']);
    await spool.sync();
    expect(await state(spool.durable(2))).to.equal('settled');
    expect(readdirSync(join(dir, 'spool')).sort()).to.deep.equal(['piece-000001.tar', 'piece-000002.tar']);
    // a durable piece reads back the same
    expect((await spool.read(2)).extents[0]!.pos).to.equal(65536);
  });

  it('a piece put with fsync is durable at once', async () => {
    const { spool } = await open();
    await spool.put(piece(1, 0, 4096));
    expect(await state(spool.durable(1))).to.equal('settled');
    expect(readdirSync(join(dir, 'spool'))).to.deep.equal(['piece-000001.tar']);
  });

  it('after the process died, the next open checks each unsynced piece: the whole ones are made durable and their ranges reported, a torn one is deleted', async () => {
    const first = await open();
    await first.spool.put(piece(5, 0, 8192), { sync: false });
    await first.spool.put(piece(6, 65536, 8192), { sync: false });
    await first.spool.put(piece(7, 131072, 8192), { sync: false });
    // what a power cut leaves: a file cut short, one with garbage in a frame
    const torn = join(dir, 'spool', 'piece-000006.tar.unsynced');
    writeFileSync(torn, readFileSync(torn).subarray(0, 2000));
    const garbled = join(dir, 'spool', 'piece-000007.tar.unsynced');
    const bytes = readFileSync(garbled);
    bytes[bytes.length - 3000]! ^= 0xff; // inside the frame's ciphertext
    writeFileSync(garbled, bytes);

    const again = await open();
    expect(again.spool.adopted).to.deep.equal([{ seq: 5, extents: [{ pos: 0, size: 8192 }] }]);
    expect(readdirSync(join(dir, 'spool'))).to.deep.equal(['piece-000005.tar']);
    expect(again.spool.count).to.equal(1);
    expect(await state(again.spool.durable(5))).to.equal('settled');
    // numbers are never reused: the counter is above every file found, sound or not
    expect(again.seq.next()).to.equal(8);
    expect(existsSync(torn)).to.equal(false);
  });
});

describe('LanDestination', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-landest-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function link(state: { value: 'connected' | 'waiting' }): Link {
    return { snapshot: () => ({ url: 'ws://test', state: state.value, since: Date.now(), lastError: '', merged: 0, sessions: 1 }) } as unknown as Link;
  }

  async function spoolIn(): Promise<Spool> {
    const seq = await SeqCounter.open(join(dir, 'seq.json'));
    return Spool.open({ dir: join(dir, 'spool'), capacity: 8 << 20, plan: PLAN, keys: KEYS }, seq);
  }

  it('while the link is up, accepts a piece without fsync; a receipt makes it durable', async () => {
    const spool = await spoolIn();
    const dest = new LanDestination(spool, link({ value: 'connected' }));
    const r = await dest.store(piece(1, 0, 4096));
    expect(r).to.be.an('object');
    const durable = (r as { durable: Promise<void> }).durable;
    expect(await state(durable)).to.equal('pending');
    await spool.remove([1]); // the receipt
    expect(await state(durable)).to.equal('settled');
    dest.close();
  });

  it(`fsyncs a piece whose receipt takes over ${UNSYNCED_MAX_MS} ms`, async function () {
    this.timeout(10_000);
    const spool = await spoolIn();
    const dest = new LanDestination(spool, link({ value: 'connected' }));
    const r = await dest.store(piece(1, 0, 4096));
    const durable = (r as { durable: Promise<void> }).durable;
    expect(await state(durable, UNSYNCED_MAX_MS - 500)).to.equal('pending');
    expect(await state(durable, 1500)).to.equal('settled');
    expect(readdirSync(join(dir, 'spool'))).to.deep.equal(['piece-000001.tar']);
    dest.close();
  });

  it('fsyncs the unsynced pieces at once when the link drops, and stores with fsync while it is down', async () => {
    const spool = await spoolIn();
    const up = { value: 'connected' as 'connected' | 'waiting' };
    const dest = new LanDestination(spool, link(up));
    const r = await dest.store(piece(1, 0, 4096));
    up.value = 'waiting';
    expect(await state((r as { durable: Promise<void> }).durable, 1000)).to.equal('settled');
    expect(await dest.store(piece(2, 65536, 4096))).to.equal('stored');
    expect(readdirSync(join(dir, 'spool')).sort()).to.deep.equal(['piece-000001.tar', 'piece-000002.tar']);
    dest.close();
  });

  it('settle makes every accepted piece durable now (a stop)', async () => {
    const spool = await spoolIn();
    const dest = new LanDestination(spool, link({ value: 'connected' }));
    const a = await dest.store(piece(1, 0, 4096));
    const b = await dest.store(piece(2, 65536, 4096));
    await dest.settle(true);
    expect(await state((a as { durable: Promise<void> }).durable)).to.equal('settled');
    expect(await state((b as { durable: Promise<void> }).durable)).to.equal('settled');
    dest.close();
  });
});
