import { type FileSystemName, MAPFILE_PARSE_CODES, MapfileError, isMapfileError, messageWithHint, parseArgs, parseNumberArgument } from '@ddferry/mapfile';
import { isProtocolError } from '@ddferry/protocol';

import { type DdrescueCommand, parseDdrescueCommand } from '../ddrescue/options.js';
import { ReaderError } from '../errors.js';
import { planJob } from '../job/plan-job.js';
import { rescueJob } from '../pipeline/rescue-job.js';

export interface CommandIo {
  readonly screen: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly stdout: (text: string) => void;
  readonly signal: () => NodeJS.Signals | null;
  /** True if `screen` is a terminal: the progress is redrawn in place. */
  readonly screenIsTty?: boolean;
}

export const PLAN_HELP = `Usage: ddferry-reader plan SOURCE JOBDIR [--chunk-size N | --medium-size N --fs fat32|exfat|ext4]
                           [--sector-size N] [--test-mode MAP] [--from-mapfile MAP]

Make a job folder for a new rescue of SOURCE (a disk, a partition or a file, opened
read-only): job.json (a new rescue id, the source's fingerprint, the chunk plan),
common.map (a GNU ddrescue mapfile of the whole source), chunks/chunkNNNN.map.

  --chunk-size N      bytes per chunk (ddrescue number forms: 4GiB, 1000s, 0x...)
  --medium-size N     or: chunks that fit one at a time on a stick of N bytes
  --fs NAME           the stick's file system: fat32 (files under 4 GiB), exfat, ext4
  --sector-size N     default: the source's logical sector size
  --test-mode MAP     simulate a failing disk: GNU ddrescue's -H test map over SOURCE
  --from-mapfile MAP  start from an existing GNU ddrescue mapfile of this source
`;

export const RESCUE_HELP = `Usage: ddferry-reader rescue JOBDIR --to ws://HOST:PORT [--token-file F] [--spool-size N]
       ddferry-reader rescue JOBDIR --to DIR [--format bundles|ddrescue-chunks] [--forget-stick ID]
                             [--source DEVICE] [--chunk-at-a-time]
                             [--json] [--progress-interval S] [ddrescue options]

Rescue the job's source with GNU ddrescue's algorithm over the whole disk; rescued data
goes into the spool (JOBDIR/spool) before common.map says it is rescued, is shipped to
the assembler, and is deleted from the spool once the assembler holds it.

  --to URL            the assembler (ddferry-assembler serve prints it)
  --to DIR            or a mounted USB stick: the stick is the spool. Pieces go to
                      DIR/ddferry/<rescue-id>/; reading stops when the stick is full.
                      Carry it to PC_B, run 'ddferry-assembler import DIR IMAGE',
                      bring it back and run the same command: merged pieces are freed,
                      refused or lost ones read again
  --format F          on a stick: bundles (tar files for ddferry-assembler import,
                      the default) or ddrescue-chunks (chunk files and the commands
                      GNU ddrescue needs to merge them on PC_B)
  --forget-stick ID   on a stick: a stick that carried pieces is lost or was wiped;
                      what it carried and PC_B did not merge is read again
  --token-file F      the shared secret (chmod 600); the same file on both sides
  --spool-size N      bytes the local spool may hold [256MiB]; reading pauses when full
  --source DEVICE     the source's name now, if it changed since planning
  --chunk-at-a-time   finish each chunk (all phases) before the next, as the manual
                      'ddrescue -m chunkNNNN.map' recipe does; default: ddrescue's
                      order over the whole disk (copying everywhere first)
  --json              progress as one JSON object a line on stdout (for scripts)
  --progress-interval S  seconds between progress lines or JSON objects when
                      stderr is not a terminal, or with --json [10]; on a
                      terminal the status is redrawn in place once a second
Engine options are GNU ddrescue's (see 'ddferry-reader ddrescue --help'), e.g. -d -r3 -n.

Exit status: 0 everything is read (with --to DIR: import the stick on PC_B, then run
again here until it says the rescue is complete), 1 error, 2 malformed mapfile,
4 the stick is full: carry it to PC_B (--to DIR only), 128+N killed by signal N.
`;

function report(err: unknown, io: CommandIo): number {
  if (isMapfileError(err)) {
    io.stderr(`ddferry-reader: ${err.code}: ${messageWithHint(err)}\n`);
    return MAPFILE_PARSE_CODES.has(err.code) ? 2 : 1;
  }
  if (err instanceof ReaderError || isProtocolError(err) || (err as { code?: string }).code?.startsWith?.('ERR_')) {
    io.stderr(`ddferry-reader: ${(err as { code: string }).code}: ${(err as Error).message}\n`);
    return 1;
  }
  throw err;
}

/** `ddferry-reader plan ...` */
export async function runPlan(argv: readonly string[], io: CommandIo): Promise<number> {
  try {
    const { options, operands } = parseArgs(argv, [
      { code: 'chunk-size', long: 'chunk-size', hasArg: 'yes' },
      { code: 'medium-size', long: 'medium-size', hasArg: 'yes' },
      { code: 'fs', long: 'fs', hasArg: 'yes' },
      { code: 'sector-size', long: 'sector-size', hasArg: 'yes' },
      { code: 'test-mode', long: 'test-mode', hasArg: 'yes' },
      { code: 'from-mapfile', long: 'from-mapfile', hasArg: 'yes' },
      { code: 'h', long: 'help', hasArg: 'no' },
    ]);
    const v = new Map(options.map((o) => [o.code, o.argument]));
    if (v.has('h')) {
      io.stdout(PLAN_HELP);
      return 0;
    }
    if (operands.length !== 2) throw new MapfileError('ERR_ARG_INVALID', `plan needs SOURCE and JOBDIR.\n${PLAN_HELP}`, { option: '', value: '' });
    const sectorSize = v.has('sector-size') ? parseNumberArgument(v.get('sector-size')!, '--sector-size', 0, 1, 1 << 20) : undefined;
    const unit = sectorSize ?? 512;
    const fs = (v.get('fs') ?? 'fat32') as FileSystemName;
    if (!['fat32', 'exfat', 'ext4'].includes(fs)) throw new MapfileError('ERR_ARG_INVALID', `--fs must be fat32, exfat or ext4, not '${fs}'.`, { option: '--fs', value: fs });
    if (v.has('chunk-size') === v.has('medium-size')) throw new MapfileError('ERR_ARG_INVALID', 'Give either --chunk-size or --medium-size.', { option: '', value: '' });
    const job = await planJob({
      source: operands[0]!,
      jobDir: operands[1]!,
      chunkSize: v.has('chunk-size') ? parseNumberArgument(v.get('chunk-size')!, '--chunk-size', unit, 1) : undefined,
      medium: v.has('medium-size') ? { capacity: parseNumberArgument(v.get('medium-size')!, '--medium-size', unit, 1), fs } : undefined,
      sectorSize,
      testMode: v.get('test-mode'),
      fromMapfile: v.get('from-mapfile'),
      commandLine: ['ddferry-reader', 'plan', ...argv].join(' '),
    });
    io.stdout(`Planned rescue ${job.rescueId}: ${job.sourceSize} bytes in ${job.chunkCount} chunk(s) of ${job.chunkSize} bytes, sectors of ${job.sectorSize}.\n`);
    return 0;
  } catch (err) {
    return report(err, io);
  }
}

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
      throw new ReaderError('ERR_OPTION_UNSUPPORTED', option, `${option} does not apply to 'rescue JOBDIR': ${why}. To rescue a part of a disk, run 'ddferry-reader ddrescue' or GNU ddrescue with it.`);
    }
  }
}

/** `ddferry-reader rescue ...` */
export async function runRescue(argv: readonly string[], io: CommandIo): Promise<{ status: number; signal?: NodeJS.Signals }> {
  try {
    const ours = new Map<string, string>();
    const rest: string[] = [];
    for (let i = 0; i < argv.length; ++i) {
      const a = argv[i]!;
      const m = /^--(to|token-file|spool-size|source|progress-interval|format|forget-stick)(?:=(.*))?$/.exec(a);
      if (m) {
        const value = m[2] ?? argv[++i];
        if (value === undefined) throw new MapfileError('ERR_ARG_INVALID', `option '${a}' requires an argument`, { option: a, value: '' });
        ours.set(m[1]!, value);
      } else if (a === '--chunk-at-a-time' || a === '--json') {
        ours.set(a.slice(2), '1');
      } else if (a === '--help' || a === '-h') {
        io.stdout(RESCUE_HELP);
        return { status: 0 };
      } else {
        rest.push(a);
      }
    }
    const engine = parseDdrescueCommand(rest);
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
    return await rescueJob({
      jobDir: engine.infile,
      to,
      format,
      forgetStick: forget,
      tokenFile: ours.get('token-file'),
      spoolBytes: ours.has('spool-size') ? parseNumberArgument(ours.get('spool-size')!, '--spool-size', 512, 1 << 20) : undefined,
      source: ours.get('source'),
      chunkAtATime: ours.has('chunk-at-a-time'),
      progress: {
        mode: ours.has('json') ? 'json' : engine.verbosity < 0 ? 'off' : io.screenIsTty === true ? 'tty' : 'lines',
        interval: ours.has('progress-interval') ? parseInterval(ours.get('progress-interval')!) : undefined,
      },
      engine,
      commandLine: ['ddferry-reader', 'rescue', ...argv].join(' '),
    }, io);
  } catch (err) {
    return { status: report(err, io) };
  }
}
