/**
 * A TCP proxy between ddferry-reader and ddferry-assembler that (1) cuts the connection
 * after a random number of bytes, many times in one rescue, and (2) flips one random
 * bit of the reader→assembler stream every few hundred KiB. Neither process is
 * restarted; the rescue must finish with nothing lost and nothing corrupted.
 *
 * Random choices come from a seeded PRNG: the seed is printed; DDFERRY_E2E_SEED replays it.
 */
import { readFileSync } from 'node:fs';

import { expect } from 'chai';

import {
  type Assembler, type Fault, type Reader, type Scenario, type Snapshot, TcpProxy, awaitReader, checkState, describeFaults, finalChecks, killAll,
  makeScenario, prng, randInt, randomBad, sleep, startAssembler, startReader, testSeed,
} from './harness.js';

const seed = testSeed('proxy.test.ts');

/** The reader's options in the cut test: the default spool, and a small one (reading pauses while the link is down). */
const CUT_VARIANTS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['default spool, common.map saved every second', ['--mapfile-interval=1']],
  ['--spool-size 8MiB: the spool fills while the link is down', ['--spool-size', '8MiB', '--mapfile-interval=1']],
];

describe('LAN through a faulty TCP proxy (reader and assembler never restarted)', function () {
  this.timeout(300_000);
  let s: Scenario | undefined;
  let proxy: TcpProxy | undefined;

  afterEach(async function () {
    await proxy?.close();
    proxy = undefined;
    await killAll();
    s?.remove();
    s = undefined;
  });

  it('baseline: through a transparent proxy, one connection for the whole rescue and no link error (thousands of small pieces)', async function () {
    const rnd = prng(seed ^ 0x1234567);
    const size = randInt(rnd, 48, 56) * 512 * 1024;
    const sc = makeScenario({ size, bad: randomBad(rnd, size), chunkSize: '4MiB', seed: 5 });
    s = sc;
    const asm: Assembler = await startAssembler(sc);
    const p = await TcpProxy.start(Number(new URL(asm.url).port), (_dir, chunk) => ({ forward: chunk }));
    proxy = p;
    // --mapfile-interval=0 seals a piece at every mapfile save: many pieces, many receipts
    const startR = (): Reader => startReader(sc, p.url, ['--mapfile-interval=0']);
    const faults: Fault[] = [];
    const { exit, reader } = await awaitReader(sc, startR(), startR, faults);
    expect(exit.code, reader.stderr()).to.equal(0);
    finalChecks(sc);
    expect(faults, `reader fault(s):\n${describeFaults(faults)}`).to.have.length(0);
    const errors = reader.stderr().split('\n').filter((l) => /ERR_|ENOENT|retrying/.test(l));
    expect(errors, `link errors without any fault on the link (${errors.length}):\n${errors.slice(0, 5).join('\n')}`).to.deep.equal([]);
    expect(p.connections, 'connections (the link never failed)').to.equal(1);
  });

  for (const [variant, engine] of CUT_VARIANTS) {
    it(`connection cut after a random number of bytes, at least 15 times in one rescue (${variant})`, async function () {
      const rnd = prng(seed + engine.length);
      const size = randInt(rnd, 48, 80) * 512 * 1024;
      const sc = makeScenario({ size, bad: randomBad(rnd, size), chunkSize: '4MiB', seed: 7 });
      s = sc;
      const source = readFileSync(sc.source);
      const asm: Assembler = await startAssembler(sc);
      const maxCuts = randInt(rnd, 18, 26);
      // budgets: a few inside the handshake, most log-uniform from 4 KiB to 8 MiB
      const budget = (): number => (rnd() < 0.15 ? randInt(rnd, 40, 1500) : Math.floor(2 ** (12 + rnd() * 11)));
      const p = await TcpProxy.start(Number(new URL(asm.url).port), (_dir, chunk, conn) => {
        if (p.cuts >= maxCuts) return { forward: chunk };
        if (conn.budget === 0) conn.budget = budget();
        const left = conn.budget - conn.bytes;
        return chunk.length < left ? { forward: chunk } : { forward: chunk.subarray(0, left), cut: true };
      });
      proxy = p;
      const startR = (): Reader => startReader(sc, p.url, engine);
      const reader = startR();
      let snap: Snapshot | undefined;
      let checked = 0;
      let exited = false;
      void reader.exited().then(() => {
        exited = true;
      });
      // R1, A1 and forward-only statuses at cut points, while both sides run
      while (!exited && p.cuts < maxCuts) {
        await sleep(100);
        if (p.cuts > checked) {
          checked = p.cuts;
          snap = checkState(sc, source, snap);
        }
      }
      const faults: Fault[] = [];
      const { exit, reader: last } = await awaitReader(sc, reader, startR, faults);
      console.log(`      cuts: ${p.cuts} over ${p.connections} connections (${variant}, seed ${seed})`);
      expect(exit.code, `reader: ${last.stderr()}`).to.equal(0);
      finalChecks(sc);
      expect(p.cuts, 'connection cuts in one rescue').to.be.at.least(15);
      expect(asm.child.exitCode, 'the assembler was never restarted').to.equal(null);
      expect(faults, `reader fault(s):\n${describeFaults(faults)}`).to.have.length(0);
    });
  }

  it('one bit flipped every 200-2000 KiB of the reader→assembler stream: corrupted pieces refused, resent, nothing corrupted written', async function () {
    const rnd = prng(seed ^ 0x5bd1e995);
    const size = randInt(rnd, 48, 80) * 512 * 1024;
    const sc = makeScenario({ size, bad: randomBad(rnd, size), chunkSize: '4MiB', seed: 11 });
    s = sc;
    const source = readFileSync(sc.source);
    const asm: Assembler = await startAssembler(sc);
    const maxFlips = randInt(rnd, 10, 16);
    let flips = 0;
    let up = 0;
    let nextFlip = randInt(rnd, 200, 2000) * 1024;
    const where: string[] = [];
    const p = await TcpProxy.start(Number(new URL(asm.url).port), (dir, chunk, conn) => {
      if (dir !== 'up' || flips >= maxFlips) return { forward: chunk };
      const start = up;
      up += chunk.length;
      if (up <= nextFlip) return { forward: chunk };
      const out = Buffer.from(chunk);
      const at = nextFlip - start;
      const bit = randInt(rnd, 0, 7);
      out[at] = out[at]! ^ (1 << bit);
      where.push(`conn ${conn.id} byte ${conn.upBytes + at} bit ${bit}`);
      ++flips;
      nextFlip = up + randInt(rnd, 200, 2000) * 1024;
      return { forward: out };
    });
    proxy = p;
    const startR = (): Reader => startReader(sc, p.url);
    const reader = startR();
    const faults: Fault[] = [];
    const { exit, reader: last } = await awaitReader(sc, reader, startR, faults);
    console.log(`      bit flips: ${flips} over ${p.connections} connections (seed ${seed})`);
    const log = asm.stderr();
    const rejected = (log.match(/rejected, nothing written/g) ?? []).length;
    const coded = (log.match(/ERR_[A-Z_]+/g) ?? []);
    console.log(`      assembler: ${rejected} piece(s) rejected, coded errors: ${[...new Set(coded)].join(', ') || 'none'}`);
    expect(exit.code, `reader: ${last.stderr()}`).to.equal(0);
    expect(flips, 'bits flipped').to.be.at.least(Math.min(maxFlips, 8));
    expect(coded.length, `the assembler logged no coded error for ${flips} flipped bits (${where.join('; ')}):\n${log}`).to.be.greaterThan(0);
    finalChecks(sc);
    checkState(sc, source);
    expect(asm.child.exitCode, 'the assembler was never restarted').to.equal(null);
    expect(faults, `reader fault(s):\n${describeFaults(faults)}`).to.have.length(0);
  });
});
