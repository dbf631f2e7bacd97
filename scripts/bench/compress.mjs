#!/usr/bin/env node
// Benchmark of compression (issue 15, "Fewer bytes to carry"): bytes on a stick and LAN time with the
// frames encoded (zero runs, zstd, raw) against the same runs with every byte carried raw
// (`--compress none`, what ddferry did before), and against `zstd -3` of the same source.
//
// The source is shaped like a used system disk: --size bytes (default 512 MiB) in segments of 1 to
// 16 MiB in a fixed shuffled order: 40 % zeros (free space), 40 % OS files (a tar of this machine's
// /usr/lib and /usr/share, cut to size), 20 % random data (photos, archives, encrypted files).
// A second source of --random-size bytes (default 256 MiB) is all random: the worst case, where
// compression must cost (almost) nothing.
//
// On the same machine in the same run, each command in its own process:
//   stick    ddferry-reader rescue JOB --to DIR (a folder standing for the stick), then
//            ddferry-assembler import DIR IMAGE; bytes on the stick = the sizes of all its bundles;
//            zstd vs --compress none; the image compared with the source (cmp)
//   zstd -3  zstd -3 -c SOURCE, its size (and time, one thread)
//   LAN      ddferry-reader rescue JOB --to ws://127.0.0.1:P into ddferry-assembler serve IMAGE,
//            zstd and none alternating within each round; timed from the reader's start to its exit
//            (every piece merged: written, fsynced, IMAGE.map saved); the image compared with the source
// Reports sizes, ratios, min and median wall times; writes scripts/bench/results-compress.md. Never
// asserts on times; exits 1 if an image differs from its source.
//
// Usage: node scripts/bench/compress.mjs [--size MiB] [--random-size MiB] [--runs N] [--tmp DIR] [--keep] [--no-write]
// Build first: npx tsc -b. Needs zstd (apt-get install zstd), tar, cmp and GNU time.
import { spawnSync } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildInfo, freePort, median, min, nowMs, runMeasured, startMeasured, TIME_BIN, toolVersion } from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const READER = join(ROOT, 'packages/reader/bin/ddferry-reader.js');
const ASSEMBLER = join(ROOT, 'packages/assembler/bin/ddferry-assembler.js');
const MiB = 2 ** 20;

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : process.argv[i + 1];
}
const SIZE = Number(option('--size', '512')) * MiB;
const RANDOM_SIZE = Number(option('--random-size', '256')) * MiB;
const RUNS = Number(option('--runs', '3'));
const WRITE = !process.argv.includes('--no-write');
if (!Number.isSafeInteger(SIZE) || SIZE < 64 * MiB || !Number.isSafeInteger(RANDOM_SIZE) || RANDOM_SIZE < 16 * MiB || !Number.isSafeInteger(RUNS) || RUNS < 1) {
  process.stderr.write('Usage: node scripts/bench/compress.mjs [--size MiB (>= 64)] [--random-size MiB (>= 16)] [--runs N] [--tmp DIR] [--keep] [--no-write]\n');
  process.exit(1);
}
const dir = mkdtempSync(join(option('--tmp', tmpdir()), 'ddferry-bench-compress-'));
const log = (s) => process.stderr.write(`${s}\n`);
const MODES = ['zstd', 'none'];

function must(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}

/** A deterministic generator (xorshift32), so every run lays the source out alike. */
function xorshift(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/**
 * The used-disk source: 40 % zeros, 40 % OS files, 20 % random, in shuffled segments of 1 to 16 MiB.
 * @returns the share of each kind, in bytes.
 */
function makeUsedDisk(file) {
  const osFile = join(dir, 'os.tar');
  const osBytes = Math.ceil(SIZE * 0.4);
  must('sh', ['-c', `tar cf - -C / usr/lib usr/share 2>/dev/null | head -c ${osBytes} > '${osFile}'`]);
  const got = statSync(osFile).size;
  if (got < osBytes) throw new Error(`tar of /usr/lib and /usr/share gave ${got} bytes; ${osBytes} are needed: use a smaller --size`);
  const rand = xorshift(15);
  const quota = { zeros: SIZE - osBytes - Math.floor(SIZE * 0.2), os: osBytes, random: Math.floor(SIZE * 0.2) };
  const segments = [];
  for (const [kind, total] of Object.entries(quota)) {
    for (let left = total; left > 0;) {
      const n = Math.min(left, (1 + Math.floor(rand() * 16)) * MiB);
      segments.push({ kind, size: n });
      left -= n;
    }
  }
  for (let i = segments.length - 1; i > 0; --i) {
    const j = Math.floor(rand() * (i + 1));
    [segments[i], segments[j]] = [segments[j], segments[i]];
  }
  const out = openSync(file, 'w');
  const os = openSync(osFile, 'r');
  const buf = Buffer.alloc(MiB);
  const zeros = Buffer.alloc(MiB);
  let osAt = 0;
  for (const s of segments) {
    for (let done = 0; done < s.size; done += MiB) {
      const n = Math.min(MiB, s.size - done);
      if (s.kind === 'zeros') writeSync(out, zeros, 0, n);
      else if (s.kind === 'random') writeSync(out, randomFillSync(buf, 0, n), 0, n);
      else {
        readSync(os, buf, 0, n, osAt);
        osAt += n;
        writeSync(out, buf, 0, n);
      }
    }
  }
  closeSync(os);
  closeSync(out);
  rmSync(osFile);
  return { ...quota, segments: segments.length };
}

function makeRandom(file) {
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(4 * MiB);
  for (let done = 0; done < RANDOM_SIZE; done += buf.length) writeSync(fd, randomFillSync(buf), 0, Math.min(buf.length, RANDOM_SIZE - done));
  closeSync(fd);
}

const same = (a, b) => spawnSync('cmp', ['-s', a, b]).status === 0;

function token() {
  const file = join(dir, 'token');
  if (!existsSync(file)) {
    writeFileSync(file, `${randomBytes(16).toString('hex')}\n`);
    chmodSync(file, 0o600);
  }
  return file;
}

function plan(src, job) {
  rmSync(job, { recursive: true, force: true });
  must(process.execPath, [READER, 'plan', src, job, '--chunk-size', '1GiB']);
}

function clean(image) {
  for (const f of [image, `${image}.map`, `${image}.map.bak`, `${image}.ddferry.json`, `${image}.ddferry.pieces`]) rmSync(f, { force: true });
}

/** Sizes of every file under `folder` whose name matches. */
function bytesUnder(folder, re) {
  let total = 0;
  let files = 0;
  for (const e of readdirSync(folder, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && re.test(e.name)) {
      total += statSync(join(e.parentPath ?? e.path, e.name)).size;
      ++files;
    }
  }
  return { total, files };
}

/** A stick trip into a folder: bytes on the stick, the reader's time. The folder stays for `importStick`. */
function stickTrip(src, mode, tag) {
  const job = join(dir, `job-stick-${tag}-${mode}`);
  const stick = join(dir, `stick-${tag}-${mode}`);
  plan(src, job);
  rmSync(stick, { recursive: true, force: true });
  must('mkdir', ['-p', stick]);
  const rd = runMeasured(process.execPath, [READER, 'rescue', job, '--to', stick, '--token-file', token(), '--compress', mode, '-q']);
  if (!rd.ok) throw new Error(`stick rescue (${mode}) failed (${rd.status}): ${rd.stderr}`);
  const onStick = bytesUnder(stick, /^piece-\d+\.tar$/);
  rmSync(job, { recursive: true, force: true });
  return { stick, bytes: onStick.total, bundles: onStick.files, readMs: rd.wallMs, readCpuS: rd.cpuS, imports: [] };
}

/** `ddferry-assembler import` of a stick folder into a fresh image, the image checked. */
function importStick(src, trip, tag) {
  const image = join(dir, `image-stick-${tag}.raw`);
  clean(image);
  const im = runMeasured(process.execPath, [ASSEMBLER, 'import', trip.stick, image, '--token-file', token()]);
  if (!im.ok) throw new Error(`import failed (${im.status}): ${im.stderr}`);
  const r = { wallMs: im.wallMs, cpuS: im.cpuS, exact: same(src, image), allocated: statSync(image).blocks * 512 };
  clean(image);
  return r;
}

/** One LAN run: reader → assembler over loopback, the image checked. */
async function lanRun(src, mode, tag) {
  const job = join(dir, `job-lan-${tag}-${mode}`);
  const image = join(dir, `image-lan-${tag}-${mode}.raw`);
  plan(src, job);
  clean(image);
  const port = await freePort();
  const asm = startMeasured(process.execPath, [ASSEMBLER, 'serve', image, '--listen', `127.0.0.1:${port}`, '--token-file', token()]);
  for (let i = 0; !/listening/.test(asm.stdout()); ++i) {
    if (i > 400) throw new Error(`the assembler did not start: ${asm.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const t0 = nowMs();
  const rd = runMeasured(process.execPath, [READER, 'rescue', job, '--to', `ws://127.0.0.1:${port}`, '--token-file', token(), '--compress', mode, '-q']);
  const wallMs = nowMs() - t0;
  asm.stop();
  if (!rd.ok) throw new Error(`LAN rescue (${mode}) failed (${rd.status}): ${rd.stderr}`);
  const served = await asm.exited;
  const exact = same(src, image);
  rmSync(job, { recursive: true, force: true });
  clean(image);
  return { wallMs, cpuS: rd.cpuS, asmCpuS: served.cpuS, exact };
}

const fmt = (n) => `${(n / MiB).toFixed(1)} MiB`;
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

let failed = false;
try {
  for (const [tool, flag] of [['zstd', '--version'], ['tar', '--version'], ['cmp', '--version']]) {
    if (toolVersion(tool, flag) === null) throw new Error(`${tool} is missing (apt-get install -y ${tool === 'cmp' ? 'diffutils' : tool})`);
  }
  if (!existsSync(TIME_BIN)) throw new Error('GNU time is missing (apt-get install -y time)');
  const used = join(dir, 'used-disk.bin');
  const random = join(dir, 'random.bin');
  log(`compress bench: a ${SIZE / MiB} MiB used disk and ${RANDOM_SIZE / MiB} MiB of random data, ${RUNS} LAN round(s), in ${dir}`);
  const shares = makeUsedDisk(used);
  makeRandom(random);

  // zstd -3 of the same source, one thread
  const t0 = nowMs();
  const z = must('sh', ['-c', `zstd -3 -T1 -q -c '${used}' | wc -c`]);
  const zstdMs = nowMs() - t0;
  const zstdBytes = Number(z.stdout.trim());

  // stick trips: compressed and raw, on both sources; then imports of each, alternating, RUNS times
  const stick = {};
  const sources = { used, random };
  for (const [tag, src] of Object.entries(sources)) {
    for (const mode of MODES) {
      stick[`${tag}-${mode}`] = stickTrip(src, mode, tag);
      const s = stick[`${tag}-${mode}`];
      log(`  stick ${tag} ${mode}: ${fmt(s.bytes)} in ${s.bundles} bundles, read ${secs(s.readMs)}`);
    }
  }
  for (let round = 0; round < RUNS; ++round) {
    for (const [tag, src] of Object.entries(sources)) {
      for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
        const r = importStick(src, stick[`${tag}-${mode}`], `${tag}-${mode}`);
        stick[`${tag}-${mode}`].imports.push(r);
        if (!r.exact) failed = true;
      }
    }
    log(`  import round ${round + 1}: ${Object.entries(stick).map(([k, v]) => `${k} ${secs(v.imports[round].wallMs)}${v.imports[round].exact ? '' : ' (image DIFFERS)'}`).join(', ')}`);
  }
  for (const s of Object.values(stick)) rmSync(s.stick, { recursive: true, force: true });

  // LAN: compressed and raw alternating within each round, on both sources
  const lan = { 'used-zstd': [], 'used-none': [], 'random-zstd': [], 'random-none': [] };
  for (let round = 0; round < RUNS; ++round) {
    for (const [tag, src] of [['used', used], ['random', random]]) {
      for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
        const r = await lanRun(src, mode, tag);
        lan[`${tag}-${mode}`].push(r);
        if (!r.exact) failed = true;
      }
    }
    log(`  LAN round ${round + 1}: ${Object.entries(lan).map(([k, v]) => `${k} ${secs(v[round].wallMs)}`).join(', ')}`);
  }

  const u = stick['used-zstd'];
  const ur = stick['used-none'];
  const rz = stick['random-zstd'];
  const rr = stick['random-none'];
  const med = (runs, key) => median(runs.map((r) => r[key]));
  const exact = (runs) => (runs.every((r) => r.exact) ? 'yes' : 'NO');
  const stickRow = (name, mode, s, size) => `| ${name} | ${mode} | ${s.bytes} (${fmt(s.bytes)}) | ${(s.bytes / size).toFixed(3)} | ${name === 'used disk' ? `${mode.startsWith('zstd') ? '**' : ''}${(s.bytes / zstdBytes).toFixed(3)}x${mode.startsWith('zstd') ? '**' : ''}` : ''} | ${s.bundles} | ${secs(s.readMs)} (CPU ${s.readCpuS?.toFixed(1)} s) | ${exact(s.imports)} | ${fmt(s.imports[0].allocated)} |`;
  const importRow = (k, size, base) => `| ${k} | ${secs(min(stick[k].imports.map((r) => r.wallMs)))} | ${secs(med(stick[k].imports, 'wallMs'))} | ${(size / 1e6 / (med(stick[k].imports, 'wallMs') / 1000)).toFixed(0)} MB/s | ${(med(stick[k].imports, 'wallMs') / med(stick[base].imports, 'wallMs')).toFixed(3)}x | ${med(stick[k].imports, 'cpuS').toFixed(1)} s | ${(med(stick[k].imports, 'cpuS') / med(stick[base].imports, 'cpuS')).toFixed(3)}x |`;
  const lanMed = (k) => median(lan[k].map((r) => r.wallMs));
  const lanMin = (k) => min(lan[k].map((r) => r.wallMs));
  const lanRow = (k, size, base) => `| ${k} | ${secs(lanMin(k))} | ${secs(lanMed(k))} | ${(size / 1e6 / (lanMed(k) / 1000)).toFixed(0)} MB/s | ${(lanMed(k) / lanMed(base)).toFixed(3)}x | ${med(lan[k], 'cpuS').toFixed(1)} s | ${med(lan[k], 'asmCpuS').toFixed(1)} s | ${((med(lan[k], 'cpuS') + med(lan[k], 'asmCpuS')) / (med(lan[base], 'cpuS') + med(lan[base], 'asmCpuS'))).toFixed(3)}x | ${exact(lan[k])} |`;
  const text = [
    '# Compression bench (scripts/bench/compress.mjs)',
    '',
    `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at the end (other jobs share the machine), Linux ${release()}, Node ${process.versions.node}; ${buildInfo(ROOT)}.`,
    `Tools: ${toolVersion('zstd')}; ${toolVersion('tar')}.`,
    '',
    `Used-disk source: ${fmt(SIZE)} in ${shares.segments} shuffled segments of 1 to 16 MiB: ${fmt(shares.zeros)} zeros (40 %), ${fmt(shares.os)} of a tar of /usr/lib and /usr/share (40 %), ${fmt(shares.random)} random (20 %).`,
    `Random source: ${fmt(RANDOM_SIZE)} of random data.`,
    '',
    '## Bytes on the stick (a stick trip into a folder: every bundle, sealed)',
    '',
    '| source | carried | bytes on the stick | / source | / zstd -3 | bundles | reader (wall, CPU) | images byte-exact | image allocated |',
    '|---|---|---|---|---|---|---|---|---|',
    stickRow('used disk', 'zstd (default)', u, SIZE),
    stickRow('used disk', 'raw (--compress none)', ur, SIZE),
    `| used disk | zstd -3 -T1 of the source file | ${zstdBytes} (${fmt(zstdBytes)}) | ${(zstdBytes / SIZE).toFixed(3)} | 1.000x | | ${secs(zstdMs)} | | |`,
    stickRow('random', 'zstd (default)', rz, RANDOM_SIZE),
    stickRow('random', 'raw (--compress none)', rr, RANDOM_SIZE),
    '',
    `Stick trips for the used disk: ${(ur.bytes / u.bytes).toFixed(2)}x fewer with compression.`,
    '',
    `## Import of those sticks (ddferry-assembler import DIR IMAGE, a fresh image each time), ${RUNS} round(s), alternating`,
    '',
    '| stick | min | median | rate (raw bytes) | / raw | CPU (median) | CPU / raw |',
    '|---|---|---|---|---|---|---|',
    importRow('used-zstd', SIZE, 'used-none'),
    importRow('used-none', SIZE, 'used-none'),
    importRow('random-zstd', RANDOM_SIZE, 'random-none'),
    importRow('random-none', RANDOM_SIZE, 'random-none'),
    '',
    `## LAN (127.0.0.1), ${RUNS} round(s), zstd and raw alternating`,
    '',
    '| run | min | median | rate (raw bytes) | / raw | reader CPU | assembler CPU | CPU / raw | image byte-exact |',
    '|---|---|---|---|---|---|---|---|---|',
    lanRow('used-zstd', SIZE, 'used-none'),
    lanRow('used-none', SIZE, 'used-none'),
    lanRow('random-zstd', RANDOM_SIZE, 'random-none'),
    lanRow('random-none', RANDOM_SIZE, 'random-none'),
    '',
    'Times from the reader\'s start to its exit, when the assembler has written, fsynced and mapped every byte. "raw" is `--compress none`: every byte carried as read (the format before compression).',
    '',
  ].join('\n');
  process.stdout.write(text);
  if (WRITE) writeFileSync(join(HERE, 'results-compress.md'), text);
  if (failed) {
    log('compress bench: an image differs from its source');
    process.exitCode = 1;
  }
} finally {
  if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  if (existsSync(dir)) log(`kept ${dir}`);
}
