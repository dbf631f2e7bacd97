/**
 * Text from a peer or a stick (a reader's name, an Error message, a file name,
 * a fingerprint's model) made safe to print on a terminal, in a log or on the
 * live page: it can neither move the cursor, clear the screen, set a window
 * title nor reorder what follows it.
 *
 * | in the text | becomes |
 * |---|---|
 * | C0 controls (ESC, CR, LF, TAB, BEL…), DEL, C1 controls (U+0080–U+009F) | `?` |
 * | bidi controls (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069) | `?` |
 * | line and paragraph separators (U+2028, U+2029) | `?` |
 * | a lone surrogate | U+FFFD |
 * | more than `max` code points | the first `max - 1`, then `…` |
 */

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

/** Default longest text kept by `printable`, in code points. */
export const PRINTABLE_DEFAULT_MAX = 200;

/**
 * `text` with control and bidi characters replaced by `?`, cut to `max` code
 * points (see the module comment). Never throws; `undefined` and `null` give ''.
 * @param max longest result in code points, at least 1. Default 200.
 */
export function printable(text: string | undefined | null, max: number = PRINTABLE_DEFAULT_MAX): string {
  if (text === undefined || text === null) return '';
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`printable: max must be a positive integer, not ${String(max)}`);
  const clean = String(text).replace(LONE_SURROGATE, '\ufffd').replace(UNSAFE, '?');
  if (clean.length <= max) return clean;
  const points = Array.from(clean);
  return points.length <= max ? clean : `${points.slice(0, max - 1).join('')}…`;
}
