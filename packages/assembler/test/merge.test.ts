import { readFile, writeFile } from 'node:fs/promises';

import type { BlockStatus } from '@ddferry/mapfile';
import { processedState } from '@ddferry/mapfile';
import type { OpenedPiece, PieceMapState } from '@ddferry/protocol';
import { validatePiece } from '@ddferry/protocol';
import { expect } from 'chai';
import fc from 'fast-check';

import { Image } from '../src/image.js';
import type { ImageStep } from '../src/image.js';
import { mergePieces, MergeQueue } from '../src/merge.js';

import type { Step } from './helpers.js';
import {
  bindRequest, bytesOf, CHUNK_SIZE, CHUNKS, hold, makePiece, PLUS, readImage, readStatuses, RESCUE_ID, SECTOR_SIZE, SOURCE_SIZE, useTempImage,
} from './helpers.js';

const PLAN = { rescueId: RESCUE_ID, sourceSize: SOURCE_SIZE, sectorSize: SECTOR_SIZE, chunks: CHUNKS };

/** The simple model: one byte and one status code per source byte; a seq is the first piece that came under it (A4). */
class Model {
  readonly bytes = new Uint8Array(SOURCE_SIZE);
  readonly codes = new Uint8Array(SOURCE_SIZE);
  readonly merged = new Map<number, string>();

  /** @returns false for a piece refused: its seq is another piece's. */
  apply(piece: OpenedPiece): boolean {
    const held = this.merged.get(piece.seq);
    if (held !== undefined) return held === piece.headerHash;
    this.merged.set(piece.seq, piece.headerHash);
    let at = 0;
    for (const e of piece.extents) {
      for (let i = 0; i < e.size; ++i) {
        if (this.codes[e.pos + i] !== PLUS) {
          this.bytes[e.pos + i] = piece.data[at + i]!;
          this.codes[e.pos + i] = PLUS;
        }
      }
      at += e.size;
    }
    for (const d of piece.delta) {
      const code = processedState(d.status);
      for (let i = d.pos; i < d.pos + d.size; ++i) this.codes[i] = Math.max(this.codes[i]!, code);
    }
    return true;
  }
}

/** Arbitrary valid pieces: small seqs (so duplicates and conflicts happen), any chunk, any statuses, data from a seed. */
function arbitraryPiece(): fc.Arbitrary<OpenedPiece> {
  const step = fc.tuple(fc.integer({ min: 0, max: 700 }), fc.integer({ min: 1, max: 900 }), fc.constantFrom<BlockStatus>('?', '*', '/', '-', '+', '+'));
  return fc.record({
    seq: fc.integer({ min: 1, max: 12 }),
    chunk: fc.integer({ min: 0, max: CHUNKS.length - 1 }),
    layout: fc.array(step, { maxLength: 8 }),
    seed: fc.integer({ min: 0, max: 1000 }),
  }).map(({ seq, chunk, layout, seed }) => {
    const c = CHUNKS[chunk]!;
    const steps: Step[] = [];
    let pos = c.pos;
    for (const [gap, size, status] of layout) {
      pos += gap;
      const end = Math.min(pos + size, c.pos + c.size);
      if (end <= pos) break;
      steps.push({ pos, size: end - pos, status });
      pos = end;
    }
    return makePiece(seq, chunk, steps, seed);
  });
}

/** The number of pieces of each batch `image.stage` is given from now on. */
function batchSizes(image: Image): number[] {
  const sizes: number[] = [];
  const stage = image.stage.bind(image);
  image.stage = (batch, written) => {
    sizes.push(batch.pieces.length);
    return stage(batch, written);
  };
  return sizes;
}

/** Turns of the event loop until `done()`, at most `turns` of them; whether it came. */
async function until(done: () => boolean, turns = 5000): Promise<boolean> {
  for (let i = 0; i < turns && !done(); ++i) {
    await new Promise<void>((r) => {
      setImmediate(r);
    });
  }
  return done();
}

/** An `onStep` that holds the first fsync until `release`, or fails it with `fail`; `steps` records every step. */
function heldSync(): { onStep: (s: ImageStep) => Promise<void> | undefined; steps: ImageStep[]; release: () => void; fail: (err: Error) => void } {
  const steps: ImageStep[] = [];
  let release: () => void = () => undefined;
  let fail: (err: Error) => void = () => undefined;
  const gate = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  let first = true;
  return {
    steps, release, fail,
    onStep: (s) => {
      steps.push(s);
      if (s !== 'sync' || !first) return undefined;
      first = false;
      return gate;
    },
  };
}

/** Split `pieces` into consecutive batches of the given sizes (cycled). */
function batches<T>(items: readonly T[], sizes: readonly number[]): T[][] {
  const out: T[][] = [];
  for (let i = 0, k = 0; i < items.length; ++k) {
    const n = sizes.length === 0 ? items.length : sizes[k % sizes.length]!;
    out.push(items.slice(i, i + n));
    i += n;
  }
  return out;
}

describe('merge', () => {
  const t = useTempImage();

  async function bound(options = {}): Promise<Image> {
    const image = await Image.open(t.path, options);
    await image.bind(bindRequest());
    return image;
  }

  describe('mergePieces', () => {
    it('matches the byte model, whatever the batches, refuses a seq held by another piece, and merging everything again changes nothing (A2, A3, A4)', async function () {
      this.timeout(300_000);
      let run = 0;
      await fc.assert(fc.asyncProperty(
        fc.array(fc.oneof(arbitraryPiece(), arbitraryPiece().map((p) => [p, p] as const)), { maxLength: 10 }).map((xs) => xs.flat()),
        fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 4 }),
        async (pieces, sizes) => {
          for (const p of pieces) validatePiece(p, PLAN);
          const imagePath = `${t.dir}/model-${run++}.img`;
          const image = await Image.open(imagePath);
          try {
            await image.bind(bindRequest());
            const model = new Model();
            for (const batch of batches(pieces, sizes)) {
              const { acknowledged, refused } = await mergePieces(image, batch);
              const accepted = batch.filter((p) => model.apply(p));
              const key = (p: { seq: number; headerHash: string }): string => `${p.seq} ${p.headerHash}`;
              expect(acknowledged.map(key)).to.deep.equal([...new Set(accepted.map(key))]);
              expect(refused.map((r) => r.piece)).to.deep.equal(batch.filter((p) => !accepted.includes(p)));
              for (const r of refused) expect(r.error.code).to.equal('ERR_PIECE_SEQ_CONFLICT');
            }
            expect(await readImage(imagePath)).to.deep.equal(model.bytes);
            expect(await readStatuses(`${imagePath}.map`)).to.deep.equal(model.codes);
            expect(image.mergedPieces()).to.deep.equal([...model.merged].sort((a, b) => a[0] - b[0]).map(([seq, headerHash]) => ({ seq, headerHash })));
            const mapBefore = await readStatuses(`${imagePath}.map`);
            for (const batch of batches(pieces, [3])) await mergePieces(image, batch);
            expect(await readImage(imagePath)).to.deep.equal(model.bytes);
            expect(await readStatuses(`${imagePath}.map`)).to.deep.equal(mapBefore);
          } finally {
            await image.close();
          }
        },
      ), { numRuns: 60 });
    });

    it('writes only the piece\'s + extents: bad, non-tried and non-trimmed ranges keep their bytes', async () => {
      await writeFile(t.path, Buffer.alloc(SOURCE_SIZE, 0xee));
      const image = await bound();
      try {
        const piece = makePiece(1, 1, [
          { pos: CHUNK_SIZE, size: 512, status: '+' },
          { pos: CHUNK_SIZE + 512, size: 512, status: '-' },
          { pos: CHUNK_SIZE + 1024, size: 1024, status: '*' },
          { pos: CHUNK_SIZE + 2048, size: 100, status: '+' },
          { pos: CHUNK_SIZE + 2148, size: 300, status: '/' },
        ]);
        await mergePieces(image, [piece]);
        const bytes = await readImage(t.path);
        const expected = new Uint8Array(SOURCE_SIZE).fill(0xee);
        expected.set(piece.data.subarray(0, 512), CHUNK_SIZE);
        expected.set(piece.data.subarray(512), CHUNK_SIZE + 2048);
        expect(bytes).to.deep.equal(expected);
        const codes = await readStatuses(`${t.path}.map`);
        expect([...new Set(codes.subarray(CHUNK_SIZE + 512, CHUNK_SIZE + 1024))]).to.deep.equal([processedState('-')]);
        expect([...new Set(codes.subarray(CHUNK_SIZE + 1024, CHUNK_SIZE + 2048))]).to.deep.equal([processedState('*')]);
        expect([...new Set(codes.subarray(CHUNK_SIZE + 2148, CHUNK_SIZE + 2448))]).to.deep.equal([processedState('/')]);
      } finally {
        await image.close();
      }
    });

    it('never overwrites rescued (+) bytes, even with other data for the same range', async () => {
      const image = await bound();
      try {
        const first = makePiece(1, 0, [{ pos: 1000, size: 1000, status: '+' }], 1);
        const second = makePiece(2, 0, [{ pos: 500, size: 2000, status: '+' }], 2);
        await mergePieces(image, [first]);
        await mergePieces(image, [second]);
        const bytes = await readImage(t.path);
        expect(bytes.subarray(1000, 2000)).to.deep.equal(first.data);
        expect(bytes.subarray(500, 1000)).to.deep.equal(second.data.subarray(0, 500));
        expect(bytes.subarray(2000, 2500)).to.deep.equal(second.data.subarray(1500));
      } finally {
        await image.close();
      }
    });

    it('moves statuses only forward: ? * / - +', async () => {
      const image = await bound();
      try {
        const at = (status: BlockStatus, seq: number): OpenedPiece => makePiece(seq, 0, [{ pos: 0, size: 512, status }]);
        await mergePieces(image, [at('-', 1)]);
        await mergePieces(image, [at('*', 2)]);
        await mergePieces(image, [at('?', 3)]);
        expect((await readStatuses(`${t.path}.map`))[0]).to.equal(processedState('-'));
        await mergePieces(image, [at('+', 4)]);
        await mergePieces(image, [at('-', 5)]);
        expect((await readStatuses(`${t.path}.map`))[0]).to.equal(PLUS);
      } finally {
        await image.close();
      }
    });

    it('takes the status line of the newest piece merged, whatever order the pieces come in: a run that ended sets + with bad areas left', async () => {
      const image = await bound();
      const statusLine = async (): Promise<string> => (await readFile(`${t.path}.map`, 'latin1')).split('\n').find((l) => /^0x[0-9A-F]+ +\S +\d+$/.test(l))!.replace(/ +/g, ' ');
      try {
        const line = (currentStatus: PieceMapState['currentStatus'], currentPos: number, currentPass = 1): PieceMapState => ({ currentPos, currentStatus, currentPass });
        const with_ = (p: OpenedPiece, l: PieceMapState | undefined): OpenedPiece => (l === undefined ? p : { ...p, mapState: l });
        // the last run's end came over the LAN first (seq 9: finished, a bad sector left)
        await mergePieces(image, [with_(makePiece(9, 1, [{ pos: CHUNK_SIZE, size: 512, status: '-' }]), line('+', 4096, 1))]);
        expect(await statusLine()).to.equal('0x00001000 + 1');
        // older pieces from a stick imported afterwards (seq 3 and 4, copying) leave it
        await mergePieces(image, [with_(makePiece(3, 0, [{ pos: 0, size: 512, status: '+' }]), line('?', 512)), with_(makePiece(4, 0, [{ pos: 512, size: 512, status: '+' }]), line('?', 1024))]);
        expect(await statusLine()).to.equal('0x00001000 + 1');
        // a newer piece without a status line leaves it too; a newer one with one sets it (a retry pass), in one batch the newest wins
        await mergePieces(image, [with_(makePiece(10, 0, [{ pos: 1024, size: 512, status: '/' }]), undefined)]);
        expect(await statusLine()).to.equal('0x00001000 + 1');
        await mergePieces(image, [with_(makePiece(12, 0, [{ pos: 2048, size: 512, status: '-' }]), line('+', 0, 2)), with_(makePiece(11, 0, [{ pos: 1536, size: 512, status: '-' }]), line('-', 1536, 2))]);
        expect(await statusLine()).to.equal('0x00000000 + 2');
      } finally {
        await image.close();
      }
    });

    it('acknowledges the same piece again (same seq, same header hash) without writing or saving anything (A2)', async () => {
      const steps: ImageStep[] = [];
      const image = await bound({ onStep: (s: ImageStep) => steps.push(s) });
      try {
        const piece = makePiece(7, 0, [{ pos: 0, size: 512, status: '+' }]);
        const ref = { seq: 7, headerHash: piece.headerHash };
        expect(await mergePieces(image, [piece, piece])).to.deep.equal({ acknowledged: [ref], refused: [] });
        steps.length = 0;
        expect(await mergePieces(image, [piece])).to.deep.equal({ acknowledged: [ref], refused: [] });
        expect(steps).to.deep.equal([]);
        expect(image.finishedRanges()).to.deep.equal([{ pos: 0, size: 512 }]);
      } finally {
        await image.close();
      }
    });

    it('refuses another piece under a merged seq, or under a seq earlier in its batch, changing nothing (A4: never "already merged")', async () => {
      const steps: ImageStep[] = [];
      const image = await bound({ onStep: (s: ImageStep) => steps.push(s) });
      try {
        const genuine = makePiece(7, 0, [{ pos: 0, size: 512, status: '+' }]);
        const forged = makePiece(7, 0, [{ pos: 512, size: 512, status: '+' }]);
        await mergePieces(image, [genuine]);
        steps.length = 0;
        const { acknowledged, refused } = await mergePieces(image, [forged]);
        expect(acknowledged).to.deep.equal([]);
        expect(refused).to.have.length(1);
        expect(refused[0]!.piece).to.equal(forged);
        expect(refused[0]!.error).to.include({ code: 'ERR_PIECE_SEQ_CONFLICT', seq: 7 });
        expect(refused[0]!.error.message).to.contain(forged.headerHash).and.contain(genuine.headerHash).and.contain(t.path);
        expect(steps).to.deep.equal([]);
        expect(image.mergedHash(7)).to.equal(genuine.headerHash);
        expect(image.finishedRanges()).to.deep.equal([{ pos: 0, size: 512 }]);
        const a = makePiece(8, 0, [{ pos: 1024, size: 512, status: '+' }]);
        const b = makePiece(8, 0, [{ pos: 2048, size: 512, status: '+' }]);
        const both = await mergePieces(image, [a, b, a]);
        expect(both.acknowledged).to.deep.equal([{ seq: 8, headerHash: a.headerHash }]);
        expect(both.refused.map((r) => [r.piece, r.error.code])).to.deep.equal([[b, 'ERR_PIECE_SEQ_CONFLICT']]);
        expect(image.finishedRanges()).to.deep.equal([{ pos: 0, size: 512 }, { pos: 1024, size: 512 }]);
      } finally {
        await image.close();
      }
    });

    it('refuses pieces of another rescue with ERR_IMAGE_WRONG_RESCUE', async () => {
      const image = await bound();
      try {
        const piece = { ...makePiece(1, 0, [{ pos: 0, size: 512, status: '+' }]), rescueId: '7d2e9f10-3a4b-4c5d-9e6f-abcdefabcdef' };
        await mergePieces(image, [piece]).then(() => expect.fail('merged'), (err: { code: string }) => expect(err.code).to.equal('ERR_IMAGE_WRONG_RESCUE'));
      } finally {
        await image.close();
      }
    });
  });

  describe('order of truth (A1)', () => {
    const pieces = (): OpenedPiece[] => [
      makePiece(1, 0, [{ pos: 0, size: 1024, status: '+' }, { pos: 1024, size: 512, status: '-' }]),
      makePiece(2, 1, [{ pos: CHUNK_SIZE, size: 2048, status: '+' }]),
      makePiece(3, 3, [{ pos: 3 * CHUNK_SIZE, size: 1000, status: '+' }]),
    ];

    it('writes every extent, fsyncs the image once, then saves the mapfile, then records the pieces', async () => {
      const steps: string[] = [];
      const image = await bound({ onStep: (s: ImageStep, file: string) => steps.push(`${s} ${file.slice(t.path.length) || 'IMAGE'}`) });
      try {
        steps.length = 0;
        await mergePieces(image, pieces());
        expect(steps).to.deep.equal(['write IMAGE', 'write IMAGE', 'write IMAGE', 'sync IMAGE', 'save-map .map', 'save-pieces .ddferry.pieces']);
      } finally {
        await image.close();
      }
    });

    for (let crashAt = 0; crashAt < 6; ++crashAt) {
      it(`leaves a mapfile that claims only durable data when the process dies before step ${crashAt + 1}, and a re-merge completes`, async () => {
        let n = 0;
        let armed = false;
        const image = await bound({
          onStep: () => {
            if (armed && n++ === crashAt) throw new Error('simulated crash');
          },
        });
        armed = true;
        await mergePieces(image, pieces()).then(() => expect.fail('no crash'), (err: Error) => expect(err.message).to.contain('simulated crash'));
        await image.close();

        const reopened = await Image.open(t.path);
        try {
          const codes = await readStatuses(`${t.path}.map`);
          const bytes = await readImage(t.path);
          const model = new Model();
          for (const p of pieces()) model.apply(p);
          for (let i = 0; i < SOURCE_SIZE; ++i) {
            if (codes[i] === PLUS && bytes[i] !== model.bytes[i]) expect.fail(`byte ${i} is + in the mapfile but not written`);
          }
          for (const { seq } of reopened.mergedPieces()) {
            const p = pieces().find((x) => x.seq === seq)!;
            for (const e of p.extents) expect([...new Set(codes.subarray(e.pos, e.pos + e.size))]).to.deep.equal([PLUS]);
          }
          expect((await mergePieces(reopened, pieces())).acknowledged.map((r) => r.seq)).to.deep.equal([1, 2, 3]);
          expect(await readImage(t.path)).to.deep.equal(model.bytes);
          expect(await readStatuses(`${t.path}.map`)).to.deep.equal(model.codes);
        } finally {
          await reopened.close();
        }
      });
    }

    it('refuses further commits after a failed fsync (ERR_IMAGE_SYNC)', async () => {
      let failSync = false;
      const image = await bound({
        onStep: (s: ImageStep) => {
          if (s === 'sync' && failSync) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        },
      });
      try {
        failSync = true;
        const [a, b] = pieces();
        await mergePieces(image, [a!]).then(() => expect.fail('merged'), (err: { code: string }) => expect(err.code).to.equal('ERR_IMAGE_SYNC'));
        failSync = false;
        await mergePieces(image, [b!]).then(() => expect.fail('merged'), (err: { code: string }) => expect(err.code).to.equal('ERR_IMAGE_SYNC'));
        expect(image.finishedRanges()).to.deep.equal([]);
      } finally {
        await image.close();
      }
    });
  });

  describe('MergeQueue', () => {
    it('rejects a piece whose seq is another piece\'s with ERR_PIECE_SEQ_CONFLICT, and merges the rest of its batch', async () => {
      const image = await bound();
      try {
        const queue = new MergeQueue(image, { maxBatchPieces: 8 });
        await queue.enqueue(makePiece(1, 0, [{ pos: 0, size: 512, status: '+' }], 1));
        const { release, held } = hold(image);
        const conflicting = queue.enqueue(makePiece(1, 0, [{ pos: 512, size: 512, status: '+' }], 2));
        const fine = queue.enqueue(makePiece(2, 0, [{ pos: 1024, size: 512, status: '+' }]));
        release();
        await held;
        const results = await Promise.allSettled([conflicting, fine]);
        expect(results[0]).to.have.property('status', 'rejected');
        expect((results[0] as PromiseRejectedResult).reason).to.include({ code: 'ERR_PIECE_SEQ_CONFLICT', seq: 1 });
        expect(results[1]).to.have.property('status', 'fulfilled');
        expect(image.finishedRanges()).to.deep.equal([{ pos: 0, size: 512 }, { pos: 1024, size: 512 }]);
      } finally {
        await image.close();
      }
    });

    it('tells a piece written once its batch is written, before the fsync; at once when merged before; never when its write fails', async () => {
      const events: string[] = [];
      let failWrite = false;
      const image = await bound({
        onStep: (s: ImageStep) => {
          if (s === 'write' && failWrite) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
          if (s === 'sync') events.push('sync');
        },
      });
      try {
        const queue = new MergeQueue(image, { maxBatchPieces: 1 });
        const [a, b, c] = [1, 2, 3].map((s) => makePiece(s, 0, [{ pos: s * 512, size: 512, status: '+' }]));
        const durable = (n: number) => (): void => void events.push(`durable ${n}`);
        await Promise.all([
          queue.enqueue(a!, () => events.push('written 1')).then(durable(1)),
          queue.enqueue(b!, () => events.push('written 2')).then(durable(2)),
        ]);
        // each batch: written, then the fsync of its round, then durable (b's round is the second:
        // a's started when a was written; b may be written and a told durable in either order)
        const syncs = events.flatMap((e, i) => (e === 'sync' ? [i] : []));
        expect(syncs).to.have.length(2);
        expect(events.indexOf('written 1')).to.be.below(syncs[0]!).and.below(events.indexOf('durable 1'));
        expect(syncs[0]).to.be.below(events.indexOf('durable 1'));
        expect(events.indexOf('written 2')).to.be.below(syncs[1]!);
        expect(syncs[1]).to.be.below(events.indexOf('durable 2'));
        events.length = 0;
        await queue.enqueue(a!, () => events.push('written again')).then(durable(1));
        expect(events).to.deep.equal(['written again', 'durable 1']);
        events.length = 0;
        failWrite = true;
        await queue.enqueue(c!, () => events.push('written 3')).then(() => expect.fail('merged'), (err: { code: string }) => events.push(err.code));
        expect(events).to.deep.equal(['EIO']); // the hook's error, as if the write had failed there
      } finally {
        await image.close();
      }
    });

    it('writes batches of at most maxBatchPieces; one fsync makes every batch written meanwhile durable', async () => {
      let syncs = 0;
      const image = await bound({ onStep: (s: ImageStep) => (s === 'sync' ? ++syncs : 0) });
      const sizes = batchSizes(image);
      try {
        const queue = new MergeQueue(image, { maxBatchPieces: 2 });
        const all = [1, 2, 3, 4, 5].map((s) => makePiece(s, 0, [{ pos: s * 512, size: 512, status: '+' }]));
        await Promise.all(all.map((p) => queue.enqueue(p)));
        expect(sizes.every((n) => n <= 2) && sizes.reduce((a, b) => a + b, 0) === 5, `batches of ${sizes.join(', ')}`).to.equal(true);
        expect(syncs).to.be.within(1, sizes.length);
        expect(queue.pendingBytes).to.equal(0);
        expect(image.mergedPieces().map((r) => r.seq)).to.deep.equal([1, 2, 3, 4, 5]);
      } finally {
        await image.close();
      }
    });

    it('keeps a batch under maxBatchBytes but always takes one piece', async () => {
      const image = await bound();
      const sizes = batchSizes(image);
      try {
        const queue = new MergeQueue(image, { maxBatchBytes: 1000 });
        const all = [1, 2, 3].map((s) => makePiece(s, 0, [{ pos: s * 1024, size: 1024, status: '+' }]));
        await Promise.all(all.map((p) => queue.enqueue(p)));
        expect(sizes).to.deep.equal([1, 1, 1]);
        expect(image.mergedPieces().map((r) => r.seq)).to.deep.equal([1, 2, 3]);
      } finally {
        await image.close();
      }
    });

    it('rejects the pieces of a failed batch and goes on with the next', async () => {
      let fail = false;
      const image = await bound({
        onStep: (s: ImageStep) => {
          if (s === 'save-map' && fail) {
            fail = false;
            throw Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
          }
        },
      });
      try {
        fail = true;
        const queue = new MergeQueue(image, { maxBatchPieces: 1 });
        const a = queue.enqueue(makePiece(1, 0, [{ pos: 0, size: 512, status: '+', data: bytesOf(512, 1) }]));
        const b = queue.enqueue(makePiece(2, 0, [{ pos: 512, size: 512, status: '+' }]));
        const results = await Promise.allSettled([a, b]);
        expect(results.map((r) => r.status)).to.deep.equal(['rejected', 'fulfilled']);
        expect(image.mergedPieces().map((r) => r.seq)).to.deep.equal([2]);
        await queue.enqueue(makePiece(1, 0, [{ pos: 0, size: 512, status: '+', data: bytesOf(512, 1) }]));
        expect(image.mergedPieces().map((r) => r.seq)).to.deep.equal([1, 2]);
        expect((await readImage(t.path)).subarray(0, 512)).to.deep.equal(bytesOf(512, 1));
      } finally {
        await image.close();
      }
    });

    /**
     * A queue of one-piece batches on an image whose first fsync is held: `first` is
     * enqueued and written, its round waits in the fsync while `fn` runs (`held` releases
     * or fails it); the image is closed after.
     */
    async function whileRoundHeld(first: OpenedPiece, fn: (c: { image: Image; queue: MergeQueue; held: ReturnType<typeof heldSync>; first: Promise<void> }) => Promise<void>): Promise<void> {
      const held = heldSync();
      const image = await bound({ onStep: held.onStep });
      try {
        const queue = new MergeQueue(image, { maxBatchPieces: 1 });
        const merged = queue.enqueue(first);
        merged.catch(() => undefined);
        expect(await until(() => held.steps.includes('sync')), 'the first fsync').to.equal(true);
        await fn({ image, queue, held, first: merged });
      } finally {
        held.release();
        await image.close();
      }
    }

    it('writes the next batch while the fsync of the one before is held, and claims neither before its own fsync', async () => {
      await whileRoundHeld(makePiece(1, 0, [{ pos: 0, size: 512, status: '+' }]), async ({ image, queue, held, first: a }) => {
        const events: string[] = [];
        const b = queue.enqueue(makePiece(2, 1, [{ pos: CHUNK_SIZE, size: 1024, status: '+' }]), () => events.push('written 2'));
        const wrote = await until(() => events.includes('written 2'));
        // nothing is claimed while the first fsync is held: not in memory, not in IMAGE.map
        expect(image.finishedRanges()).to.deep.equal([]);
        expect([...new Set(await readStatuses(`${t.path}.map`))]).to.not.include(PLUS);
        expect(image.stagedHash(1)).to.equal(makePiece(1, 0, [{ pos: 0, size: 512, status: '+' }]).headerHash);
        held.release();
        expect(wrote, 'the second batch written while the first fsync is held').to.equal(true);
        await Promise.all([a, b]);
        expect(image.finishedRanges()).to.deep.equal([{ pos: 0, size: 512 }, { pos: CHUNK_SIZE, size: 1024 }]);
        expect(held.steps.filter((s) => s === 'sync')).to.have.length(2);
        expect(image.stagedHash(1)).to.equal(undefined);
        expect((await readImage(t.path)).subarray(CHUNK_SIZE, CHUNK_SIZE + 1024)).to.deep.equal(makePiece(2, 1, [{ pos: CHUNK_SIZE, size: 1024, status: '+' }]).data);
      });
    });

    it('leaves the bytes of a batch not durable yet to it (first wins), acknowledges its piece again, and refuses another piece under its seq (A4)', async () => {
      const first = makePiece(1, 0, [{ pos: 0, size: 1024, status: '+' }], 11);
      await whileRoundHeld(first, async ({ image, queue, held, first: a }) => {
        // same bytes from another piece (other data), the same piece again, another piece under seq 1
        const over = queue.enqueue(makePiece(2, 0, [{ pos: 512, size: 1024, status: '+' }], 22));
        const again = queue.enqueue(first);
        const conflict = queue.enqueue(makePiece(1, 0, [{ pos: 2048, size: 512, status: '+' }], 33));
        const settled = Promise.allSettled([a, over, again, conflict]);
        expect(await until(() => queue.pendingCount <= 3 && image.stagedHash(2) !== undefined)).to.equal(true);
        held.release();
        const results = await settled;
        expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'fulfilled', 'fulfilled', 'rejected']);
        expect((results[3] as PromiseRejectedResult).reason).to.include({ code: 'ERR_PIECE_SEQ_CONFLICT', seq: 1 });
        const bytes = await readImage(t.path);
        expect(bytes.subarray(0, 1024)).to.deep.equal(first.data);
        expect(bytes.subarray(1024, 1536)).to.deep.equal(makePiece(2, 0, [{ pos: 512, size: 1024, status: '+' }], 22).data.subarray(512));
        expect(image.finishedRanges()).to.deep.equal([{ pos: 0, size: 1536 }]);
        expect(image.mergedPieces()).to.deep.equal([{ seq: 1, headerHash: first.headerHash }, { seq: 2, headerHash: makePiece(2, 0, [{ pos: 512, size: 1024, status: '+' }], 22).headerHash }]);
        // 32 bytes of head, 32 per piece recorded: seq 1 once
        expect((await readFile(`${t.path}.ddferry.pieces`)).length, 'two pieces recorded').to.equal(32 + 2 * 32);
      });
    });

    it('fails the batches written while an fsync that fails was held: the kernel may have dropped their pages too (ERR_IMAGE_SYNC)', async () => {
      await whileRoundHeld(makePiece(1, 0, [{ pos: 0, size: 512, status: '+' }]), async ({ image, queue, held, first: a }) => {
        let written = false;
        const b = queue.enqueue(makePiece(2, 1, [{ pos: CHUNK_SIZE, size: 512, status: '+' }]), () => {
          written = true;
        });
        expect(await until(() => written)).to.equal(true);
        held.fail(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
        const results = await Promise.allSettled([a, b]);
        expect(results.map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : r.status))).to.deep.equal(['ERR_IMAGE_SYNC', 'ERR_IMAGE_SYNC']);
        expect(image.finishedRanges()).to.deep.equal([]);
        expect(image.mergedPieces()).to.deep.equal([]);
        expect([...new Set(await readStatuses(`${t.path}.map`))]).to.not.include(PLUS);
      });
    });
  });
});
