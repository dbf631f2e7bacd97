import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

const MODULE = fileURLToPath(new URL('../src/young-garbage.ts', import.meta.url));

/**
 * In a fresh process (no --expose-gc): 256 MiB of 64 KiB buffers, each filled and dropped
 * (as a cipher's outputs are), said dropped or not; the peak of the buffers' memory, in MiB,
 * and what the program and a new context see of `gc` afterwards.
 */
function churn(say: boolean): { peakMiB: number; gc: string; contextGc: string } {
  const script = `
    const { droppedBuffers } = await import(${JSON.stringify(MODULE)});
    const { runInNewContext } = await import('node:vm');
    let peak = 0;
    for (let i = 0; i < 4096; i++) {
      const b = Buffer.allocUnsafeSlow(64 * 1024).fill(i & 255);
      if (${say}) droppedBuffers(b.length);
      if (i % 16 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
    process.stdout.write(JSON.stringify({ peakMiB: peak / 1048576, gc: typeof globalThis.gc, contextGc: runInNewContext('typeof gc') }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' })) as { peakMiB: number; gc: string; contextGc: string };
}

/**
 * In a fresh process: say SCAVENGE_EVERY_BYTES dropped (nothing allocated, so V8 has no
 * collection of its own to make), inline or after `collectAfterCallbacks`; the minor
 * collections seen, by when they started: before `droppedBuffers` returned, or after.
 */
function timing(defer: boolean): { during: number; after: number } {
  const script = `
    const { collectAfterCallbacks, droppedBuffers, SCAVENGE_EVERY_BYTES } = await import(${JSON.stringify(MODULE)});
    const { PerformanceObserver, performance, constants } = await import('node:perf_hooks');
    const starts = [];
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) starts.push(e.startTime);
    });
    obs.observe({ entryTypes: ['gc'] });
    if (${defer}) collectAfterCallbacks();
    await new Promise((r) => setTimeout(r, 50));
    const before = performance.now();
    droppedBuffers(SCAVENGE_EVERY_BYTES);
    const returned = performance.now();
    await new Promise((r) => setTimeout(r, 100));
    obs.disconnect();
    const mine = starts.filter((t) => t >= before);
    process.stdout.write(JSON.stringify({ during: mine.filter((t) => t < returned).length, after: mine.filter((t) => t >= returned).length }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' })) as { during: number; after: number };
}

describe('droppedBuffers', () => {
  it('collects inside the call by default; after the callback in progress once collectAfterCallbacks was called', function () {
    this.timeout(60_000);
    expect(timing(false)).to.deep.equal({ during: 1, after: 0 });
    expect(timing(true)).to.deep.equal({ during: 0, after: 1 });
  });

  it('has the buffers said dropped collected every few MiB, so their memory serves the next ones', function () {
    this.timeout(60_000);
    const left = churn(false);
    const said = churn(true);
    // here: 34 MiB left to V8's own pace, 6 to 7 MiB said dropped (SCAVENGE_EVERY_BYTES is 4 MiB)
    expect(said.peakMiB).to.be.below(left.peakMiB / 2);
    expect(said.peakMiB).to.be.below(16);
  });

  it('leaves no gc function visible to the program or to new contexts', function () {
    this.timeout(60_000);
    const said = churn(true);
    expect(said.gc).to.equal('undefined');
    expect(said.contextGc).to.equal('undefined');
  });
});
