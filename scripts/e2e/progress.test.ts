/**
 * Progress of real processes: `ddferry-reader rescue --json` and
 * `ddferry-assembler serve --json` parse line by line and end with the finished
 * state; without a terminal the reader prints plain lines; on a terminal (a pty from
 * util-linux `script`) it redraws ddrescue's status block in place; a stick trip tells
 * the stick instead of the link.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';

import { ASSEMBLER, READER, type Scenario, killAll, makeScenario, startAssembler } from './harness.js';

const MiB = 1 << 20;
const BAD: ReadonlyArray<readonly [number, number]> = [
  [1 * MiB + 512, 512],
  [2 * MiB - 4096, 8192],
  [5 * MiB, 64 * 1024 + 1536],
];

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function collect(child: ChildProcess): Promise<Run> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

function readerArgs(s: Scenario, url: string, extra: readonly string[]): string[] {
  return [READER, 'rescue', s.job, '--to', url, '--token-file', s.token, ...extra];
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  const lines = text.split('\n').filter((l) => l !== '');
  return lines.map((l, i) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`stdout line ${i + 1} is not JSON: ${JSON.stringify(l)} (${(err as Error).message})`);
    }
  });
}

describe('progress of the reader and the assembler (real processes)', function () {
  this.timeout(180000);
  let s: Scenario | undefined;
  /** Processes a test spawned itself (not through the harness): killed if the test failed before it ended them. */
  const own = new Set<ChildProcess>();
  afterEach(async function () {
    for (const c of own) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    own.clear();
    await killAll();
    s?.remove();
    s = undefined;
  });

  it('--json on both sides: every stdout line parses, the last says finished, and both sides agree', async function () {
    s = makeScenario({ size: 8 * MiB + 777, bad: BAD, chunkSize: '2MiB' });
    const asm = spawn(process.execPath, [ASSEMBLER, 'serve', s.image, '--listen', '127.0.0.1:0', '--token-file', s.token, '--json', '--progress-interval', '0.2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    own.add(asm);
    const asmDone = collect(asm);
    let asmOut = '';
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('assembler did not print its address in 20 s')), 20000);
      asm.stdout!.on('data', (d: Buffer) => {
        asmOut += d.toString();
        const first = asmOut.split('\n')[0]!;
        if (asmOut.includes('\n')) {
          clearTimeout(t);
          const o = JSON.parse(first) as { type: string; url: string };
          if (o.type !== 'listening') reject(new Error(`first line: ${first}`));
          resolve(o.url);
        }
      });
    });
    const reader = spawn(process.execPath, readerArgs(s, url, ['--json', '--progress-interval', '0.1']), { stdio: ['ignore', 'pipe', 'pipe'] });
    own.add(reader);
    const r = await collect(reader);
    expect(r.code, `reader: ${r.stderr}`).to.equal(0);
    const lines = jsonLines(r.stdout);
    expect(lines.length).to.be.greaterThan(1);
    for (const o of lines) {
      expect(o.type).to.equal('progress');
      expect(Object.keys(o)).to.deep.equal(['type', 'time', 'phase', 'sourceSize', 'rescue', 'chunk', 'spool', 'link', 'stick', 'carried', 'reading', 'paused', 'usedSpace']);
      // the chunk holding ipos while rescuing; null in any other phase
      if (o.phase !== 'rescuing') expect(o.chunk, `chunk in phase ${String(o.phase)}`).to.equal(null);
      else if (o.chunk !== null) expect((o.chunk as { count: number }).count, 'chunks of the plan').to.equal(5);
    }
    expect(lines.some((o) => o.chunk !== null), 'a line while rescuing tells the chunk').to.equal(true);
    const last = lines[lines.length - 1]! as {
      phase: string; sourceSize: number; rescue: { rescued: number; badSector: number; nonTried: number; badAreas: number };
      spool: { pieces: number }; link: { state: string; merged: number };
    };
    expect(last.phase).to.equal('finished');
    expect(lines.slice(0, -1).every((o) => o.phase !== 'finished'), 'finished only at the end').to.equal(true);
    expect(last.sourceSize).to.equal(8 * MiB + 777);
    expect(last.rescue.nonTried).to.equal(0);
    expect(last.rescue.badAreas).to.be.greaterThan(0);
    expect(last.rescue.rescued + last.rescue.badSector).to.equal(last.sourceSize);
    expect(last.spool.pieces, 'the spool drained').to.equal(0);
    expect(last.link.merged).to.be.greaterThan(0);

    asm.kill('SIGTERM');
    const a = await asmDone;
    expect(a.code, `assembler: ${a.stderr}`).to.equal(0);
    const asmLines = jsonLines(a.stdout);
    expect(asmLines[0]).to.include({ type: 'listening' });
    const end = asmLines[asmLines.length - 1]! as { type: string; readers: Array<{ state: string; piecesMerged: number; bytesMerged: number; imageRescued: number; imageSize: number }> };
    expect(end.type).to.equal('progress');
    expect(end.readers).to.have.length(1);
    expect(end.readers[0]).to.include({ state: 'disconnected', piecesMerged: last.link.merged, bytesMerged: last.rescue.rescued, imageRescued: last.rescue.rescued, imageSize: last.sourceSize });
  });

  it('--json of a stick trip (--to DIR): the stick instead of the link, finished at the end', async function () {
    s = makeScenario({ size: 4 * MiB, bad: BAD.slice(0, 2), chunkSize: '1MiB', seed: 5 });
    const stick = join(s.dir, 'stick');
    mkdirSync(stick);
    const r = await collect(spawn(process.execPath, [READER, 'rescue', s.job, '--to', stick, '--json', '--progress-interval', '0.1'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(r.code, r.stderr).to.equal(0);
    const lines = jsonLines(r.stdout);
    const last = lines[lines.length - 1]! as { phase: string; link: unknown; stick: { trip: number | null; freeBytes: number; bundles: number } };
    expect(last.phase).to.equal('finished');
    expect(last.link).to.equal(null);
    expect(last.stick.trip, 'the first stick trip of the job').to.equal(1);
    expect(last.stick.freeBytes).to.be.greaterThan(0);
    expect(last.stick.bundles, 'the pieces wait on the stick').to.be.greaterThan(0);
    expect(r.stderr).to.contain('still has to be imported');
  });

  it('prints plain progress lines without a terminal, ending with the finished state', async function () {
    s = makeScenario({ size: 4 * MiB, bad: BAD.slice(0, 2), chunkSize: '1MiB', seed: 3 });
    const asm = await startAssembler(s);
    const r = await collect(spawn(process.execPath, readerArgs(s, asm.url, ['--progress-interval', '0.1']), { stdio: ['ignore', 'pipe', 'pipe'] }));
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.equal('');
    expect(r.stderr.includes('\x1B'), 'no terminal sequences in a pipe').to.equal(false);
    const progress = r.stderr.split('\n').filter((l) => /^ddferry-reader: \[\S+\] /.test(l));
    expect(progress.length).to.be.greaterThan(0);
    expect(progress[progress.length - 1]).to.match(/^ddferry-reader: \[\S+\] finished, rescued 99\.\d\d% .*, spool 0 pieces 0 B of 268 MB, link \w+ \(\d+ merged\), carried \S+ \S+ rescued as \S+ \S+ \(\d+%\)$/);
    // the chunk holding ipos is told while rescuing (not after)
    expect(progress.some((l) => /^ddferry-reader: \[\S+\] rescuing .*, chunk [1-4]\/4, spool /.test(l)), `a rescuing line tells the chunk:\n${progress.join('\n')}`).to.equal(true);
    expect(progress[progress.length - 1], 'no chunk once finished').to.not.match(/, chunk /);
  });

  it('redraws the status block in place on a terminal', async function () {
    s = makeScenario({ size: 4 * MiB, bad: BAD.slice(0, 2), chunkSize: '1MiB', seed: 4 });
    const asm = await startAssembler(s);
    const cmd = [process.execPath, ...readerArgs(s, asm.url, [])].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    const r = spawnSync('script', ['-qefc', cmd, '/dev/null'], { encoding: 'utf8', timeout: 120000 });
    if (r.error) throw new Error(`util-linux 'script' could not start (${r.error.message}): it gives the reader a terminal; apt-get install -y bsdutils`);
    expect(r.status, r.stdout).to.equal(0);
    const out = r.stdout;
    expect(out).to.contain('pct rescued:');
    expect(out).to.contain('time since last successful read:');
    const ESC = '\x1B';
    expect(out).to.match(new RegExp(`${ESC}\\[\\d+A`), 'cursor up over the previous block');
    expect(out).to.contain('\x1B[K');
    expect(out).to.match(new RegExp(` {4}phase: finished${ESC}\\[K\r?\n`));
    expect(out).to.match(/ {4}spool: 0 pieces, 0 B of 268 MB/);
  });
});
