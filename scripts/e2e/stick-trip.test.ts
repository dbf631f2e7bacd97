/**
 * Stick trips with the real processes: `ddferry-reader rescue JOB --to MNT` (exit 4 while
 * the stick is full, 0 when everything is read; the pieces sealed with the token `plan`
 * made, JOBDIR/token) and `ddferry-assembler import MNT IMAGE --token-file TOKEN`, on a
 * small tmpfs "stick", until the reader says the rescue is complete. The reader and
 * the assembler are killed with SIGKILL at random moments and run again. At the end the
 * image equals the source on every `+` byte and IMAGE.map, common.map and GNU ddrescue's
 * own final map for the same test map are the same block list. (FAT32 and exFAT on loop
 * devices: sneakernet*.test.ts.)
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';

import {
  READER, type Scenario, blocksOf, checkImage, command, commonMapBlocks, compact, ddrescueFinalMap, importArgs, killAll, makeScenario, prng, randInt, testSeed,
} from './harness.js';

const MIB = 1 << 20;

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** Run a command; with `killAfterMs`, SIGKILL it then (if it still runs). */
function run(args: readonly string[], killAfterMs?: number): Promise<Run> {
  const child: ChildProcess = spawn(...command(args), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const t = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  return new Promise((resolve) => child.on('exit', (code, signal) => {
    clearTimeout(t);
    resolve({ code, signal, stderr });
  }));
}

describe('stick trips: real reader and assembler on a tmpfs stick', function () {
  this.timeout(600_000);
  let s: Scenario | undefined;
  let mnt: string | undefined;

  afterEach(async () => {
    await killAll();
    if (mnt !== undefined) spawnSync('umount', [mnt]);
    s?.remove();
    s = undefined;
    mnt = undefined;
  });

  it('trips until complete through kill -9 of either side; the image map ends equal to common.map and to GNU ddrescue\'s', async () => {
    const seed = testSeed('stick trips');
    const rnd = prng(seed);
    const size = 48 * MIB;
    // bad areas, some across the 8 MiB chunk borders
    s = makeScenario({ size, chunkSize: '8MiB', bad: [[3 * MIB, 4096], [8 * MIB - 2048, 8192], [20 * MIB + 512, 512], [24 * MIB - 512, 1024], [40 * MIB, 96 * 1024]], seed: seed & 0xffff, token: 'job' });
    expect(s.token, 'the token plan made').to.equal(join(s.job, 'token'));
    mnt = join(s.dir, 'stick');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) {
      const why = m.error?.message ?? m.stderr;
      mnt = undefined;
      throw new Error(`cannot mount a 12 MiB tmpfs as the stick (needs root): ${why}`);
    }
    let kills = 0;
    let trips = 0;
    let complete = false;
    const codes: number[] = [];
    while (!complete) {
      ++trips;
      expect(trips, `not complete after 40 trips (exit codes ${codes.join(' ')})`).to.be.at.most(40);
      if (rnd() < 0.4) {
        const r = await run([READER, 'rescue', s.job, '--to', mnt, '-q'], randInt(rnd, 20, 600));
        if (r.signal === 'SIGKILL') ++kills;
      }
      const r = await run([READER, 'rescue', s.job, '--to', mnt, '-q']);
      expect(r.code, r.stderr).to.be.oneOf([0, 4]);
      codes.push(r.code!);
      expect(r.stderr).to.not.contain('ERR_STICK_WRITE');
      if (r.code === 4) {
        expect(r.stderr).to.contain(`ddferry-reader: The stick ${mnt} is full: `)
          .and.contain(`   ddferry-assembler import STICK IMAGE --token-file TOKEN     (on PC_B; STICK: where the stick is mounted there, IMAGE: the image file there, TOKEN: PC_B's copy of ${s.token} from here)\n`);
      }
      if (r.stderr.includes('The rescue is complete')) {
        complete = true;
        break;
      }
      // no partial bundle is ever visible on the stick
      const folder = join(mnt, 'ddferry', JSON.parse(readFileSync(join(s.job, 'job.json'), 'utf8')).rescueId as string);
      for (const n of readdirSync(folder)) expect(n.endsWith('.tmp'), n).to.equal(false);
      if (rnd() < 0.3) {
        const k = await run(importArgs(s, mnt), randInt(rnd, 10, 300));
        if (k.signal === 'SIGKILL') ++kills;
      }
      const i = await run(importArgs(s, mnt));
      expect(i.code, i.stderr).to.equal(0);
    }
    console.log(`      ${trips} trips, exit codes ${codes.join(' ')}, ${kills} kill -9`);
    expect(codes.filter((c) => c === 4).length).to.be.at.least(3);
    const image = checkImage(s);
    const common = commonMapBlocks(s);
    expect(compact(image)).to.deep.equal(common);
    expect(common).to.deep.equal(ddrescueFinalMap(s));
    expect(readdirSync(join(s.job, 'ledger'))).to.deep.equal([]);
    expect(blocksOf(readFileSync(join(s.job, 'common.map'), 'latin1')).some((b) => b.status === '-')).to.equal(true);
  });
});
