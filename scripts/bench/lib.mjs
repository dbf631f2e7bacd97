// Shared measuring helpers of the benches: a child process timed here, its peak RSS and CPU time
// from GNU time; medians; the build being measured; tool versions.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import {
  chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { makeRng } from './rng.mjs';

export const TIME_BIN = '/usr/bin/time';
const TIME_TAG = 'DDFERRY_BENCH_TIME';

/** The children's environment: C locale, and no NODE_EXTRA_CA_CERTS (it makes every Node start load a CA bundle). */
export const CHILD_ENV = { ...process.env, LC_ALL: 'C' };
delete CHILD_ENV.NODE_EXTRA_CA_CERTS;

export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * Run a command to its end. Wall time from here; peak RSS (KiB) and CPU seconds from GNU time
 * (`apt-get install time`); without it they are null. With `stdoutFile`, its stdout goes to that file.
 */
export function runMeasured(cmd, args, { env = CHILD_ENV, cwd, stdoutFile } = {}) {
  const useTime = existsSync(TIME_BIN);
  const file = useTime ? TIME_BIN : cmd;
  const fullArgs = useTime ? ['-f', `${TIME_TAG} %e %M %U %S`, cmd, ...args] : args;
  const outFd = stdoutFile ? openSync(stdoutFile, 'w') : null;
  const t0 = nowMs();
  const r = spawnSync(file, fullArgs, { stdio: ['ignore', outFd ?? 'pipe', 'pipe'], maxBuffer: 64 << 20, encoding: 'utf8', env, cwd });
  const wallMs = nowMs() - t0;
  if (outFd !== null) closeSync(outFd);
  const lines = (r.stderr ?? '').split('\n');
  const k = lines.findLastIndex((l) => l.startsWith(TIME_TAG));
  let maxRssKiB = null;
  let cpuS = null;
  if (k >= 0) {
    const f = lines[k].split(' ');
    maxRssKiB = Number(f[2]);
    cpuS = Number(f[3]) + Number(f[4]);
    lines.splice(k, 1);
  }
  const stderr = lines.join('\n').trim() || (r.error?.message ?? '');
  return { ok: r.status === 0 && !r.error, status: r.status ?? r.signal, wallMs, maxRssKiB, cpuS, stdout: r.stdout ?? '', stderr };
}

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function min(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length ? Math.min(...v) : null;
}

/** The newest modification time of the files below `dir` (0 if none). */
function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The commit measured, whether packages/ differs from it, and when the newest file of the packages' dist folders was built. */
export function buildInfo(root) {
  const git = (...args) => spawnSync('git', ['-C', root, ...args], { encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD').stdout?.trim() || 'unknown commit';
  const dirty = (git('status', '--porcelain', '--', 'packages').stdout ?? '').trim() !== '';
  const dists = readdirSync(join(root, 'packages')).map((p) => join(root, 'packages', p, 'dist')).filter((d) => existsSync(d));
  const newest = Math.max(0, ...dists.map(newestMtime));
  const built = newest > 0 ? new Date(newest).toISOString().replace('T', ' ').slice(0, 19) : '?';
  return `commit ${head}${dirty ? ' plus uncommitted changes in packages/' : ''}; dist built ${built} UTC`;
}

/** The first line a tool prints of its version, or null if it does not run. */
export function toolVersion(cmd, flag = '--version') {
  const r = spawnSync(cmd, [flag], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '') ?? null;
}

// ---------------------------------------------------------------------------
// Shared by several benches (and by all.mjs): sizes, tables, inputs, checks, the LAN and stick paths.
// ---------------------------------------------------------------------------
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;
const SECTOR = 512;

/** The repository root and our CLIs (what the benches run; build first: npx tsc -b). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const READER = join(ROOT, 'packages/reader/bin/ddferry-reader.js');
export const ASSEMBLER = join(ROOT, 'packages/assembler/bin/ddferry-assembler.js');

/** Bytes of `text` (bytes, or with a suffix K, M, G: powers of 1024), or null if it is not a size. */
export function parseSize(text) {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(text ?? '');
  if (!m) return null;
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 }[(m[2] ?? '').charAt(0).toLowerCase()];
  const v = Number(m[1]) * mult;
  return Number.isSafeInteger(v) ? v : null;
}

export const fmtSize = (b) => (b >= GiB && b % GiB === 0 ? `${b / GiB} GiB` : b >= MiB && b % MiB === 0 ? `${b / MiB} MiB` : `${b} B`);

/** A markdown table, padded; columns with alignRight[c] align right (all but the first by default). */
export function mdTable(head, rows, alignRight = head.map((_, i) => i > 0)) {
  const all = [head, ...rows];
  const w = head.map((_, c) => Math.max(3, ...all.map((r) => String(r[c]).length)));
  const line = (r) => `| ${r.map((cell, c) => (alignRight[c] ? String(cell).padStart(w[c]) : String(cell).padEnd(w[c]))).join(' | ')} |`;
  const sep = `|${w.map((x, c) => (alignRight[c] ? `${'-'.repeat(x + 1)}:` : `:${'-'.repeat(x + 1)}`)).join('|')}|`;
  return [line(head), sep, ...rows.map(line)].join('\n');
}

/** Write `size` random bytes at `pos` of an open file. */
export function writeRandom(fd, pos, size) {
  const buf = Buffer.allocUnsafe(16 * MiB);
  for (let done = 0; done < size;) {
    const n = Math.min(buf.length, size - done);
    randomFillSync(buf, 0, n);
    writeSync(fd, buf, 0, n, pos + done);
    done += n;
  }
}

/** Write `size` random bytes and fsync them (so no writeback of the input runs during the timings). */
export function writeRandomFile(path, size) {
  const fd = openSync(path, 'w');
  writeRandom(fd, 0, size);
  fsyncSync(fd);
  closeSync(fd);
}

/** Read a file once, so that its pages are in the page cache. */
export function warm(path) {
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(16 * MiB);
  while (readSync(fd, buf, 0, buf.length, null) > 0);
  closeSync(fd);
}

/** Whether two files hold the same bytes (`cmp -s`). */
export const same = (a, b) => spawnSync('cmp', ['-s', a, b]).status === 0;

/**
 * Delete an image and every file beside it whose name starts with its name (IMAGE.map, .map.bak,
 * .ddferry.json, .ddferry.pieces, .lock, …): a record of merged pieces left behind makes the next
 * import skip them as "merged before".
 */
export function removeImage(path) {
  const name = basename(path);
  const dir = dirname(path);
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) if (f.startsWith(name)) rmSync(join(dir, f), { recursive: true, force: true });
}

/** fsync one file (`sync FILE`). */
export function fsyncFile(file) {
  const r = spawnSync('sync', [file]);
  if (r.status !== 0) throw new Error(`sync ${file} failed`);
}

/** The block lines of a mapfile (what "same blocks" compares) and its status line. */
export function readMap(path) {
  const text = readFileSync(path, 'latin1');
  const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  return { status: lines[0]?.trim().split(/\s+/).join(' ') ?? '', blocks: lines.slice(1).map((l) => l.trim().split(/\s+/).join(' ')).join('\n') };
}

/** The block lines of a mapfile, neighbours of one status joined, in decimal: what "same map" compares across writers. */
export function mapBlocks(path) {
  const lines = readFileSync(path, 'latin1').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')).slice(1);
  const out = [];
  for (const l of lines) {
    const [p, s, st] = l.trim().split(/\s+/);
    const pos = Number(p);
    const size = Number(s);
    const last = out[out.length - 1];
    if (last && last.st === st && last.pos + last.size === pos) last.size += size;
    else out.push({ pos, size, st });
  }
  return out.map((b) => `${b.pos} ${b.size} ${b.st}`).join('\n');
}

/** The read lines of a --log-reads file (those starting with 0x): their count and a hash. */
export function readLogDigest(path) {
  const lines = readFileSync(path, 'latin1').split('\n').filter((l) => l.startsWith('0x'));
  return { reads: lines.length, sha: createHash('sha256').update(lines.join('\n')).digest('hex') };
}

const hex8 = (v) => `0x${v.toString(16).toUpperCase().padStart(8, '0')}`;

/** Uniform integer in [0, n), n up to 2^32, from one 32-bit draw (as the test maps were always made). */
const below32 = (rng, n) => Math.floor((rng.u32() / 4294967296) * n);

/**
 * A GNU ddrescue test-mode map (`-H`) of `size` bytes: `bigAreas` big bad areas
 * (8 MiB, 4 MiB, 2 MiB, ... at most size/32 each, at random sector positions), and
 * `badSectors` single bad 512-byte sectors scattered at random over the rest.
 * Deterministic for a seed. Returns the file's statistics.
 */
export function writeTestMap(path, size, badSectors, bigAreas, seed) {
  const rng = makeRng(seed);
  const n = size / SECTOR;
  const bad = new Uint8Array(n);
  let bigBytes = 0;
  for (let k = 0; k < bigAreas; ++k) {
    const len = Math.max(8, Math.min((8 * MiB) >> k, size / 32) / SECTOR); // sectors
    const p = below32(rng, n - len);
    bad.fill(1, p, p + len);
  }
  for (let i = 0; i < n; ++i) bigBytes += bad[i] * SECTOR;
  const scatter = Math.min(badSectors, Math.floor((n - bigBytes / SECTOR) / 2));
  for (let k = 0; k < scatter;) {
    const p = below32(rng, n);
    if (!bad[p]) {
      bad[p] = 1;
      ++k;
    }
  }
  const lines = ['# Test-mode map for ddferry scripts/bench/reader.mjs: + readable, - unreadable\n', '0x00000000     +\n',
    '#      pos        size  status\n'];
  let blocks = 0;
  let badAreas = 0;
  for (let i = 0; i < n;) {
    let j = i;
    while (j < n && bad[j] === bad[i]) ++j;
    lines.push(`${hex8(i * SECTOR)}  ${hex8((j - i) * SECTOR)}  ${bad[i] ? '-' : '+'}\n`);
    ++blocks;
    if (bad[i]) ++badAreas;
    i = j;
  }
  writeFileSync(path, lines.join(''));
  return { blocks, badAreas, scatteredSectors: scatter, bigBadBytes: bigBytes, badBytes: bigBytes + scatter * SECTOR };
}

/**
 * Write a GNU ddrescue 1.27 mapfile of `n` blocks for a failing disk: finished (`+`)
 * runs of 1-8 MiB alternate with small problem areas (`-`, `/`, `*`, `?`) of
 * 512 B-1 MiB, log-uniform. All sizes are whole sectors; positions pass 2^32 early.
 */
export function generateMapfile(path, n, seed) {
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

/** The data part of a mapfile (from the status line on): what must match byte for byte. */
export function mapfileBody(text) {
  const i = text.indexOf('# current_pos');
  return i >= 0 ? text.slice(i) : text;
}

// ---------------------------------------------------------------------------
// The LAN path: socat and ddferry over 127.0.0.1
// ---------------------------------------------------------------------------
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolvePort(port));
    });
  });
}

/** Start a process under GNU time; `exited` resolves at its exit with its peak RSS (KiB) and CPU seconds. */
export function startMeasured(cmd, args) {
  // its own process group: `stop` sends SIGINT to the group; GNU time ignores it while it waits, the child stops cleanly
  const child = spawn(TIME_BIN, ['-f', `${TIME_TAG} %e %M %U %S`, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: CHILD_ENV });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((res) => child.on('exit', (code, signal) => {
    const line = stderr.split('\n').findLast((l) => l.startsWith(TIME_TAG));
    const f = line?.split(' ');
    res({ code, signal, maxRssKiB: f ? Number(f[2]) : null, cpuS: f ? Number(f[3]) + Number(f[4]) : null, stderr });
  }));
  return { child, exited, stop: () => process.kill(-child.pid, 'SIGINT'), stdout: () => stdout, stderr: () => stderr };
}

/** `socat -u` of `src` to `out` over 127.0.0.1, then fsync `out`; checked with cmp. */
export async function runSocat(src, out) {
  rmSync(out, { force: true });
  const port = await freePort();
  const rx = startMeasured('socat', ['-u', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`, `OPEN:${out},creat,trunc`]);
  await new Promise((r) => setTimeout(r, 150));
  const t0 = nowMs();
  const tx = runMeasured('socat', ['-u', `OPEN:${src},rdonly`, `TCP:127.0.0.1:${port}`]);
  const rxEnd = await rx.exited;
  fsyncFile(out);
  const wallMs = nowMs() - t0;
  if (!tx.ok || rxEnd.code !== 0) throw new Error(`socat failed: ${tx.stderr} ${rxEnd.stderr}`);
  if (!same(src, out)) throw new Error('wrong output: socat: the copy differs from the source');
  return { wallMs, rss: { sender: tx.maxRssKiB, receiver: rxEnd.maxRssKiB } };
}

/**
 * `ddferry-reader rescue JOB --to ws://127.0.0.1:P` of a regular-file source into `ddferry-assembler
 * serve IMAGE`, in `dir`. Timed from the reader's start to its exit (every piece merged: written,
 * fsynced, IMAGE.map saved); the image is checked with cmp, then it and the assembler's files beside
 * it are deleted. The reader is stopped (SIGINT) if it has not ended after `timeoutMs` (default: 2
 * minutes plus 1 s per 5 MB): a reader whose link the assembler refuses retries for ever.
 */
export async function runLanDdferry(src, dir, tag, { timeoutMs } = {}) {
  const job = join(dir, `job-${tag}`);
  const image = join(dir, `image-${tag}.raw`);
  const token = join(dir, 'lan-token');
  removeImage(image);
  rmSync(job, { recursive: true, force: true });
  writeFileSync(token, `${randomBytes(16).toString('hex')}\n`);
  chmodSync(token, 0o600);
  const plan = spawnSync(process.execPath, [READER, 'plan', src, job, '--chunk-size', '1GiB'], { encoding: 'utf8', env: CHILD_ENV });
  if (plan.status !== 0) throw new Error(`plan failed: ${plan.stderr}`);
  const port = await freePort();
  const asm = startMeasured(process.execPath, [ASSEMBLER, 'serve', image, '--listen', `127.0.0.1:${port}`, '--token-file', token]);
  for (let i = 0; !/listening/.test(asm.stdout()); ++i) {
    if (i > 200) {
      asm.stop();
      throw new Error(`the assembler did not start: ${asm.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const limitMs = timeoutMs ?? 120_000 + statSync(src).size / 5e3;
  const t0 = nowMs();
  const rd = startMeasured(process.execPath, [READER, 'rescue', job, '--to', `ws://127.0.0.1:${port}`, '--token-file', token, '-q']);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    rd.stop();
  }, limitMs);
  const rdEnd = await rd.exited;
  const wallMs = nowMs() - t0;
  clearTimeout(timer);
  asm.stop();
  const asmEnd = await asm.exited;
  const failed = timedOut || rdEnd.code !== 0;
  const ok = !failed && same(src, image);
  rmSync(job, { recursive: true, force: true });
  removeImage(image);
  const tail = (text) => text.split('\n').filter((l) => l && !l.startsWith(TIME_TAG)).slice(-3).join('\n');
  if (failed) throw new Error(`rescue ${timedOut ? `stopped after ${(limitMs / 1000).toFixed(0)} s` : `failed (exit ${rdEnd.code}${rdEnd.signal ? `, ${rdEnd.signal}` : ''})`}: ${tail(rdEnd.stderr)}`);
  if (!ok) throw new Error('wrong output: ddferry: the image differs from the source');
  return { wallMs, rss: { reader: rdEnd.maxRssKiB, assembler: asmEnd.maxRssKiB } };
}

// ---------------------------------------------------------------------------
// The stick path
// ---------------------------------------------------------------------------
/** Several commands in a row, as one measurement: wall times and CPU summed, peak RSS the largest. */
export function runSteps(steps) {
  const total = { ok: true, wallMs: 0, maxRssKiB: null, cpuS: null, stderr: '' };
  for (const [cmd, args, opts] of steps) {
    const r = runMeasured(cmd, args, opts);
    total.wallMs += r.wallMs;
    if (r.maxRssKiB !== null) total.maxRssKiB = Math.max(total.maxRssKiB ?? 0, r.maxRssKiB);
    if (r.cpuS !== null) total.cpuS = (total.cpuS ?? 0) + r.cpuS;
    if (!r.ok) return { ...total, ok: false, stderr: `${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}` };
  }
  return total;
}

/** Run a command that must succeed; its stdout. */
export function must(cmd, args, what = `${cmd} ${args.join(' ')}`) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: CHILD_ENV, maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0) throw new Error(`${what} failed (${r.error?.message ?? (r.signal ? `killed by ${r.signal}` : `exit ${r.status}`)}): ${r.stderr}`);
  return r.stdout;
}

/** The shared token both sides get (`--token-file`): stick pieces are sealed with it. */
export function tokenOf(dir) {
  const file = join(dir, 'token');
  if (!existsSync(file)) writeFileSync(file, 'the sneakernet bench token\n', { mode: 0o600 });
  return file;
}

/**
 * Plan `jobSource` in 256 MiB chunks and rescue it onto the folder `dir/name` (a stick);
 * its stick and job folder, and the reader's run (`runMeasured`: wall time, peak RSS).
 */
export function stickOf(jobSource, dir, name, extra = []) {
  const job = join(dir, `${name}.job`);
  const stick = join(dir, name);
  rmSync(job, { recursive: true, force: true });
  rmSync(stick, { recursive: true, force: true });
  mkdirSync(stick, { recursive: true });
  must('node', [READER, 'plan', jobSource, job, '--chunk-size', '256MiB']);
  const trip = runMeasured('node', [READER, 'rescue', job, '--to', stick, '--token-file', tokenOf(dir), ...extra]);
  if (!trip.ok) throw new Error(`ddferry-reader rescue ${job} --to ${stick} failed (exit ${trip.status}): ${trip.stderr}`);
  const ddferry = join(stick, 'ddferry');
  return { stick, folder: join(ddferry, readdirSync(ddferry)[0]), trip };
}

/**
 * The chunk files of a `--format ddrescue-chunks` stick folder, in order: each `X.raw` with its
 * domain map (`X.map`, or `X.src.map` when the folder's file system made packed chunk files).
 */
export function chunkFilesOf(folder) {
  return readdirSync(folder).filter((n) => n.endsWith('.raw')).sort().map((n) => {
    const packed = join(folder, n.replace(/\.raw$/, '.src.map'));
    return existsSync(packed)
      ? { raw: join(folder, n), map: packed, packed: true }
      : { raw: join(folder, n), map: join(folder, n.replace(/\.raw$/, '.map')), packed: false };
  });
}
