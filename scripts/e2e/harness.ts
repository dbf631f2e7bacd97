/**
 * End-to-end helpers: real `ddferry-reader` and `ddferry-assembler` processes on
 * 127.0.0.1 port 0, a simulated failing disk (GNU ddrescue test map), a shared token,
 * and checks of the image against the source. Spooled pieces and stick bundles are
 * sealed: the checks open them with the rescue's keys (derived from the token).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { planChunks } from '@ddferry/mapfile';
import {
  type OpenedPiece, type PiecePlan, type RescueId, type RescueKeys, type SealedPiece, deriveRescueKeys, headerHashOf, makeSecretText,
  normalizeSecretText, openSealedPiece, readSealedHeaderFields, TAG_BYTES, xxh64,
} from '@ddferry/protocol';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * DDFERRY_E2E_BIN=DIR runs the programs as DIR's executables (`npm run package` makes
 * them in dist/bin) instead of Node with the workspace's bin scripts. Start them with
 * `command([READER, ...args])`.
 */
export const BIN_DIR = process.env.DDFERRY_E2E_BIN === undefined || process.env.DDFERRY_E2E_BIN === '' ? undefined : resolve(process.env.DDFERRY_E2E_BIN);

function program(name: string, pkg: string): string {
  if (BIN_DIR === undefined) return join(ROOT, 'packages', pkg, 'bin', `${name}.js`);
  const exe = join(BIN_DIR, name);
  if (!existsSync(exe)) throw new Error(`DDFERRY_E2E_BIN=${BIN_DIR}: ${exe} is missing: run npm run package first`);
  return exe;
}

export const READER = program('ddferry-reader', 'reader');
export const ASSEMBLER = program('ddferry-assembler', 'assembler');
export const MAPTOOL = program('ddferry-map', 'mapfile');

/** The file and arguments that run `argv` ([READER or ASSEMBLER or MAPTOOL, ...args]): Node and the bin script, or the executable itself. */
export function command(argv: readonly string[]): [string, string[]] {
  return BIN_DIR === undefined ? [process.execPath, [...argv]] : [argv[0]!, argv.slice(1)];
}

export interface Block {
  readonly pos: number;
  readonly size: number;
  readonly status: string;
}

/** The block lines of a mapfile. */
export function blocksOf(text: string): Block[] {
  const out: Block[] = [];
  let seenStatus = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    if (!seenStatus) {
      seenStatus = true;
      continue;
    }
    const [pos, size, status] = line.trim().split(/\s+/);
    out.push({ pos: Number(pos), size: Number(size), status: status! });
  }
  return out;
}

/** Join neighbours of the same status. */
export function compact(blocks: readonly Block[]): Block[] {
  const out: Block[] = [];
  for (const b of blocks) {
    const last = out[out.length - 1];
    if (last && last.status === b.status && last.pos + last.size === b.pos) out[out.length - 1] = { ...last, size: last.size + b.size };
    else out.push({ ...b });
  }
  return out;
}

/**
 * Deterministic content that does not compress (xorshift32 from the seed), as most of a
 * full disk: stick trips carry about its size (bundles compress what they can).
 */
export function makeSource(size: number, seed: number): Buffer {
  const buf = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let p = 0; p + 4 <= size; p += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, p);
  }
  return buf;
}

/** A test map: good everywhere but `bad`, in GNU ddrescue mapfile format. */
export function testMap(size: number, bad: ReadonlyArray<readonly [number, number]>): string {
  const sorted = [...bad].sort((a, b) => a[0] - b[0]);
  const lines = ['0 + 1'];
  let p = 0;
  for (const [pos, len] of sorted) {
    if (pos > p) lines.push(`0x${p.toString(16)} 0x${(pos - p).toString(16)} +`);
    lines.push(`0x${pos.toString(16)} 0x${len.toString(16)} -`);
    p = pos + len;
  }
  if (p < size) lines.push(`0x${p.toString(16)} 0x${(size - p).toString(16)} +`);
  return `${lines.join('\n')}\n`;
}

export interface Scenario {
  readonly dir: string;
  readonly source: string;
  readonly testMap: string;
  /**
   * The shared token file (mode 600): a fresh strong token given to `plan --token-file`
   * (so `rescue` uses it without `--token-file`), or with `token: 'job'` the
   * `JOBDIR/token` that `plan` made. Serve and import get it with `--token-file`.
   */
  readonly token: string;
  readonly job: string;
  readonly image: string;
  readonly size: number;
  remove(): void;
}

/**
 * A folder with a simulated failing disk, its test map, a token and a job planned over
 * the test map with `planArgs` added; with `plan: false` no job yet (`planScenario`).
 * `token`: `'given'` (default) writes a fresh token (`makeSecretText`, 140 bits) to
 * DIR/token and plans with `--token-file` it; `'job'` lets `plan` make `JOBDIR/token`.
 */
export function makeScenario(options: {
  size: number; bad: ReadonlyArray<readonly [number, number]>; chunkSize: string; seed?: number; plan?: boolean; planArgs?: readonly string[]; token?: 'given' | 'job';
}): Scenario {
  const dir = mkdtempSync(join(tmpdir(), 'ddferry-e2e-'));
  const source = join(dir, 'disk.bin');
  writeFileSync(source, makeSource(options.size, options.seed ?? 1));
  const tm = join(dir, 'disk.testmap');
  writeFileSync(tm, testMap(options.size, options.bad));
  const job = join(dir, 'job');
  let token = join(job, 'token');
  if (options.token !== 'job') {
    token = join(dir, 'token');
    writeFileSync(token, `${makeSecretText()}\n`, { mode: 0o600 });
    chmodSync(token, 0o600);
  }
  const s = { dir, source, testMap: tm, token, job, image: join(dir, 'image.raw'), size: options.size, remove: () => rmSync(dir, { recursive: true, force: true }) };
  if (options.plan === false) return s;
  try {
    planScenario(s, source, ['--chunk-size', options.chunkSize, '--test-mode', tm, ...(options.planArgs ?? [])]);
  } catch (err) {
    s.remove();
    throw err;
  }
  return s;
}

/** `ddferry-reader plan SOURCE s.job ARGS` (with `--token-file s.token` unless plan makes JOBDIR/token); throws with its stderr if it fails. */
export function planScenario(s: Scenario, source: string, args: readonly string[]): void {
  const tokenArgs = s.token === join(s.job, 'token') ? [] : ['--token-file', s.token];
  const r = spawnSync(...command([READER, 'plan', source, s.job, ...tokenArgs, ...args]), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ddferry-reader plan ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  if (!existsSync(s.token)) throw new Error(`ddferry-reader plan made no token file ${s.token}: ${r.stdout}${r.stderr}`);
}

/** The shared secret of the scenario, as both sides read it from the token file. */
export function secretOf(s: Scenario): string {
  return normalizeSecretText(readFileSync(s.token, 'utf8'));
}

interface JobJson {
  readonly rescueId: string;
  readonly sourceSize: number;
  readonly sectorSize: number;
  readonly chunkSize: number;
}

function jobJson(s: Scenario): JobJson {
  return JSON.parse(readFileSync(join(s.job, 'job.json'), 'utf8')) as JobJson;
}

/** The rescue's keys (`deriveRescueKeys` of the token and the job's rescue id). */
export function keysOf(s: Scenario): RescueKeys {
  return deriveRescueKeys(secretOf(s), jobJson(s).rescueId);
}

/** The job's plan, as the assembler checks pieces against it. */
export function planOf(s: Scenario): PiecePlan & { readonly rescueId: RescueId } {
  const j = jobJson(s);
  return { rescueId: j.rescueId as RescueId, sourceSize: j.sourceSize, sectorSize: j.sectorSize, chunks: planChunks({ sourceSize: j.sourceSize, sectorSize: j.sectorSize, chunkSize: j.chunkSize }) };
}

/** The arguments of `ddferry-assembler import DIR IMAGE --token-file TOKEN` (after the assembler's path). */
export function importArgs(s: Scenario, dir: string): string[] {
  return [ASSEMBLER, 'import', dir, s.image, '--token-file', s.token];
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Every child process started here and not yet ended, so `killAll` can end them even when a test fails. */
const live = new Map<ChildProcess, Promise<Exit>>();

function track(child: ChildProcess): Promise<Exit> {
  const ended = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => {
    live.delete(child);
    resolve({ code, signal });
  }));
  live.set(child, ended);
  return ended;
}

/** SIGKILL every child process the harness started that still runs, and wait for them. */
export async function killAll(): Promise<void> {
  const waits = [...live.entries()].map(([child, ended]) => {
    child.kill('SIGKILL');
    return ended;
  });
  await Promise.all(waits);
}

/** SIGKILL one process and wait until it is gone. */
export async function kill9(p: { readonly child: ChildProcess; exited(): Promise<Exit> }): Promise<Exit> {
  p.child.kill('SIGKILL');
  return p.exited();
}

export interface Assembler {
  readonly url: string;
  readonly child: ChildProcess;
  stderr(): string;
  /** Wait for the process to end. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `ddferry-assembler serve` on 127.0.0.1 port 0 (or `port`) and wait for its address. */
export function startAssembler(s: Scenario, port = 0): Promise<Assembler> {
  const child = spawn(...command([ASSEMBLER, 'serve', s.image, '--listen', `127.0.0.1:${port}`, '--token-file', s.token]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  const ended = track(child);
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`assembler did not start in 20 s: ${err}`)), 20000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (ws:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ url: m[1]!, child, stderr: () => err, exited: () => ended });
      }
    });
    void ended.then((e) => {
      clearTimeout(t);
      reject(new Error(`assembler exited (${e.code ?? e.signal}) before listening: ${err}`));
    });
  });
}

export interface Reader {
  readonly child: ChildProcess;
  stderr(): string;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `ddferry-reader rescue JOB --to URL`. */
export function startReader(s: Scenario, url: string, extra: readonly string[] = []): Reader {
  const child = spawn(...command([READER, 'rescue', s.job, '--to', url, '--token-file', s.token, '-q', ...extra]), { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const ended = track(child);
  return { child, stderr: () => err, exited: () => ended };
}

/** GNU ddrescue's final map for the same test map and options. */
export function ddrescueFinalMap(s: Scenario, options: readonly string[] = []): Block[] {
  const out = join(s.dir, 'ddrescue.out');
  const map = join(s.dir, 'ddrescue.map');
  rmSync(out, { force: true });
  rmSync(map, { force: true });
  const r = spawnSync('ddrescue', ['-q', ...options, '-H', s.testMap, s.source, out, map], { encoding: 'utf8' });
  if (r.error) throw new Error(`GNU ddrescue could not start (${r.error.message}): apt-get install -y gddrescue`);
  if (r.status !== 0) throw new Error(`ddrescue failed (${r.status}): ${r.stderr}`);
  return compact(blocksOf(readFileSync(map, 'latin1')));
}

/** Check the image against the source on every `+` byte of IMAGE.map; returns the image map's blocks. */
export function checkImage(s: Scenario): Block[] {
  const blocks = compact(blocksOf(readFileSync(`${s.image}.map`, 'latin1')));
  const src = readFileSync(s.source);
  const img = readFileSync(s.image);
  for (const b of blocks) {
    if (b.status !== '+') continue;
    const a = src.subarray(b.pos, b.pos + b.size);
    const c = img.subarray(b.pos, b.pos + b.size);
    if (!a.equals(c)) {
      let i = 0;
      while (i < a.length && a[i] === c[i]) ++i;
      throw new Error(`image differs from the source at ${b.pos + i} inside the + block [${b.pos}, ${b.pos + b.size})`);
    }
  }
  return blocks;
}

export function commonMapBlocks(s: Scenario): Block[] {
  return compact(blocksOf(readFileSync(join(s.job, 'common.map'), 'latin1')));
}

// ---------------------------------------------------------------------------------------
// Fault-injection helpers: seeded randomness, strict map checks, the spool's contents,
// invariant checks (R1, A1, A3), a reader that hangs instead of exiting.

/** mulberry32: a small seeded PRNG giving numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of a randomized test: DDFERRY_E2E_SEED if set, else a fresh one; printed so a failure can be replayed. */
export function testSeed(label: string): number {
  const env = process.env.DDFERRY_E2E_SEED;
  const seed = env !== undefined && env.trim() !== '' ? Number(env) >>> 0 : Math.floor(Math.random() * 2 ** 32);
  console.log(`      ${label}: seed ${seed} (replay with DDFERRY_E2E_SEED=${seed})`);
  return seed;
}

/** An integer in [lo, hi]. */
export function randInt(rnd: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rnd() * (hi - lo + 1));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The port of `ws://HOST:PORT`. */
export function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** `startAssembler(s, port)`, retried while the port is not free yet (a killed assembler's port). */
export async function restartAssembler(s: Scenario, port: number, tries = 40): Promise<Assembler> {
  for (let i = 1; ; ++i) {
    try {
      return await startAssembler(s, port);
    } catch (err) {
      if (i >= tries || !/EADDRINUSE|ERR_LISTEN/.test((err as Error).message)) throw err;
      await sleep(250);
    }
  }
}

export interface MapCheck {
  readonly blocks: Block[];
  /** The header says `# Finished` (the final save of a completed run). */
  readonly finished: boolean;
  readonly text: string;
}

/**
 * Read a mapfile and check it strictly: a status line, then blocks that are contiguous
 * from 0 to `size`, of positive sizes and statuses `? * / - +`; and GNU ddrescuelog's own
 * check (`ddferry-map ddrescuelog -t FILE` exits 0). Returns its blocks, compacted.
 */
export function checkMapfile(file: string, size: number, text = readFileSync(file, 'latin1')): MapCheck {
  const fail = (why: string): never => {
    throw new Error(`${file}: malformed mapfile: ${why}\n${text.slice(0, 2000)}`);
  };
  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') fail('it does not end with a newline (a torn write?)');
  let status: string[] | undefined;
  let p = 0;
  const blocks: Block[] = [];
  for (const line of lines) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const f = line.trim().split(/\s+/);
    if (status === undefined) {
      status = f;
      if (f.length < 2 || f.length > 3 || !Number.isSafeInteger(Number(f[0])) || !/^[?*/\-FG+]$/.test(f[1]!)) fail(`bad status line "${line}"`);
      continue;
    }
    const pos = Number(f[0]);
    const sz = Number(f[1]);
    if (f.length !== 3 || !Number.isSafeInteger(pos) || !Number.isSafeInteger(sz) || sz <= 0 || !/^[?*/\-+]$/.test(f[2]!)) fail(`bad block line "${line}"`);
    if (pos !== p) fail(`block at ${pos} does not start where the one before ends (${p})`);
    p = pos + sz;
    blocks.push({ pos, size: sz, status: f[2]! });
  }
  if (status === undefined) fail('no status line');
  if (p !== size) fail(`the blocks cover [0, ${p}), not the source's [0, ${size})`);
  const r = spawnSync(...command([MAPTOOL, 'ddrescuelog', '-t', file]), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ddferry-map ddrescuelog -t ${file} exited ${r.status}: ${r.stderr}`);
  return { blocks: compact(blocks), finished: /^# Finished$/m.test(text), text };
}

/** A sealed piece in JOBDIR/spool or on a stick, opened with the rescue's keys. */
export interface SpoolPiece {
  readonly file: string;
  readonly seq: number;
  /** The header hash of its sealed form: its identity in receipts. */
  readonly headerHash: string;
  /** Ranges whose data the piece holds (its `+` ranges). */
  readonly extents: ReadonlyArray<{ readonly pos: number; readonly size: number }>;
  /** Every range the piece speaks for, with its status. */
  readonly delta: ReadonlyArray<{ readonly pos: number; readonly size: number; readonly status: string }>;
}

/** An entry of a ustar file: name, bytes, and where the bytes start in the file. */
export interface TarEntry {
  readonly name: string;
  readonly data: Buffer;
  readonly at: number;
}

/** The entries of a ustar file: name and bytes. */
export function tarEntries(buf: Buffer): TarEntry[] {
  const out: TarEntry[] = [];
  let off = 0;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const prefix = h.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    if (!Number.isSafeInteger(size) || off + 512 + size > buf.length) throw new Error(`a tar entry "${name}" of ${size} bytes runs past the end of the file`);
    out.push({ name: prefix ? `${prefix}/${name}` : name, data: buf.subarray(off + 512, off + 512 + size), at: off + 512 });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** A bundle file read whole: its entries and its pieces, each opened and checked. */
export interface BundleFile {
  readonly file: string;
  readonly entries: TarEntry[];
  readonly pieces: SpoolPiece[];
}

/**
 * Read a bundle (`piece-NNNNNN.tar`: per piece a sealed header entry, then its sealed
 * frames) and open every piece with the rescue's keys, checked against the plan as the
 * assembler checks it (seal, frames, xxh64). With `source`, each extent's data is
 * compared with the source (R1: what the spool or stick holds is what was read).
 * @throws Error naming the file for a partial, unsealed or damaged bundle.
 */
export function readBundleFile(file: string, buf: Buffer, keys: RescueKeys, plan: PiecePlan, source?: Buffer): BundleFile {
  const entries = tarEntries(buf);
  const fail = (why: string): never => {
    throw new Error(`${file}: ${why} (entries: ${entries.map((e) => `${e.name} ${e.data.length}`).join(', ') || 'none'})`);
  };
  const groups: Array<{ seq: number; header: Buffer; frames: Buffer[] }> = [];
  for (const e of entries) {
    const h = /^piece-(\d+)\.header$/.exec(e.name);
    const f = /^piece-(\d+)\.frame-(\d+)$/.exec(e.name);
    if (h) groups.push({ seq: Number(h[1]), header: e.data, frames: [] });
    else if (f) {
      const g = groups[groups.length - 1];
      if (!g || g.seq !== Number(f[1]) || g.frames.length !== Number(f[2])) fail(`the entry ${e.name} is not the next frame of the piece before it`);
      if (e.data.length < TAG_BYTES) fail(`the entry ${e.name} is shorter than a tag`);
      g!.frames.push(e.data);
    } else fail(`an entry ${JSON.stringify(e.name)} that is no sealed header or frame`);
  }
  if (groups.length === 0) fail('no sealed piece in a bundle: a partial bundle is visible');
  const pieces: SpoolPiece[] = [];
  for (const g of groups) {
    let opened: OpenedPiece;
    try {
      const fields = readSealedHeaderFields(g.header, { file });
      if (fields.seq !== g.seq) fail(`the header entry of piece ${g.seq} holds seq ${fields.seq}`);
      const sealed: SealedPiece = {
        rescueId: fields.rescueId as RescueId, seq: fields.seq, header: g.header, headerHash: headerHashOf(g.header),
        frames: g.frames.map((x) => ({ ciphertext: x.subarray(0, x.length - TAG_BYTES), tag: x.subarray(x.length - TAG_BYTES) })),
        dataSize: g.frames.reduce((n, x) => n + x.length - TAG_BYTES, 0),
      };
      opened = openSealedPiece(sealed, { keys, plan, file });
    } catch (err) {
      return fail(`piece ${g.seq} does not open with the rescue's keys: ${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
    }
    if (source) {
      let at = 0;
      for (const e of opened.extents) {
        if (!Buffer.from(opened.data.buffer, opened.data.byteOffset + at, e.size).equals(source.subarray(e.pos, e.pos + e.size))) {
          fail(`piece ${opened.seq}: the data of the extent [${e.pos}, ${e.pos + e.size}) differs from the source`);
        }
        at += e.size;
      }
    }
    pieces.push({
      file, seq: opened.seq, headerHash: opened.headerHash, extents: opened.extents.map((e) => ({ pos: e.pos, size: e.size })),
      delta: opened.delta.map((d) => ({ pos: d.pos, size: d.size, status: d.status })),
    });
  }
  return { file, entries, pieces };
}

/**
 * The pieces held in JOBDIR/spool (`piece-NNNNNN.tar`; temporaries ignored), opened
 * with the rescue's keys. A file deleted while this runs was acknowledged (R2) and is
 * skipped. With `source`, each piece's data is compared with the source (R1: what the
 * spool holds is what was read).
 */
export function spoolPieces(s: Scenario, source?: Buffer): SpoolPiece[] {
  return piecesIn(s, join(s.job, 'spool'), source);
}

/** `spoolPieces` of any folder of bundles: the spool, or a stick's `ddferry/<rescue-id>/`. */
export function piecesIn(s: Scenario, dir: string, source?: Buffer): SpoolPiece[] {
  if (!existsSync(dir)) return [];
  const keys = keysOf(s);
  const plan = planOf(s);
  const out: SpoolPiece[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!/^piece-\d+\.tar$/.test(name)) continue;
    const file = join(dir, name);
    let buf: Buffer;
    try {
      buf = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    out.push(...readBundleFile(file, buf, keys, plan, source).pieces);
  }
  return out;
}

/** Sorted, joined half-open ranges. */
function union(ranges: ReadonlyArray<{ readonly pos: number; readonly size: number }>): Array<[number, number]> {
  const sorted = [...ranges].filter((r) => r.size > 0).sort((a, b) => a.pos - b.pos);
  const out: Array<[number, number]> = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.pos <= last[1]) last[1] = Math.max(last[1], r.pos + r.size);
    else out.push([r.pos, r.pos + r.size]);
  }
  return out;
}

/** The first byte of `ranges` not inside `cover`, or undefined. */
export function firstUncovered(ranges: ReadonlyArray<{ readonly pos: number; readonly size: number }>, cover: ReadonlyArray<{ readonly pos: number; readonly size: number }>): number | undefined {
  const c = union(cover);
  let i = 0;
  for (const [pos, end] of union(ranges)) {
    let p = pos;
    while (p < end) {
      while (i < c.length && c[i]![1] <= p) ++i;
      const r = c[i];
      if (!r || r[0] > p) return p;
      p = r[1];
    }
  }
  return undefined;
}

/**
 * R1: every `+` byte of common.map is `+` in IMAGE.map or held by a piece in the spool.
 * Read in this order by the caller: common.map, then the spool, then IMAGE.map (the
 * spool only loses pieces that IMAGE.map already holds).
 */
export function checkR1(common: readonly Block[], spool: readonly SpoolPiece[], image: readonly Block[]): void {
  const rescued = common.filter((b) => b.status === '+');
  const cover = [...image.filter((b) => b.status === '+'), ...spool.flatMap((p) => p.extents)];
  const hole = firstUncovered(rescued, cover);
  if (hole !== undefined) {
    const b = rescued.find((r) => r.pos <= hole && hole < r.pos + r.size)!;
    throw new Error(`R1 broken: common.map marks [${b.pos}, ${b.pos + b.size}) rescued, but byte ${hole} is neither + in IMAGE.map nor held by a spooled piece (spool: ${spool.map((p) => p.seq).join(',') || 'empty'})`);
  }
}

const RANK: Readonly<Record<string, number>> = { '?': 0, '*': 1, '/': 2, '-': 3, '+': 4 };

/** A3: between two snapshots of a map, no byte's status moved backward (`? * / - +`). */
export function checkForward(before: readonly Block[], after: readonly Block[], what: string): void {
  let j = 0;
  for (const b of before) {
    let p = b.pos;
    const end = b.pos + b.size;
    while (p < end) {
      while (j < after.length && after[j]!.pos + after[j]!.size <= p) ++j;
      const a = after[j];
      if (!a) throw new Error(`${what}: byte ${p} vanished from the map`);
      if (RANK[a.status]! < RANK[b.status]!) throw new Error(`${what}: the status of [${p}, ${Math.min(end, a.pos + a.size)}) went back from ${b.status} to ${a.status}`);
      p = Math.min(end, a.pos + a.size);
    }
  }
}

/**
 * The source size of the job's plan: the file's size, or less in test mode when the test
 * map ends with bad blocks (the apparent size is the end of its last `+` block, as GNU
 * ddrescue's -H has it).
 */
export function jobSize(s: Scenario): number {
  return (JSON.parse(readFileSync(join(s.job, 'job.json'), 'utf8')) as { sourceSize: number }).sourceSize;
}

export interface Snapshot {
  readonly common: Block[];
  readonly image: Block[] | undefined;
  readonly spool: SpoolPiece[];
  readonly commonFinished: boolean;
}

/**
 * The checks made after every kill: common.map and IMAGE.map (if any) well formed,
 * every `+` byte of the image equal to the source (A1), R1, and statuses only forward
 * since `previous`.
 */
export function checkState(s: Scenario, source: Buffer, previous?: Snapshot): Snapshot {
  const size = jobSize(s);
  const commonFile = join(s.job, 'common.map');
  const c = checkMapfile(commonFile, size);
  const spool = spoolPieces(s, source);
  const merged = mergedPieces(s);
  const imageMap = `${s.image}.map`;
  let image: Block[] | undefined;
  if (existsSync(imageMap)) {
    image = checkMapfile(imageMap, size).blocks;
    checkImageBlocks(s, image, source);
  }
  checkR1(c.blocks, spool, image ?? []);
  // IMAGE.ddferry.pieces claims only pieces IMAGE.map holds (it is appended after IMAGE.map is saved)
  for (const p of spool) {
    if (merged.get(p.seq) !== p.headerHash) continue;
    const hole = firstUncovered(p.extents, (image ?? []).filter((b) => b.status === '+'));
    if (hole !== undefined) throw new Error(`IMAGE.ddferry.pieces lists piece ${p.seq} (${p.headerHash}) as merged, but byte ${hole} of it is not + in IMAGE.map`);
  }
  if (previous) {
    checkForward(previous.common, c.blocks, 'common.map');
    if (previous.image && image) checkForward(previous.image, image, 'IMAGE.map');
  }
  return { common: c.blocks, image, spool, commonFinished: c.finished };
}

/**
 * The pieces IMAGE.ddferry.pieces records as merged: seq to header hash (none if it is
 * absent). Its format: a 32-byte header (`ddferry pieces 1`, the rescue id's 16 bytes),
 * then 32 bytes per piece (seq u64be, header hash, xxh64 of those 24 bytes u64be). A
 * last record cut short or with a wrong checksum (a kill during the append) is ignored,
 * as the assembler drops it; a bad record before it is damage and throws.
 */
export function mergedPieces(s: Scenario): Map<number, string> {
  const file = `${s.image}.ddferry.pieces`;
  const out = new Map<number, string>();
  if (!existsSync(file)) return out;
  const buf = readFileSync(file);
  if (buf.length < 32) return out;
  if (buf.subarray(0, 16).toString('latin1') !== 'ddferry pieces 1') throw new Error(`${file}: does not start with "ddferry pieces 1"`);
  const id = buf.subarray(16, 32).toString('hex');
  const rescueId = jobJson(s).rescueId.replace(/-/g, '');
  if (id !== rescueId) throw new Error(`${file}: rescue ${id}, not the job's ${rescueId}`);
  const count = Math.floor((buf.length - 32) / 32);
  for (let i = 0; i < count; ++i) {
    const r = buf.subarray(32 + i * 32, 64 + i * 32);
    if (xxh64(r.subarray(0, 24)) !== r.readBigUInt64BE(24)) {
      if (i === count - 1) break;
      throw new Error(`${file}: record ${i + 1} of ${count} has a wrong checksum`);
    }
    const seq = Number(r.readBigUInt64BE(0));
    const hash = r.subarray(8, 24).toString('hex');
    if (out.has(seq)) throw new Error(`${file}: seq ${seq} recorded twice (${out.get(seq)}, ${hash})`);
    out.set(seq, hash);
  }
  return out;
}

/** Bytes held by the spool's piece files (temporaries included). */
export function spoolBytes(s: Scenario): number {
  const dir = join(s.job, 'spool');
  let n = 0;
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    try {
      n += statSync(join(dir, name)).size;
    } catch {
      // deleted meanwhile
    }
  }
  return n;
}

/** `checkImage` with the blocks given. */
export function checkImageBlocks(s: Scenario, blocks: readonly Block[], src: Buffer = readFileSync(s.source)): void {
  const img = readFileSync(s.image);
  for (const b of blocks) {
    if (b.status !== '+') continue;
    const a = src.subarray(b.pos, b.pos + b.size);
    const c = img.subarray(b.pos, b.pos + b.size);
    if (!a.equals(c)) {
      let i = 0;
      while (i < a.length && a[i] === c[i]) ++i;
      throw new Error(`A1 broken: the image differs from the source at ${b.pos + i} inside the + block [${b.pos}, ${b.pos + b.size}) of IMAGE.map`);
    }
  }
}

/** A reader that stopped working but did not exit, or exited 0 with work left. */
export interface Fault {
  readonly why: string;
  readonly stderr: string;
}

/** What changes while a rescue makes progress: common.map, the spool's listing, IMAGE.map. */
function progressMark(s: Scenario): string {
  const stamp = (f: string): string => {
    try {
      const st = statSync(f);
      return `${st.size}@${st.mtimeMs}`;
    } catch {
      return '-';
    }
  };
  let spool = '';
  try {
    spool = readdirSync(join(s.job, 'spool')).sort().join(',');
  } catch {
    spool = '-';
  }
  return `${stamp(join(s.job, 'common.map'))}|${spool}|${stamp(`${s.image}.map`)}`;
}

/** How many pieces JOBDIR/spool holds (`piece-NNNNNN.tar` files, one piece each), without opening them. */
export function spoolCount(s: Scenario): number {
  try {
    return readdirSync(join(s.job, 'spool')).filter((n) => /^piece-\d+\.tar$/.test(n)).length;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/** A reader that has nothing left to do: common.map saved as finished, spool empty. */
export function readerIdle(s: Scenario): boolean {
  try {
    return /^# Finished$/m.test(readFileSync(join(s.job, 'common.map'), 'latin1')) && spoolCount(s) === 0;
  } catch {
    return false;
  }
}

/**
 * Wait for the reader to exit 0 with its work done. A faulty reader is reported in
 * `faults`, killed if still running, and restarted by `restart`, so the test can go on
 * and check everything else; the caller fails on `faults` at the end. Faulty means: it
 * exited 0 with work left (spool not empty or common.map not finished); or it has
 * nothing left to do but has not exited `quietMs` later; or nothing changed in
 * common.map, the spool or IMAGE.map for `stallMs`; or it ran past `deadlineMs`.
 */
export async function awaitReader(s: Scenario, reader: Reader, restart: () => Reader, faults: Fault[], o: { quietMs?: number; stallMs?: number; deadlineMs?: number } = {}): Promise<{ exit: Exit; reader: Reader }> {
  const quietMs = o.quietMs ?? 6_000;
  const stallMs = o.stallMs ?? 30_000;
  const deadlineMs = o.deadlineMs ?? 180_000;
  let r = reader;
  for (let attempt = 0; ; ++attempt) {
    const started = Date.now();
    let quietSince: number | undefined;
    let mark = progressMark(s);
    let markSince = Date.now();
    let done: Exit | undefined;
    const current = r;
    void current.exited().then((e) => {
      done = e;
    });
    for (;;) {
      await Promise.race([current.exited(), sleep(250)]);
      let why: string | undefined;
      if (done !== undefined) {
        if (done.code !== 0 || readerIdle(s)) return { exit: done, reader: current };
        const left = spoolCount(s);
        why = `the reader exited 0 with work left: ${left} piece(s) in the spool, common.map ${/^# Finished$/m.test(readFileSync(join(s.job, 'common.map'), 'latin1')) ? 'finished' : 'not finished'}`;
      } else {
        const idle = readerIdle(s);
        quietSince = idle ? quietSince ?? Date.now() : undefined;
        const m = progressMark(s);
        if (m !== mark) {
          mark = m;
          markSince = Date.now();
        }
        const now = Date.now();
        why = quietSince !== undefined && now - quietSince > quietMs
          ? `the reader did not exit ${quietMs / 1000} s after it finished (common.map "# Finished", spool empty)`
          : now - markSince > stallMs ? `no progress for ${stallMs / 1000} s (common.map, spool and IMAGE.map unchanged) and the reader did not exit`
            : now - started > deadlineMs ? `the reader ran more than ${deadlineMs / 1000} s` : undefined;
      }
      if (why !== undefined) {
        faults.push({ why, stderr: current.stderr() });
        await kill9(current);
        if (attempt >= 3) throw new Error(`${why}; gave up after ${attempt + 1} attempts. stderr:\n${current.stderr()}`);
        r = restart();
        break;
      }
    }
  }
}

/** Describe faults for an assertion message. */
export function describeFaults(faults: readonly Fault[]): string {
  return faults.map((h, i) => `#${i + 1}: ${h.why}; reader stderr:\n${h.stderr.trim().split('\n').slice(-6).join('\n')}`).join('\n');
}

/**
 * The end of every rescue: the reader's spool is empty, the image equals the source on
 * every `+` byte, and IMAGE.map = common.map = GNU ddrescue's final map with
 * `ddrescueOptions` (`null`: no GNU ddrescue run, for a source that is no test map).
 */
export function finalChecks(s: Scenario, ddrescueOptions: readonly string[] | null = []): void {
  const source = readFileSync(s.source);
  const size = jobSize(s);
  const common = checkMapfile(join(s.job, 'common.map'), size);
  const image = checkMapfile(`${s.image}.map`, size).blocks;
  checkImageBlocks(s, image, source);
  const left = spoolPieces(s);
  if (left.length > 0) throw new Error(`the spool still holds ${left.length} piece(s) (${left.slice(0, 10).map((p) => p.seq).join(', ')}${left.length > 10 ? ', ...' : ''}) after the reader exited 0`);
  if (JSON.stringify(image) !== JSON.stringify(common.blocks)) throw new Error(`IMAGE.map != common.map\nIMAGE.map:  ${fmt(image)}\ncommon.map: ${fmt(common.blocks)}`);
  if (ddrescueOptions === null) return;
  const gnu = ddrescueFinalMap(s, ddrescueOptions);
  if (JSON.stringify(common.blocks) !== JSON.stringify(gnu)) throw new Error(`common.map != GNU ddrescue's final map\ncommon.map: ${fmt(common.blocks)}\nddrescue:   ${fmt(gnu)}`);
}

export function fmt(blocks: readonly Block[]): string {
  return blocks.map((b) => `${b.pos}+${b.size}${b.status}`).join(' ');
}

/** Bad areas: single sectors, clusters, some across chunk borders, maybe one at the end. */
export function randomBad(rnd: () => number, size: number, chunk = 4 << 20): Array<[number, number]> {
  const sectors = Math.floor(size / 512);
  const raw: Array<[number, number]> = [];
  const borders = Math.floor((size - 1) / chunk);
  // across chunk borders: start 1..16 sectors before a border, 2..40 sectors long
  for (let n = randInt(rnd, 1, 3); n > 0 && borders > 0; --n) {
    const border = randInt(rnd, 1, borders) * chunk;
    const before = randInt(rnd, 1, 16) * 512;
    raw.push([border - before, before + randInt(rnd, 1, 24) * 512]);
  }
  for (let n = randInt(rnd, 2, 5); n > 0; --n) {
    const len = rnd() < 0.5 ? 512 : randInt(rnd, 2, 300) * 512;
    raw.push([randInt(rnd, 1, sectors - 400) * 512, len]);
  }
  if (rnd() < 0.25) raw.push([size - randInt(rnd, 1, 8) * 512, size]);
  raw.sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [pos, len] of raw) {
    const end = Math.min(size, pos + len);
    const last = out[out.length - 1];
    if (last && pos <= last[0] + last[1]) last[1] = Math.max(last[1], end - last[0]);
    else out.push([pos, end - pos]);
  }
  return out;
}

/** One proxied TCP connection. */
export interface ProxyConnection {
  readonly id: number;
  /** Bytes seen so far, both directions. */
  bytes: number;
  /** Client→server bytes seen so far. */
  upBytes: number;
  /** Free for the transform's use. */
  budget: number;
}

/** What the proxy does with a chunk: forward these bytes, then cut the connection if `cut`. */
export type ProxyTransform = (dir: 'up' | 'down', chunk: Buffer, conn: ProxyConnection) => { forward: Buffer; cut?: boolean };

/** A TCP proxy on 127.0.0.1 port 0 in front of `127.0.0.1:targetPort`, with a transform on every chunk. */
export class TcpProxy {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  connections = 0;
  cuts = 0;
  #transform: ProxyTransform;

  private constructor(targetPort: number, transform: ProxyTransform) {
    this.#transform = transform;
    this.server = createServer((client) => {
      const conn: ProxyConnection = { id: ++this.connections, bytes: 0, upBytes: 0, budget: 0 };
      const upstream = connect(targetPort, '127.0.0.1');
      this.sockets.add(client);
      this.sockets.add(upstream);
      const cut = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.pause();
      upstream.on('connect', () => client.resume());
      const pipe = (dir: 'up' | 'down', from: Socket, to: Socket): void => {
        from.on('data', (chunk: Buffer) => {
          if (to.destroyed) return;
          const r = this.#transform(dir, chunk, conn);
          conn.bytes += chunk.length;
          if (dir === 'up') conn.upBytes += chunk.length;
          if (r.forward.length > 0) to.write(r.forward);
          if (r.cut) {
            ++this.cuts;
            cut();
          }
        });
        from.on('end', () => to.end());
        from.on('error', cut);
        from.on('close', () => {
          this.sockets.delete(from);
          cut();
        });
      };
      pipe('up', client, upstream);
      pipe('down', upstream, client);
    });
  }

  static async start(targetPort: number, transform: ProxyTransform): Promise<TcpProxy> {
    const p = new TcpProxy(targetPort, transform);
    await new Promise<void>((resolve) => p.server.listen(0, '127.0.0.1', resolve));
    return p;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Change what the proxy does from now on. */
  setTransform(t: ProxyTransform): void {
    this.#transform = t;
  }

  /** Cut every connection and stop listening. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Wait until `check` is true (polling), at most `ms`; returns whether it became true. */
export async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}
