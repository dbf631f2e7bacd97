#!/usr/bin/env node
/**
 * Size and start-up time of the packaged programs (after `npm run package`): each of
 * `--version` and `--help` run N times (default 15) after one warm-up run, against
 * `node -e 0` and the workspace's bin on the same machine in the same run. Prints the
 * median and the fastest run in seconds of wall time, the median CPU time (with GNU
 * time), and the load average (start-up times of a shared machine vary with its load).
 *
 *   node scripts/package/measure.mjs [N]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const N = Number(process.argv[2] ?? 15);
const NAMES = { 'ddferry-reader': 'reader', 'ddferry-assembler': 'assembler', 'ddferry-map': 'mapfile' };

/** GNU time, for the CPU seconds (user + system) of each run: they vary less with the machine's load than wall time. */
const TIME_BIN = ['/usr/bin/time'].find((f) => existsSync(f));

function time(file, args) {
  spawnSync(file, args, { stdio: 'ignore' });
  const wall = [];
  const cpu = [];
  for (let i = 0; i < N; ++i) {
    const t = process.hrtime.bigint();
    const r = TIME_BIN === undefined ? spawnSync(file, args, { stdio: 'ignore' }) : spawnSync(TIME_BIN, ['-f', 'DDFERRY_TIME %U %S', file, ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    wall.push(Number(process.hrtime.bigint() - t) / 1e9);
    if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.status ?? r.signal}`);
    const m = TIME_BIN === undefined ? null : /DDFERRY_TIME (\S+) (\S+)/.exec(r.stderr);
    if (m) cpu.push(Number(m[1]) + Number(m[2]));
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  return `${median(wall).toFixed(3)} (${Math.min(...wall).toFixed(3)})${cpu.length > 0 ? `, cpu ${median(cpu).toFixed(2)}` : ''}`;
}

console.log(`Node ${process.version}, ${N} runs each, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; seconds of wall time: median (fastest)${TIME_BIN ? ', and median CPU seconds (user + system)' : ''}`);
console.log(`node -e 0: ${time(process.execPath, ['-e', '0'])}`);
console.log('| program | size | --version | --help | workspace --version | workspace --help |');
console.log('|---|---|---|---|---|---|');
for (const [name, pkg] of Object.entries(NAMES)) {
  const exe = join(ROOT, 'dist', 'bin', name);
  if (!existsSync(exe)) throw new Error(`${exe} is missing: run npm run package first`);
  const ws = join(ROOT, 'packages', pkg, 'bin', `${name}.js`);
  const size = `${(statSync(exe).size / 1024 / 1024).toFixed(1)} MiB`;
  console.log(`| ${name} | ${size} | ${time(exe, ['--version'])} | ${time(exe, ['--help'])} | ${time(process.execPath, [ws, '--version'])} | ${time(process.execPath, [ws, '--help'])} |`);
}
