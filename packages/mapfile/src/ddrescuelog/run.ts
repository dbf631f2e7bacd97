import { type OptionSpec, parseArgs, parseNumberArgument } from '../args.js';
import { isMapfileError } from '../errors.js';
import { formatTimestamp } from '../format.js';
import { type BlockStatus, isBlockStatus } from '../status.js';
import { type CliIo, Context, Exit, PROGRAM } from './context.js';
import {
  type BitmapFormat, annotate, changeTypes, compare, complete, createMapfile, listBlocks, logicOp, shiftBlocks, showStatus, testIfDone,
} from './ops.js';

const OPTIONS: readonly OptionSpec[] = [
  { code: 'a', long: 'change-types', hasArg: 'yes' },
  { code: 'A', long: 'annotate-mapfile', hasArg: 'no' },
  { code: 'b', long: 'block-size', hasArg: 'yes' },
  { code: 'b', long: 'sector-size', hasArg: 'yes' },
  { code: 'B', long: 'binary-prefixes', hasArg: 'no' },
  { code: 'c', long: 'create-mapfile', hasArg: 'maybe' },
  { code: 'C', long: 'complete-mapfile', hasArg: 'maybe' },
  { code: 'd', long: 'delete-if-done', hasArg: 'no' },
  { code: 'D', long: 'done-status', hasArg: 'no' },
  { code: 'f', long: 'force', hasArg: 'no' },
  { code: 'F', long: 'format', hasArg: 'yes' },
  { code: 'h', long: 'help', hasArg: 'no' },
  { code: 'i', long: 'input-position', hasArg: 'yes' },
  { code: 'l', long: 'list-blocks', hasArg: 'yes' },
  { code: 'L', long: 'loose-domain', hasArg: 'no' },
  { code: 'm', long: 'domain-mapfile', hasArg: 'yes' },
  { code: 'n', long: 'invert-mapfile', hasArg: 'no' },
  { code: 'o', long: 'output-position', hasArg: 'yes' },
  { code: 'p', long: 'compare-mapfile', hasArg: 'yes' },
  { code: 'P', long: 'compare-as-domain', hasArg: 'yes' },
  { code: 'q', long: 'quiet', hasArg: 'no' },
  { code: 's', long: 'size', hasArg: 'yes' },
  { code: 's', long: 'max-size', hasArg: 'yes' },
  { code: 't', long: 'show-status', hasArg: 'no' },
  { code: 'v', long: 'verbose', hasArg: 'no' },
  { code: 'V', long: 'version', hasArg: 'no' },
  { code: 'x', long: 'xor-mapfile', hasArg: 'yes' },
  { code: 'y', long: 'and-mapfile', hasArg: 'yes' },
  { code: 'z', long: 'or-mapfile', hasArg: 'yes' },
  { code: 'shift', long: 'shift', hasArg: 'no' },
];

type Mode = 'and' | 'annotate' | 'change' | 'compare' | 'complete' | 'create' | 'delete' | 'done' | 'invert' | 'list' | 'or' | 'shift' | 'status' | 'xor';

const HELP = `ddferry-map ddrescuelog: GNU ddrescuelog 1.27's operations on ddrescue mapfiles,
with the same options, output and exit status.

Usage: ddferry-map ddrescuelog [options] MAPFILE...   ('-' reads standard input)

Operations (exactly one):
  -t, --show-status                summary of each mapfile
  -l, --list-blocks=TYPES          numbers of the blocks of TYPES (?*/-+), as badblocks lists them
  -a, --change-types=OLD,NEW       change statuses in OLD to those at the same place in NEW
  -n, --invert-mapfile             finished becomes bad-sector, everything else finished
  -c, --create-mapfile[=T1T2]      mapfile from a block list on stdin (listed T1, others T2) [+-]
  -C, --complete-mapfile[=T]       read loosely, fill gaps with T [?]
  -d, --delete-if-done             delete MAPFILE if every block in the domain is finished
  -D, --done-status                exit 0 if every block in the domain is finished
  -x, --xor-mapfile=FILE           xor the finished blocks of FILE with MAPFILE
  -y, --and-mapfile=FILE           and the finished blocks of FILE with MAPFILE
  -z, --or-mapfile=FILE            or the finished blocks of FILE with MAPFILE
  -p, --compare-mapfile=FILE       exit 0 if both mapfiles have the same blocks in the domain
  -P, --compare-as-domain=FILE     like -p, comparing finished blocks only
  -A, --annotate-mapfile           add human-readable positions and sizes
      --shift                      move every block by (opos - ipos)
Domain and format:
  -i, --input-position=BYTES       start of the domain [0]
  -s, --size=BYTES                 size of the domain [no limit]
  -o, --output-position=BYTES      output position for -c, -l, --shift [ipos]
  -m, --domain-mapfile=FILE        domain = finished blocks of FILE
  -L, --loose-domain               read -m, -P and -t files loosely (any order, gaps)
  -b, --block-size=BYTES           sector size [512]
  -F, --format=NAME                list, bitmap-le (bitmap) or bitmap-be, for -c and -l
  -B, --binary-prefixes            Ki, Mi... in sizes
  -f, --force                      overwrite the output of -c
  -q, --quiet                      no messages;  -v, --verbose  more messages
Numbers: decimal, 0x hex or 0 octal, with k, Ki, M, Mi... and s (sectors) or B.
Exit status: 0 done, 1 environment or "no", 2 malformed mapfile, 3 internal error.
`;

/** Run ddrescuelog with `argv` (options and mapfiles). Returns the exit status. */
export async function runDdrescuelog(argv: readonly string[], io: CliIo, now = new Date()): Promise<number> {
  const ctx = new Context(io, ['ddrescuelog', ...argv].join(' '), formatTimestamp(now));
  try {
    return await dispatch(argv, ctx);
  } catch (err) {
    if (err instanceof Exit) return err.status;
    if (isMapfileError(err) && err.code.startsWith('ERR_ARG_')) {
      if (err.code === 'ERR_ARG_INVALID') ctx.error(err.message, true);
      else if (ctx.verbosity >= 0) io.stderr(`${PROGRAM}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

async function dispatch(argv: readonly string[], ctx: Context): Promise<number> {
  const parsed = parseArgs(argv, OPTIONS);
  let ipos = 0;
  let opos = -1;
  let maxSize = -1;
  let domainMapfile: string | undefined;
  let second = '';
  let hardbs = 512;
  let format: BitmapFormat = 'list';
  let mode: Mode | undefined;
  let asDomain = false;
  let force = false;
  let loose = false;
  let types1 = '';
  let types2 = '';
  let type1: BlockStatus = '+';
  let type2: BlockStatus = '-';
  let completeType: BlockStatus = '?';
  const setMode = (m: Mode): void => {
    if (mode !== undefined && mode !== m) {
      ctx.error('Only one operation can be specified.', true);
      throw new Exit(1);
    }
    mode = m;
  };
  const invalidType = (arg: string, name: string, msg = 'Invalid type in argument of'): never => {
    if (ctx.verbosity >= 0) ctx.io.stderr(`${PROGRAM}: '${arg}': ${msg} option '${name}'.\n`);
    throw new Exit(1);
  };
  for (const { code, name, argument: arg } of parsed.options) {
    switch (code) {
      case 'a': {
        setMode('change');
        let t1 = '';
        let t2 = '';
        let commaFound = false;
        let error = false;
        for (const ch of arg) {
          if (ch === ',') {
            if (!commaFound) {
              commaFound = true;
              continue;
            }
            if (ctx.verbosity >= 0) ctx.io.stderr(`${PROGRAM}: '${arg}': Too many commas in argument of option '${name}'.\n`);
            throw new Exit(1);
          }
          if (!isBlockStatus(ch)) {
            error = true;
            break;
          }
          if (commaFound) t2 += ch;
          else t1 += ch;
        }
        if (error || t1 === '' || t2 === '') invalidType(arg, name);
        types1 = t1;
        types2 = t2.length < t1.length ? t2 + t2[t2.length - 1]!.repeat(t1.length - t2.length) : t2;
        break;
      }
      case 'A': setMode('annotate'); break;
      case 'b': hardbs = parseNumberArgument(arg, name, 0, 1, 2147483647); break;
      case 'B': ctx.binaryPrefixes = true; break;
      case 'c':
        setMode('create');
        if (arg !== '') {
          if (arg.length !== 2 || arg[0] === arg[1] || !isBlockStatus(arg[0]!) || !isBlockStatus(arg[1]!)) invalidType(arg, name);
          type1 = arg[0] as BlockStatus;
          type2 = arg[1] as BlockStatus;
        }
        break;
      case 'C':
        setMode('complete');
        if (arg !== '') {
          if (arg.length !== 1 || !isBlockStatus(arg)) invalidType(arg, name);
          completeType = arg as BlockStatus;
        }
        break;
      case 'd': setMode('delete'); break;
      case 'D': setMode('done'); break;
      case 'f': force = true; break;
      case 'F':
        if (arg === 'list') format = 'list';
        else if (arg === 'bitmap-be') format = 'bitmap-be';
        else if (arg === 'bitmap' || arg === 'bitmap-le') format = 'bitmap-le';
        else invalidType(arg, name, 'Invalid format name in');
        break;
      case 'h': ctx.io.stdout(HELP); return 0;
      case 'i': ipos = parseNumberArgument(arg, name, hardbs, 0); break;
      case 'l':
        setMode('list');
        for (let k = arg.length; k > 0;) if (!isBlockStatus(arg[--k]!)) invalidType(arg, name);
        if (arg === '') invalidType(arg, name, 'Missing type in argument of');
        types1 = arg;
        break;
      case 'L': loose = true; break;
      case 'm':
        if (domainMapfile !== undefined) {
          if (ctx.verbosity >= 0) ctx.io.stderr(`${PROGRAM}: Option '${name}' can be specified only once.\n`);
          throw new Exit(1);
        }
        domainMapfile = arg;
        break;
      case 'n': setMode('invert'); break;
      case 'o': opos = parseNumberArgument(arg, name, hardbs, 0); break;
      case 'p':
      case 'P': setMode('compare'); second = arg; asDomain = code === 'P'; break;
      case 'q': ctx.verbosity = -1; break;
      case 's': maxSize = parseNumberArgument(arg, name, hardbs, -1); break;
      case 't': setMode('status'); break;
      case 'v': if (ctx.verbosity < 4) ++ctx.verbosity; break;
      case 'V': ctx.io.stdout('ddferry-map ddrescuelog 0.1.0 (operations and output of GNU ddrescuelog 1.27)\n'); return 0;
      case 'x': setMode('xor'); second = arg; break;
      case 'y': setMode('and'); second = arg; break;
      case 'z': setMode('or'); second = arg; break;
      case 'shift': setMode('shift'); break;
      default: throw new Error(`internal: uncaught option ${code}`);
    }
  }
  if (mode === undefined) {
    ctx.error('You must specify the operation to be performed.', true);
    return 1;
  }
  if (opos < 0) opos = ipos;
  const files = parsed.operands;
  if (mode === 'status') {
    if (files.length < 1) {
      ctx.error('At least one mapfile must be specified.', true);
      return 1;
    }
  } else if (files.length !== 1) {
    ctx.error(files.length > 1 ? 'Too many files.' : 'A mapfile must be specified.', true);
    return 1;
  }
  let status = 0;
  for (const name of files) {
    const domain = await ctx.domain(ipos, maxSize, domainMapfile, loose);
    switch (mode) {
      case 'and':
      case 'or':
      case 'xor': return logicOp(ctx, domain, name, second, mode);
      case 'annotate': return annotate(ctx, domain, name);
      case 'change': return changeTypes(ctx, domain, name, types1, types2);
      case 'compare': return compare(ctx, domain, name, second, asDomain, loose);
      case 'complete': return complete(ctx, name, completeType);
      case 'create': return createMapfile(ctx, domain, name, opos - ipos, hardbs, format, type1, type2, force);
      case 'delete': return testIfDone(ctx, domain, name, true);
      case 'done': return testIfDone(ctx, domain, name, false);
      case 'invert': return changeTypes(ctx, domain, name, '?*/-+', '++++-');
      case 'list': return listBlocks(ctx, domain, name, opos - ipos, hardbs, format, types1);
      case 'shift': return shiftBlocks(ctx, domain, name, ipos, opos);
      case 'status': status = Math.max(status, await showStatus(ctx, domain, name, loose)); break;
    }
  }
  return status;
}
