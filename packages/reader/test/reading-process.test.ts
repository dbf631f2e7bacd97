import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { expect } from 'chai';

import { DEFAULT_RESCUE_OPTIONS } from '../src/engine/options.js';
import type { ReadingEvent } from '../src/run/reading-messages.js';
import { currentHost, passedOn, ReadingProcess, readingProcessAheadPid, readingProcessCommand, startReadingProcessAhead } from '../src/run/reading-process.js';

const PKG = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('readingProcessCommand', () => {
  it('starts the executable itself with __reading-process when the reader is a SEA', () => {
    const c = readingProcessCommand({ execPath: '/tmp/ddferry-reader', execArgv: [], moduleUrl: 'file:///tmp/ddferry-reader', isSea: true });
    expect(c).to.deep.equal({ file: '/tmp/ddferry-reader', args: ['__reading-process'] });
  });

  it('starts dist/main.js with Node and its options when the reader runs from the workspace', () => {
    const moduleUrl = pathToFileURL(join(PKG, 'dist', 'run', 'reading-process.js')).href;
    const c = readingProcessCommand({ execPath: '/usr/bin/node', execArgv: ['--max-old-space-size=512'], moduleUrl, isSea: false });
    expect(c).to.deep.equal({ file: '/usr/bin/node', args: ['--max-old-space-size=512', join(PKG, 'dist', 'main.js'), '__reading-process'] });
  });

  it('starts src/main.ts under the same loader when the reader runs as TypeScript', () => {
    const moduleUrl = pathToFileURL(join(PKG, 'src', 'run', 'reading-process.ts')).href;
    const c = readingProcessCommand({ execPath: '/usr/bin/node', execArgv: ['--import', 'tsx', '--inspect=9229'], moduleUrl, isSea: false });
    expect(c).to.deep.equal({ file: '/usr/bin/node', args: ['--import', 'tsx', join(PKG, 'src', 'main.ts'), '__reading-process'] });
  });

  it('passes on no script given on the command line (-e, -p, --input-type): the reading process would run it instead of the reader', () => {
    expect(passedOn(['--import', 'tsx', '-e', 'start()', '--input-type', 'module', '--max-old-space-size=512'])).to.deep.equal(['--import', 'tsx', '--max-old-space-size=512']);
    expect(passedOn(['--eval', 'x', '-p', 'y', '--print', 'z', '--eval=a', '--print=b', '--input-type=module', '--inspect-brk', '--expose-gc'])).to.deep.equal(['--expose-gc']);
    const moduleUrl = pathToFileURL(join(PKG, 'src', 'run', 'reading-process.ts')).href;
    const c = readingProcessCommand({ execPath: '/usr/bin/node', execArgv: ['--import', 'tsx', '--input-type=module', '-e', 'await go()'], moduleUrl, isSea: false });
    expect(c.args).to.deep.equal(['--import', 'tsx', join(PKG, 'src', 'main.ts'), '__reading-process']);
  });

  it('starts the bundle file itself when the reader is one bundled module', () => {
    const c = readingProcessCommand({ execPath: '/usr/bin/node', execArgv: [], moduleUrl: 'file:///opt/ddferry/bin/ddferry-reader.mjs', isSea: false });
    expect(c).to.deep.equal({ file: '/usr/bin/node', args: ['/opt/ddferry/bin/ddferry-reader.mjs', '__reading-process'] });
  });

  it('names an entry that exists and answers as the reader, for this process', () => {
    const host = currentHost();
    expect(host.isSea).to.equal(false);
    const c = readingProcessCommand(host);
    const entry = c.args[c.args.length - 2]!;
    expect(existsSync(entry), entry).to.equal(true);
    // the same command with --version instead of __reading-process: the reader's own entry
    const r = spawnSync(c.file, [...c.args.slice(0, -1), '--version'], { encoding: 'utf8' });
    expect(r.stdout, r.stderr).to.match(/^ddferry-reader /);
  });
});

describe('startReadingProcessAhead', function () {
  this.timeout(60_000);
  const gone = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  };

  it('starts the reading process before it is needed; ReadingProcess.start takes that one, which opens the source', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ddferry-ahead-'));
    try {
      const source = join(dir, 'disk.bin');
      writeFileSync(source, Buffer.alloc(64 * 1024, 7));
      startReadingProcessAhead();
      const pid = readingProcessAheadPid();
      expect(pid).to.be.a('number');
      startReadingProcessAhead(); // once only
      expect(readingProcessAheadPid()).to.equal(pid);
      const events: ReadingEvent[] = [];
      const p = ReadingProcess.start({
        source, options: DEFAULT_RESCUE_OPTIONS, domains: [{ pos: 0, size: 64 * 1024 }], insize: 64 * 1024,
        mapText: '# Mapfile. Created by GNU ddrescue version 1.27\n0x00000000     ?               1\n0x00000000  0x00010000  ?\n',
        state: { currentPos: 0, currentStatus: '?', currentPass: 1 }, startTime: Math.floor(Date.now() / 1000), readDone: false, grant: 0,
      }, { read: () => undefined, data: () => undefined, status: () => undefined, readDone: () => undefined, event: (e) => events.push(e) });
      expect(p.pid).to.equal(pid);
      expect(readingProcessAheadPid()).to.equal(undefined);
      for (let i = 0; i < 200 && !events.some((e) => e.kind === 'opened'); ++i) await sleep(50);
      expect(events.map((e) => e.kind)).to.include('opened');
      p.stop();
      await p.exited;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drops what an abandoned reading process sends once its read returns: the run that owned it has ended', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ddferry-abandon-'));
    try {
      const source = join(dir, 'disk.bin');
      writeFileSync(source, Buffer.alloc(256 * 1024, 7));
      let abandoned = false;
      const late: string[] = [];
      const events: ReadingEvent[] = [];
      const seen = (what: string) => (): void => {
        if (abandoned) late.push(what);
      };
      const p = ReadingProcess.start({
        source, options: DEFAULT_RESCUE_OPTIONS, domains: [{ pos: 0, size: 256 * 1024 }], insize: 256 * 1024,
        slowReads: [{ pos: 64 * 1024, size: 4096, seconds: 1 }],
        mapText: '# Mapfile. Created by GNU ddrescue version 1.27\n0x00000000     ?               1\n0x00000000  0x00040000  ?\n',
        state: { currentPos: 0, currentStatus: '?', currentPass: 1 }, startTime: Math.floor(Date.now() / 1000), readDone: false, grant: 1 << 30,
      }, {
        read: seen('read'), data: seen('data'), status: seen('status'), readDone: seen('readDone'),
        event: (e) => {
          events.push(e);
          seen(`event ${e.kind}`)();
        },
      });
      for (let i = 0; i < 200 && !events.some((e) => e.kind === 'opened'); ++i) await sleep(50);
      p.start();
      await sleep(400); // in the read that blocks 1 s
      expect(p.hasExited).to.equal(false);
      abandoned = true;
      p.abandon();
      const end = await p.exited;
      expect(end.code, p.stderr).to.equal(0);
      expect(late).to.deep.equal([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps nothing alive: a command that never takes it exits at once, and the reading process ends with it', async () => {
    const module = join(PKG, 'src', 'run', 'reading-process.ts');
    const script = `const m = await import(${JSON.stringify(module)}); m.startReadingProcessAhead(); process.stdout.write(String(m.readingProcessAheadPid()));`;
    const started = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).to.equal(0);
    expect(Date.now() - started, 'the command waited for its reading process').to.be.below(20_000);
    const pid = Number(r.stdout);
    expect(pid).to.be.above(0);
    for (let i = 0; i < 200 && !gone(pid); ++i) await sleep(50);
    expect(gone(pid), `reading process ${pid} still runs`).to.equal(true);
  });
});
