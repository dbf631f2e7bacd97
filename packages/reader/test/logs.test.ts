/**
 * The three log files of spec 4 and the two time formats: exact text for known
 * inputs, the one-line-per-second rule of the rates log, the append rule of the
 * events log, and the refused names.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { EventLogger } from '../src/logs/event-logger.js';
import { formatTime, formatTimeDhms } from '../src/logs/format-time.js';
import { LogFile, checkLogFileName } from '../src/logs/log-file.js';
import { RateLogger } from '../src/logs/rate-logger.js';
import { ReadLogger } from '../src/logs/read-logger.js';

const START = '2026-11-23 08:01:39';
const END = '2026-11-23 08:01:40';
const header = (commandLine: string) => ({ commandLine, startTime: START });
const creator = 'Created by ddferry in the format of GNU ddrescue 1.27';

describe('log time formats', () => {
  it('formatTimeDhms gives Ns, Mm:SSs, Hh:MMm:SSs and Dd:HHh:MMm:SSs', () => {
    expect(formatTimeDhms(0)).to.equal('0s');
    expect(formatTimeDhms(59)).to.equal('59s');
    expect(formatTimeDhms(60)).to.equal('1m:00s');
    expect(formatTimeDhms(3599)).to.equal('59m:59s');
    expect(formatTimeDhms(3600)).to.equal('1h:00m:00s');
    expect(formatTimeDhms(86399)).to.equal('23h:59m:59s');
    expect(formatTimeDhms(86400 + 3661)).to.equal('1d:01h:01m:01s');
    expect(formatTimeDhms(12 * 86400 + 5)).to.equal('12d:00h:00m:05s');
  });

  it('formatTime gives n/a, then up to three parts joined by one or two spaces', () => {
    expect(formatTime(-1)).to.equal('n/a');
    expect(formatTime(0)).to.equal('0s');
    expect(formatTime(7)).to.equal('7s');
    expect(formatTime(60)).to.equal('1m');
    expect(formatTime(126)).to.equal('2m  6s');
    expect(formatTime(4200)).to.equal('1h 10m');
    expect(formatTime(4206)).to.equal('1h 10m  6s');
    expect(formatTime(36000 + 600 + 10)).to.equal('10h 10m 10s');
    expect(formatTime(2 * 86400 + 3 * 3600 + 4 * 60 + 5)).to.equal('2d  3h  4m');
    expect(formatTime(100 * 86400 + 36000 + 600)).to.equal('100d 10h');
    expect(formatTime(86400 + 59)).to.equal('1d 59s');
  });

  it('formatTime drops the seconds when asked, but never leaves the text empty', () => {
    expect(formatTime(190, true)).to.equal('3m');
    expect(formatTime(3601, true)).to.equal('1h');
    expect(formatTime(30, true)).to.equal('30s');
    expect(formatTime(0, true)).to.equal('0s');
  });
});

describe('log files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-logs-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the read log of spec 4.1', () => {
    const path = join(dir, 'reads.log');
    writeFileSync(path, 'old content that must go\n'.repeat(10));
    const log = ReadLogger.open(path, header('ddrescue -H testmap --log-reads=reads.log ... in.bin out.bin map'));
    log.phase(0, 'Copying non-tried blocks... Pass 1 (forwards)');
    log.timeMark(0);
    log.line(0, 65536, 65536, 0);
    log.line(0x100000, 65536, 0, 65536);
    log.timeMark(1);
    log.line(0xff0000, 65536, 65536, 0);
    log.phase(1, 'Copying non-tried blocks... Pass 2 (backwards)');
    log.line(0xc10000, 65536, 0, 65536);
    log.phase(3725, 'Trimming failed blocks... (forwards)');
    log.phase(3725, 'Scraping failed blocks... (forwards)');
    expect(log.close(END)).to.equal(true);
    expect(readFileSync(path, 'utf8')).to.equal(
      `# Reads Logfile. ${creator}\n`
      + '# Command line: ddrescue -H testmap --log-reads=reads.log ... in.bin out.bin map\n'
      + `# Start time:   ${START}\n`
      + '#  Ipos       Size  Copied_size  Error_size\n'
      + '# 0s  Copying non-tried blocks... Pass 1 (forwards)\n'
      + '0x00000000\t65536\t65536\t0\n'
      + '0x00100000\t65536\t0\t65536\n'
      + '# 1s\n'
      + '0x00FF0000\t65536\t65536\t0\n'
      + '\n'
      + '# 1s  Copying non-tried blocks... Pass 2 (backwards)\n'
      + '0x00C10000\t65536\t0\t65536\n'
      + '\n'
      + '# 1h:02m:05s  Trimming failed blocks... (forwards)\n'
      + '# 1h:02m:05s  Scraping failed blocks... (forwards)\n'
      + `# End time:     ${END}\n`);
  });

  it('puts no blank line before a phase line that follows only time marks', () => {
    const path = join(dir, 'reads.log');
    const log = ReadLogger.open(path, header('x'));
    log.timeMark(2);
    log.phase(2, 'A');
    log.timeMark(3);
    log.phase(3, 'B');
    log.close(END);
    expect(readFileSync(path, 'utf8').split('\n').slice(4).join('\n')).to.equal(`# 2s\n# 2s  A\n# 3s\n# 3s  B\n# End time:     ${END}\n`);
  });

  it('writes the rates log of spec 4.2, at most one line per second', () => {
    const path = join(dir, 'rates.log');
    const log = RateLogger.open(path, header('ddrescue --log-rates=rates.log in out map'));
    const line = (time: number, ipos: number, rate: number) =>
      log.line({ time, ipos, currentRate: rate, averageRate: rate, badAreas: 0, badSize: 0 });
    line(0, 0, 0);
    line(0, 0x10000, 5);
    line(1, 0x110000, 1114112);
    line(1, 0x120000, 7);
    line(0, 0x120000, 7);
    line(2, 0x240000, 1114112);
    log.line({ time: 123, ipos: 0x123456789, currentRate: 123456789, averageRate: 12, badAreas: 12345678, badSize: 1054720 });
    log.close(END);
    expect(readFileSync(path, 'utf8')).to.equal(
      `# Rates Logfile. ${creator}\n`
      + '# Command line: ddrescue --log-rates=rates.log in out map\n'
      + `# Start time:   ${START}\n`
      + '#Time  Ipos  Current_rate  Average_rate  Bad_areas  Bad_size\n'
      + ' 0  0x00000000         0         0        0         0\n'
      + ' 1  0x00110000   1114112   1114112        0         0\n'
      + ' 2  0x00240000   1114112   1114112        0         0\n'
      + '123  0x123456789  123456789        12  12345678   1054720\n'
      + `# End time:     ${END}\n`);
  });

  it('writes the events log of spec 4.3 and appends a blank line and a fresh header', () => {
    const path = join(dir, 'e.log');
    const run = (end: string) => {
      const log = EventLogger.open(path, { commandLine: 'ddrescue -X3 -H testmap --log-events=e.log in.bin o m', startTime: '2026-11-23 08:02:51' });
      log.event(0, '  0.00%', 'Copying non-tried blocks... Pass 1 (forwards)');
      log.echo('Too many read errors');
      log.endOfRun(0, ' 48.43%', 0x820000, 'copying');
      log.event(90061, '100.00%', 'Scraping failed blocks... (forwards)');
      return log.close(end);
    };
    const body = (end: string) =>
      `# Events Logfile. ${creator}\n`
      + '# Command line: ddrescue -X3 -H testmap --log-events=e.log in.bin o m\n'
      + '# Start time:   2026-11-23 08:02:51\n'
      + '#         Time  Rescued  Event\n'
      + '            0s    0.00%  Copying non-tried blocks... Pass 1 (forwards)\n'
      + '                      Too many read errors\n'
      + '            0s   48.43%  End of run (0x00820000  copying)\n'
      + '1d:01h:01m:01s  100.00%  Scraping failed blocks... (forwards)\n'
      + `# End time:     ${end}\n`;
    expect(run('2026-11-23 08:02:51')).to.equal(true);
    expect(readFileSync(path, 'utf8')).to.equal(body('2026-11-23 08:02:51'));
    expect(run('2026-11-23 08:03:00')).to.equal(true);
    expect(readFileSync(path, 'utf8')).to.equal(`${body('2026-11-23 08:02:51')}\n${body('2026-11-23 08:03:00')}`);
  });

  it('appends a blank line even to an existing empty events file', () => {
    const path = join(dir, 'e.log');
    writeFileSync(path, '');
    EventLogger.open(path, header('c')).close(END);
    expect(readFileSync(path, 'utf8')).to.match(/^\n# Events Logfile\. /);
  });

  it('writes the end time as local YYYY-MM-DD HH:MM:SS by default', () => {
    const path = join(dir, 'r.log');
    ReadLogger.open(path, header('c')).close();
    expect(readFileSync(path, 'utf8')).to.match(/\n# End time: {5}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n$/);
  });

  it('refuses "-" and an existing file that is not regular', () => {
    for (const open of [ReadLogger.open, RateLogger.open, EventLogger.open]) {
      expect(() => open('-', header('c'))).to.throw("I won't write log data to standard output").with.property('code', 'ERR_LOG_FILE');
      expect(() => open(dir, header('c'))).to.throw('Logfile exists and is not a regular file').with.property('code', 'ERR_LOG_FILE');
    }
    expect(() => checkLogFileName('-')).to.throw().with.property('code', 'ERR_LOG_FILE');
    expect(() => checkLogFileName(join(dir, 'new'))).not.to.throw();
  });

  it('reports a file that cannot be opened with ERR_LOG_FILE', () => {
    expect(() => RateLogger.open(join(dir, 'missing', 'r.log'), header('c')))
      .to.throw("Can't open file for logging rates").with.property('code', 'ERR_LOG_FILE');
  });

  it('buffers writes and flushes at 64 KiB and at close', () => {
    const path = join(dir, 'reads.log');
    const log = ReadLogger.open(path, header('c'));
    log.line(0, 512, 512, 0);
    expect(readFileSync(path, 'utf8')).to.equal('');
    const n = 10000;
    for (let i = 1; i < n; ++i) log.line(i * 512, 512, 512, 0);
    const partial = readFileSync(path, 'utf8');
    expect(partial.length).to.be.greaterThan(64 * 1024 - 100);
    log.close(END);
    const text = readFileSync(path, 'utf8');
    expect(text.startsWith(partial)).to.equal(true);
    const lines = text.split('\n');
    expect(lines.filter((l) => l.startsWith('0x'))).to.have.length(n);
    expect(lines[4 + n - 1]).to.equal(`0x${((n - 1) * 512).toString(16).toUpperCase().padStart(8, '0')}\t512\t512\t0`);
    expect(log.active).to.equal(false);
    expect(log.close(END)).to.equal(true);
  });

  it('LogFile.close is idempotent and stops writing after close', () => {
    const path = join(dir, 'x.log');
    const f = LogFile.open(path, 'Reads Logfile', header('c'), '#cols', false);
    expect(f.active).to.equal(true);
    expect(f.close(END)).to.equal(true);
    f.write('late\n');
    expect(f.close(END)).to.equal(true);
    expect(readFileSync(path, 'utf8')).to.equal(`# Reads Logfile. ${creator}\n# Command line: c\n# Start time:   ${START}\n#cols\n# End time:     ${END}\n`);
  });
});
