import { MapfileError, type FileSystemName, parseArgs, parseNumberArgument } from '@ddferry/mapfile';

import { join, resolve } from 'node:path';

import { noSerialWarning } from '../job/fingerprint.js';
import { planJob } from '../job/plan-job.js';
import { TOKEN_FILE } from '../job/token.js';
import { parseSlowReads } from '../source/blocking-source.js';
import { type CommandIo, report } from './report.js';
import { planUsedOrder } from './used-map.js';

export const PLAN_HELP = `Usage: ddferry-reader plan SOURCE JOBDIR [--chunk-size N | --medium-size N --fs fat32|exfat|ext4]
                           [--sector-size N] [--token-file F] [--test-mode MAP [--test-slow-reads SPEC]]
                           [--from-mapfile MAP] [--used-first | --used-only]

Make a job folder for a new rescue of SOURCE (a disk, a partition or a file, opened
read-only): job.json (a new rescue id, the source's fingerprint, the chunk plan),
common.map (a GNU ddrescue mapfile of the whole source), chunks/chunkNNNN.map, and
token: the shared secret that seals every piece (the same file on PC_B).

  --chunk-size N      bytes per chunk (ddrescue number forms: 4GiB, 1000s, 0x...)
  --medium-size N     or: chunks that fit one at a time on a stick of N bytes
  --fs NAME           the stick's file system: fat32 (files under 4 GiB), exfat, ext4
  --sector-size N     default: the source's logical sector size
  --token-file F      use this token file instead of making JOBDIR/token
  --test-mode MAP     simulate a failing disk: GNU ddrescue's -H test map over SOURCE
  --test-slow-reads SPEC
                      with --test-mode: reads overlapping these ranges block, as a
                      dying disk's do: POS+SIZE@SECONDS[,...] (e.g. 0x100000+64KiB@12)
  --from-mapfile MAP  start from an existing GNU ddrescue mapfile of this source
  --used-first        read the partition tables and file systems' allocation maps now
                      (through the engine: what is read is kept), then rescue their
                      metadata first, then the used space, then the rest
  --used-only         the same, and never read the free space
`;

/** `ddferry-reader plan ...` */
export async function runPlan(argv: readonly string[], io: CommandIo, signal: AbortSignal = new AbortController().signal): Promise<number> {
  try {
    const { options, operands } = parseArgs(argv, [
      { code: 'chunk-size', long: 'chunk-size', hasArg: 'yes' },
      { code: 'medium-size', long: 'medium-size', hasArg: 'yes' },
      { code: 'fs', long: 'fs', hasArg: 'yes' },
      { code: 'sector-size', long: 'sector-size', hasArg: 'yes' },
      { code: 'test-mode', long: 'test-mode', hasArg: 'yes' },
      { code: 'test-slow-reads', long: 'test-slow-reads', hasArg: 'yes' },
      { code: 'from-mapfile', long: 'from-mapfile', hasArg: 'yes' },
      { code: 'token-file', long: 'token-file', hasArg: 'yes' },
      { code: 'used-first', long: 'used-first', hasArg: 'no' },
      { code: 'used-only', long: 'used-only', hasArg: 'no' },
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
    if (v.has('used-first') && v.has('used-only')) throw new MapfileError('ERR_ARG_INVALID', 'Give --used-first or --used-only, not both.', { option: '--used-only', value: '' });
    if (v.has('test-slow-reads') && !v.has('test-mode')) throw new MapfileError('ERR_ARG_INVALID', '--test-slow-reads simulates a slow disk: it needs --test-mode MAP.', { option: '--test-slow-reads', value: v.get('test-slow-reads')! });
    const job = await planJob({
      source: operands[0]!,
      jobDir: operands[1]!,
      chunkSize: v.has('chunk-size') ? parseNumberArgument(v.get('chunk-size')!, '--chunk-size', unit, 1) : undefined,
      medium: v.has('medium-size') ? { capacity: parseNumberArgument(v.get('medium-size')!, '--medium-size', unit, 1), fs } : undefined,
      sectorSize,
      testMode: v.get('test-mode'),
      testSlowReads: v.has('test-slow-reads') ? parseSlowReads(v.get('test-slow-reads')!) : undefined,
      fromMapfile: v.get('from-mapfile'),
      tokenFile: v.get('token-file'),
      commandLine: ['ddferry-reader', 'plan', ...argv].join(' '),
    });
    if (v.has('used-first') || v.has('used-only')) {
      const order = v.has('used-only') ? 'only' : 'first';
      if (!(await planUsedOrder(resolve(operands[1]!), order, io, signal))) return 130;
    }
    const warning = noSerialWarning(job.source, job.fingerprint);
    if (warning !== null) io.stderr(`ddferry-reader: ${warning}\n`);
    io.stdout(`Planned rescue ${job.rescueId}: ${job.sourceSize} bytes in ${job.chunkCount} chunk(s) of ${job.chunkSize} bytes, sectors of ${job.sectorSize}.\n`);
    const token = job.tokenFile ?? join(resolve(operands[1]!), TOKEN_FILE);
    io.stdout(`The shared secret is in ${token} (readable by you only). PC_B needs the same file: copy it there once\n`
      + `(the stick is not the place: it never travels with the data), or type its one line into a file on PC_B,\n`
      + `then give it to ddferry-assembler serve or import with --token-file.\n`);
    return 0;
  } catch (err) {
    return report(err, io);
  }
}
