/**
 * ddrescue's status screen (spec 6.2) and the reporter that joins it to the logs:
 * the exact block, the drawing sequence, and which log gets what.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { formatPercentage } from '@ddferry/mapfile';

import { DdrescueReporter } from '../src/progress/ddrescue-reporter.js';
import { StatusScreen, formatStatusBlock } from '../src/progress/status-screen.js';
import type { StatusRefresh, StatusSnapshot } from '../src/engine/reporter.js';
import { EventLogger } from '../src/logs/event-logger.js';
import { RateLogger } from '../src/logs/rate-logger.js';
import { ReadLogger } from '../src/logs/read-logger.js';

const UP6 = '\r\x1B[A\x1B[A\x1B[A\x1B[A\x1B[A\x1B[A';

/** The figures of spec 6.2's example: G1 at its end (16 MiB, 5 bad areas). */
const BAD = 0x1000 + 0x200 + 0x100000 + 0x200 + 0x400;
const EXAMPLE: StatusSnapshot = {
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
  percentRescued: formatPercentage(0x1000000 - BAD, 0x1000000, 3, 2, false),
};

const EXAMPLE_BLOCK = [
  '     ipos:   12648 kB, non-trimmed:        0 B,  current rate:  15722 kB/s',
  '     opos:   12648 kB, non-scraped:        0 B,  average rate:  15722 kB/s',
  'non-tried:        0 B,  bad-sector:    1054 kB,    error rate:   2365 kB/s',
  '  rescued:   15722 kB,   bad areas:        5,        run time:          0s',
  'pct rescued:   93.71%, read errors:     2083,  remaining time:          0s',
  '                              time since last successful read:         n/a',
  '',
].join('\n');

const refresh = (over: Partial<StatusRefresh> & { snap?: Partial<StatusSnapshot> } = {}): StatusRefresh => ({
  snapshot: { ...EXAMPLE, ...over.snap },
  message: over.message === undefined ? null : over.message,
  scroll: over.scroll ?? false,
  forced: over.forced ?? false,
});

describe('status block', () => {
  it('reproduces the example of spec 6.2 exactly', () => {
    expect(EXAMPLE.percentRescued).to.equal(' 93.71%');
    expect(formatStatusBlock(EXAMPLE)).to.equal(EXAMPLE_BLOCK);
  });

  it('shows the slow-reads figure with -a', () => {
    const lines = formatStatusBlock({ ...EXAMPLE, showSlowReads: true, slowReads: 5, sinceLastSuccess: 126 }).split('\n');
    expect(lines[5]).to.equal(' slow reads:        5,        time since last successful read:      2m  6s');
  });

  it('uses binary prefixes with -B and small numbers as they are', () => {
    const lines = formatStatusBlock({
      ...EXAMPLE, ipos: 0x1000000, opos: 479232, nonTried: 999999, nonTrimmed: 1000000, currentRate: 99999, averageRate: 100000 * 1024, errorRate: 0,
    }, true).split('\n');
    expect(lines[0]).to.equal('     ipos:  16384 KiB, non-trimmed:    976 KiB,  current rate:   99999 B/s');
    expect(lines[1]).to.equal('     opos:   479232 B, non-scraped:        0 B,  average rate:    97 MiB/s');
    expect(lines[2]).to.equal('non-tried:   999999 B,  bad-sector:   1030 KiB,    error rate:       0 B/s');
  });

  it('formats the times and drops the seconds of remaining times from 180 s', () => {
    const lines = formatStatusBlock({ ...EXAMPLE, runTime: 4206, remainingTime: 4206, sinceLastSuccess: 179, readErrors: 1234567890 }).split('\n');
    expect(lines[3]).to.equal('  rescued:   15722 kB,   bad areas:        5,        run time:  1h 10m  6s');
    expect(lines[4]).to.equal('pct rescued:   93.71%, read errors:1234567890,  remaining time:      1h 10m');
    expect(lines[5]).to.equal('                              time since last successful read:      2m 59s');
    expect(formatStatusBlock({ ...EXAMPLE, remainingTime: 179 }).split('\n')[4]).to.match(/remaining time: {6}2m 59s$/);
    expect(formatStatusBlock({ ...EXAMPLE, remainingTime: -1 }).split('\n')[4]).to.match(/remaining time: {9}n\/a$/);
  });
});

describe('status screen', () => {
  it('draws as ddrescue does: six newlines, cursor-ups or a scroll, the block, the padded message', () => {
    const out: string[] = [];
    const screen = new StatusScreen({ binaryPrefixes: false, write: (s) => out.push(s) });
    screen.refresh(refresh({ message: 'Copying non-tried blocks... Pass 1 (forwards)', forced: true }));
    screen.refresh(refresh({ message: 'Copying non-tried blocks... Pass 1 (forwards)' }));
    screen.refresh(refresh({ message: 'Trimming failed blocks... (forwards)', scroll: true, forced: true }));
    screen.refresh(refresh({ message: null }));
    screen.refresh(refresh({ message: '\nFinished', forced: true }));
    expect(out).to.deep.equal([
      `\n\n\n\n\n\n${UP6}${EXAMPLE_BLOCK}\rCopying non-tried blocks... Pass 1 (forwards)`,
      `${UP6}${EXAMPLE_BLOCK}\rCopying non-tried blocks... Pass 1 (forwards)`,
      `\n${EXAMPLE_BLOCK}\rTrimming failed blocks... (forwards)${' '.repeat(9)}`,
      `${UP6}${EXAMPLE_BLOCK}`,
      `${UP6}${EXAMPLE_BLOCK}\r\nFinished${' '.repeat(36 - 9)}`,
    ]);
  });
});

describe('DdrescueReporter', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-reporter-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const openLogs = () => {
    const h = { commandLine: 'ddferry-reader ddrescue x', startTime: '2026-11-23 08:01:39' };
    return {
      readLog: ReadLogger.open(join(dir, 'reads'), h),
      rateLog: RateLogger.open(join(dir, 'rates'), h),
      eventLog: EventLogger.open(join(dir, 'events'), h),
    };
  };
  const body = (name: string) => readFileSync(join(dir, name), 'utf8').split('\n').slice(4, -2).join('\n');

  const run = (verbosity: number) => {
    const out: string[] = [];
    const reporter = new DdrescueReporter({ verbosity, binaryPrefixes: false, write: (s) => out.push(s), ...openLogs() });
    const p1 = 'Copying non-tried blocks... Pass 1 (forwards)';
    reporter.statusRefreshed(refresh({ message: p1, forced: true }));
    reporter.phaseStarted(0, '  0.00%', p1);
    reporter.readDone(0, 65536, 65536, 0);
    reporter.statusRefreshed(refresh({ message: p1, snap: { runTime: 1, ipos: 0x10000 } }));
    reporter.readDone(0x10000, 65536, 0, 65536);
    reporter.statusRefreshed(refresh({ message: p1, snap: { runTime: 1 } }));
    reporter.statusRefreshed(refresh({ message: p1, forced: true, snap: { runTime: 2 } }));
    reporter.echo('Too many read errors');
    reporter.endOfRun(2, ' 50.00%', 0x20000, 'copying');
    expect(reporter.close()).to.deep.equal([]);
    expect(reporter.close()).to.deep.equal([]);
    return out.join('');
  };

  it('feeds the logs at the moments ddrescue does', () => {
    run(0);
    expect(body('reads')).to.equal([
      '# 0s  Copying non-tried blocks... Pass 1 (forwards)',
      '0x00000000\t65536\t65536\t0',
      '# 1s',
      '0x00010000\t65536\t0\t65536',
      '# 1s',
    ].join('\n'));
    expect(body('rates')).to.equal([
      ' 0  0x00C10000  15722496  15722496        5   1054720',
      ' 1  0x00010000  15722496  15722496        5   1054720',
      ' 2  0x00C10000  15722496  15722496        5   1054720',
    ].join('\n'));
    expect(body('events')).to.equal([
      '            0s    0.00%  Copying non-tried blocks... Pass 1 (forwards)',
      '                      Too many read errors',
      '            2s   50.00%  End of run (0x00020000  copying)',
    ].join('\n'));
    const end = readFileSync(join(dir, 'events'), 'utf8').split('\n').at(-2);
    expect(readFileSync(join(dir, 'reads'), 'utf8').split('\n').at(-2)).to.equal(end);
    expect(readFileSync(join(dir, 'rates'), 'utf8').split('\n').at(-2)).to.equal(end);
  });

  it('draws the screen and echoes stop causes unless quiet', () => {
    const screen = run(0);
    expect(screen.startsWith(`\n\n\n\n\n\n${UP6}${EXAMPLE_BLOCK}\rCopying`)).to.equal(true);
    expect(screen.endsWith(`\rCopying non-tried blocks... Pass 1 (forwards)\n  Too many read errors`)).to.equal(true);
    expect(screen.split(UP6)).to.have.length(5);
  });

  it('writes nothing on screen with -q, but still writes the rates log', () => {
    expect(run(-1)).to.equal('');
    expect(body('rates').split('\n')).to.have.length(3);
  });

  it('works without any log', () => {
    const out: string[] = [];
    const reporter = new DdrescueReporter({ verbosity: 0, binaryPrefixes: true, write: (s) => out.push(s) });
    reporter.phaseStarted(0, '  0.00%', 'x');
    reporter.readDone(0, 1, 1, 0);
    reporter.statusRefreshed(refresh({ message: 'x' }));
    reporter.echo('Interrupted by user');
    reporter.endOfRun(0, '  0.00%', 0, 'copying');
    expect(reporter.close()).to.deep.equal([]);
    expect(out.join('')).to.include('ipos:  12352 KiB').and.include('\n  Interrupted by user');
  });
});
