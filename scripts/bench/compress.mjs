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

/** A stick trip into a folder, then its import: bytes on the stick, times, the image checked. */
function stickTrip(src, mode, tag) {
  const job = join(dir, `job-stick-${tag}-${mode}`);
  const stick = join(dir, `stick-${tag}-${mode}`);
  const image = join(dir, `image-stick-${tag}-${mode}.raw`);
  plan(src, job);
  rmSync(stick, { recursive: true, force: true });
  clean(image);
  must('mkdir', ['-p', stick]);
  const rd = runMeasured(process.execPath, [READER, 'rescue', job, '--to', stick, '--token-file', token(), '--compress', mode, '-q']);
  if (!rd.ok) throw new Error(`stick rescue (${mode}) failed (${rd.status}): ${rd.stderr}`);
  const onStick = bytesUnder(stick, /^piece-\d+\.tar$/);
  const im = runMeasured(process.execPath, [ASSEMBLER, 'import', stick, image, '--token-file', token()]);
  if (!im.ok) throw new Error(`import (${mode}) failed (${im.status}): ${im.stderr}`);
  const exact = same(src, image);
  const allocated = statSync(image).blocks * 512;
  rmSync(job, { recursive: true, force: true });
  rmSync(stick, { recursive: true, force: true });
  clean(image);
  return { bytes: onStick.total, bundles: onStick.files, readMs: rd.wallMs, importMs: im.wallMs, exact, allocated };
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
  await asm.exited;
  if (!rd.ok) throw new Error(`LAN rescue (${mode}) failed (${rd.status}): ${rd.stderr}`);
  const exact = same(src, image);
  rmSync(job, { recursive: true, force: true });
  clean(image);
  return { wallMs, cpuS: rd.cpuS, exact };
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

  // stick trips: compressed and raw, on both sources
  const stick = {};
  for (const [tag, src] of [['used', used], ['random', random]]) {
    for (const mode of MODES) {
      stick[`${tag}-${mode}`] = stickTrip(src, mode, tag);
      const s = stick[`${tag}-${mode}`];
      log(`  stick ${tag} ${mode}: ${fmt(s.bytes)} in ${s.bundles} bundles, read ${secs(s.readMs)}, import ${secs(s.importMs)}, image ${s.exact ? 'byte-exact' : 'DIFFERS'}`);
      if (!s.exact) failed = true;
    }
  }

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
  const lanMed = (k) => median(lan[k].map((r) => r.wallMs));
  const lanMin = (k) => min(lan[k].map((r) => r.wallMs));
  const lanRow = (k, size, base) => `| ${k} | ${secs(lanMin(k))} | ${secs(lanMed(k))} | ${(size / 1e6 / (lanMed(k) / 1000)).toFixed(0)} MB/s | ${(lanMed(k) / lanMed(base)).toFixed(3)}x | ${(median(lan[k].map((r) => r.cpuS)) ?? 0).toFixed(1)} s | ${lan[k].every((r) => r.exact) ? 'yes' : 'NO'} |`;
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
    '| source | carried | bytes on the stick | / source | / zstd -3 | bundles | reader | import | image byte-exact | image allocated |',
    '|---|---|---|---|---|---|---|---|---|---|',
    `| used disk | zstd (default) | ${u.bytes} (${fmt(u.bytes)}) | ${(u.bytes / SIZE).toFixed(3)} | **${(u.bytes / zstdBytes).toFixed(3)}x** | ${u.bundles} | ${secs(u.readMs)} | ${secs(u.importMs)} | ${u.exact ? 'yes' : 'NO'} | ${fmt(u.allocated)} |`,
    `| used disk | raw (--compress none) | ${ur.bytes} (${fmt(ur.bytes)}) | ${(ur.bytes / SIZE).toFixed(3)} | ${(ur.bytes / zstdBytes).toFixed(3)}x | ${ur.bundles} | ${secs(ur.readMs)} | ${secs(ur.importMs)} | ${ur.exact ? 'yes' : 'NO'} | ${fmt(ur.allocated)} |`,
    `| used disk | zstd -3 -T1 of the source file | ${zstdBytes} (${fmt(zstdBytes)}) | ${(zstdBytes / SIZE).toFixed(3)} | 1.000x | | ${secs(zstdMs)} | | | |`,
    `| random | zstd (default) | ${rz.bytes} (${fmt(rz.bytes)}) | ${(rz.bytes / RANDOM_SIZE).toFixed(4)} | | ${rz.bundles} | ${secs(rz.readMs)} | ${secs(rz.importMs)} | ${rz.exact ? 'yes' : 'NO'} | ${fmt(rz.allocated)} |`,
    `| random | raw (--compress none) | ${rr.bytes} (${fmt(rr.bytes)}) | ${(rr.bytes / RANDOM_SIZE).toFixed(4)} | | ${rr.bundles} | ${secs(rr.readMs)} | ${secs(rr.importMs)} | ${rr.exact ? 'yes' : 'NO'} | ${fmt(rr.allocated)} |`,
    '',
    `Stick trips for the used disk: ${(ur.bytes / u.bytes).toFixed(2)}x fewer with compression. Import time compressed / raw: used disk ${(u.importMs / ur.importMs).toFixed(3)}x, random ${(rz.importMs / rr.importMs).toFixed(3)}x (one run each).`,
    '',
    `## LAN (127.0.0.1), ${RUNS} round(s), zstd and raw alternating`,
    '',
    '| run | min | median | rate (raw bytes) | / raw | reader CPU | image byte-exact |',
    '|---|---|---|---|---|---|---|',
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
