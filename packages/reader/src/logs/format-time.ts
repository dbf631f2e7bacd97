/**
 * The two time formats of GNU ddrescue 1.27: `format_time_dhms` (loggers.cc, used in
 * the log files) and `format_time` (the status screen).
 */

const p2 = (n: number): string => String(n).padStart(2, '0');

/**
 * `format_time_dhms` (spec 4): `Ns`, `Mm:SSs`, `Hh:MMm:SSs` or `Dd:HHh:MMm:SSs`.
 * `seconds` is truncated to an integer.
 */
export function formatTimeDhms(seconds: number): string {
  const t = Math.trunc(seconds);
  const s = t % 60;
  const m = Math.trunc(t / 60) % 60;
  const h = Math.trunc(t / 3600) % 24;
  const d = Math.trunc(t / 86400);
  if (d) return `${d}d:${p2(h)}h:${p2(m)}m:${p2(s)}s`;
  if (h) return `${h}h:${p2(m)}m:${p2(s)}s`;
  if (m) return `${m}m:${p2(s)}s`;
  return `${s}s`;
}

/**
 * `format_time` (spec 6.2): `n/a` if negative; otherwise the non-zero parts among
 * `Nd`, `Nh`, `Nm`, `Ns` while the text is at most 7 characters long (so at most
 * three parts, at most 11 characters), each later part preceded by two spaces if it is
 * below 10, else one. `dropSeconds` (ddrescue's `low_prec`, used for remaining times
 * of 180 s or more) leaves out the seconds. Zero gives `0s`.
 */
export function formatTime(seconds: number, dropSeconds = false): string {
  if (seconds < 0) return 'n/a';
  const t = Math.trunc(seconds);
  const s = t % 60;
  const m = Math.trunc(t / 60) % 60;
  const h = Math.trunc(t / 3600) % 24;
  const d = Math.trunc(t / 86400);
  let out = '';
  const part = (value: number, unit: string): void => {
    out += `${out.length ? (value < 10 ? '  ' : ' ') : ''}${value}${unit}`;
  };
  if (d > 0) part(d, 'd');
  if (h > 0 && out.length <= 7) part(h, 'h');
  if (m > 0 && out.length <= 7) part(m, 'm');
  if ((s > 0 && out.length <= 7 && !dropSeconds) || out.length === 0) part(s, 's');
  return out;
}
