import { expect } from 'chai';
import fc from 'fast-check';

import { Domain } from '../src/domain.js';
import { parseMapfile } from '../src/parse.js';
import { SblockVector } from '../src/sblock-vector.js';
import { StatusMap } from '../src/status-map.js';
import type { BlockStatus } from '../src/status.js';

const STATUSES = '?*/-+';
const st = (c: number): BlockStatus => STATUSES[c] as BlockStatus;

function blocksOf(map: StatusMap): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  map.forEachBlock((p, e, c) => out.push([p, e, c]));
  return out;
}

describe('StatusMap', () => {
  describe('#changeChunkStatus', () => {
    it('keeps the map contiguous, merged inside the domain, and equal to a byte model, for random changes', () => {
      const N = 4096;
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: N - 1 }),
          fc.integer({ min: 1, max: N }),
          fc.array(fc.tuple(fc.integer({ min: 0, max: N - 1 }), fc.nat(), fc.integer({ min: 0, max: 4 })), { maxLength: 400 }),
          (dpos, dsize, changes) => {
            const domain = Domain.fromOptions(dpos, Math.min(dsize, N - dpos));
            const map = new StatusMap(parseMapfile(`0 ?\n0 ${N} ?\n`).blocks.splitAt(domain.borders()));
            const model = new Uint8Array(N);
            for (const [p, len, code] of changes) {
              const sb = map.sblockAt(p)!;
              if (!domain.includes(sb)) continue;
              const size = 1 + (len % (sb.pos + sb.size - p));
              map.changeChunkStatus({ pos: p, size }, st(code), domain);
              model.fill(code, p, p + size);
            }
            const out = blocksOf(map);
            expect(out[0]![0]).to.equal(0);
            expect(out[out.length - 1]![1]).to.equal(N);
            const sizes = [0, 0, 0, 0, 0];
            for (let i = 0; i < out.length; ++i) {
              const [p, e, c] = out[i]!;
              if (i > 0) expect(out[i - 1]![1], 'contiguous').to.equal(p);
              for (let x = p; x < e; ++x) expect(model[x]).to.equal(c);
              sizes[c]! += e - p;
              const inside = domain.includes({ pos: p, size: e - p });
              const prevInside = i > 0 && domain.includes({ pos: out[i - 1]![0], size: out[i - 1]![1] - out[i - 1]![0] });
              if (i > 0 && inside && prevInside) expect(out[i - 1]![2], 'merged inside the domain').to.not.equal(c);
            }
            for (let c = 0; c < 5; ++c) {
              expect(map.sizeOf(st(c))).to.equal(sizes[c]);
              expect(map.countOf(st(c))).to.equal(out.filter((b) => b[2] === c).length);
            }
          },
        ),
        { numRuns: 300, seed: 42 },
      );
    });

    it('returns the change of the number of bad areas as in the truth table', () => {
      const domain = Domain.fromOptions(0, -1);
      const mk = (s: string): StatusMap => new StatusMap(parseMapfile(`0 ?\n${[...s].map((c, i) => `${i * 512} 512 ${c}`).join('\n')}\n`).blocks);
      expect(mk('---').changeChunkStatus({ pos: 512, size: 512 }, '+', domain)).to.equal(1);
      expect(mk('-+-').changeChunkStatus({ pos: 512, size: 512 }, '-', domain)).to.equal(-1);
      expect(mk('+++').changeChunkStatus({ pos: 512, size: 512 }, '-', domain)).to.equal(1);
      expect(mk('+-+').changeChunkStatus({ pos: 512, size: 512 }, '+', domain)).to.equal(-1);
      expect(mk('--+').changeChunkStatus({ pos: 512, size: 512 }, '+', domain)).to.equal(0);
    });

    it('throws when the chunk spans two blocks', () => {
      const map = new StatusMap(parseMapfile('0 ?\n0 512 +\n512 512 -\n').blocks);
      expect(() => map.changeChunkStatus({ pos: 256, size: 512 }, '?', Domain.fromOptions(0, -1))).to.throw(/more than 1 block/);
    });
  });

  describe('#findChunk and #rfindChunk', () => {
    const map = new StatusMap(parseMapfile('0 ?\n0 0x10000 +\n0x10000 0x30000 ?\n0x40000 0x1000 -\n0x41000 0x1F000 ?\n0x60000 0x10000 +\n').blocks);
    const all = Domain.fromOptions(0, -1);
    it('finds the next non-tried chunk aligned to the cluster size', () => {
      const r = map.findChunk({ pos: 0x8000, size: 0x10000 }, '?', all, 0x10000);
      expect(r.block).to.deep.equal({ pos: 0x10000, size: 0x10000 });
      expect(r.found).to.equal(true);
    });
    it('skips blocks not after a finished block when asked', () => {
      const r = map.findChunk({ pos: 0x40000, size: 0x10000 }, '?', all, 0x10000, true);
      expect(r.block.size).to.equal(0);
      expect(r.found).to.equal(true);
    });
    it('finds backwards with the start aligned up', () => {
      const r = map.rfindChunk({ pos: 0x50000, size: 0x10000 }, '?', all, 0x10000);
      expect(r.block).to.deep.equal({ pos: 0x50000, size: 0x10000 });
      const r2 = map.rfindChunk({ pos: 0x38000, size: 0x10000 }, '?', all, 0x10000, true);
      expect(r2.block).to.deep.equal({ pos: 0x41000, size: 0x7000 });
      const r3 = map.rfindChunk({ pos: 0x30000, size: 0x10000 }, '?', all, 0x10000, true);
      expect(r3.block.size).to.equal(0);
      expect(r3.found).to.equal(true);
    });
  });

  describe('over many pages', () => {
    it('equals a byte model and finds blocks of a status as a scan does, while pages split, merge and empty', () => {
      const N = 6000;
      fc.assert(
        fc.property(
          fc.array(fc.integer({ min: 0, max: 4 }), { minLength: N, maxLength: N }),
          fc.array(fc.tuple(fc.integer({ min: 0, max: N - 1 }), fc.nat(), fc.integer({ min: 0, max: 4 })), { minLength: 1, maxLength: 3000 }),
          (initial, changes) => {
            const v = new SblockVector(N);
            initial.forEach((c, i) => v.push(i, i + 1, c));
            const map = new StatusMap(v);
            const model = Uint8Array.from(initial);
            const domain = Domain.fromOptions(0, -1);
            for (const [p, len, code] of changes) {
              const sb = map.sblockAt(p)!;
              const size = 1 + (len % (sb.pos + sb.size - p));
              map.changeChunkStatus({ pos: p, size }, st(code), domain);
              model.fill(code, p, p + size);
            }
            const out = blocksOf(map);
            expect(out.length).to.equal(map.length);
            for (let i = 0; i < out.length; ++i) {
              const [p, e, c] = out[i]!;
              if (i > 0) expect(out[i - 1]![1], 'contiguous').to.equal(p);
              for (let x = p; x < e; ++x) expect(model[x]).to.equal(c);
            }
            expect(out[out.length - 1]![1]).to.equal(N);
            const P = new Float64Array(77);
            const E = new Float64Array(77);
            const C = new Uint8Array(77);
            const read: number[][] = [];
            for (let i = 0, got; (got = map.readBlocks(i, 77, P, E, C)) > 0; i += got) for (let k = 0; k < got; ++k) read.push([P[k]!, E[k]!, C[k]!]);
            expect(read, 'readBlocks in batches').to.deep.equal(out);
            for (const [p] of changes.slice(0, 50)) {
              for (let c = 0; c < 5; ++c) {
                const next = out.find((b) => b[1] > p && b[2] === c);
                expect(map.nextBlockOfStatus(p, st(c))?.pos, `next ${st(c)} from ${p}`).to.equal(next?.[0]);
                const prev = out.findLast((b) => b[0] <= p && b[2] === c);
                expect(map.prevBlockOfStatus(p, st(c))?.pos, `prev ${st(c)} from ${p}`).to.equal(prev?.[0]);
              }
            }
            expect(v.length, 'the list the map was built from is unchanged').to.equal(N);
            for (let i = 0; i < N; i += 97) expect(v.code(i)).to.equal(initial[i]);
          },
        ),
        { numRuns: 40, seed: 43 },
      );
    });
  });

  describe('at a million blocks', () => {
    it('finds the next and previous block of a status and keeps sums after 100000 changes', () => {
      const lines = ['0 ?'];
      for (let i = 0; i < 1_000_000; ++i) lines.push(`${i * 4096} 4096 ${'+-'[i % 2]}`);
      const map = new StatusMap(parseMapfile(lines.join('\n')).blocks);
      expect(map.length).to.equal(1_000_000);
      const domain = Domain.fromOptions(0, -1);
      let seed = 7;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      for (let k = 0; k < 100_000; ++k) {
        const sb = map.sblockAt(rnd(4096 * 1_000_000))!;
        const a = sb.pos + rnd(sb.size);
        map.changeChunkStatus({ pos: a, size: 1 + rnd(sb.pos + sb.size - a) }, st(rnd(5)), domain);
      }
      let total = 0;
      for (const c of STATUSES) total += map.sizeOf(c as BlockStatus);
      expect(total).to.equal(4096 * 1_000_000);
      const far = map.nextBlockOfStatus(0, '/');
      if (far) expect(map.prevBlockOfStatus(far.pos, '/')!.pos).to.equal(far.pos);
    });
  });
});
