/**
 * Crash safety of `ddferry-reader ddrescue`: the CLI is killed with SIGKILL at random
 * moments (a random delay after start, or after the mapfile, the output or the reads
 * log shows progress) and resumed with the same command until it finishes. After every
 * kill the mapfile (if there is one yet) parses strictly, and every byte it calls `+`
 * is in the output; a leftover temporary file of an interrupted atomic save is never
 * taken for the mapfile. At the end the mapfile equals (header lines aside) both an
 * uninterrupted run's and GNU ddrescue 1.27's for the same test map and options.
 *
 * SIGINT, SIGTERM and SIGHUP end the process as they end ddrescue: the final mapfile is
 * saved with the phase status (not `+`), and the process dies by the same signal.
 *
 * Sources are `-H` test maps over 16-64 MiB of seeded pseudo-random data. The seed is
 * printed; DDFERRY_CRASH_SEED=N replays a run. Needs GNU ddrescue 1.27 (gddrescue):
 * fails, never skips, without it.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { type Mapfile, parseMapfile } from '@ddferry/mapfile';
import { readMapfile } from '@ddferry/mapfile/io';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..', '..', '..');
const BIN = resolve(HERE, '..', '..', 'bin', 'ddferry-reader.js');
const MiB = 1 << 20;
/** No single run of the CLI or of ddrescue may take longer. */
const RUN_TIMEOUT_MS = 120_000;

// ---------------------------------------------------------------------------------
// seeded randomness

const SEED = Number(process.env.DDFERRY_CRASH_SEED ?? (Date.now() % 1_000_000_007));

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

/** `size` pseudo-random bytes from `seed` (AES-128-CTR keystream). */
function seededBytes(size: number, seed: string): Buffer {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

// ---------------------------------------------------------------------------------
// maps

interface Range {
  readonly pos: number;
  readonly size: number;
}

const hex = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;

/** A strict test map of `size` bytes: `-` on the bad ranges (sorted, disjoint), `+` elsewhere. */
function testMapText(size: number, bad: readonly Range[]): string {
  const lines = ['# crash test map', '0 +'];
  let pos = 0;
  for (const b of bad) {
    if (b.pos > pos) lines.push(`${hex(pos)} ${hex(b.pos - pos)} +`);
    lines.push(`${hex(b.pos)} ${hex(b.size)} -`);
    pos = b.pos + b.size;
  }
  if (pos < size) lines.push(`${hex(pos)} ${hex(size - pos)} +`);
  return `${lines.join('\n')}\n`;
}

/** A mapfile without its first line and its command-line and time lines. */
function mapBody(text: string): string {
  return text.split('\n').slice(1).filter((l) => !/^# (Command line|Start time|Current time):/.test(l)).join('\n');
}

/** The `# ...` message line a mapfile carries before the status line, or ''. */
function messageLine(text: string): string {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.startsWith('# current_pos'));
  const prev = lines[i - 1] ?? '';
  return i > 0 && !/^# (Mapfile\.|Command line|Start time|Current time)/.test(prev) ? prev.slice(2) : '';
}

function blocksOf(m: Mapfile): { pos: number; end: number; status: string }[] {
  const out: { pos: number; end: number; status: string }[] = [];
  for (let i = 0; i < m.blocks.length; ++i) out.push({ pos: m.blocks.pos(i), end: m.blocks.end(i), status: m.blocks.status(i) });
  return out;
}

// ---------------------------------------------------------------------------------
// processes

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  readonly stdout: string;
}

interface Running {
  readonly child: ChildProcess;
  readonly exit: Promise<Exit>;
}

const children = new Set<ChildProcess>();

function start(file: string, args: readonly string[], cwd: string): Running {
  const child = spawn(file, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  let stdout = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 100_000) stderr += chunk.toString('utf8');
  });
  child.stdout?.on('data', (chunk: Buffer) => {
    if (stdout.length < 100_000) stdout += chunk.toString('utf8');
  });
  const exit = new Promise<Exit>((resolveExit, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} ${args.join(' ')} did not end within ${RUN_TIMEOUT_MS} ms`));
    }, RUN_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      children.delete(child);
      reject(new Error(`cannot run ${file}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolveExit({ code, signal, stderr, stdout });
    });
  });
  return { child, exit };
}

function ours(args: readonly string[], cwd: string): Running {
  return start(process.execPath, [BIN, 'ddrescue', ...args], cwd);
}

function gnu(args: readonly string[], cwd: string): Running {
  return start('ddrescue', args, cwd);
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** A moment at which the child is killed. */
type Trigger =
  | { readonly kind: 'delay'; readonly ms: number }
  /** after this many mapfile saves were seen (a new inode or mtime) */
  | { readonly kind: 'saves'; readonly count: number }
  /** once the output file holds at least this many bytes */
  | { readonly kind: 'output'; readonly bytes: number }
  /** once the reads log has been written out (it is buffered in 64 KiB pieces) */
  | { readonly kind: 'readslog'; readonly bytes: number };

function describeTrigger(t: Trigger): string {
  switch (t.kind) {
    case 'delay': return `${t.ms} ms after start`;
    case 'saves': return `after ${t.count} mapfile saves`;
    case 'output': return `once the output reached ${t.bytes} bytes`;
    case 'readslog': return `once the reads log reached ${t.bytes} bytes`;
  }
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/**
 * Send `signal` to `child` when `trigger` fires. Mapfile saves are counted from the
 * folder's inotify events (each atomic save renames a temporary file to `map`), so
 * none is missed however busy this process is.
 * @returns ms after start at which the signal was sent (-1 if the child ended first),
 * and the number of mapfile saves seen meanwhile.
 */
async function fireWhen(run: Running, trigger: Trigger, files: { map: string; out: string; readsLog?: string }, signal: NodeJS.Signals, target?: () => number | undefined): Promise<{ at: number; saves: number }> {
  const t0 = Date.now();
  let ended = false;
  void run.exit.then(() => { ended = true; }, () => { ended = true; });
  let saves = 0;
  const mapName = basename(files.map);
  const watcher = watch(dirname(files.map), (event, name) => {
    if (event === 'rename' && name === mapName) ++saves;
  });
  try {
    for (;;) {
      if (ended) {
        await sleep(20); // let the last inotify events in
        return { at: -1, saves };
      }
      let fire = false;
      switch (trigger.kind) {
        case 'delay':
          fire = Date.now() - t0 >= trigger.ms;
          break;
        case 'saves':
          fire = saves >= trigger.count;
          break;
        case 'output':
          fire = sizeOf(files.out) >= trigger.bytes;
          break;
        case 'readslog':
          // written by this run (the log of the run before is there until it is truncated)
          fire = files.readsLog !== undefined && sizeOf(files.readsLog) >= trigger.bytes && mtimeOf(files.readsLog) >= t0;
          break;
      }
      if (fire) {
        const pid = target ? target() : run.child.pid;
        if (pid !== undefined) process.kill(pid, signal);
        return { at: Date.now() - t0, saves };
      }
      await sleep(1);
    }
  } finally {
    watcher.close();
  }
}

// ---------------------------------------------------------------------------------
// checks

const TMP_NAME = /^\.map\.\d+\.[0-9a-f]+\.tmp$/;

interface DirState {
  /** The mapfile, or null if none was written yet. */
  readonly map: Mapfile | null;
  readonly mapText: string;
  readonly leftovers: readonly string[];
  readonly rescued: number;
}

/**
 * The invariants that must hold at any moment: the mapfile parses strictly, covers the
 * whole (test-mode) input, and every `+` byte of it is in the output; nothing but the
 * expected files and temporaries of an interrupted save lies around.
 */
async function checkDir(dir: string, input: Buffer, insize: number, expected: ReadonlySet<string>, where: string): Promise<DirState> {
  const names = readdirSync(dir);
  const leftovers = names.filter((n) => TMP_NAME.test(n));
  const strange = names.filter((n) => !expected.has(n) && !TMP_NAME.test(n));
  expect(strange, `${where}: unexpected files`).to.deep.equal([]);
  const mapPath = join(dir, 'map');
  if (!existsSync(mapPath)) return { map: null, mapText: '', leftovers, rescued: 0 };
  const mapText = readFileSync(mapPath, 'latin1');
  let map: Mapfile;
  try {
    map = await readMapfile(mapPath);
  } catch (err) {
    throw new Error(`${where}: the mapfile does not parse strictly: ${(err as Error).message}\n${mapText}`);
  }
  const blocks = blocksOf(map);
  expect(blocks.length, `${where}: the mapfile has blocks`).to.be.greaterThan(0);
  expect(blocks[0]?.pos, `${where}: the map starts at 0`).to.equal(0);
  expect(blocks[blocks.length - 1]?.end, `${where}: the map ends at the input size`).to.equal(insize);
  const out = existsSync(join(dir, 'out')) ? readFileSync(join(dir, 'out')) : Buffer.alloc(0);
  let rescued = 0;
  for (const b of blocks) {
    if (b.status !== '+') continue;
    rescued += b.end - b.pos;
    expect(out.length, `${where}: output length covers + block ${hex(b.pos)}-${hex(b.end)}`).to.be.at.least(b.end);
    if (!out.subarray(b.pos, b.end).equals(input.subarray(b.pos, b.end))) {
      let k = b.pos;
      while (k < b.end && out[k] === input[k]) ++k;
      expect.fail(`${where}: the mapfile says + for ${hex(b.pos)}-${hex(b.end)} but the output differs from the input at ${hex(k)}`);
    }
  }
  if (existsSync(join(dir, 'map.bak'))) await readMapfile(join(dir, 'map.bak'));
  return { map, mapText, leftovers, rescued };
}

// ---------------------------------------------------------------------------------
// scenarios

interface Scenario {
  readonly name: string;
  readonly size: number;
  readonly bad: readonly Range[];
  /** ddrescue options before the file names (`-H testmap` is added). */
  readonly options: readonly string[];
  /** SIGKILLs to deliver before letting a run finish. */
  readonly kills: number;
  /**
   * `progress`: the mapfile is saved after every read, so kills are planned at random
   * read counts (from GNU ddrescue's read count for the same job) spread over the
   * whole job, mixed with random delays and output growth. `time`: random delays after
   * start, or the first write of the reads log.
   */
  readonly plan: 'progress' | 'time';
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: '16 MiB, --mapfile-interval=0, forwards',
    size: 16 * MiB,
    bad: [
      { pos: 0x10000, size: 0x200 }, // one sector at a cluster start
      { pos: 0x4FE00, size: 0x400 }, // straddles the 0x50000 cluster border
      { pos: 0x123456, size: 0x10 }, // 16 bytes inside one sector
      { pos: 0x300000, size: 0x8000 }, // 64 sectors
      { pos: 0x7FF000, size: 0x3000 }, // straddles 0x800000
      { pos: 0xA00000, size: 0x20000 }, // 256 sectors, two clusters
      { pos: 0xFFFC00, size: 0x200 }, // one sector before the last one
    ],
    options: ['--mapfile-interval=0'],
    kills: 8,
    plan: 'progress',
  },
  {
    name: '24 MiB, --mapfile-interval=0, -r2, first and last sectors bad',
    size: 24 * MiB,
    bad: [
      { pos: 0, size: 0x200 }, // the very first sector
      { pos: 0x200000, size: 0x1000 },
      { pos: 0x5FFF00, size: 0x200 }, // straddles a sector and the 0x600000 cluster border
      { pos: 0x900000, size: 0x10000 }, // one whole cluster
      { pos: 0x17FFE00, size: 0x200 }, // the very last sector: the test-mode size ends before it
    ],
    options: ['--mapfile-interval=0', '-r2'],
    kills: 8,
    plan: 'progress',
  },
  {
    name: '32 MiB, --mapfile-interval=0, -R',
    size: 32 * MiB,
    bad: [
      { pos: 0x400000, size: 0x200 },
      { pos: 0x80FF00, size: 0x300 }, // unaligned, over the 0x810000 cluster border
      { pos: 0x1000000, size: 0x18000 }, // 192 sectors
      { pos: 0x1F00000, size: 0x1000 },
    ],
    options: ['--mapfile-interval=0', '-R'],
    kills: 7,
    plan: 'progress',
  },
  {
    name: '64 MiB, default mapfile interval, -R -r2, --log-reads',
    size: 64 * MiB,
    bad: [
      { pos: 0x100000, size: 0x80000 },
      { pos: 0x1234400, size: 0x200 },
      { pos: 0x2FFFE00, size: 0x400 },
      { pos: 0x3FF0000, size: 0x8000 },
    ],
    options: ['-R', '-r2', '--log-reads=reads.log'],
    kills: 5,
    plan: 'time',
  },
];

/** The test-mode input size: the end of the last `+` block of the test map (spec 3.1). */
function testModeSize(s: Scenario): number {
  const last = s.bad[s.bad.length - 1];
  return last !== undefined && last.pos + last.size === s.size ? last.pos : s.size;
}

interface Prepared {
  readonly dir: string;
  readonly input: Buffer;
  readonly insize: number;
  /** Options with the test map, as given to both programs. */
  readonly options: readonly string[];
}

function prepare(root: string, s: Scenario, index: number): Prepared {
  const dir = join(root, `s${index}`);
  mkdirSync(dir);
  const input = seededBytes(s.size, `${SEED}:${index}`);
  writeFileSync(join(dir, 'in'), input);
  writeFileSync(join(dir, 'testmap'), testMapText(s.size, s.bad));
  return { dir, input, insize: testModeSize(s), options: ['-H', '../testmap', ...s.options] };
}

interface Reference {
  readonly map: string;
  readonly out: Buffer;
}

/** A run of `program` in a fresh sub-folder with the same relative file names. */
async function referenceRun(p: Prepared, name: string, program: typeof ours, extra: readonly string[] = []): Promise<Reference> {
  const d = join(p.dir, name);
  mkdirSync(d);
  const r = await program(['-q', ...p.options, ...extra, '../in', 'out', 'map'], d).exit;
  expect(r.code, `${name} run: exit status (stderr: ${r.stderr})`).to.equal(0);
  return { map: readFileSync(join(d, 'map'), 'latin1'), out: readFileSync(join(d, 'out')) };
}

/** The status line (current_pos, status, pass) of a mapfile text. */
function statusLine(text: string): string {
  const lines = text.split('\n');
  return lines[lines.findIndex((l) => l.startsWith('# current_pos')) + 1] ?? '';
}

/**
 * GNU ddrescue resuming from `state` (the mapfile text the last run of ours started
 * from; '' for none): its final mapfile text.
 */
async function gnuResume(p: Prepared, name: string, state: string): Promise<string> {
  const d = join(p.dir, name);
  mkdirSync(d);
  if (state !== '') writeFileSync(join(d, 'map'), state);
  const r = await gnu(['-q', ...p.options, '../in', 'out', 'map'], d).exit;
  expect(r.code, `GNU ddrescue resuming: exit status (stderr: ${r.stderr})`).to.equal(0);
  return readFileSync(join(d, 'map'), 'latin1');
}

/**
 * The final mapfile after kills and resumes must equal GNU ddrescue's resume from the
 * same last state, and the uninterrupted runs' (ours and GNU's). The one exception is
 * ddrescue's own: `-r N` counts retry passes per run, and a run resumed at an even
 * (backward) retry pass runs passes 2..N+1, so only the status line may then differ
 * (spec 2.7). Returns a note when that happened.
 */
async function compareFinal(p: Prepared, name: string, finalText: string, state: string, ref: Reference, g: Reference): Promise<string> {
  const resumed = await gnuResume(p, name, state);
  expect(mapBody(finalText), 'final mapfile = GNU ddrescue\'s when resuming from the same mapfile').to.equal(mapBody(resumed));
  let note = '';
  if (statusLine(finalText) !== statusLine(ref.map)) {
    const m = state === '' ? null : parseMapfile(Buffer.from(state, 'latin1'));
    expect(m !== null && m.currentStatus === '-' && m.currentPass % 2 === 0,
      `the status line differs from the uninterrupted run's (${statusLine(finalText)} vs ${statusLine(ref.map)}) though the last resume was not at an even retry pass (state: ${state === '' ? 'none' : statusLine(state)})`).to.equal(true);
    note = `resumed at retry pass ${m?.currentPass}: status line ${statusLine(finalText).replace(/\s+/g, ' ')} (uninterrupted: ${statusLine(ref.map).replace(/\s+/g, ' ')}), as GNU ddrescue does`;
  }
  const body = (t: string): string => mapBody(t).replace(statusLine(t), '');
  const cmp = note ? body : mapBody;
  expect(cmp(finalText), 'final mapfile = uninterrupted run\'s').to.equal(cmp(ref.map));
  expect(cmp(finalText), 'final mapfile = GNU ddrescue\'s uninterrupted run\'s').to.equal(cmp(g.map));
  return note;
}

const memoGnu = new Map<number, Promise<Reference & { reads: number }>>();
const memoOurs = new Map<number, Promise<Reference>>();

/** GNU ddrescue's run of the job (fast), with its number of reads. */
function gnuReference(p: Prepared, index: number): Promise<Reference & { reads: number }> {
  let r = memoGnu.get(index);
  if (!r) {
    const logs = p.options.some((o) => o.startsWith('--log-reads'));
    r = referenceRun(p, 'gnu', gnu, logs ? [] : ['--log-reads=reads.log']).then((ref) => ({
      ...ref,
      reads: readFileSync(join(p.dir, 'gnu', 'reads.log'), 'latin1').split('\n').filter((l) => /^0x/.test(l)).length,
    }));
    memoGnu.set(index, r);
  }
  return r;
}

/** ddferry-reader's uninterrupted run of the job, with exactly the same command. */
function oursReference(p: Prepared, index: number): Promise<Reference> {
  let r = memoOurs.get(index);
  if (!r) {
    r = referenceRun(p, 'ref', ours);
    memoOurs.set(index, r);
  }
  return r;
}

/** The phase a mapfile status stands for. */
const PHASE_NAME: Readonly<Record<string, string>> = { '?': 'copying', '*': 'trimming', '/': 'scraping', '-': 'retrying', '+': 'finished' };

/** Lines of the final report. */
const report: string[] = [];
let totalKills = 0;
const phasesHit = new Set<string>();

// ---------------------------------------------------------------------------------

describe('crash safety: SIGKILL at random moments, then resume (system)', function () {
  let root: string;
  const prepared: Prepared[] = [];

  before(function () {
    const v = spawnSync('ddrescue', ['--version'], { encoding: 'utf8' });
    if (v.error || !/GNU ddrescue 1\.27/.test(v.stdout)) {
      throw new Error(`GNU ddrescue 1.27 is required for these tests (apt-get install -y gddrescue): ${v.error?.message ?? v.stdout.split('\n')[0]}`);
    }
    const build = spawnSync('npx', ['tsc', '-b', 'packages/reader'], { cwd: REPO, encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`npx tsc -b packages/reader failed; the CLI's dist is stale:\n${build.stdout}${build.stderr}`);
    root = mkdtempSync(join(tmpdir(), 'ddferry-crash-'));
    SCENARIOS.forEach((s, i) => prepared.push(prepare(root, s, i)));
    console.log(`      crash seed ${SEED} (replay with DDFERRY_CRASH_SEED=${SEED})`);
  });

  after(function () {
    for (const c of children) c.kill('SIGKILL');
    if (root) rmSync(root, { recursive: true, force: true });
    if (report.length > 0) console.log(`      ${report.join('\n      ')}`);
  });

  SCENARIOS.forEach((s, index) => {
    it(`${s.name}: ${s.kills} SIGKILLs, each leaving a valid mapfile true to the output; resumed to the uninterrupted run's and ddrescue's final map`, async function () {
      const p = prepared[index]!;
      const rng = prng(SEED * 31 + index);
      const g = await gnuReference(p, index);
      const refPromise = oursReference(p, index); // runs meanwhile
      const d = join(p.dir, 'crash');
      mkdirSync(d);
      const files = { map: join(d, 'map'), out: join(d, 'out'), readsLog: join(d, 'reads.log') };
      const expected = new Set(['map', 'map.bak', 'out', 'reads.log']);
      const args = [...p.options, '../in', 'out', 'map'];
      // kill points: cumulative mapfile saves (= reads with --mapfile-interval=0)
      // (the last one late, in scraping or retrying)
      const targets = Array.from({ length: s.kills }, (_, k) => Math.round(g.reads * (k === s.kills - 1 ? 0.85 + 0.1 * rng() : 0.02 + 0.9 * rng()))).sort((x, y) => x - y);
      let saves = 0;
      let kills = 0;
      let runs = 0;
      let mapfileSeen = false;
      let lastRescued = 0;
      /** The mapfile each run starts from. */
      let state = '';
      const points: string[] = [];
      for (;;) {
        ++runs;
        expect(runs, 'runs').to.be.at.most(2 * s.kills + 4);
        state = existsSync(files.map) ? readFileSync(files.map, 'latin1') : '';
        const run = ours(['-q', ...args], d);
        let fired = { at: -1, saves: 0 };
        let trigger: Trigger | undefined;
        if (kills >= s.kills) {
          fired = await fireWhen(run, { kind: 'saves', count: Number.POSITIVE_INFINITY }, files, 'SIGKILL');
          saves += fired.saves;
        } else {
          const r = rng();
          if (s.plan === 'time') {
            trigger = r < 0.7 ? { kind: 'delay', ms: randInt(rng, 0, 600) } : { kind: 'readslog', bytes: 1 };
          } else if (r < 0.2) {
            trigger = { kind: 'delay', ms: randInt(rng, 0, 400) };
          } else if (r < 0.3 && sizeOf(files.out) + 2 * MiB < p.insize) {
            trigger = { kind: 'output', bytes: sizeOf(files.out) + randInt(rng, 1, 2 * MiB) };
          } else {
            trigger = { kind: 'saves', count: Math.max(1, targets[kills]! - saves) };
          }
          fired = await fireWhen(run, trigger, files, 'SIGKILL');
          saves += fired.saves;
        }
        const exit = await run.exit;
        // a kill sent as the run was ending finds it gone: it finished whole (exit 0), and that is checked below
        const tooLate = fired.at >= 0 && exit.signal === null && exit.code === 0;
        if (tooLate) points.push(`${fired.at} ms, ${describeTrigger(trigger!)}: the run had finished before the SIGKILL`);
        if (fired.at >= 0 && !tooLate) {
          expect(exit.signal, `run ${runs}: killed (stderr: ${exit.stderr})`).to.equal('SIGKILL');
          ++kills;
          const where = `kill ${kills} (run ${runs}, ${describeTrigger(trigger!)}, at ${fired.at} ms; seed ${SEED})`;
          const st = await checkDir(d, p.input, p.insize, expected, where);
          if (mapfileSeen) expect(st.map, `${where}: the mapfile vanished`).to.not.equal(null);
          if (st.map) {
            mapfileSeen = true;
            // saved progress never goes back
            expect(st.rescued, `${where}: rescued bytes`).to.be.at.least(lastRescued);
            lastRescued = st.rescued;
            phasesHit.add(PHASE_NAME[st.map.currentStatus] ?? st.map.currentStatus);
          }
          points.push(`${fired.at} ms, ${describeTrigger(trigger!)}: ${st.map ? `${hex(st.map.currentPos)} ${st.map.currentStatus} ${st.map.currentPass}, ${st.rescued} B rescued` : 'no mapfile yet'}${st.leftovers.length ? `, ${st.leftovers.length} .tmp` : ''}`);
          continue;
        }
        expect(exit.signal, `run ${runs}: exit signal (stderr: ${exit.stderr})`).to.equal(null);
        expect(exit.code, `run ${runs}: exit status (stderr: ${exit.stderr})`).to.equal(0);
        break;
      }
      totalKills += kills;
      const final = await checkDir(d, p.input, p.insize, expected, 'after the last run');
      expect(final.map?.currentStatus, 'final status').to.equal('+');
      const ref = await refPromise;
      const note = await compareFinal(p, 'gnu-resume', final.mapText, state, ref, g);
      if (note) points.push(note);
      const out = readFileSync(files.out);
      expect(out.equals(ref.out), 'output = uninterrupted run\'s output').to.equal(true);
      expect(out.equals(g.out), 'output = GNU ddrescue\'s output').to.equal(true);
      report.push(`${s.name}: ${runs} runs, ${kills} kills, ${saves} mapfile saves (GNU: ${g.reads} reads); ${final.leftovers.length} leftover .tmp file(s) at the end`);
      for (const pt of points) report.push(`  ${pt}`);
      if (kills < s.kills) report.push(`  (finished before ${s.kills - kills} planned kill(s))`);
    });
  });

  it('delivered at least 20 SIGKILLs in all', function () {
    report.push(`${totalKills} SIGKILLs in all; phases hit: ${[...phasesHit].join(', ')}`);
    expect(totalKills).to.be.at.least(20);
  });

  describe('SIGINT, SIGTERM and SIGHUP', function () {
    /** The job of scenario 1 (-r2); the fraction of its reads picks the phase. */
    const JOB = 1;
    const CASES: readonly { signal: NodeJS.Signals; at: [number, number]; viaShell: boolean }[] = [
      { signal: 'SIGINT', at: [0.05, 0.3], viaShell: false },
      { signal: 'SIGTERM', at: [0.4, 0.6], viaShell: true },
      { signal: 'SIGHUP', at: [0.75, 0.9], viaShell: false },
    ];
    const PHASE: Readonly<Record<string, RegExp>> = {
      '?': /^Copying non-tried blocks\.\.\. Pass [1-5] \((forwards|backwards)\)$/,
      '*': /^Trimming failed blocks\.\.\. \((forwards|backwards)\)$/,
      '/': /^Scraping failed blocks\.\.\. \((forwards|backwards)\)$/,
      '-': /^Retrying bad sectors\.\.\. Retry \d+ \((forwards|backwards)\)$/,
    };

    for (const c of CASES) {
      it(`${c.signal}${c.viaShell ? ' (through sh: status 128+n)' : ''}: dies by the signal, saves the phase status, resumes to the same final map`, async function () {
        const p = prepared[JOB]!;
        const rng = prng(SEED * 17 + c.signal.length);
        const g = await gnuReference(p, JOB);
        const refPromise = oursReference(p, JOB);
        const d = join(p.dir, c.signal);
        mkdirSync(d);
        const files = { map: join(d, 'map'), out: join(d, 'out') };
        const args = [...p.options, '../in', 'out', 'map'];
        const run = c.viaShell
          ? start('sh', ['-c', '"$@"; echo "status=$?" >&2', 'sh', process.execPath, BIN, 'ddrescue', ...args], d)
          : ours(args, d);
        const shPid = run.child.pid;
        const target = c.viaShell
          ? () => {
            const kids = readFileSync(`/proc/${shPid}/task/${shPid}/children`, 'utf8').trim().split(/\s+/);
            return kids[0] ? Number(kids[0]) : undefined;
          }
          : undefined;
        const count = Math.round(g.reads * (c.at[0] + (c.at[1] - c.at[0]) * rng()));
        const { at } = await fireWhen(run, { kind: 'saves', count }, files, c.signal, target);
        expect(at, 'the run ended before the signal was sent').to.be.at.least(0);
        const exit = await run.exit;
        if (c.viaShell) {
          const n = c.signal === 'SIGTERM' ? 15 : c.signal === 'SIGINT' ? 2 : 1;
          expect(exit.stderr, 'the shell sees 128+n').to.match(new RegExp(`status=${128 + n}\\n`));
        } else {
          expect({ code: exit.code, signal: exit.signal }, `exit (stderr: ${exit.stderr})`).to.deep.equal({ code: null, signal: c.signal });
        }
        expect(exit.stderr, 'the interruption is reported').to.contain('Interrupted by user');
        const st = await checkDir(d, p.input, p.insize, new Set(['map', 'out']), `after ${c.signal}`);
        expect(st.map, 'a mapfile').to.not.equal(null);
        const status = st.map!.currentStatus;
        expect(status, 'the saved status is the phase, not finished').to.not.equal('+');
        const message = messageLine(st.mapText);
        expect(message, `the message line of a ${status} mapfile`).to.match(PHASE[status] ?? /^$/);
        if (status === '?') expect(message).to.contain(`Pass ${st.map!.currentPass} `);
        expect(st.leftovers, 'no temporary file after a clean interruption').to.deep.equal([]);
        report.push(`${c.signal}: sent after ${count} saves (${at} ms), saved ${hex(st.map!.currentPos)} ${status} ${st.map!.currentPass} "${message}"`);
        const resume = await ours(['-q', ...args], d).exit;
        expect(resume.code, `resume (stderr: ${resume.stderr})`).to.equal(0);
        const final = await checkDir(d, p.input, p.insize, new Set(['map', 'out']), `after resuming from ${c.signal}`);
        const note = await compareFinal(p, `gnu-resume-${c.signal}`, final.mapText, st.mapText, await refPromise, g);
        if (note) report.push(`  ${note}`);
      });
    }

    it('GNU ddrescue 1.27 ends the same way on each signal (reference)', async function () {
      const p = prepared[JOB]!;
      await Promise.all(CASES.map(async (c) => {
        const d = join(p.dir, `gnu-${c.signal}`);
        mkdirSync(d);
        // -Z slows ddrescue down so that the signal lands mid-copy
        const run = gnu(['-Z', '4Mi', ...p.options, '../in', 'out', 'map'], d);
        await fireWhen(run, { kind: 'delay', ms: 600 }, { map: join(d, 'map'), out: join(d, 'out') }, c.signal);
        const exit = await run.exit;
        expect({ code: exit.code, signal: exit.signal }, `GNU ddrescue on ${c.signal}`).to.deep.equal({ code: null, signal: c.signal });
        expect(exit.stdout, 'ddrescue writes its screen on stdout').to.contain('Interrupted by user');
        const text = readFileSync(join(d, 'map'), 'latin1');
        const m = await readMapfile(join(d, 'map'));
        expect(m.currentStatus).to.equal('?');
        expect(messageLine(text)).to.match(PHASE['?']!);
      }));
    });
  });
});
