import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

const MODULE = fileURLToPath(new URL('../src/malloc-thresholds.ts', import.meta.url));

/**
 * Minor page faults of 6 bursts of eight 4 MiB buffers (32 MiB) filled, then collected
 * together (as the collector frees frames and ciphers' outputs), in a fresh process,
 * with the thresholds raised or not.
 */
function faultsOfChurn(raise: boolean): number {
  const script = `
    const { raiseMallocThresholds } = await import(${JSON.stringify(MODULE)});
    if (${raise}) raiseMallocThresholds();
    globalThis.gc(); globalThis.gc();
    const before = process.resourceUsage().minorPageFault;
    for (let i = 0; i < 6; i++) { const live = []; for (let k = 0; k < 8; k++) live.push(Buffer.allocUnsafeSlow(4 << 20).fill(k)); live.length = 0; globalThis.gc(); }
    process.stdout.write(String(process.resourceUsage().minorPageFault - before));
  `;
  return Number(execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('raiseMallocThresholds', () => {
  it('has glibc keep freed buffers for the next ones: 32 MiB of buffers freed at once and allocated again are not faulted in again', function () {
    this.timeout(60_000);
    const plain = faultsOfChurn(false);
    const raised = faultsOfChurn(true);
    // a burst is 8192 pages. Without: glibc's own threshold (raised to 4 MiB by the first
    // free) trims the heap's top beyond 8 MiB, so later bursts fault pages in again (17 400
    // here); with: the first burst's pages serve the next ones (9 200 here)
    const burst = 8 * 1024;
    expect(plain).to.be.above(1.5 * burst);
    expect(raised).to.be.below(1.25 * burst);
  });
});
