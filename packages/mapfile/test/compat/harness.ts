/**
 * Runs one ddrescuelog invocation twice, with the real GNU ddrescuelog 1.27 and with
 * ours in-process, each in its own scratch folder holding the same files, and
 * compares everything observable: exit code, stdout, stderr and the folder's files
 * afterwards (so `-d` deletions and `-c FILE` outputs are compared too).
 *
 * The only bytes ignored are the `# Command line: ` and `# Start time:   ` lines of
 * mapfiles written to stdout or to files.
 */
import { spawnSync } from 'node:child_process';
import type { SpawnSyncOptions, SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { run } from '../../src/cli.js';
import type { CliIo } from '../../src/cli.js';

export const INSTALL_HINT = "GNU ddrescue 1.27 is required: install it with 'apt-get install -y gddrescue'";

/** The environment both tools run in (fixed locale and time zone, as the fixtures). */
export const TOOL_ENV: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', TZ: 'UTC' };

/** Runs per property. Fixed by default so that the suite is reproducible; override for longer soaks. */
export const NUM_RUNS = Number(process.env.DDFERRY_COMPAT_RUNS ?? 300);

/** Seed of every property. */
export const SEED = Number(process.env.DDFERRY_COMPAT_SEED ?? 20261123);

/**
 * fast-check parameters of every property: fixed seed, `NUM_RUNS` runs, and a time
 * limit below mocha's timeout, so that a slow property (or a long shrink) fails by
 * itself instead of running on in the background after mocha has moved on.
 */
export const FC_PARAMS = { seed: SEED, numRuns: NUM_RUNS, interruptAfterTimeLimit: 240_000, markInterruptAsFailure: true } as const;

/**
 * `spawnSync` that turns a missing program into a failure naming the package to
 * install: the suite must never pass (or skip) without the real tools.
 */
export function spawnTool(command: string, args: readonly string[], options: SpawnSyncOptions): SpawnSyncReturns<Buffer> {
  const result = spawnSync(command, args, { env: TOOL_ENV, maxBuffer: 512 * 1024 * 1024, timeout: 120_000, ...options }) as SpawnSyncReturns<Buffer>;
  const err = result.error as NodeJS.ErrnoException | undefined;
  if (err?.code === 'ENOENT') throw new Error(`cannot run '${command}' (ENOENT): ${INSTALL_HINT}`);
  // EPIPE: the program exited without reading all of its stdin, which is fine.
  if (err && !(err.code === 'EPIPE' && result.status !== null)) throw err;
  if (result.status === null) throw new Error(`'${command} ${args.join(' ')}' was killed by ${String(result.signal)}`);
  return result;
}

/** Fail unless `command --version` says version 1.27. */
export function assertToolVersion(command: string): void {
  const result = spawnTool(command, ['--version'], { input: '' });
  const first = result.stdout.toString('latin1').split('\n')[0] ?? '';
  if (!first.endsWith(' 1.27')) throw new Error(`'${command} --version' says '${first}', but the suite compares against 1.27; ${INSTALL_HINT}`);
}

export interface Invocation {
  /** The arguments after the program name. */
  readonly args: readonly string[];
  /** Files written into the working folder before the run. */
  readonly files: Readonly<Record<string, string | Uint8Array>>;
  readonly stdin?: string | Uint8Array;
  /** stdout is mapfile text (drop its Command-line and Start-time lines). */
  readonly mapfileOutput?: boolean;
  /** stdout is binary (a bitmap): shown in hex. */
  readonly binaryOutput?: boolean;
}

export interface Outcome {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Every file in the working folder after the run, normalised. */
  readonly files: Readonly<Record<string, string>>;
}

const IGNORED_LINE = /^# (Command line: |Start time: {3})/;

/** Drop the two lines that legitimately differ between runs. */
export function normaliseMapfileText(text: string): string {
  return text
    .split('\n')
    .filter((line) => !IGNORED_LINE.test(line))
    .join('\n');
}

function toBytes(data: string | Uint8Array | undefined): Buffer {
  if (data === undefined) return Buffer.alloc(0);
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
}

function prepareFolder(dir: string, files: Invocation['files']): void {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), toBytes(data));
}

function readFolder(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    out[name] = normaliseMapfileText(fs.readFileSync(path.join(dir, name)).toString('latin1'));
  }
  return out;
}

function presentStdout(bytes: Buffer, inv: Invocation): string {
  if (inv.binaryOutput) return bytes.toString('hex');
  const text = bytes.toString('latin1');
  return inv.mapfileOutput ? normaliseMapfileText(text) : text;
}

export function runReal(inv: Invocation, dir: string): Outcome {
  prepareFolder(dir, inv.files);
  const result = spawnTool('ddrescuelog', inv.args, { cwd: dir, input: toBytes(inv.stdin) });
  return {
    exitCode: result.status ?? -1,
    stdout: presentStdout(result.stdout, inv),
    stderr: result.stderr.toString('latin1'),
    files: readFolder(dir),
  };
}

export async function runOurs(inv: Invocation, dir: string): Promise<Outcome> {
  prepareFolder(dir, inv.files);
  const out: Buffer[] = [];
  let stderr = '';
  const stdin = toBytes(inv.stdin);
  const io: CliIo = {
    stdout(chunk) {
      out.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk));
    },
    stderr(text) {
      stderr += text;
    },
    readStdin: async () => new Uint8Array(stdin),
    stdinIsTTY: false,
    stdoutIsTTY: false,
    cwd: dir,
  };
  let exitCode: number;
  try {
    exitCode = await run(['ddrescuelog', ...inv.args], io);
  } catch (err) {
    exitCode = -1;
    stderr += `\n[ours threw] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
  }
  return {
    exitCode,
    stdout: presentStdout(Buffer.concat(out), inv),
    stderr: Buffer.from(stderr, 'utf8').toString('latin1'),
    files: readFolder(dir),
  };
}

function shellQuote(arg: string): string {
  return /^[\w./=,+:-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

/** A shell recipe that replays the invocation with the real tool. */
export function describeInvocation(inv: Invocation): string {
  const lines: string[] = [];
  for (const [name, data] of Object.entries(inv.files)) {
    lines.push(`  file ${name} = ${typeof data === 'string' ? JSON.stringify(data) : `hex ${Buffer.from(data).toString('hex')}`}`);
  }
  if (inv.stdin !== undefined) {
    lines.push(`  stdin = ${typeof inv.stdin === 'string' ? JSON.stringify(inv.stdin) : `hex ${Buffer.from(inv.stdin).toString('hex')}`}`);
  }
  lines.push(`  $ ddrescuelog ${inv.args.map(shellQuote).join(' ')}`);
  return lines.join('\n');
}

/** Where two texts first differ, with a little context from each. */
function showDifference(expected: string, actual: string): string {
  const e = expected.split('\n');
  const a = actual.split('\n');
  let i = 0;
  while (i < e.length && i < a.length && e[i] === a[i]) ++i;
  const from = Math.max(0, i - 2);
  const pick = (lines: string[]): string =>
    lines
      .slice(from, i + 3)
      .map((l) => `      ${JSON.stringify(l)}`)
      .join('\n');
  return `first difference at line ${i + 1} (of ${e.length} expected, ${a.length} ours)\n    ddrescuelog:\n${pick(e)}\n    ours:\n${pick(a)}`;
}

/** Compare both tools on `inv`; throw a readable report on any difference. */
export async function expectSameAsDdrescuelog(inv: Invocation, dirs: { readonly real: string; readonly ours: string }): Promise<void> {
  const expected = runReal(inv, dirs.real);
  const actual = await runOurs(inv, dirs.ours);
  const problems: string[] = [];
  if (expected.exitCode !== actual.exitCode) problems.push(`exit code: ddrescuelog ${expected.exitCode}, ours ${actual.exitCode}`);
  if (expected.stdout !== actual.stdout) problems.push(`stdout: ${showDifference(expected.stdout, actual.stdout)}`);
  if (expected.stderr !== actual.stderr) problems.push(`stderr: ddrescuelog ${JSON.stringify(expected.stderr)}, ours ${JSON.stringify(actual.stderr)}`);
  const names = new Set([...Object.keys(expected.files), ...Object.keys(actual.files)]);
  for (const name of [...names].sort()) {
    const e = expected.files[name];
    const a = actual.files[name];
    if (e === a) continue;
    if (e === undefined || a === undefined) {
      problems.push(`file ${name}: ${e === undefined ? 'absent' : 'present'} after ddrescuelog, ${a === undefined ? 'absent' : 'present'} after ours`);
    } else {
      problems.push(`file ${name}: ${showDifference(e, a)}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`ours differs from ddrescuelog 1.27\n${describeInvocation(inv)}\n  ${problems.join('\n  ')}`);
  }
}

/** A scratch folder under the system temp folder, with `real/` and `ours/` working folders. */
export function makeScratch(): { readonly root: string; readonly real: string; readonly ours: string; remove(): void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ddferry-compat-'));
  return {
    root,
    real: path.join(root, 'real'),
    ours: path.join(root, 'ours'),
    remove: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}
