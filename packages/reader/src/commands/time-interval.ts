import { MapfileError } from '@ddferry/mapfile';

/**
 * Read a time interval as GNU ddrescue does (`parse_rational_time`): a rational number
 * (`1`, `1.5`, `1/2`) and an optional unit `s`, `m`, `h` or `d`.
 * @param maxDen the largest denominator allowed after the unit (1 for whole seconds)
 * @param comma accept a `,` ending the value (for `--mapfile-interval`)
 * @returns seconds, and the rest of the text after the value (with `comma`)
 * @throws MapfileError `ERR_ARG_BAD_NUMBER` with ddrescue's message
 */
export function parseRationalTime(arg: string, option: string, maxDen = 100, comma = false): { seconds: number; rest: string } {
  const bad = (what: string): never => {
    throw new MapfileError('ERR_ARG_BAD_NUMBER', `'${arg}': ${what} ${option}.`, { option, value: arg });
  };
  const m = /^([+-]?)(\d+)(?:\.(\d+)|\/(\d+))?/.exec(arg);
  if (!m) return bad('Bad value in time interval argument of');
  const [, sign, whole, frac, den] = m as unknown as [string, string, string, string | undefined, string | undefined];
  let num = Number(whole);
  let d = 1;
  if (frac !== undefined) {
    d = 10 ** frac.length;
    num = num * d + Number(frac);
  } else if (den !== undefined) {
    d = Number(den);
    if (d === 0) bad('Bad value in time interval argument of');
  }
  if (sign === '-') num = -num;
  const c = m[0].length;
  const unit = arg[c];
  let mult = 1;
  switch (unit) {
    case 'd': mult = 86400; break;
    case 'h': mult = 3600; break;
    case 'm': mult = 60; break;
    case 's': case undefined: break;
    default: if (unit !== ',' || !comma) bad('Bad unit in time interval argument of');
  }
  if (!comma && unit !== undefined && unit !== ',' && arg[c + 1] === ',') bad('Extra characters in argument of');
  num *= mult;
  const g = gcd(Math.abs(num), d);
  const reducedDen = d / g;
  if (num < 0 || reducedDen > maxDen) bad('Bad value in time interval argument of');
  const restAt = unit === undefined || unit === ',' ? c : c + 1;
  return { seconds: num / d, rest: arg.slice(restAt) };
}

/** A time interval in whole seconds (`parse_time_interval`): fractions below a second are truncated. */
export function parseTimeInterval(arg: string, option: string, comma = false): { seconds: number; rest: string } {
  const r = parseRationalTime(arg, option, 1, comma);
  return { seconds: Math.trunc(r.seconds), rest: r.rest };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a || 1;
}
