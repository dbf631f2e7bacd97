import { MapfileError, type OptionSpec, parseArgs, parseNumberArgument } from '@ddferry/mapfile';

import { ReaderError } from '../errors.js';
import { DEFAULT_RESCUE_OPTIONS, MAX_MAX_SKIPBS, MIN_SKIPBS, type RescueOptions } from '../engine/options.js';
import { parseRationalTime, parseTimeInterval } from './time-interval.js';

/** GNU ddrescue 1.27's options, short and long, as its Arg_parser table lists them. */
const OPTIONS: readonly OptionSpec[] = [
  { code: 'a', long: 'min-read-rate', hasArg: 'yes' },
  { code: 'A', long: 'try-again', hasArg: 'no' },
  { code: 'b', long: 'sector-size', hasArg: 'yes' },
  { code: 'B', long: 'binary-prefixes', hasArg: 'no' },
  { code: 'c', long: 'cluster-size', hasArg: 'yes' },
  { code: 'C', long: 'complete-only', hasArg: 'no' },
  { code: 'd', long: 'idirect', hasArg: 'no' },
  { code: 'D', long: 'odirect', hasArg: 'no' },
  { code: 'e', long: 'max-bad-areas', hasArg: 'yes' },
  { code: 'e', long: 'max-errors', hasArg: 'yes' },
  { code: 'E', long: 'max-error-rate', hasArg: 'yes' },
  { code: 'f', long: 'force', hasArg: 'no' },
  { code: 'F', long: 'fill-mode', hasArg: 'yes' },
  { code: 'G', long: 'generate-mode', hasArg: 'no' },
  { code: 'h', long: 'help', hasArg: 'no' },
  { code: 'H', long: 'test-mode', hasArg: 'yes' },
  { code: 'i', long: 'input-position', hasArg: 'yes' },
  { code: 'I', long: 'check-input-size', hasArg: 'no' },
  { code: 'I', long: 'verify-input-size', hasArg: 'no' },
  { code: 'J', long: 'check-on-error', hasArg: 'no' },
  { code: 'J', long: 'verify-on-error', hasArg: 'no' },
  { code: 'K', long: 'skip-size', hasArg: 'yes' },
  { code: 'L', long: 'loose-domain', hasArg: 'no' },
  { code: 'm', long: 'domain-mapfile', hasArg: 'yes' },
  { code: 'M', long: 'retrim', hasArg: 'no' },
  { code: 'n', long: 'no-scrape', hasArg: 'no' },
  { code: 'N', long: 'no-trim', hasArg: 'no' },
  { code: 'o', long: 'output-position', hasArg: 'yes' },
  { code: 'O', long: 'reopen-on-error', hasArg: 'no' },
  { code: 'p', long: 'preallocate', hasArg: 'no' },
  { code: 'P', long: 'data-preview', hasArg: 'maybe' },
  { code: 'q', long: 'quiet', hasArg: 'no' },
  { code: 'r', long: 'retry-passes', hasArg: 'yes' },
  { code: 'R', long: 'reverse', hasArg: 'no' },
  { code: 's', long: 'size', hasArg: 'yes' },
  { code: 'S', long: 'sparse', hasArg: 'no' },
  { code: 't', long: 'truncate', hasArg: 'no' },
  { code: 'T', long: 'timeout', hasArg: 'yes' },
  { code: 'u', long: 'unidirectional', hasArg: 'no' },
  { code: 'v', long: 'verbose', hasArg: 'no' },
  { code: 'V', long: 'version', hasArg: 'no' },
  { code: 'w', long: 'ignore-write-errors', hasArg: 'no' },
  { code: 'W', long: 'compare-before-write', hasArg: 'no' },
  { code: 'x', long: 'extend-outfile', hasArg: 'yes' },
  { code: 'X', long: 'max-read-errors', hasArg: 'yes' },
  { code: 'y', long: 'synchronous', hasArg: 'no' },
  { code: 'Z', long: 'max-read-rate', hasArg: 'yes' },
  { code: 'ask', long: 'ask', hasArg: 'no' },
  { code: 'command-mode', long: 'command-mode', hasArg: 'no' },
  { code: 'cpass', long: 'cpass', hasArg: 'yes' },
  { code: 'delay-slow', long: 'delay-slow', hasArg: 'yes' },
  { code: 'log-events', long: 'log-events', hasArg: 'yes' },
  { code: 'mapfile-interval', long: 'mapfile-interval', hasArg: 'yes' },
  { code: 'max-slow-reads', long: 'max-slow-reads', hasArg: 'yes' },
  { code: 'pause-on-error', long: 'pause-on-error', hasArg: 'yes' },
  { code: 'pause-on-pass', long: 'pause-on-pass', hasArg: 'yes' },
  { code: 'log-rates', long: 'log-rates', hasArg: 'yes' },
  { code: 'log-reads', long: 'log-reads', hasArg: 'yes' },
  { code: 'reset-slow', long: 'reset-slow', hasArg: 'no' },
  { code: 'same-file', long: 'same-file', hasArg: 'no' },
];

/** Options of GNU ddrescue that ddferry does not offer, and where to turn instead. */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  D: 'direct output (-D)',
  F: 'fill mode (-F)',
  G: 'generate mode (-G)',
  J: 'check on error (-J)',
  P: 'data preview (-P)',
  W: 'compare before write (-W)',
  w: 'ignore write errors (-w)',
  y: 'synchronous writes (-y)',
  Z: 'maximum read rate (-Z)',
  ask: '--ask',
  'command-mode': 'command mode (--command-mode)',
  'same-file': '--same-file',
};

/** Everything `ddferry-reader ddrescue` was asked to do. */
export interface DdrescueCommand {
  readonly mode: 'rescue' | 'help' | 'version';
  readonly rescue: RescueOptions;
  readonly ipos: number;
  /** -1 = same as ipos. */
  readonly opos: number;
  /** -1 = no limit. */
  readonly maxSize: number;
  readonly domainMapfile?: string;
  readonly testMapfile?: string;
  readonly loose: boolean;
  readonly force: boolean;
  readonly sparse: boolean;
  readonly truncate: boolean;
  readonly preallocate: boolean;
  readonly checkInputSize: boolean;
  /** `-x`; -1 = none. */
  readonly minOutfileSize: number;
  readonly verbosity: number;
  readonly binaryPrefixes: boolean;
  readonly readLog?: string;
  readonly rateLog?: string;
  readonly eventLog?: string;
  readonly infile?: string;
  readonly outfile?: string;
  readonly mapfile?: string;
}

/**
 * Parse GNU ddrescue 1.27's command line (`main`), numbers with `getnum`'s rules: the
 * `s` multiplier uses the `-b` value given so far.
 * @throws MapfileError `ERR_ARG_*` with ddrescue's messages, or ReaderError `ERR_OPTION_UNSUPPORTED`.
 */
export function parseDdrescueCommand(argv: readonly string[]): DdrescueCommand {
  const parsed = parseArgs(argv, OPTIONS);
  const r: { -readonly [K in keyof RescueOptions]: RescueOptions[K] } = { ...DEFAULT_RESCUE_OPTIONS };
  let hardbs = 512;
  let cluster = 0;
  let ipos = 0;
  let opos = -1;
  let maxSize = -1;
  let domainMapfile: string | undefined;
  let testMapfile: string | undefined;
  let loose = false;
  let force = false;
  let sparse = false;
  let truncate = false;
  let preallocate = false;
  let checkInputSize = false;
  let minOutfileSize = -1;
  let verbosity = 0;
  let binaryPrefixes = false;
  let readLog: string | undefined;
  let rateLog: string | undefined;
  let eventLog: string | undefined;
  const LONG_MAX = 2n ** 63n - 1n;
  const INT_MAX = 2147483647;
  const setName = (current: string | undefined, arg: string, name: string): string => {
    if (current !== undefined) throw new MapfileError('ERR_ARG_INVALID', `Only one '${name}' option allowed.`, { option: name, value: arg });
    return arg;
  };
  for (const { code, name, argument: arg } of parsed.options) {
    if (code in UNSUPPORTED) {
      throw new ReaderError('ERR_OPTION_UNSUPPORTED', name, `${UNSUPPORTED[code]} is not supported by ddferry-reader. Run GNU ddrescue itself for it: the mapfiles are the same.`);
    }
    switch (code) {
      case 'a': r.minReadRate = parseNumberArgument(arg, name, hardbs, 0); break;
      case 'A': r.tryAgain = true; break;
      case 'b': hardbs = parseNumberArgument(arg, name, 0, 1, 1 << 28); break;
      case 'B': binaryPrefixes = true; break;
      case 'c': cluster = parseNumberArgument(arg, name, 0, 1, INT_MAX); break;
      case 'C': r.completeOnly = true; break;
      case 'd': r.directIn = true; break;
      case 'e':
        r.newBadAreasOnly = arg.startsWith('+');
        r.maxBadAreas = parseNumberArgument(arg, name, 0, 0, LONG_MAX);
        break;
      case 'E': r.maxErrorRate = parseNumberArgument(arg, name, hardbs, 0); break;
      case 'f': force = true; break;
      case 'h': return { ...emptyCommand(), mode: 'help' };
      case 'H': testMapfile = setName(testMapfile, arg, name); break;
      case 'i': ipos = parseNumberArgument(arg, name, hardbs, 0); break;
      case 'I': checkInputSize = true; break;
      case 'K': parseSkipSize(arg, name, hardbs, r); break;
      case 'L': loose = true; break;
      case 'm': domainMapfile = setName(domainMapfile, arg, name); break;
      case 'M': r.retrim = true; break;
      case 'n': r.noscrape = true; break;
      case 'N': r.notrim = true; break;
      case 'o': opos = parseNumberArgument(arg, name, hardbs, 0); break;
      case 'O': r.reopenOnError = true; break;
      case 'p': preallocate = true; break;
      case 'q': verbosity = -1; break;
      case 'r': r.maxRetries = parseNumberArgument(arg, name, 0, -1, Math.trunc(INT_MAX / 2)); break;
      case 'R': r.reverse = true; break;
      case 's': maxSize = parseNumberArgument(arg, name, hardbs, -1); break;
      case 'S': sparse = true; break;
      case 't': truncate = true; break;
      case 'T': r.timeout = parseTimeInterval(arg, name).seconds; break;
      case 'u': r.unidirectional = true; break;
      case 'v': if (verbosity < 4) ++verbosity; break;
      case 'V': return { ...emptyCommand(), mode: 'version' };
      case 'x': minOutfileSize = parseNumberArgument(arg, name, hardbs, 1); break;
      case 'X': r.maxReadErrors = parseNumberArgument(arg, name, 0, 0, LONG_MAX); break;
      case 'cpass': r.cpassBitset = parseCpass(arg, name); break;
      case 'delay-slow': r.delaySlow = parseTimeInterval(arg, name).seconds; break;
      case 'log-events': eventLog = arg; break;
      case 'mapfile-interval': parseMapfileIntervals(arg, name, r); break;
      case 'max-slow-reads': r.maxSlowReads = parseNumberArgument(arg, name, 0, 0, LONG_MAX); break;
      case 'pause-on-error':
        r.simulatedPauseOnError = arg.startsWith('s');
        r.pauseOnError = r.simulatedPauseOnError ? parseRationalTime(arg.slice(1), name).seconds : parseTimeInterval(arg, name).seconds;
        break;
      case 'pause-on-pass': r.pauseOnPass = parseTimeInterval(arg, name).seconds; break;
      case 'log-rates': rateLog = arg; break;
      case 'log-reads': readLog = arg; break;
      case 'reset-slow': r.resetSlow = true; break;
      default: throw new Error(`internal error: uncaught option ${name}`);
    }
  }
  if (hardbs < 1) hardbs = 512;
  if (cluster >= Math.trunc(INT_MAX / hardbs)) cluster = Math.trunc(INT_MAX / hardbs) - 1;
  if (cluster < 1) cluster = Math.trunc(65536 / hardbs);
  if (cluster < 1) cluster = 1;
  r.hardbs = hardbs;
  r.cluster = cluster;
  const files = parsed.operands;
  if (files.length > 3) throw new MapfileError('ERR_ARG_INVALID', 'Too many files.', { option: '', value: '' });
  return {
    mode: 'rescue', rescue: r, ipos, opos, maxSize, domainMapfile, testMapfile, loose, force, sparse, truncate, preallocate,
    checkInputSize, minOutfileSize, verbosity, binaryPrefixes, readLog, rateLog, eventLog,
    infile: files[0], outfile: files[1], mapfile: files[2],
  };
}

function emptyCommand(): DdrescueCommand {
  return {
    mode: 'rescue', rescue: DEFAULT_RESCUE_OPTIONS, ipos: 0, opos: -1, maxSize: -1, loose: false, force: false, sparse: false,
    truncate: false, preallocate: false, checkInputSize: false, minOutfileSize: -1, verbosity: 0, binaryPrefixes: false,
  };
}

function optionError(arg: string, what: string, name: string): never {
  throw new MapfileError('ERR_ARG_INVALID', `'${arg}': ${what} option '${name}'.`, { option: name, value: arg });
}

/** `-K [INITIAL][,MAX]` (`parse_skipbs`). */
function parseSkipSize(arg: string, name: string, hardbs: number, r: { skipbs: number; maxSkipbs: number }): void {
  const comma = arg.indexOf(',');
  const first = comma < 0 ? arg : arg.slice(0, comma);
  if (comma !== 0) r.skipbs = parseNumberArgument(first, name, hardbs, 0, MAX_MAX_SKIPBS);
  if (comma >= 0) r.maxSkipbs = parseNumberArgument(arg.slice(comma + 1), name, hardbs, MIN_SKIPBS, MAX_MAX_SKIPBS);
  const max = r.maxSkipbs < 0 ? MAX_MAX_SKIPBS : r.maxSkipbs;
  if (r.skipbs > 0 && r.skipbs < MIN_SKIPBS) optionError(arg, 'Initial skip size must be 0 or >= 64KiB in', name);
  if (r.skipbs > max) optionError(arg, 'Initial skip size must be <= max skip size in', name);
}

/** `--cpass=RANGE` (`parse_cpass`). */
function parseCpass(arg: string, name: string): number {
  if (arg === '0') return 0;
  let bits = 0;
  let p = 0;
  for (;;) {
    const ch1 = arg[p++];
    if (ch1 === undefined || ch1 < '1' || ch1 > '5') break;
    if (arg[p] !== '-') {
      bits |= 1 << (ch1.charCodeAt(0) - 49);
    } else {
      ++p;
      const ch2 = arg[p];
      if (ch2 === undefined || ch2 < '1' || ch2 > '5' || ch1 > ch2) break;
      for (let c = ch1.charCodeAt(0); c <= ch2.charCodeAt(0); ++c) bits |= 1 << (c - 49);
      ++p;
    }
    if (p === arg.length) return bits;
    if (arg[p] === ',') ++p;
    else break;
  }
  return optionError(arg, 'Invalid pass or range of passes in', name);
}

/** `--mapfile-interval=[SAVE][,SYNC]` (`parse_mapfile_intervals`). */
function parseMapfileIntervals(arg: string, name: string, r: { mapfileSaveInterval: number; mapfileSyncInterval: number }): void {
  const comma = arg.indexOf(',');
  if (comma !== 0) {
    if (/^-1(,|$)/.test(arg)) r.mapfileSaveInterval = -1;
    else r.mapfileSaveInterval = parseTimeInterval(arg, name, true).seconds;
  }
  if (comma >= 0) r.mapfileSyncInterval = parseTimeInterval(arg.slice(comma + 1), name).seconds;
  if (r.mapfileSyncInterval < 5) optionError(arg, 'Sync interval must be >= 5 seconds in', name);
  if (r.mapfileSaveInterval > r.mapfileSyncInterval) optionError(arg, 'Save interval must be <= sync interval in', name);
}
