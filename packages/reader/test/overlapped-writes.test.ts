/**
 * With a spare buffer (`ddferry-reader ddrescue -d`), the engine writes a large read in
 * the thread pool while it makes the next read, and the map marks the read finished
 * before its write has ended. What keeps the map true: the write in flight ends before
 * the next write, before every mapfile save and before the last one, and a write that
 * fails gives its read back the status it had. These tests run the engine with an output
 * that records what reached it (its writes in flight end a turn of the event loop later),
 * and one with a bad spot that refuses writes (after taking the bytes before it, as
 * pwrite does). The same holds for small reads gathered into one write (an output that
 * allows it, as the output file without -S does): written before the next read elsewhere
 * and before every save; refused, each gets back the status it had.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BlockStatus, Domain, MapfileStatus, SblockVector, StatusMap, normalizeForRescue, parseMapfile, statusOfCode } from '@ddferry/mapfile';
import { expect } from 'chai';

import { doRescue } from '../src/engine/do-rescue.js';
import type { MapfileUpdater } from '../src/engine/mapfile-updater.js';
import { DEFAULT_RESCUE_OPTIONS, type RescueOptions } from '../src/engine/options.js';
import { SILENT_REPORTER } from '../src/engine/reporter.js';
import { Rescuebook } from '../src/engine/rescuebook.js';
import type { RescueSink } from '../src/engine/sink.js';
import { ReaderError } from '../src/errors.js';
import { allocAligned } from '../src/source/aligned-buffer.js';
import { FileSource } from '../src/source/file-source.js';
import { TestModeSource } from '../src/source/test-mode-source.js';

const SECTOR = 512;
const SIZE = 4 << 20;

/** An output in memory: what each write brought, and a bad spot that refuses writes reaching it. */
class RecordingSink implements RescueSink {
  readonly data = Buffer.alloc(SIZE);
  readonly written = new Uint8Array(SIZE / SECTOR);
  asyncWrites = 0;
  inFlight = 0;
  readonly badAt: number;
  constructor(badAt = -1) {
    this.badAt = badAt;
  }

  write(pos: number, data: Uint8Array): void {
    let n = data.length;
    if (this.badAt >= 0 && pos <= this.badAt && pos + n > this.badAt) n = this.badAt - pos;
    this.data.set(data.subarray(0, n), pos);
    for (let s = pos; s < pos + n; s += SECTOR) this.written[s / SECTOR] = 1;
    if (n < data.length) throw new ReaderError('ERR_OUTPUT_WRITE', 'test.out', 'test.out: Write error: EIO. Replace the output disk.');
  }

  async writeAsync(pos: number, data: Uint8Array): Promise<void> {
    ++this.asyncWrites;
    if (++this.inFlight > 1) throw new Error('two writes in flight');
    try {
      await new Promise((resolve) => setImmediate(resolve));
      this.write(pos, data);
    } finally {
      --this.inFlight;
    }
  }

  sync(): void {
    if (this.inFlight > 0) throw new Error('sync with a write in flight');
  }

  finish(): null {
    return null;
  }

  close(): null {
    return null;
  }
}

/** An output that lets the engine gather consecutive small reads into one write (as the output file does), counting writes. */
class GatheringSink extends RecordingSink {
  readonly gathersWrites = true;
  writes = 0;
  override write(pos: number, data: Uint8Array): void {
    ++this.writes;
    super.write(pos, data);
  }
}

/** A test map: all good but 20 scattered bad sectors and one bad area, so scraping reads sector by sector. */
function testMapText(seed: number): string {
  let x = seed >>> 0 || 1;
  const next = (): number => {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const bad = new Set<number>();
  while (bad.size < 20) bad.add(next() % (SIZE / SECTOR));
  for (let s = 4096; s < 4160; ++s) bad.add(s);
  const lines = ['0  +  1'];
  for (let s = 0; s < SIZE / SECTOR; ++s) lines.push(`0x${(s * SECTOR).toString(16)}  0x${SECTOR.toString(16)}  ${bad.has(s) ? '-' : '+'}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The mapfile updater's part, checked: at each save (every 25th read step, and the
 * forced last one), after its `beforeSave`, every sector the map to be saved calls finished must
 * already be in the output.
 */
class CheckingUpdater {
  readonly path = 'checked.map';
  lastError: Error | null = null;
  saves = 0;
  #calls = 0;
  readonly violations: string[] = [];
  readonly #sink: RecordingSink;
  constructor(sink: RecordingSink) {
    this.#sink = sink;
  }

  /** The engine asks before each `update` after a read. */
  due(): boolean {
    return ++this.#calls % 25 === 0;
  }

  async update(snapshot: () => { blocks: StatusMap }, _blockCount: number, beforeSave: () => void | Promise<void>): Promise<boolean> {
    await beforeSave();
    ++this.saves;
    snapshot().blocks.forEachBlock((pos, end, code) => {
      if (statusOfCode(code) !== BlockStatus.finished) return;
      for (let p = pos; p < end; p += SECTOR) if (this.#sink.written[p / SECTOR] !== 1 && this.violations.length < 5) this.violations.push(`save ${this.saves}: sector ${p / SECTOR}`);
    });
    return true;
  }
}

function blockList(map: StatusMap): string[] {
  const out: string[] = [];
  map.forEachBlock((pos, end, code) => out.push(`${pos} ${end} ${code}`));
  return out;
}

interface Run {
  readonly status: 0 | 1;
  readonly finalMessage: string;
  readonly map: StatusMap;
  readonly sink: RecordingSink;
  readonly checked: CheckingUpdater | undefined;
}

describe('writes overlapped with the next read (ddferry-reader ddrescue -d)', function () {
  this.timeout(120_000);
  let dir: string;
  let source: Buffer;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-write-behind-'));
    source = randomBytes(SIZE);
    writeFileSync(join(dir, 'disk.bin'), source);
    writeFileSync(join(dir, 'test.map'), testMapText(7));
    writeFileSync(join(dir, 'clean.map'), `0  +  1\n0  0x${SIZE.toString(16)}  +\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function run(overlap: boolean, sink: RecordingSink, options: Partial<RescueOptions> = {}, mapfile = false, testMap = 'test.map'): Promise<Run> {
    const o: RescueOptions = { ...DEFAULT_RESCUE_OPTIONS, ...options };
    const raw = new FileSource(join(dir, 'disk.bin'));
    const test = new TestModeSource(raw, Domain.fromOptions(0, -1, parseMapfile(readFileSync(join(dir, testMap))).blocks));
    const domain = Domain.fromOptions(0, -1);
    const norm = normalizeForRescue(new SblockVector(1), { insize: test.size, hardbs: o.hardbs, domain, completeOnly: false, file: 'mapfile' });
    const map = new StatusMap(norm.blocks);
    const checked = mapfile ? new CheckingUpdater(sink) : undefined;
    const rb = new Rescuebook({
      source: test, testSource: test, sink, reporter: SILENT_REPORTER, map, domain: norm.domain, insize: test.size, offset: 0,
      currentPos: 0, currentStatus: MapfileStatus.copying, currentPass: 1, mapfile: checked as unknown as MapfileUpdater | undefined, options: o,
      iobuf: allocAligned(o.cluster * o.hardbs + o.hardbs, 4096), clock: () => Math.floor(Date.now() / 1000), startTime: Math.floor(Date.now() / 1000),
      interrupted: () => false, sleep: () => Promise.resolve(),
      spareIobuf: overlap ? allocAligned(o.cluster * o.hardbs + o.hardbs, 4096) : undefined,
    });
    try {
      const outcome = await doRescue(rb);
      return { status: outcome.status, finalMessage: outcome.finalMessage, map, sink, checked };
    } finally {
      raw.close();
    }
  }

  /** Every sector the map calls finished reached the output, with the source's bytes. */
  function expectFinishedWritten(r: Run): number {
    let finished = 0;
    for (let s = 0; s < SIZE / SECTOR; ++s) {
      const sb = r.map.sblockAt(s * SECTOR);
      if (sb?.status !== BlockStatus.finished) continue;
      ++finished;
      expect(r.sink.written[s], `sector ${s} is finished in the map but was never written`).to.equal(1);
      expect(r.sink.data.subarray(s * SECTOR, (s + 1) * SECTOR).equals(source.subarray(s * SECTOR, (s + 1) * SECTOR)), `sector ${s}'s bytes`).to.equal(true);
    }
    return finished;
  }

  it('writes what each read brought, the large reads in the thread pool, with the same final map', async () => {
    const each = await run(false, new RecordingSink());
    const overlapped = await run(true, new RecordingSink());
    expect(each.status).to.equal(0);
    expect(overlapped.status).to.equal(0);
    expect(expectFinishedWritten(overlapped)).to.equal(expectFinishedWritten(each));
    expect(overlapped.sink.data.equals(each.sink.data)).to.equal(true);
    expect(blockList(overlapped.map)).to.deep.equal(blockList(each.map));
    expect(each.sink.asyncWrites).to.equal(0);
    expect(overlapped.sink.asyncWrites, 'the copying pass\'s reads of 64 KiB were written in the thread pool').to.be.above(20);
  });

  it('writes everything a mapfile save calls finished before that save', async () => {
    const r = await run(true, new RecordingSink(), {}, true);
    expect(r.status).to.equal(0);
    expect(r.checked!.saves).to.be.above(50);
    expect(r.checked!.violations, 'sectors a save called finished before they were written').to.deep.equal([]);
    expectFinishedWritten(r);
  });

  it('ends with an error when the last write of the run, in flight at its end, is refused', async () => {
    // a sound source: the copying pass's last read of 64 KiB is the run's last write
    const badAt = SIZE - SECTOR;
    const each = await run(false, new RecordingSink(badAt), {}, true, 'clean.map');
    const r = await run(true, new RecordingSink(badAt), {}, true, 'clean.map');
    expect(each.status).to.equal(1);
    expect(r.status).to.equal(1);
    expect(r.finalMessage).to.include('test.out: Write error');
    expect(r.checked!.violations).to.deep.equal([]);
    expect(expectFinishedWritten(r)).to.equal(expectFinishedWritten(each));
  });

  it('gathers consecutive small reads into one write, with the same output and final map', async () => {
    const each = await run(false, new GatheringSink(), {}, false);
    const reference = await run(false, new RecordingSink());
    expect(each.status).to.equal(0);
    expect(expectFinishedWritten(each)).to.equal(expectFinishedWritten(reference));
    expect(each.sink.data.equals(reference.sink.data)).to.equal(true);
    expect(blockList(each.map)).to.deep.equal(blockList(reference.map));
    const writes = (each.sink as GatheringSink).writes;
    // trimming and scraping read around 84 bad sectors one sector at a time; gathered, their writes are few
    const counting = new GatheringSink();
    Object.defineProperty(counting, 'gathersWrites', { value: false });
    await run(false, counting);
    expect(writes, `writes gathered (${writes}) against one per read (${counting.writes})`).to.be.below(counting.writes / 2);
  });

  it('writes every gathered read a mapfile save calls finished before that save', async () => {
    const r = await run(false, new GatheringSink(), {}, true);
    expect(r.status).to.equal(0);
    expect(r.checked!.saves).to.be.above(50);
    expect(r.checked!.violations, 'sectors a save called finished before they were written').to.deep.equal([]);
    expectFinishedWritten(r);
  });

  for (const badSector of [2100, 4161, 4200, 8191]) {
    for (const overlap of [false, true]) {
      it(`a gathered write refused at sector ${badSector}${overlap ? ' (with writes in flight too)' : ''} is fatal and leaves no sector finished that is not in the output, nor in any mapfile save`, async () => {
        const badAt = badSector * SECTOR;
        const each = await run(false, new RecordingSink(badAt), {}, true);
        const r = await run(overlap, new GatheringSink(badAt), {}, true);
        expect(r.status).to.equal(1);
        expect(r.finalMessage).to.include('test.out: Write error');
        expect(r.checked!.violations, 'sectors a save called finished before they were written').to.deep.equal([]);
        // the reads gathered with the refused one are not finished: at most those finished writing each read at once
        expect(expectFinishedWritten(r)).to.be.at.most(expectFinishedWritten(each));
      });
    }
  }

  for (const badSector of [40, 2100, 4200, 7000, 8191]) {
    for (const mapfile of [false, true]) {
      it(`a write refused at sector ${badSector} is fatal and leaves no sector finished that is not in the output${mapfile ? ', nor in any mapfile save' : ''}`, async () => {
        const badAt = badSector * SECTOR;
        const each = await run(false, new RecordingSink(badAt), {}, mapfile);
        const r = await run(true, new RecordingSink(badAt), {}, mapfile);
        expect(r.status).to.equal(1);
        expect(r.finalMessage).to.include('test.out: Write error');
        expectFinishedWritten(r);
        if (r.checked !== undefined) {
          expect(r.checked.saves, "the last save at least").to.be.at.least(1);
          expect(r.checked.violations, 'sectors a save called finished before they were written').to.deep.equal([]);
        }
        // the reads finished are those finished with writes made at once, up to the failing one
        expect(expectFinishedWritten(r)).to.equal(expectFinishedWritten(each));
      });
    }
  }
});
