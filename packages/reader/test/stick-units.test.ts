/**
 * The stick path's parts, each alone: the ledger (round trip, damage, temporaries), the
 * free-space arithmetic (just at and just over the limits), the receipts (merged,
 * refused, missing, other sticks, loose files, damaged receipts, pieces the local spool
 * still holds), the reclaim of a piece's ranges in the common map, and what a LAN
 * Welcome does to the spool and the ledger.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BlockStatus, Domain, SblockVector, StatusMap } from '@ddferry/mapfile';
import { type Piece, type Receipt, type RescueId, deriveRescueKeys, formatReceipt, makeExtent, makeRescueId } from '@ddferry/protocol';

import { setRange } from '../src/job/common-map.js';
import { Ledger, type LedgerEntry, formatLedgerEntry, ledgerFileName, parseLedgerEntry } from '../src/job/ledger.js';
import { SeqCounter } from '../src/job/seq-counter.js';
import { Spool, type SpooledPiece } from '../src/job/spool.js';
import { settleMerged } from '../src/lan/welcome.js';
import type { Job } from '../src/job/job.js';
import { readChunkFileReceipts } from '../src/stick/chunk-files.js';
import { readStickReceipts, reshipRanges, settle } from '../src/stick/receipts.js';
import { openStickFolder } from '../src/stick/stick-folder.js';
import { MAX_STICK_FILES, bytesNeeded, fits, stickMargin, stickReserve, stickSealBytes } from '../src/stick/space.js';
import { BUNDLE_WRITER, type StickWriter } from '../src/stick/writer.js';

const MIB = 1 << 20;
const STICK = '0123456789abcdef';

const TOKEN = 'the token of the stick unit tests';

/** The header hash the test gives piece `seq` (`n`: another piece under the same seq). */
function hashOf(seq: number, n = 0): string {
  return `${String(n).padStart(8, '0')}${String(seq).padStart(24, '0')}`;
}

function entry(seq: number, delta: LedgerEntry['delta'], more: Partial<LedgerEntry> = {}): LedgerEntry {
  return { seq, chunk: 0, stickId: STICK, files: [`piece-${String(seq).padStart(6, '0')}.tar`], dataBytes: 0, delta, headerHash: hashOf(seq), ...more };
}

describe('Ledger', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-ledger-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps entries across opens, removes them, and tidies cut saves', async () => {
    const l = await Ledger.open(dir);
    const a = entry(7, [{ pos: 0, size: 4096, status: '+' }, { pos: 4096, size: 512, status: '-' }], { dataBytes: 4096, chunk: 2 });
    await l.put(a);
    await l.put(entry(12, [{ pos: 8192, size: 512, status: '/' }], { files: [] }));
    writeFileSync(join(dir, '.piece-000013.json.123.abcd.tmp'), 'half');
    const again = await Ledger.open(dir);
    expect(again.entries()).to.deep.equal([a, entry(12, [{ pos: 8192, size: 512, status: '/' }], { files: [] })]);
    expect(again.maxSeq).to.equal(12);
    expect(readdirSync(dir).sort()).to.deep.equal(['piece-000007.json', 'piece-000012.json']);
    await again.remove([7, 99]);
    expect((await Ledger.open(dir)).entries().map((e) => e.seq)).to.deep.equal([12]);
  });

  it('refuses a damaged entry with ERR_LEDGER_BAD naming the file', async () => {
    writeFileSync(join(dir, ledgerFileName(3)), '{"version":1,"seq":3,');
    try {
      await Ledger.open(dir);
      expect.fail('opened');
    } catch (err) {
      expect((err as { code: string }).code).to.equal('ERR_LEDGER_BAD');
      expect((err as Error).message).to.contain(join(dir, 'piece-000003.json'));
    }
  });

  it('refuses an entry under another seq\'s name, a bad status and a path in files', async () => {
    const text = formatLedgerEntry(entry(4, [{ pos: 0, size: 1, status: '+' }]));
    writeFileSync(join(dir, ledgerFileName(5)), text);
    try {
      await Ledger.open(dir);
      expect.fail('opened');
    } catch (err) {
      expect((err as { code: string }).code).to.equal('ERR_LEDGER_BAD');
    }
    expect(() => parseLedgerEntry(text.replace('"+"', '"x"'), 'f')).to.throw().with.property('code', 'ERR_LEDGER_BAD');
    expect(() => parseLedgerEntry(text.replace('piece-000004.tar', '../x'), 'f')).to.throw().with.property('code', 'ERR_LEDGER_BAD');
    expect(() => parseLedgerEntry(text.replace('"dataBytes":0', '"dataBytes":-1'), 'f')).to.throw().with.property('code', 'ERR_LEDGER_BAD');
  });
});

describe('stick space', () => {
  const space = (free: number, total = 64 * MIB, blockSize = 4096) => ({ free, total, blockSize });

  it('keeps a margin of max(2 MiB, total/64), at most 64 MiB', () => {
    expect(stickMargin(64 * MIB)).to.equal(2 * MIB);
    expect(stickMargin(1024 * MIB)).to.equal(16 * MIB);
    expect(stickMargin(64 * 1024 * MIB)).to.equal(64 * MIB);
  });

  it('seals pieces at total/16, from 1 MiB to 32 MiB, whole MiB', () => {
    expect(stickSealBytes(8 * MIB)).to.equal(MIB);
    expect(stickSealBytes(64 * MIB)).to.equal(4 * MIB);
    expect(stickSealBytes(100 * MIB)).to.equal(6 * MIB);
    expect(stickSealBytes(256 * MIB)).to.equal(16 * MIB);
    expect(stickSealBytes(64 * 1024 * MIB)).to.equal(16 * MIB);
  });

  it('fits a read just at the limit and not one byte block over it', () => {
    const pending = { pieces: 1, bytes: 3 * MIB, ranges: 10 };
    const need = bytesNeeded(pending, 65536, BUNDLE_WRITER, 4096);
    // tar: header + manifest + header + data rounded to 512, end blocks; then rounded to 4096, plus one block per file
    const tar = 512 + Math.ceil((512 + 12 * 96) / 512) * 512 + 512 + 3 * MIB + 65536 + 1024;
    expect(need).to.equal(Math.ceil(tar / 4096) * 4096 + 4096);
    const reserve = stickReserve(1, 1, 4096);
    expect(fits(space(2 * MIB + reserve + need), pending, 65536, BUNDLE_WRITER)).to.equal(true);
    expect(fits(space(2 * MIB + reserve + need - 1), pending, 65536, BUNDLE_WRITER)).to.equal(false);
  });

  it('keeps room for the receipt of every piece on the stick and pending: 3 receipts rounded to the block, plus 2 blocks', () => {
    // a receipt of n one-piece bundles takes at most 1 KiB + 1 KiB a bundle
    expect(stickReserve(0, 0, 512)).to.equal(3 * 1024 + 2 * 512);
    expect(stickReserve(7, 7, 512)).to.equal(3 * 8192 + 2 * 512);
    expect(stickReserve(7, 7, 4096)).to.equal(3 * 8192 + 2 * 4096);
    expect(stickReserve(8, 8, 4096)).to.equal(3 * 12288 + 2 * 4096);
    // chunk files: 40 bytes a file in receipts/ddrescue-done.txt when that is more
    expect(stickReserve(10, 600, 512)).to.equal(3 * 24064 + 2 * 512);
    // just at and just over, with 40 pieces already on a 512-byte-cluster stick
    const pending = { pieces: 1, bytes: MIB, ranges: 4 };
    const need = bytesNeeded(pending, 4096, BUNDLE_WRITER, 512);
    const fat = (free: number) => ({ free, total: 64 * MIB, blockSize: 512 });
    const at = 2 * MIB + stickReserve(41, 41, 512) + need;
    expect(fits(fat(at), pending, 4096, BUNDLE_WRITER, 40, 40)).to.equal(true);
    expect(fits(fat(at - 1), pending, 4096, BUNDLE_WRITER, 40, 40)).to.equal(false);
    // the reserve grows with what the stick holds: one more bundle on it, 3 x 1 KiB more
    expect(fits(fat(at), pending, 4096, BUNDLE_WRITER, 41, 41)).to.equal(false);
    expect(fits(fat(at + 3 * 1024 - 1), pending, 4096, BUNDLE_WRITER, 41, 41)).to.equal(false);
    expect(fits(fat(at + 3 * 1024), pending, 4096, BUNDLE_WRITER, 41, 41)).to.equal(true);
  });

  it('counts one block per open piece, rounds to the file system block, and caps the folder\'s files', () => {
    const w: StickWriter = { estimate: (d) => d, write: () => Promise.reject(new Error('unused')), filesPerPiece: 2 };
    expect(bytesNeeded({ pieces: 3, bytes: 1, ranges: 0 }, 0, w, 32768)).to.equal(32768 + 6 * 32768);
    expect(fits(space(1024 * MIB), { pieces: 1, bytes: 0, ranges: 0 }, 512, w, MAX_STICK_FILES - 2)).to.equal(true);
    expect(fits(space(1024 * MIB), { pieces: 1, bytes: 0, ranges: 0 }, 512, w, MAX_STICK_FILES - 1)).to.equal(false);
  });

  it('never lets a file reach 4 GiB - 1', () => {
    const w: StickWriter = { estimate: (d) => d, write: () => Promise.reject(new Error('unused')) };
    const huge = space(64 * 1024 * MIB, 64 * 1024 * MIB);
    expect(fits(huge, { pieces: 1, bytes: 4096 * MIB - 2 - 512, ranges: 0 }, 512, w)).to.equal(true);
    expect(fits(huge, { pieces: 1, bytes: 4096 * MIB - 1 - 512, ranges: 0 }, 512, w)).to.equal(false);
  });
});

describe('files on the stick are what they claim (S4)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-stick-files-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** `p`, or a failure after 5 s: a FIFO opened for reading without a writer would hang. */
  async function soon<T>(p: Promise<T>): Promise<T> {
    let t: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([p, new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error('hung on a FIFO or a link')), 5000);
      })]);
    } finally {
      clearTimeout(t);
    }
  }
  async function codeOf(p: Promise<unknown>): Promise<string> {
    try {
      await soon(p);
    } catch (err) {
      return (err as { code?: string }).code ?? String(err);
    }
    return 'no error';
  }
  function fifo(path: string): void {
    const r = spawnSync('mkfifo', [path]);
    if (r.status !== 0) throw new Error(`mkfifo ${path} failed: ${r.error?.message ?? r.stderr}`);
  }

  const job = { rescueId: makeRescueId(), fingerprint: { size: MIB, logicalSectorSize: 512, physicalSectorSize: 512, model: 'M', serial: 'S', wwn: '', kind: 'file' }, sourceSize: MIB, sectorSize: 512, chunkSize: MIB } as unknown as Job;
  const roomy = async (): Promise<{ free: number; blockSize: number; total: number }> => ({ free: 1024 * MIB, blockSize: 4096, total: 2048 * MIB });

  it('refuses at once a rescue.json that is a FIFO or a link, and a ddferry folder that is a link', async () => {
    const folder = join(dir, 'ddferry', job.rescueId);
    mkdirSync(folder, { recursive: true });
    fifo(join(folder, 'rescue.json'));
    expect(await codeOf(openStickFolder(dir, job, roomy))).to.equal('ERR_FILE_NOT_REGULAR');
    rmSync(join(folder, 'rescue.json'));
    writeFileSync(join(dir, 'elsewhere.json'), '{}');
    symlinkSync(join(dir, 'elsewhere.json'), join(folder, 'rescue.json'));
    expect(await codeOf(openStickFolder(dir, job, roomy))).to.equal('ERR_FILE_SYMLINK');
    const other = join(dir, 'other');
    mkdirSync(other);
    symlinkSync(join(dir, 'ddferry'), join(other, 'ddferry'));
    expect(await codeOf(openStickFolder(other, job, roomy))).to.equal('ERR_FILE_SYMLINK');
  });

  it('warns at once about a receipt that is a FIFO or a link and reads the others; refuses a receipts folder that is a link', async () => {
    const keys = deriveRescueKeys(TOKEN, job.rescueId as RescueId);
    mkdirSync(join(dir, 'receipts'));
    fifo(join(dir, 'receipts', 'receipt-1-fifo.json'));
    writeFileSync(join(dir, 'real.json'), '{}');
    symlinkSync(join(dir, 'real.json'), join(dir, 'receipts', 'receipt-2-link.json'));
    writeFileSync(join(dir, 'receipts', 'receipt-3.json'), formatReceipt({ rescueId: job.rescueId as RescueId, merged: [{ seq: 4, headerHash: hashOf(4) }], rejected: [], writtenAt: 't', writer: 'w' }, keys));
    const warnings: string[] = [];
    const r = await soon(readStickReceipts(dir, keys, (l) => warnings.push(l)));
    expect([...r.merged.keys()]).to.deep.equal([4]);
    expect(warnings.map((l) => /ERR_[A-Z_]+/.exec(l)?.[0])).to.deep.equal(['ERR_FILE_NOT_REGULAR', 'ERR_FILE_SYMLINK']);
    expect(warnings[0]).to.contain(join(dir, 'receipts', 'receipt-1-fifo.json'));
    const other = join(dir, 'other');
    mkdirSync(other);
    symlinkSync(join(dir, 'receipts'), join(other, 'receipts'));
    expect(await codeOf(readStickReceipts(other, keys, () => undefined))).to.equal('ERR_FILE_SYMLINK');
  });

  it('refuses at once, with ERR_CHUNK_RECEIPTS, a receipts list that is a FIFO or a link', async () => {
    mkdirSync(join(dir, 'receipts'));
    fifo(join(dir, 'receipts', 'ddrescue-done.txt'));
    expect(await codeOf(readChunkFileReceipts(dir))).to.equal('ERR_CHUNK_RECEIPTS');
    rmSync(join(dir, 'receipts', 'ddrescue-done.txt'));
    writeFileSync(join(dir, 'list.txt'), 'chunk0000-000001-01.raw\n');
    symlinkSync(join(dir, 'list.txt'), join(dir, 'receipts', 'ddrescue-done.txt'));
    let err: unknown;
    try {
      await soon(readChunkFileReceipts(dir));
    } catch (e) {
      err = e;
    }
    expect(err).to.include({ code: 'ERR_CHUNK_RECEIPTS' });
    expect((err as Error).message).to.contain('symbolic link');
  });
});

describe('stick receipts', () => {
  const rescueId = makeRescueId() as RescueId;
  const keys = deriveRescueKeys(TOKEN, rescueId);
  const refs = (...seqs: number[]): Receipt['merged'] => seqs.map((seq) => ({ seq, headerHash: hashOf(seq) }));
  const receipt = (merged: Receipt['merged'], rejected: Receipt['rejected'] = [], id: RescueId = rescueId, token = TOKEN): string => formatReceipt(
    { rescueId: id, merged, rejected, writtenAt: '2026-12-01T07:00:00Z', writer: 'pcb:image' }, deriveRescueKeys(token, id),
  );

  it('reads every receipt of the rescue with its key, warns about a damaged, forged or other rescue\'s one, and keeps them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ddferry-receipts-'));
    try {
      mkdirSync(join(dir, 'receipts'));
      writeFileSync(join(dir, 'receipts', 'receipt-a.json'), receipt(refs(1, 2, 3), [{ bundle: 'piece-000005.tar', seqs: [5], code: 'ERR_PIECE_CHECKSUM', reason: 'flipped' }]));
      writeFileSync(join(dir, 'receipts', 'receipt-b.json'), receipt(refs(1, 2, 3, 4)));
      writeFileSync(join(dir, 'receipts', 'receipt-c.json'), receipt(refs(1, 2, 3, 4)).replace(`[4,"${hashOf(4)}"]`, `[9,"${hashOf(9)}"]`));
      writeFileSync(join(dir, 'receipts', 'receipt-d.json'), receipt(refs(99), [], makeRescueId() as RescueId));
      writeFileSync(join(dir, 'receipts', 'receipt-e.json'), receipt(refs(7), [], rescueId, 'a forger\'s guess'));
      writeFileSync(join(dir, 'receipts', 'notes.txt'), 'not a receipt');
      const warnings: string[] = [];
      const r = await readStickReceipts(dir, keys, (l) => warnings.push(l));
      expect([...r.merged]).to.deep.equal(refs(1, 2, 3, 4).map((x) => [x.seq, x.headerHash]));
      expect([...r.rejected]).to.deep.equal([['piece-000005.tar', { code: 'ERR_PIECE_CHECKSUM', reason: 'flipped' }]]);
      expect(r.files).to.deep.equal([join('receipts', 'receipt-a.json'), join('receipts', 'receipt-b.json')]);
      expect(warnings).to.have.length(3);
      expect(warnings[0]).to.contain('ERR_STICK_RECEIPT_MAC').and.contain('receipt-c.json');
      expect(warnings[1]).to.contain('ERR_STICK_BAD_RECEIPT').and.contain('receipt-d.json').and.contain('is for rescue');
      expect(warnings[2]).to.contain('ERR_STICK_RECEIPT_MAC').and.contain('receipt-e.json');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('settles entries: merged first, then refused, then missing; other sticks only by merges; loose refused and merged files', () => {
    const e1 = entry(1, []);
    const e2 = entry(2, []);
    const e3 = entry(3, []);
    const e4 = entry(4, [], { files: [] });
    const e5 = entry(5, []);
    const e6 = entry(6, [], { stickId: 'feedfacefeedface' });
    const e7 = entry(7, [], { stickId: 'feedfacefeedface' });
    const rejected = new Map([['piece-000002.tar', { code: 'ERR_PIECE_CHECKSUM', reason: 'xxh64' }], ['piece-000001.tar', { code: 'X', reason: 'y' }], ['piece-000009.tar', { code: 'ERR_STICK_BUNDLE_NAME', reason: 'renamed' }]]);
    const present = new Set(['piece-000001.tar', 'piece-000002.tar', 'piece-000005.tar', 'piece-000009.tar', 'piece-000010.tar', 'piece-000011.tar', 'DDRESCUE-COMMANDS.txt']);
    const merged = new Map([[1, hashOf(1)], [6, hashOf(6)], [10, hashOf(10)]]);
    const s = settle([e1, e2, e3, e4, e5, e6, e7], { merged, rejected, doneFiles: new Set(), files: [] }, STICK, present);
    expect(s.merged.map((e) => e.seq)).to.deep.equal([1, 6]);
    expect(s.reclaimed.map((r) => [r.entry.seq, r.reason])).to.deep.equal([[2, 'rejected ERR_PIECE_CHECKSUM: xxh64'], [3, 'missing'], [4, 'missing']]);
    expect(s.pending.map((e) => e.seq)).to.deep.equal([5]);
    expect([...s.elsewhere].map(([id, l]) => [id, l.map((e) => e.seq)])).to.deep.equal([['feedfacefeedface', [7]]]);
    expect(s.stray).to.deep.equal(['piece-000009.tar', 'piece-000010.tar']);
  });

  it('frees an entry only when a receipt names its seq with its header hash (R5): another piece under its seq frees nothing', () => {
    const e5 = entry(5, []);
    const e6 = entry(6, [], { stickId: 'feedfacefeedface' });
    const e7 = entry(7, [], { headerHash: undefined });
    const present = new Set(['piece-000005.tar', 'piece-000007.tar']);
    const merged = new Map([[5, hashOf(5, 1)], [6, hashOf(6, 1)], [7, hashOf(7)]]);
    const s = settle([e5, e6, e7], { merged, rejected: new Map(), doneFiles: new Set(), files: [] }, STICK, present);
    expect(s.merged).to.deep.equal([]);
    expect(s.pending.map((e) => e.seq)).to.deep.equal([5, 7]);
    expect([...s.elsewhere.keys()]).to.deep.equal(['feedfacefeedface']);
  });

  it('counts chunk files as merged when the PC_B script listed all their .raw files', () => {
    const e = entry(8, [], { files: ['chunk0001-000008-01.raw', 'chunk0001-000008-01.map', 'chunk0001-000008-02.raw', 'chunk0001-000008-02.map'], headerHash: undefined });
    const none = { merged: new Map<number, string>(), rejected: new Map(), files: [] };
    const present = new Set(e.files);
    expect(settle([e], { ...none, doneFiles: new Set(['chunk0001-000008-01.raw']) }, STICK, present).pending).to.have.length(1);
    expect(settle([e], { ...none, doneFiles: new Set(['chunk0001-000008-01.raw', 'chunk0001-000008-02.raw']) }, STICK, present).merged).to.have.length(1);
  });

  it('reclaims: + back to non-tried where the map still says so, and ships the map\'s other statuses again', () => {
    // map: + [0,4096) - [4096,4608) + [4608,8192) / [8192,9216) ? [9216,16384)
    const blocks: Array<[number, number, BlockStatus]> = [[0, 4096, '+'], [4096, 512, '-'], [4608, 3584, '+'], [8192, 1024, '/'], [9216, 7168, '?']];
    const map = new StatusMap(SblockVector.from(blocks.map(([pos, size, status]) => ({ pos, size, status }))));
    const domain = Domain.fromOptions(0, 16384);
    const e = entry(3, [
      { pos: 0, size: 4096, status: '+' }, { pos: 4096, size: 512, status: '-' }, { pos: 4608, size: 1024, status: '+' },
      { pos: 8192, size: 1024, status: '*' }, { pos: 9216, size: 512, status: '-' },
    ]);
    let bytes = 0;
    for (const d of e.delta) if (d.status === '+') bytes += setRange(map, domain, d.pos, d.size, BlockStatus.nonTried, (st) => st === BlockStatus.finished);
    expect(bytes).to.equal(4096 + 1024);
    const got: Array<[number, number, string]> = [];
    map.forEachBlock((pos, end) => got.push([pos, end - pos, map.sblockAt(pos)!.status]));
    expect(BlockStatus.nonTried).to.equal('?');
    expect(got).to.deep.equal([[0, 4096, '?'], [4096, 512, '-'], [4608, 1024, '?'], [5632, 2560, '+'], [8192, 1024, '/'], [9216, 7168, '?']]);
    // the map's statuses now, not the old delta's: '/' where it said '*'; nothing where the map is '?'
    expect(reshipRanges(map, [e])).to.deep.equal([{ pos: 4096, size: 512, status: '-' }, { pos: 8192, size: 1024, status: '/' }]);
  });

  it('keeps an entry whose piece the local spool still holds out of the reclaim (it is not lost)', () => {
    const none = { merged: new Map<number, string>(), rejected: new Map(), doneFiles: new Set<string>(), files: [] };
    const e = entry(9, [{ pos: 0, size: 512, status: '+' }]);
    const s = settle([e], none, STICK, new Set(), undefined, (seq) => seq === 9);
    expect(s.local.map((x) => x.seq)).to.deep.equal([9]);
    expect(s.reclaimed).to.deep.equal([]);
    // merged wins over local: the image holds it
    expect(settle([e], { ...none, merged: new Map([[9, hashOf(9)]]) }, STICK, new Set(), undefined, () => true).merged).to.have.length(1);
  });
});

describe('settleMerged (what the assembler says it merged)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-merged-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const rescueId = makeRescueId();
  const plan = { rescueId, sourceSize: MIB, sectorSize: 512, chunks: [{ index: 0, pos: 0, size: MIB }] };
  const keys = deriveRescueKeys(TOKEN, rescueId);

  it('drops a spooled piece only under its own header hash; one named under another hash is sealed again under a new number', async () => {
    const seq = await SeqCounter.open(join(dir, 'seq.json'));
    const spool = await Spool.open({ dir: join(dir, 'spool'), capacity: MIB, plan, keys }, seq);
    const ledger = await Ledger.open(join(dir, 'ledger'));
    const data = new Uint8Array(4096).fill(1);
    const sealed: SpooledPiece[] = [];
    for (const pos of [0, 8192, 16384]) {
      sealed.push(await spool.put({ rescueId, seq: seq.next(), chunk: 0, extents: [makeExtent(pos, data)], delta: [{ pos, size: 4096, status: '+' }], data }));
    }
    const lines: string[] = [];
    // 1 named with its hash; 2 named under another piece's hash (a forger with the token); 3 not named
    const dropped = await settleMerged([{ seq: 1, headerHash: sealed[0]!.headerHash }, { seq: 2, headerHash: sealed[2]!.headerHash }], { spool, ledger, seq, url: 'ws://x', log: (l) => lines.push(l) });
    expect(dropped).to.deep.equal([1]);
    expect(spool.seqs()).to.deep.equal([3, 4]);
    expect(lines.join('\n')).to.contain('ERR_PIECE_SEQ_CONFLICT').and.contain('seq 2').and.contain('piece 4');
    const moved = await spool.read(4);
    expect(moved.extents.map((e) => e.pos)).to.deep.equal([8192]);
  });

  it('counts what the spool put in this run: bytes rescued, and the bytes of their files (compressed, or raw with --compress none)', async () => {
    const seq = await SeqCounter.open(join(dir, 'seq.json'));
    const data = Buffer.alloc(64 * 1024, 'a line of a log file\n');
    const piece = (pos: number): Piece => ({ rescueId, seq: seq.next(), chunk: 0, extents: [makeExtent(pos, data)], delta: [{ pos, size: data.length, status: '+' }], data });
    const spool = await Spool.open({ dir: join(dir, 'spool'), capacity: MIB, plan, keys }, seq);
    expect(spool.carried).to.deep.equal({ rescuedBytes: 0, carriedBytes: 0 });
    await spool.put(piece(0));
    await spool.put(piece(65536));
    expect(spool.carried.rescuedBytes).to.equal(2 * data.length);
    expect(spool.carried.carriedBytes).to.equal(spool.bytes).and.be.below(data.length / 4);
    const raw = await Spool.open({ dir: join(dir, 'raw'), capacity: MIB, plan, keys, compression: { compression: 'none' } }, seq);
    await raw.put(piece(0));
    expect(raw.carried.carriedBytes).to.equal(raw.bytes).and.be.above(data.length);
    expect(Buffer.from((await raw.read(raw.seqs()[0]!)).data).equals(data)).to.equal(true);
  });

  it('clears ledger entries the image holds under their own hash, keeps the others', async () => {
    const seq = await SeqCounter.open(join(dir, 'seq.json'));
    const spool = await Spool.open({ dir: join(dir, 'spool'), capacity: MIB, plan, keys }, seq);
    const l = await Ledger.open(join(dir, 'ledger'));
    await l.put(entry(3, [{ pos: 0, size: 512, status: '+' }]));
    await l.put(entry(5, []));
    await l.put(entry(7, [{ pos: 4096, size: 512, status: '-' }], { stickId: 'feedfacefeedface' }));
    seq.raise(7);
    const lines: string[] = [];
    await settleMerged([{ seq: 3, headerHash: hashOf(3) }, { seq: 5, headerHash: hashOf(5, 1) }, { seq: 7, headerHash: hashOf(7) }], { spool, ledger: l, seq, url: 'ws://x', log: (x) => lines.push(x) });
    expect((await Ledger.open(join(dir, 'ledger'))).entries().map((e) => e.seq)).to.deep.equal([5]);
    expect(JSON.parse(readFileSync(join(dir, 'seq.json'), 'utf8'))).to.deep.equal({ lastSeq: 7 });
    expect(lines[0]).to.contain('2 piece(s) carried on a stick are merged on PC_B');
  });
});
