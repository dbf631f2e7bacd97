/**
 * `ddferry-map`: GNU ddrescuelog's operations (`ddferry-map ddrescuelog ...`), a
 * summary of a mapfile (`show`) and the chunk planner (`plan`).
 */
import { isAbsolute, join, resolve } from 'node:path';
import { parseArgs as parseNodeArgs } from 'node:util';

import { parseNumberArgument } from './args.js';
import { runRender } from './cli/render.js';
import { type CliIo, Exit } from './ddrescuelog/context.js';
import { runDdrescuelog } from './ddrescuelog/run.js';
import { MAPFILE_PARSE_CODES, isMapfileError, messageWithHint } from './errors.js';
import { formatNum } from './format-num.js';
import { makeFolder, pathExists, readMapfile, saveMapfile } from './io.js';
import { FILE_SIZE_LIMITS, type FileSystemName, chunkMapName, formatChunkMap, planChunks } from './plan.js';
import { StatusMap } from './status-map.js';
import { mapfileStatusName } from './status.js';

export type { CliIo } from './ddrescuelog/context.js';

const USAGE = `Usage:
  ddferry-map ddrescuelog [ddrescuelog options] MAPFILE...   GNU ddrescuelog 1.27, same output
  ddferry-map show MAPFILE                                 summary of a mapfile
  ddferry-map plan SIZE (--chunk-size N | --medium-size N [--fs fat32|exfat|ext4])
                   [--sector-size 512] OUTDIR                chunk domain mapfiles for ddrescue -m
  ddferry-map render MAPFILE -o OUT.png|OUT.svg [options]  a picture of the map (ddrescueview's colours)
Sizes take ddrescue's suffixes: 4GiB, 64MiB, 1000000s (sectors), 0x10000.
Run 'ddferry-map ddrescuelog --help' for ddrescuelog's options, 'ddferry-map render --help' for render's.
`;

/** Run `ddferry-map` with `argv` (without the program name). Returns the exit status. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'ddrescuelog': return await runDdrescuelog(rest, io);
      case 'show': return await show(rest, io);
      case 'plan': return await plan(rest, io);
      case 'render': return await runRender(rest, io);
      case '-h':
      case '--help':
      case 'help': io.stdout(USAGE); return 0;
      case '-V':
      case '--version': io.stdout('ddferry-map 0.1.0 (GNU ddrescue 1.27 mapfiles)\n'); return 0;
      default:
        io.stderr(`ddferry-map: ${command === undefined ? 'a command is needed' : `unknown command '${command}'`} [ERR_USAGE]\n${USAGE}`);
        return 1;
    }
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
      // node:util parseArgs: an unknown option, a missing value, an extra operand
      io.stderr(`ddferry-map: ${(err as Error).message.split('. ')[0]}. [ERR_USAGE]\nTry 'ddferry-map ${command ?? ''} --help'.\n`);
      return 1;
    }
    return reportError(err, io);
  }
}

function reportError(err: unknown, io: CliIo): number {
  if (err instanceof Exit) return err.status;
  if (!isMapfileError(err)) throw err;
  io.stderr(`ddferry-map: ${messageWithHint(err)} [${err.code}]\n`);
  return MAPFILE_PARSE_CODES.has(err.code) ? 2 : 1;
}

function at(io: CliIo, name: string): string {
  return isAbsolute(name) ? name : resolve(io.cwd, name);
}

async function show(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseNodeArgs({ args: [...argv], allowPositionals: true, strict: true, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) {
    io.stdout(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    io.stderr(`ddferry-map: show needs one MAPFILE [ERR_USAGE]\n${USAGE}`);
    return 1;
  }
  const name = positionals[0]!;
  const m = await readMapfile(at(io, name));
  const map = new StatusMap(m.blocks.compact());
  const ext = map.extent();
  const total = ext.size;
  const line = (label: string, st: '?' | '*' | '/' | '-' | '+'): string => {
    const size = map.sizeOf(st);
    const pct = total > 0 && Number.isFinite(total) ? ((100 * size) / total).toFixed(2) : '-';
    return `  ${label.padEnd(12)} ${String(size).padStart(16)} bytes  ${`${formatNum(size)}B`.padStart(10)}  ${String(map.countOf(st)).padStart(9)} areas  ${pct.padStart(6)}%\n`;
  };
  io.stdout(
    `${name}\n  status: ${mapfileStatusName(m.currentStatus)} at ${m.currentPos} (0x${m.currentPos.toString(16).toUpperCase()}), pass ${m.currentPass}\n` +
    `  extent: ${ext.pos} to ${Number.isFinite(total) ? ext.pos + total : 'end of input'} (${Number.isFinite(total) ? `${formatNum(total)}B` : 'unknown size'}), ${map.length} blocks\n` +
    line('rescued', '+') + line('non-tried', '?') + line('non-trimmed', '*') + line('non-scraped', '/') + line('bad-sector', '-') +
    `  done: ${map.length > 0 && map.countOf('+') === map.length ? 'yes' : 'no'}\n`,
  );
  return 0;
}

async function plan(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseNodeArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      'chunk-size': { type: 'string' },
      'medium-size': { type: 'string' },
      fs: { type: 'string' },
      'sector-size': { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    io.stdout(USAGE);
    return 0;
  }
  if (positionals.length !== 2 || (values['chunk-size'] === undefined) === (values['medium-size'] === undefined)) {
    io.stderr(`ddferry-map: plan needs SIZE, OUTDIR and one of --chunk-size or --medium-size [ERR_USAGE]\n${USAGE}`);
    return 1;
  }
  const sectorSize = values['sector-size'] === undefined ? 512 : parseNumberArgument(values['sector-size'], '--sector-size', 0, 1, 1 << 20);
  const sourceSize = parseNumberArgument(positionals[0]!, 'SIZE', sectorSize, 1);
  const fsName = (values.fs ?? 'fat32') as FileSystemName;
  if (!(fsName in FILE_SIZE_LIMITS)) {
    io.stderr(`ddferry-map: unknown file system '${values.fs}'; use fat32, exfat or ext4 [ERR_ARG_INVALID]\n`);
    return 1;
  }
  const chunks = planChunks(values['chunk-size'] !== undefined
    ? { sourceSize, sectorSize, chunkSize: parseNumberArgument(values['chunk-size'], '--chunk-size', sectorSize, 1) }
    : { sourceSize, sectorSize, medium: { capacity: parseNumberArgument(values['medium-size']!, '--medium-size', sectorSize, 1), maxFileSize: FILE_SIZE_LIMITS[fsName], fileSystem: fsName } });
  const outdir = at(io, positionals[1]!);
  await makeFolder(outdir);
  const commandLine = ['ddferry-map', 'plan', ...argv].join(' ');
  for (const c of chunks) {
    const file = join(outdir, chunkMapName(c.index, chunks.length));
    if (!values.force && (await pathExists(file))) {
      io.stderr(`ddferry-map: ${file}: a chunk map is already there; remove the old plan or give --force [ERR_PLAN_EXISTS]\n`);
      return 1;
    }
    await saveMapfile(file, formatChunkMap(c, sourceSize, commandLine));
  }
  const size0 = chunks[0]!.size;
  io.stdout(`Planned ${chunks.length} chunk(s) of ${size0} bytes (${formatNum(size0)}B) over ${sourceSize} bytes, ${sectorSize}-byte sectors, in ${positionals[1]}.\n` +
    `Rescue chunk N with: ddrescue -m ${chunkMapName(0, chunks.length).replace('0000', 'NNNN')} SOURCE chunkNNNN.raw common.map\n`);
  return 0;
}
