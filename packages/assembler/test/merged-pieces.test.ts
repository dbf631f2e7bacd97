import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';

import { expect } from 'chai';
import fc from 'fast-check';

import { AssemblerError } from '../src/errors.js';
import { loadMergedPieces, MergedPieces, MergedPiecesFile } from '../src/merged-pieces.js';

import { OTHER_RESCUE_ID, RESCUE_ID, tempDir } from './helpers.js';

const hash = (n: number): string => n.toString(16).padStart(32, '0');

describe('MergedPieces', () => {
  it('keeps seqs sorted with their hashes, whatever the order of adds, and finds them', () => {
    fc.assert(fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 2 ** 40 }), { maxLength: 3000 }), (seqs) => {
      const m = new MergedPieces();
      for (const s of seqs) expect(m.add({ seq: s, headerHash: hash(s) })).to.equal(true);
      const sorted = [...seqs].sort((a, b) => a - b);
      expect(m.toArray().map((r) => r.seq)).to.deep.equal(sorted);
      expect(m.size).to.equal(seqs.length);
      expect(m.maxSeq).to.equal(sorted[sorted.length - 1] ?? 0);
      for (const s of seqs) expect(m.hashOf(s)).to.equal(hash(s));
      expect(m.hashOf(2 ** 40 + 1)).to.equal(undefined);
    }), { numRuns: 30 });
  });

  it('takes the same piece twice as nothing new, and another piece under a merged seq as a bug', () => {
    const m = new MergedPieces();
    m.add({ seq: 7, headerHash: hash(1) });
    expect(m.add({ seq: 7, headerHash: hash(1) })).to.equal(false);
    expect(() => m.add({ seq: 7, headerHash: hash(2) })).to.throw(Error, /another header hash/);
    expect(m.size).to.equal(1);
  });
});

describe('IMAGE.ddferry.pieces', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let file: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    file = `${dir}/disk.img.ddferry.pieces`;
  });
  afterEach(async () => cleanup());

  it('appends records durably and reads them back; a missing file is an empty record', async () => {
    expect((await loadMergedPieces(file, RESCUE_ID)).pieces.size).to.equal(0);
    const w = new MergedPiecesFile(file, RESCUE_ID);
    await w.append([{ seq: 3, headerHash: hash(3) }, { seq: 1, headerHash: hash(1) }]);
    await w.append([]);
    await w.append([{ seq: 2, headerHash: hash(2) }]);
    await w.close();
    expect((await stat(file)).size).to.equal(32 + 3 * 32);
    const { pieces, dropped } = await loadMergedPieces(file, RESCUE_ID);
    expect(pieces.toArray()).to.deep.equal([1, 2, 3].map((s) => ({ seq: s, headerHash: hash(s) })));
    expect(dropped).to.equal(0);
  });

  it('drops a torn last record (cut short, or a wrong checksum) and truncates before it', async () => {
    const w = new MergedPiecesFile(file, RESCUE_ID);
    await w.append([{ seq: 1, headerHash: hash(1) }, { seq: 2, headerHash: hash(2) }]);
    await w.close();
    const whole = await readFile(file);
    await appendFile(file, whole.subarray(32, 32 + 20));
    let r = await loadMergedPieces(file, RESCUE_ID);
    expect(r.pieces.size).to.equal(2);
    expect(r.dropped).to.equal(20);
    expect((await readFile(file)).equals(whole)).to.equal(true);
    const torn = Buffer.from(whole);
    torn[torn.length - 1] = torn[torn.length - 1]! ^ 1;
    await writeFile(file, torn);
    r = await loadMergedPieces(file, RESCUE_ID);
    expect(r.pieces.toArray()).to.deep.equal([{ seq: 1, headerHash: hash(1) }]);
    expect((await stat(file)).size).to.equal(64);
    const again = new MergedPiecesFile(file, RESCUE_ID);
    await again.append([{ seq: 2, headerHash: hash(2) }]);
    await again.close();
    expect((await loadMergedPieces(file, RESCUE_ID)).pieces.size).to.equal(2);
  });

  it('refuses damage before the last record, another rescue\'s record, and a seq under two hashes (ERR_IMAGE_PIECES_BAD)', async () => {
    const w = new MergedPiecesFile(file, RESCUE_ID);
    await w.append([{ seq: 1, headerHash: hash(1) }, { seq: 2, headerHash: hash(2) }, { seq: 1, headerHash: hash(9) }]);
    await w.close();
    const expectBad = async (): Promise<void> => {
      try {
        await loadMergedPieces(file, RESCUE_ID);
      } catch (err) {
        expect(err).to.be.instanceOf(AssemblerError).with.property('code', 'ERR_IMAGE_PIECES_BAD');
        expect((err as AssemblerError).subject).to.equal(file);
        return;
      }
      expect.fail('loaded');
    };
    await expectBad();
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, 96));
    expect((await loadMergedPieces(file, RESCUE_ID)).pieces.size).to.equal(2);
    const damaged = Buffer.from(bytes.subarray(0, 96));
    damaged[40] = damaged[40]! ^ 1;
    await writeFile(file, damaged);
    await expectBad();
    try {
      await loadMergedPieces(file, OTHER_RESCUE_ID);
      expect.fail('loaded');
    } catch (err) {
      expect(err).to.have.property('code', 'ERR_IMAGE_PIECES_BAD');
    }
  });
});
