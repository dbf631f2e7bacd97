/**
 * Real kernel I/O errors: `ddferry-reader ddrescue` and GNU ddrescue 1.27 read the same
 * faultfs FUSE file (short reads, then EIO, at bad sectors), with and without `-d`.
 * Both must mark exactly the failing sectors `-` and everything else `+`, give the same
 * final mapfile, read log and device reads, and put the backing data in the output.
 *
 * Vanish mode (ENXIO after N reads, like a disk that drops off the bus): the run stops
 * with status 1 and a message naming the source, the mapfile is saved and true to the
 * output, and a resume on a fresh mount finishes with the uninterrupted run's map.
 *
 * Needs root, /dev/fuse, gcc, pkg-config, libfuse3 and GNU ddrescue 1.27; fails (never
 * skips) when one is missing.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Mapfile } from '@ddferry/mapfile';
import { readMapfile } from '@ddferry/mapfile/io';

import { mountFaultFs } from '../helpers/faultfs.js';
import type { FaultFs, FaultFsRead } from '../helpers/faultfs.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..', '..', '..');
const BIN = resolve(HERE, '..', '..', 'bin', 'ddferry-reader.js');
const RUN_TIMEOUT_MS = 120_000;
const SECTOR = 512;

/** The backing file: 8 MiB of pseudo-random data. */
const SIZE = 8 << 20;

/** Bad byte ranges: single sectors, clusters, ranges over 64 KiB borders, the last sector. */
const BAD: readonly { pos: number; size: number }[] = [
  { pos: 0x21000, size: SECTOR }, // one sector inside a cluster
  { pos: 0x33333, size: 1 }, // one byte: its sector 0x33200
  { pos: 0x60000, size: SECTOR }, // the first sector of a cluster
  { pos: 0x7FE00, size: SECTOR }, // the last sector of a cluster
  { pos: 0x100000, size: 0x4000 }, // a cluster of 32 sectors
  { pos: 0x1FF000, size: 0x2000 }, // 16 sectors over the 0x200000 border
  { pos: 0x2FFFFF, size: 2 }, // two bytes: sectors 0x2FFE00 and 0x300000, over a border
  { pos: 0x4F8100, size: 0x11000 }, // 70 KiB, unaligned, over two 64 KiB borders
  { pos: 0x6FFE00, size: 0x400 }, // two sectors over the 0x700000 border
  { pos: SIZE - SECTOR, size: SECTOR }, // the very last sector
];

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[], cwd: string): Promise<Exit> {
  return new Promise((res, reject) => {
    const child = spawn(file, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')} did not end within ${RUN_TIMEOUT_MS} ms`));
    }, RUN_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr });
    });
  });
}

function seededBytes(size: number, seed: string): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

const hex = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;

/** A mapfile without its first line and its command-line and time lines. */
function mapBody(text: string): string {
  return text.split('\n').slice(1).filter((l) => !/^# (Command line|Start time|Current time):/.test(l)).join('\n');
}

/** spec 3.2's `nreads`: drop the header and footer, per-second marks and phase-line times. */
function normalizeReadLog(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^# (Reads Logfile|Command line|Start time|End time)/.test(l) && !l.startsWith('#  Ipos'))
    .map((l) => l.replace(/^# [0-9dhms:]+ {2}/, '# '))
    .filter((l) => !/^# [0-9dhms:]+$/.test(l))
    .join('\n');
}

function blocksOf(m: Mapfile): { pos: number; size: number; status: string }[] {
  const out: { pos: number; size: number; status: string }[] = [];
  for (let i = 0; i < m.blocks.length; ++i) out.push({ pos: m.blocks.pos(i), size: m.blocks.size(i), status: m.blocks.status(i) });
  return out;
}

/** The map a perfect rescue gives: `-` on every sector that holds a bad byte, `+` elsewhere. */
function expectedBlocks(): { pos: number; size: number; status: string }[] {
  const bad: { pos: number; end: number }[] = [];
  for (const b of BAD) {
    const pos = Math.floor(b.pos / SECTOR) * SECTOR;
    const end = Math.min(SIZE, Math.ceil((b.pos + b.size) / SECTOR) * SECTOR);
    const last = bad[bad.length - 1];
    if (last && pos <= last.end) last.end = Math.max(last.end, end);
    else bad.push({ pos, end });
  }
  const out: { pos: number; size: number; status: string }[] = [];
  let pos = 0;
  for (const b of bad) {
    if (b.pos > pos) out.push({ pos, size: b.pos - pos, status: '+' });
    out.push({ pos: b.pos, size: b.end - b.pos, status: '-' });
    pos = b.end;
  }
  if (pos < SIZE) out.push({ pos, size: SIZE - pos, status: '+' });
  return out;
}

/** The mapfile parses strictly and every `+` byte of it is in the output as in the backing file. */
async function checkTrue(dir: string, data: Buffer, where: string): Promise<{ map: Mapfile; text: string }> {
  const text = readFileSync(join(dir, 'map'), 'latin1');
  let map: Mapfile;
  try {
    map = await readMapfile(join(dir, 'map'));
  } catch (err) {
    throw new Error(`${where}: the mapfile does not parse strictly: ${(err as Error).message}\n${text}`);
  }
  const out = existsSync(join(dir, 'out')) ? readFileSync(join(dir, 'out')) : Buffer.alloc(0);
  for (const b of blocksOf(map)) {
    if (b.status !== '+') continue;
    expect(out.length, `${where}: output covers + block ${hex(b.pos)}`).to.be.at.least(b.pos + b.size);
    expect(out.subarray(b.pos, b.pos + b.size).equals(data.subarray(b.pos, b.pos + b.size)), `${where}: output = backing on + block ${hex(b.pos)}`).to.equal(true);
  }
  return { map, text };
}

/** Where two line lists first differ, with a little context, or null. */
function firstDifference(a: readonly string[], b: readonly string[]): string | null {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; ++i) {
    if (a[i] !== b[i]) {
      return `line ${i + 1}: ours ${JSON.stringify(a.slice(Math.max(0, i - 1), i + 3))} vs GNU ${JSON.stringify(b.slice(Math.max(0, i - 1), i + 3))} (${a.length} vs ${b.length} lines)`;
    }
  }
  return null;
}

const report: string[] = [];

interface Done {
  readonly map: string;
  readonly reads: string;
  readonly device: readonly FaultFsRead[];
  readonly exit: Exit;
}

describe('real EIO through faultfs: ddferry-reader vs GNU ddrescue 1.27 (system)', function () {
  let root: string;
  let data: Buffer;
  let backing: string;
  const mounts: FaultFs[] = [];

  async function mount(options: { vanishAfterReads?: number; bad?: typeof BAD } = {}): Promise<FaultFs> {
    const fs = await mountFaultFs({ backing, bad: options.bad ?? BAD, ...(options.vanishAfterReads !== undefined ? { vanishAfterReads: options.vanishAfterReads } : {}) });
    mounts.push(fs);
    return fs;
  }

  /** One run of `program` on `fs` in a new folder `name`; the device reads it made. */
  async function rescue(program: 'ours' | 'gnu', fs: FaultFs, name: string, options: readonly string[], folder?: string): Promise<Done> {
    const d = join(root, folder ?? name);
    if (!existsSync(d)) mkdirSync(d);
    const before = (await fs.readLog()).length;
    const args = [...options, `--log-reads=${name}.reads`, fs.path, 'out', 'map'];
    const exit = program === 'ours'
      ? await run(process.execPath, [BIN, 'ddrescue', ...args], d)
      : await run('ddrescue', args, d);
    const device = (await fs.readLog()).slice(before);
    const readsPath = join(d, `${name}.reads`);
    return {
      map: existsSync(join(d, 'map')) ? readFileSync(join(d, 'map'), 'latin1') : '',
      reads: existsSync(readsPath) ? normalizeReadLog(readFileSync(readsPath, 'latin1')) : '',
      device,
      exit,
    };
  }

  before(function () {
    const v = spawnSync('ddrescue', ['--version'], { encoding: 'utf8' });
    if (v.error || !/GNU ddrescue 1\.27/.test(v.stdout)) {
      throw new Error(`GNU ddrescue 1.27 is required for these tests (apt-get install -y gddrescue): ${v.error?.message ?? v.stdout.split('\n')[0]}`);
    }
    const build = spawnSync('npx', ['tsc', '-b', 'packages/reader'], { cwd: REPO, encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`npx tsc -b packages/reader failed; the CLI's dist is stale:\n${build.stdout}${build.stderr}`);
    root = mkdtempSync(join(tmpdir(), 'ddferry-eio-'));
    data = seededBytes(SIZE, 'eio');
    backing = join(root, 'backing.img');
    writeFileSync(backing, data);
  });

  after(async function () {
    for (const m of mounts) await m.unmount();
    if (root) rmSync(root, { recursive: true, force: true });
    if (report.length > 0) console.log(`      ${report.join('\n      ')}`);
  });

  const results = new Map<string, { ours: Done; gnu: Done }>();

  /** Option sets; `exact`: the final map must be exactly the failing 512-byte sectors. */
  const CONFIGS: readonly { name: string; options: readonly string[]; exact: boolean }[] = [
    { name: 'direct', options: ['-d'], exact: true },
    { name: 'buffered', options: [], exact: true },
    { name: 'direct-reverse-retry', options: ['-d', '-R', '-r2'], exact: true },
    { name: 'cluster16-noskip', options: ['-c', '16', '-K', '0'], exact: true },
    // 4 KiB sectors on a disk that fails 512-byte sectors: reads come back short inside a sector
    { name: 'sector4096', options: ['-d', '-b', '4096'], exact: false },
    // -d widens reads of an unaligned domain to whole sectors, outside the domain
    { name: 'direct-unaligned-domain', options: ['-d', '-i', '1000', '-s', '5000000'], exact: false },
  ];

  for (const c of CONFIGS) {
    const label = c.options.length > 0 ? c.options.join(' ') : 'no options (buffered)';

    it(`${label}: ${c.exact ? 'marks exactly the failing sectors -, ' : ''}the same final map as GNU ddrescue, with the backing data on every + byte`, async function () {
      const fs = await mount();
      const o = await rescue('ours', fs, `ours-${c.name}`, c.options);
      const g = await rescue('gnu', fs, `gnu-${c.name}`, c.options);
      results.set(c.name, { ours: o, gnu: g });
      expect(o.exit.code, `our exit status (stderr: ${o.exit.stderr})`).to.equal(0);
      expect(g.exit.code, `GNU exit status (stderr: ${g.exit.stderr}${g.exit.stdout})`).to.equal(0);
      const { map } = await checkTrue(join(root, `ours-${c.name}`), data, `ours ${label}`);
      expect(map.currentStatus).to.equal('+');
      if (c.exact) {
        expect(blocksOf(map), 'our final map: - exactly on the failing sectors').to.deep.equal(expectedBlocks());
        const gm = await readMapfile(join(root, `gnu-${c.name}`, 'map'));
        expect(blocksOf(gm), 'GNU ddrescue\'s final map: - exactly on the failing sectors').to.deep.equal(expectedBlocks());
      }
      expect(mapBody(o.map), 'final mapfile = GNU ddrescue\'s').to.equal(mapBody(g.map));
      const bad = blocksOf(map).filter((b) => b.status === '-');
      report.push(`${label}: ${o.device.length} device reads (GNU ${g.device.length}); ${bad.length} bad areas, ${bad.reduce((n, b) => n + b.size, 0)} bad bytes`);
    });

    it(`${label}: the read log and the reads reaching the device equal GNU ddrescue's`, function () {
      const r = results.get(c.name);
      expect(r, 'the rescue above ran').to.not.equal(undefined);
      const { ours: o, gnu: g } = r!;
      const logDiff = firstDifference(o.reads.split('\n'), g.reads.split('\n'));
      const dev = (x: Done): string[] => x.device.map((d) => `${d.offset} ${d.size} ${d.result}`);
      const devDiff = firstDifference(dev(o), dev(g));
      if (logDiff) report.push(`${label}: read logs differ at ${logDiff}`);
      if (devDiff) report.push(`${label}: device reads differ at ${devDiff}`);
      expect(logDiff, 'read log').to.equal(null);
      expect(devDiff, 'device reads').to.equal(null);
    });
  }

  describe('vanish mode (ENXIO after N reads)', function () {
    /** Device reads of a whole uninterrupted run (no -d), from the test above. */
    let total = 0;
    let uninterrupted = '';

    before(function () {
      const r = results.get('buffered');
      if (!r) throw new Error('the uninterrupted run without -d did not run');
      total = r.ours.device.length;
      uninterrupted = r.ours.map;
    });

    for (const when of ['copying', 'late'] as const) {
      it(`vanishing ${when === 'copying' ? 'in the copying phase' : 'near the end, with -d'}: exit 1 naming the source, a true mapfile, and a resume on a fresh mount finishes like an uninterrupted run`, async function () {
        const n = when === 'copying' ? 40 : total - 25;
        const folder = `vanish-${when}`;
        const gone = await mount({ vanishAfterReads: n });
        const options = when === 'late' ? ['-d'] : [];
        const o = await rescue('ours', gone, 'vanish', options, folder);
        expect(o.exit.code, `exit status (stderr: ${o.exit.stderr})`).to.equal(1);
        expect(o.exit.signal).to.equal(null);
        expect(o.exit.stderr, 'the message names the source').to.contain(gone.path);
        expect(o.device.filter((r) => r.result === 'ENXIO').length, 'one failed read, then a stop').to.equal(1);
        const { map } = await checkTrue(join(root, folder), data, `after vanishing (${n} reads)`);
        expect(map.currentStatus, 'not finished').to.not.equal('+');
        const leftovers = readdirSync(join(root, folder)).filter((f) => f.endsWith('.tmp'));
        expect(leftovers, 'no temporary files').to.deep.equal([]);
        // GNU ddrescue on the same failure
        const gnuGone = await mount({ vanishAfterReads: n });
        const g = await rescue('gnu', gnuGone, 'vanish', options, `${folder}-gnu`);
        expect(g.exit.code, 'GNU ddrescue\'s exit status').to.equal(1);
        expect(mapBody(o.map), 'the saved mapfile = GNU ddrescue\'s').to.equal(mapBody(g.map));
        const ourMsg = o.exit.stderr.trim().split('\n').filter((l) => l.includes(gone.path)).join(' | ');
        const gnuMsg = `${g.exit.stdout}${g.exit.stderr}`.trim().split('\n').filter((l) => l.includes(gnuGone.path)).join(' | ');
        report.push(`vanish after ${n} reads${options.length ? ` (${options.join(' ')})` : ''}: ${hex(map.currentPos)} ${map.currentStatus} ${map.currentPass}; ours: "${ourMsg.replace(gone.path, 'SRC')}"; GNU: "${gnuMsg.replace(gnuGone.path, 'SRC')}"`);
        // resume on a fresh mount
        const fresh = await mount();
        const r = await rescue('ours', fresh, 'resume', options, folder);
        expect(r.exit.code, `resume exit status (stderr: ${r.exit.stderr})`).to.equal(0);
        const after = await checkTrue(join(root, folder), data, 'after the resume');
        expect(blocksOf(after.map)).to.deep.equal(expectedBlocks());
        expect(mapBody(after.text), 'final mapfile = the uninterrupted run\'s').to.equal(mapBody(uninterrupted));
      });
    }
  });
});
