/**
 * End-to-end helpers: real `ddferry-reader` and `ddferry-assembler` processes on
 * 127.0.0.1 port 0, a simulated failing disk (GNU ddrescue test map), and checks of the
 * image against the source.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const READER = join(ROOT, 'packages', 'reader', 'bin', 'ddferry-reader.js');
export const ASSEMBLER = join(ROOT, 'packages', 'assembler', 'bin', 'ddferry-assembler.js');

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

/** Deterministic content: every 8 bytes hold their position and a seed. */
export function makeSource(size: number, seed: number): Buffer {
  const buf = Buffer.alloc(size);
  for (let p = 0; p + 8 <= size; p += 8) buf.writeBigUInt64LE(BigInt(p) * 2654435761n + BigInt(seed), p);
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
  readonly token: string;
  readonly job: string;
  readonly image: string;
  readonly size: number;
  remove(): void;
}

/** A folder with a simulated failing disk, its test map, a token and a planned job. */
export function makeScenario(options: { size: number; bad: ReadonlyArray<readonly [number, number]>; chunkSize: string; seed?: number }): Scenario {
  const dir = mkdtempSync(join(tmpdir(), 'ddferry-e2e-'));
  const source = join(dir, 'disk.bin');
  writeFileSync(source, makeSource(options.size, options.seed ?? 1));
  const tm = join(dir, 'disk.testmap');
  writeFileSync(tm, testMap(options.size, options.bad));
  const token = join(dir, 'token');
  writeFileSync(token, 'a shared secret for the test\n');
  chmodSync(token, 0o600);
  const job = join(dir, 'job');
  const r = spawnSync(process.execPath, [READER, 'plan', source, job, '--chunk-size', options.chunkSize, '--test-mode', tm], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ddferry-reader plan failed (${r.status}): ${r.stderr}`);
  return { dir, source, testMap: tm, token, job, image: join(dir, 'image.raw'), size: options.size, remove: () => rmSync(dir, { recursive: true, force: true }) };
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
  const child = spawn(process.execPath, [ASSEMBLER, 'serve', s.image, '--listen', `127.0.0.1:${port}`, '--token-file', s.token], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
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
  const child = spawn(process.execPath, [READER, 'rescue', s.job, '--to', url, '--token-file', s.token, '-q', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
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
