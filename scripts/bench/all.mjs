#!/usr/bin/env node
// The six figures of the benchmarks, each next to its peer measured in the same run, as one table.
//
//   lan      1  LAN end to end: ddferry-reader rescue --to ws:// into ddferry-assembler serve, vs socat -u + sync
//   import   2  stick import: ddferry-assembler import DIR IMAGE, vs ddrescue -m of the same bytes (chunk files) + sync
//   copy     3  healthy copy: ddferry-reader ddrescue vs GNU ddrescue, buffered and with -d (O_DIRECT)
//   scrape   4  test mode full of bad sectors (trimming, scraping): µs per read, ours vs GNU ddrescue
//   mapfile  5  a mapfile of 1M blocks: load+save, ours vs ddrescuelog -a '?,?'; peak RSS
//   rss      6  peak RSS of the reader and the assembler over the LAN, for a 1 GiB and an 8 GiB source
//
// Within a figure the variants alternate (A B, then B A, ...) for --rounds rounds; the table shows
// medians. On a shared machine the wall times move with the load, so only the ratios of one run mean
// something. Every run's output is checked (cmp against the source or the reference). It never fails
// on a time: it exits 2 if a tool is missing (naming its apt package) and 1 if a run failed or its
// output was wrong. Prints the table (markdown) on stdout, progress on stderr, and writes
// scripts/bench/results.md. How each row is measured: scripts/bench/README.md, section all.mjs.
//
// Usage: node scripts/bench/all.mjs [--quick] [--only lan,import,copy,scrape,mapfile,rss] [--rounds N]
//        [--tmp DIR] [--keep] [--out FILE] [--no-write]
// Build first: npx tsc -b
import { spawnSync } from 'node:child_process';
import {
  existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, truncateSync, writeFileSync,
} from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  ASSEMBLER, buildInfo, chunkFilesOf, fmtSize, generateMapfile, GiB, mapfileBody, mdTable, median, MiB, min, nowMs, READER, readLogDigest,
  readMap, removeImage, ROOT, runLanDdferry, runMeasured, runSocat, runSteps, same, stickOf, TIME_BIN, tokenOf, toolVersion, warm, writeRandomFile,
  writeTestMap,
} from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const MAPFILE_CHILD = join(HERE, 'mapfile-child.mjs');
const NODE = process.execPath;
const FIGURES = ['lan', 'import', 'copy', 'scrape', 'mapfile', 'rss'];
const TEST_SEED = 20261125; // reader.mjs's test map
const MAP_SEED = 20261123; // mapfile.mjs's mapfile
const RSS_GOAL_KIB = 150 * 1024;
/** Peak RSS counts as "the same for both sizes" within this factor. */
const RSS_SAME = 1.1;
const READER_RSS_NOTE = 'GNU time\'s peak RSS is that of the largest process of the tree: the reader\'s reading child process (about 54 MiB) is not added.';

const log = (s) => process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------
const USAGE = `Usage: node scripts/bench/all.mjs [--quick] [--only ${FIGURES.join(',')}] [--rounds N]\n`
  + '       [--tmp DIR] [--keep] [--out FILE] [--no-write]\n';

function usage(error) {
  if (error) {
    process.stderr.write(`all.mjs: ${error}\n${USAGE}`);
    process.exit(2);
  }
  process.stdout.write(USAGE);
  process.exit(0);
}

/** The sizes of the issue, and --quick's (a smoke run of a few minutes). */
const FULL = {
  lan: 512 * MiB, import: 512 * MiB, copy: GiB, testSize: 256 * MiB, badSectors: 20000, blocks: 1_000_000, rssSizes: [GiB, 8 * GiB], rounds: 3,
};
const QUICK = {
  lan: 64 * MiB, import: 64 * MiB, copy: 128 * MiB, testSize: 16 * MiB, badSectors: 2000, blocks: 100_000, rssSizes: [64 * MiB, 512 * MiB], rounds: 2,
};

function parseOptions(argv) {
  const o = { quick: false, only: new Set(FIGURES), rounds: null, tmp: tmpdir(), keep: false, out: join(HERE, 'results.md') };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--only') {
      o.only = new Set((argv[++i] ?? '').split(',').filter(Boolean));
      if (o.only.size === 0 || [...o.only].some((s) => !FIGURES.includes(s))) usage(`--only takes a comma list of ${FIGURES.join(', ')}`);
    } else if (a === '--rounds') {
      o.rounds = Number(argv[++i]);
      if (!Number.isSafeInteger(o.rounds) || o.rounds < 1) usage('--rounds needs an integer >= 1');
    } else if (a === '--tmp') o.tmp = resolve(argv[++i] ?? usage('--tmp needs a folder'));
    else if (a === '--keep') o.keep = true;
    else if (a === '--out') o.out = resolve(argv[++i] ?? usage('--out needs a file'));
    else if (a === '--no-write') o.out = null;
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown option ${a}`);
  }
  const sizes = o.quick ? QUICK : FULL;
  return { ...o, ...sizes, rounds: o.rounds ?? sizes.rounds };
}

/** The tools each figure needs, with their apt package. */
const TOOLS = {
  lan: [['socat', '-V', 'socat']],
  import: [['ddrescue', '--version', 'gddrescue']],
  copy: [['ddrescue', '--version', 'gddrescue']],
  scrape: [['ddrescue', '--version', 'gddrescue']],
  mapfile: [['ddrescuelog', '--version', 'gddrescue']],
  rss: [],
};

function checkTools(only) {
  const missing = [];
  if (!existsSync(TIME_BIN)) missing.push(`GNU time (${TIME_BIN}, for peak RSS): apt-get install time`);
  for (const [cmd, flag, pkg] of [['cmp', '--version', 'diffutils'], ['sync', '--version', 'coreutils'], ...[...only].flatMap((f) => TOOLS[f])]) {
    if (toolVersion(cmd, flag) === null && !missing.some((m) => m.startsWith(`${cmd} `))) missing.push(`${cmd} is missing: apt-get install ${pkg}`);
  }
  for (const [file, what] of [[join(ROOT, 'packages/reader/dist/main.js'), 'the reader'], [join(ROOT, 'packages/assembler/dist/main.js'), 'the assembler'],
    [join(ROOT, 'packages/mapfile/dist/io.js'), 'the mapfile package']]) {
    if (!existsSync(file)) missing.push(`${what} is not built (${relative(ROOT, file)}): run npx tsc -b`);
  }
  return missing;
}

// ---------------------------------------------------------------------------
// Measuring and formatting
// ---------------------------------------------------------------------------
const fmtS = (ms) => (ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(2)} s`);
const fmtMiB = (kib) => (kib === null || kib === undefined ? '—' : `${(kib / 1024).toFixed(1)} MiB`);
const fmtX = (r) => (r === null || r === undefined || !Number.isFinite(r) ? '—' : `${r.toFixed(2)}x`);
const ratio = (a, b) => (a === null || b === null || a === undefined || b === undefined || !b ? null : a / b);
/** Whether a measured value is at most `limit` (not when it was not measured). */
const within = (x, limit) => typeof x === 'number' && Number.isFinite(x) && x <= limit;

/**
 * Run each variant `rounds` times, alternating: A B C, then C B A, ... `prepare` runs untimed before
 * each run, then the temp file system is flushed (`sync -f`: on a file system mounted with discard,
 * freeing the last output would otherwise land in the next run's fsync). `run` returns
 * `{ wallMs, rss: { who: KiB } }` and throws if the run failed or its output is wrong.
 * Returns, per variant, the median and min wall time and the median peak RSS of each process.
 */
async function alternate(variants, rounds, dir) {
  const runs = new Map(variants.map((v) => [v.name, []]));
  for (let round = 0; round < rounds; ++round) {
    for (const v of round % 2 === 0 ? variants : [...variants].reverse()) {
      v.prepare?.();
      spawnSync('sync', ['-f', dir]);
      const r = await v.run();
      runs.get(v.name).push(r);
      log(`  round ${round + 1}/${rounds} ${v.name}: ${fmtS(r.wallMs)}, peak RSS ${Object.entries(r.rss).map(([k, x]) => `${k} ${fmtMiB(x)}`).join(', ')}`);
    }
  }
  const out = {};
  for (const [name, rs] of runs) {
    out[name] = {
      med: median(rs.map((r) => r.wallMs)), min: min(rs.map((r) => r.wallMs)), runs: rs,
      rss: Object.fromEntries(Object.keys(rs[0].rss).map((who) => [who, median(rs.map((r) => r.rss[who]))])),
    };
  }
  return out;
}

/** A measured command as a run: throws if it failed or `check` finds its output wrong. */
function measured(cmd, args, who, check, opts) {
  const r = runMeasured(cmd, args, opts);
  if (!r.ok) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(0, 400)}`);
  const problem = check?.(r);
  if (problem) throw new Error(`wrong output: ${problem}`);
  return { wallMs: r.wallMs, rss: { [who]: r.maxRssKiB }, stdout: r.stdout };
}

const rssList = (rss) => Object.entries(rss).map(([who, kib]) => `${who} ${fmtMiB(kib)}`).join(' + ');

// ---------------------------------------------------------------------------
// 1. LAN end to end
// ---------------------------------------------------------------------------
async function figureLan(o, dir) {
  const src = join(dir, 'lan.src');
  const out = join(dir, 'lan.out');
  writeRandomFile(src, o.lan);
  warm(src);
  log(`1 lan: ${fmtSize(o.lan)} of random data over 127.0.0.1, ${o.rounds} round(s)`);
  const s = await alternate([
    { name: 'socat', run: () => runSocat(src, out) },
    { name: 'ddferry', run: () => runLanDdferry(src, dir, 'lan') },
  ], o.rounds, dir);
  rmSync(src, { force: true });
  rmSync(out, { force: true });
  const r = ratio(s.ddferry.med, s.socat.med);
  return [{
    fig: '1', path: `LAN end to end, ${fmtSize(o.lan)}`, ours: fmtS(s.ddferry.med), peer: `socat + sync ${fmtS(s.socat.med)}`, ratio: r, goal: '≤ 1.3x',
    met: within(r, 1.3), rss: `${rssList(s.ddferry.rss)} / ${rssList(s.socat.rss)}`,
    note: `reader → assembler over ws://127.0.0.1 (\`ddferry-reader rescue JOB --to ws://…\` into \`ddferry-assembler serve IMAGE\`), from the reader's start to its exit (every piece written, fsynced and mapped), vs \`socat -u\` into \`socat -u TCP-LISTEN\` then \`sync OUT\`; min ${fmtS(s.ddferry.min)} vs ${fmtS(s.socat.min)}; image cmp'd with the source after every run. ${READER_RSS_NOTE}`,
  }];
}

// ---------------------------------------------------------------------------
// 2. Stick import
// ---------------------------------------------------------------------------
async function figureImport(o, dir) {
  const source = join(dir, 'stick.src');
  writeRandomFile(source, o.import);
  log(`2 import: writing the sticks of a ${fmtSize(o.import)} source (bundles, ddrescue-chunks)…`);
  const bundles = stickOf(source, dir, 'stick-bundles');
  const chunks = chunkFilesOf(stickOf(source, dir, 'stick-chunks', ['--format', 'ddrescue-chunks']).folder);
  if (chunks.some((f) => f.packed)) throw new Error('the temp folder made packed chunk files: give --tmp on a file system with sparse files');
  const img = (n) => join(dir, `${n}.img`);
  const clean = (n) => () => {
    removeImage(img(n));
    rmSync(join(bundles.folder, 'receipts'), { recursive: true, force: true });
  };
  const bundleFiles = readdirSync(bundles.folder).filter((n) => n.endsWith('.tar')).length;
  const tripRss = bundles.trip.maxRssKiB;
  const stepsRun = (n, who, steps) => () => {
    const r = runSteps(steps);
    if (!r.ok) throw new Error(r.stderr.slice(0, 400));
    if (!same(img(n), source)) throw new Error(`wrong output: ${n}: the image differs from the source`);
    return { wallMs: r.wallMs, rss: { [who]: r.maxRssKiB } };
  };
  const gnuSteps = [...chunks.map((f) => ['ddrescue', ['-q', '-m', f.map, f.raw, img('gnu'), `${img('gnu')}.map`]]), ['sync', [img('gnu')]]];
  log(`2 import: ${chunks.length} chunk files; ${o.rounds} round(s)`);
  const s = await alternate([
    { name: 'ddferry', prepare: clean('ours'), run: stepsRun('ours', 'assembler', [[NODE, [ASSEMBLER, 'import', bundles.stick, img('ours'), '--token-file', tokenOf(dir)]]]) },
    { name: 'ddrescue', prepare: clean('gnu'), run: stepsRun('gnu', 'ddrescue', gnuSteps) },
  ], o.rounds, dir);
  clean('ours')();
  clean('gnu')();
  rmSync(join(dir, 'stick-bundles'), { recursive: true, force: true });
  rmSync(join(dir, 'stick-chunks'), { recursive: true, force: true });
  rmSync(source, { force: true });
  const r = ratio(s.ddferry.med, s.ddrescue.med);
  return [{
    fig: '2', path: `Stick import, ${fmtSize(o.import)}`, ours: fmtS(s.ddferry.med), peer: `ddrescue -m + sync ${fmtS(s.ddrescue.med)}`, ratio: r, goal: '≤ 1.0x',
    met: within(r, 1.0), rss: `${rssList(s.ddferry.rss)} / ${rssList(s.ddrescue.rss)}`,
    note: `\`ddferry-assembler import STICK IMAGE\` of the tar bundles \`ddferry-reader rescue JOB --to STICK\` wrote (seals and hashes checked, fsynced), vs \`ddrescue -q -m X.map X.raw IMAGE IMAGE.map\` for each of the ${chunks.length} chunk files \`--format ddrescue-chunks\` wrote of the same source, then \`sync IMAGE\`; page cache warm; min ${fmtS(s.ddferry.min)} vs ${fmtS(s.ddrescue.min)}; both images cmp'd with the source after every run.`,
  }, {
    fig: '2b', path: `Peak RSS, reader, stick trip of ${fmtSize(o.import)}`, ours: fmtMiB(tripRss), peer: '—', ratio: null, goal: '≤ 150 MiB',
    met: within(tripRss, RSS_GOAL_KIB), rss: `reader ${fmtMiB(tripRss)}`,
    note: `the reader's peak RSS (GNU time) in the \`ddferry-reader rescue JOB --to STICK\` that wrote the stick of row 2 (${bundleFiles} bundles, a folder of the temp file system: pieces at their largest) in ${fmtS(bundles.trip.wallMs)}; one run. ${READER_RSS_NOTE}`,
  }];
}

// ---------------------------------------------------------------------------
// 3. Healthy copy
// ---------------------------------------------------------------------------
async function figureCopy(o, dir) {
  const input = join(dir, 'copy.in');
  const out = join(dir, 'copy.out');
  const map = join(dir, 'copy.map');
  writeRandomFile(input, o.copy);
  warm(input);
  const clean = () => {
    rmSync(out, { force: true });
    rmSync(map, { force: true });
  };
  const whole = `0x00000000 0x${o.copy.toString(16).toUpperCase().padStart(8, '0')} +`;
  const check = () => {
    if (!same(input, out)) return 'the output differs from the input (cmp)';
    const m = readMap(map);
    return m.blocks === whole ? null : `the final map is not one finished block: ${m.blocks.slice(0, 120)}`;
  };
  const ours = (...a) => () => measured(NODE, [READER, 'ddrescue', '-q', ...a, input, out, map], 'reader', check);
  const gnu = (...a) => () => measured('ddrescue', ['-q', ...a, input, out, map], 'ddrescue', check);
  log(`3 copy: ${fmtSize(o.copy)} of random data, page cache warm; ${o.rounds} round(s)`);
  const s = await alternate([
    { name: 'ours', prepare: clean, run: ours() },
    { name: 'gnu', prepare: clean, run: gnu() },
    { name: 'ours -d', prepare: clean, run: ours('-d') },
    { name: 'gnu -d', prepare: clean, run: gnu('-d') },
  ], o.rounds, dir);
  clean();
  rmSync(input, { force: true });
  const row = (fig, what, a, b, flag) => {
    const r = ratio(s[a].med, s[b].med);
    return {
      fig, path: `Healthy copy, ${fmtSize(o.copy)}, ${what}`, ours: fmtS(s[a].med), peer: `ddrescue${flag} ${fmtS(s[b].med)}`, ratio: r, goal: '≤ 0.9x',
      met: within(r, 0.9), rss: `${rssList(s[a].rss)} / ${rssList(s[b].rss)}`,
      note: `\`ddferry-reader ddrescue -q${flag} IN OUT MAP\` vs \`ddrescue -q${flag} IN OUT MAP\` (both fsync the output), the whole process (Node start-up included); min ${fmtS(s[a].min)} vs ${fmtS(s[b].min)}; output cmp'd with the input and the final map one \`+\` block after every run.`,
    };
  };
  return [row('3a', 'buffered', 'ours', 'gnu', ''), row('3b', 'O_DIRECT', 'ours -d', 'gnu -d', ' -d')];
}

// ---------------------------------------------------------------------------
// 4. Scraping-heavy test mode
// ---------------------------------------------------------------------------
async function figureScrape(o, dir) {
  const input = join(dir, 'test.in');
  const testMap = join(dir, 'test.testmap');
  const out = join(dir, 'test.out');
  const map = join(dir, 'test.map');
  const refOut = join(dir, 'test.ref.out');
  const refMap = join(dir, 'test.ref.map');
  const readLog = join(dir, 'test.reads');
  writeRandomFile(input, o.testSize);
  warm(input);
  const info = writeTestMap(testMap, o.testSize, o.badSectors, 6, TEST_SEED);
  // the reference, untimed: GNU ddrescue's result and its reads
  const ref = runMeasured('ddrescue', ['-q', '-H', testMap, `--log-reads=${readLog}`, input, refOut, refMap]);
  if (!ref.ok) throw new Error(`the reference ddrescue run failed: ${ref.stderr}`);
  const { reads } = readLogDigest(readLog);
  const want = readMap(refMap);
  const clean = () => {
    rmSync(out, { force: true });
    rmSync(map, { force: true });
  };
  const check = () => {
    const m = readMap(map);
    if (m.blocks !== want.blocks || m.status !== want.status) return 'the final map differs from the reference ddrescue run\'s';
    return same(out, refOut) ? null : 'the output differs from the reference ddrescue run\'s (cmp)';
  };
  log(`4 scrape: ${fmtSize(o.testSize)}, test map of ${info.blocks} blocks (${info.scatteredSectors} scattered bad sectors, 6 big areas), ${reads} reads; ${o.rounds} round(s)`);
  const args = ['-q', '-H', testMap, input, out, map];
  const s = await alternate([
    { name: 'gnu', prepare: clean, run: () => measured('ddrescue', args, 'ddrescue', check) },
    { name: 'ours', prepare: clean, run: () => measured(NODE, [READER, 'ddrescue', ...args], 'reader', check) },
  ], o.rounds, dir);
  for (const f of [input, testMap, out, map, refOut, refMap, readLog]) rmSync(f, { force: true });
  const us = (ms) => (ms === null ? null : (ms * 1000) / reads);
  const r = ratio(s.ours.med, s.gnu.med);
  return [{
    fig: '4', path: `Test mode, scraping-heavy, ${fmtSize(o.testSize)}`, ours: `${us(s.ours.med).toFixed(2)} µs/read`, peer: `ddrescue ${us(s.gnu.med).toFixed(2)} µs/read`,
    ratio: r, goal: '≤ 1.2x', met: within(r, 1.2), rss: `${rssList(s.ours.rss)} / ${rssList(s.gnu.rss)}`,
    note: `\`-q -H TESTMAP IN OUT MAP\`, ours vs ddrescue: median wall time of the whole process / ${reads.toLocaleString('en')} reads (counted in an untimed reference ddrescue run's --log-reads); test map of ${info.blocks.toLocaleString('en')} blocks: ${info.scatteredSectors.toLocaleString('en')} scattered bad sectors and 6 big bad areas (seed ${TEST_SEED}); every run's final map equals the reference's and its output is cmp'd with the reference output.`,
  }];
}

// ---------------------------------------------------------------------------
// 5. Mapfile of 1M blocks
// ---------------------------------------------------------------------------
async function figureMapfile(o, dir) {
  const mapPath = join(dir, 'disk.map');
  const oursOut = join(dir, 'ours.map');
  const gnuOut = join(dir, 'gnu.map');
  generateMapfile(mapPath, o.blocks, MAP_SEED);
  const n = o.blocks.toLocaleString('en');
  log(`5 mapfile: ${n} blocks; ${o.rounds} round(s)`);
  const inProcess = [];
  const s = await alternate([
    {
      name: 'ours',
      run: () => {
        const r = measured(NODE, [MAPFILE_CHILD, 'load+save', mapPath, oursOut, String(MAP_SEED), '0'], 'ours');
        inProcess.push(JSON.parse(r.stdout.trim().split('\n').pop()).phases.loadSave);
        return r;
      },
    },
    { name: 'ddrescuelog', run: () => measured('ddrescuelog', ['-a', '?,?', mapPath], 'ddrescuelog', null, { stdoutFile: gnuOut }) },
  ], o.rounds, dir);
  const sameBody = mapfileBody(readFileSync(oursOut, 'latin1')) === mapfileBody(readFileSync(gnuOut, 'latin1'));
  for (const f of [mapPath, oursOut, gnuOut]) rmSync(f, { force: true });
  if (!sameBody) throw new Error('wrong output: our saved mapfile differs from ddrescuelog -a \'?,?\' (from # current_pos on)');
  const oursMs = median(inProcess);
  const r = ratio(oursMs, s.ddrescuelog.med);
  const rr = ratio(s.ours.rss.ours, s.ddrescuelog.rss.ddrescuelog);
  const rss = `${fmtMiB(s.ours.rss.ours)} / ${fmtMiB(s.ddrescuelog.rss.ddrescuelog)}`;
  return [{
    fig: '5a', path: `Mapfile of ${n} blocks, load+save time`, ours: fmtS(oursMs), peer: `ddrescuelog -a ${fmtS(s.ddrescuelog.med)}`, ratio: r, goal: '≤ 1 s',
    met: within(oursMs, 1000), rss,
    note: `ours: \`readMapfile\` + \`new StatusMap\` + \`formatMapfileChunks\` written to a file, timed inside the child (\`mapfile-child.mjs load+save\`); the whole child process took ${fmtS(s.ours.med)} (${fmtX(ratio(s.ours.med, s.ddrescuelog.med))}), Node start-up included; ddrescuelog: \`ddrescuelog -a '?,?' MAP > OUT\`, the whole process; the two outputs are equal from \`# current_pos\` on.`,
  }, {
    fig: '5b', path: `Mapfile of ${n} blocks, peak RSS`, ours: fmtMiB(s.ours.rss.ours), peer: `ddrescuelog ${fmtMiB(s.ddrescuelog.rss.ddrescuelog)}`, ratio: rr,
    goal: '≤ 2x', met: within(rr, 2), rss,
    note: 'peak RSS (GNU time) of the load+save child (Node\'s own baseline, about 40 MiB, included) vs `ddrescuelog -a \'?,?\'`.',
  }];
}

// ---------------------------------------------------------------------------
// 6. Peak RSS at two source sizes
// ---------------------------------------------------------------------------
async function figureRss(o, dir) {
  const [small, big] = o.rssSizes;
  const at = {};
  const sources = {};
  for (const size of o.rssSizes) {
    const src = join(dir, `rss-${fmtSize(size).replace(' ', '')}.src`);
    const { bavail, bsize } = statfsSync(dir);
    // random bytes on disk when the source, the image and 1 GiB to spare fit; else a sparse file (zeros: the same for
    // the reader and the assembler, which do not compress, but the reads of holes skip the disk)
    if (bavail * bsize > 2 * size + GiB) {
      writeRandomFile(src, size);
      sources[size] = 'random';
    } else {
      rmSync(src, { force: true });
      writeFileSync(src, '');
      truncateSync(src, size);
      sources[size] = 'sparse (zeros: not enough free space for random data)';
      log(`6 rss: only ${fmtSize(bavail * bsize)} free: a sparse source of ${fmtSize(size)}`);
    }
    log(`6 rss: ${fmtSize(size)} over 127.0.0.1 (one run)`);
    const t = nowMs();
    const r = await runLanDdferry(src, dir, 'rss');
    rmSync(src, { force: true });
    at[size] = r;
    log(`  ${fmtSize(size)}: ${fmtS(r.wallMs)}, peak RSS ${rssList(r.rss)} (${fmtS(nowMs() - t)} with the cmp)`);
  }
  const row = (fig, who) => {
    const a = at[big].rss[who];
    const b = at[small].rss[who];
    const r = ratio(a, b);
    return {
      fig, path: `Peak RSS, ${who}, ${fmtSize(big)} vs ${fmtSize(small)}`, ours: `${fmtSize(big)}: ${fmtMiB(a)}`, peer: `${fmtSize(small)}: ${fmtMiB(b)}`, ratio: r,
      goal: `≤ 150 MiB, same at both sizes (≤ ${RSS_SAME}x)`, met: within(a, RSS_GOAL_KIB) && within(b, RSS_GOAL_KIB) && within(r, RSS_SAME), rss: `${fmtMiB(b)} → ${fmtMiB(a)}`,
      note: `the ${who}'s peak RSS (GNU time) in one LAN run (\`rescue --to ws://127.0.0.1\` into \`serve\`) of a ${fmtSize(small)} and a ${fmtSize(big)} source (${sources[big]}), the ratio is ${fmtSize(big)} / ${fmtSize(small)}; the copies took ${fmtS(at[small].wallMs)} and ${fmtS(at[big].wallMs)}; each image cmp'd with its source.${who === 'reader' ? ` ${READER_RSS_NOTE}` : ''}`,
    };
  };
  return [row('6a', 'reader'), row('6b', 'assembler')];
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------
const FIGURE_RUNS = { lan: figureLan, import: figureImport, copy: figureCopy, scrape: figureScrape, mapfile: figureMapfile, rss: figureRss };
const FIGURE_PATHS = {
  lan: ['1', 'LAN end to end'], import: ['2', 'Stick import'], copy: ['3', 'Healthy copy'], scrape: ['4', 'Test mode, scraping-heavy'],
  mapfile: ['5', 'Mapfile load+save'], rss: ['6', 'Peak RSS at two sizes'],
};

async function main() {
  const o = parseOptions(process.argv.slice(2));
  const missing = checkTools(o.only);
  if (missing.length) {
    for (const m of missing) log(`all.mjs: ${m}`);
    process.exit(2);
  }
  mkdirSync(o.tmp, { recursive: true });
  const dir = mkdtempSync(join(o.tmp, 'ddferry-bench-all-'));
  const t0 = nowMs();
  const loadStart = loadavg();
  if (loadStart[0] > cpus().length / 4) log(`warning: load average ${loadStart.map((x) => x.toFixed(2)).join(' ')} at start: the wall times will move; compare the ratios`);
  const rows = [];
  const failures = [];
  try {
    for (const f of FIGURES) {
      if (!o.only.has(f)) continue;
      const tf = nowMs();
      try {
        rows.push(...await FIGURE_RUNS[f](o, dir));
      } catch (err) {
        failures.push(`${f}: ${err.message}`);
        log(`${f} FAILED: ${err.message}`);
        const [fig, path] = FIGURE_PATHS[f];
        rows.push({ fig, path, ours: '—', peer: '—', ratio: null, goal: '', met: null, failed: err.message.slice(0, 200), rss: '—', note: `failed: ${err.message}` });
      }
      log(`${f} done in ${((nowMs() - tf) / 1000).toFixed(0)} s`);
    }
  } finally {
    if (o.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  const loadEnd = loadavg();
  const table = mdTable(
    ['#', 'path', 'ddferry', 'peer', 'ratio', 'goal', 'peak RSS ours / peer', 'met?'],
    rows.map((r) => [r.fig, r.path, r.ours, r.peer, fmtX(r.ratio), r.goal, r.rss, r.failed ? '**FAILED**' : r.met === null ? '—' : r.met ? 'yes' : 'no']),
    [false, false, true, true, true, false, false, false],
  );
  const fsType = spawnSync('stat', ['-f', '-c', '%T', o.tmp], { encoding: 'utf8' }).stdout.trim();
  const load = (l) => l.map((x) => x.toFixed(2)).join(' ');
  const md = [
    '# ddferry benchmarks: the six figures (scripts/bench/all.mjs)',
    '',
    `Written by \`node scripts/bench/all.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC in ${((nowMs() - t0) / 60000).toFixed(1)} min; running it again replaces this file. How each row is measured: [README.md](README.md), section all.mjs.`,
    '',
    `- Build: ${buildInfo(ROOT)}.`,
    `- Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / GiB).toFixed(1)} GiB RAM, Linux ${release()}, Node ${process.version}; temp folder ${o.tmp} (${fsType}).`,
    `- Tools: ${['ddrescue', 'ddrescuelog'].map((t) => toolVersion(t) ?? `${t} ?`).join('; ')}; ${toolVersion('socat', '-V')?.replace(/^.*socat version/i, 'socat') ?? 'socat ?'}; peak RSS from GNU time (\`%M\`).`,
    `- Load average (1, 5, 15 min): ${load(loadStart)} at the start, ${load(loadEnd)} at the end (${cpus().length} cores shared with other work: wall times move with the load; each ratio compares runs of the same rounds).`,
    `- ${o.rounds} round(s) per figure, the variants alternating (A B, then B A); medians. Row 6: one run per size.`,
    '',
    table,
    '',
    ...rows.map((r) => `- ${r.fig}: ${r.note}`),
    ...(failures.length ? ['', ...failures.map((f) => `**FAILED** ${f}`)] : []),
    '',
  ].join('\n');
  process.stdout.write(md);
  if (o.out) {
    writeFileSync(o.out, md);
    log(`wrote ${relative(process.cwd(), o.out) || o.out}`);
  }
  if (failures.length) process.exit(1);
}

await main();
