import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import {
  Domain, MAPFILE_PARSE_CODES, MapfileStatus, SblockVector, StatusMap, isMapfileError, messageWithHint,
  formatNum, formatNum3, formatTimestamp, normalizeForRescue, statusOfCode,
} from '@ddferry/mapfile';
import { pathExists, readMapfile, removeStaleTemporaries } from '@ddferry/mapfile/io';

import { allocAligned } from '../source/aligned-buffer.js';
import { doRescue } from '../engine/do-rescue.js';
import { MapfileUpdater } from '../engine/mapfile-updater.js';
import { OutputFile } from '../engine/output-file.js';
import { Rescuebook } from '../engine/rescuebook.js';
import { ReaderError } from '../errors.js';
import { EventLogger } from '../logs/event-logger.js';
import { RateLogger } from '../logs/rate-logger.js';
import { ReadLogger } from '../logs/read-logger.js';
import { FileSource } from '../source/file-source.js';
import { writesToSource } from '../source/same-device.js';
import type { Source } from '../source/source.js';
import { TestModeSource } from '../source/test-mode-source.js';
import { HELP, VERSION } from './ddrescue-help.js';
import { type DdrescueCommand, parseDdrescueCommand } from './ddrescue-options.js';
import { DdrescueReporter } from '../progress/ddrescue-reporter.js';

/** The outside world of a run; tests give their own. */
export interface RunIo {
  /** The screen (ddferry writes the status block on stderr). */
  readonly screen: (text: string) => void;
  /** Messages and errors. */
  readonly stderr: (text: string) => void;
  readonly stdout: (text: string) => void;
  readonly cwd: string;
  /** The signal that interrupted the run, if any; polled between reads. */
  readonly signal: () => NodeJS.Signals | null;
}

export const PROGRAM = 'ddferry-reader';

/** How the process should end: an exit status, or a signal to re-raise. */
export type RunResult = { readonly status: number; readonly signal?: NodeJS.Signals };

/**
 * `ddferry-reader ddrescue [options] infile outfile [mapfile]`: GNU ddrescue 1.27's
 * rescue mode (`main` and `do_rescue`), with atomic mapfile saves.
 */
export async function runDdrescue(argv: readonly string[], io: RunIo): Promise<RunResult> {
  const commandLine = ['ddrescue', ...argv].join(' ');
  const startSeconds = Math.floor(Date.now() / 1000);
  const startTime = formatTimestamp(new Date(startSeconds * 1000));
  let verbosity = 0;
  const error = (msg: string, help = false): void => {
    if (verbosity < 0) return;
    io.stderr(`${PROGRAM}: ${msg}\n`);
    if (help) io.stderr(`Try '${PROGRAM} ddrescue --help' for more information.\n`);
  };
  let cmd: DdrescueCommand;
  try {
    cmd = parseDdrescueCommand(argv);
  } catch (err) {
    if ((isMapfileError(err) && err.code.startsWith('ERR_ARG_')) || err instanceof ReaderError) {
      error(err.message, true);
      return { status: 1 };
    }
    throw err;
  }
  verbosity = cmd.verbosity;
  if (cmd.mode === 'help') {
    io.stdout(HELP);
    return { status: 0 };
  }
  if (cmd.mode === 'version') {
    io.stdout(VERSION);
    return { status: 0 };
  }
  const abs = (p: string): string => resolve(io.cwd, p);
  try {
    return await rescue(cmd, io, abs, error, commandLine, startSeconds, startTime);
  } catch (err) {
    if (isMapfileError(err)) {
      error(`${err.code}: ${messageWithHint(err)}`);
      return { status: MAPFILE_PARSE_CODES.has(err.code) ? 2 : 1 };
    }
    if (err instanceof ReaderError || (err as { code?: string }).code?.startsWith('ERR_')) {
      error(`${(err as { code: string }).code}: ${(err as Error).message}`);
      return { status: 1 };
    }
    throw err;
  }
}

async function rescue(
  cmd: DdrescueCommand, io: RunIo, abs: (p: string) => string, error: (msg: string, help?: boolean) => void,
  commandLine: string, startSeconds: number, startTime: string,
): Promise<RunResult> {
  const o = cmd.rescue;
  const { infile, outfile, mapfile } = cmd;
  if (infile === undefined || outfile === undefined) {
    error('Both input and output files must be specified.', true);
    return { status: 1 };
  }
  const problem = checkFiles(cmd, infile, outfile, mapfile, abs);
  if (problem) {
    error(problem.message, problem.help);
    return { status: 1 };
  }

  // the domain: -i, -s and -m
  let domainMap: SblockVector | undefined;
  if (cmd.domainMapfile !== undefined) domainMap = (await readMapOrFail(abs(cmd.domainMapfile), cmd.domainMapfile, cmd.loose, 'domain mapfile')).blocks;
  let domain = Domain.fromOptions(cmd.ipos, cmd.maxSize, domainMap);

  // the source, and test mode
  const rawSource = new FileSource(abs(infile), { direct: o.directIn });
  let source: Source = rawSource;
  let testSource: TestModeSource | undefined;
  try {
    if (cmd.testMapfile !== undefined) {
      const tm = await readMapOrFail(abs(cmd.testMapfile), cmd.testMapfile, cmd.loose, 'test-mode mapfile');
      testSource = new TestModeSource(rawSource, Domain.fromOptions(0, -1, tm.blocks));
      source = testSource;
    }
    const insize = source.size;

    // Mapbook: crop the domain, read and normalise the mapfile
    if (insize > 0) {
      if (domain.pos >= insize) {
        error(`ERR_SOURCE_SHORTER_THAN_DOMAIN: Can't start reading at pos ${formatNum3(domain.pos)}.\n          Input file is only ${formatNum3(insize)} bytes long.`);
        return { status: 1 };
      }
      domain = domain.crop({ pos: 0, size: insize });
    }
    let mapfileExists = false;
    let blocks: SblockVector | undefined;
    let state = { currentPos: 0, currentStatus: MapfileStatus.copying as MapfileStatus, currentPass: 1 };
    let mapfileInsize = 0;
    if (mapfile !== undefined) {
      const folder = dirname(abs(mapfile));
      if (!existsSync(folder)) {
        throw new ReaderError('ERR_MAPFILE_FOLDER_MISSING', mapfile, `${mapfile}: the mapfile's folder ${folder} does not exist. Create it (mkdir -p) or give another mapfile path; the mapfile must be saved for the rescue to resume.`);
      }
      await removeStaleTemporaries(abs(mapfile));
      if (await pathExists(abs(mapfile))) {
        const m = await readMapfile(abs(mapfile), { file: mapfile });
        mapfileExists = true;
        blocks = m.blocks;
        state = { currentPos: m.currentPos, currentStatus: m.currentStatus, currentPass: m.currentPass };
        mapfileInsize = m.blocks.length > 0 ? m.blocks.end(m.blocks.length - 1) : 0;
      }
    }
    const norm = normalizeForRescue(blocks ?? new SblockVector(1), { insize, hardbs: o.hardbs, domain, completeOnly: o.completeOnly, file: mapfile ?? 'mapfile' });
    domain = norm.domain;
    const map = new StatusMap(norm.blocks);

    if (cmd.checkInputSize) {
      if (!mapfileExists || insize <= 0 || mapfileInsize <= 0 || mapfileInsize >= Number.MAX_SAFE_INTEGER) {
        error("Can't check input file size.\n          Mapfile is unfinished or missing, or size is invalid.");
        return { status: 1 };
      }
      if (mapfileInsize !== insize) {
        error('Input file size differs from size calculated from mapfile.');
        return { status: 1 };
      }
    }
    if (domain.isEmpty()) {
      if (o.completeOnly && !mapfileExists) {
        error('Nothing to complete; mapfile is missing or empty.', true);
        return { status: 1 };
      }
      error('Nothing to do; domain is empty.');
      return { status: 0 };
    }
    if (cmd.truncate && !blankAfterEdits(map, domain, o.retrim, o.tryAgain)) {
      error('Outfile truncation and mapfile input are incompatible.', true);
      return { status: 1 };
    }

    const offset = (cmd.opos < 0 ? cmd.ipos : cmd.opos) - cmd.ipos;
    const output = new OutputFile(abs(outfile), { offset, sparse: cmd.sparse, truncate: cmd.truncate, minSize: cmd.minOutfileSize });
    try {
      if (cmd.preallocate) preallocate(abs(outfile), domain.pos + offset, domain.size, error);
      const updater = mapfile === undefined ? undefined : new MapfileUpdater({
        path: abs(mapfile), commandLine, startTime, saveInterval: o.mapfileSaveInterval, syncInterval: o.mapfileSyncInterval,
        clock: () => Math.floor(Date.now() / 1000),
      });
      if (updater && !mapfileExists && !(await updater.write({ ...state, message: '', blocks: map }))) {
        error(`${mapfile}: Can't create mapfile: ${updater.lastError?.message ?? ''}`);
        return { status: 1 };
      }

      const header = { commandLine, startTime };
      const eventLog = cmd.eventLog === undefined ? undefined : EventLogger.open(abs(cmd.eventLog), header);
      const rateLog = cmd.rateLog === undefined ? undefined : RateLogger.open(abs(cmd.rateLog), header);
      const readLog = cmd.readLog === undefined ? undefined : ReadLogger.open(abs(cmd.readLog), header);
      const reporter = new DdrescueReporter({ verbosity: cmd.verbosity, binaryPrefixes: cmd.binaryPrefixes, write: io.screen, readLog, rateLog, eventLog });

      /** A buffer for one read: a cluster and a sector, aligned for O_DIRECT. */
      const iobuf = (): Buffer => allocAligned(o.cluster * o.hardbs + o.hardbs, Math.max(4096, o.hardbs));
      const rb = new Rescuebook({
        source, testSource, sink: output, reporter, map, domain, insize, offset,
        currentPos: state.currentPos, currentStatus: state.currentStatus, currentPass: state.currentPass,
        mapfile: updater, options: o,
        iobuf: iobuf(),
        // with -d a large read is written while the next is made into the other buffer (without -d, the
        // kernel's readahead reads on meanwhile: copying 1 GiB from the page cache took 0.66 s against 0.63)
        spareIobuf: o.directIn ? iobuf() : undefined,
        clock: () => Math.floor(Date.now() / 1000), startTime: startSeconds,
        interrupted: () => io.signal() !== null,
        sleep: (s) => interruptibleSleep(s, io.signal),
      });
      printIntro(cmd, rb, infile, outfile, mapfileExists, mapfileInsize, io.screen);
      const outcome = await doRescue(rb);
      if (cmd.verbosity >= 0) io.screen('\n');
      if (outcome.finalMessage) error(outcome.finalMessage);
      if (updater?.lastError) error(`ERR_MAPFILE_WRITE: ${mapfile}: ${updater.lastError.message}`);
      for (const w of reporter.close()) error(w);
      if (outcome.status !== 0) return { status: outcome.status };
      const sig = io.signal();
      if (outcome.interrupted && sig) return { status: signalExitStatus(sig), signal: sig };
      return { status: 0 };
    } finally {
      output.close();
    }
  } finally {
    source.close();
  }
}

async function readMapOrFail(path: string, name: string, loose: boolean, what: string): Promise<{ blocks: SblockVector }> {
  if (!(await pathExists(path))) throw new ReaderError(what === 'test-mode mapfile' ? 'ERR_TEST_MAP' : 'ERR_MAPFILE_FOLDER_MISSING', name, `${name}: the ${what} does not exist. Check its name.`);
  return readMapfile(path, { file: name, loose: loose ? '?' : undefined });
}

/** ddrescue's `check_files` plus ddferry's refusal to write anywhere on the source disk. */
function checkFiles(cmd: DdrescueCommand, infile: string, outfile: string, mapfile: string | undefined, abs: (p: string) => string): { message: string; help: boolean } | null {
  const src = abs(infile);
  let srcIsBlock = false;
  try {
    srcIsBlock = statSync(src).isBlockDevice();
  } catch {
    // a missing source is reported when it is opened
  }
  const outWhy = writesToSource(src, srcIsBlock, abs(outfile));
  if (outWhy) {
    return { message: `ERR_OUTPUT_IS_SOURCE: ${outfile}: Infile and outfile are the same: ${outWhy}. The source is never written; give an output on another disk.`, help: false };
  }
  if (mapfile !== undefined) {
    if (writesToSource(src, srcIsBlock, abs(mapfile))) return { message: `ERR_MAPFILE_SAME_AS_DATA: ${mapfile}: Infile and mapfile are the same, or the mapfile is on the source disk. Keep the mapfile on another disk.`, help: false };
    if (abs(outfile) === abs(mapfile)) return { message: `ERR_MAPFILE_SAME_AS_DATA: ${mapfile}: Outfile and mapfile are the same.`, help: false };
    const bak = `${mapfile}.bak`;
    if (abs(bak) === src) return { message: `ERR_MAPFILE_SAME_AS_DATA: ${infile}: Infile and mapfile backup are the same.`, help: false };
    if (abs(bak) === abs(outfile)) return { message: `ERR_MAPFILE_SAME_AS_DATA: ${outfile}: Outfile and mapfile backup are the same.`, help: false };
    for (const [p, what] of [[mapfile, 'Mapfile'], [bak, 'Mapfile backup']] as const) {
      try {
        if (!lstatSync(abs(p)).isFile() && !statSync(abs(p)).isFile()) return { message: `${p}: ${what} exists and is not a regular file.`, help: false };
      } catch {
        // absent: fine
      }
    }
  }
  if (cmd.minOutfileSize > 0 || !cmd.force || cmd.preallocate || cmd.sparse) {
    try {
      if (!statSync(abs(outfile)).isFile()) {
        const why = !cmd.force
          ? "Use '--force' if you really want to overwrite it, but be\n          aware that all existing data in the output file will be lost."
          : cmd.preallocate ? 'Only regular files can be preallocated.'
            : cmd.sparse ? 'Only regular files can be sparse.' : 'Only regular files can be extended.';
        return { message: `ERR_OUTPUT_NOT_REGULAR: ${outfile}: Output file exists and is not a regular file.\n${PROGRAM}: ${why}`, help: true };
      }
    } catch {
      // absent: it will be created
    }
  }
  return null;
}

/**
 * ddrescue's `blank()` as it sees it: after the `-M` and `-A` edits of the Rescuebook
 * constructor, every block of the whole map is non-tried.
 */
function blankAfterEdits(map: StatusMap, domain: Domain, retrim: boolean, tryAgain: boolean): boolean {
  let blank = true;
  map.forEachBlock((pos, end, code) => {
    let st: string = statusOfCode(code);
    const inDomain = domain.includes({ pos, size: end - pos });
    if (inDomain && retrim && (st === '/' || st === '-')) st = '*';
    if (inDomain && tryAgain && (st === '*' || st === '/')) st = '?';
    if (st !== '?') blank = false;
  });
  return blank;
}

/** `-p`: allocate the output's domain range (util-linux `fallocate`, as posix_fallocate would). */
function preallocate(path: string, pos: number, size: number, error: (msg: string) => void): void {
  if (!Number.isFinite(size) || size <= 0) return;
  try {
    if (statSync(path).size >= pos + size) return;
  } catch {
    return;
  }
  // without --keep-size: posix_fallocate extends the file
  const r = spawnSync('fallocate', ['-o', String(pos), '-l', String(size), path]);
  if (r.status !== 0) error(`${path}: Can't preallocate output file: ${r.stderr?.toString().trim() || r.error?.message}`);
}

/** Sleep `seconds`, ending early when a signal arrives (so Ctrl-C during a pause acts at once). */
export async function interruptibleSleep(seconds: number, signal: () => unknown): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end && !signal()) await new Promise((r) => setTimeout(r, Math.min(100, end - Date.now())));
}

/** The status a shell shows for death by `sig` (128 + its number), as ddrescue's re-raise gives. */
export function signalExitStatus(sig: NodeJS.Signals): number {
  return 128 + (sig === 'SIGHUP' ? 1 : sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 0);
}

/** The screen lines before the rescue (`about_to_copy`, the `-v` lines, `do_rescue`'s start). */
function printIntro(cmd: DdrescueCommand, rb: Rescuebook, infile: string, outfile: string, mapfileExists: boolean, mapfileInsize: number, write: (s: string) => void): void {
  const v = cmd.verbosity;
  if (v < 0) return;
  const num = (n: number, limit?: number): string => formatNum(n, { limit, binary: cmd.binaryPrefixes });
  write('GNU ddrescue 1.27 (ddferry-reader)\n');
  if (v >= 1) {
    const what = rb.domain.end === Number.POSITIVE_INFINITY ? 'an unknown number of ' : num(rb.domainSize());
    write(`About to copy ${what}Bytes from '${infile}' to '${outfile}'\n`);
    write(`    Starting positions: infile = ${num(rb.domain.pos)}B,  outfile = ${num(rb.domain.pos + rb.offset)}B\n`);
    write(`    Copy block size: ${String(cmd.rescue.cluster).padStart(3)} sectors`);
    write(rb.skipbs > 0 ? `       Initial skip size: ${Math.trunc(rb.skipbs / rb.hardbs)} sectors\n` : '       Skipping disabled\n');
    write(`Sector size: ${num(rb.hardbs, 99999)}Bytes\n\n`);
  }
  write('Press Ctrl-C to interrupt\n');
  if (mapfileExists) {
    write('Initial status (read from mapfile)\n');
    if (rb.domain.pos > 0 || rb.domain.end < mapfileInsize) {
      write(`(sizes limited to domain from ${formatNum3(rb.domain.pos)} B to ${formatNum3(rb.domain.end)} B of ${formatNum3(mapfileInsize)} B)\n`);
    }
    write(`rescued: ${num(rb.finished)}B, tried: ${num(rb.nonTrimmed + rb.nonScraped + rb.badSize)}B, bad-sector: ${num(rb.badSize)}B, bad areas: ${rb.badAreas}\n\n`);
    write('Current status\n');
  }
}
