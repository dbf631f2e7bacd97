/**
 * How many more files this process may open: its soft `RLIMIT_NOFILE` minus
 * the descriptors it holds. On Linux both come from `/proc/self` (Node has no
 * getrlimit); elsewhere nothing is known and nothing is refused for it.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** The soft limit on open files, or undefined where `/proc/self/limits` is not there. */
export function openFileLimit(): number | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (m === null || m[1] === 'unlimited') return undefined;
  return Number(m[1]);
}

/** Descriptors open now, or undefined where `/proc/self/fd` is not there. */
export function openFileCount(): number | undefined {
  try {
    // the listing holds the folder's own descriptor while it reads
    return readdirSync('/proc/self/fd').length - 1;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** A function giving how many more files may be opened now (undefined: unknown). */
export function fdHeadroom(limit: number | undefined = openFileLimit()): () => number | undefined {
  return () => {
    if (limit === undefined) return undefined;
    const open = openFileCount();
    return open === undefined ? undefined : limit - open;
  };
}
