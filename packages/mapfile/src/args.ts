/**
 * Command-line parsing the way GNU tools built on Arg_parser read it (ddrescue,
 * ddrescuelog): short options may be grouped, long options may be abbreviated to a
 * unique prefix, options and other arguments may be mixed, `--` ends the options.
 * Numbers are read like `getnum`: C integers with multipliers and units.
 */
import { scanCInteger } from './c-number.js';
import { MapfileError } from './errors.js';
import { formatNum3 } from './format-num.js';

export type HasArgument = 'no' | 'yes' | 'maybe';

export interface OptionSpec {
  /** The short letter, or a name for long-only options. */
  readonly code: string;
  readonly long?: string;
  readonly hasArg: HasArgument;
}

export interface ParsedOption {
  readonly code: string;
  /** `-a` or `--change-types`: the name used in messages. */
  readonly name: string;
  readonly argument: string;
}

export interface ParsedArgs {
  readonly options: readonly ParsedOption[];
  readonly operands: readonly string[];
}

/**
 * Parse `argv` (without the program name).
 * @throws MapfileError `ERR_ARG_INVALID` with GNU's message (`invalid option -- 'k'`,
 *   `unrecognized option '--foo'`, `option '--c' is ambiguous`, ...).
 */
export function parseArgs(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArgs {
  const options: ParsedOption[] = [];
  const operands: string[] = [];
  const bad = (msg: string, opt: string): never => {
    throw new MapfileError('ERR_ARG_INVALID', msg, { option: opt, value: '' });
  };
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i]!;
    if (arg === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq >= 0 ? eq : undefined);
      let index = -1;
      let ambiguous = false;
      for (let k = 0; k < specs.length; ++k) {
        const long = specs[k]!.long;
        if (!long || !long.startsWith(name)) continue;
        if (long.length === name.length) {
          index = k;
          ambiguous = false;
          break;
        }
        if (index < 0) index = k;
        else if (specs[index]!.code !== specs[k]!.code || specs[index]!.hasArg !== specs[k]!.hasArg) ambiguous = true;
      }
      if (ambiguous) bad(`option '--${name}' is ambiguous`, arg);
      if (index < 0) bad(`unrecognized option '${arg.slice(0, eq >= 0 ? eq : undefined)}'`, arg);
      const spec = specs[index]!;
      const full = `--${spec.long!}`;
      if (eq >= 0) {
        if (spec.hasArg === 'no') bad(`option '${full}' doesn't allow an argument`, full);
        options.push({ code: spec.code, name: full, argument: arg.slice(eq + 1) });
      } else if (spec.hasArg === 'yes') {
        if (i + 1 >= argv.length) bad(`option '${full}' requires an argument`, full);
        options.push({ code: spec.code, name: full, argument: argv[++i]! });
      } else {
        options.push({ code: spec.code, name: full, argument: '' });
      }
      continue;
    }
    if (arg.length > 1 && arg.startsWith('-')) {
      for (let j = 1; j < arg.length; ++j) {
        const ch = arg[j]!;
        const spec = specs.find((s) => s.code === ch);
        if (!spec) bad(`invalid option -- '${ch}'`, `-${ch}`);
        const name = `-${ch}`;
        if (spec!.hasArg === 'no') {
          options.push({ code: ch, name, argument: '' });
          continue;
        }
        const rest = arg.slice(j + 1);
        if (spec!.hasArg === 'maybe' || rest.length > 0) options.push({ code: ch, name, argument: rest });
        else {
          if (i + 1 >= argv.length) bad(`option requires an argument -- '${ch}'`, name);
          options.push({ code: ch, name, argument: argv[++i]! });
        }
        break;
      }
      continue;
    }
    operands.push(arg);
  }
  return { options, operands };
}

const LONG_MAX = (1n << 63n) - 1n;
const EXPONENTS: Readonly<Record<string, number>> = { Q: 10, R: 9, Y: 8, Z: 7, E: 6, P: 5, T: 4, G: 3, M: 2 };

/**
 * Read a number option as GNU ddrescue's `getnum` does: a C integer (decimal, `0x` hex,
 * leading-0 octal) and an optional multiplier (`k` 1000, `Ki` 1024, `M`/`Mi`, ... `Q`/`Qi`)
 * and unit (`B` bytes, `s` sectors of `sectorSize`; `s` needs `sectorSize` > 0).
 * The result must lie in `[min, max]` (by default the range of a C `long long`, as in
 * ddrescue, whose limits the message names), and then within ±(2^53-1), the exact range
 * of a JavaScript number: larger values are refused with a message of our own.
 * @throws MapfileError `ERR_ARG_BAD_NUMBER`, `ERR_ARG_BAD_MULTIPLIER` or
 *   `ERR_ARG_OUT_OF_LIMITS`, with ddrescue's message text, or `ERR_ARG_TOO_LARGE`.
 */
export function parseNumberArgument(arg: string, option: string, sectorSize: number, min: number | bigint = -LONG_MAX - 1n, max: number | bigint = LONG_MAX): number {
  const bytes = Buffer.from(arg, 'latin1');
  // strtoll reads "0x" without hex digits as "0" followed by "x"
  let scan = scanCInteger(bytes, 0, bytes.length);
  if (scan.value !== null && scan.next >= 2 && (bytes[scan.next - 1] === 0x78 || bytes[scan.next - 1] === 0x58) && bytes[scan.next - 2] === 0x30) {
    scan = { value: 0n, next: scan.next - 1 };
  }
  if (scan.value === null) throw new MapfileError('ERR_ARG_BAD_NUMBER', `'${arg}': Bad or missing numerical argument in option '${option}'.`, { option, value: arg });
  let result = scan.value;
  let overflow = result > LONG_MAX || result < -LONG_MAX - 1n;
  const tail = arg.slice(scan.next);
  if (!overflow && tail.length > 0) {
    let k = 1;
    const p = tail[0]!;
    let factor = 1000n;
    let exponent = -1;
    let unit = '';
    if (p in EXPONENTS) exponent = EXPONENTS[p]!;
    else if (p === 'K') {
      if (tail[1] === 'i') {
        ++k;
        factor = 1024n;
        exponent = 1;
      }
    } else if (p === 'k') {
      if (tail[1] !== 'i') exponent = 1;
    } else if (p === 'B' || p === 's') {
      unit = p;
      exponent = 0;
    }
    if (exponent > 1 && tail[k] === 'i') {
      ++k;
      factor = 1024n;
    }
    if (exponent > 0 && unit === '' && (tail[k] === 'B' || tail[k] === 's')) unit = tail[k++]!;
    if (exponent < 0 || (unit === 's' && sectorSize <= 0) || k !== tail.length) {
      throw new MapfileError('ERR_ARG_BAD_MULTIPLIER', `'${arg}': Bad multiplier in numerical argument of option '${option}'.`, { option, value: arg });
    }
    for (let e = 0; e < exponent; ++e) result *= factor;
    if (unit === 's') result *= BigInt(sectorSize);
    overflow = result > LONG_MAX || result < -LONG_MAX - 1n;
  }
  if (overflow || result < BigInt(min) || result > BigInt(max)) {
    throw new MapfileError('ERR_ARG_OUT_OF_LIMITS', `'${arg}': Value out of limits [${formatNum3(min)},${formatNum3(max)}] in option '${option}'.`, { option, value: arg });
  }
  if (result > BigInt(Number.MAX_SAFE_INTEGER) || result < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new MapfileError('ERR_ARG_TOO_LARGE',
      `'${arg}': Value too large in option '${option}'. ddferry handles positions and sizes up to ${formatNum3(Number.MAX_SAFE_INTEGER)} (2^53-1); use GNU ddrescue for larger values.`, { option, value: arg });
  }
  return Number(result);
}
