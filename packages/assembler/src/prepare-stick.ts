/**
 * `ddferry-assembler prepare-stick DIR`: ready a stick on PC_B for PC_A, which boots a
 * rescue live system with neither Node nor network: the reader as one executable, a
 * README telling how to run it from the stick, and if asked the job's plan.
 *
 * | on the stick | from |
 * |---|---|
 * | `ddferry-reader` | `--reader FILE`; else the executable beside this one (a SEA); else the repository's `dist/bin` (`npm run package`) |
 * | `README-ddferry.txt` | made here: copy the reader off the stick, the token, plan, each trip |
 * | `ddferry-job/` | `--plan`: the job's `job.json`, `common.map`, `chunks/`, never its token, spool or ledger |
 *
 * The token never goes on the stick (S3): not its file, not its text. A `--token-file`
 * is checked (a good token, not on the stick) and only named in the README.
 */
import { spawnSync } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, realpath, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { readTokenFile } from '@ddferry/protocol';

import { AssemblerError, errnoOf, messageOf } from './errors.js';
import type { CliIo } from './cli-io.js';

/** The reader's file name on the stick, and the README's. */
export const STICK_READER = 'ddferry-reader';
export const STICK_README = 'README-ddferry.txt';
/** The job's plan on the stick (`--plan`). */
export const STICK_JOB = 'ddferry-job';
/** What `--plan` copies of a job folder: the plan and the map, nothing of PC_A's state or secret. */
const JOB_PLAN_FILES = ['job.json', 'common.map'] as const;
const JOB_CHUNKS = 'chunks';

export const PREPARE_STICK_USAGE = `Usage: ddferry-assembler prepare-stick DIR [--plan JOBDIR|job.json] [--token-file FILE] [--reader FILE]

Ready the stick mounted at DIR for PC_A (a live system, no Node needed): write
DIR/${STICK_READER} (the reader as one executable for Linux x86-64) and
DIR/${STICK_README} (how to run it from the stick, step by step).

Options:
  --plan JOBDIR|job.json  also copy that job's plan (job.json, common.map, chunks/)
                       to DIR/${STICK_JOB}/, for PC_A to copy off and rescue with;
                       never its token, spool or ledger
  --token-file FILE    the token PC_A will use: checked, named in the README, and
                       NEVER written on the stick (bring it by other means or type it)
  --reader FILE        the reader executable to copy (default: the one beside this
                       program, or dist/bin/ddferry-reader of the repository after
                       'npm run package')
  -h, --help           this text
`;

/** Where the running assembler comes from, to find the reader executable beside it. */
export interface PrepareStickHost {
  readonly execPath: string;
  readonly isSea: boolean;
  /** The URL of this module (`dist/prepare-stick.js`, its `.ts`, or a bundle). */
  readonly moduleUrl: string;
}

export function currentPrepareStickHost(): PrepareStickHost {
  return { execPath: process.execPath, isSea: isSea(), moduleUrl: import.meta.url };
}

/** Where to look for the reader executable, first found wins. */
export function readerCandidates(host: PrepareStickHost): string[] {
  if (host.isSea) return [join(dirname(host.execPath), STICK_READER)];
  const own = fileURLToPath(host.moduleUrl);
  // packages/assembler/{dist,src}/prepare-stick.* -> the repository's dist/bin; a bundle in dist/bundle -> dist/bin
  return [resolve(dirname(own), '..', '..', '..', 'dist', 'bin', STICK_READER), resolve(dirname(own), '..', 'bin', STICK_READER)];
}

/** The version line a reader executable must print: the same ddferry version as this assembler. */
function checkReader(file: string, version: string): void {
  const r = spawnSync(file, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  const line = (r.stdout ?? '').split('\n')[0] ?? '';
  if (r.error || r.status !== 0 || !line.startsWith(`${STICK_READER} ${version} `)) {
    const what = r.error ? `it does not run here (${r.error.message})` : r.status !== 0 ? `'${file} --version' exited ${r.status ?? r.signal}` : `it says "${line}"`;
    throw new AssemblerError('ERR_PREPARE_NO_READER', file, `not the reader executable of ddferry ${version}: ${what}. Give --reader FILE, or make it with 'npm run package' (dist/bin/${STICK_READER}).`);
  }
}

async function findReader(given: string | undefined, host: PrepareStickHost): Promise<string> {
  const candidates = given !== undefined ? [resolve(given)] : readerCandidates(host);
  for (const c of candidates) {
    try {
      if ((await lstat(c)).isFile() || given !== undefined) return c;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw new AssemblerError('ERR_PREPARE_NO_READER', c, `cannot read the reader executable (${errnoOf(err) ?? messageOf(err)}).`, { cause: err });
    }
  }
  throw new AssemblerError('ERR_PREPARE_NO_READER', candidates.join(', '), `no reader executable here. Make it with 'npm run package' (dist/bin/${STICK_READER}) or give --reader FILE.`);
}

/** Write `dir/name` under a temporary name with `write`, fsync it, rename it: a name that exists is a whole file. */
async function writeDurably(dir: string, name: string, write: (tmp: string) => Promise<void>, mode = 0o644): Promise<void> {
  const tmp = join(dir, `.${name}.tmp`);
  await rm(tmp, { force: true });
  try {
    await write(tmp);
    const fh = await open(tmp, 'r+');
    try {
      await fh.chmod(mode).catch(() => undefined); // FAT32 and exFAT have no modes
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(dir, name));
  } finally {
    await rm(tmp, { force: true });
  }
}

const copyDurably = (from: string, dir: string, name: string, mode?: number): Promise<void> =>
  writeDurably(dir, name, (tmp) => copyFile(from, tmp, fsConstants.COPYFILE_EXCL), mode);

/** JOBDIR, given as itself or as its job.json. */
async function jobFolderOf(plan: string): Promise<string> {
  const p = resolve(plan);
  let st;
  try {
    st = await lstat(p);
  } catch (err) {
    throw new AssemblerError('ERR_PREPARE_PLAN', plan, `no job folder or job.json here (${errnoOf(err) ?? messageOf(err)}). Give the folder 'ddferry-reader plan' made, or its job.json.`, { cause: err });
  }
  const dir = st.isDirectory() ? p : dirname(p);
  if (!st.isDirectory() && basename(p) !== 'job.json') throw new AssemblerError('ERR_PREPARE_PLAN', plan, 'not a job folder nor a job.json.');
  for (const f of JOB_PLAN_FILES) {
    const s = await lstat(join(dir, f)).catch(() => undefined);
    if (!s?.isFile()) throw new AssemblerError('ERR_PREPARE_PLAN', dir, `the job folder has no ${f}: give the folder 'ddferry-reader plan' made.`);
  }
  return dir;
}

/** Copy the job's plan into `DIR/ddferry-job/`: job.json, common.map, chunks/*.map; nothing else. */
async function copyPlan(jobDir: string, stick: string): Promise<string> {
  const to = join(stick, STICK_JOB);
  await mkdir(join(to, JOB_CHUNKS), { recursive: true });
  for (const f of JOB_PLAN_FILES) await copyDurably(join(jobDir, f), to, f);
  const chunks = await readdir(join(jobDir, JOB_CHUNKS), { withFileTypes: true }).catch(() => []);
  for (const d of chunks) {
    if (d.isFile() && /^chunk\d+\.map$/.test(d.name)) await copyDurably(join(jobDir, JOB_CHUNKS, d.name), join(to, JOB_CHUNKS), d.name);
  }
  return to;
}

/** True if `file` (resolved) lies inside the folder `dir` (resolved). */
async function isInside(file: string, dir: string): Promise<boolean> {
  const f = await realpath(file);
  const d = await realpath(dir);
  return f === d || f.startsWith(d.endsWith(sep) ? d : `${d}${sep}`);
}

/** The README written on the stick. */
export function stickReadme(o: { version: string; readerBytes: number; stickBytes?: number; plan: boolean; tokenFile?: string; preparedOn: string }): string {
  const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MiB`;
  const medium = o.stickBytes !== undefined ? `--medium-size ${o.stickBytes}` : '--medium-size SIZE_OF_THE_STICK';
  const tokenArg = o.tokenFile !== undefined || o.plan ? ' --token-file /root/token' : '';
  const lines = [
    `ddferry-reader ${o.version}: the PC_A side of ddferry, one program for Linux x86-64 (${mib(o.readerBytes)}).`,
    'It holds Node.js and ddferry: the live system needs nothing but its C library (glibc 2.28',
    'or later, libstdc++: any SystemRescue, Debian 10, Ubuntu 20.04 or later live USB).',
    `Prepared on ${o.preparedOn} by 'ddferry-assembler prepare-stick'.`,
    '',
    'Below, /media/usb is where this stick is mounted on PC_A (`lsblk -o NAME,SIZE,MOUNTPOINT`',
    'shows it; mount it yourself with `mkdir -p /media/usb && mount /dev/sdX1 /media/usb`).',
    '',
    '1. Copy the program off the stick and make it executable. FAT32 and exFAT keep no',
    '   execute bit, and live systems mount sticks "noexec", so it cannot run from here:',
    '',
    `     cp /media/usb/${STICK_READER} /tmp/ && chmod +x /tmp/${STICK_READER}`,
    `     /tmp/${STICK_READER} --version`,
    '',
    '   If that says "Permission denied", /tmp is noexec too: use /root or /dev/shm instead.',
    '',
    '2. The token: the shared secret that seals every piece. It is NOT on this stick, on',
    '   purpose (a lost stick must show nothing of the disk).',
  ];
  if (o.tokenFile !== undefined) {
    lines.push(
      `   PC_B's token is the file ${o.tokenFile} there. Bring it on another medium, or`,
      '   type it: show it on PC_B with `cat FILE`, then on PC_A run',
      '',
      '     (umask 077; cat > /root/token)',
      '',
      '   type the line (case, dashes and spaces do not matter), Enter, Ctrl-D.',
    );
  } else if (o.plan) {
    lines.push(
      "   Use the job's token (its JOBDIR/token where it was planned; never copied here): bring",
      '   the file on another medium, or type its line into /root/token: `(umask 077; cat > /root/token)`,',
      '   the line, Enter, Ctrl-D.',
    );
  } else {
    lines.push(
      '   `plan` (step 3) makes one, /root/job/token, and prints where it is. PC_B needs the',
      "   same file: copy it there by other means (not this stick), or type its one line into",
      '   a file on PC_B (`(umask 077; cat > token)`, the line, Ctrl-D).',
    );
  }
  lines.push('', '3. The job folder (keep it on a disk of PC_A that is not the failing one if there is one:');
  lines.push("   a live system's /root is in memory and gone at the next boot; then copy /root/job onto", "   the stick at the end of each session, and back after a reboot):", '');
  if (o.plan) {
    lines.push(`     cp -r /media/usb/${STICK_JOB} /root/job`, '',
      '   The disk is recognised by its fingerprint (size, model, serial), whatever its name; if', '   its /dev name changed, add `--source /dev/sdX` to the rescue command below.');
  } else {
    lines.push('     lsblk -o NAME,SIZE,MODEL,SERIAL        # find the failing disk: say /dev/sdc',
      `     sudo /tmp/${STICK_READER} plan /dev/sdc /root/job ${medium} --fs fat32${o.tokenFile !== undefined ? ' --token-file /root/token' : ''}`,
      '', '   (--fs exfat for an exFAT stick; never write anything to the failing disk.)');
  }
  lines.push('', '4. Each trip: with the stick mounted at /media/usb,', '',
    `     sudo /tmp/${STICK_READER} rescue /root/job --to /media/usb${tokenArg || ' --token-file /root/job/token'} -d`, '',
    '   It reads until the stick is full (exit status 4) and says what to do on PC_B:',
    '   unmount the stick (`umount /media/usb`), carry it to PC_B, `ddferry-assembler import`,',
    '   bring it back, run the same command. It ends with "The rescue is complete".',
    '', `   Keep ${STICK_READER} on the stick: copy it off again (step 1) after a reboot.`, '');
  return `${lines.join('\n')}\n`;
}

/**
 * `prepare-stick DIR [--plan P] [--token-file F] [--reader FILE]`.
 * @returns the exit status.
 * @throws AssemblerError `ERR_USAGE`, `ERR_PREPARE_NO_READER`, `ERR_PREPARE_PLAN`, `ERR_PREPARE_TOKEN_ON_STICK`, `ERR_PREPARE_WRITE`; ProtocolError `ERR_AUTH_TOKEN_*` for a token file that is no good token.
 */
export async function runPrepareStick(argv: readonly string[], io: CliIo, version: string, host: PrepareStickHost = currentPrepareStickHost()): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { plan: { type: 'string' }, 'token-file': { type: 'string' }, reader: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help === true) {
    io.stdout(PREPARE_STICK_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new AssemblerError('ERR_USAGE', 'prepare-stick', 'Give the folder where the stick is mounted: prepare-stick DIR.');
  const stick = resolve(positionals[0]!);
  const st = await lstat(stick).catch(() => undefined);
  if (!st?.isDirectory()) throw new AssemblerError('ERR_PREPARE_WRITE', stick, 'not a folder: give the folder where the stick is mounted.');
  const tokenFile = values['token-file'];
  if (tokenFile !== undefined) {
    await readTokenFile(tokenFile);
    if (await isInside(tokenFile, stick)) {
      throw new AssemblerError('ERR_PREPARE_TOKEN_ON_STICK', tokenFile, `the token file is on the stick (${stick}): the secret never travels with the data. Move it off the stick, give the copy with --token-file, and bring it to PC_A by other means.`);
    }
  }
  const jobDir = values.plan !== undefined ? await jobFolderOf(values.plan) : undefined;
  const reader = await findReader(values.reader, host);
  checkReader(reader, version);
  const readerBytes = (await lstat(reader)).size;
  let stickBytes: number | undefined;
  try {
    const fs = await statfs(stick);
    stickBytes = fs.blocks * fs.bsize;
  } catch (err) {
    io.stderr(`ddferry-assembler: warning: ${stick}: its size is not known (${errnoOf(err) ?? messageOf(err)}); the README says SIZE_OF_THE_STICK.\n`);
  }
  try {
    await copyDurably(reader, stick, STICK_READER, 0o755);
    io.stderr(`ddferry-assembler: ${join(stick, STICK_READER)}: the reader (${reader}, ${readerBytes} bytes)\n`);
    if (jobDir !== undefined) {
      const to = await copyPlan(jobDir, stick);
      io.stderr(`ddferry-assembler: ${to}: the plan of ${jobDir} (job.json, common.map, chunks; not its token)\n`);
    }
    const readme = stickReadme({ version, readerBytes, stickBytes, plan: jobDir !== undefined, tokenFile: tokenFile === undefined ? undefined : resolve(tokenFile), preparedOn: `${hostname()}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC` });
    await writeDurably(stick, STICK_README, (tmp) => writeFile(tmp, readme, { flag: 'wx' }));
    io.stderr(`ddferry-assembler: ${join(stick, STICK_README)}: how to run it on PC_A\n`);
  } catch (err) {
    if (err instanceof AssemblerError) throw err;
    const code = errnoOf(err);
    const hint = code === 'ENOSPC' ? `the stick is full: the reader needs ${readerBytes} bytes` : 'check the stick is mounted read-write';
    throw new AssemblerError('ERR_PREPARE_WRITE', stick, `cannot write on the stick (${code ?? messageOf(err)}): ${hint}.`, { cause: err });
  }
  io.stdout(`The stick ${stick} is ready: on PC_A, follow ${join(stick, STICK_README)}.\n`
    + `The token is not on it: bring it${tokenFile !== undefined ? ` (${resolve(tokenFile)})` : ''} by other means, or type it there.\n`);
  return 0;
}
