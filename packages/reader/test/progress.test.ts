/**
 * The progress of `ddferry-reader rescue`: snapshot → text (terminal block, line,
 * JSON), the rate limits driven by an injected clock, and a RescueProgress fed by the
 * run loop's status (which keeps moving while a read hangs).
 */
import { expect } from 'chai';

import type { StatusRefresh, StatusSnapshot } from '../src/engine/reporter.js';
import { DEFAULT_PROGRESS_INTERVAL, ProgressDisplay, type ProgressMode } from '@ddferry/protocol';

import { RESCUE_PROGRESS_VIEW, formatProgressBlock, formatProgressJson, formatProgressLine } from '../src/progress/progress-view.js';
import { RescueProgress } from '../src/progress/progress.js';
import { type ProgressSnapshot, type StickProgress, chunkIndexAt, progressSnapshot } from '../src/progress/snapshot.js';

const MiB = 1 << 20;
const CHUNKS = [0, 1, 2, 3].map((i) => ({ pos: i * 4 * MiB, size: 4 * MiB }));

/** The figures of spec 6.2's example (16 MiB, 5 bad areas), read at 12648 kB: chunk 4 of 4. */
const BAD = 0x1000 + 0x200 + 0x100000 + 0x200 + 0x400;
const STATUS: StatusSnapshot = {
  ipos: 0xc10000,
  opos: 0xc10000,
  nonTried: 0,
  nonTrimmed: 0,
  nonScraped: 0,
  badSize: BAD,
  finished: 0x1000000 - BAD,
  badAreas: 5,
  readErrors: 2083,
  slowReads: 0,
  showSlowReads: false,
  currentRate: 0x1000000 - BAD,
  averageRate: 0x1000000 - BAD,
  errorRate: 2365440,
  runTime: 0,
  remainingTime: 0,
  sinceLastSuccess: -1,
  percentRescued: ' 93.71%',
};

const STATUS_BLOCK = [
  '     ipos:   12648 kB, non-trimmed:        0 B,  current rate:  15722 kB/s',
  '     opos:   12648 kB, non-scraped:        0 B,  average rate:  15722 kB/s',
  'non-tried:        0 B,  bad-sector:    1054 kB,    error rate:   2365 kB/s',
  '  rescued:   15722 kB,   bad areas:        5,        run time:          0s',
  'pct rescued:   93.71%, read errors:     2083,  remaining time:          0s',
  '                              time since last successful read:         n/a',
];

const SPOOL = { count: 3, bytes: 5 * MiB, capacity: 256 * MiB };
const NOW = 1_800_000_000_000;
const LINK = { url: 'ws://127.0.0.1:4455', state: 'connected' as const, since: NOW - 60_000, lastError: null, merged: 12 };

function snap(over: Partial<Parameters<typeof progressSnapshot>[0]> = {}): ProgressSnapshot {
  return progressSnapshot({
    now: NOW, elapsedMs: 72_400, phase: 'rescuing', sourceSize: 16 * MiB, chunks: CHUNKS, status: STATUS, statusAt: NOW, lastDataAt: 0,
    message: 'Copying non-tried blocks... Pass 1 (forwards)', spool: SPOOL, link: LINK, ...over,
  });
}

describe('progress', function () {
  describe('#chunkIndexAt', function () {
    it('finds the chunk holding a position, the last past the end, -1 without chunks', function () {
      expect(chunkIndexAt(CHUNKS, 0)).to.equal(0);
      expect(chunkIndexAt(CHUNKS, 4 * MiB - 1)).to.equal(0);
      expect(chunkIndexAt(CHUNKS, 4 * MiB)).to.equal(1);
      expect(chunkIndexAt(CHUNKS, 16 * MiB - 1)).to.equal(3);
      expect(chunkIndexAt(CHUNKS, 99 * MiB)).to.equal(3);
      expect(chunkIndexAt([], 0)).to.equal(-1);
    });
  });

  describe('#progressSnapshot', function () {
    it('gives the figures in bytes and seconds, n/a as null, and the chunk of ipos', function () {
      const s = snap();
      expect(s.time).to.equal(72);
      expect(s.chunk).to.deep.equal({ index: 3, count: 4, pos: 12 * MiB, size: 4 * MiB, offset: 0xc10000 - 12 * MiB });
      expect(s.rescue!.pctRescued).to.equal(93.71);
      expect(s.rescue!.domainSize).to.equal(0x1000000);
      expect(s.rescue!.remainingTime).to.equal(0);
      expect(s.rescue!.sinceLastSuccess).to.equal(null);
      expect(s.rescue!.slowReads).to.equal(null);
      expect(progressSnapshot({ ...inputs(), status: { ...STATUS, showSlowReads: true, slowReads: 4, remainingTime: -1 } }).rescue)
        .to.include({ slowReads: 4, remainingTime: null });
      expect(s.spool).to.deep.equal({ pieces: 3, bytes: 5 * MiB, capacity: 256 * MiB });
      expect(s.link).to.deep.equal({ url: 'ws://127.0.0.1:4455', state: 'connected', since: 60, lastError: null, merged: 12 });
      expect(s.stick).to.equal(null);
      expect(s.reading).to.equal(null);
      expect(s.paused).to.equal(null);
    });

    it('moves the engine\'s times on while it is silent, and tells the read in progress and why reading waits', function () {
      const s = snap({
        statusAt: NOW - 32_000, lastDataAt: NOW - 33_000, status: { ...STATUS, runTime: 100, sinceLastSuccess: 1 },
        reading: { pos: 5 * MiB, size: 65536, since: NOW - 31_950 },
        pause: { reason: 'link-down', since: NOW - 5000, text: 'spool full, assembler unreachable since 14:02:07' },
      });
      expect(s.rescue).to.include({ runTime: 132, sinceLastSuccess: 33, currentRate: 0 });
      expect(s.reading).to.deep.equal({ pos: 5 * MiB, size: 65536, seconds: 31.9 });
      expect(s.paused).to.include({ reason: 'link-down', text: 'spool full, assembler unreachable since 14:02:07' });
      expect(s.paused!.since).to.match(/^\d\d:\d\d:\d\d$/);
      const lines = formatProgressBlock(s);
      expect(lines).to.include('  reading: at 5242 kB, 65 kB, for 31s (the disk has not answered yet)');
      expect(lines).to.include('   paused: spool full, assembler unreachable since 14:02:07');
      expect(formatProgressLine(s)).to.contain('reading at 5242 kB, 65 kB, for 31s').and.contain('paused: spool full');
      // a quick read is not shown
      expect(formatProgressBlock(snap({ reading: { pos: 0, size: 512, since: NOW - 300 } })).join('\n')).to.not.contain('reading:');
    });

    it('has no rescue figures and no chunk before the engine reported, and no chunk once reading ended', function () {
      const s = snap({ status: null, phase: 'starting' });
      expect(s.rescue).to.equal(null);
      expect(s.chunk).to.equal(null);
      for (const phase of ['draining', 'finished', 'interrupted', 'failed'] as const) expect(snap({ phase }).chunk).to.equal(null);
    });
  });

  describe('views', function () {
    it('draws ddrescue\'s status block and the ddferry lines on a terminal', function () {
      expect(formatProgressBlock(snap())).to.deep.equal([
        ...STATUS_BLOCK,
        '    chunk: 4/4 at 12 MB, 65 kB into its 4194 kB',
        '    spool: 3 pieces, 5242 kB of 268 MB',
        '     link: connected to ws://127.0.0.1:4455, 12 pieces merged this run',
        '    phase: rescuing: Copying non-tried blocks... Pass 1 (forwards)',
      ]);
    });

    it('shows binary prefixes with -B, the stick in stick mode, and no status block before the first read', function () {
      const s = snap({ status: null, phase: 'starting', link: undefined, stick: { trip: 2, freeBytes: 3 * 2 ** 30, bundles: 1 } });
      expect(formatProgressBlock(s, true)).to.deep.equal([
        '    spool: 3 pieces, 5120 KiB of 256 MiB',
        '    stick: trip 2, 1 bundle on the stick, 3072 MiB free',
        '    phase: starting',
      ]);
    });

    it('tells the link state while it is down, and the draining phase', function () {
      const s = snap({ phase: 'draining', link: { url: 'ws://h:1', state: 'waiting', since: NOW - 75_000, lastError: 'ERR_LINK: the connection closed', merged: 1 } });
      const lines = formatProgressBlock(s);
      expect(lines.slice(-2)).to.deep.equal([
        '     link: waiting to retry ws://h:1, down for 1m 15s (ERR_LINK: the connection closed), 1 piece merged this run',
        '    phase: draining: waiting for the assembler to hold the spool',
      ]);
    });

    it('prints one plain line', function () {
      expect(formatProgressLine(snap())).to.equal(
        'ddferry-reader: [1m:12s] rescuing (Copying non-tried blocks... Pass 1 (forwards)), rescued 93.71% (15 MB), bad areas 5, '
        + 'read errors 2083, 15 MB/s, remaining 0s, chunk 4/4, spool 3 pieces 5242 kB of 268 MB, link connected (12 merged)',
      );
      expect(formatProgressLine(snap({ status: null, phase: 'starting', elapsedMs: 0, link: { url: 'ws://h:1', state: 'connecting', since: NOW - 3000, lastError: null, merged: 0 } }))).to.equal(
        'ddferry-reader: [0s] starting, spool 3 pieces 5242 kB of 268 MB, link connecting for 3s (0 merged)',
      );
    });

    it('prints JSON with stable keys, numbers in bytes and seconds', function () {
      const o = JSON.parse(formatProgressJson(snap())) as Record<string, unknown>;
      expect(Object.keys(o)).to.deep.equal(['type', 'time', 'phase', 'sourceSize', 'rescue', 'chunk', 'spool', 'link', 'stick', 'carried', 'reading', 'paused', 'usedSpace']);
      expect(o).to.include({ type: 'progress', time: 72, phase: 'rescuing', sourceSize: 16 * MiB, stick: null });
      expect(Object.keys(o.rescue as object)).to.deep.equal([
        'ipos', 'opos', 'nonTried', 'nonTrimmed', 'nonScraped', 'badSector', 'rescued', 'domainSize', 'pctRescued', 'badAreas',
        'readErrors', 'slowReads', 'currentRate', 'averageRate', 'errorRate', 'runTime', 'remainingTime', 'sinceLastSuccess', 'message',
      ]);
      expect(o.rescue).to.include({ rescued: 0x1000000 - BAD, badSector: BAD, currentRate: 0x1000000 - BAD, sinceLastSuccess: null });
      expect(Object.keys(o.chunk as object)).to.deep.equal(['index', 'count', 'pos', 'size', 'offset']);
      expect(Object.keys(o.spool as object)).to.deep.equal(['pieces', 'bytes', 'capacity']);
      expect(Object.keys(o.link as object)).to.deep.equal(['url', 'state', 'since', 'lastError', 'merged']);
      const noTrip = snap({ link: undefined, stick: { trip: null, freeBytes: 2e9, bundles: 4 } });
      expect(formatProgressBlock(noTrip).at(-2)).to.equal('    stick: 4 bundles on the stick, 2000 MB free');
      expect(formatProgressLine(noTrip)).to.match(/, stick \(4 bundles, 2000 MB free\)$/);
      const stick = JSON.parse(formatProgressJson(snap({ link: undefined, stick: { trip: 1, freeBytes: 7, bundles: 0 } }))) as Record<string, unknown>;
      expect(stick).to.deep.include({ link: null, stick: { trip: 1, freeBytes: 7, bundles: 0, rescuedBytes: 0, carriedBytes: 0, tripsLeft: null }, carried: null });
    });

    it('says the free space is unknown when the stick does not tell it (no absurd figure)', function () {
      const s = snap({ link: undefined, stick: { trip: 3, freeBytes: null, bundles: 8 }, spool: { count: 8, bytes: 65e6, capacity: 0 } });
      expect(formatProgressBlock(s).at(-2)).to.equal('    stick: trip 3, 8 bundles on the stick, free space unknown');
      expect(formatProgressLine(s)).to.match(/spool 8 pieces 65 MB of an unknown size, stick trip 3 \(8 bundles, free space unknown\)$/);
      expect(JSON.parse(formatProgressJson(s))).to.deep.include({ stick: { trip: 3, freeBytes: null, bundles: 8, rescuedBytes: 0, carriedBytes: 0, tripsLeft: null } });
    });

    it('tells the bytes rescued and carried, on the wire or on the stick', function () {
      const lan = snap({ carried: { rescuedBytes: 4000e6, carriedBytes: 1800e6 } });
      expect(formatProgressBlock(lan)).to.include('  carried: 4000 MB rescued as 1800 MB (45%) on the wire');
      expect(formatProgressLine(lan)).to.match(/, link connected \(12 merged\), carried 4000 MB rescued as 1800 MB \(45%\)$/);
      expect(JSON.parse(formatProgressJson(lan))).to.deep.include({ carried: { rescuedBytes: 4000e6, carriedBytes: 1800e6 } });
      const none = snap({ carried: { rescuedBytes: 0, carriedBytes: 0 } });
      expect(formatProgressBlock(none).some((l) => l.includes('carried'))).to.equal(false);
    });

    it('estimates the stick trips left at this trip\'s compression', function () {
      // 1000 MB not rescued yet; the stick takes 100 MB more now and 300 MB a trip
      const left = { ...STATUS, nonTried: 800e6, nonTrimmed: 150e6, nonScraped: 50e6 };
      const stick = (ratio: number): StickProgress => ({
        trip: 2, freeBytes: 110e6, bundles: 5, rescuedBytes: 200e6, carriedBytes: 200e6 * ratio, ratio, usableBytes: 300e6, roomBytes: 100e6,
      });
      const raw = snap({ link: undefined, status: left, stick: stick(1), carried: { rescuedBytes: 200e6, carriedBytes: 200e6 } });
      expect(raw.stick?.tripsLeft, '(1000 - 100) / 300').to.equal(3);
      expect(formatProgressBlock(raw).at(-2)).to.equal('    stick: trip 2, 5 bundles on the stick, 110 MB free, about 3 more trips at this rate');
      expect(formatProgressBlock(raw)).to.include('  carried: 200 MB rescued as 200 MB (100%) on the stick');
      const half = snap({ link: undefined, status: left, stick: stick(0.5) });
      expect(half.stick?.tripsLeft, '(500 - 100) / 300').to.equal(2);
      expect(formatProgressLine(half)).to.match(/stick trip 2 \(5 bundles, 110 MB free, about 2 more trips at this rate\)$/);
      expect(snap({ link: undefined, status: left, stick: stick(0.1) }).stick?.tripsLeft).to.equal(0);
      expect(formatProgressBlock(snap({ link: undefined, status: left, stick: stick(0.1) })).at(-2)).to.match(/, the rest fits on this stick at this rate$/);
      expect(snap({ link: undefined, status: left, stick: { ...stick(0.5), usableBytes: null } }).stick?.tripsLeft).to.equal(null);
    });
  });

  describe('ProgressDisplay', function () {
    function display(mode: ProgressMode, interval?: number) {
      let now = 0;
      let n = 0;
      const out: string[] = [];
      const messages: string[] = [];
      const d = new ProgressDisplay({
        mode, interval, write: (t) => out.push(t), messages: (t) => messages.push(t), clock: () => now,
        snapshot: () => snap({ elapsedMs: ++n * 1000 }), view: RESCUE_PROGRESS_VIEW,
      });
      return { d, out, messages, at: (ms: number) => { now = ms; } };
    }

    it('redraws a terminal in place at most once a second, by the clock', function () {
      const t = display('tty');
      t.d.update();
      expect(t.out).to.have.length(1);
      const lines = formatProgressBlock(snap({ elapsedMs: 1000 }));
      expect(t.out[0]).to.equal(`${lines.map((l) => `${l}\x1B[K\n`).join('')}\x1B[J`);
      for (const ms of [1, 500, 999]) {
        t.at(ms);
        t.d.update();
      }
      expect(t.out, 'no redraw within a second').to.have.length(1);
      t.at(1000);
      t.d.update();
      expect(t.out).to.have.length(2);
      expect(t.out[1]!.startsWith(`\r\x1B[${lines.length}A`), 'cursor up over the block').to.equal(true);
      t.at(1999);
      t.d.update();
      expect(t.out).to.have.length(2);
      t.at(1999);
      t.d.finish();
      expect(t.out, 'the final state is drawn whatever the clock').to.have.length(3);
      t.at(5000);
      t.d.update();
      t.d.finish();
      expect(t.out, 'nothing after finish').to.have.length(3);
    });

    it('erases the block before a message on a terminal and draws it again below', function () {
      const t = display('tty');
      t.d.update();
      const n = formatProgressBlock(snap()).length;
      t.d.message('ddferry-reader: ERR_LINK: ws://h:1: refused (retrying in 0.5 s)');
      expect(t.out[1]).to.equal(`\r\x1B[${n}A\x1B[J`);
      expect(t.messages).to.deep.equal(['ddferry-reader: ERR_LINK: ws://h:1: refused (retrying in 0.5 s)\n']);
      t.at(1000);
      t.d.update();
      expect(t.out[2]!.startsWith('\r'), 'drawn below the message, not over it').to.equal(false);
    });

    it('prints a line per interval when not on a terminal', function () {
      const t = display('lines', 10);
      t.d.update();
      t.at(9999);
      t.d.update();
      expect(t.out).to.deep.equal([`${formatProgressLine(snap({ elapsedMs: 1000 }))}\n`]);
      t.at(10_000);
      t.d.update();
      t.at(15_000);
      t.d.update();
      t.at(20_000);
      t.d.update();
      expect(t.out).to.have.length(3);
      expect(t.out.every((l) => l.endsWith('\n') && !l.includes('\x1B'))).to.equal(true);
    });

    it('prints one JSON object a line with --json, at the interval; nothing when off', function () {
      const t = display('json', 2.5);
      for (const ms of [0, 1000, 2499, 2500, 4999, 5000]) {
        t.at(ms);
        t.d.update();
      }
      t.d.finish();
      expect(t.out).to.have.length(4);
      for (const line of t.out) expect((JSON.parse(line) as { type: string }).type).to.equal('progress');
      const off = display('off');
      off.d.update();
      off.d.finish();
      expect(off.out).to.deep.equal([]);
      expect(DEFAULT_PROGRESS_INTERVAL).to.equal(10);
    });

    it('draws at once when started, then leaves the rest to the clock', function () {
      const t = display('lines', 10);
      t.d.start();
      t.d.start();
      t.d.stop();
      expect(t.out).to.have.length(1);
    });

    it('refuses an interval that is not a positive number', function () {
      for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => display('lines', bad)).to.throw(RangeError);
      }
    });
  });

  describe('RescueProgress', function () {
    function refresh(over: Partial<StatusSnapshot> = {}, message: string | null = 'Trimming failed blocks... (forwards)'): StatusRefresh {
      return { snapshot: { ...STATUS, ...over }, message, scroll: false, forced: false };
    }

    it('draws from the loop\'s status by its own clock, and ends with the phase of the result', function () {
      const out: string[] = [];
      const messages: string[] = [];
      let now = NOW;
      const p = new RescueProgress({ mode: 'json', interval: 1, write: (t) => out.push(t), messages: (t) => messages.push(t), clock: () => now, sourceSize: 16 * MiB, chunks: CHUNKS });
      p.spool = SPOOL;
      p.link = () => LINK;
      expect(p.snapshot()).to.include({ phase: 'starting', rescue: null });
      const loop = { reading: null as null | { pos: number; size: number; since: number }, refresh: refresh({ ipos: 6 * MiB }), refreshAt: now, lastDataAt: now, pause: null };
      p.loop = loop;
      p.start();
      now += 2500;
      loop.reading = { pos: 6 * MiB, size: 65536, since: now - 2000 };
      const s = p.snapshot();
      expect(s).to.include({ phase: 'rescuing', time: 2 });
      expect(s.rescue).to.include({ ipos: 6 * MiB, message: 'Trimming failed blocks... (forwards)', runTime: 2 });
      expect(s.reading).to.deep.equal({ pos: 6 * MiB, size: 65536, seconds: 2 });
      expect(s.chunk!.index).to.equal(1);
      p.display.update();
      const result = p.end({ status: 130, signal: 'SIGINT' as NodeJS.Signals });
      expect(result.status).to.equal(130);
      p.finish('failed');
      expect(p.phase, 'only the first end counts').to.equal('interrupted');
      expect(JSON.parse(out.at(-1)!)).to.include({ phase: 'interrupted' });
      expect(out.length).to.be.at.least(2);
    });

    it('ends finished with status 0 and failed otherwise; messages still reach stderr when quiet', function () {
      const make = (mode: ProgressMode) => {
        const out: string[] = [];
        const p = new RescueProgress({ mode, write: (t) => out.push(t), messages: (t) => out.push(t), clock: () => 0, sourceSize: 1, chunks: CHUNKS });
        return { p, out };
      };
      const a = make('json');
      a.p.end({ status: 0 });
      expect(a.p.phase).to.equal('finished');
      const b = make('json');
      b.p.end({ status: 1 });
      expect(b.p.phase).to.equal('failed');
      const q = make('off');
      q.p.log('ddferry-reader: ERR_LINK: ws://h:1: refused');
      expect(q.out, 'errors still reach stderr with -q').to.deep.equal(['ddferry-reader: ERR_LINK: ws://h:1: refused\n']);
    });
  });
});

function inputs(): Parameters<typeof progressSnapshot>[0] {
  return { now: NOW, elapsedMs: 0, phase: 'rescuing', sourceSize: 16 * MiB, chunks: CHUNKS, status: STATUS, statusAt: NOW, lastDataAt: 0, message: null, spool: SPOOL };
}
