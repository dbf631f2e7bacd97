/**
 * The two-machine pipeline over the LAN, end to end with real processes on 127.0.0.1
 * port 0 and a simulated failing disk (a GNU ddrescue test map).
 */
import { expect } from 'chai';

import { type Scenario, checkImage, commonMapBlocks, ddrescueFinalMap, makeScenario, startAssembler, startReader } from './harness.js';

const MiB = 1 << 20;

/** Bad areas: single sectors, a cluster, areas across the 4 MiB chunk borders. */
const BAD: ReadonlyArray<readonly [number, number]> = [
  [3 * MiB + 512, 512],
  [4 * MiB - 4096, 8192],
  [8 * MiB - 1024, 3 * 1024],
  [11 * MiB, 64 * 1024 + 1536],
  [12 * MiB - 512, 512],
  [17 * MiB + 7 * 512, 512 * 40],
];

describe('LAN pipeline: ddferry-reader rescue -> ddferry-assembler serve', function () {
  this.timeout(300000);
  let s: Scenario;
  afterEach(function () {
    s?.remove();
  });

  it('ends with an image equal to the source on every + byte, IMAGE.map = common.map = GNU ddrescue final map', async function () {
    s = makeScenario({ size: 20 * MiB + 12345, bad: BAD, chunkSize: '4MiB' });
    const asm = await startAssembler(s);
    try {
      const reader = startReader(s, asm.url);
      const r = await reader.exited();
      expect(r.code, `reader: ${reader.stderr()}`).to.equal(0);
    } finally {
      asm.child.kill('SIGTERM');
      await asm.exited();
    }
    const image = checkImage(s);
    const common = commonMapBlocks(s);
    expect(image, 'IMAGE.map = common.map').to.deep.equal(common);
    expect(common, 'common.map = GNU ddrescue final map').to.deep.equal(ddrescueFinalMap(s));
  });
});
