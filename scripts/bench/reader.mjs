#!/usr/bin/env node
// Benchmark of `ddferry-reader ddrescue` against GNU ddrescue 1.27 and dd.
//
// In one temporary folder (one file system), on the same machine in the same run,
// each command in its own process, alternating the commands within each round:
//   (a) a clean copy of a --size file (default 1 GiB), page cache warm:
//       ours vs ddrescue vs dd bs=64k vs dd bs=1M; then with O_DIRECT reads:
//       ours -d vs ddrescue -d vs dd iflag=direct bs=64k;
//   (b) a test-mode rescue (-q -H testmap) of a --test-size input (default 256 MiB)
//       with --bad-sectors scattered bad sectors and --big-areas big bad areas, which
//       exercises trimming and scraping: ours vs ddrescue, without and with --log-reads;
//   (c) the same as (b) with -b 4096.
// Reports min and median wall time, peak RSS, CPU time and the ratios ours / ddrescue
// and ours / dd as markdown; writes scripts/bench/results-reader.md. Every run's
// result is checked (outputs equal to the input for (a); maps, outputs and read logs
// equal to ddrescue's for (b) and (c)). It never asserts on times.
//
// Usage: node scripts/bench/reader.mjs [--size SIZE] [--test-size SIZE] [--runs N]
//        [--bad-sectors N] [--big-areas N] [--seed N] [--only a,b,c] [--profile]
//        [--tmp DIR] [--keep] [--out FILE] [--no-write]
// Build first: npx tsc -b
import { spawnSync } from 'node:child_process';
import {
  existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  fmtSize, mdTable, median, MiB, min, readLogDigest, readMap, same, warm, writeRandomFile, writeTestMap,
} from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const READER_BIN = join(ROOT, 'packages/reader/bin/ddferry-reader.js');
const READER_MAIN = join(ROOT, 'packages/reader/dist/main.js'); // what the bin imports
const DEFAULT_OUT = join(HERE, 'results-reader.md');
const TIME_BIN = '/usr/bin/time';
const TIME_TAG = 'DDFERRY_BENCH_TIME';
const RSS_TAG = 'DDFERRY_BENCH_RSS';

/**
 * The children's environment: C locale; without NODE_EXTRA_CA_CERTS, which makes every
 * Node start-up load a CA bundle (about 0.08 s here) though ours opens no TLS connection.
 */
const CHILD_ENV = { ...process.env, LC_ALL: 'C' };
delete CHILD_ENV.NODE_EXTRA_CA_CERTS;

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const log = (s) => process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------
const USAGE = 'Usage: node scripts/bench/reader.mjs [--size SIZE] [--test-size SIZE] [--runs N] [--bad-sectors N] [--big-areas N]\n'
  + '       [--seed N] [--only a,b,c] [--profile] [--tmp DIR] [--keep] [--out FILE] [--no-write]\n'
  + 'SIZE: bytes, or with a suffix K, M, G (powers of 1024); a multiple of 64 KiB.\n';

function usage(error) {
  if (error) {
    process.stderr.write(`reader bench: ${error}\n${USAGE}`);
    process.exit(1);
  }
  process.stdout.write(USAGE);
  process.exit(0);
}

function parseSize(text, name) {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(text ?? '');
  if (!m) usage(`${name} needs a size such as 1G, 256M or 1048576`);
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 }[(m[2] ?? '').charAt(0).toLowerCase()];
  const v = Number(m[1]) * mult;
  if (!Number.isSafeInteger(v) || v < 65536 || v % 65536 !== 0) usage(`${name} must be a multiple of 64 KiB, at least 64 KiB`);
  return v;
}

function parseOptions(argv) {
  const o = {
    size: 2 ** 30, testSize: 256 * MiB, runs: 3, badSectors: 20000, bigAreas: 6, seed: 20261125,
    only: new Set(['a', 'b', 'c']), profile: false, tmp: tmpdir(), keep: false, out: DEFAULT_OUT,
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const num = (min = 1) => {
      const v = Number(argv[++i]);
      if (!Number.isSafeInteger(v) || v < min) usage(`${a} needs an integer >= ${min}`);
      return v;
    };
    if (a === '--size') o.size = parseSize(argv[++i], a);
    else if (a === '--test-size') o.testSize = parseSize(argv[++i], a);
    else if (a === '--runs') o.runs = num();
    else if (a === '--bad-sectors') o.badSectors = num(0);
    else if (a === '--big-areas') o.bigAreas = num(0);
    else if (a === '--seed') o.seed = num();
    else if (a === '--only') {
      o.only = new Set((argv[++i] ?? '').split(',').filter(Boolean));
      if (o.only.size === 0 || [...o.only].some((s) => !['a', 'b', 'c'].includes(s))) usage('--only takes a comma list of a, b, c');
    } else if (a === '--profile') o.profile = true;
    else if (a === '--tmp') o.tmp = resolve(argv[++i] ?? usage('--tmp needs a folder'));
    else if (a === '--keep') o.keep = true;
    else if (a === '--out') o.out = resolve(argv[++i] ?? usage('--out needs a file'));
    else if (a === '--no-write') o.out = null;
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown option ${a}`);
  }
  return o;
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------
// ---------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------
/**
 * Run a command in a child process. Wall time is taken with process.hrtime in this
 * process; peak RSS and CPU time from GNU time (`%e %M %U %S`) when present. Without
 * it, only our Node children report their peak RSS (a preloaded exit hook that prints
 * process.resourceUsage().maxRSS); ddrescue's and dd's are not measured.
 */
function runMeasured(cmd, args, { nodeChild = false } = {}) {
  const useTime = existsSync(TIME_BIN);
  let file = cmd;
  let fullArgs = args;
  if (useTime) {
    file = TIME_BIN;
    fullArgs = ['-f', `${TIME_TAG} %e %M %U %S`, cmd, ...args];
  } else if (nodeChild) {
    const hook = `process.on('exit',()=>process.stderr.write('\\n${RSS_TAG} '+process.resourceUsage().maxRSS+' '+(process.cpuUsage().user+process.cpuUsage().system)/1e6+'\\n'))`;
    fullArgs = ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, ...args];
  }
  const t0 = nowMs();
  const r = spawnSync(file, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, encoding: 'utf8', env: CHILD_ENV });
  const wallMs = nowMs() - t0;
  let stderr = r.stderr ?? '';
  let maxRssKiB = null;
  let cpuS = null;
  const lines = stderr.split('\n');
  const tag = useTime ? TIME_TAG : RSS_TAG;
  const k = lines.findLastIndex((l) => l.startsWith(tag));
  if (k >= 0) {
    const f = lines[k].split(' ');
    if (useTime) {
      maxRssKiB = Number(f[2]);
      cpuS = Number(f[3]) + Number(f[4]);
    } else {
      maxRssKiB = Number(f[1]);
      cpuS = Number(f[2]);
    }
    lines.splice(k, 1);
    stderr = lines.join('\n');
  }
  const ok = r.status === 0 && !r.error;
  return { ok, status: r.status, wallMs, maxRssKiB, cpuS, stderr: stderr.trim() || (r.error?.message ?? '') };
}

/** The commit, whether the work tree differs from it, and when the reader was built. */
function buildInfo() {
  const git = (...args) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD').stdout?.trim() || 'unknown commit';
  const dirty = (git('status', '--porcelain', '--', 'packages').stdout ?? '').trim() !== '';
  const built = existsSync(READER_MAIN) ? statSync(READER_MAIN).mtime.toISOString().replace('T', ' ').slice(0, 19) : '?';
  return `commit ${head}${dirty ? ' plus uncommitted changes in packages/' : ''}; packages/reader/dist/main.js built ${built} UTC`;
}

function version(cmd) {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0] : null;
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------
const fmtS = (ms) => (ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(2)} s`);
const fmtCpu = (s) => (s === null || s === undefined ? '—' : `${s.toFixed(2)} s`);
const fmtMiB = (kib) => (kib === null || kib === undefined ? '—' : `${(kib / 1024).toFixed(1)} MiB`);
const fmtRatio = (a, b) => (a === null || b === null || a === undefined || b === undefined || !b ? '—' : `${(a / b).toFixed(2)}x`);

/** Self time and total (inclusive) time per function of a .cpuprofile, highest first. */
function profileSummary(profilePath, limit = 12) {
  const p = JSON.parse(readFileSync(profilePath, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (cf) => {
    let where = '';
    if (cf.url) {
      const path = cf.url.startsWith('file:') ? fileURLToPath(cf.url) : cf.url;
      where = ` ${path.startsWith('/') ? relative(ROOT, path) : path}:${cf.lineNumber + 1}`;
    }
    return `${cf.functionName || '(anonymous)'}${where}`;
  };
  const self = new Map();
  const total = new Map();
  let sum = 0;
  for (let i = 0; i < p.samples.length; ++i) {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    sum += dt;
    let id = p.samples[i];
    const leaf = name(byId.get(id).callFrame);
    self.set(leaf, (self.get(leaf) ?? 0) + dt);
    const seen = new Set();
    while (id !== undefined) {
      const k = name(byId.get(id).callFrame);
      if (!seen.has(k)) {
        seen.add(k);
        total.set(k, (total.get(k) ?? 0) + dt);
      }
      id = parent.get(id);
    }
  }
  const top = (m, filter = () => true) => [...m.entries()].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, limit)
    .map(([fn, ms]) => ({ fn, ms, pct: (100 * ms) / sum }));
  return { totalMs: sum, self: top(self), total: top(total, (k) => k.includes('packages/')) };
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------
async function main() {
  const opt = parseOptions(process.argv.slice(2));
  if (!existsSync(READER_MAIN)) {
    log(`reader bench: ${relative(ROOT, READER_MAIN)} not found; build first: npx tsc -b`);
    process.exit(1);
  }
  const ddrescueVersion = version('ddrescue');
  if (!ddrescueVersion) {
    log('reader bench: ddrescue not found on PATH (GNU ddrescue 1.27 is needed)');
    process.exit(1);
  }
  if (ddrescueVersion !== 'GNU ddrescue 1.27') log(`warning: ${ddrescueVersion}, not GNU ddrescue 1.27: the map checks may fail`);
  const useTime = existsSync(TIME_BIN);
  if (!useTime) log('/usr/bin/time not found: peak RSS and CPU time of ddrescue and dd not measured');

  mkdirSync(opt.tmp, { recursive: true });
  const tmp = mkdtempSync(join(opt.tmp, 'ddferry-bench-reader-'));
  const cleanup = () => {
    if (!opt.keep) rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

  const fsType = spawnSync('df', ['-PT', tmp], { encoding: 'utf8' }).stdout?.split('\n')[1]?.split(/\s+/) ?? [];
  const env = {
    date: new Date().toISOString(),
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? null,
    memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: `${process.platform} ${release()} ${process.arch}`,
    node: process.version,
    ddrescue: ddrescueVersion,
    dd: version('dd'),
    tmp,
    fs: fsType.length > 1 ? `${fsType[1]} on ${fsType[0]} (mounted on ${fsType[6]})` : 'unknown',
    usrBinTime: useTime,
    build: buildInfo(),
    loadStart: loadavg().map((x) => x.toFixed(2)).join(' '),
    nodeExtraCaCerts: process.env.NODE_EXTRA_CA_CERTS !== undefined,
  };
  if (loadavg()[0] > env.nproc / 4) log(`warning: load average ${env.loadStart} at start: other work on the machine will disturb the timings`);
  log(`temp folder ${tmp}: ${env.fs}; ${env.nproc} CPUs; Node ${env.node}; ${ddrescueVersion}`);

  const node = process.execPath;
  const ours = (...args) => ({ cmd: node, args: [READER_BIN, 'ddrescue', ...args], nodeChild: true });
  const ddrescue = (...args) => ({ cmd: 'ddrescue', args });
  const t00 = nowMs();

  /**
   * Commit the file system (syncfs) after deleting the last run's files, untimed: on a
   * file system mounted with `discard`, freeing a fragmented output takes seconds, and
   * would otherwise land in the next command's fsync.
   */
  const settle = () => spawnSync('sync', ['-f', tmp]);
  /** Run `cases` `opt.runs` times, alternating them in each round. Each case: id, label, tool, run() => spec, check(), clean(). */
  const results = {};
  function runRounds(cases) {
    for (const c of cases) results[c.id] = { ...c, runs: [], errors: [], checks: [] };
    for (let run = 1; run <= opt.runs; ++run) {
      for (const c of cases) {
        const res = results[c.id];
        c.clean();
        settle();
        const spec = c.spec();
        const r = runMeasured(spec.cmd, spec.args, { nodeChild: spec.nodeChild });
        if (!r.ok) {
          res.errors.push(`run ${run}: exit ${r.status}: ${r.stderr.slice(0, 300)}`);
          log(`  run ${run}/${opt.runs} ${c.id}: FAILED (exit ${r.status}: ${r.stderr.slice(0, 300)})`);
          c.clean();
          continue;
        }
        const tc = nowMs();
        const problem = c.check(run);
        const checkMs = nowMs() - tc;
        res.checks.push(problem);
        if (problem) log(`  run ${run}/${opt.runs} ${c.id}: CHECK FAILED: ${problem}`);
        res.runs.push({ wallMs: r.wallMs, maxRssKiB: r.maxRssKiB, cpuS: r.cpuS, ok: !problem });
        const tc2 = nowMs();
        c.clean();
        settle();
        const cleanMs = nowMs() - tc2;
        log(`  run ${run}/${opt.runs} ${c.id}: ${(r.wallMs / 1000).toFixed(2)} s, ${fmtMiB(r.maxRssKiB)}, cpu ${fmtCpu(r.cpuS)}${problem ? ' CHECK FAILED' : ''} (untimed: check ${(checkMs / 1000).toFixed(2)} s, delete ${(cleanMs / 1000).toFixed(2)} s)`);
      }
    }
  }

  // Start-up, for reference (our rows include it): Node alone, and Node + loading our modules
  runRounds([
    { id: 'node', label: "`node -e ''`", tool: 'node', spec: () => ({ cmd: node, args: ['-e', ''], nodeChild: true }), check: () => null, clean: () => {} },
    { id: 'ours-version', label: '`ddferry-reader ddrescue -V`', tool: 'ours', spec: () => ours('-V'), check: () => null, clean: () => {} },
  ]);

  const sections = [];

  // ------------------------------------------------------------------ (a)
  if (opt.only.has('a')) {
    const input = join(tmp, 'copy.in');
    const out = join(tmp, 'copy.out');
    const map = join(tmp, 'copy.map');
    let t = nowMs();
    writeRandomFile(input, opt.size);
    warm(input);
    log(`(a) input: ${fmtSize(opt.size)} of random data, fsynced and read once (page cache warm) in ${((nowMs() - t) / 1000).toFixed(1)} s`);
    const clean = () => {
      rmSync(out, { force: true });
      rmSync(map, { force: true });
    };
    const checkCopy = (withMap) => () => {
      if (statSync(out).size !== opt.size) return `output size ${statSync(out).size}, expected ${opt.size}`;
      if (!same(input, out)) return 'output differs from the input (cmp)';
      if (withMap) {
        const m = readMap(map);
        const want = `0x00000000 0x${opt.size.toString(16).toUpperCase().padStart(8, '0')} +`;
        if (m.blocks !== want) return `final map is not one finished block: ${m.blocks.slice(0, 120)}`;
      }
      return null;
    };
    const dd = (...args) => ({ cmd: 'dd', args: [`if=${input}`, `of=${out}`, ...args, 'status=none'] });
    const cases = [
      { id: 'a-ours', label: '`ddferry-reader ddrescue -q IN OUT MAP`', tool: 'ours', spec: () => ours('-q', input, out, map), check: checkCopy(true) },
      { id: 'a-ddrescue', label: '`ddrescue -q IN OUT MAP`', tool: 'ddrescue', spec: () => ddrescue('-q', input, out, map), check: checkCopy(true) },
      { id: 'a-dd64k', label: '`dd bs=64k conv=fsync`', tool: 'dd', spec: () => dd('bs=64k', 'conv=fsync'), check: checkCopy(false) },
      { id: 'a-dd1m', label: '`dd bs=1M conv=fsync`', tool: 'dd', spec: () => dd('bs=1M', 'conv=fsync'), check: checkCopy(false) },
      { id: 'a-dd1m-nosync', label: '`dd bs=1M` (no fsync, for reference)', tool: 'dd', spec: () => dd('bs=1M'), check: checkCopy(false) },
      { id: 'a-ours-d', label: '`ddferry-reader ddrescue -q -d IN OUT MAP`', tool: 'ours', spec: () => ours('-q', '-d', input, out, map), check: checkCopy(true) },
      { id: 'a-ddrescue-d', label: '`ddrescue -q -d IN OUT MAP`', tool: 'ddrescue', spec: () => ddrescue('-q', '-d', input, out, map), check: checkCopy(true) },
      { id: 'a-dd-direct', label: '`dd iflag=direct bs=64k conv=fsync`', tool: 'dd', spec: () => dd('iflag=direct', 'bs=64k', 'conv=fsync'), check: checkCopy(false) },
    ].map((c) => ({ ...c, clean }));
    t = nowMs();
    runRounds(cases);
    log(`(a) done in ${((nowMs() - t) / 1000).toFixed(0)} s`);
    sections.push({
      id: 'a',
      title: `(a) clean copy of ${fmtSize(opt.size)}: page cache warm, then O_DIRECT reads`,
      size: opt.size,
      rows: cases.map((c) => c.id),
      ratios: [
        ['ours / ddrescue', 'a-ours', 'a-ddrescue'],
        ['ours / dd bs=64k', 'a-ours', 'a-dd64k'],
        ['ours / dd bs=1M', 'a-ours', 'a-dd1m'],
        ['ours -d / ddrescue -d', 'a-ours-d', 'a-ddrescue-d'],
        ['ours -d / dd iflag=direct bs=64k', 'a-ours-d', 'a-dd-direct'],
      ],
      notes: [
        'check: every run\'s output equals the input (`cmp`), and for ours and ddrescue the final map is one finished (`+`) block.',
        'ddrescue and ours fsync the output at the end, so the dd rows use `conv=fsync` too; the no-fsync `dd bs=1M` row shows what the final fsync costs.',
        'The -d rows read with O_DIRECT (past the page cache: "cold-ish"); all outputs are written through the page cache.',
      ],
    });
    if (opt.profile) {
      clean();
      sections.at(-1).profile = profileRun('a', ours('-q', input, out, map));
      clean();
    }
    if (!opt.keep) rmSync(input, { force: true });
  }

  function profileRun(what, spec) {
    const dir = join(tmp, `prof-${what}`);
    const r = spawnSync(spec.cmd, ['--cpu-prof', '--cpu-prof-dir', dir, ...spec.args], { encoding: 'utf8', env: CHILD_ENV });
    if (r.status !== 0) return { error: r.stderr.slice(0, 300) };
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    log(`(${what}) profile: ${join(dir, file)}`);
    return { command: `node --cpu-prof ${relative(ROOT, READER_BIN)} ddrescue ${spec.args.slice(2).map((x) => (x.startsWith(tmp) ? relative(tmp, x) : x)).join(' ')}`, ...profileSummary(join(dir, file)) };
  }

  // ------------------------------------------------------------ (b), (c)
  let testInfo = null;
  if (opt.only.has('b') || opt.only.has('c')) {
    const input = join(tmp, 'test.in');
    const testMap = join(tmp, 'test.testmap');
    let t = nowMs();
    writeRandomFile(input, opt.testSize);
    warm(input);
    testInfo = writeTestMap(testMap, opt.testSize, opt.badSectors, opt.bigAreas, opt.seed);
    log(`(b/c) input: ${fmtSize(opt.testSize)}; test map: ${testInfo.blocks} blocks, ${testInfo.badAreas} bad areas, ${testInfo.scatteredSectors} scattered bad sectors, ${fmtSize(testInfo.bigBadBytes)} in ${opt.bigAreas} big areas (${((nowMs() - t) / 1000).toFixed(1)} s)`);

    for (const [sec, extra, title] of [['b', [], ''], ['c', ['-b', '4096'], ' with -b 4096']]) {
      if (!opt.only.has(sec)) continue;
      const out = join(tmp, `${sec}.out`);
      const map = join(tmp, `${sec}.map`);
      const readLog = join(tmp, `${sec}.reads`);
      const refOut = join(tmp, `${sec}.ref.out`);
      const ref = { map: null, reads: null };
      const clean = () => {
        for (const f of [out, map, readLog]) rmSync(f, { force: true });
      };
      const check = (tool, withLog) => () => {
        const m = readMap(map);
        if (ref.map === null && tool === 'ddrescue') {
          ref.map = m;
          spawnSync('cp', [out, refOut]);
        }
        if (withLog && ref.reads === null && tool === 'ddrescue') ref.reads = readLogDigest(readLog);
        const problems = [];
        if (ref.map === null) problems.push('no ddrescue map to compare with yet');
        else {
          if (m.blocks !== ref.map.blocks) problems.push('final map blocks differ from ddrescue\'s');
          if (m.status !== ref.map.status) problems.push(`status line '${m.status}' differs from ddrescue's '${ref.map.status}'`);
          if (!same(out, refOut)) problems.push('output differs from ddrescue\'s (cmp)');
        }
        if (withLog && ref.reads !== null) {
          const d = readLogDigest(readLog);
          if (d.sha !== ref.reads.sha) problems.push(`read log differs from ddrescue's (${d.reads} reads, ddrescue ${ref.reads.reads})`);
        }
        return problems.length ? problems.join('; ') : null;
      };
      const common = ['-q', ...extra, '-H', testMap];
      const flags = `-q ${extra.join(' ')}${extra.length ? ' ' : ''}-H TESTMAP`;
      const cases = [
        { id: `${sec}-ddrescue`, label: `\`ddrescue ${flags} IN OUT MAP\``, tool: 'ddrescue', spec: () => ddrescue(...common, input, out, map), check: check('ddrescue', false) },
        { id: `${sec}-ours`, label: `\`ddferry-reader ddrescue ${flags} IN OUT MAP\``, tool: 'ours', spec: () => ours(...common, input, out, map), check: check('ours', false) },
        { id: `${sec}-ddrescue-log`, label: `\`ddrescue ${flags} --log-reads=LOG IN OUT MAP\``, tool: 'ddrescue', spec: () => ddrescue(...common, `--log-reads=${readLog}`, input, out, map), check: check('ddrescue', true) },
        { id: `${sec}-ours-log`, label: `\`ddferry-reader ddrescue ${flags} --log-reads=LOG IN OUT MAP\``, tool: 'ours', spec: () => ours(...common, `--log-reads=${readLog}`, input, out, map), check: check('ours', true) },
      ].map((c) => ({ ...c, clean }));
      t = nowMs();
      runRounds(cases);
      log(`(${sec}) done in ${((nowMs() - t) / 1000).toFixed(0)} s`);
      const mapBlocks = ref.map ? ref.map.blocks.split('\n').length : null;
      sections.push({
        id: sec,
        title: `(${sec}) test-mode rescue of ${fmtSize(opt.testSize)} with many bad areas${title}`,
        rows: cases.map((c) => c.id),
        reads: ref.reads?.reads ?? null,
        ratios: [
          ['ours / ddrescue', `${sec}-ours`, `${sec}-ddrescue`],
          ['ours / ddrescue, both --log-reads', `${sec}-ours-log`, `${sec}-ddrescue-log`],
        ],
        notes: [
          `test map: ${testInfo.blocks.toLocaleString('en')} blocks, ${testInfo.badAreas.toLocaleString('en')} bad areas: ${testInfo.scatteredSectors.toLocaleString('en')} scattered bad sectors and ${opt.bigAreas} big areas (${fmtSize(testInfo.bigBadBytes)}); seed ${opt.seed}.`,
          `${ref.reads?.reads?.toLocaleString('en') ?? '?'} reads per rescue (counted in ddrescue's --log-reads); final map of ${mapBlocks?.toLocaleString('en') ?? '?'} blocks, status line \`${ref.map?.status ?? '?'}\`.`,
          'check: every run\'s final map has the same blocks and status line as the first ddrescue run\'s, its output equals that run\'s output (`cmp`), and with --log-reads its read lines (`0x...`) equal ddrescue\'s, in order.',
        ],
      });
      if (opt.profile && sec === 'b') {
        clean();
        sections.at(-1).profile = profileRun('b', ours(...common, input, out, map));
        clean();
      }
      rmSync(refOut, { force: true });
    }
  }

  // ------------------------------------------------------------ report
  const totalS = (nowMs() - t00) / 1000;
  const stat = (id) => {
    const r = results[id];
    if (!r) return {};
    const okRuns = r.runs;
    return {
      n: okRuns.length,
      min: min(okRuns.map((x) => x.wallMs)),
      med: median(okRuns.map((x) => x.wallMs)),
      rss: median(okRuns.map((x) => x.maxRssKiB)),
      cpu: median(okRuns.map((x) => x.cpuS)),
      checked: `${r.checks.filter((p) => p === null).length}/${opt.runs}`,
      allOk: r.errors.length === 0 && r.checks.every((p) => p === null),
    };
  };
  const out = [];
  out.push('# `ddferry-reader ddrescue` benchmark results', '');
  out.push(`Written by \`node scripts/bench/reader.mjs${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\` on ${env.date.slice(0, 10)}; `
    + 'running it again replaces this file. How it measures: the Benchmarks README (scripts/bench/README.md), section reader.mjs.', '');
  out.push('## Machine', '');
  out.push(mdTable(['', ''], [
    ['nproc', String(env.nproc)],
    ['CPU', env.cpu ?? '?'],
    ['memory', `${env.memoryGiB} GiB`],
    ['kernel', env.kernel],
    ['Node', env.node],
    ['ddrescue', env.ddrescue],
    ['dd', env.dd ?? '?'],
    ['temp folder file system', `${env.fs}`],
    ['ours (what ran)', env.build],
    ['peak RSS and CPU from', useTime ? '`/usr/bin/time -f \'%e %M %U %S\'`' : 'our children\'s process.resourceUsage() (ddrescue and dd: not measured)'],
    ['load average (1, 5, 15 min) at start / end', `${env.loadStart} / ${loadavg().map((x) => x.toFixed(2)).join(' ')}`],
    ['runs per command', String(opt.runs)],
    ['whole bench', `${totalS.toFixed(0)} s`],
  ], [false, false]), '');
  const nodeStat = stat('node');
  out.push(`Wall time is measured in the parent (process.hrtime around each child). Every command runs in its own process, so start-up is included: Node's alone (\`node -e ''\`) takes ${fmtS(nodeStat.med)} and ${fmtMiB(nodeStat.rss)}, and with our modules loaded (\`ddferry-reader ddrescue -V\`) ${fmtS(stat('ours-version').med)} and ${fmtMiB(stat('ours-version').rss)} (medians)${env.nodeExtraCaCerts ? '; NODE_EXTRA_CA_CERTS, set here, is removed from the children\'s environment (it would add about 0.08 s to each Node start-up)' : ''}. "checked" counts the runs whose result was verified correct.`, '');
  const anyFail = [];
  for (const s of sections) {
    out.push(`## ${s.title}`, '');
    const head = ['command', 'wall min', 'wall median', s.size ? 'MiB/s (median)' : 'µs/read (median)', 'peak RSS (median)', 'CPU user+sys (median)', 'checked'];
    const rows = s.rows.map((id) => {
      const st = stat(id);
      if (!st.allOk) anyFail.push(id);
      const speed = s.size ? (st.med ? (s.size / MiB / (st.med / 1000)).toFixed(0) : '—')
        : (st.med && s.reads ? ((st.med * 1000) / s.reads).toFixed(2) : '—');
      return [results[id].label, fmtS(st.min), fmtS(st.med), speed, fmtMiB(st.rss), fmtCpu(st.cpu), st.allOk ? st.checked : `**${st.checked} FAILED**`];
    });
    out.push(mdTable(head, rows, head.map((_, i) => i > 0)), '');
    const rhead = ['ratio', 'wall min', 'wall median', 'peak RSS', 'CPU'];
    out.push(mdTable(rhead, s.ratios.map(([label, a, b]) => {
      const x = stat(a);
      const y = stat(b);
      return [label, fmtRatio(x.min, y.min), fmtRatio(x.med, y.med), fmtRatio(x.rss, y.rss), fmtRatio(x.cpu, y.cpu)];
    })), '');
    for (const n of s.notes) out.push(`* ${n}`);
    for (const id of s.rows) {
      for (const e of results[id].errors) out.push(`* **${id} failed**: ${e}`);
      results[id].checks.forEach((p, i) => {
        if (p) out.push(`* **${id} check failed** (run ${i + 1}): ${p}`);
      });
    }
    out.push('');
    if (s.profile) {
      const p = s.profile;
      if (p.error) out.push(`Profile failed: ${p.error}`, '');
      else {
        out.push(`Profile of one run of ours: \`${p.command}\` (${fmtS(p.totalMs)} sampled).`, '');
        out.push(mdTable(['self time', '%', 'function'], p.self.map((f) => [`${f.ms.toFixed(0)} ms`, f.pct.toFixed(1), `\`${f.fn}\``]), [true, true, false]), '');
        out.push(mdTable(['total time', '%', 'function (ours)'], p.total.map((f) => [`${f.ms.toFixed(0)} ms`, f.pct.toFixed(1), `\`${f.fn}\``]), [true, true, false]), '');
      }
    }
  }
  const text = `${out.join('\n').trimEnd()}\n`;
  process.stdout.write(text);
  if (opt.out) {
    writeFileSync(opt.out, text);
    log(`results: ${relative(process.cwd(), opt.out) || opt.out}`);
  }
  if (anyFail.length) log(`warning: failed runs or checks in ${anyFail.join(', ')}: these figures compare wrong results`);
  if (opt.keep) log(`kept temp files in ${tmp}`);
}

await main();
