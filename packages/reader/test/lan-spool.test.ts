/**
 * The LAN path's reader side alone: PieceSink sealing into the Spool with puts behind
 * the engine (`writeBehind`), the one-copy piece buffers (reads in order and out of
 * order), the Spool's memory of fresh pieces (`take`), and what `sync` promises (R1):
 * once it returns, every sealed piece is whole on disk, and a failed put makes it throw.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type Piece, type SealedPiece, deriveRescueKeys, makeRescueId, openSealedPiece, xxh64 } from '@ddferry/protocol';

import { PieceSink } from '../src/pipeline/piece-sink.js';
import { Spool, spoolFileName } from '../src/pipeline/spool.js';

const MIB = 1 << 20;
const SIZE = 4 * MIB;
const rescueId = makeRescueId();
const chunks = [{ index: 0, pos: 0, size: SIZE / 2 }, { index: 1, pos: SIZE / 2, size: SIZE / 2 }];
const plan = { rescueId, sourceSize: SIZE, sectorSize: 512, chunks };
const keys = deriveRescueKeys('the token of the LAN spool tests', rescueId);

/** A sealed piece as the assembler opens it. */
function opened(s: SealedPiece): Piece {
  return openSealedPiece(s, { keys, plan });
}

/** Count the spool's reads of its files. */
function countReads(spool: Spool): number[] {
  const reads: number[] = [];
  const readSealed = spool.readSealed.bind(spool);
  spool.readSealed = async (seq: number): Promise<SealedPiece> => {
    reads.push(seq);
    return readSealed(seq);
  };
  return reads;
}

/** Every extent's bytes are the source's at its position, with the right checksum, and the delta's `+` ranges are the extents. */
function checkPiece(p: Piece, source: Buffer): void {
  let at = 0;
  for (const e of p.extents) {
    const bytes = p.data.subarray(at, at + e.size);
    expect(Buffer.from(bytes).equals(source.subarray(e.pos, e.pos + e.size)), `piece ${p.seq} extent at ${e.pos}`).to.equal(true);
    expect(xxh64(bytes)).to.equal(e.xxh64);
    at += e.size;
  }
  expect(at).to.equal(p.data.length);
  expect(p.delta.filter((d) => d.status === '+').map((d) => [d.pos, d.size])).to.deep.equal(p.extents.map((e) => [e.pos, e.size]));
}

describe('PieceSink and Spool (LAN)', () => {
  let dir: string;
  let source: Buffer;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-lan-spool-'));
    source = randomBytes(SIZE);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const open = (memoryBytes?: number): Promise<Spool> => Spool.open({
    dir: join(dir, 'spool'), seqFile: join(dir, 'seq.json'), capacity: 256 * MIB, plan, keys, ...(memoryBytes === undefined ? {} : { memoryBytes }),
  });

  async function rescue(sink: PieceSink, order: 'forward' | 'backward', step = 64 * 1024): Promise<void> {
    const reads: number[] = [];
    for (let pos = 0; pos < SIZE; pos += step) reads.push(pos);
    if (order === 'backward') reads.reverse();
    const buf = Buffer.alloc(step);
    for (const pos of reads) {
      source.copy(buf, 0, pos, pos + step); // the engine reuses its buffer: the sink must copy
      await sink.write(pos, buf);
      buf.fill(0xee);
      sink.statusChanged(pos, step, '+');
    }
  }

  for (const order of ['forward', 'backward'] as const) {
    it(`seals ${order} reads into whole, durable pieces; after sync every one is on disk and reads back equal`, async () => {
      const spool = await open();
      expect(spool.writeBehind).to.be.greaterThan(0);
      const sealed: Piece[] = [];
      const sink = new PieceSink({ rescueId, chunks, spool, sealBytes: 512 * 1024, onSealed: (p) => sealed.push(p) });
      await rescue(sink, order);
      await sink.sync();
      expect(sink.pending().pieces).to.equal(0);
      // every sealed piece is on disk now (R1: a map saved after sync claims only these)
      expect(readdirSync(join(dir, 'spool')).filter((n) => n.endsWith('.tar')).sort()).to.deep.equal(sealed.map((p) => spoolFileName(p.seq)).sort());
      expect(spool.count).to.equal(sealed.length);
      expect(sealed.reduce((s, p) => s + p.data.length, 0)).to.equal(SIZE);
      for (const p of sealed) {
        checkPiece(p, source);
        if (order === 'forward') expect(p.extents).to.have.length(1);
        // the file is the same piece, sealed (opened with the keys and checked against the plan)
        const back = await spool.read(p.seq);
        expect(back.headerHash).to.equal(await spool.headerHash(p.seq));
        expect(back.extents).to.deep.equal(p.extents);
        expect(Buffer.from(back.data).equals(Buffer.from(p.data))).to.equal(true);
      }
    });
  }

  it('gives a fresh sealed piece from memory once, then from the disk, checked; a restarted spool reads the disk and refuses a damaged file', async () => {
    const spool = await open();
    const reads = countReads(spool);
    const sealed: Piece[] = [];
    const sink = new PieceSink({ rescueId, chunks, spool, sealBytes: MIB, onSealed: (p) => sealed.push(p) });
    await rescue(sink, 'forward');
    await sink.sync();
    const [first, second] = spool.seqs();
    const a = await spool.take(first!);
    expect(reads).to.deep.equal([]);
    expect(a.headerHash).to.equal(await spool.headerHash(first!));
    const again = await spool.take(first!);
    expect(reads).to.deep.equal([first]);
    expect(again).to.not.equal(a);
    expect(Buffer.from(again.header).equals(Buffer.from(a.header))).to.equal(true);
    expect(opened(again)).to.deep.equal(opened(a));
    expect(opened(a)).to.deep.include({ seq: sealed[0]!.seq, extents: sealed[0]!.extents });
    checkPiece(opened(a), source);
    // sealed: nothing of the source is in the file
    expect(readFileSync(join(dir, 'spool', spoolFileName(first!))).includes(source.subarray(0, 64))).to.equal(false);
    // after a restart nothing comes from memory: a damaged piece is refused, not sent
    const file = join(dir, 'spool', spoolFileName(second!));
    const restarted = await open();
    const bytes = readFileSync(file);
    const at = bytes.length - 2048; // inside the piece's data
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x40, at);
    writeFileSync(file, bytes);
    let err: unknown;
    try {
      await restarted.take(second!);
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string }).code).to.match(/^ERR_(PIECE|BUNDLE|SEAL)_/);
  });

  it('keeps at most memoryBytes of fresh pieces; the rest come from the disk', async () => {
    const spool = await open(MIB);
    const reads = countReads(spool);
    const sealed: Piece[] = [];
    const sink = new PieceSink({ rescueId, chunks, spool, sealBytes: MIB, onSealed: (p) => sealed.push(p) });
    await rescue(sink, 'forward');
    await sink.sync();
    const taken: SealedPiece[] = [];
    for (const seq of spool.seqs()) taken.push(await spool.take(seq));
    expect(taken).to.have.length(4);
    // the first fills the memory (1 MiB); the others were read back from their files
    expect(reads).to.deep.equal(spool.seqs().slice(1));
    for (const p of taken) checkPiece(opened(p), source);
    await spool.remove(spool.seqs());
    expect(spool.count).to.equal(0);
    expect(readdirSync(join(dir, 'spool'))).to.deep.equal([]);
  });

  it('a put that fails behind the engine makes the next write and sync throw, with its + ranges lost', async () => {
    let seq = 0;
    const stored: number[] = [];
    const store = {
      writeBehind: 2,
      nextSeq: () => ++seq,
      async put(p: Piece): Promise<void> {
        await new Promise((r) => setTimeout(r, 5));
        if (p.seq === 2) throw Object.assign(new Error('disk full'), { code: 'ERR_SPOOL' });
        stored.push(p.seq);
      },
    };
    const sink = new PieceSink({ rescueId, chunks, spool: store, sealBytes: 256 * 1024 });
    let thrown: unknown;
    try {
      await rescue(sink, 'forward');
      await sink.sync();
    } catch (e) {
      thrown = e;
    }
    expect((thrown as Error).message).to.equal('disk full');
    expect(sink.failure?.message).to.equal('disk full');
    expect(sink.lost).to.deep.equal([{ pos: 256 * 1024, size: 256 * 1024 }]);
    expect(stored).to.not.include(2);
    let again: unknown;
    try {
      await sink.sync();
    } catch (e) {
      again = e;
    }
    expect(again).to.equal(sink.failure);
    expect(await sink.finish()).to.equal('disk full');
  });

  it('without writeBehind, each seal waits for its put (the stick path)', async () => {
    let seq = 0;
    let running = 0;
    let most = 0;
    const store = {
      nextSeq: () => ++seq,
      async put(): Promise<void> {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 2));
        --running;
      },
    };
    const sink = new PieceSink({ rescueId, chunks, spool: store, sealBytes: 256 * 1024 });
    let stalls = 0;
    const origWrite = sink.write.bind(sink);
    for (let pos = 0; pos < SIZE; pos += 64 * 1024) {
      await origWrite(pos, source.subarray(pos, pos + 64 * 1024));
      if (running > 0) ++stalls;
    }
    await sink.sync();
    expect(most).to.equal(1);
    expect(stalls).to.equal(0);
  });
});
