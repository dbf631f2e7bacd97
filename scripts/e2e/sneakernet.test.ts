/**
 * Sneakernet end to end on real FAT32 and exFAT sticks (loop devices through FUSE,
 * stick-harness.ts): `ddferry-reader rescue JOB --to MNT` (exit 4: stick full, 0: all
 * read) and `ddferry-assembler import MNT IMAGE`, trip after trip, with the stick
 * unmounted and mounted again between the two sides (what was not durable is lost). At
 * the end the image equals the source on every `+` byte and IMAGE.map = common.map = GNU
 * ddrescue's final map for the same test map. Then the faults: the stick filled from
 * outside in the middle of a bundle, damaged bundles (bytes flipped in a sealed frame and
 * in a sealed header, truncated, renamed, swapped, an entry `../x`), kill -9 of the reader while it writes
 * bundles and of the assembler while it imports, LAN trips between stick trips, and GNU
 * ddrescue's own chunk files both ways.
 *
 * Random choices come from a seeded PRNG: the seed is printed; DDFERRY_E2E_SEED replays it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';
import tarStream from 'tar-stream';

import {
  ASSEMBLER, READER, type Block, type Scenario, type SpoolPiece, blocksOf, checkForward, checkImageBlocks, checkMapfile, checkR1, compact, ddrescueFinalMap,
  finalChecks, fmt, importArgs, jobSize, keysOf, killAll, makeScenario, planOf, prng, randInt, randomBad, readBundleFile, sleep, spoolPieces, startAssembler,
  startReader, tarEntries, testSeed,
} from './harness.js';
import { type Stick, type StickFs, makeStick } from './stick-harness.js';

const MiB = 1 << 20;
const MAX_TRIPS = 40;

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  /** Whether `killWhen` fired (the process was sent SIGKILL). */
  readonly killed: boolean;
}

const running = new Set<ChildProcess>();

/**
 * Run a command; `killWhen` (given its stderr so far) is polled every 2 ms and SIGKILLs
 * the process when true; `onSpawn` gets the child (to SIGSTOP it, say).
 */
function run(cmd: string, args: readonly string[], o: { killWhen?: (stderr: string) => boolean; cwd?: string; onSpawn?: (c: ChildProcess) => void } = {}): Promise<Run> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: o.cwd });
  running.add(child);
  let stderr = '';
  let killed = false;
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const poll = o.killWhen === undefined ? undefined : setInterval(() => {
    if (!killed && o.killWhen!(stderr)) {
      killed = true;
      child.kill('SIGKILL');
    }
  }, 2);
  o.onSpawn?.(child);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      stderr += `spawn ${cmd}: ${err.message}\n`;
    });
    child.on('close', (code, signal) => {
      clearInterval(poll);
      running.delete(child);
      resolve({ code, signal, stderr, killed });
    });
  });
}

const node = (args: readonly string[], o?: Parameters<typeof run>[2]): Promise<Run> => run(process.execPath, args, o);

function rescueIdOf(s: Scenario): string {
  return (JSON.parse(readFileSync(join(s.job, 'job.json'), 'utf8')) as { rescueId: string }).rescueId;
}

function folderOf(s: Scenario, stick: Stick): string {
  return join(stick.mount, 'ddferry', rescueIdOf(s));
}

function names(folder: string): string[] {
  return existsSync(folder) ? readdirSync(folder).sort() : [];
}

/** A bundle on the stick: its file, its sealed pieces (opened), and where its entries' bytes lie. */
interface Bundle {
  readonly name: string;
  readonly file: string;
  readonly pieces: SpoolPiece[];
  /** Where the first piece's sealed header starts in the file, and its size. */
  readonly headerAt: number;
  readonly headerSize: number;
  /** Where the first sealed frame starts in the file, and its size (ciphertext and tag); 0 when the bundle carries no data. */
  readonly dataAt: number;
  readonly dataSize: number;
}

/**
 * The bundles of the stick's rescue folder; each must read whole (no partial bundle under
 * a final name), open with the rescue's keys, and hold the source's bytes (R1: what the
 * stick holds is what was read).
 */
function stickBundles(s: Scenario, folder: string, source: Buffer, cache?: Map<string, Bundle & { stamp: string }>, skip?: ReadonlySet<string>): Bundle[] {
  const out: Bundle[] = [];
  const keys = keysOf(s);
  const plan = planOf(s);
  for (const name of names(folder)) {
    if (!/^piece-\d+\.tar$/.test(name) || skip?.has(name)) continue;
    const file = join(folder, name);
    const st = statSync(file);
    const stamp = `${st.size}@${st.mtimeMs}`;
    const known = cache?.get(name);
    if (known?.stamp === stamp) {
      out.push(known);
      continue;
    }
    const read = readBundleFile(file, readFileSync(file), keys, plan, source);
    const header = read.entries[0]!;
    const frame = read.entries.find((e) => /\.frame-\d+$/.test(e.name));
    const b = { name, file, pieces: read.pieces, headerAt: header.at, headerSize: header.data.length, dataAt: frame?.at ?? 0, dataSize: frame?.data.length ?? 0 };
    cache?.set(name, { ...b, stamp });
    out.push(b);
  }
  return out;
}

/** A stick receipt (format version 2): pieces by seq and header hash, refused bundles, a MAC. */
interface Receipt {
  readonly merged: Array<[number, string]>;
  readonly rejected: Array<{ bundle: string; seqs: number[]; code: string; reason: string }>;
}

function receiptsOf(folder: string): Receipt[] {
  const dir = join(folder, 'receipts');
  return names(dir).filter((n) => /^receipt-.*\.json$/.test(n)).map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as Receipt);
}

function imageBlocks(s: Scenario): Block[] | undefined {
  return existsSync(`${s.image}.map`) ? checkMapfile(`${s.image}.map`, jobSize(s)).blocks : undefined;
}

/** Statuses of `map` over [pos, pos + size), as blocks cropped to it ('?' where the map is absent). */
function cropped(map: readonly Block[] | undefined, pos: number, size: number): Block[] {
  if (map === undefined) return [{ pos, size, status: '?' }];
  const out: Block[] = [];
  for (const b of map) {
    const a = Math.max(pos, b.pos);
    const e = Math.min(pos + size, b.pos + b.size);
    if (a < e) out.push({ pos: a, size: e - a, status: b.status });
  }
  return compact(out);
}

/** `blocks` without the bytes of `ranges` (sorted blocks, not contiguous). */
function without(blocks: readonly Block[], ranges: ReadonlyArray<{ readonly pos: number; readonly size: number }>): Block[] {
  const cut = [...ranges].sort((x, y) => x.pos - y.pos);
  const out: Block[] = [];
  for (const b of blocks) {
    let p = b.pos;
    const end = b.pos + b.size;
    for (const c of cut) {
      if (c.pos + c.size <= p || c.pos >= end) continue;
      if (c.pos > p) out.push({ pos: p, size: c.pos - p, status: b.status });
      p = Math.max(p, c.pos + c.size);
    }
    if (p < end) out.push({ pos: p, size: end - p, status: b.status });
  }
  return out;
}

/**
 * The checks between trips: both mapfiles well formed, every `+` byte of the image equal
 * to the source (A1), every `+` byte of common.map `+` in IMAGE.map or held by a bundle on
 * the stick (R1), statuses only forward since the last check (A3).
 */
class TripChecks {
  readonly s: Scenario;
  readonly source: Buffer;
  common: Block[] | undefined;
  image: Block[] | undefined;

  constructor(s: Scenario) {
    this.s = s;
    this.source = readFileSync(s.source);
  }

  /**
   * Bundles damaged on purpose, by name, with the pieces they held: not read, and counted
   * as holding those pieces for R1 (the reader learns of the damage from the next receipt).
   */
  readonly damaged = new Map<string, SpoolPiece[]>();
  /** Bundles read and checked before, by name (their size and mtime unchanged). */
  readonly #seen = new Map<string, Bundle & { stamp: string }>();

  /** With `reread`, every bundle is read again (after a remount: were they durable?). */
  check(stick: Stick, what: string, reread = false): Bundle[] {
    const common = checkMapfile(join(this.s.job, 'common.map'), jobSize(this.s)).blocks;
    if (reread) this.#seen.clear();
    const bundles = stickBundles(this.s, folderOf(this.s, stick), this.source, this.#seen, new Set(this.damaged.keys()));
    const image = imageBlocks(this.s);
    if (image) checkImageBlocks(this.s, image, this.source);
    try {
      checkR1(common, [...bundles.flatMap((b) => b.pieces), ...[...this.damaged.values()].flat(), ...spoolPieces(this.s, this.source)], image ?? []);
      if (this.common) checkForward(this.common, common, 'common.map');
      if (this.image && image) checkForward(this.image, image, 'IMAGE.map');
    } catch (err) {
      throw new Error(`${what}: ${(err as Error).message}`);
    }
    this.common = common;
    this.image = image;
    return bundles;
  }
}

interface TripOptions {
  /** Extra options of `ddferry-reader rescue`. */
  readonly reader?: readonly string[];
  /** Before each import, with the bundles on the stick. */
  readonly beforeImport?: (trip: number, bundles: Bundle[]) => Promise<void> | void;
  /** Instead of a plain import. */
  readonly importer?: (trip: number) => Promise<void>;
  /** Before each reader trip (a killed reader first, say). */
  readonly beforeReader?: (trip: number) => Promise<void>;
  /** After each import, with the receipts it wrote (read before the reader deletes them). */
  readonly afterImport?: (trip: number, receipts: Receipt[]) => void;
  /** Receipts written by each import. */
  readonly receipts?: Receipt[][];
}

/** Trips until the reader says the rescue is complete; returns the reader's exit codes. */
async function tripUntilComplete(s: Scenario, stick: Stick, checks: TripChecks, o: TripOptions = {}): Promise<number[]> {
  const codes: number[] = [];
  const folder = folderOf(s, stick);
  for (let trip = 1; ; ++trip) {
    expect(trip, `not complete after ${MAX_TRIPS} trips (reader exit codes ${codes.join(' ')})`).to.be.at.most(MAX_TRIPS);
    await o.beforeReader?.(trip);
    const r = await node([READER, 'rescue', s.job, '--to', stick.mount, '-q', ...(o.reader ?? [])]);
    expect(r.code, `trip ${trip}: ddferry-reader rescue --to ${stick.mount}:\n${r.stderr}`).to.be.oneOf([0, 4]);
    codes.push(r.code!);
    if (r.code === 4) {
      expect(r.stderr, `trip ${trip}: the full-stick message`).to.contain(`The stick ${stick.mount} is full`)
        .and.contain(`   ddferry-assembler import STICK IMAGE --token-file TOKEN     (on PC_B; STICK: where the stick is mounted there, IMAGE: the image file there, TOKEN: PC_B's copy of ${s.token} from here)\n`);
    }
    if (r.stderr.includes('The rescue is complete')) break;
    const tmp = names(folder).filter((n) => n.endsWith('.tmp'));
    expect(tmp, `trip ${trip}: temporaries left by a reader that exited ${r.code}`).to.deep.equal([]);
    const bundles = checks.check(stick, `after reader trip ${trip}`);
    // carried to PC_B: what is on the stick must survive the unmount
    const before = names(folder);
    await stick.remount();
    expect(names(folder), `trip ${trip}: the stick's rescue folder after remount`).to.deep.equal(before);
    checks.check(stick, `after reader trip ${trip} and a remount`, true);
    await o.beforeImport?.(trip, bundles);
    if (o.importer) await o.importer(trip);
    else {
      const i = await node(importArgs(s, stick.mount));
      expect(i.code, `trip ${trip}: ddferry-assembler import:\n${i.stderr}`).to.equal(0);
    }
    const written = receiptsOf(folder);
    o.receipts?.push(written);
    o.afterImport?.(trip, written);
    // carried back to PC_A
    await stick.remount();
    checks.check(stick, `after import ${trip} and a remount`);
  }
  return codes;
}

/** The end of a stick rescue: finalChecks, and no bundle and no temporary left on the stick. */
function stickFinalChecks(s: Scenario, stick: Stick): void {
  finalChecks(s);
  const left = names(folderOf(s, stick)).filter((n) => /^piece-|\.tmp$/.test(n));
  expect(left, 'bundles or temporaries left on the stick after the rescue is complete').to.deep.equal([]);
}

const seed = testSeed('sneakernet.test.ts');
const master = prng(seed);
/** A seed per test, drawn in file order, so one printed seed replays all. */
const seeds = Array.from({ length: 12 }, () => Math.floor(master() * 2 ** 32));

describe('sneakernet on real FAT32 and exFAT sticks (loop devices, FUSE)', function () {
  this.timeout(600_000);
  let s: Scenario | undefined;
  let stick: Stick | undefined;
  let other: Stick | undefined;

  afterEach(async function () {
    for (const c of running) c.kill('SIGKILL');
    await killAll();
    for (let i = 0; running.size > 0 && i < 100; ++i) await sleep(20);
    await stick?.destroy();
    await other?.destroy();
    s?.remove();
    s = undefined;
    stick = undefined;
    other = undefined;
  });

  const fss: readonly StickFs[] = ['fat32', 'exfat'];
  for (const [k, fs] of fss.entries()) {
    // 256 MiB once (FAT32, the slower and stranger one), 160 MiB on exFAT: the file's run time
    const size = (fs === 'fat32' ? 256 : 160) * MiB;
    it(`${fs}: a ${size / MiB} MiB source on a 64 MiB stick, trips (remount between sides) until complete; image = source on +, IMAGE.map = common.map = GNU ddrescue's`, async function () {
      const rnd = prng(seeds[k]!);
      const bad = randomBad(rnd, size, 16 * MiB);
      s = makeScenario({ size, bad, chunkSize: '16MiB', seed: seeds[k]! & 0xffff });
      stick = await makeStick({ fs, size: 64 * MiB });
      const checks = new TripChecks(s);
      const receipts: Receipt[][] = [];
      let carried: SpoolPiece[] = [];
      const codes = await tripUntilComplete(s, stick, checks, {
        receipts,
        beforeImport: (_trip, bundles) => {
          carried = bundles.flatMap((b) => b.pieces);
        },
        // R5: the receipt names every carried piece by its seq and its own header hash
        afterImport: (trip, written) => {
          const named = new Map(written.flatMap((r) => r.merged));
          for (const p of carried) expect(named.get(p.seq), `import ${trip}: the receipt names piece ${p.seq} of ${p.file} with its header hash`).to.equal(p.headerHash);
        },
      });
      console.log(`      ${fs}: ${codes.length} trips, reader exit codes ${codes.join(' ')}; bad areas ${bad.map(([p, n]) => `${p}+${n}`).join(' ')}`);
      expect(codes.filter((c) => c === 4).length, 'trips that filled the stick').to.be.at.least(Math.floor(size / (64 * MiB)));
      for (const [i, r] of receipts.entries()) expect(r.flatMap((x) => x.rejected), `import ${i + 1} refused bundles`).to.deep.equal([]);
      expect(receipts.every((r) => r.length >= 1), 'every import wrote a receipt').to.equal(true);
      stickFinalChecks(s, stick);
      expect(checks.common!.some((b) => b.status === '-'), 'the source has bad sectors left').to.equal(true);
      await stick.unmount();
      const fsck = stick.check();
      console.log(`      ${fs}: fsck -n after the rescue: ${fsck.ok ? 'clean' : `NOT clean:\n${fsck.output}`}`);
      expect(fsck.ok, `fsck -n of the ${fs} stick after the rescue:\n${fsck.output}`).to.equal(true);
    });
  }

  for (const [k, fs] of fss.entries()) {
    it(`${fs}: the stick filled from outside in the middle of a bundle: clean stop (exit 4), no partial bundle; the next trip goes on`, async function () {
      const rnd = prng(seeds[2 + k]!);
      const size = 48 * MiB;
      s = makeScenario({ size, bad: randomBad(rnd, size, 8 * MiB), chunkSize: '8MiB', seed: 3 + k });
      stick = await makeStick({ fs, size: 32 * MiB });
      const folder = folderOf(s, stick);
      const checks = new TripChecks(s);
      // stop the reader while it writes a bundle (its temporary exists) after a first one, fill the stick to the last byte, go on
      let filled = false;
      let stopped: ChildProcess | undefined;
      const watch = setInterval(() => {
        if (stopped === undefined || filled) return;
        const n = names(folder);
        if (n.some((x) => /^\.piece-\d+\.tar\.tmp$/.test(x)) && n.some((x) => /^piece-\d+\.tar$/.test(x))) {
          filled = true;
          stopped.kill('SIGSTOP');
        }
      }, 1);
      const started = node([READER, 'rescue', s.job, '--to', stick.mount, '-q'], { onSpawn: (c) => (stopped = c) });
      while (!filled) {
        await Promise.race([started, sleep(5)]);
        if (!filled && stopped?.exitCode !== null) break;
      }
      clearInterval(watch);
      expect(filled, 'the reader started writing a bundle').to.equal(true);
      const filler = stick.fill(0);
      const freeNow = stick.free();
      stopped!.kill('SIGCONT');
      const r = await started;
      expect(r.code, `the reader on a stick filled from outside:\n${r.stderr}`).to.equal(4);
      expect(r.stderr).to.contain(`The stick ${stick.mount} is full`);
      const midWrite = /ERR_STICK_FULL: .*nothing of that piece is on it/.test(r.stderr);
      console.log(`      ${fs}: ${freeNow} bytes left by the filler while a bundle was being written; the reader stopped ${midWrite ? 'on a failed bundle write' : 'at its free-space check'}: ${r.stderr.split('\n').find((l) => /ERR_|full/.test(l)) ?? ''}`);
      expect(midWrite, 'the bundle being written when the stick was filled failed (ERR_STICK_FULL)').to.equal(true);
      expect(r.stderr, 'no crash').to.not.match(/node:events|Unhandled|\n\s+at /);
      const tmp = names(folder).filter((n) => n.endsWith('.tmp'));
      expect(tmp, 'temporaries left on the stick').to.deep.equal([]);
      checks.check(stick, 'after the filled trip');
      await stick.remount();
      checks.check(stick, 'after the filled trip and a remount');
      rmSync(filler);
      expect(stick.free()).to.be.above(16 * MiB);
      const codes = await tripUntilComplete(s, stick, checks);
      expect(codes.filter((c) => c === 4).length, 'later trips filled the stick again').to.be.at.least(1);
      stickFinalChecks(s, stick);
    });
  }

  for (const [k, fs] of fss.entries()) {
    it(`${fs}: a stick that fills while the reader writes its first file (rescue.json): exit 1, ERR_STICK_FULL naming the stick, no crash; the next trip goes on`, async function () {
      s = makeScenario({ size: 12 * MiB, bad: [[5 * MiB, 4096], [8 * MiB - 1024, 2048]], chunkSize: '4MiB', seed: 11 + k });
      stick = await makeStick({ fs, size: 32 * MiB });
      const folder = folderOf(s, stick);
      let caught = false;
      let child: ChildProcess | undefined;
      const watch = setInterval(() => {
        if (child === undefined || caught) return;
        if (names(folder).includes('.rescue.json.tmp')) {
          caught = true;
          child.kill('SIGSTOP');
        }
      }, 1);
      const started = node([READER, 'rescue', s.job, '--to', stick.mount, '-q'], { onSpawn: (c) => (child = c) });
      while (!caught && child?.exitCode === null) await Promise.race([started, sleep(2)]);
      clearInterval(watch);
      expect(caught, 'the reader was caught writing rescue.json').to.equal(true);
      const filler = stick.fill(0);
      child!.kill('SIGCONT');
      const r = await started;
      expect(r.stderr, 'no crash').to.not.match(/node:events|Unhandled|\n\s+at /);
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stderr).to.match(/ERR_STICK_FULL/).and.contain(stick.mount);
      expect(names(folder).filter((n) => n.endsWith('.tmp')), 'temporaries left').to.deep.equal([]);
      rmSync(filler);
      const checks = new TripChecks(s);
      await tripUntilComplete(s, stick, checks);
      stickFinalChecks(s, stick);
    });
  }

  it('fat32: a stick labelled DDFERRY (fusefat lists the label as a file "ddferry" at the root): a coded error naming the stick, no crash', async function () {
    s = makeScenario({ size: 8 * MiB, bad: [], chunkSize: '4MiB', seed: 13 });
    stick = await makeStick({ fs: 'fat32', size: 32 * MiB, label: 'DDFERRY' });
    const r = await node([READER, 'rescue', s.job, '--to', stick.mount, '-q']);
    expect(r.code, r.stderr).to.equal(1);
    // the stick's folder is opened as a real folder first (links and FIFOs refused): a file in its place is ERR_FILE_NOT_FOLDER
    expect(r.stderr, 'a coded error naming the stick').to.match(/ERR_(STICK_[A-Z_]+|FILE_NOT_FOLDER)/).and.contain(stick.mount);
    expect(r.stderr, 'no crash').to.not.match(/node:events|Unhandled|\n\s+at /);
    expect(blocksOf(readFileSync(join(s.job, 'common.map'), 'latin1')).every((b) => b.status === '?'), 'nothing marked read').to.equal(true);
  });

  it('exfat: damaged bundles (a byte flipped in a sealed frame or header, truncated, renamed, swapped, an entry ../x) are refused, reported, not merged, and read again', async function () {
    const rnd = prng(seeds[4]!);
    const size = 80 * MiB;
    s = makeScenario({ size, bad: randomBad(rnd, size, 8 * MiB), chunkSize: '8MiB', seed: 5 });
    stick = await makeStick({ fs: 'exfat', size: 64 * MiB });
    const folder = folderOf(s, stick);
    const checks = new TripChecks(s);
    const damaged = new Map<string, { how: string; pieces: SpoolPiece[] }>();
    let damagedOnce = false;
    let imageBefore: Block[] | undefined;
    let checkedTrip: number | undefined;
    let intact: Bundle[] = [];
    const codes = await tripUntilComplete(s, stick, checks, {
      beforeReader: async () => {
        if (checkedTrip === undefined || checks.damaged.size === 0) return;
        // the next trip: the reader deletes every refused file and reads their ranges again
        const before = checks.common!;
        const r = await node([READER, 'rescue', s!.job, '--to', stick!.mount, '-q']);
        expect(r.code, r.stderr).to.be.oneOf([0, 4]);
        expect(r.stderr, 'the reader reports the reclaimed pieces').to.match(/reclaimed [1-9]/);
        // only the refused pieces' ranges may go back (reclaimed: to be read again)
        checks.common = without(before, [...checks.damaged.values()].flat().flatMap((p) => p.extents));
        const left = names(folder).filter((n) => checks.damaged.has(n));
        expect(left, 'refused bundles left on the stick after the next trip').to.deep.equal([]);
        checks.damaged.clear();
        checks.check(stick!, 'after the trip that followed the damage');
      },
      beforeImport: async (trip, bundles) => {
        if (damagedOnce) return;
        expect(bundles.length, 'bundles on the stick to damage').to.be.at.least(8);
        damagedOnce = true;
        imageBefore = imageBlocks(s!);
        const shuffled = [...bundles].sort(() => rnd() - 0.5);
        // the bundle whose sealed frame is damaged must carry data
        const a = shuffled.find((x) => x.dataSize > 0);
        expect(a, 'a bundle with data on the stick').to.not.equal(undefined);
        const pick = [a!, ...shuffled.filter((x) => x !== a).slice(0, 6)];
        const [, b, c, d, e, f, g] = pick as [Bundle, Bundle, Bundle, Bundle, Bundle, Bundle, Bundle];
        intact = bundles.filter((x) => !pick.includes(x));
        const flip = (file: string, at: number): void => {
          const buf = readFileSync(file);
          buf[at]! ^= 0x5a;
          writeFileSync(file, buf);
        };
        flip(a!.file, a!.dataAt + randInt(rnd, 0, a!.dataSize - 1));
        damaged.set(a!.name, { how: 'a byte of a sealed frame flipped', pieces: a!.pieces });
        flip(b.file, b.headerAt + randInt(rnd, 0, b.headerSize - 1));
        damaged.set(b.name, { how: 'a byte of a sealed header flipped', pieces: b.pieces });
        truncateSync(c.file, Math.floor(statSync(c.file).size / 2));
        damaged.set(c.name, { how: 'truncated to half', pieces: c.pieces });
        const renamed = `piece-${String(d.pieces[0]!.seq + 500).padStart(6, '0')}.tar`;
        renameSync(d.file, join(folder, renamed));
        damaged.set(renamed, { how: `renamed from ${d.name}`, pieces: d.pieces });
        renameSync(e.file, join(folder, 'swap.tmp-test'));
        renameSync(f.file, e.file);
        renameSync(join(folder, 'swap.tmp-test'), f.file);
        damaged.set(e.name, { how: `swapped with ${f.name}`, pieces: f.pieces });
        damaged.set(f.name, { how: `swapped with ${e.name}`, pieces: e.pieces });
        // the same bundle with an entry `../x` at the end (after the data a lenient reader would merge)
        const entries = tarEntries(readFileSync(g.file));
        const pack = tarStream.pack();
        const parts: Buffer[] = [];
        pack.on('data', (x: Buffer) => parts.push(x));
        const ended = new Promise<void>((res) => pack.on('end', () => res()));
        for (const x of entries) pack.entry({ name: x.name, mode: 0o644, mtime: new Date(0) }, x.data);
        pack.entry({ name: '../x', mode: 0o644, mtime: new Date(0) }, Buffer.from('outside the rescue folder\n'));
        pack.finalize();
        await ended;
        writeFileSync(g.file, Buffer.concat(parts));
        damaged.set(g.name, { how: 'an entry ../x added', pieces: g.pieces });
        for (const [name, x] of damaged) checks.damaged.set(name, x.pieces);
        console.log(`      trip ${trip}: damaged ${[...damaged].map(([n, x]) => `${n} (${x.how})`).join(', ')} of ${bundles.length} bundles`);
      },
      afterImport: (trip, receipts) => {
        if (damaged.size === 0 || checkedTrip !== undefined) return;
        checkedTrip = trip;
        const rejected = receipts.flatMap((r) => r.rejected);
        console.log(`      import ${trip} refused: ${rejected.map((x) => `${x.bundle} ${x.code}`).join(', ')}`);
        for (const [name, x] of damaged) {
          const r = rejected.find((y) => y.bundle === name);
          expect(r, `the receipt reports ${name} (${x.how}) as refused; it reports ${rejected.map((y) => y.bundle).join(', ') || 'nothing'}`).to.not.equal(undefined);
          expect(r!.code, `${name}: the refusal's code`).to.match(/^ERR_[A-Z_]+$/);
        }
        expect(rejected.length, 'only the damaged bundles are refused').to.equal(damaged.size);
        const after = imageBlocks(s!);
        for (const [name, x] of damaged) {
          for (const e of x.pieces.flatMap((p) => p.extents)) {
            expect(fmt(cropped(after, e.pos, e.size)), `IMAGE.map over [${e.pos}, ${e.pos + e.size}) of ${name} (${x.how})`).to.equal(fmt(cropped(imageBefore, e.pos, e.size)));
          }
        }
        for (const b of intact) {
          for (const e of b.pieces.flatMap((p) => p.extents)) expect(fmt(cropped(after, e.pos, e.size)), `IMAGE.map over [${e.pos}, ${e.pos + e.size}) of the intact ${b.name}`).to.equal(`${e.pos}+${e.size}+`);
        }
      },
      receipts: [],
    });
    // what the first import after the damage did
    expect(damagedOnce).to.equal(true);
    expect(checkedTrip, 'the import after the damage was checked').to.not.equal(undefined);
    expect(existsSync(join(stick.mount, 'ddferry', 'x')) || existsSync(join(s.dir, 'x')) || existsSync(join(stick.mount, 'x')), 'a file x written outside the rescue folder').to.equal(false);
    console.log(`      ${codes.length} trips, reader exit codes ${codes.join(' ')}`);
    stickFinalChecks(s, stick);
  });
  it('fat32: kill -9 of the reader while it writes a bundle and of the assembler while it imports: the import ignores temporaries, nothing is lost', async function () {
    const rnd = prng(seeds[5]!);
    const size = 64 * MiB;
    s = makeScenario({ size, bad: randomBad(rnd, size, 8 * MiB), chunkSize: '8MiB', seed: 6 });
    stick = await makeStick({ fs: 'fat32', size: 32 * MiB });
    const folder = folderOf(s, stick);
    const checks = new TripChecks(s);
    let readerKills = 0;
    let asmKills = 0;
    const notKilled: string[] = [];
    const codes = await tripUntilComplete(s, stick, checks, {
      beforeReader: async (trip) => {
        for (let attempt = 0; attempt < 2 && trip <= 8; ++attempt) await killedReader(trip);
      },
      importer: async (trip) => {
        if (trip <= 8) {
          // at a random time, or once its first bundle is merged (then it merges the next or writes
          // the receipt), whichever comes first: an import lasts a few tenths of a second here
          const started = Date.now();
          const after = randInt(rnd, 40, 500);
          const k = await node(importArgs(s!, stick!.mount), { killWhen: (stderr) => Date.now() - started > after || /\] piece-\d+\.tar: merged/.test(stderr) });
          if (k.killed) ++asmKills;
          else expect(k.code, k.stderr).to.equal(0);
          checks.check(stick!, `after kill -9 of the assembler ${after} ms into import ${trip}`);
        }
        const i = await node(importArgs(s!, stick!.mount));
        expect(i.code, `import ${trip} after a killed one:\n${i.stderr}`).to.equal(0);
      },
    });
    async function killedReader(trip: number): Promise<void> {
      // killed once a bundle is being written (its temporary exists) after 0 or 1 new finished ones
      const want = randInt(rnd, 0, 1);
      const old = new Set(names(folder));
      const fresh = (): number => names(folder).filter((n) => /^piece-/.test(n) && !old.has(n)).length;
      const r = await node([READER, 'rescue', s!.job, '--to', stick!.mount, '-q'], {
        killWhen: () => names(folder).some((x) => /^\.piece-\d+\.tar\.tmp$/.test(x)) && fresh() >= want,
      });
      if (!r.killed) {
        expect(r.code, r.stderr).to.be.oneOf([0, 4]);
        notKilled.push(`trip ${trip}: exit ${r.code} with ${fresh()} new bundles (kill after ${want})`);
        return;
      }
      ++readerKills;
      const tmp = names(folder).filter((n) => n.endsWith('.tmp'));
      checks.check(stick!, `after kill -9 of the reader (trip ${trip}; temporaries ${tmp.join(', ') || 'none'})`);
      // carried to PC_B as it is: the import must ignore the temporary
      await stick!.remount();
      const i = await node(importArgs(s!, stick!.mount));
      expect(i.code, `import of a stick with the temporaries ${tmp.join(', ')}:\n${i.stderr}`).to.equal(0);
      const refused = receiptsOf(folder).flatMap((x) => x.rejected);
      expect(refused.filter((x) => x.bundle.endsWith('.tmp')), 'temporaries reported as refused bundles').to.deep.equal([]);
      expect(refused, 'bundles refused after kill -9 of the reader').to.deep.equal([]);
      await stick!.remount();
      checks.check(stick!, `after the import of trip ${trip}'s killed reader`);
    }
    console.log(`      ${codes.length} trips (reader exit codes ${codes.join(' ')}), ${readerKills} readers killed while writing a bundle, ${asmKills} imports killed`);
    expect(readerKills, `readers killed while writing a bundle (not killed: ${notKilled.join('; ')})`).to.be.at.least(3);
    expect(asmKills, 'imports killed').to.be.at.least(2);
    stickFinalChecks(s, stick);
  });

  it('exfat: LAN trips (serve, rescue --to ws://) between stick trips, into the same IMAGE', async function () {
    const rnd = prng(seeds[6]!);
    const size = 96 * MiB;
    s = makeScenario({ size, bad: randomBad(rnd, size, 8 * MiB), chunkSize: '8MiB', seed: 7 });
    stick = await makeStick({ fs: 'exfat', size: 32 * MiB });
    const checks = new TripChecks(s);
    let lanTrips = 0;
    const plusBytes = (): number => {
      try {
        return blocksOf(readFileSync(`${s!.image}.map`, 'latin1')).filter((b) => b.status === '+').reduce((n, b) => n + b.size, 0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw err;
      }
    };
    const codes = await tripUntilComplete(s, stick, checks, {
      beforeReader: async (trip) => {
        if (trip % 2 !== 0 || trip > 8) return;
        // a LAN trip: stopped with SIGINT once the image holds 4 to 8 MiB more (a fast link may read more before the
        // signal lands, or finish the rescue: the counts below ask only for stick, LAN, stick)
        const asm = await startAssembler(s!);
        let r: { code: number | null; signal: NodeJS.Signals | null };
        const reader = startReader(s!, asm.url);
        try {
          const start = plusBytes();
          const more = randInt(rnd, 4, 8) * MiB;
          let done = false;
          void reader.exited().then(() => (done = true));
          while (!done && plusBytes() < start + more) await sleep(5);
          if (!done) reader.child.kill('SIGINT');
          r = await reader.exited();
        } finally {
          asm.child.kill('SIGTERM');
          await asm.exited();
        }
        expect(r.code === 0 || r.code === 130 || r.signal === 'SIGINT', `LAN trip before stick trip ${trip} ended ${r.code ?? r.signal}:\n${reader.stderr()}`).to.equal(true);
        ++lanTrips;
        checks.check(stick!, `after the LAN trip before stick trip ${trip}`);
      },
    });
    console.log(`      ${codes.length} stick trips (reader exit codes ${codes.join(' ')}), ${lanTrips} LAN trips`);
    // trip 1 fills the stick (96 MiB on 32 MiB), then a LAN trip, then stick trip 2: stick, LAN and stick alternate
    expect(codes[0], 'the first stick trip fills the stick').to.equal(4);
    expect(codes.length, 'stick trips').to.be.at.least(2);
    expect(lanTrips, 'LAN trips between stick trips').to.be.at.least(1);
    stickFinalChecks(s, stick);
  });

  it('exfat: chunk files made by GNU ddrescue -m, carried on the stick, merged by import-ddrescue: IMAGE.map = GNU ddrescue\'s map', async function () {
    const rnd = prng(seeds[7]!);
    const size = 32 * MiB;
    s = makeScenario({ size, bad: randomBad(rnd, size, 8 * MiB), chunkSize: '8MiB', seed: 8 });
    stick = await makeStick({ fs: 'exfat', size: 128 * MiB });
    const gnu = join(stick.mount, 'gnu');
    mkdirSync(gnu);
    const maps = names(join(s.job, 'chunks'));
    expect(maps.length).to.equal(4);
    for (const m of maps) {
      const r = spawnSync('ddrescue', ['-q', '-m', join(s.job, 'chunks', m), '-H', s.testMap, s.source, join(gnu, m.replace(/\.map$/, '.raw')), join(gnu, 'common.map')], { encoding: 'utf8' });
      if (r.error) throw new Error(`GNU ddrescue could not start (${r.error.message}): apt-get install -y gddrescue`);
      expect(r.status, `ddrescue -m ${m}: ${r.stderr}`).to.equal(0);
    }
    await stick.remount();
    for (const m of maps) {
      const i = await node([ASSEMBLER, 'import-ddrescue', join(gnu, m.replace(/\.map$/, '.raw')), '--domain', join(s.job, 'chunks', m), '--map', join(gnu, 'common.map'), s.image]);
      expect(i.code, `import-ddrescue ${m}:\n${i.stderr}`).to.equal(0);
    }
    const image = checkMapfile(`${s.image}.map`, jobSize(s)).blocks;
    checkImageBlocks(s, image);
    const theirs = compact(blocksOf(readFileSync(join(gnu, 'common.map'), 'latin1')));
    expect(fmt(image), 'IMAGE.map = the common mapfile GNU ddrescue wrote').to.equal(fmt(theirs));
    expect(theirs.some((b) => b.status === '-'), 'bad sectors left').to.equal(true);
    // twice changes nothing (A2)
    const again = await node([ASSEMBLER, 'import-ddrescue', join(gnu, maps[0]!.replace(/\.map$/, '.raw')), '--domain', join(s.job, 'chunks', maps[0]!), '--map', join(gnu, 'common.map'), s.image]);
    expect(again.code, again.stderr).to.equal(0);
    expect(fmt(checkMapfile(`${s.image}.map`, jobSize(s)).blocks)).to.equal(fmt(image));
  });

  it('fat32: --format ddrescue-chunks trips merged on PC_B by GNU ddrescue with the commands the reader wrote: image = source on +, + of IMAGE.map = + of common.map', async function () {
    const size = 96 * MiB;
    // bad areas across the 8 and 16 MiB chunk borders and a cluster just before: the last
    // pieces carry statuses but no data (a layout that once kept the reader from completing)
    const bad: Array<[number, number]> = [[7783936, 144896], [8380416, 20480], [16161280, 48640], [16773632, 11776], [58716160, 6144]];
    s = makeScenario({ size, bad, chunkSize: '8MiB', seed: 9 });
    stick = await makeStick({ fs: 'fat32', size: 48 * MiB });
    const folder = folderOf(s, stick);
    const codes: number[] = [];
    const plus = (b: readonly Block[]): string => fmt(b.filter((x) => x.status === '+'));
    let lastImage: Block[] | undefined;
    let last = '';
    for (let trip = 1; ; ++trip) {
      expect(trip, `not complete after ${MAX_TRIPS} trips (${codes.join(' ')}); the last trip and merge said:\n${last}`).to.be.at.most(MAX_TRIPS);
      const r = await node([READER, 'rescue', s.job, '--to', stick.mount, '--format', 'ddrescue-chunks', '-q']);
      last = r.stderr;
      expect(r.code, `trip ${trip}:\n${r.stderr}`).to.be.oneOf([0, 4]);
      codes.push(r.code!);
      if (r.stderr.includes('The rescue is complete')) break;
      expect(names(folder).filter((n) => n.endsWith('.tmp')), 'temporaries').to.deep.equal([]);
      if (trip === 1) expect(r.stderr, 'the PC_B command').to.contain('sh ddrescue-commands.sh');
      await stick.remount();
      const m = await run('sh', [join(folder, 'ddrescue-commands.sh'), s.image], { cwd: s.dir });
      expect(m.code, `trip ${trip}: sh ddrescue-commands.sh:\n${m.stderr}`).to.equal(0);
      last += `\n--- sh ddrescue-commands.sh:\n${m.stderr}\n--- the folder: ${names(folder).join(' ')}`;
      const image = checkMapfile(`${s.image}.map`, jobSize(s)).blocks;
      checkImageBlocks(s, image);
      if (lastImage) checkForward(lastImage, image, 'IMAGE.map');
      lastImage = image;
      await stick.remount();
    }
    console.log(`      ${codes.length} trips, reader exit codes ${codes.join(' ')}`);
    expect(codes.filter((c) => c === 4).length).to.be.at.least(2);
    const common = checkMapfile(join(s.job, 'common.map'), jobSize(s)).blocks;
    const image = checkMapfile(`${s.image}.map`, jobSize(s)).blocks;
    checkImageBlocks(s, image);
    expect(plus(image), '+ of IMAGE.map (GNU ddrescue\'s) = + of common.map').to.equal(plus(common));
    expect(fmt(common), 'common.map = GNU ddrescue\'s final map').to.equal(fmt(ddrescueFinalMap(s)));
    expect(names(folder).filter((n) => n.endsWith('.raw')), 'chunk files left after the rescue is complete').to.deep.equal([]);
  });
});
