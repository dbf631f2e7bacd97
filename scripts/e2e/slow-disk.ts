/**
 * Helpers for tests of a reader whose source reads hang (issue 12): a slow disk (the
 * faultfs FUSE file, whose slow ranges hold a read in the kernel) or a job planned with
 * `--test-slow-reads`; `ddferry-reader rescue` runs with their `--json` lines timed as
 * they arrive; the reading processes they start, found in /proc; signals with the time
 * to exit measured; and what the reads in the FUSE log say about reads made twice.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { type FaultFs, type FaultFsOptions, type FaultFsRead, mountFaultFs } from '../../packages/reader/test/helpers/faultfs.js';
import { ASSEMBLER, type Block, type Exit, READER, type Scenario, blocksOf, compact, importArgs, makeScenario, planScenario, sleep } from './harness.js';

/** A scenario whose source reads hang; `close` ends what the test left running and removes it. */
export interface SlowScenario extends Scenario {
  /** The FUSE slow disk, if the job's source is one (then `source` is its backing file). */
  readonly fs: FaultFs | undefined;
  close(): Promise<void>;
}

/**
 * A job over a faultfs FUSE file (real EIO on `bad`, reads of `slow` held in the kernel),
 * planned without a test map: `source` is the backing file, for the image checks.
 */
export async function fuseScenario(o: {
  size: number; bad: ReadonlyArray<readonly [number, number]>; slow: NonNullable<FaultFsOptions['slow']>; chunkSize: string; seed?: number; delayAllMs?: number;
}): Promise<SlowScenario> {
  const s = makeScenario({ size: o.size, bad: [], chunkSize: o.chunkSize, seed: o.seed, plan: false });
  let fs: FaultFs | undefined;
  try {
    fs = await mountFaultFs({ backing: s.source, bad: o.bad.map(([pos, size]) => ({ pos, size })), slow: o.slow, delayAllMs: o.delayAllMs });
    planScenario(s, fs.path, ['--chunk-size', o.chunkSize]);
  } catch (err) {
    await fs?.unmount();
    s.remove();
    throw err;
  }
  const mounted = fs;
  return { ...s, fs: mounted, close: async () => closeScenario(s, mounted) };
}

/** A job over a GNU ddrescue test map whose reads of `slowReads` block (`plan --test-slow-reads`). */
export function testModeScenario(o: { size: number; bad: ReadonlyArray<readonly [number, number]>; slowReads: string; chunkSize: string; seed?: number }): SlowScenario {
  const s = makeScenario({ size: o.size, bad: o.bad, chunkSize: o.chunkSize, seed: o.seed, planArgs: ['--test-slow-reads', o.slowReads] });
  return { ...s, fs: undefined, close: async () => closeScenario(s, undefined) };
}

/** A job over a plain GNU ddrescue test map (no slow reads), as `makeScenario` plans it. */
export function plainScenario(o: { size: number; bad: ReadonlyArray<readonly [number, number]>; chunkSize: string; seed?: number }): SlowScenario {
  const s = makeScenario(o);
  return { ...s, fs: undefined, close: async () => closeScenario(s, undefined) };
}

async function closeScenario(s: Scenario, fs: FaultFs | undefined): Promise<void> {
  await endAll();
  await fs?.unmount();
  s.remove();
}

/** The `--json` keys the tests read (others are ignored). */
export interface Progress {
  readonly type: string;
  readonly time: number;
  readonly phase: string;
  readonly rescue: { readonly ipos: number; readonly nonTried: number; readonly sinceLastSuccess: number | null } | null;
  readonly spool: { readonly pieces: number; readonly bytes: number; readonly capacity: number };
  readonly link: { readonly url: string; readonly state: string; readonly merged: number; readonly since?: unknown; readonly lastError?: unknown } | null;
  readonly stick: { readonly bundles: number } | null;
  readonly reading?: { readonly pos: number; readonly size: number; readonly seconds: number } | null;
  readonly paused?: { readonly reason: string; readonly since: unknown; readonly text: string } | null;
}

/** A `--json` line and when it arrived (ms since `performance.timeOrigin`). */
export interface Line {
  readonly at: number;
  readonly o: Progress;
}

/** A `ddferry-reader rescue` process started by `runReader`. */
export interface ReaderRun {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly lines: Line[];
  /** Reading processes seen: children of the reader whose argv holds `__reading-process`, or the pid in JOBDIR/reading.pid. */
  readonly readingPids: Set<number>;
  /** Pids read from JOBDIR/reading.pid while the reader ran. */
  readonly pidFilePids: Set<number>;
  stderr(): string;
  readonly exited: Promise<Exit>;
  /** The exit, once it happened, and when (ms since `performance.timeOrigin`). */
  exit: (Exit & { readonly at: number }) | undefined;
}

const runs = new Set<ReaderRun>();
const assemblers = new Set<ChildProcess>();
/** Every reading process seen, also of readers that exited (an abandoned read). */
const readingSeen = new Set<number>();

/** The fields of /proc/PID/stat after the command name: state, ppid, ... (undefined if there is no such process). */
function procStat(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
    throw err;
  }
}

/** The process state (`R`, `S`, `D`...), or undefined once it is gone (a zombie counts as gone). */
export function processState(pid: number): string | undefined {
  const state = procStat(pid)?.[0];
  return state === 'Z' || state === 'X' ? undefined : state;
}

function argvOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  } catch {
    return [];
  }
}

/** Children of `parent` started as the reading process (`... ddferry-reader.js __reading-process ...`). */
export function readingChildren(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (procStat(pid)?.[1] !== String(parent)) continue;
    if (argvOf(pid).includes('__reading-process')) out.push(pid);
  }
  return out;
}

/** The pid JOBDIR/reading.pid holds, if any. */
export function readingPidFile(s: Scenario): number | undefined {
  try {
    const n = Number(readFileSync(join(s.job, 'reading.pid'), 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Start `ddferry-reader rescue s.job --to TO` with `--json --progress-interval INTERVAL`
 * (and `--token-file` over the LAN; a stick trip uses the token the job's plan names); `detached` puts it in a process group of its own, for
 * a Ctrl-C to the group. Its reading processes are looked for every 100 ms while it runs.
 */
export function runReader(s: Scenario, to: string, o: { interval?: number; extra?: readonly string[]; detached?: boolean } = {}): ReaderRun {
  const lan = /^wss?:/.test(to);
  const args = [READER, 'rescue', s.job, '--to', to, ...(lan ? ['--token-file', s.token] : []), '--json', '--progress-interval', String(o.interval ?? 1), ...(o.extra ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: o.detached === true });
  let err = '';
  let partial = '';
  const lines: Line[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    const at = performance.now();
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const text of parts) {
      if (text.trim() === '') continue;
      try {
        lines.push({ at, o: JSON.parse(text) as Progress });
      } catch (e) {
        err += `[test: stdout line not JSON: ${JSON.stringify(text)} (${(e as Error).message})]\n`;
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const readingPids = new Set<number>();
  const pidFilePids = new Set<number>();
  const look = (): void => {
    for (const pid of readingChildren(child.pid!)) readingPids.add(pid);
    const p = readingPidFile(s);
    if (p !== undefined && processState(p) !== undefined) {
      pidFilePids.add(p);
      if (argvOf(p).includes('__reading-process')) readingPids.add(p);
    }
    for (const pid of readingPids) readingSeen.add(pid);
  };
  const poll = setInterval(look, 100);
  const run: ReaderRun = {
    child, pid: child.pid!, lines, readingPids, pidFilePids, stderr: () => err, exit: undefined,
    exited: new Promise((resolve) => child.on('exit', (code, signal) => {
      clearInterval(poll);
      run.exit = { code, signal, at: performance.now() };
      runs.delete(run);
      resolve({ code, signal });
    })),
  };
  runs.add(run);
  look();
  return run;
}

/** Start `ddferry-assembler serve` with `--json` on 127.0.0.1 port `port` (0: any); resolves with its address. */
export function serveJson(s: Scenario, port = 0): Promise<{ url: string; child: ChildProcess; stderr(): string; exited: Promise<Exit> }> {
  const child = spawn(process.execPath, [ASSEMBLER, 'serve', s.image, '--listen', `127.0.0.1:${port}`, '--token-file', s.token, '--json', '--progress-interval', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  assemblers.add(child);
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<Exit>((resolve) => child.on('exit', (code, signal) => {
    assemblers.delete(child);
    resolve({ code, signal });
  }));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the assembler did not tell its address in 20 s: ${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"url":"(ws:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ url: m[1]!, child, stderr: () => err, exited });
      }
    });
    void exited.then((e) => {
      clearTimeout(t);
      reject(new Error(`the assembler exited (${e.code ?? e.signal}) before listening: ${err}`));
    });
  });
}

/** `ddferry-assembler import DIR IMAGE --token-file TOKEN`; throws unless it exits 0. */
export function importStick(s: Scenario, dir: string): void {
  const r = spawnSync(process.execPath, importArgs(s, dir), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ddferry-assembler import ${dir} exited ${r.status ?? r.signal}: ${r.stderr}`);
}

/** A TCP port on 127.0.0.1 where nothing listens (a closed one: connections are refused at once). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * SIGKILL every reader, reading process and assembler the tests started that still
 * runs. A reading process held in the kernel ends when its read returns (or when
 * `unmount` kills the FUSE daemon); this waits at most 1 s for each reader.
 */
export async function endAll(): Promise<void> {
  for (const r of runs) {
    for (const p of readingChildren(r.pid)) readingSeen.add(p);
    r.child.kill('SIGKILL');
  }
  for (const r of [...runs]) await Promise.race([r.exited, sleep(1000)]);
  for (const p of readingSeen) {
    if (processState(p) !== undefined && argvOf(p).includes('__reading-process')) process.kill(p, 'SIGKILL');
  }
  readingSeen.clear();
  for (const a of assemblers) {
    a.kill('SIGCONT');
    a.kill('SIGKILL');
  }
}

/** Wait until `check` gives a value (polling every 50 ms); throws naming `what` after `ms`. */
export async function until<T>(what: string, ms: number, check: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > end) throw new Error(`${what}: not within ${(ms / 1000).toFixed(0)} s`);
    await sleep(50);
  }
}

/** The first delayed FUSE read at or after `pos` that has started (waits at most `ms`). */
export function slowReadStarted(fs: FaultFs, pos: number, ms: number): Promise<number> {
  const started = performance.now();
  return until(`a hung read at ${pos} of the slow disk`, ms, async () => ((await fs.slowReads()).some((r) => r.offset <= pos && pos < r.offset + r.size) ? performance.now() - started : undefined));
}

/** The outcome of a signal: how long the process took to exit, or undefined if it did not exit within the cap. */
export interface SignalOutcome {
  readonly ms: number | undefined;
  readonly exit: Exit | undefined;
}

/**
 * Send `sig` to the reader (to its process group with `group`: a Ctrl-C on a
 * terminal) and time its exit; after `capMs` it is SIGKILLed and `ms` is undefined.
 */
export async function signalAndTime(run: ReaderRun, sig: NodeJS.Signals, o: { group?: boolean; capMs?: number } = {}): Promise<SignalOutcome> {
  const t0 = performance.now();
  if (o.group) process.kill(-run.pid, sig);
  else run.child.kill(sig);
  const exit = await Promise.race([run.exited, sleep(o.capMs ?? 20_000).then(() => undefined)]);
  if (exit === undefined) {
    run.child.kill('SIGKILL');
    await run.exited;
    return { ms: undefined, exit: undefined };
  }
  return { ms: run.exit!.at - t0, exit };
}

/** Seconds, for messages: `12.3 s`, or `never` (not within the time waited). */
export function seconds(ms: number | undefined): string {
  return ms === undefined ? 'never (not within the time waited)' : `${(ms / 1000).toFixed(1)} s`;
}

/** The longest gap between consecutive lines arriving in `[from, to]` (ms), and where it ended. */
export function longestGap(lines: readonly Line[], from = -Infinity, to = Infinity): { ms: number; after: Progress | undefined } {
  const inside = lines.filter((l) => l.at >= from && l.at <= to);
  let best = { ms: 0, after: undefined as Progress | undefined };
  for (let i = 1; i < inside.length; ++i) {
    const gap = inside[i]!.at - inside[i - 1]!.at;
    if (gap > best.ms) best = { ms: gap, after: inside[i - 1]!.o };
  }
  return best;
}

/** The `+` blocks of a mapfile (none if it does not exist). */
export function rescuedBlocks(file: string): Block[] {
  if (!existsSync(file)) return [];
  return compact(blocksOf(readFileSync(file, 'latin1'))).filter((b) => b.status === '+');
}

/** Sorted, joined `[pos, end)` pairs. */
function union(ranges: ReadonlyArray<{ readonly pos: number; readonly size: number }>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const r of [...ranges].filter((x) => x.size > 0).sort((a, b) => a.pos - b.pos)) {
    const last = out[out.length - 1];
    if (last && r.pos <= last[1]) last[1] = Math.max(last[1], r.pos + r.size);
    else out.push([r.pos, r.pos + r.size]);
  }
  return out;
}

/** Bytes of `a` that lie inside `b`, as `[pos, end)` pairs. */
export function overlap(a: ReadonlyArray<{ readonly pos: number; readonly size: number }>, b: ReadonlyArray<{ readonly pos: number; readonly size: number }>): Array<[number, number]> {
  const x = union(a);
  const y = union(b);
  const out: Array<[number, number]> = [];
  let j = 0;
  for (const [p, e] of x) {
    while (j < y.length && y[j]![1] <= p) ++j;
    for (let k = j; k < y.length && y[k]![0] < e; ++k) {
      const lo = Math.max(p, y[k]![0]);
      const hi = Math.min(e, y[k]![1]);
      if (lo < hi) out.push([lo, hi]);
    }
  }
  return out;
}

/** Bytes of `a` outside `b`, as `[pos, end)` pairs. */
export function subtract(a: ReadonlyArray<{ readonly pos: number; readonly size: number }>, b: ReadonlyArray<{ readonly pos: number; readonly size: number }>): Array<[number, number]> {
  const cut = overlap(a, b);
  const out: Array<[number, number]> = [];
  let j = 0;
  for (const [p, e] of union(a)) {
    let at = p;
    while (j < cut.length && cut[j]![1] <= at) ++j;
    for (let k = j; k < cut.length && cut[k]![0] < e; ++k) {
      if (cut[k]![0] > at) out.push([at, cut[k]![0]]);
      at = Math.max(at, cut[k]![1]);
    }
    if (at < e) out.push([at, e]);
  }
  return out;
}

/** Bytes read successfully more than once among `reads` (`[pos, end)` pairs). */
export function readTwice(reads: readonly FaultFsRead[]): Array<[number, number]> {
  const good = reads.filter((r) => /^\d+$/.test(r.result) && Number(r.result) > 0).map((r) => ({ pos: r.offset, size: Number(r.result) }));
  const events: Array<[number, number]> = [];
  for (const g of good) events.push([g.pos, 1], [g.pos + g.size, -1]);
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: Array<[number, number]> = [];
  let depth = 0;
  let from = 0;
  for (const [at, d] of events) {
    if (depth < 2 && depth + d >= 2) from = at;
    if (depth >= 2 && depth + d < 2 && at > from) out.push([from, at]);
    depth += d;
  }
  return out;
}

/** The successful reads' bytes, as blocks. */
export function goodReads(reads: readonly FaultFsRead[]): Array<{ pos: number; size: number }> {
  return reads.filter((r) => /^\d+$/.test(r.result) && Number(r.result) > 0).map((r) => ({ pos: r.offset, size: Number(r.result) }));
}

/** `[pos, end)` pairs for a message, at most 8. */
export function ranges(list: ReadonlyArray<readonly [number, number]>): string {
  const shown = list.slice(0, 8).map(([p, e]) => `[${p}, ${e})`).join(' ');
  return list.length > 8 ? `${shown} ... (${list.length} ranges)` : shown || 'none';
}
