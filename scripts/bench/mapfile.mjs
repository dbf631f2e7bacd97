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
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, writeSync,
} from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const DIST = join(ROOT, 'packages/mapfile/dist');
const INDEX_JS = join(DIST, 'index.js');
const IO_JS = join(DIST, 'io.js');
const CLI_BIN = join(ROOT, 'packages/mapfile/bin/ddferry-map.js');
const CLI_MAIN = join(DIST, 'main.js'); // what the bin imports
const TIME_BIN = '/usr/bin/time';
const TIME_TAG = 'DDFERRY_BENCH_TIME';
const STATUSES = ['?', '*', '/', '-', '+'];
const SECTOR = 512;

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** mulberry32: small, fast, deterministic. Returns a uint32 generator. */
function makeRng(seed) {
  let a = seed >>> 0;
  const u32 = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  /** Uniform double in [0, 1) with 53 random bits. */
  const unit = () => ((u32() >>> 5) * 67108864 + (u32() >>> 6)) / 9007199254740992;
  /** Uniform integer in [0, n), n below 2^53. */
  const below = (n) => Math.floor(unit() * n);
  return { u32, unit, below };
}

const hex8 = (v) => `0x${v.toString(16).toUpperCase().padStart(8, '0')}`;

// ---------------------------------------------------------------------------
// Child mode: one of our in-process operations. Prints one JSON line on stdout.
// node mapfile.mjs --child OP FILE OUT SEED CHANGES
// ---------------------------------------------------------------------------
async function runChild([op, file, out, seedText, changesText]) {
  const lib = await import(pathToFileURL(INDEX_JS).href);
  const io = existsSync(IO_JS) ? await import(pathToFileURL(IO_JS).href) : null;
  const phases = {};
  const result = { op, io: io !== null, phases };

  // load: read + parse + build the status map
  let t = nowMs();
  const bytes = io ? await io.readMapfileBytes(file) : readFileSync(file);
  phases.read = nowMs() - t;
  t = nowMs();
  const parsed = lib.parseMapfile(bytes, { file });
  phases.parse = nowMs() - t;
  t = nowMs();
  const map = new lib.StatusMap(parsed.blocks);
  phases.build = nowMs() - t;
  phases.load = phases.read + phases.parse + phases.build;
  const { currentPos, currentStatus, currentPass } = parsed;
  result.blocks = map.length;

  if (op === 'session') {
    const rng = makeRng(Number(seedText) ^ 0x5eed);
    const domain = lib.Domain.fromOptions(0, -1);
    const ext = map.extent();
    const n = Number(changesText);
    let badAreaDelta = 0;
    t = nowMs();
    for (let i = 0; i < n; ++i) {
      const sb = map.sblockAt(ext.pos + rng.below(ext.size));
      const sectors = Math.floor(sb.size / SECTOR);
      let chunk;
      if (sectors > 1) {
        const a = rng.below(sectors);
        const b = a + 1 + rng.below(sectors - a);
        const pos = sb.pos + a * SECTOR;
        chunk = { pos, size: Math.min(sb.pos + b * SECTOR, sb.pos + sb.size) - pos };
      } else {
        chunk = { pos: sb.pos, size: sb.size };
      }
      badAreaDelta += map.changeChunkStatus(chunk, STATUSES[rng.u32() % 5], domain);
    }
    phases.changes = nowMs() - t;
    result.changes = n;
    result.badAreaDelta = badAreaDelta;
    result.blocksAfter = map.length;
  }

  if (op !== 'load') {
    const stamp = lib.formatTimestamp(new Date());
    t = nowMs();
    const buf = lib.formatMapfile(
      { currentPos, currentStatus, currentPass, blocks: map },
      { program: 'ddrescue', commandLine: 'ddferry-bench mapfile', startTime: stamp, currentTime: stamp },
    );
    phases.format = nowMs() - t;
    t = nowMs();
    if (op === 'save-atomic') {
      if (!io) throw new Error('save-atomic needs packages/mapfile/dist/io.js');
      await io.saveMapfile(out, buf);
    } else {
      writeFileSync(out, buf); // a plain write, as ddrescuelog writes to stdout
    }
    phases.write = nowMs() - t;
    phases.save = phases.format + phases.write;
    result.bytesWritten = buf.length;
  }
  if (op === 'load+save') phases.loadSave = phases.load + phases.save;
  result.maxRssKiB = process.resourceUsage().maxRSS;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

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
 * Write a GNU ddrescue 1.27 mapfile of `n` blocks for a failing disk: finished (`+`)
 * runs of 1-8 MiB alternate with small problem areas (`-`, `/`, `*`, `?`) of
 * 512 B-1 MiB, log-uniform. All sizes are whole sectors; positions pass 2^32 early.
 */
function generateMapfile(path, n, seed) {
  const rng = makeRng(seed);
  const fd = openSync(path, 'w');
  const lines = [];
  const flush = () => {
    writeSync(fd, lines.join(''));
    lines.length = 0;
  };
  const sizes = new Float64Array(n);
  const statuses = new Array(n);
  let pos = 0;
  for (let i = 0; i < n; ++i) {
    if (i % 2 === 0) {
      statuses[i] = '+';
      sizes[i] = (2048 + rng.below(14337)) * SECTOR; // 1 MiB .. 8 MiB
    } else {
      const r = rng.u32() % 100;
      statuses[i] = r < 40 ? '-' : r < 65 ? '/' : r < 85 ? '*' : '?';
      sizes[i] = Math.max(1, Math.round(2 ** (rng.unit() * 11))) * SECTOR; // 512 B .. 1 MiB, log-uniform
    }
    pos += sizes[i];
  }
  const total = pos;
  const currentPos = Math.floor(total * 0.6 / SECTOR) * SECTOR;
  lines.push(
    '# Mapfile. Created by GNU ddrescue version 1.27\n',
    '# Command line: ddrescue -d -r3 /dev/sdb sdb.img sdb.map\n',
    '# Start time:   2026-11-20 09:00:00\n',
    '# Current time: 2026-11-23 08:00:00\n',
    '# Trimming failed blocks... (forwards)\n',
    '# current_pos  current_status  current_pass\n',
    `${hex8(currentPos)}     /               1\n`,
    '#      pos        size  status\n',
  );
  pos = 0;
  for (let i = 0; i < n; ++i) {
    lines.push(`${hex8(pos)}  ${hex8(sizes[i])}  ${statuses[i]}\n`);
    pos += sizes[i];
    if (lines.length >= 16384) flush();
  }
  flush();
  closeSync(fd);
  return { total };
}

function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
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

/** The data part of a mapfile (from the status line on): what must match byte for byte. */
function mapfileBody(text) {
  const i = text.indexOf('# current_pos');
  return i >= 0 ? text.slice(i) : text;
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
  if (!existsSync(INDEX_JS)) {
    process.stderr.write(`mapfile bench: ${relative(ROOT, INDEX_JS)} not found; build first: npx tsc -b\n`);
    process.exit(1);
  }
  const ddVersion = ddrescuelogVersion();
  const hasIo = existsSync(IO_JS);
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
  if (!hasIo) log('packages/mapfile/dist/io.js not found: reading with fs.readFileSync, no atomic save');
  if (!hasCli) log('ddferry-map CLI not built (packages/mapfile/dist/main.js missing): CLI rows skipped');
  if (!useTime) log('/usr/bin/time not found: ddrescuelog peak RSS not measured');

  const node = process.execPath;
  const self = fileURLToPath(import.meta.url);
  const ours = (op, out = join(tmp, `ours-${op}.map`)) => [node, [self, '--child', op, mapPath, out, String(opt.seed), String(opt.changes)]];
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
    { id: 'ours-save-atomic', cmd: ours('save-atomic'), child: true, skip: !hasIo },
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
  ];
  if (session.length) {
    notes.push(`after the changes: ${session[0].blocksAfter.toLocaleString('en')} blocks; saving them took ${fmtMs(med('ours-session', phase('save')))}`);
  }
  const loadPhases = ['read', 'parse', 'build'].map((k) => `${k} ${fmtMs(med('ours-load', phase(k)))}`).join(', ');
  const savePhases = ['format', 'write'].map((k) => `${k} ${fmtMs(med('ours-save', phase(k)))}`).join(', ');
  notes.push(`load = ${loadPhases}; save = ${savePhases}`);
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
      options: { blocks: opt.blocks, runs: opt.runs, changes: opt.changes, seed: opt.seed },
      environment: {
        node: process.version, ddrescuelog: ddVersion, platform: `${process.platform} ${process.arch}`,
        cpu: cpus()[0]?.model ?? null, cpus: cpus().length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
        usrBinTime: useTime, io: hasIo, cli: hasCli,
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

if (process.argv[2] === '--child') {
  await runChild(process.argv.slice(3));
} else {
  await main();
}
