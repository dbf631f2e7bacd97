import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

const MODULE = fileURLToPath(new URL('../src/malloc-thresholds.ts', import.meta.url));

/**
 * Minor page faults of each of 6 bursts of eight 4 MiB buffers (32 MiB) filled, then
 * collected together (as the collector frees frames and ciphers' outputs), in a fresh
 * process, with the thresholds raised or not.
 */
function faultsOfBursts(raise: boolean): number[] {
  const script = `
    const { raiseMallocThresholds } = await import(${JSON.stringify(MODULE)});
    if (${raise}) raiseMallocThresholds();
    globalThis.gc(); globalThis.gc();
    const faults = [];
    for (let i = 0; i < 6; i++) {
      const before = process.resourceUsage().minorPageFault;
      const live = []; for (let k = 0; k < 8; k++) live.push(Buffer.allocUnsafeSlow(4 << 20).fill(k)); live.length = 0; globalThis.gc();
      faults.push(process.resourceUsage().minorPageFault - before);
    }
    process.stdout.write(JSON.stringify(faults));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' })) as number[];
}

/** Faults of the bursts after the first, the fewest of two processes. */
function laterFaults(raise: boolean): number {
  const sum = (faults: number[]): number => faults.slice(1).reduce((a, b) => a + b, 0);
  return Math.min(sum(faultsOfBursts(raise)), sum(faultsOfBursts(raise)));
}

describe('raiseMallocThresholds', () => {
  it('has glibc keep freed buffers for the next ones: 32 MiB of buffers freed at once and allocated again are not faulted in again', function () {
    this.timeout(60_000);
    const plain = laterFaults(false);
    const raised = laterFaults(true);
    // a burst is 8192 pages; the first burst faults them in either way. Without: glibc's own
    // threshold (raised to 4 MiB by the first free) trims the heap's top beyond 8 MiB, so the
    // next burst faults its pages in again (9 200 to 11 000 pages over bursts 2 to 6 here);
    // with: the first burst's pages serve the next ones (1 000 to 3 000 here, the collector's own)
    const burst = 8 * 1024;
    expect(plain).to.be.above(0.75 * burst);
    expect(raised).to.be.below(plain / 2);
  });
});
