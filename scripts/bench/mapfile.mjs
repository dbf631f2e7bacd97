#!/usr/bin/env node
// Benchmark of @ddferry/mapfile against GNU ddrescuelog on a large mapfile.
//
// Generates a deterministic bad-disk mapfile (default 1,000,000 blocks, a few TB),
// then times, each operation in its own child process (so peak RSS is per
// operation), alternating our runs with ddrescuelog's:
//   - ours, in-process: load (read + parse + StatusMap), 1,000,000 random status
//     changes, save (format + write), load + save;
//   - ddrescuelog -t FILE (load + summary) and ddrescuelog -a '?,?' FILE > out
//     (load + rewrite);
//   - ours through the CLI: ddferry-map ddrescuelog -t / -a '?,?' (with Node start-up).
// Reports medians, ratios to ddrescuelog and peak RSS; writes
// scripts/bench/results/mapfile-<date>.json. It never asserts on times.
//
// Usage: node scripts/bench/mapfile.mjs [--blocks N] [--runs N] [--changes N]
//        [--seed N] [--keep] [--profile] [--no-json]
// Build first: npx tsc -b
import { spawnSync } from 'node:child_process';
import {
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import os, { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { buildInfo, generateMapfile, mapfileBody, median } from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const DIST = join(ROOT, 'packages/mapfile/dist');
const INDEX_JS = join(DIST, 'index.js');
const IO_JS = join(DIST, 'io.js');
const CHILD = join(HERE, 'mapfile-child.mjs');
/** Blocks of the small map whose load+save shows what Node and our code take before any data. */
const FLOOR_BLOCKS = 1000;
const CLI_BIN = join(ROOT, 'packages/mapfile/bin/ddferry-map.js');
const CLI_MAIN = join(DIST, 'main.js'); // what the bin imports
const TIME_BIN = '/usr/bin/time';
const TIME_TAG = 'DDFERRY_BENCH_TIME';

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

// ---------------------------------------------------------------------------
// Parent mode
// ---------------------------------------------------------------------------
function parseOptions(argv) {
  const o = { blocks: 1_000_000, runs: 3, changes: 1_000_000, seed: 20261123, keep: false, profile: false, json: true };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const num = (name) => {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < 1) usage(`${name} needs a positive integer`);
      return v;
    };
    if (a === '--blocks') o.blocks = num(a);
    else if (a === '--runs') o.runs = num(a);
    else if (a === '--changes') o.changes = num(a);
    else if (a === '--seed') o.seed = num(a);
    else if (a === '--keep') o.keep = true;
    else if (a === '--profile') o.profile = true;
    else if (a === '--no-json') o.json = false;
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown option ${a}`);
  }
  return o;
}

function usage(error) {
  const text = 'Usage: node scripts/bench/mapfile.mjs [--blocks N] [--runs N] [--changes N] [--seed N] [--keep] [--profile] [--no-json]\n';
  if (error) {
    process.stderr.write(`mapfile bench: ${error}\n${text}`);
    process.exit(1);
  }
  process.stdout.write(text);
  process.exit(0);
}

/**
 * Run a command in a child process. Wall time is taken with process.hrtime in this
 * process (finer than time's 10 ms); peak RSS from /usr/bin/time's %M when present,
 * otherwise from the child's own report (our Node children only).
 */
function runMeasured(cmd, args, { stdoutFile } = {}) {
  const useTime = existsSync(TIME_BIN);
  const file = useTime ? TIME_BIN : cmd;
  const fullArgs = useTime ? ['-f', `${TIME_TAG} %e %M`, cmd, ...args] : args;
  const outFd = stdoutFile ? openSync(stdoutFile, 'w') : null;
  const t0 = nowMs();
  const r = spawnSync(file, fullArgs, { stdio: ['ignore', outFd ?? 'pipe', 'pipe'], maxBuffer: 64 << 20, encoding: 'utf8' });
  const wallMs = nowMs() - t0;
  if (outFd !== null) closeSync(outFd);
  let stderr = r.stderr ?? '';
  let timeWallMs = null;
  let maxRssKiB = null;
  if (useTime) {
    const lines = stderr.split('\n');
    const k = lines.findLastIndex((l) => l.startsWith(TIME_TAG));
    if (k >= 0) {
      const [, e, m] = lines[k].split(' ');
      timeWallMs = Number(e) * 1000;
      maxRssKiB = Number(m);
      lines.splice(k, 1);
      stderr = lines.join('\n');
    }
  }
  // GNU time reports "Command exited with non-zero status N" itself; the status passes through
  const ok = r.status === 0 && !r.error;
  return { ok, status: r.status, wallMs, timeWallMs, maxRssKiB, stdout: r.stdout ?? '', stderr: stderr.trim() };
}

function ddrescuelogVersion() {
  const r = spawnSync('ddrescuelog', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0] : null;
}

function fmtMs(v) {
  if (v === null || v === undefined) return '—';
  return v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`;
}
const fmtMiB = (kib) => (kib === null || kib === undefined ? '—' : `${(kib / 1024).toFixed(0)} MiB`);
const fmtRatio = (a, b) => (a === null || b === null || !b ? '—' : `${(a / b).toFixed(2)}x`);

/** Self time per function of a .cpuprofile, highest first. */
function topSelfTime(profilePath, limit = 10) {
  const p = JSON.parse(readFileSync(profilePath, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  for (let i = 0; i < p.samples.length; ++i) {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const cf = byId.get(p.samples[i]).callFrame;
    const where = cf.url ? `${relative(ROOT, fileURLToPath(cf.url.startsWith('file:') ? cf.url : pathToFileURL(cf.url)))}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  return {
    totalMs: total,
    top: [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([fn, ms]) => ({ fn, ms, pct: (100 * ms) / total })),
  };
}

async function main() {
  const opt = parseOptions(process.argv.slice(2));
  if (!existsSync(INDEX_JS) || !existsSync(IO_JS)) {
    process.stderr.write(`mapfile bench: ${relative(ROOT, INDEX_JS)} or io.js not found; build first: npx tsc -b\n`);
    process.exit(1);
  }
  const ddVersion = ddrescuelogVersion();
  const loadStart = os.loadavg().map((x) => +x.toFixed(2));
  const hasCli = existsSync(CLI_BIN) && existsSync(CLI_MAIN);
  const useTime = existsSync(TIME_BIN);

  const tmp = mkdtempSync(join(tmpdir(), 'ddferry-bench-'));
  const cleanup = () => {
    if (!opt.keep) rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

  const log = (s) => process.stderr.write(`${s}\n`);
  const mapPath = join(tmp, 'disk.map');
  let t = nowMs();
  const gen = generateMapfile(mapPath, opt.blocks, opt.seed);
  const fileBytes = statSync(mapPath).size;
  log(`generated ${opt.blocks} blocks, ${(gen.total / 1e12).toFixed(2)} TB, ${(fileBytes / 2 ** 20).toFixed(1)} MiB of text in ${Math.round(nowMs() - t)} ms: ${mapPath}`);
  if (!ddVersion) log('ddrescuelog not found: its rows will be empty');
  if (!hasCli) log('ddferry-map CLI not built (packages/mapfile/dist/main.js missing): CLI rows skipped');
  if (!useTime) log('/usr/bin/time not found: ddrescuelog peak RSS not measured');

  const node = process.execPath;
  const floorPath = join(tmp, 'floor.map');
  generateMapfile(floorPath, FLOOR_BLOCKS, opt.seed);
  const ours = (op, out = join(tmp, `ours-${op}.map`), map = mapPath) => [node, [CHILD, op, map, out, String(opt.seed), String(opt.changes)]];
  const ddOut = join(tmp, 'dd-rewrite.map');
  const cliOut = join(tmp, 'cli-rewrite.map');
  const ddT = join(tmp, 'dd-t.txt');
  const cliT = join(tmp, 'cli-t.txt');

  /** Operations, in the order they alternate within a run. */
  const ops = [
    { id: 'ours-load', cmd: ours('load'), child: true },
    { id: 'dd-t', cmd: ['ddrescuelog', ['-t', mapPath]], stdoutFile: ddT, skip: !ddVersion },
    { id: 'cli-t', cmd: [node, [CLI_BIN, 'ddrescuelog', '-t', mapPath]], stdoutFile: cliT, skip: !hasCli },
    { id: 'ours-load+save', cmd: ours('load+save'), child: true },
    { id: 'dd-rewrite', cmd: ['ddrescuelog', ['-a', '?,?', mapPath]], stdoutFile: ddOut, skip: !ddVersion },
    { id: 'cli-rewrite', cmd: [node, [CLI_BIN, 'ddrescuelog', '-a', '?,?', mapPath]], stdoutFile: cliOut, skip: !hasCli },
    { id: 'ours-save', cmd: ours('save'), child: true },
    { id: 'ours-save-atomic', cmd: ours('save-atomic'), child: true },
    { id: 'ours-floor', cmd: ours('load+save', join(tmp, 'ours-floor.map'), floorPath), child: true },
    { id: 'ours-session', cmd: ours('session'), child: true },
    { id: 'node-baseline', cmd: [node, ['-e', '']] },
  ];
  const raw = Object.fromEntries(ops.map((o) => [o.id, []]));
  const errors = {};
  for (let run = 1; run <= opt.runs; ++run) {
    for (const op of ops) {
      if (op.skip || errors[op.id]) continue;
      const r = runMeasured(op.cmd[0], op.cmd[1], { stdoutFile: op.stdoutFile });
      if (!r.ok) {
        errors[op.id] = `exit ${r.status}: ${r.stderr.slice(0, 300)}`;
        log(`  ${op.id}: FAILED (${errors[op.id]})`);
        continue;
      }
      const entry = { wallMs: r.wallMs, timeWallMs: r.timeWallMs, maxRssKiB: r.maxRssKiB };
      if (op.child) {
        const rep = JSON.parse(r.stdout.trim().split('\n').pop());
        Object.assign(entry, { phases: rep.phases, blocks: rep.blocks, blocksAfter: rep.blocksAfter, bytesWritten: rep.bytesWritten });
        entry.maxRssKiB ??= rep.maxRssKiB;
      }
      raw[op.id].push(entry);
      const extra = entry.phases ? ` (${Object.entries(entry.phases).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')})` : '';
      log(`  run ${run}/${opt.runs} ${op.id}: ${r.wallMs.toFixed(0)} ms, ${fmtMiB(entry.maxRssKiB)}${extra}`);
    }
  }

  // Like-for-like output checks (not timings): the data part of the rewrites must match.
  const checks = {};
  if (existsSync(ddOut) && existsSync(join(tmp, 'ours-load+save.map'))) {
    checks.librarySaveMatchesDdrescuelog = mapfileBody(readFileSync(join(tmp, 'ours-load+save.map'), 'latin1')) === mapfileBody(readFileSync(ddOut, 'latin1'));
  }
  if (existsSync(ddOut) && existsSync(cliOut) && raw['cli-rewrite'].length) {
    const strip = (s) => s.split('\n').filter((l) => !l.startsWith('# Command line:') && !l.startsWith('# Start time:')).join('\n');
    checks.cliRewriteMatchesDdrescuelog = strip(readFileSync(cliOut, 'latin1')) === strip(readFileSync(ddOut, 'latin1'));
  }
  if (existsSync(ddT) && existsSync(cliT) && raw['cli-t'].length) {
    checks.cliSummaryMatchesDdrescuelog = readFileSync(cliT, 'latin1') === readFileSync(ddT, 'latin1');
  }
  for (const [k, v] of Object.entries(checks)) if (!v) log(`warning: ${k} is false (compare the files with --keep)`);

  const med = (id, pick) => median(raw[id].map(pick));
  const wall = (e) => e.wallMs;
  const rss = (e) => e.maxRssKiB;
  const phase = (name) => (e) => e.phases?.[name];
  const dd = { t: med('dd-t', wall), rw: med('dd-rewrite', wall) };
  const ddSaveEst = dd.t !== null && dd.rw !== null ? Math.max(0, dd.rw - dd.t) : null;
  const rows = [
    { id: 'load', op: 'load (read+parse+map) vs -t', ours: med('ours-load', phase('load')), oursRss: med('ours-load', rss), dd: dd.t, ddRss: med('dd-t', rss) },
    { id: 'changes', op: `${opt.changes.toLocaleString('en')} random changes`, ours: med('ours-session', phase('changes')), oursRss: med('ours-session', rss), dd: null, ddRss: null },
    { id: 'save', op: 'save (format+write) vs ~(-a minus -t)', ours: med('ours-save', phase('save')), oursRss: med('ours-save', rss), dd: ddSaveEst, ddRss: null },
    { id: 'load+save', op: 'load+save vs -a ?,?', ours: med('ours-load+save', phase('loadSave')), oursRss: med('ours-load+save', rss), dd: dd.rw, ddRss: med('dd-rewrite', rss) },
    { id: 'save-atomic', op: 'save atomic (saveMapfile, fsync)', ours: med('ours-save-atomic', phase('save')), oursRss: med('ours-save-atomic', rss), dd: null, ddRss: null },
    { id: 'cli-t', op: 'CLI -t (process)', ours: med('cli-t', wall), oursRss: med('cli-t', rss), dd: dd.t, ddRss: med('dd-t', rss) },
    { id: 'cli-rewrite', op: 'CLI -a ?,? > out (process)', ours: med('cli-rewrite', wall), oursRss: med('cli-rewrite', rss), dd: dd.rw, ddRss: med('dd-rewrite', rss) },
    { id: 'load+save-process', op: 'load+save (whole process)', ours: med('ours-load+save', wall), oursRss: med('ours-load+save', rss), dd: dd.rw, ddRss: med('dd-rewrite', rss) },
  ];
  for (const r of rows) r.ratio = r.ours !== null && r.dd ? r.ours / r.dd : null;

  const head = ['operation', 'ours', 'ddrescuelog', 'ratio', 'ours RSS', 'dd RSS'];
  const table = [head, ...rows.map((r) => [r.op, fmtMs(r.ours), fmtMs(r.dd), fmtRatio(r.ours, r.dd), fmtMiB(r.oursRss), fmtMiB(r.ddRss)])];
  const widths = head.map((_, c) => Math.max(...table.map((row) => row[c].length)));
  const line = (row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  const session = raw['ours-session'];
  const notes = [
    `${opt.blocks.toLocaleString('en')} blocks, ${(gen.total / 1e12).toFixed(2)} TB, ${(fileBytes / 2 ** 20).toFixed(1)} MiB; median of ${opt.runs} run(s); Node ${process.version}; ${ddVersion ?? 'no ddrescuelog'}`,
    `ours in-process rows time the operation inside the child; ddrescuelog and "process" rows time the whole process (parent hrtime)`,
    `node start-up (node -e ''): ${fmtMs(med('node-baseline', wall))}, ${fmtMiB(med('node-baseline', rss))}`,
    `load average (1 min) at start ${loadStart[0]}, at end ${os.loadavg()[0].toFixed(2)}, on ${cpus().length} cores; ${buildInfo(ROOT)}`,
  ];
  if (session.length) {
    notes.push(`after the changes: ${session[0].blocksAfter.toLocaleString('en')} blocks; saving them took ${fmtMs(med('ours-session', phase('save')))}`);
  }
  const loadPhases = ['parse', 'build'].map((k) => `${k} ${fmtMs(med('ours-load', phase(k)))}`).join(', ');
  notes.push(`load = ${loadPhases} (parse: the file read and parsed 128 KiB at a time; build: new StatusMap); save: formatted and written 64 KiB at a time`);
  notes.push(`the same load+save child on a ${FLOOR_BLOCKS.toLocaleString('en')}-block map (what Node and our code take before any data): ${fmtMs(med('ours-floor', wall))}, ${fmtMiB(med('ours-floor', rss))}`);
  if (Object.keys(checks).length) notes.push(`output checks: ${Object.entries(checks).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  for (const [id, e] of Object.entries(errors)) notes.push(`${id} failed: ${e}`);
  if (!hasCli) notes.push('CLI rows empty: packages/mapfile/dist/main.js (ddferry-map) not built yet');

  let profile = null;
  if (opt.profile) {
    profile = {};
    for (const op of ['load+save', 'session']) {
      const dir = join(tmp, `prof-${op}`);
      const [cmd, args] = ours(op);
      const r = spawnSync(cmd, ['--cpu-prof', '--cpu-prof-dir', dir, ...args], { encoding: 'utf8' });
      if (r.status !== 0) {
        notes.push(`profile of ${op} failed: ${r.stderr.slice(0, 200)}`);
        continue;
      }
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      profile[op] = topSelfTime(join(dir, file));
    }
  }

  const out = [line(table[0]), line(widths.map((w) => '-'.repeat(w))), ...table.slice(1).map(line), '', ...notes.map((n) => `* ${n}`)];
  if (profile) {
    for (const [op, p] of Object.entries(profile)) {
      out.push('', `top self time, ${op} child (${fmtMs(p.totalMs)} sampled):`);
      for (const f of p.top) out.push(`  ${f.ms.toFixed(0).padStart(6)} ms ${f.pct.toFixed(1).padStart(5)}%  ${f.fn}`);
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);

  if (opt.json) {
    const d = new Date();
    const date = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    const resultsDir = join(HERE, 'results');
    mkdirSync(resultsDir, { recursive: true });
    const jsonPath = join(resultsDir, `mapfile-${date}.json`);
    const doc = {
      bench: 'mapfile',
      date: d.toISOString(),
      command: ['node', 'scripts/bench/mapfile.mjs', ...process.argv.slice(2)].join(' '),
      build: buildInfo(ROOT),
      loadAverage: { start: loadStart, end: os.loadavg().map((x) => +x.toFixed(2)) },
      options: { blocks: opt.blocks, runs: opt.runs, changes: opt.changes, seed: opt.seed },
      environment: {
        node: process.version, ddrescuelog: ddVersion, platform: `${process.platform} ${process.arch}`,
        cpu: cpus()[0]?.model ?? null, cpus: cpus().length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
        usrBinTime: useTime, cli: hasCli,
      },
      file: { blocks: opt.blocks, bytes: fileBytes, extentBytes: gen.total },
      units: { time: 'ms', rss: 'KiB' },
      rows, checks, errors, notes, profile, raw,
    };
    writeFileSync(jsonPath, `${JSON.stringify(doc, null, 2)}\n`);
    log(`results: ${relative(ROOT, jsonPath)}`);
  }
  if (opt.keep) log(`kept temp files in ${tmp}`);
}

await main();
