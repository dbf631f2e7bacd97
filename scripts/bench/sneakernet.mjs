#!/usr/bin/env node
// Benchmark of the sneakernet path (USB stick trips) against GNU ddrescue 1.27 and cp.
//
// On the same machine in the same run, each command in its own process, the commands
// alternating within each round (page cache warm: the inputs were just written or read;
// dirty pages of the temp file system are flushed (`sync -f`) before each timed run; caches are not dropped):
//   (a) PC_B, a hand-made chunk: `ddferry-assembler import-ddrescue CHUNK.raw --domain
//       CHUNK.map --map COMMON.map IMAGE` vs `ddrescue -m CHUNK.map CHUNK.raw IMAGE IMAGE.map`
//       (and the same followed by `sync IMAGE`, since ours fsyncs), on a --size chunk
//       (default 1 GiB) of a sparse chunk file with bad areas (holes) in it;
//   (b) PC_B, a --stick-size source (default 256 MiB) written by `ddferry-reader rescue
//       JOB --to DIR` (tar bundles):
//       `ddferry-assembler import DIR IMAGE` vs `ddrescue -m` of each chunk file written by
//       `ddferry-reader rescue JOB --to DIR --format ddrescue-chunks` (the same data),
//       and `import-ddrescue` of those chunk files (all of them in one run);
//   (c) PC_A, writing a --fat-size source onto a real FAT32 file system
//       (default 32 MiB; a loop device, mkfs.vfat -F 32, fusefat): `ddferry-reader rescue JOB --to MNT`
//       (bundles, and --format ddrescue-chunks) vs `cp SOURCE MNT/ && sync MNT/FILE`.
// Reports min and median wall time, peak RSS (GNU time), CPU time and the ratios; writes
// scripts/bench/results-sneakernet.md. Every run's result is checked (image bytes and
// mapfiles). It never asserts on times.
//
// Usage: node scripts/bench/sneakernet.mjs [--size SIZE] [--stick-size SIZE] [--fat-size SIZE] [--runs N]
//        [--only a,b,c] [--tmp DIR] [--keep] [--out FILE] [--no-write]
// Build first: npx tsc -b. Needs root for (c) (losetup, FUSE).
import { spawnSync } from 'node:child_process';
import {
  closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  ASSEMBLER, buildInfo, chunkFilesOf, mapBlocks, mdTable, median, min, must, nowMs, READER, removeImage, ROOT, runSteps, same, stickOf, tokenOf, toolVersion, writeRandom,
  writeRandomFile,
} from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const DEFAULT_OUT = join(HERE, 'results-sneakernet.md');
const MiB = 2 ** 20;
const GiB = 2 ** 30;

const log = (s) => process.stderr.write(`${s}\n`);

const USAGE = 'Usage: node scripts/bench/sneakernet.mjs [--size SIZE] [--stick-size SIZE] [--fat-size SIZE] [--runs N] [--only a,b,c]\n'
  + '       [--tmp DIR] [--keep] [--out FILE] [--no-write]\n'
  + 'SIZE: bytes, or with a suffix K, M, G (powers of 1024); a multiple of 1 MiB.\n';

function usage(error) {
  if (error) {
    process.stderr.write(`sneakernet bench: ${error}\n${USAGE}`);
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
  if (!Number.isSafeInteger(v) || v < 16 * MiB || v % MiB !== 0) usage(`${name} must be a multiple of 1 MiB, at least 16 MiB`);
  return v;
}

function parseOptions(argv) {
  const o = { size: GiB, stickSize: 256 * MiB, fatSize: 32 * MiB, runs: 3, only: new Set(['a', 'b', 'c']), tmp: tmpdir(), keep: false, out: DEFAULT_OUT };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === '--size') o.size = parseSize(argv[++i], a);
    else if (a === '--stick-size') o.stickSize = parseSize(argv[++i], a);
    else if (a === '--fat-size') o.fatSize = parseSize(argv[++i], a);
    else if (a === '--runs') {
      o.runs = Number(argv[++i]);
      if (!Number.isSafeInteger(o.runs) || o.runs < 1) usage('--runs needs an integer >= 1');
    } else if (a === '--only') {
      o.only = new Set((argv[++i] ?? '').split(',').filter(Boolean));
      if (o.only.size === 0 || [...o.only].some((s) => !['a', 'b', 'c'].includes(s))) usage('--only takes a comma list of a, b, c');
    } else if (a === '--tmp') o.tmp = resolve(argv[++i] ?? usage('--tmp needs a folder'));
    else if (a === '--keep') o.keep = true;
    else if (a === '--out') o.out = resolve(argv[++i] ?? usage('--out needs a file'));
    else if (a === '--no-write') o.out = null;
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown option ${a}`);
  }
  return o;
}

// ---------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------
/** Flush the temp file system's dirty pages (`sync -f`: syncfs of that file system only; a global sync can hang on a stale FUSE mount). */
let flushDir = tmpdir();
const flush = () => spawnSync('sync', ['-f', flushDir], { timeout: 120_000 });

const hex = (v) => `0x${v.toString(16).toUpperCase().padStart(8, '0')}`;
function mapfileText(rows, current = '+') {
  return `# Mapfile. Created by scripts/bench/sneakernet.mjs\n${hex(0)}     ${current}               1\n#      pos        size  status\n${rows.map(([p, s, st]) => `${hex(p)}  ${hex(s)}  ${st}`).join('\n')}\n`;
}

/** mulberry32. */
function makeRng(seed) {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const fmtS = (ms) => (ms === null ? '—' : `${(ms / 1000).toFixed(2)} s`);
const fmtMiB = (kib) => (kib === null ? '—' : `${(kib / 1024).toFixed(1)} MiB`);
const fmtCpu = (s) => (s === null ? '—' : `${s.toFixed(2)} s`);
const fmtRate = (bytes, ms) => (ms === null ? '—' : `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`);
const fmtRatio = (a, b) => (a === null || b === null || !b ? '—' : `${(a / b).toFixed(2)}x`);
const fmtSize = (b) => (b % GiB === 0 ? `${b / GiB} GiB` : `${b / MiB} MiB`);

/**
 * Run each variant `runs` times, alternating; `prepare(variant)` runs untimed before each
 * run, `check(variant)` after it (throws on a wrong result). Returns per-variant summaries.
 */
function rounds(variants, runs, bytes) {
  const results = new Map(variants.map((v) => [v.name, []]));
  for (let round = 0; round < runs; ++round) {
    for (const v of round % 2 === 0 ? variants : [...variants].reverse()) {
      v.prepare?.();
      flush();
      const r = runSteps(v.steps());
      if (!r.ok) throw new Error(`${v.name}: ${r.stderr}`);
      v.check?.();
      results.get(v.name).push(r);
      log(`  ${v.name}: ${fmtS(r.wallMs)}, peak RSS ${fmtMiB(r.maxRssKiB)}`);
    }
  }
  return variants.map((v) => {
    const rs = results.get(v.name);
    return {
      name: v.name, command: v.command, minMs: min(rs.map((r) => r.wallMs)), medMs: median(rs.map((r) => r.wallMs)),
      rss: median(rs.map((r) => r.maxRssKiB)), cpu: median(rs.map((r) => r.cpuS)), bytes,
    };
  });
}

function table(summaries, baseName) {
  const base = summaries.find((s) => s.name === baseName);
  return mdTable(
    ['variant', 'min', 'median', 'rate (median)', 'peak RSS', 'CPU', `median / ${baseName}`],
    summaries.map((s) => [s.name, fmtS(s.minMs), fmtS(s.medMs), fmtRate(s.bytes, s.medMs), fmtMiB(s.rss), fmtCpu(s.cpu), fmtRatio(s.medMs, base?.medMs ?? null)]),
  );
}

// ---------------------------------------------------------------------------
// (a) import-ddrescue vs ddrescue -m
// ---------------------------------------------------------------------------
function benchA(o, dir) {
  const size = o.size;
  const pos = size; // chunk 1 of a source of two chunks: the chunk file has a hole before it
  const sourceSize = 2 * size;
  const rng = makeRng(20261201);
  // 24 bad areas of 4 KiB to 1 MiB inside the chunk, none at its end
  const bad = [];
  for (let k = 0; k < 24; ++k) {
    const len = 4096 * (1 + rng(256));
    const p = pos + 512 * rng((size - 2 * MiB) / 512);
    if (!bad.some(([q, l]) => p < q + l + 512 && q < p + len + 512)) bad.push([p, len]);
  }
  bad.sort((x, y) => x[0] - y[0]);
  const rows = [[0, pos, '?']];
  let at = pos;
  for (const [p, len] of bad) {
    rows.push([at, p - at, '+'], [p, len, rows.length % 4 === 1 ? '/' : '-']);
    at = p + len;
  }
  rows.push([at, pos + size - at, '+']);
  writeFileSync(join(dir, 'common.map'), mapfileText(rows));
  writeFileSync(join(dir, 'chunk0001.map'), mapfileText([[0, pos, '?'], [pos, size, '+']]));
  const raw = join(dir, 'chunk0001.raw');
  const fd = openSync(raw, 'w');
  for (const [p, s, st] of rows) if (st === '+') writeRandom(fd, p, s);
  fsyncSync(fd);
  closeSync(fd);
  const oursImg = join(dir, 'ours.img');
  const gnuImg = join(dir, 'gnu.img');
  const clean = (img) => () => {
    removeImage(img);
  };
  const ours = ['node', [ASSEMBLER, 'import-ddrescue', raw, '--domain', join(dir, 'chunk0001.map'), '--map', join(dir, 'common.map'), oursImg]];
  const gnu = ['ddrescue', ['-q', '-m', join(dir, 'chunk0001.map'), raw, gnuImg, `${gnuImg}.map`]];
  const common = mapBlocks(join(dir, 'common.map'));
  const variants = [
    {
      name: 'ours import-ddrescue', command: 'ddferry-assembler import-ddrescue CHUNK.raw --domain CHUNK.map --map COMMON.map IMAGE', prepare: clean(oursImg), steps: () => [ours],
      check: () => {
        if (mapBlocks(`${oursImg}.map`) !== common) throw new Error('IMAGE.map differs from COMMON.map');
      },
    },
    { name: 'ddrescue -m', command: 'ddrescue -q -m CHUNK.map CHUNK.raw IMAGE IMAGE.map', prepare: clean(gnuImg), steps: () => [gnu] },
    { name: 'ddrescue -m + sync', command: 'the same, then sync IMAGE (fsync, as ours does)', prepare: clean(gnuImg), steps: () => [gnu, ['sync', [gnuImg]]] },
  ];
  const warmFd = openSync(raw, 'r');
  closeSync(warmFd);
  log(`(a) a ${fmtSize(size)} chunk at ${pos}: import-ddrescue vs ddrescue -m`);
  const s = rounds(variants, o.runs, size);
  if (!same(oursImg, gnuImg)) throw new Error('the two images differ');
  const badBytes = bad.reduce((n, [, l]) => n + l, 0);
  return {
    title: `(a) PC_B: a hand-made ${fmtSize(size)} chunk (ddrescue -m chunk file), warm page cache`,
    text: `Chunk 1 of a ${fmtSize(sourceSize)} source (${pos} to ${pos + size}): a sparse chunk file with ${bad.length} bad areas (${badBytes} bytes, holes in the file; '-' and '/' in COMMON.map). Ours writes the ${size - badBytes} rescued bytes, fsyncs every 256 MiB and saves IMAGE.map after each fsync; ddrescue copies the whole domain (holes as zeros) without fsync. Both images end byte-identical; ours' IMAGE.map equals COMMON.map.`,
    table: table(s, 'ddrescue -m'), summaries: s,
  };
}

// ---------------------------------------------------------------------------
// (b) import DIR IMAGE vs ddrescue -m of the same data
// ---------------------------------------------------------------------------
function benchB(o, dir) {
  const size = o.stickSize;
  const source = join(dir, 'source.bin');
  writeRandomFile(source, size);
  log(`(b) writing the sticks of a ${fmtSize(size)} source (bundles, ddrescue-chunks)…`);
  const bundles = stickOf(source, dir, 'stick-bundles');
  const chunks = stickOf(source, dir, 'stick-chunks', ['--format', 'ddrescue-chunks']);
  const chunkFiles = chunkFilesOf(chunks.folder);
  if (chunkFiles.some((f) => f.packed)) throw new Error('the temp folder made packed chunk files: give --tmp on a file system with sparse files');
  const img = (n) => join(dir, `${n}.img`);
  const clean = (n) => () => {
    removeImage(img(n));
    rmSync(join(bundles.folder, 'receipts'), { recursive: true, force: true });
  };
  const checkImage = (n) => () => {
    if (!same(img(n), source)) throw new Error(`${n}: the image differs from the source`);
  };
  const variants = [
    { name: 'ours import', command: 'ddferry-assembler import DIR IMAGE (tar bundles of sealed pieces, seals and xxh64 checked)', prepare: clean('import'), steps: () => [['node', [ASSEMBLER, 'import', bundles.stick, img('import'), '--token-file', tokenOf(dir)]]], check: checkImage('import') },
    {
      name: 'ours import-ddrescue', command: 'ddferry-assembler import-ddrescue X.raw --domain X.map Y.raw --domain Y.map … IMAGE (every chunk file, one run)', prepare: clean('importdd'),
      steps: () => [['node', [ASSEMBLER, 'import-ddrescue', ...chunkFiles.flatMap((f) => [f.raw, '--domain', f.map]), img('importdd')]]], check: checkImage('importdd'),
    },
    {
      name: 'ddrescue -m', command: 'ddrescue -q -m X.map X.raw IMAGE IMAGE.map, each chunk file', prepare: clean('gnu'),
      steps: () => chunkFiles.map((f) => ['ddrescue', ['-q', '-m', f.map, f.raw, img('gnu'), `${img('gnu')}.map`]]), check: checkImage('gnu'),
    },
    {
      name: 'ddrescue -m + sync', command: 'the same, then sync IMAGE', prepare: clean('gnu'),
      steps: () => [...chunkFiles.map((f) => ['ddrescue', ['-q', '-m', f.map, f.raw, img('gnu'), `${img('gnu')}.map`]]), ['sync', [img('gnu')]]], check: checkImage('gnu'),
    },
  ];
  log(`(b) ${chunkFiles.length} chunk files, ${readdirSync(bundles.folder).filter((n) => n.endsWith('.tar')).length} bundles`);
  const s = rounds(variants, o.runs, size);
  return {
    title: `(b) PC_B: a stick of ${fmtSize(size)} (written by ddferry-reader rescue --to DIR), warm page cache`,
    text: `A random ${fmtSize(size)} source planned in 256 MiB chunks, rescued onto a folder of the temp file system twice: tar bundles (\`rescue JOB --to DIR\`) and chunk files (\`--format ddrescue-chunks\`, ${chunkFiles.length} sparse files). Every image ends equal to the source.`,
    table: table(s, 'ddrescue -m'), summaries: s,
  };
}

// ---------------------------------------------------------------------------
// (c) writing onto FAT32 vs cp
// ---------------------------------------------------------------------------
function benchC(o, dir) {
  const size = o.fatSize;
  const source = join(dir, 'fat-source.bin');
  writeRandomFile(source, size);
  const fatImg = join(dir, 'fat32.img');
  writeFileSync(fatImg, '');
  must('truncate', ['-s', `${Math.max(256 * MiB, 3 * size + 64 * MiB)}`, fatImg]);
  must('mkfs.vfat', ['-F', '32', fatImg], 'mkfs.vfat -F 32 (apt-get install dosfstools)');
  const loop = must('losetup', ['-f', '--show', fatImg], 'losetup -f --show (needs root and loop devices)').trim();
  const mnt = join(dir, 'fat');
  mkdirSync(mnt);
  let mounted = false;
  try {
    must('fusefat', ['-o', 'rw+', loop, mnt], 'fusefat -o rw+ (apt-get install fusefat fuse3; needs /dev/fuse)');
    mounted = true;
    const clean = () => {
      for (const n of readdirSync(mnt)) rmSync(join(mnt, n), { recursive: true, force: true });
      rmSync(join(dir, 'fat.job'), { recursive: true, force: true });
      must('node', [READER, 'plan', source, join(dir, 'fat.job'), '--chunk-size', '256MiB']);
    };
    const rescued = () => {
      const ddferry = join(mnt, 'ddferry');
      const folder = join(ddferry, readdirSync(ddferry)[0]);
      const bytes = readdirSync(folder).filter((n) => /\.(tar|raw)$/.test(n)).reduce((n, f) => n + statSync(join(folder, f)).size, 0);
      if (bytes < size) throw new Error(`only ${bytes} bytes on the stick`);
      const common = mapBlocks(join(dir, 'fat.job', 'common.map'));
      if (common !== `0 ${size} +`) throw new Error(`common.map is not all rescued: ${common}`);
    };
    const variants = [
      { name: 'ours rescue --to (bundles)', command: 'ddferry-reader rescue JOB --to MNT', prepare: clean, steps: () => [['node', [READER, 'rescue', join(dir, 'fat.job'), '--to', mnt, '--token-file', tokenOf(dir)]]], check: rescued },
      { name: 'ours rescue --to (ddrescue-chunks)', command: 'ddferry-reader rescue JOB --to MNT --format ddrescue-chunks (packed files)', prepare: clean, steps: () => [['node', [READER, 'rescue', join(dir, 'fat.job'), '--to', mnt, '--format', 'ddrescue-chunks', '--token-file', tokenOf(dir)]]], check: rescued },
      {
        name: 'cp + sync', command: 'cp SOURCE MNT/ && sync MNT/FILE', prepare: clean, steps: () => [['cp', [source, join(mnt, 'copy.bin')]], ['sync', [join(mnt, 'copy.bin')]]],
        check: () => {
          if (!same(source, join(mnt, 'copy.bin'))) throw new Error('cp: the copy differs');
        },
      },
    ];
    log(`(c) writing ${fmtSize(size)} onto FAT32 (${loop}, fusefat)`);
    const s = rounds(variants, o.runs, size);
    return {
      title: `(c) PC_A: writing ${fmtSize(size)} onto a FAT32 stick (loop device, mkfs.vfat -F 32, fusefat)`,
      text: `Our reader reads the source (page cache warm), hashes, writes and fsyncs each bundle under a temporary name and renames it, and saves common.map; cp only copies the same bytes (then \`sync FILE\`). fusefat is a single-threaded FUSE file system: both sides are bound by it.`,
      table: table(s, 'cp + sync'), summaries: s,
    };
  } finally {
    if (mounted) {
      const u = spawnSync('fusermount', ['-u', mnt]);
      if (u.status !== 0) spawnSync('umount', ['-l', mnt]);
    }
    spawnSync('losetup', ['-d', loop]);
  }
}

// ---------------------------------------------------------------------------
function main() {
  const o = parseOptions(process.argv.slice(2));
  for (const [bin, what] of [[ASSEMBLER, 'the assembler'], [READER, 'the reader']]) {
    if (!existsSync(bin)) throw new Error(`${what} is not built (${bin}): run npx tsc -b`);
  }
  if (toolVersion('ddrescue') === null) throw new Error('GNU ddrescue is not on PATH: apt-get install gddrescue');
  const dir = mkdtempSync(join(o.tmp, 'ddferry-bench-sneakernet-'));
  flushDir = dir;
  const t0 = nowMs();
  const loadBefore = loadavg()[0];
  const parts = [];
  try {
    if (o.only.has('a')) parts.push(benchA(o, dir));
    if (o.only.has('b')) parts.push(benchB(o, dir));
    if (o.only.has('c')) parts.push(benchC(o, dir));
  } finally {
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
    else log(`kept ${dir}`);
  }
  const fsType = spawnSync('stat', ['-f', '-c', '%T', o.tmp], { encoding: 'utf8' }).stdout.trim();
  const md = [
    '# Sneakernet benchmark (scripts/bench/sneakernet.mjs)',
    '',
    `${new Date().toISOString().slice(0, 19).replace('T', ' ')} UTC; ${buildInfo(ROOT)}.`,
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / GiB).toFixed(1)} GiB RAM, Linux ${release()}, Node ${process.version}; temp folder ${o.tmp} (${fsType}).`,
    `Tools: ${toolVersion('ddrescue')}; ${toolVersion('cp')}. ${o.runs} runs per variant, alternating; min and median wall time; peak RSS and CPU (user + sys) from GNU time, median; a variant of several processes sums their times and shows the largest peak RSS.`,
    `Command: \`node scripts/bench/sneakernet.mjs ${process.argv.slice(2).join(' ')}\` (${((nowMs() - t0) / 1000).toFixed(0)} s in all). Load average (1 min) ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after: with other work on the machine the times spread and every ratio is rough.`,
    '',
    ...parts.flatMap((p) => [`## ${p.title}`, '', p.text, '', p.table, '', ...p.summaries.map((s) => `- ${s.name}: \`${s.command}\``), '']),
  ].join('\n');
  process.stdout.write(`${md}\n`);
  if (o.out) {
    writeFileSync(o.out, md);
    log(`wrote ${o.out}`);
  }
}

main();
