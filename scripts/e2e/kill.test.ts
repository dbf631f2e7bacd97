/**
 * kill -9 of the reader, of the assembler, and of both, at random points of a LAN
 * rescue of a simulated failing disk; the killed side(s) restart (the assembler on the
 * same port) until the reader exits 0. After every kill: both mapfiles well formed, the
 * image equal to the source on every `+` byte (A1), every `+` byte of common.map either
 * `+` in IMAGE.map or held by a spooled piece (R1), statuses only forward (A3). At the
 * end: IMAGE.map = common.map = GNU ddrescue's final map, spool empty.
 *
 * Random choices come from a seeded PRNG: the seed is printed; DDFERRY_E2E_SEED replays it.
 */
import { readFileSync } from 'node:fs';

import { expect } from 'chai';

import {
  type Assembler, type Fault, type Reader, type Scenario, type Snapshot, awaitReader, checkState, describeFaults, finalChecks, kill9, killAll,
  makeScenario, portOf, prng, randInt, randomBad, restartAssembler, sleep, spoolBytes, startAssembler, startReader, testSeed,
} from './harness.js';

type Kind = 'reader' | 'assembler' | 'both';

interface Run {
  readonly kind: Kind;
  readonly seed: number;
  /** Kill points to try (a point after the reader exited is not taken). */
  readonly kills: number;
  /** Engine options for `ddferry-reader rescue`. */
  readonly engine: string[];
  /** The options that change GNU ddrescue's final map. */
  readonly gnu: string[];
  /** A disk whose reads block at three places (`plan --test-slow-reads`): kills land in hung reads too. */
  readonly slow: boolean;
}

const seed = testSeed('kill.test.ts');
const master = prng(seed);
const kinds: Kind[] = [...Array<Kind>(8).fill('reader'), ...Array<Kind>(7).fill('assembler'), ...Array<Kind>(5).fill('both')];
const runs: Run[] = kinds.map((kind, i) => {
  const engine: string[] = [];
  const gnu: string[] = [];
  if ([1, 10, 16].includes(i)) engine.push('--mapfile-interval=0');
  if (i % 4 === 2) engine.push('--spool-size', '8MiB');
  if (i === 9) {
    engine.push('-r1');
    gnu.push('-r1');
  }
  return { kind, seed: Math.floor(master() * 2 ** 32), kills: randInt(master, 1, 4), engine, gnu, slow: i % 2 === 1 };
});

describe('kill -9 at random points: reader, assembler, both (LAN)', function () {
  this.timeout(240_000);
  let s: Scenario | undefined;
  const taken: Record<Kind, number> = { reader: 0, assembler: 0, both: 0 };
  const faultsSeen: Fault[] = [];

  afterEach(async function () {
    await killAll();
    s?.remove();
    s = undefined;
  });

  after(function () {
    console.log(`      kill points taken: ${taken.reader} reader, ${taken.assembler} assembler, ${taken.both} both (seed ${seed}); reader faults seen: ${faultsSeen.length}`);
  });

  for (const [i, run] of runs.entries()) {
    const label = `run ${i + 1}/${runs.length}: kill -9 the ${run.kind} up to ${run.kills}x${run.engine.length ? ` (${run.engine.join(' ')})` : ''}${run.slow ? ', reads that block' : ''}`;
    it(label, async function () {
      const rnd = prng(run.seed);
      const size = randInt(rnd, 48, 96) * 512 * 1024 + (rnd() < 0.3 ? randInt(rnd, 1, 511) : 0);
      const bad = randomBad(rnd, size);
      // reads of one sector that block 0.4 s at a quarter, half and three quarters of the disk (one sector,
      // so that trimming or scraping a bad area there blocks a few reads, not 128): a rescue lasts
      // seconds however fast the machine, and kill points land while the reading process hangs
      const slowAt = [1, 2, 3].map((q) => Math.floor((size * q) / 4 / 512) * 512);
      const planArgs = run.slow ? ['--test-slow-reads', slowAt.map((p) => `${p}+512@0.4`).join(',')] : [];
      const sc = makeScenario({ size, bad, chunkSize: '4MiB', seed: run.seed & 0xffff, planArgs });
      s = sc;
      const source = readFileSync(sc.source);
      let asm: Assembler = await startAssembler(sc);
      const port = portOf(asm.url);
      const url = asm.url;
      const startR = (): Reader => startReader(sc, url, run.engine);
      let reader = startR();
      let snap: Snapshot | undefined;
      const capAt = run.engine.indexOf('--spool-size');
      const cap = capAt < 0 ? undefined : 8 << 20;
      const points: string[] = [];
      for (let k = 0; k < run.kills; ++k) {
        // the first point early, later ones anywhere a resumed rescue still runs: a 24-48 MiB rescue
        // takes about a second here (1.2 s more with reads that block), less once resumed
        const delay = k === 0 ? randInt(rnd, 50, 700) : randInt(rnd, 50, run.slow ? 1500 : 1000);
        const ended = await Promise.race([reader.exited().then(() => true), sleep(delay).then(() => false)]);
        if (ended) break;
        if (run.kind !== 'assembler') await kill9(reader);
        if (run.kind !== 'reader') await kill9(asm);
        ++taken[run.kind];
        points.push(`${delay} ms`);
        try {
          const held = spoolBytes(sc);
          if (cap !== undefined && held > cap + 64 * 1024) throw new Error(`the spool holds ${held} bytes, over --spool-size ${cap}`);
          snap = checkState(sc, source, snap);
        } catch (err) {
          throw new Error(`after kill ${k + 1} (${points.join(', ')} after each start) of the ${run.kind}: ${(err as Error).message}\nreader stderr:\n${reader.stderr()}\nassembler stderr:\n${asm.stderr()}`);
        }
        await sleep(randInt(rnd, 0, 600));
        if (run.kind !== 'reader') asm = await restartAssembler(sc, port);
        if (run.kind !== 'assembler') reader = startR();
      }
      const faults: Fault[] = [];
      const { exit, reader: last } = await awaitReader(sc, reader, startR, faults, { quietMs: 6000 });
      faultsSeen.push(...faults);
      expect(exit.code, `reader exit (kills at ${points.join(', ') || 'none'}): ${last.stderr()}`).to.equal(0);
      asm.child.kill('SIGTERM');
      const stopped = await asm.exited();
      expect(stopped.code, `assembler exit after SIGTERM: ${asm.stderr()}`).to.equal(0);
      finalChecks(sc, run.gnu);
      expect(faults, `reader fault(s) (kills at ${points.join(', ') || 'none'}):\n${describeFaults(faults)}`).to.have.length(0);
    });
  }

  it('took at least 20 kill points over the runs', function () {
    const total = taken.reader + taken.assembler + taken.both;
    expect(total, `kill points: ${JSON.stringify(taken)}`).to.be.at.least(20);
  });
});
