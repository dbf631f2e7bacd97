// The cost of the rescue command's progress hook on the engine: the same test-mode
// rescue (many scattered bad sectors: trimming and scraping, hence many reads and
// refreshes) with the engine's reporter as `rescue` had it before the hook (a
// DdrescueReporter without a screen) and with the progress tap around it, drawing
// lines, a terminal block or JSON into a discarding writer. Alternating runs, one
// process; it prints min and median wall times and never asserts on them.
//
// Usage: node --import tsx scripts/bench/progress.ts [--size MiB] [--bad N] [--runs N]
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BlockStatus, Domain, SblockVector, StatusMap } from '@ddferry/mapfile';

import { DdrescueReporter } from '../../packages/reader/src/progress/ddrescue-reporter.js';
import { doRescue } from '../../packages/reader/src/engine/do-rescue.js';
import { DEFAULT_RESCUE_OPTIONS } from '../../packages/reader/src/engine/options.js';
import type { RescueReporter } from '../../packages/reader/src/engine/reporter.js';
import { Rescuebook } from '../../packages/reader/src/engine/rescuebook.js';
import type { RescueSink } from '../../packages/reader/src/engine/sink.js';
import type { ProgressMode } from '../../packages/reader/src/progress/progress-display.js';
import { RescueProgress } from '../../packages/reader/src/progress/progress.js';
import { allocAligned } from '../../packages/reader/src/source/aligned-buffer.js';
import { FileSource } from '../../packages/reader/src/source/file-source.js';
import { TestModeSource } from '../../packages/reader/src/source/test-mode-source.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? dflt : Number(process.argv[i + 1]);
};
const MiB = 2 ** 20;
const size = arg('size', 128) * MiB;
const badCount = arg('bad', 20000);
const runs = arg('runs', 5);

const dir = mkdtempSync(join(tmpdir(), 'ddferry-progress-bench-'));
const input = join(dir, 'in');
const fd = openSync(input, 'w');
ftruncateSync(fd, size);
closeSync(fd);
// a test map: scattered single bad sectors, deterministic
let seed = 12345;
const rnd = (): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const bad = new Set<number>();
while (bad.size < badCount) bad.add(Math.floor(rnd() * (size / 512)));
const sectors = [...bad].sort((a, b) => a - b);
const good = new SblockVector(sectors.length * 2 + 1);
let p = 0;
for (const s of sectors) {
  if (s * 512 > p) good.push(p, s * 512 - p, BlockStatus.finished);
  good.push(s * 512, 512, BlockStatus.badSector);
  p = s * 512 + 512;
}
if (p < size) good.push(p, size - p, BlockStatus.finished);
writeFileSync(join(dir, 'note'), `${sectors.length} bad sectors\n`);

const sink: RescueSink = { write() {}, sync() {}, finish: () => null, close: () => null };
const chunks = Array.from({ length: 16 }, (_, i) => ({ pos: (i * size) / 16, size: size / 16 }));

async function once(variant: 'before' | ProgressMode): Promise<[number, number]> {
  const raw = new FileSource(input);
  const testSource = new TestModeSource(raw, Domain.fromOptions(0, -1, good));
  const base = new DdrescueReporter({ verbosity: -1, binaryPrefixes: false, write: () => {} });
  let reporter: RescueReporter = base;
  let progress: RescueProgress | undefined;
  if (variant !== 'before') {
    progress = new RescueProgress({
      mode: variant, interval: 1, write: () => {}, messages: () => {}, clock: Date.now, sourceSize: size, chunks,
      spool: { count: 0, bytes: 0, capacity: 256 * MiB },
    });
    progress.link = { url: 'ws://127.0.0.1:1', source: { state: 'connected', merged: 0 } };
    progress.start();
    reporter = progress.wrap(base);
  }
  const map = new SblockVector(1);
  map.push(0, size, BlockStatus.nonTried);
  const o = DEFAULT_RESCUE_OPTIONS;
  const rb = new Rescuebook({
    source: testSource, testSource, sink, reporter, map: new StatusMap(map), domain: Domain.fromOptions(0, size), insize: size, offset: 0,
    currentPos: 0, currentStatus: '?', currentPass: 1, options: o, iobuf: allocAligned(o.cluster * o.hardbs + o.hardbs, 4096),
    clock: () => Math.floor(Date.now() / 1000), startTime: Math.floor(Date.now() / 1000), interrupted: () => false, sleep: async () => {},
  });
  const t = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const outcome = await doRescue(rb);
  const used = process.cpuUsage(cpu);
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  progress?.end({ status: outcome.status });
  raw.close();
  if (rb.badAreas === 0 || outcome.status !== 0) throw new Error(`unexpected run: ${rb.badAreas} bad areas, status ${outcome.status}`);
  return [ms, (used.user + used.system) / 1000];
}

const variants = ['before', 'off', 'lines', 'tty', 'json'] as const;
const times = new Map<string, number[]>(variants.map((v) => [v, []]));
const cpus = new Map<string, number[]>(variants.map((v) => [v, []]));
await once('before'); // warm-up
for (let r = 0; r < runs; ++r) {
  for (const v of variants) {
    const [ms, cpu] = await once(v);
    times.get(v)!.push(ms);
    cpus.get(v)!.push(cpu);
    process.stderr.write(`run ${r + 1} ${v}: ${ms.toFixed(0)} ms, CPU ${cpu.toFixed(0)} ms\n`);
  }
}
rmSync(dir, { recursive: true, force: true });
console.log(`test-mode rescue of ${size / MiB} MiB with ${badCount} scattered bad sectors, ${runs} runs each, alternating`);
console.log('| reporter | min ms | median ms | median / before | median CPU ms | CPU / before |');
console.log('|---|---:|---:|---:|---:|---:|');
const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const before = med(times.get('before')!);
const beforeCpu = med(cpus.get('before')!);
for (const v of variants) {
  const a = times.get(v)!;
  const c = cpus.get(v)!;
  console.log(`| ${v === 'before' ? 'DdrescueReporter alone (before)' : `progress tap, ${v}`} | ${Math.min(...a).toFixed(0)} | ${med(a).toFixed(0)} | ${(med(a) / before).toFixed(3)} | ${med(c).toFixed(0)} | ${(med(c) / beforeCpu).toFixed(3)} |`);
}
