import { join, resolve } from 'node:path';

import { MapfileError, parseNumberArgument } from '@ddferry/mapfile';

import { ReaderError, errnoOf } from '../errors.js';
import { openJobFolder } from '../job/job-folder.js';
import { readJob } from '../job/job.js';
import { TOKEN_FILE, readJobToken } from '../job/token.js';
import { lanRescue } from '../lan/lan-rescue.js';
import { type FrameEncodeOptions, type ProgressMode, raiseMallocThresholds } from '@ddferry/protocol';
import { openRescueProgress } from '../progress/progress.js';
import type { RescueRequest } from '../run/rescue-run.js';
import { stickTrip } from '../stick/trip.js';
import { type DdrescueCommand, parseDdrescueCommand } from './ddrescue-options.js';
import { type CommandIo, report } from './report.js';

export const RESCUE_HELP = `Usage: ddferry-reader rescue JOBDIR --to ws://HOST:PORT [--token-file F] [--spool-size N]
       ddferry-reader rescue JOBDIR --to DIR [--format bundles|ddrescue-chunks] [--forget-stick ID]
                             [--source DEVICE] [--chunk-at-a-time] [--compress zstd|zstd:LEVEL|none]
                             [--json] [--progress-interval S] [ddrescue options]

Rescue the job's source with GNU ddrescue's algorithm over the whole disk. The reads
run in a reading process of their own: a disk that hangs on a read never freezes the
progress, the link or Ctrl-C. Rescued data is durable (in the spool, or on the stick)
before common.map says it is rescued, is shipped to the assembler, and is deleted
from the spool once the assembler holds it.

  --to URL            the assembler (ddferry-assembler serve prints it)
  --to DIR            or a mounted USB stick: pieces go to DIR/ddferry/<rescue-id>/;
                      reading stops when the stick is full. Carry it to PC_B, run
                      'ddferry-assembler import DIR IMAGE', bring it back and run the
                      same command: merged pieces are freed, refused or lost ones read again
  --format F          on a stick: bundles (tar files for ddferry-assembler import,
                      the default) or ddrescue-chunks (chunk files and the commands
                      GNU ddrescue needs to merge them on PC_B)
  --forget-stick ID   on a stick: a stick that carried pieces is lost or was wiped;
                      what it carried and PC_B did not merge is read again
  --token-file F      the shared secret (chmod 600); the same file on both sides
                      [the one plan made: JOBDIR/token]. Every piece is sealed with it
                      (AES-256-GCM): a lost stick shows nothing of the disk
  --spool-size N      bytes the local spool may hold [256MiB]; reading pauses when full
  --compress C        how rescued data travels, sealed: zstd (the default, level 3;
                      zstd:1 to zstd:19 for another level): all-zero frames as zero
                      runs (no bytes), frames zstd shrinks by 3% or more compressed,
                      the rest raw; none: every byte as read. PC_B checks every
                      byte's xxh64 after decoding. ddrescue-chunks files stay raw
  --source DEVICE     the source's name now, if it changed since planning
  --chunk-at-a-time   finish each chunk (all phases) before the next, as the manual
                      'ddrescue -m chunkNNNN.map' recipe does; default: ddrescue's
                      order over the whole disk (copying everywhere first)
  --json              progress as one JSON object a line on stdout (for scripts)
  --progress-interval S  seconds between progress lines or JSON objects when
                      stderr is not a terminal, or with --json [10]; on a
                      terminal the status is redrawn in place once a second
Engine options are GNU ddrescue's (see 'ddferry-reader ddrescue --help'), e.g. -d -r3 -n,
and its logs: --log-events=FILE, --log-rates=FILE, --log-reads=FILE.

The first Ctrl-C (SIGINT) or SIGTERM saves common.map and ends within 3 seconds, even
while the disk hangs on a read (that read is left to the reading process, which ends
by itself when the disk answers); a second one ends at once.

Exit status: 0 everything is read (with --to DIR: import the stick on PC_B, then run
again here until it says the rescue is complete), 1 error, 2 malformed mapfile,
4 the stick is full: carry it to PC_B (--to DIR only), 128+N killed by signal N.
`;

/** `--progress-interval S`: seconds, 0.1 to 86400. */
function parseInterval(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0.1 || n > 86400) {
    throw new MapfileError('ERR_ARG_INVALID', `--progress-interval takes seconds from 0.1 to 86400, not '${text}'.`, { option: '--progress-interval', value: text });
  }
  return n;
}

/**
 * Refuse the ddrescue options a job does not take, rather than ignore them: the job's plan
 * is the domain (the whole source), the image is on PC_B, the test map is the plan's.
 * @throws ReaderError `ERR_OPTION_UNSUPPORTED` naming the option.
 */
function refuseOutsideJob(engine: DdrescueCommand): void {
  const given: Array<[boolean, string, string]> = [
    [engine.ipos !== 0, '-i (--input-position)', 'the job rescues its whole source'],
    [engine.opos !== -1, '-o (--output-position)', 'the image on PC_B takes every byte at its source position'],
    [engine.maxSize !== -1, '-s (--size)', 'the job rescues its whole source'],
    [engine.domainMapfile !== undefined, '-m (--domain-mapfile)', 'the job rescues its whole source (--chunk-at-a-time goes chunk by chunk)'],
    [engine.testMapfile !== undefined, '-H (--test-mode)', 'a simulated disk is planned with \'ddferry-reader plan --test-mode MAP\''],
    [engine.sparse, '-S (--sparse)', 'there is no output file on PC_A'],
    [engine.truncate, '-t (--truncate)', 'there is no output file on PC_A'],
    [engine.preallocate, '-p (--preallocate)', 'there is no output file on PC_A'],
    [engine.minOutfileSize !== -1, '-x (--extend-outfile)', 'there is no output file on PC_A'],
  ];
  for (const [set, option, why] of given) {
    if (set) {
      throw new ReaderError('ERR_OPTION_UNSUPPORTED', option, `${option} does not apply to 'rescue JOBDIR': ${why}.`, {
        hint: 'To rescue a part of a disk, run \'ddferry-reader ddrescue\' or GNU ddrescue with it.',
      });
    }
  }
}

/** `--compress zstd|zstd:LEVEL|none`. */
function parseCompress(text: string | undefined): FrameEncodeOptions {
  if (text === undefined || text === 'zstd') return {};
  if (text === 'none') return { compression: 'none' };
  const m = /^zstd:(\d{1,2})$/.exec(text);
  const level = m === null ? NaN : Number(m[1]);
  if (!(level >= 1 && level <= 19)) throw new MapfileError('ERR_ARG_INVALID', `--compress takes zstd, zstd:1 to zstd:19 or none, not '${text}'.`, { option: '--compress', value: text });
  return { level };
}

/** Our options, then the engine's (ddrescue's). */
function parseRescueArgs(argv: readonly string[]): { ours: Map<string, string>; engine: DdrescueCommand } | 'help' {
  const ours = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i]!;
    const m = /^--(to|token-file|spool-size|source|progress-interval|format|forget-stick|compress)(?:=(.*))?$/.exec(a);
    if (m) {
      const value = m[2] ?? argv[++i];
      if (value === undefined) throw new MapfileError('ERR_ARG_INVALID', `option '${a}' requires an argument`, { option: a, value: '' });
      ours.set(m[1]!, value);
    } else if (a === '--chunk-at-a-time' || a === '--json') {
      ours.set(a.slice(2), '1');
    } else if (a === '--help' || a === '-h') {
      return 'help';
    } else {
      rest.push(a);
    }
  }
  return { ours, engine: parseDdrescueCommand(rest) };
}

/** Errors of a write on a stick that mean it is full (fusefat answers EPERM). */
const STICK_FULL_CODES = new Set(['ENOSPC', 'EFBIG', 'EDQUOT', 'EPERM']);

/**
 * The system error a run did not expect, as a coded error naming its file: on the stick
 * (`stickRoot`, a trip's `--to DIR`) `ERR_STICK_FULL` (no space) or `ERR_STICK_WRITE`
 * (rescue.json on a full stick, a FAT label named DDFERRY...); elsewhere `ERR_SPOOL`
 * (ENOSPC on PC_A's disk...). Coded errors pass unchanged.
 */
function codedSystemError(err: unknown, jobDir: string, stickRoot: string | undefined): unknown {
  const code = errnoOf(err);
  if (code === undefined || code.startsWith('ERR_')) return err;
  const path = (err as { path?: unknown }).path;
  const file = typeof path === 'string' ? path : stickRoot ?? jobDir;
  if (stickRoot !== undefined && (file === stickRoot || file.startsWith(`${stickRoot}/`))) {
    return STICK_FULL_CODES.has(code)
      ? new ReaderError('ERR_STICK_FULL', file, `${file}: the stick is full (${(err as Error).message}).`, { cause: err, hint: 'Free space on it or use another stick, then run the same command again.' })
      : new ReaderError('ERR_STICK_WRITE', file, `${file}: ${(err as Error).message}.`, { cause: err, hint: 'Check the stick is plugged in and mounted read-write, then run the same command again.' });
  }
  return new ReaderError('ERR_SPOOL', file, `${file}: ${(err as Error).message}.`, {
    cause: err, hint: `${file.startsWith(jobDir) ? 'Free space on the disk holding the job folder' : 'Fix the cause'}, then run the same command again.`,
  });
}

/**
 * `ddferry-reader rescue ...`: the job opened, the progress shown, then the LAN run
 * (lan/lan-rescue.ts) or the stick trip (stick/trip.ts), both through the one run loop.
 * @param signal aborted by the first SIGINT/SIGTERM; `stopSignal` tells which one.
 */
export async function runRescue(argv: readonly string[], io: CommandIo, signal: AbortSignal, stopSignal: () => NodeJS.Signals | null): Promise<{ status: number; signal?: NodeJS.Signals }> {
  try {
    const parsed = parseRescueArgs(argv);
    if (parsed === 'help') {
      io.stdout(RESCUE_HELP);
      return { status: 0 };
    }
    const { ours, engine } = parsed;
    raiseMallocThresholds();
    if (engine.infile === undefined || engine.outfile !== undefined) throw new MapfileError('ERR_ARG_INVALID', `rescue needs one JOBDIR.\n${RESCUE_HELP}`, { option: '', value: '' });
    refuseOutsideJob(engine);
    const to = ours.get('to');
    if (to === undefined || to === '') throw new MapfileError('ERR_ARG_INVALID', '--to is required: ws://HOST:PORT (the address ddferry-assembler serve prints) or the folder of a mounted USB stick.', { option: '--to', value: '' });
    const lan = /^wss?:\/\//.test(to);
    const format = ours.get('format');
    if (format !== undefined && format !== 'bundles' && format !== 'ddrescue-chunks') throw new MapfileError('ERR_ARG_INVALID', `--format must be bundles or ddrescue-chunks, not '${format}'.`, { option: '--format', value: format });
    if (lan && format !== undefined) throw new MapfileError('ERR_ARG_INVALID', '--format is for --to DIR (a stick); over the LAN pieces go as they are.', { option: '--format', value: format });
    const forget = ours.get('forget-stick');
    if (forget !== undefined && (lan || !/^[0-9a-f]{8,64}$/.test(forget))) throw new MapfileError('ERR_ARG_INVALID', '--forget-stick takes the stick id the reader printed (hex digits), with --to DIR.', { option: '--forget-stick', value: forget });
    const spoolBytes = ours.has('spool-size') ? parseNumberArgument(ours.get('spool-size')!, '--spool-size', 512, 1 << 20) : 256 << 20;
    const interval = ours.has('progress-interval') ? parseInterval(ours.get('progress-interval')!) : undefined;
    const compression = parseCompress(ours.get('compress'));
    const mode: ProgressMode = ours.has('json') ? 'json' : engine.verbosity < 0 ? 'off' : io.screenIsTty === true ? 'tty' : 'lines';
    const e = engine.rescue;
    const jobDir = resolve(engine.infile);
    const commandLine = ['ddferry-reader', 'rescue', ...argv].join(' ');
    const planned = await readJob(jobDir);
    const token = await readJobToken(jobDir, ours.get('token-file'), planned.tokenFile);
    if (token === null && !lan) {
      throw new ReaderError('ERR_STICK_NO_TOKEN', join(jobDir, TOKEN_FILE), `${join(jobDir, TOKEN_FILE)}: no token: the pieces a stick carries are sealed with the shared secret, and this job has none.`, {
        hint: `Make one here on PC_A (ddferry-assembler token ${join(jobDir, TOKEN_FILE)}) and give PC_B a copy of it, or give one with --token-file.`,
      });
    }
    if (token === null) io.stderr(`ddferry-reader: warning: no token (${join(jobDir, TOKEN_FILE)} is missing and no --token-file given): anyone on the LAN can send this assembler data or read what travels. Give both sides the same --token-file.\n`);
    const job = await openJobFolder(jobDir, { secret: token?.secret ?? '', spoolBytes, hardbs: e.hardbs, commandLine, saveInterval: e.mapfileSaveInterval, syncInterval: e.mapfileSyncInterval, compression });
    const request: RescueRequest = {
      options: e,
      source: ours.has('source') ? resolve(ours.get('source')!) : job.job.source,
      chunkAtATime: ours.has('chunk-at-a-time'),
      commandLine,
      logs: { events: engine.eventLog, rates: engine.rateLog, reads: engine.readLog },
    };
    const progress = openRescueProgress({ progress: { mode, interval }, engine }, io, { sourceSize: job.job.sourceSize, chunks: job.chunks });
    const log = (line: string): void => progress.log(line);
    progress.start();
    try {
      const result = lan
        ? await lanRescue({ job, request, url: to, secret: token?.secret ?? '', progress, log, signal }, stopSignal)
        : await stickTrip({ job, request, to, format, forgetStick: forget, tokenFile: token?.file, progress, log, signal }, stopSignal);
      // a full stick ends the trip as planned
      progress.finish(result.signal ? 'interrupted' : result.status === 0 || result.status === 4 ? 'finished' : 'failed');
      return result;
    } catch (err) {
      const coded = codedSystemError(err, jobDir, lan ? undefined : resolve(to));
      progress.finish('failed');
      throw coded;
    }
  } catch (err) {
    return { status: report(err, io) };
  }
}

