/**
 * The chunk planner against GNU ddrescue 1.27: each planned chunk map is given to the
 * real `ddrescue -m`, one run per chunk sharing one mapfile (the manual's recipe for
 * rescuing by parts), and the read log must show every read inside its chunk.
 */
import fs from 'node:fs';
import path from 'node:path';

import { expect } from 'chai';
import fc from 'fast-check';

import { run } from '../../src/cli.js';
import type { CliIo } from '../../src/cli.js';
import { MapfileError } from '../../src/errors.js';
import { chunkMapName, formatChunkMap, planChunks } from '../../src/plan.js';
import type { Chunk } from '../../src/plan.js';
import { assertToolVersion, FC_PARAMS, makeScratch, NUM_RUNS, spawnTool } from './harness.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

interface WrittenBlock {
  readonly pos: number;
  readonly size: number;
  readonly status: string;
}

/** The block lines of a mapfile as ddrescue writes it (`0x%08llX  0x%08llX  %c`). */
function readBlockLines(text: string): WrittenBlock[] {
  const blocks: WrittenBlock[] = [];
  for (const line of text.split('\n')) {
    const m = /^0x([0-9A-F]+) {2}0x([0-9A-F]+) {2}([?*/+-])$/.exec(line);
    if (m) blocks.push({ pos: parseInt(m[1]!, 16), size: parseInt(m[2]!, 16), status: m[3]! });
  }
  return blocks;
}

interface Read {
  readonly pos: number;
  readonly size: number;
  readonly copied: number;
  readonly error: number;
}

/** The read lines of a `--log-reads` file (spec §4.1: `0x%08llX\t%lld\t%d\t%d`). */
function readReadsLog(text: string): Read[] {
  const reads: Read[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split('\t');
    expect(fields, `read-log line ${JSON.stringify(line)}`).to.have.length(4);
    const [pos, size, copied, error] = fields as [string, string, string, string];
    reads.push({ pos: parseInt(pos, 16), size: Number(size), copied: Number(copied), error: Number(error) });
  }
  return reads;
}

/** Deterministic pseudo-random bytes (xorshift32), so a failing case can be replayed. */
function fillBytes(buf: Uint8Array, seed: number): void {
  let x = seed | 1;
  for (let i = 0; i < buf.length; ++i) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
}

/** The invariants every plan must keep (checked in a loop, reported with chai on the first violation). */
function expectValidPlan(chunks: readonly Chunk[], sourceSize: number, sectorSize: number): void {
  expect(chunks.length, 'number of chunks').to.be.greaterThan(0);
  let end = 0;
  for (let i = 0; i < chunks.length; ++i) {
    const c = chunks[i]!;
    const last = i === chunks.length - 1;
    if (c.index !== i || c.pos !== end || c.size <= 0 || c.pos % sectorSize !== 0 || (!last && (c.pos + c.size) % sectorSize !== 0)) {
      expect({ index: c.index, pos: c.pos, aligned: (c.pos + c.size) % sectorSize === 0 || last, nonEmpty: c.size > 0 }, `chunk ${i} of ${chunks.length}`).to.deep.equal({
        index: i,
        pos: end,
        aligned: true,
        nonEmpty: true,
      });
    }
    end = c.pos + c.size;
  }
  expect(end, 'the chunks end at the source end').to.equal(sourceSize);
}

const sectorSizeArb = fc.constantFrom(512, 4096, 512, 4096, 1, 2, 1024, 2048, 8192);

/** A plan of at most 1000 chunks: sector size, chunk size, and a source size (often not a multiple). */
const chunkPlanArb = fc
  .record({
    sectorSize: sectorSizeArb,
    sectorsPerChunk: fc.oneof(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: 2 ** 28 })),
    count: fc.integer({ min: 1, max: 1000 }),
    tail: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 ** 40 })),
  })
  .map(({ sectorSize, sectorsPerChunk, count, tail }) => {
    const chunkSize = sectorSize * sectorsPerChunk;
    const sourceSize = (count - 1) * chunkSize + 1 + (tail % chunkSize);
    return { sectorSize, chunkSize, sourceSize };
  });

const mediumPlanArb = fc
  .record({
    sectorSize: sectorSizeArb,
    sourceSize: fc.integer({ min: 1, max: 2 ** 44 }),
    capacity: fc.oneof(fc.integer({ min: 1, max: 4 * MIB }), fc.integer({ min: 4 * MIB, max: 2 ** 42 })),
    maxFileSize: fc.oneof(fc.constant(4 * GIB - 1), fc.constant(16 * 1024 * GIB), fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 1, max: 2 ** 36 })),
  })
  .filter(({ sourceSize, capacity, maxFileSize }) => sourceSize / Math.min(capacity, maxFileSize) <= 1000);

/**
 * A small real source for ddrescue: 512 KiB to 8 MiB, often not a multiple of the
 * chunk or even of the sector; chunks of 64 KiB to 1 MiB, a multiple of the sector
 * (of 4 KiB when planned by the CLI, which plans with its default sector size).
 */
const smallRescueArb = fc
  .record({
    sectorSize: fc.constantFrom(512, 4096),
    sourceSize: fc.oneof(fc.integer({ min: MIB, max: 8 * MIB }), fc.integer({ min: 128, max: 2048 }).map((k) => k * 4096)),
    seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    viaCli: fc.boolean(),
  })
  .chain((c) => {
    const unit = c.viaCli ? 4096 : c.sectorSize;
    return fc.integer({ min: 0, max: (MIB - 64 * KIB) / unit }).map((k) => ({ ...c, chunkSize: 64 * KIB + k * unit }));
  })
  .filter(({ sourceSize, chunkSize }) => sourceSize / chunkSize <= 64);

function collectingIo(cwd: string): CliIo & { readonly out: () => string; readonly err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout(chunk) {
      out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('latin1');
    },
    stderr(text) {
      err += text;
    },
    readStdin: async () => new Uint8Array(0),
    stdinIsTTY: false,
    stdoutIsTTY: false,
    cwd,
    out: () => out,
    err: () => err,
  };
}

describe('planChunks (compared with GNU ddrescue 1.27)', function () {
  let scratch: ReturnType<typeof makeScratch>;

  before(function () {
    assertToolVersion('ddrescue');
    assertToolVersion('ddrescuelog');
    scratch = makeScratch();
  });

  after(function () {
    scratch?.remove();
  });

  /** A fresh, empty working folder. */
  function workFolder(name: string): string {
    const dir = path.join(scratch.root, name);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Run ddrescue on one chunk (with the shared common.map) and check its reads. */
  function rescueChunk(dir: string, mapName: string, chunk: Chunk, sectorSize: number, source = 'source.bin'): void {
    const result = spawnTool(
      'ddrescue',
      ['-q', '-b', String(sectorSize), '-m', mapName, '--log-reads=reads.log', source, 'out.img', 'common.map'],
      { cwd: dir, input: '' },
    );
    const where = `ddrescue -m ${mapName} (chunk ${chunk.index}: [${chunk.pos}, ${chunk.pos + chunk.size}))`;
    expect(result.stderr.toString(), `${where}: stderr`).to.equal('');
    expect(result.status, `${where}: exit status`).to.equal(0);
    const reads = readReadsLog(fs.readFileSync(path.join(dir, 'reads.log'), 'latin1'));
    let covered = 0;
    for (const r of reads) {
      expect(r.pos, `${where}: read at ${r.pos} starts inside the chunk`).to.be.at.least(chunk.pos);
      expect(r.pos + r.size, `${where}: read at ${r.pos} ends inside the chunk`).to.be.at.most(chunk.pos + chunk.size);
      expect([r.copied, r.error], `${where}: read at ${r.pos} succeeds`).to.deep.equal([r.size, 0]);
      covered += r.size;
    }
    expect(covered, `${where}: bytes read`).to.equal(chunk.size);
  }

  describe('#planChunks', function () {
    it('makes sector-aligned, ordered chunks that cover the source exactly when given a chunk size', function () {
      fc.assert(
        fc.property(chunkPlanArb, ({ sectorSize, chunkSize, sourceSize }) => {
          const chunks = planChunks({ sourceSize, sectorSize, chunkSize });
          expectValidPlan(chunks, sourceSize, sectorSize);
          const sizes = new Set(chunks.slice(0, -1).map((c) => c.size));
          expect([...sizes], 'sizes of all chunks but the last').to.deep.equal(chunks.length > 1 ? [chunkSize] : []);
          expect(chunks[chunks.length - 1]!.size, 'size of the last chunk').to.be.at.most(chunkSize);
        }),
        { ...FC_PARAMS, numRuns: NUM_RUNS * 3 },
      );
    });

    it('makes valid chunks that fit in one file on the medium when given a medium', function () {
      fc.assert(
        fc.property(mediumPlanArb, ({ sectorSize, sourceSize, capacity, maxFileSize }) => {
          let chunks: Chunk[];
          try {
            chunks = planChunks({ sourceSize, sectorSize, medium: { capacity, maxFileSize } });
          } catch (err) {
            expect(err).to.be.instanceOf(MapfileError);
            expect((err as MapfileError).code).to.equal('ERR_PLAN_MEDIUM_TOO_SMALL');
            return;
          }
          expectValidPlan(chunks, sourceSize, sectorSize);
          const largest = Math.max(...chunks.map((c) => c.size));
          expect(largest, 'largest chunk').to.be.at.most(Math.min(capacity, maxFileSize));
        }),
        { ...FC_PARAMS, numRuns: NUM_RUNS * 3 },
      );
    });
  });

  describe('#chunkMapName', function () {
    it('gives distinct names that sort in chunk order when given any chunk count', function () {
      fc.assert(
        fc.property(fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 9990, max: 10010 }), fc.integer({ min: 1, max: 100000 })), (count) => {
          const names = Array.from({ length: count }, (_, i) => chunkMapName(i, count));
          for (const name of names) expect(name).to.match(/^chunk\d{4,}\.map$/);
          expect(new Set(names).size).to.equal(count);
          expect([...names].sort()).to.deep.equal(names);
        }),
        { ...FC_PARAMS, numRuns: 25 },
      );
      expect(chunkMapName(7, 12)).to.equal('chunk0007.map');
    });
  });

  describe('#formatChunkMap', function () {
    it('gives a mapfile whose + blocks, as ddrescuelog reads it, are exactly the chunk', function () {
      const dir = workFolder('format');
      fc.assert(
        fc.property(chunkPlanArb, fc.nat(), ({ sectorSize, chunkSize, sourceSize }, pick) => {
          const chunks = planChunks({ sourceSize, sectorSize, chunkSize });
          const chunk = chunks[pick % chunks.length]!;
          fs.writeFileSync(path.join(dir, 'chunk.map'), formatChunkMap(chunk, sourceSize));
          // `-a +,+` changes nothing; ddrescuelog reads the map strictly and writes it back compacted.
          const result = spawnTool('ddrescuelog', ['-a', '+,+', 'chunk.map'], { cwd: dir, input: '' });
          expect(result.stderr.toString(), 'ddrescuelog stderr').to.equal('');
          expect(result.status, 'ddrescuelog exit status').to.equal(0);
          const blocks = readBlockLines(result.stdout.toString('latin1'));
          expect(blocks.filter((b) => b.status === '+')).to.deep.equal([{ pos: chunk.pos, size: chunk.size, status: '+' }]);
          expect(blocks[0]?.pos, 'extent start').to.equal(0);
          const last = blocks[blocks.length - 1]!;
          expect(last.pos + last.size, 'extent end').to.equal(sourceSize);
        }),
        { ...FC_PARAMS },
      );
    });
  });

  describe('ddrescue -m with each chunk map in turn', function () {
    it('reads only inside each chunk and rescues the whole source when given small sources', async function () {
      await fc.assert(
        fc.asyncProperty(smallRescueArb, async ({ sectorSize, chunkSize, sourceSize, seed, viaCli }) => {
          const dir = workFolder('rescue');
          const source = new Uint8Array(sourceSize);
          fillBytes(source, seed);
          fs.writeFileSync(path.join(dir, 'source.bin'), source);

          const chunks = planChunks({ sourceSize, sectorSize: viaCli ? 512 : sectorSize, chunkSize });
          expectValidPlan(chunks, sourceSize, viaCli ? 512 : sectorSize);
          const names = chunks.map((c) => chunkMapName(c.index, chunks.length));
          if (viaCli) {
            const io = collectingIo(dir);
            const status = await run(['plan', String(sourceSize), '--chunk-size', String(chunkSize), 'maps'], io);
            expect(status, `ddferry-map plan: ${io.err()}`).to.equal(0);
            const written = fs.readdirSync(path.join(dir, 'maps')).filter((n) => /^chunk.*\.map$/.test(n));
            expect(written.sort()).to.deep.equal(names);
          } else {
            fs.mkdirSync(path.join(dir, 'maps'));
            chunks.forEach((c, i) => fs.writeFileSync(path.join(dir, 'maps', names[i]!), formatChunkMap(c, sourceSize)));
          }

          chunks.forEach((c, i) => rescueChunk(dir, `maps/${names[i]!}`, c, sectorSize));

          const common = readBlockLines(fs.readFileSync(path.join(dir, 'common.map'), 'latin1'));
          expect(common, 'common.map after every chunk').to.deep.equal([{ pos: 0, size: sourceSize, status: '+' }]);
          expect(Buffer.compare(fs.readFileSync(path.join(dir, 'out.img')), Buffer.from(source)), 'out.img equals the source').to.equal(0);
        }),
        { ...FC_PARAMS, numRuns: 10 },
      );
    });

    it('reads only inside the chunks it is given when the source is a sparse file past 4 GiB', function () {
      const dir = workFolder('sparse');
      const sectorSize = 4096;
      const chunkSize = 375 * sectorSize; // 1.5 MB: chunk borders do not fall on 2^32
      const sourceSize = 5 * GIB + 12345;
      const chunks = planChunks({ sourceSize, sectorSize, chunkSize });
      expectValidPlan(chunks, sourceSize, sectorSize);
      const straddling = chunks.find((c) => c.pos < 2 ** 32 && c.pos + c.size > 2 ** 32)!;
      expect(straddling, 'a chunk straddles 2^32').to.not.equal(undefined);
      const picked = [chunks[0]!, straddling, chunks[chunks.length - 1]!];
      expect(picked[2]!.size, 'the last chunk is short').to.be.lessThan(chunkSize);

      const sourcePath = path.join(dir, 'source.bin');
      fs.writeFileSync(sourcePath, '');
      fs.truncateSync(sourcePath, sourceSize);
      const fd = fs.openSync(sourcePath, 'r+');
      try {
        for (const c of picked) {
          const data = new Uint8Array(c.size);
          fillBytes(data, c.index + 1);
          fs.writeSync(fd, data, 0, data.length, c.pos);
        }
      } finally {
        fs.closeSync(fd);
      }

      for (const c of picked) {
        const name = chunkMapName(c.index, chunks.length);
        fs.writeFileSync(path.join(dir, name), formatChunkMap(c, sourceSize));
        rescueChunk(dir, name, c, sectorSize);
      }

      const plus = readBlockLines(fs.readFileSync(path.join(dir, 'common.map'), 'latin1'));
      expect(plus.filter((b) => b.status === '+')).to.deep.equal(picked.map((c) => ({ pos: c.pos, size: c.size, status: '+' })));
      expect(plus[0]?.pos).to.equal(0);
      expect(plus[plus.length - 1]!.pos + plus[plus.length - 1]!.size, 'common.map ends at the source end').to.equal(sourceSize);

      const inFd = fs.openSync(sourcePath, 'r');
      const outFd = fs.openSync(path.join(dir, 'out.img'), 'r');
      try {
        for (const c of picked) {
          const a = Buffer.alloc(c.size);
          const b = Buffer.alloc(c.size);
          fs.readSync(inFd, a, 0, c.size, c.pos);
          fs.readSync(outFd, b, 0, c.size, c.pos);
          expect(Buffer.compare(a, b), `out.img equals the source in chunk ${c.index}`).to.equal(0);
        }
      } finally {
        fs.closeSync(inFd);
        fs.closeSync(outFd);
      }
    });
  });
});
