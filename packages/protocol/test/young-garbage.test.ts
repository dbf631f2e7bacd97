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

describe('droppedBuffers', () => {
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
