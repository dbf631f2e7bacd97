import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { MapfileError } from '@ddferry/mapfile';
import type { ProgressMode } from '@ddferry/protocol';

import { saveFileAtomic } from '../durable-file.js';
import { type JobFolder, openJobFolder } from '../job/job-folder.js';
import { readJob, writeJob } from '../job/job.js';
import { planJob } from '../job/plan-job.js';
import { readJobToken } from '../job/token.js';
import { METADATA_MAP, USED_MAP, saveUsedMaps } from '../job/used-order.js';
import { type RescueProgress, openRescueProgress } from '../progress/progress.js';
import { formatBytes } from '../progress/units.js';
import { LocalDestination } from '../run/local-destination.js';
import { rescueIntoDestination } from '../run/rescue-run.js';
import { formatUsedMapfile } from '../used/used-mapfile.js';
import type { UsedSpace } from '../used/used-space.js';
import { type DdrescueCommand, parseDdrescueCommand } from './ddrescue-options.js';
import { type CommandIo, report } from './report.js';

export const USED_MAP_HELP = `Usage: ddferry-reader used-map SOURCE [-o FILE] [--metadata] [--test-mode MAP] [-d]
       ddferry-reader used-map JOBDIR [-o FILE] [--metadata] [-d]

Read the partition tables (MBR with its extended partitions, GPT with its backup) and,
in each partition, the file system's own allocation maps (NTFS $Bitmap and $MFT,
ext2/3/4 block group bitmaps, FAT12/16/32 tables, exFAT's allocation bitmap), and print
a GNU ddrescue domain mapfile of the used space: '+' used or metadata, '?' free, usable
with 'ddrescue -m'. A partition of an unknown type counts as used; what cannot be read
or looks wrong counts as used too (the domain may be too big, never too small).

The reads go through the rescue engine, in a reading process of their own, with
ddrescue's rules for bad sectors. Given a JOBDIR, what they read is kept: in its spool
and in common.map, never read again; JOBDIR/used.map and JOBDIR/metadata.map are
written. Given a SOURCE, nothing is kept (plan --used-first keeps it).

  -o FILE             write the mapfile there (default: standard output)
  --metadata          the file systems' metadata only (tables, bitmaps, inode tables, MFT)
  --test-mode MAP     simulate a failing disk with GNU ddrescue's -H test map over SOURCE
Engine options are GNU ddrescue's (e.g. -d for direct reads, -b 4096).
`;

export interface UsedScanOptions {
  readonly job: JobFolder;
  readonly engine: DdrescueCommand;
  readonly commandLine: string;
  readonly progress: RescueProgress;
  readonly log: (line: string) => void;
  readonly signal: AbortSignal;
}

/**
 * The used-space scan of a job's source, read through the reading process into the job
 * (its spool and common.map); the domains saved in the job folder.
 * @returns the scan's result, or null if a signal stopped it.
 */
export async function scanUsedSpace(o: UsedScanOptions): Promise<UsedSpace | null> {
  const { job } = o;
  const end = await rescueIntoDestination({
    job,
    request: { options: o.engine.rescue, source: job.job.source, chunkAtATime: false, commandLine: o.commandLine, logs: {} },
    destination: new LocalDestination(job.spool), scan: true, progress: o.progress, log: o.log, signal: o.signal,
  });
  if (end.kind !== 'done' || end.used === undefined) return null;
  await saveUsedMaps(job.dir, end.used, job.job.sourceSize, o.commandLine);
  return end.used;
}

/** One line per partition and warning, for people. */
export function describeUsedSpace(used: UsedSpace, size: number): string[] {
  const total = (r: readonly { size: number }[]): number => r.reduce((n, b) => n + b.size, 0);
  const lines = [`used space: ${formatBytes(total(used.used))} of ${formatBytes(size)} (${((100 * total(used.used)) / Math.max(1, size)).toFixed(1)} %), `
    + `metadata ${formatBytes(total(used.metadata))}, ${used.partitions.length} partition(s)`];
  for (const p of used.partitions) lines.push(`  ${p.fs.padEnd(10)} at ${p.pos}, ${formatBytes(p.size)} (type ${p.type})`);
  for (const w of used.warnings) lines.push(`ddferry-reader: ${w.code}: ${w.message}`);
  return lines;
}

/** `ddferry-reader used-map ...` */
export async function runUsedMap(argv: readonly string[], io: CommandIo, signal: AbortSignal): Promise<{ status: number }> {
  let temp: string | undefined;
  try {
    const ours = new Map<string, string>();
    const rest: string[] = [];
    for (let i = 0; i < argv.length; ++i) {
      const a = argv[i]!;
      if (a === '--help' || a === '-h') {
        io.stdout(USED_MAP_HELP);
        return { status: 0 };
      }
      const m = /^(?:-o|--output|--test-mode)(?:=(.*))?$/.exec(a);
      if (m) {
        const value = m[1] ?? argv[++i];
        if (value === undefined) throw new MapfileError('ERR_ARG_INVALID', `option '${a}' requires an argument`, { option: a, value: '' });
        ours.set(a.startsWith('--test-mode') ? 'test-mode' : 'o', value);
      } else if (a === '--metadata') {
        ours.set('metadata', '1');
      } else {
        rest.push(a);
      }
    }
    const engine = parseDdrescueCommand(rest);
    if (engine.infile === undefined || engine.outfile !== undefined) throw new MapfileError('ERR_ARG_INVALID', `used-map needs one SOURCE or JOBDIR.\n${USED_MAP_HELP}`, { option: '', value: '' });
    const given = resolve(engine.infile);
    const isJob = await stat(join(given, 'job.json')).then(() => true, () => false);
    let jobDir = given;
    if (!isJob) {
      // a source alone: a job of the moment, forgotten at the end
      temp = await mkdtemp(join(tmpdir(), 'ddferry-used-map-'));
      jobDir = join(temp, 'job');
      const size = (await stat(given)).size;
      await planJob({ source: given, jobDir, chunkSize: Math.max(512, size - (size % 512)) || 512, testMode: ours.get('test-mode'), commandLine: 'ddferry-reader used-map' });
    }
    const token = await readJobToken(jobDir);
    const e = engine.rescue;
    const commandLine = ['ddferry-reader', 'used-map', ...argv].join(' ');
    const job = await openJobFolder(jobDir, { secret: token?.secret ?? '', spoolBytes: Number.MAX_SAFE_INTEGER, hardbs: e.hardbs, commandLine, saveInterval: e.mapfileSaveInterval, syncInterval: e.mapfileSyncInterval });
    const mode: ProgressMode = engine.verbosity >= 0 && io.screenIsTty === true ? 'tty' : 'off';
    const progress = openRescueProgress({ progress: { mode }, engine }, io, { sourceSize: job.job.sourceSize, chunks: job.chunks });
    const log = (l: string): void => progress.log(l);
    progress.start();
    const used = await scanUsedSpace({ job, engine, commandLine, progress, log, signal });
    progress.finish(used === null ? 'interrupted' : 'finished');
    if (used === null) return { status: 130 };
    const text = formatUsedMapfile(used, job.job.sourceSize, commandLine, { domain: ours.has('metadata') ? 'metadata' : 'used' });
    const out = ours.get('o');
    if (out === undefined) io.stdout(text.toString('latin1'));
    else await saveFileAtomic(resolve(out), text);
    for (const l of describeUsedSpace(used, job.job.sourceSize)) io.stderr(`${l}\n`);
    if (isJob) io.stderr(`ddferry-reader: kept what was read in ${jobDir} (spool, common.map); domains in ${join(jobDir, USED_MAP)} and ${join(jobDir, METADATA_MAP)}.\n`);
    return { status: 0 };
  } catch (err) {
    return { status: report(err, io) };
  } finally {
    if (temp !== undefined) await rm(temp, { recursive: true, force: true });
  }
}

/**
 * `plan --used-first` / `--used-only`: scan the new job's source (kept in the job), then
 * record the order in job.json.
 */
export async function planUsedOrder(jobDir: string, order: 'first' | 'only', io: CommandIo, signal: AbortSignal): Promise<boolean> {
  const engine = parseDdrescueCommand([jobDir]);
  const token = await readJobToken(jobDir, undefined, (await readJob(jobDir)).tokenFile);
  const commandLine = `ddferry-reader plan --used-${order}`;
  const e = engine.rescue;
  const job = await openJobFolder(jobDir, { secret: token?.secret ?? '', spoolBytes: Number.MAX_SAFE_INTEGER, hardbs: e.hardbs, commandLine, saveInterval: e.mapfileSaveInterval, syncInterval: e.mapfileSyncInterval });
  const progress = openRescueProgress({ progress: { mode: io.screenIsTty === true ? 'tty' : 'off' }, engine }, io, { sourceSize: job.job.sourceSize, chunks: job.chunks });
  const log = (l: string): void => progress.log(l);
  progress.start();
  const used = await scanUsedSpace({ job, engine, commandLine, progress, log, signal });
  progress.finish(used === null ? 'interrupted' : 'finished');
  if (used === null) return false;
  await writeJob(jobDir, { ...job.job, usedOrder: order });
  for (const l of describeUsedSpace(used, job.job.sourceSize)) io.stdout(`${l}\n`);
  return true;
}
