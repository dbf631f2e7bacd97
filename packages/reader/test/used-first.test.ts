/**
 * Used space first, wired: `used-map SOURCE` prints the scan's domain through a reading
 * process; `plan --used-first` keeps what the scan read (the spool, common.map) and
 * records the order; a stick trip then reads the metadata, then the used space, then the
 * rest, and never again what the scan read. `--used-only` leaves the free space alone.
 * The disk: an MBR with a FAT16 volume and free space after it, built in memory; one
 * variant puts a bad sector in the FAT (a GNU ddrescue test map).
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type Block, parseMapfile } from '@ddferry/mapfile';

import { runPlan } from '../src/commands/plan.js';
import type { CommandIo } from '../src/commands/report.js';
import { runUsedMap } from '../src/commands/used-map.js';
import { findUsedSpace } from '../src/used/used-space.js';
import { writeFat } from './helpers/used-build-fat.js';
import { writeMbr } from './helpers/used-build-tables.js';
import { stickTripInProcess } from './helpers/in-process.js';
import { memoryReader } from './helpers/used-readers.js';

const MIB = 1 << 20;
const SIZE = 16 * MIB;

function io(): CommandIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, screen: () => undefined, stdout: (t) => out.push(t), stderr: (t) => err.push(t), screenIsTty: false };
}

/** `+` blocks of a mapfile's text. */
function plusOf(text: string): Block[] {
  const m = parseMapfile(Buffer.from(text, 'latin1'), { file: 'x' });
  const out: Block[] = [];
  m.blocks.forEachBlock((pos, end, code) => {
    if (code === 4) out.push({ pos, size: end - pos });
  });
  return out;
}

function overlaps(a: Block, list: readonly Block[]): boolean {
  return list.some((b) => a.pos < b.pos + b.size && b.pos < a.pos + a.size);
}

function inside(a: Block, list: readonly Block[]): boolean {
  return list.some((b) => b.pos <= a.pos && a.pos + a.size <= b.pos + b.size);
}

/** The reads of a `--log-reads` file, in order. */
function readsOf(path: string): Block[] {
  return readFileSync(path, 'latin1').split('\n').filter((l) => l.startsWith('0x')).map((l) => {
    const [pos, size] = l.split(/\s+/);
    return { pos: Number(pos), size: Number(size) };
  });
}

describe('used space first (used-map, plan --used-first, rescue)', function () {
  this.timeout(180_000);
  let dir: string;
  let disk: Buffer;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-used-first-'));
    disk = Buffer.alloc(SIZE);
    // FAT16 at 1 MiB, 8 MiB long, with three files; nothing after 9 MiB
    writeMbr(disk, [{ type: 0x06, lba: 2048, count: 16384 }]);
    writeFat(disk, MIB, { type: 'fat16', sectors: 16384, spc: 1 }, [[2, 50], [200, 300], [2000, 10]]);
    for (let p = 0; p < SIZE; p += 4096) disk.writeUInt32LE(p ^ 0x5a5a5a5a, p + 2048); // content in every block (the FAT's own bytes are left alone)
    writeFileSync(join(dir, 'disk.img'), disk);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('used-map SOURCE prints the scan\'s domain, read by a reading process, nothing kept', async () => {
    const want = await findUsedSpace(memoryReader(disk));
    const t = io();
    expect((await runUsedMap([join(dir, 'disk.img'), '-o', join(dir, 'used.map')], t, new AbortController().signal)).status, t.err.join('')).to.equal(0);
    expect(plusOf(readFileSync(join(dir, 'used.map'), 'latin1'))).to.deep.equal(want.used.map((b) => ({ pos: b.pos, size: b.size })));
    expect(t.err.join('')).to.contain('used space:').and.contain('fat16');
    const meta = io();
    expect((await runUsedMap([join(dir, 'disk.img'), '--metadata'], meta, new AbortController().signal)).status).to.equal(0);
    expect(plusOf(meta.out.join(''))).to.deep.equal(want.metadata.map((b) => ({ pos: b.pos, size: b.size })));
  });

  for (const only of [false, true]) {
    it(`plan ${only ? '--used-only' : '--used-first'} keeps what it read; the trip reads metadata, then used space${only ? ', and no free space' : ', then the rest'}, never twice`, async () => {
      const job = join(dir, 'job');
      const t = io();
      expect(await runPlan([join(dir, 'disk.img'), job, '--chunk-size', '4MiB', only ? '--used-only' : '--used-first'], t), t.err.join('')).to.equal(0);
      expect(JSON.parse(readFileSync(join(job, 'job.json'), 'utf8')).usedOrder).to.equal(only ? 'only' : 'first');
      const used = plusOf(readFileSync(join(job, 'used.map'), 'latin1'));
      const metadata = plusOf(readFileSync(join(job, 'metadata.map'), 'latin1'));
      expect(metadata.length).to.be.greaterThan(0);
      // what the scan read is in common.map and in the spool: never read again
      const keptAtPlan = plusOf(readFileSync(join(job, 'common.map'), 'latin1'));
      expect(keptAtPlan.length).to.be.greaterThan(0);
      expect(readdirSync(join(job, 'spool')).filter((n) => n.endsWith('.tar')).length).to.be.greaterThan(0);

      const stick = join(dir, 'stick');
      mkdirSync(stick);
      const lines: string[] = [];
      const code = await stickTripInProcess(job, stick, lines, { args: ['-q', `--log-reads=${join(dir, 'reads.log')}`] });
      expect(code, lines.join('')).to.equal(0);
      const reads = readsOf(join(dir, 'reads.log'));
      for (const r of reads) expect(overlaps(r, keptAtPlan), `read at ${r.pos} of what plan kept`).to.equal(false);
      // metadata first, then used space, then (used-first) the rest
      const firstOutside = (list: readonly Block[]): number => reads.findIndex((r) => !inside(r, list));
      const lastInside = (list: readonly Block[]): number => reads.map((r) => inside(r, list)).lastIndexOf(true);
      expect(lastInside(metadata), 'every metadata read comes before any other').to.be.below(Math.max(0, firstOutside(metadata)) + 1);
      const freeReads = reads.filter((r) => !inside(r, used));
      if (only) {
        expect(freeReads).to.deep.equal([]);
        // rescued: the used space, and what the scan itself read (its probes of the gaps); nothing else
        const rescued = plusOf(readFileSync(join(job, 'common.map'), 'latin1'));
        for (const u of used) expect(inside(u, rescued), `used ${u.pos}+${u.size} rescued`).to.equal(true);
        for (const r of rescued) {
          for (let p = r.pos; p < r.pos + r.size; p += 512) expect(inside({ pos: p, size: 512 }, used) || inside({ pos: p, size: 512 }, keptAtPlan), `free sector ${p} rescued`).to.equal(true);
        }
      } else {
        expect(freeReads.length).to.be.greaterThan(0);
        expect(lastInside(used)).to.be.below(firstOutside(used));
        expect(plusOf(readFileSync(join(job, 'common.map'), 'latin1'))).to.deep.equal([{ pos: 0, size: SIZE }]);
      }
    });
  }

  it('counts what a bad sector in the FAT describes as used (a larger domain, never a smaller one)', async () => {
    // the second sector of the first FAT copy is unreadable: the FAT16 entries 256..511 (clusters of files at 200..)
    const fatPos = MIB + 512; // one reserved sector
    writeFileSync(join(dir, 'test.map'), `0 + 1\n0 ${fatPos + 512} +\n${fatPos + 512} 512 -\n${fatPos + 1024} ${SIZE - fatPos - 1024} +\n`);
    const t = io();
    expect((await runUsedMap([join(dir, 'disk.img'), '--test-mode', join(dir, 'test.map'), '-o', join(dir, 'used.map')], t, new AbortController().signal)).status, t.err.join('')).to.equal(0);
    const clean = await findUsedSpace(memoryReader(disk));
    const got = plusOf(readFileSync(join(dir, 'used.map'), 'latin1'));
    for (const b of clean.used) expect(inside(b, got) || got.some((g) => g.pos <= b.pos && b.pos + b.size <= g.pos + g.size), `used ${b.pos}+${b.size} kept`).to.equal(true);
    const size = (l: readonly Block[]): number => l.reduce((n, b) => n + b.size, 0);
    expect(size(got)).to.be.at.least(size(clean.used));
    expect(t.err.join('')).to.match(/ERR_USED_MAP_/);
  });
});
