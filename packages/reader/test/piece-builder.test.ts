/**
 * The main process's piece side alone: PieceBuilder sealing reads (in order, out of
 * order, cut in parts as a pipe delivers them) into whole pieces whose `+` ranges are
 * exactly their extents, and the local Spool: durable files, its memory of fresh pieces
 * (`take`), pieces read back and checked, the job's counter saved before any removal.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type Piece, type SealedPiece, deriveRescueKeys, makeRescueId, openSealedPiece, xxh64 } from '@ddferry/protocol';

import { SeqCounter } from '../src/job/seq-counter.js';
import { Spool, type SpooledPiece, spoolFileName } from '../src/job/spool.js';
import { PieceBuilder } from '../src/run/piece-builder.js';

const MIB = 1 << 20;
const SIZE = 4 * MIB;
const rescueId = makeRescueId();
const chunks = [{ index: 0, pos: 0, size: SIZE / 2 }, { index: 1, pos: SIZE / 2, size: SIZE / 2 }];
const plan = { rescueId, sourceSize: SIZE, sectorSize: 512, chunks };
const keys = deriveRescueKeys('a token of the piece builder tests', rescueId);

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

describe('PieceBuilder and Spool', () => {
  let dir: string;
  let source: Buffer;
  let seq: SeqCounter;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-pieces-'));
    source = randomBytes(SIZE);
    seq = await SeqCounter.open(join(dir, 'seq.json'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const open = (memoryBytes?: number): Promise<Spool> => Spool.open({
    dir: join(dir, 'spool'), capacity: 256 * MIB, plan, keys, ...(memoryBytes === undefined ? {} : { memoryBytes }),
  }, seq);

  /** Reads as the run loop hands them on: a read starts (maybe seal), its data (maybe in parts), its status. */
  function rescue(b: PieceBuilder, order: 'forward' | 'backward', step = 64 * 1024, parts = 1): Piece[] {
    const sealed: Piece[] = [];
    const reads: number[] = [];
    for (let pos = 0; pos < SIZE; pos += step) reads.push(pos);
    if (order === 'backward') reads.reverse();
    const buf = Buffer.alloc(step);
    for (const pos of reads) {
      if (b.isDue()) sealed.push(...b.seal());
      source.copy(buf, 0, pos, pos + step); // the pipe's buffer is reused: the builder must copy
      const part = step / parts;
      for (let k = 0; k < parts; ++k) b.write(pos + k * part, buf.subarray(k * part, (k + 1) * part));
      buf.fill(0xee);
      b.statusChanged(pos, step, '+');
    }
    sealed.push(...b.seal());
    return sealed;
  }

  it('gives a released whole-piece buffer to the next piece, and keeps the pieces it sealed before that intact', () => {
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB });
    const fill = (from: number, bytes: number): Piece => {
      for (let pos = from; pos < from + bytes; pos += 64 * 1024) b.write(pos, source.subarray(pos, pos + 64 * 1024));
      b.statusChanged(from, bytes, '+');
      const [piece] = b.seal();
      return piece!;
    };
    const same = (p: Piece): boolean => Buffer.compare(p.data, source.subarray(p.extents[0]!.pos, p.extents[0]!.pos + p.data.length)) === 0;
    const first = fill(0, MIB);
    const second = fill(MIB, MIB);
    expect(second.data.buffer).to.not.equal(first.data.buffer);
    // the first piece is stored (sealed into its own buffers): its memory serves the next piece
    b.release(first);
    const third = fill(2 * MIB, MIB);
    expect(third.data.buffer).to.equal(first.data.buffer);
    expect(same(third) && same(second)).to.equal(true);
    // a small piece gets a buffer of its size: it is never taken back, and the whole buffer it came from serves at once
    const small = fill(3 * MIB, 64 * 1024);
    expect(small.data.buffer.byteLength).to.equal(64 * 1024);
    b.release(small);
    const next = fill(3 * MIB + 64 * 1024, 512 * 1024);
    expect(next.data.buffer).to.not.equal(small.data.buffer);
    expect(same(small) && same(next) && same(third)).to.equal(true);
  });

  for (const order of ['forward', 'backward'] as const) {
    for (const parts of [1, 4]) {
      it(`seals ${order} reads${parts > 1 ? ' delivered in parts' : ''} into whole pieces that go durably into the spool and read back equal`, async () => {
        const spool = await open();
        const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: 512 * 1024 });
        const sealed = rescue(b, order, 64 * 1024, parts);
        expect(b.pending().pieces).to.equal(0);
        for (const p of sealed) await spool.put(p);
        expect(readdirSync(join(dir, 'spool')).filter((n) => n.endsWith('.tar')).sort()).to.deep.equal(sealed.map((p) => spoolFileName(p.seq)).sort());
        expect(sealed.reduce((s, p) => s + p.data.length, 0)).to.equal(SIZE);
        for (const p of sealed) {
          checkPiece(p, source);
          if (order === 'forward') expect(p.extents).to.have.length(1);
          const back = await spool.read(p.seq);
          expect(back.extents).to.deep.equal(p.extents);
          expect(Buffer.from(back.data).equals(Buffer.from(p.data))).to.equal(true);
        }
      });
    }
  }

  it('joins the parts of one read into one extent, and never seals between a read\'s data and its status', () => {
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: 100 * 1024 });
    const sealed = rescue(b, 'forward', 32 * 1024, 4);
    expect(sealed.length).to.be.greaterThan(4);
    for (const p of sealed) checkPiece(p, source);
    // sealing only between reads: every piece holds whole reads
    for (const p of sealed) for (const e of p.extents) expect(e.size % (32 * 1024)).to.equal(0);
  });

  it('fills a piece bigger than the default (a stick\'s) in one buffer of its size, and the next piece reuses it once released', () => {
    const sealBytes = 12 * MIB; // over the default (8 MiB): a buffer of a piece and a read, not 9 MiB doubled
    const big = randomBytes(2 * sealBytes);
    const b = new PieceBuilder({ rescueId, chunks: [{ index: 0, pos: 0, size: 64 * MIB }], nextSeq: () => seq.next(), sealBytes });
    const fill = (from: number): Piece[] => {
      for (let pos = from; !b.isDue(); pos += 64 * 1024) {
        b.write(pos, big.subarray(pos, pos + 64 * 1024));
        b.statusChanged(pos, 64 * 1024, '+');
      }
      return b.seal();
    };
    const [first] = fill(0);
    expect(first!.data.length).to.equal(sealBytes);
    expect(first!.data.buffer.byteLength).to.equal(sealBytes + MIB);
    checkPiece(first!, big);
    const memory = first!.data.buffer;
    b.release(first!);
    const [second] = fill(sealBytes);
    expect(second!.data.buffer).to.equal(memory);
    checkPiece(second!, big);
  });

  it('is due by size, by age and by delta length', () => {
    let now = 0;
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: 1000, sealMillis: 50, sealRanges: 3, clock: () => now });
    expect(b.isDue()).to.equal(false);
    b.write(0, source.subarray(0, 999));
    expect(b.isDue()).to.equal(false);
    b.write(999, source.subarray(999, 1000));
    expect(b.isDue()).to.equal(true);
    b.seal();
    b.statusChanged(0, 512, '-');
    expect(b.isDue()).to.equal(false);
    now = 50;
    expect(b.isDue()).to.equal(true);
    b.seal();
    for (let i = 0; i < 3; ++i) b.statusChanged(i * 1024, 512, '-');
    expect(b.isDue()).to.equal(true);
    expect(b.seal()[0]!.delta).to.have.length(3);
  });

  it('seals what it spools, gives a fresh piece from memory once, then from the disk, checked; a restarted spool reads the disk and refuses a damaged file', async () => {
    const spool = await open();
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB });
    const pieces = rescue(b, 'forward');
    const sealed: SpooledPiece[] = [];
    for (const p of pieces) sealed.push(await spool.put(p));
    const [first, second] = spool.seqs();
    // the first take comes from memory: its file, damaged meanwhile, is not read
    const firstFile = join(dir, 'spool', spoolFileName(first!));
    const original = readFileSync(firstFile);
    writeFileSync(firstFile, Buffer.alloc(original.length));
    const a = await spool.take(first!);
    writeFileSync(firstFile, original);
    expect(a.headerHash).to.equal(sealed[0]!.headerHash);
    checkPiece(openSealedPiece(a, { keys, plan }), source);
    expect(await spool.headerHash(first!)).to.equal(a.headerHash);
    // nothing of the disk is readable in the file: the data is sealed
    const file = readFileSync(join(dir, 'spool', spoolFileName(first!)));
    expect(file.includes(source.subarray(0, 64))).to.equal(false);
    const again = await spool.take(first!);
    expect(again).to.not.equal(a);
    expect(again.headerHash).to.equal(a.headerHash);
    const opened = openSealedPiece(again, { keys, plan });
    expect(opened.extents).to.deep.equal(pieces[0]!.extents);
    checkPiece(opened, source);
    // after a restart nothing comes from memory: a damaged piece is refused, not sent
    const path = join(dir, 'spool', spoolFileName(second!));
    const restarted = await open();
    const bytes = readFileSync(path);
    const at = bytes.length - 2048; // inside the piece's data
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x40, at);
    writeFileSync(path, bytes);
    let err: unknown;
    try {
      await restarted.take(second!);
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string }).code).to.match(/^ERR_(PIECE|BUNDLE|SEAL)_/);
  });

  it('seals into the blocks of pieces sent (recycle) or removed before sending, never into a block still taken', async () => {
    const spool = await open();
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB });
    const pieces = rescue(b, 'forward');
    expect(pieces).to.have.length(4);
    const blockOf = (p: SealedPiece): ArrayBufferLike => p.frames[0]!.ciphertext.buffer;
    await spool.put(pieces[0]!);
    const a = await spool.take(pieces[0]!.seq); // taken, never recycled
    await spool.put(pieces[1]!);
    const b1 = await spool.take(pieces[1]!.seq);
    expect(blockOf(b1)).to.not.equal(blockOf(a));
    spool.recycle(b1);
    spool.recycle(b1); // a second time is ignored
    await spool.put(pieces[2]!);
    const c = await spool.take(pieces[2]!.seq);
    expect(blockOf(c)).to.equal(blockOf(b1));
    await spool.put(pieces[3]!);
    const d = await spool.take(pieces[3]!.seq);
    expect(blockOf(d)).to.not.equal(blockOf(c)).and.not.equal(blockOf(a));
    for (const p of [a, c, d]) checkPiece(openSealedPiece(p, { keys, plan }), source);
    // a piece whose receipt comes before it is taken goes back at once
    const e = rescue(new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB }), 'backward');
    await spool.put(e[0]!);
    await spool.remove([e[0]!.seq]);
    await spool.put(e[1]!);
    const f = await spool.take(e[1]!.seq);
    expect([blockOf(a), blockOf(c), blockOf(d)]).to.not.include(blockOf(f));
    checkPiece(openSealedPiece(f, { keys, plan }), source);
    checkPiece(openSealedPiece(d, { keys, plan }), source);
  });

  it('reads a piece back into a recycled block: once sent (recycle), the block serves the next seal or read-back, never a piece still taken', async () => {
    const spool = await open(1); // nothing kept in memory: every take reads the file
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB });
    const pieces = rescue(b, 'forward');
    const put: SpooledPiece[] = [];
    for (const p of pieces) put.push(await spool.put(p)); // each sealed block goes back at once, written
    const blockOf = (p: SealedPiece): ArrayBufferLike => p.frames[0]!.ciphertext.buffer;
    const a = await spool.take(put[0]!.seq);
    const b1 = await spool.take(put[1]!.seq);
    expect(blockOf(a)).to.not.equal(blockOf(b1));
    spool.recycle(b1);
    const c = await spool.take(put[2]!.seq);
    expect(blockOf(c), 'the read-back block of a sent piece serves the next read-back').to.equal(blockOf(b1));
    const d = await spool.take(put[3]!.seq);
    expect(blockOf(d)).to.not.equal(blockOf(c)).and.not.equal(blockOf(a));
    for (const [i, p] of [a, c, d].entries()) {
      expect(p.headerHash).to.equal(put[[0, 2, 3][i]!]!.headerHash);
      checkPiece(openSealedPiece(p, { keys, plan }), source);
    }
    spool.recycle(c);
    const e = rescue(new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB }), 'backward');
    await spool.put(e[0]!);
    await spool.remove(spool.seqs().slice(0, 4));
    const f = await spool.take(e[0]!.seq);
    checkPiece(openSealedPiece(f, { keys, plan }), source);
    checkPiece(openSealedPiece(a, { keys, plan }), source);
    checkPiece(openSealedPiece(d, { keys, plan }), source);
  });

  it('reads back a piece this run wrote without opening its seal again (its header hash must match); once distrusted, or after a restart, it is checked whole', async () => {
    const spool = await open(1); // nothing kept in memory: every take reads the file
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB });
    const pieces = rescue(b, 'forward');
    const put: SpooledPiece[] = [];
    for (const p of pieces.slice(0, 3)) put.push(await spool.put(p));
    const fileOf = (s: number): string => join(dir, 'spool', spoolFileName(s));
    // a bit of frame data flipped on PC_A's disk: the header hash is the same
    const damaged = readFileSync(fileOf(put[0]!.seq));
    const at = damaged.length - 2048;
    damaged.writeUInt8(damaged.readUInt8(at) ^ 0x40, at);
    writeFileSync(fileOf(put[0]!.seq), damaged);
    const sent = await spool.take(put[0]!.seq);
    expect(sent.headerHash).to.equal(put[0]!.headerHash);
    expect(() => openSealedPiece(sent, { keys, plan })).to.throw().with.property('code', 'ERR_SEAL_FRAME_AUTH_FAILED');
    // the assembler refuses it: from now on it is opened before it is sent
    spool.distrust(put[0]!.seq);
    let err: unknown;
    try {
      await spool.take(put[0]!.seq);
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string }).code).to.equal('ERR_SEAL_FRAME_AUTH_FAILED');
    // another piece's file under this one's name: another header hash, checked whole (it opens, and is what the file holds)
    writeFileSync(fileOf(put[1]!.seq), readFileSync(fileOf(put[2]!.seq)));
    const swapped = await spool.take(put[1]!.seq);
    expect(swapped.headerHash).to.equal(put[2]!.headerHash);
    checkPiece(openSealedPiece(swapped, { keys, plan }), source);
    // a restarted spool trusts no file
    const restarted = await open(1);
    const again = await restarted.take(put[2]!.seq);
    checkPiece(openSealedPiece(again, { keys, plan }), source);
    writeFileSync(fileOf(put[2]!.seq), damaged);
    err = undefined;
    try {
      await restarted.take(put[2]!.seq);
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string }).code).to.match(/^ERR_(PIECE|BUNDLE|SEAL)_/);
  });

  it('keeps at most memoryBytes of fresh pieces; the rest come from the disk; removing saves the counter first', async () => {
    const spool = await open(MIB);
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB });
    const sealed: SpooledPiece[] = [];
    for (const p of rescue(b, 'forward')) sealed.push(await spool.put(p));
    // the first fills the memory (1 MiB); the others are read back from their files: with
    // the files emptied, only the first can be taken
    const fileOf = (n: number): string => join(dir, 'spool', spoolFileName(n));
    const files = new Map(spool.seqs().map((n) => [n, readFileSync(fileOf(n))]));
    for (const n of files.keys()) writeFileSync(fileOf(n), Buffer.alloc(0));
    const taken: SealedPiece[] = [];
    for (const n of spool.seqs()) {
      try {
        taken.push(await spool.take(n));
      } catch {
        // read back from its file
      }
    }
    expect(taken.map((p) => p.seq)).to.deep.equal([sealed[0]!.seq]);
    for (const [n, bytes] of files) writeFileSync(fileOf(n), bytes);
    for (const n of spool.seqs().slice(1)) taken.push(await spool.take(n));
    expect(taken.map((p) => p.headerHash)).to.deep.equal(sealed.map((p) => p.headerHash));
    for (const p of taken) checkPiece(openSealedPiece(p, { keys, plan }), source);
    await spool.remove(spool.seqs());
    expect(spool.count).to.equal(0);
    expect(readdirSync(join(dir, 'spool'))).to.deep.equal([]);
    // the numbers are never given again, even by a job reopened after the spool emptied
    expect(JSON.parse(readFileSync(join(dir, 'seq.json'), 'utf8'))).to.deep.equal({ lastSeq: 4 });
    expect((await SeqCounter.open(join(dir, 'seq.json'))).next()).to.equal(5);
  });

  it('seals a piece again under a new number, durable before the old file goes', async () => {
    const spool = await open();
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB });
    for (const p of rescue(b, 'forward')) await spool.put(p);
    const before = await spool.headerHash(2);
    const moved = await spool.renumber(2, seq.next());
    expect(moved.seq).to.equal(5);
    expect(spool.seqs()).to.deep.equal([1, 3, 4, 5]);
    expect(moved.headerHash).to.not.equal(before);
    checkPiece(await spool.read(5), source);
  });

  it('a reopened spool raises the counter above the pieces it holds', async () => {
    const spool = await open();
    const b = new PieceBuilder({ rescueId, chunks, nextSeq: () => seq.next(), sealBytes: MIB });
    for (const p of rescue(b, 'forward')) await spool.put(p);
    const fresh = await SeqCounter.open(join(dir, 'seq.json'));
    await Spool.open({ dir: join(dir, 'spool'), capacity: MIB, plan, keys }, fresh);
    expect(fresh.next()).to.equal(5);
  });
});
