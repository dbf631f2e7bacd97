/**
 * Helpers shared by the tests that compare ddferry-reader's `ddrescue` with GNU
 * ddrescue 1.27: the deterministic input of spec 3.2, spec 3.2's read-log
 * normalisation, the comparable part of a mapfile, and (for the compat suite) running
 * both tools on the same files and describing where their results differ.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { runDdrescue } from '../../src/commands/ddrescue.js';

/** spec 3.2's input: sector i holds the big-endian u64 i+1, 64 times. */
export function makeDetBin(sectors = 32768): Buffer {
  const buf = Buffer.alloc(sectors * 512);
  for (let i = 0; i < sectors; ++i) {
    for (let k = 0; k < 64; ++k) buf.writeBigUInt64BE(BigInt(i + 1), i * 512 + k * 8);
  }
  return buf;
}

/**
 * `size` bytes of spec 3.2's input from input position `pos` (a multiple of 512):
 * 512-byte sector i of the input holds the big-endian u64 i+1, 64 times. Any size, so
 * inputs need not end on a sector or cluster boundary.
 */
export function detBytes(pos: number, size: number): Buffer {
  if (pos % 512 !== 0) throw new Error(`detBytes: position ${pos} is not a multiple of 512`);
  const sectors = Math.ceil(size / 512);
  const buf = Buffer.alloc(sectors * 512);
  const first = pos / 512 + 1;
  for (let i = 0; i < sectors; ++i) {
    const at = i * 512;
    buf.writeBigUInt64BE(BigInt(first + i), at);
    buf.copyWithin(at + 8, at, at + 8);
    buf.copyWithin(at + 16, at, at + 16);
    buf.copyWithin(at + 32, at, at + 32);
    buf.copyWithin(at + 64, at, at + 64);
    buf.copyWithin(at + 128, at, at + 128);
    buf.copyWithin(at + 256, at, at + 256);
  }
  return buf.subarray(0, size);
}

/** spec 3.2's `nreads`: drop the header and footer, per-second marks and phase-line times. */
export function normalizeReadLog(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^# (Reads Logfile|Command line|Start time|End time)/.test(l) && !l.startsWith('#  Ipos'))
    .map((l) => l.replace(/^# [0-9dhms:]+ {2}/, '# '))
    .filter((l) => !/^# [0-9dhms:]+$/.test(l))
    .join('\n');
}

/** A mapfile without its first line and its command-line and time lines. */
export function mapBody(text: string): string {
  return text.split('\n').slice(1).filter((l) => !/^# (Command line|Start time|Current time):/.test(l)).join('\n');
}

// ---------------------------------------------------------------------------
// Running both tools

export const DDRESCUE_INSTALL_HINT = "GNU ddrescue 1.27 is required: install it with 'apt-get install -y gddrescue'";

/** The environment GNU ddrescue runs in (fixed locale and time zone). */
export const TOOL_ENV: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', TZ: 'UTC' };

/** How a run ended: an exit status, or death by a signal. */
export interface RunEnd {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** Start a program; a missing program is an error naming the package to install. */
export function startProcess(command: string, args: readonly string[], options: SpawnOptions): { child: ChildProcess; done: Promise<RunEnd> } {
  const child = spawn(command, args, { env: TOOL_ENV, stdio: ['ignore', 'ignore', 'pipe'], ...options });
  let stderr = '';
  child.stderr?.setEncoding('latin1');
  child.stderr?.on('data', (d: string) => {
    if (stderr.length < 65536) stderr += d;
  });
  const done = new Promise<RunEnd>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' ? new Error(`cannot run '${command}' (ENOENT): ${DDRESCUE_INSTALL_HINT}`) : err);
    });
    child.on('close', (status, signal) => resolve({ status, signal, stderr }));
  });
  return { child, done };
}

/** Fail unless `ddrescue --version` says 1.27. */
export async function assertDdrescueVersion(): Promise<void> {
  let out = '';
  const child = spawn('ddrescue', ['--version'], { env: TOOL_ENV, stdio: ['ignore', 'pipe', 'ignore'] });
  child.stdout.setEncoding('latin1');
  child.stdout.on('data', (d: string) => {
    out += d;
  });
  await new Promise<void>((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(`cannot run 'ddrescue': ${DDRESCUE_INSTALL_HINT}`) : err));
    child.on('close', () => resolve());
  });
  const first = out.split('\n')[0] ?? '';
  if (first !== 'GNU ddrescue 1.27') throw new Error(`'ddrescue --version' says '${first}', but the suite compares against 1.27; ${DDRESCUE_INSTALL_HINT}`);
}

/** GNU ddrescue with `argv` (its options and files) in folder `cwd`. */
export function runRealDdrescue(argv: readonly string[], cwd: string): Promise<RunEnd> {
  return startProcess('ddrescue', argv, { cwd }).done;
}

/** ddferry's `runDdrescue` in-process, with the same `argv` in folder `cwd`; a throw is reported as status -1. */
export async function runOursInProcess(argv: readonly string[], cwd: string): Promise<RunEnd> {
  let stderr = '';
  try {
    const r = await runDdrescue(argv, {
      screen: () => undefined,
      stderr: (t) => {
        stderr += t;
      },
      stdout: () => undefined,
      cwd,
      signal: () => null,
    });
    return { status: r.status, signal: r.signal ?? null, stderr };
  } catch (err) {
    return { status: -1, signal: null, stderr: `${stderr}\n[ours threw] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` };
  }
}

// ---------------------------------------------------------------------------
// Comparing results

/** `[pos, pos+size)`. */
export interface Range {
  readonly pos: number;
  readonly size: number;
}

/** The comparable state of one working folder after a run. */
export interface Snapshot {
  /** mapBody of the mapfile, or null if there is none. */
  readonly map: string | null;
  /** Normalised read log, or null if there is none. */
  readonly reads: string | null;
  /** Output size and sha256 (of the whole file, or of `ranges` only), or null if there is none. */
  readonly out: { readonly size: number; readonly sha256: string } | null;
}

/** sha256 of a file, or of the given ranges of it (for huge sparse files). */
export function hashFile(path: string, ranges?: readonly Range[]): string {
  const h = createHash('sha256');
  if (ranges === undefined) return h.update(readFileSync(path)).digest('hex');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (const r of ranges) {
      h.update(`${r.pos}+${r.size}:`);
      for (let done = 0; done < r.size;) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, r.size - done), r.pos + done);
        if (n <= 0) break;
        h.update(buf.subarray(0, n));
        done += n;
      }
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The blocks of a mapfile's text: `[pos, size, status]`. */
export function mapBlocks(text: string): { pos: number; size: number; status: string }[] {
  const out: { pos: number; size: number; status: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^(0x[0-9A-Fa-f]+)\s+(0x[0-9A-Fa-f]+)\s+([?*/+-])/.exec(line);
    if (m) out.push({ pos: Number(m[1]), size: Number(m[2]), status: m[3]! });
  }
  return out;
}

/**
 * What a run left in `dir`: its mapfile `map`, read log `reads` and output `out`.
 * `outRanges` limits the output hash to those ranges (for outputs far above 4 GiB).
 */
export function snapshot(dir: string, names: { readonly map: string; readonly reads: string; readonly out: string }, outRanges?: readonly Range[]): Snapshot {
  const p = (n: string): string => join(dir, n);
  return {
    map: existsSync(p(names.map)) ? mapBody(readFileSync(p(names.map), 'latin1')) : null,
    reads: existsSync(p(names.reads)) ? normalizeReadLog(readFileSync(p(names.reads), 'latin1')) : null,
    out: existsSync(p(names.out)) ? { size: statSync(p(names.out)).size, sha256: hashFile(p(names.out), outRanges) } : null,
  };
}

/** Where two texts first differ, with a little context from each. */
export function showDifference(expected: string, actual: string, context = 2): string {
  const e = expected.split('\n');
  const a = actual.split('\n');
  let i = 0;
  while (i < e.length && i < a.length && e[i] === a[i]) ++i;
  const from = Math.max(0, i - context);
  const pick = (lines: string[]): string =>
    lines
      .slice(from, i + context + 1)
      .map((l, k) => `      ${from + k === i ? '>' : ' '} ${JSON.stringify(l)}`)
      .join('\n');
  return `first difference at line ${i + 1} (of ${e.length} from ddrescue, ${a.length} from ddferry)\n    ddrescue:\n${pick(e)}\n    ddferry:\n${pick(a)}`;
}

function describeEnd(r: RunEnd): string {
  return r.signal ? `killed by ${r.signal}` : `exit ${String(r.status)}`;
}

/**
 * Every difference between GNU ddrescue's run and ours: exit status, final mapfile,
 * normalised read log, output size and bytes. Empty when they agree.
 */
export function differences(real: { end: RunEnd; snap: Snapshot }, ours: { end: RunEnd; snap: Snapshot }, what: { mapfile?: boolean; reads?: boolean; output?: boolean; status?: boolean } = {}): string[] {
  const problems: string[] = [];
  const { mapfile = true, reads = true, output = true, status = true } = what;
  if (status && (real.end.status !== ours.end.status || real.end.signal !== ours.end.signal)) {
    problems.push(`exit: ddrescue ${describeEnd(real.end)}, ddferry ${describeEnd(ours.end)}\n    ddrescue stderr: ${JSON.stringify(real.end.stderr)}\n    ddferry stderr: ${JSON.stringify(ours.end.stderr)}`);
  }
  const pair = (name: string, e: string | null, a: string | null): void => {
    if (e === a) return;
    if (e === null || a === null) problems.push(`${name}: ${e === null ? 'absent' : 'present'} after ddrescue, ${a === null ? 'absent' : 'present'} after ddferry`);
    else problems.push(`${name}: ${showDifference(e, a)}`);
  };
  if (mapfile) pair('final mapfile', real.snap.map, ours.snap.map);
  if (reads) pair('read log (normalised)', real.snap.reads, ours.snap.reads);
  if (output) {
    const e = real.snap.out;
    const a = ours.snap.out;
    if (e === null || a === null) {
      if (e !== a) problems.push(`output: ${e === null ? 'absent' : 'present'} after ddrescue, ${a === null ? 'absent' : 'present'} after ddferry`);
    } else if (e.size !== a.size || e.sha256 !== a.sha256) {
      problems.push(`output: ddrescue ${e.size} bytes sha256 ${e.sha256.slice(0, 16)}, ddferry ${a.size} bytes sha256 ${a.sha256.slice(0, 16)}`);
    }
  }
  return problems;
}
