#!/usr/bin/env node
// Benchmark of the LAN path (read, seal, hash, spool, send, verify, write, fsync) against a raw TCP
// copy with socat, and against local copies with GNU ddrescue and dd, on the same machine in the same
// run, over 127.0.0.1.
//
// Each round, in turn:
//   socat     socat -u OPEN:SRC TCP:127.0.0.1:P  into  socat -u TCP-LISTEN:P OPEN:OUT,creat,trunc; then fsync OUT
//   ddferry   ddferry-reader rescue JOB --to ws://127.0.0.1:P (a clean regular-file source) into
//             ddferry-assembler serve IMAGE; timed from the reader's start to its exit (every piece merged:
//             written, fsynced, IMAGE.map saved)
//   ddrescue  ddrescue -q SRC OUT MAP (local copy, no network), then fsync
//   dd        dd if=SRC of=OUT bs=1M conv=fsync (local copy)
// Every output is compared with the source. Reports min and median wall times, MB/s, the ratios
// against socat, and the peak RSS of every process (GNU time). Writes scripts/bench/results-lan.md.
// Never asserts on times.
//
// Usage: node scripts/bench/lan.mjs [--size MiB] [--runs N] [--tmp DIR] [--no-write]
// Build first: npx tsc -b
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  buildInfo, fsyncFile, median, min, MiB, nowMs, ROOT, runLanDdferry, runMeasured, runSocat, same, toolVersion, writeRandomFile,
} from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : process.argv[i + 1];
}
const SIZE = Number(option('--size', '512')) * MiB;
const RUNS = Number(option('--runs', '3'));
const WRITE = !process.argv.includes('--no-write');
const dir = mkdtempSync(join(option('--tmp', tmpdir()), 'ddferry-bench-lan-'));
const log = (s) => process.stderr.write(`${s}\n`);

function runLocal(kind, src, out) {
  rmSync(out, { force: true });
  rmSync(`${out}.map`, { force: true });
  const t0 = nowMs();
  const r = kind === 'ddrescue'
    ? runMeasured('ddrescue', ['-q', src, out, `${out}.map`])
    : runMeasured('dd', [`if=${src}`, `of=${out}`, 'bs=1M', 'conv=fsync', 'status=none']);
  if (kind === 'ddrescue') fsyncFile(out);
  const wallMs = nowMs() - t0;
  if (!r.ok) throw new Error(`${kind} failed: ${r.stderr}`);
  if (!same(src, out)) throw new Error(`${kind}: the copy differs from the source`);
  return { wallMs, rss: { [kind]: r.maxRssKiB } };
}

const results = { socat: [], ddferry: [], ddrescue: [], dd: [] };
try {
  for (const tool of ['socat', 'ddrescue', 'dd']) {
    if (toolVersion(tool === 'dd' ? 'dd' : tool, tool === 'socat' ? '-V' : '--version') === null) throw new Error(`${tool} is missing: apt-get install -y ${tool === 'ddrescue' ? 'gddrescue' : tool}`);
  }
  const src = join(dir, 'source.bin');
  const out = join(dir, 'out.bin');
  log(`lan bench: ${SIZE / MiB} MiB, ${RUNS} round(s), in ${dir}`);
  writeRandomFile(src, SIZE);
  for (let round = 0; round < RUNS; ++round) {
    results.socat.push(await runSocat(src, out));
    results.ddferry.push(await runLanDdferry(src, dir, round));
    results.ddrescue.push(runLocal('ddrescue', src, out));
    results.dd.push(runLocal('dd', src, out));
    log(`  round ${round + 1}: ${Object.entries(results).map(([k, v]) => `${k} ${(v[round].wallMs / 1000).toFixed(2)} s`).join(', ')}`);
  }
  const mbps = (ms) => (SIZE / 1e6 / (ms / 1000)).toFixed(0);
  const socatMed = median(results.socat.map((r) => r.wallMs));
  const rows = Object.entries(results).map(([k, v]) => {
    const med = median(v.map((r) => r.wallMs));
    const rss = Object.keys(v[0].rss).map((who) => `${who} ${(median(v.map((r) => r.rss[who])) / 1024).toFixed(1)} MiB`).join(', ');
    return `| ${k} | ${(min(v.map((r) => r.wallMs)) / 1000).toFixed(2)} s | ${(med / 1000).toFixed(2)} s | ${mbps(med)} MB/s | ${(med / socatMed).toFixed(2)}x | ${rss} |`;
  });
  const text = [
    '# LAN bench (scripts/bench/lan.mjs)',
    '',
    `${SIZE / MiB} MiB of random data, ${RUNS} round(s), 127.0.0.1, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Linux ${release()}; ${buildInfo(ROOT)}.`,
    `Tools: ${toolVersion('socat', '-V')?.replace(/^.*socat version/i, 'socat') ?? 'socat'}; ${toolVersion('ddrescue')}; ${toolVersion('dd')}.`,
    '',
    '| copy | min | median | median rate | / socat | peak RSS (median) |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    'socat and ddferry cross loopback TCP; ddrescue and dd copy locally (what the disk side alone costs).',
    'ddferry: from the reader\'s start to its exit, when the assembler has written, fsynced and mapped every byte.',
    '',
  ].join('\n');
  process.stdout.write(text);
  if (WRITE) writeFileSync(join(HERE, 'results-lan.md'), text);
} finally {
  if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  if (existsSync(dir)) log(`kept ${dir}`);
}
