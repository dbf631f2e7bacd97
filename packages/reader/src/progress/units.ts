import { formatNum } from '@ddferry/mapfile';

/**
 * Bytes for people, in the one unit family ddferry uses everywhere: ddrescue's
 * (`formatNum`: kB, MB, GB by 1000; Ki, Mi, Gi by 1024 with `--binary-prefixes`), as
 * in the status block.
 */
export function formatBytes(n: number, binary = false): string {
  return `${formatNum(n, { binary, limit: 9999 })}B`;
}
