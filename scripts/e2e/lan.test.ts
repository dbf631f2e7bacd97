/**
 * The two-machine pipeline over the LAN, end to end with real processes on 127.0.0.1
 * port 0 and a simulated failing disk (a GNU ddrescue test map).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';

import {
  READER, type Scenario, blocksOf, checkImage, command, commonMapBlocks, compact, ddrescueFinalMap, makeScenario, startAssembler, startReader,
} from './harness.js';

/** GNU ddrescue run chunk after chunk with the job's chunk maps (the manual recipe). */
function ddrescueChunkRecipe(s: Scenario): ReturnType<typeof blocksOf> {
  const out = join(s.dir, 'recipe.out');
  const map = join(s.dir, 'recipe.map');
  rmSync(map, { force: true });
  for (const name of readdirSync(join(s.job, 'chunks')).sort()) {
    const r = spawnSync('ddrescue', ['-q', '-m', join(s.job, 'chunks', name), '-H', s.testMap, s.source, out, map], { encoding: 'utf8' });
    if (r.error) throw new Error(`GNU ddrescue could not start (${r.error.message}): apt-get install -y gddrescue`);
    if (r.status !== 0) throw new Error(`ddrescue -m ${name} failed (${r.status}): ${r.stderr}`);
  }
  return compact(blocksOf(readFileSync(map, 'latin1')));
}

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

  it('with --chunk-at-a-time ends with the map of GNU ddrescue run chunk after chunk with the chunk maps', async function () {
    s = makeScenario({ size: 20 * MiB + 12345, bad: BAD, chunkSize: '4MiB', seed: 2 });
    const asm = await startAssembler(s);
    try {
      const reader = startReader(s, asm.url, ['--chunk-at-a-time']);
      const r = await reader.exited();
      expect(r.code, `reader: ${reader.stderr()}`).to.equal(0);
    } finally {
      asm.child.kill('SIGTERM');
      await asm.exited();
    }
    const image = checkImage(s);
    expect(image, 'IMAGE.map = common.map').to.deep.equal(commonMapBlocks(s));
    expect(commonMapBlocks(s), 'common.map = GNU ddrescue -m chunk after chunk').to.deep.equal(ddrescueChunkRecipe(s));
  });

  it('refuses to resume a job on another device, showing both identities', function () {
    s = makeScenario({ size: 4 * MiB, bad: [], chunkSize: '1MiB' });
    const other = join(s.dir, 'other.bin');
    spawnSync('truncate', ['-s', String(3 * MiB), other]);
    const r = spawnSync(...command([READER, 'rescue', s.job, '--to', 'ws://127.0.0.1:9', '--source', other]), { encoding: 'utf8' });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/ERR_JOB_WRONG_DEVICE/);
    expect(r.stderr).to.match(/planned: .*4194304 bytes/);
    expect(r.stderr).to.match(/found: .*3145728 bytes/);
  });
});
