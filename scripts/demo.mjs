#!/usr/bin/env node
// npm run demo: the whole ddferry loop on a simulated failing disk, with no flags and no root.
//
//   1. a simulated failing disk: 64 MiB of generated content and a GNU ddrescue test map with bad areas,
//      some across the 16 MiB chunk borders;
//   2. PC_B: `ddferry-assembler serve` on 127.0.0.1 (a free port);
//   3. PC_A: `ddferry-reader plan`, then `rescue --to ws://...` with -n (copying and trimming over the LAN);
//   4. the link goes away; the rest (scraping) travels on a "stick" (a folder standing in for one):
//      `rescue --to STICK`, `ddferry-assembler import STICK IMAGE`, and `rescue --to STICK` again (receipts);
//   5. checks: the image equals the disk on every `+` byte of IMAGE.map, and IMAGE.map equals common.map;
//   6. a summary, and a picture of the map (demo-output/map.png).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = {
  reader: join(ROOT, 'packages', 'reader', 'bin', 'ddferry-reader.js'),
  assembler: join(ROOT, 'packages', 'assembler', 'bin', 'ddferry-assembler.js'),
  map: join(ROOT, 'packages', 'mapfile', 'bin', 'ddferry-map.js'),
};
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const CHUNK = 16 * MiB;
/** Bad areas [pos, size]: single sectors, a run across each chunk border, a large one, a cluster of small ones. */
const BAD = [
  [3 * MiB + 512, 512],
  [CHUNK - 96 * 1024, 192 * 1024],
  [2 * CHUNK - 4096, 8192],
  [27 * MiB, 1 * MiB],
  [3 * CHUNK - 1536, 3072],
  ...Array.from({ length: 12 }, (_, i) => [52 * MiB + i * 40960, 1024 + 512 * (i % 3)]),
];

const started = Date.now();
const out = join(ROOT, 'demo-output');
const dir = mkdtempSync(join(tmpdir(), 'ddferry-demo-'));
const f = {
  disk: join(dir, 'disk.bin'),
  testMap: join(dir, 'disk.testmap'),
  token: join(dir, 'token'),
  job: join(dir, 'job'),
  stick: join(dir, 'stick'),
  image: join(dir, 'image.raw'),
};

/** Run a command, echoing it; resolves with its exit code and output. */
function run(label, bin, args, { quiet = false, expect = [0] } = {}) {
  const shown = [label, ...args.map((a) => (a.startsWith(dir) ? relative(dir, a) || '.' : a))].join(' ');
  console.log(`\n$ ${shown}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!quiet) process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!quiet) process.stdout.write(d);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (!expect.includes(code)) reject(new Error(`${shown} ended with ${code ?? signal}:\n${stderr.slice(-3000)}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** `ddferry-assembler serve` on a free loopback port; resolves once it listens. */
function serve() {
  console.log(`\n$ ddferry-assembler serve image.raw --listen 127.0.0.1:0 --token-file token &`);
  const child = spawn(process.execPath, [BIN.assembler, 'serve', f.image, '--listen', '127.0.0.1:0', '--token-file', f.token], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`the assembler did not start in 20 s:\n${stderr}`)), 20000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /listening (ws:\/\/\S+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], child, exited, stderr: () => stderr });
      }
    });
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`the assembler exited (${e.code ?? e.signal}) before listening:\n${stderr}`));
    });
  });
}

/** The block lines of a GNU ddrescue mapfile, neighbours of one status joined. */
function blocksOf(file) {
  const blocks = [];
  let status = false;
  for (const line of readFileSync(file, 'latin1').split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    if (!status) {
      status = true;
      continue;
    }
    const [pos, size, st] = line.trim().split(/\s+/);
    const b = { pos: Number(pos), size: Number(size), status: st };
    const last = blocks[blocks.length - 1];
    if (last && last.status === b.status && last.pos + last.size === b.pos) last.size += b.size;
    else blocks.push(b);
  }
  return blocks;
}

function makeDisk() {
  const buf = Buffer.alloc(SIZE);
  for (let p = 0; p + 8 <= SIZE; p += 8) buf.writeBigUInt64LE(BigInt(p) * 2654435761n + 0x5eedn, p);
  writeFileSync(f.disk, buf);
  const lines = ['# GNU ddrescue test map: + reads well, - fails', '0 + 1'];
  let p = 0;
  for (const [pos, size] of [...BAD].sort((a, b) => a[0] - b[0])) {
    if (pos > p) lines.push(`0x${p.toString(16)} 0x${(pos - p).toString(16)} +`);
    lines.push(`0x${pos.toString(16)} 0x${size.toString(16)} -`);
    p = pos + size;
  }
  if (p < SIZE) lines.push(`0x${p.toString(16)} 0x${(SIZE - p).toString(16)} +`);
  writeFileSync(f.testMap, `${lines.join('\n')}\n`);
  writeFileSync(f.token, `${randomBytes(16).toString('hex')}\n`);
  chmodSync(f.token, 0o600);
  mkdirSync(f.stick);
}

/** Every `+` byte of IMAGE.map equals the disk; IMAGE.map equals common.map. */
function verify() {
  const imageBlocks = blocksOf(`${f.image}.map`);
  const commonBlocks = blocksOf(join(f.job, 'common.map'));
  const disk = readFileSync(f.disk);
  const image = readFileSync(f.image);
  let checked = 0;
  for (const b of imageBlocks) {
    if (b.status !== '+') continue;
    if (!disk.subarray(b.pos, b.pos + b.size).equals(image.subarray(b.pos, b.pos + b.size))) {
      throw new Error(`the image differs from the disk inside the rescued block [${b.pos}, ${b.pos + b.size})`);
    }
    checked += b.size;
  }
  const same = JSON.stringify(imageBlocks) === JSON.stringify(commonBlocks);
  if (!same) throw new Error(`IMAGE.map differs from common.map:\n${JSON.stringify(imageBlocks)}\n${JSON.stringify(commonBlocks)}`);
  const bytes = (st) => imageBlocks.filter((b) => b.status === st).reduce((s, b) => s + b.size, 0);
  return { checked, bad: bytes('-'), other: SIZE - bytes('+') - bytes('-'), areas: imageBlocks.filter((b) => b.status === '-').length };
}

let assembler;
try {
  console.log(`ddferry demo: a simulated failing disk of ${SIZE / MiB} MiB with ${BAD.length} bad areas, in ${dir}`);
  makeDisk();
  console.log('PC_A and PC_B are this machine; the stick is the folder stick/.');

  await run('ddferry-reader', BIN.reader, ['plan', f.disk, f.job, '--chunk-size', `${CHUNK / MiB}MiB`, '--test-mode', f.testMap]);
  assembler = await serve();
  const page = assembler.url.replace(/^ws:/, 'http:');
  console.log(`listening ${assembler.url}   (live map page: ${page}/#token=... while it runs)`);

  console.log('\n--- trip 1: over the LAN, copying and trimming (-n: no scraping yet) ---');
  await run('ddferry-reader', BIN.reader, ['rescue', f.job, '--to', assembler.url, '--token-file', f.token, '-n', '-q']);
  assembler.child.kill('SIGTERM');
  await assembler.exited;
  assembler = undefined;

  console.log('\n--- trip 2: the link is gone; the rest travels on the stick ---');
  const r1 = await run('ddferry-reader', BIN.reader, ['rescue', f.job, '--to', f.stick, '--token-file', f.token, '-q'], { expect: [0, 4] });
  if (r1.code === 4) throw new Error('the demo stick (a folder on this disk) was reported full');
  await run('ddferry-assembler', BIN.assembler, ['import', f.stick, f.image, '--token-file', f.token]);
  await run('ddferry-reader', BIN.reader, ['rescue', f.job, '--to', f.stick, '--token-file', f.token, '-q']);

  const v = verify();
  mkdirSync(out, { recursive: true });
  copyFileSync(`${f.image}.map`, join(out, 'image.raw.map'));
  copyFileSync(join(f.job, 'common.map'), join(out, 'common.map'));
  await run('ddferry-map', BIN.map, ['render', join(out, 'image.raw.map'), '-o', join(out, 'map.png')]);

  const s = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`
Summary
  disk                ${SIZE} bytes, chunks of ${CHUNK / MiB} MiB
  rescued             ${v.checked} bytes (${((100 * v.checked) / SIZE).toFixed(4)} %), every byte checked against the disk
  bad                 ${v.bad} bytes in ${v.areas} area(s); not tried or unfinished: ${v.other} bytes
  maps                image.raw.map equals common.map (both GNU ddrescue 1.27 mapfiles)
  picture             ${relative(process.cwd(), join(out, 'map.png'))} (maps beside it)
  time                ${s} s
Demo passed.`);
} catch (err) {
  console.error(`\nDemo FAILED: ${err.message}`);
  if (assembler) console.error(`assembler's log:\n${assembler.stderr().slice(-3000)}`);
  process.exitCode = 1;
} finally {
  if (assembler) {
    assembler.child.kill('SIGKILL');
    await assembler.exited;
  }
  rmSync(dir, { recursive: true, force: true });
}
