/**
 * Sticks that never deadlock, on real file systems (loop devices, FUSE; stick-harness.ts),
 * with the real `ddferry-reader` and `ddferry-assembler`:
 *
 * - a FAT32 stick of 512-byte clusters under fusefat (its statfs says 0 blocks) and an
 *   exFAT stick, each already holding a user's files: trip after trip, the reader leaves
 *   room for PC_B's receipt, every import writes it, the user's files stay byte for byte,
 *   the image ends equal to the source on every `+` byte with IMAGE.map's status line `+`,
 *   and no trip says "Interrupted by user";
 * - `plan --medium-size N --fs F`: a chunk file of the planned size fits a stick of N bytes
 *   made by mkfs.vfat / mkfs.exfat (their default clusters), for a source larger than it;
 * - a rescue that mixes a stick trip and a LAN run ends with IMAGE.map's status line `+`,
 *   whatever order PC_B merges the pieces in.
 */
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import {
  ASSEMBLER, MAPTOOL, READER, type Scenario, blocksOf, checkImage, commonMapBlocks, compact, killAll, makeScenario, planScenario, startAssembler, startReader,
} from './harness.js';
import { type Stick, type StickFs, makeStick } from './stick-harness.js';

const KIB = 1 << 10;
const MIB = 1 << 20;

interface Run {
  readonly code: number | null;
  readonly stderr: string;
}

/** Run a command of ours to its end (asynchronously: the FUSE daemon runs in this process's children). */
function run(args: readonly string[]): Promise<Run> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

/** The status line of a mapfile: `[current_pos, current_status, current_pass]`. */
function statusLine(file: string): string[] {
  const line = readFileSync(file, 'latin1').split('\n').find((l) => l !== '' && !l.startsWith('#'))!;
  return line.trim().split(/\s+/);
}

/** Free bytes as the reader counts them: statfs, or fusefat's free clusters where its statfs says 0 blocks. */
function freeBytes(stick: Stick): number {
  const s = statfsSync(stick.mount);
  return s.blocks === 0 && stick.fs === 'fat32' ? s.ffree * 512 : s.bavail * s.bsize;
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** A user's files already on the stick (a folder of photos, a note), with their hashes. */
function putUserFiles(stick: Stick): Map<string, string> {
  const files = new Map<string, string>();
  mkdirSync(join(stick.mount, 'Photos'));
  const put = (rel: string, data: Buffer): void => {
    const fd = openSync(join(stick.mount, rel), 'w');
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    files.set(rel, sha256(join(stick.mount, rel)));
  };
  const photo = Buffer.alloc(MIB + 12345);
  for (let i = 0; i < photo.length; ++i) photo[i] = (i * 131 + (i >> 9)) & 0xff;
  put('Photos/holiday.jpg', photo);
  put('notes.txt', Buffer.from('the user keeps this file on the stick\n'.repeat(100)));
  return files;
}

function expectUserFiles(stick: Stick, files: ReadonlyMap<string, string>): void {
  for (const [rel, hash] of files) expect(sha256(join(stick.mount, rel)), `${rel} on the stick`).to.equal(hash);
}

describe('sticks that never deadlock: real FAT32 (fusefat, 512-byte clusters) and exFAT sticks', function () {
  this.timeout(300_000);
  let s: Scenario | undefined;
  let stick: Stick | undefined;
  afterEach(async () => {
    await killAll();
    await stick?.destroy();
    stick = undefined;
    s?.remove();
    s = undefined;
  });

  const cases: ReadonlyArray<{ fs: StickFs; stickSize: number; cluster?: number; sourceSize: number }> = [
    { fs: 'fat32', stickSize: 34 * MIB, cluster: 512, sourceSize: 162 * MIB },
    { fs: 'exfat', stickSize: 32 * MIB, sourceSize: 140 * MIB },
  ];
  for (const c of cases) {
    it(`${c.fs}: five trips and more, each import writes its receipt, the user's files stay intact, the image ends + (status line too)`, async () => {
      stick = await makeStick({ fs: c.fs, size: c.stickSize, ...(c.cluster === undefined ? {} : { clusterSize: c.cluster }) });
      if (c.fs === 'fat32') expect(statfsSync(stick.mount).blocks, 'fusefat says 0 blocks with 512-byte clusters').to.equal(0);
      const userFiles = putUserFiles(stick);
      s = makeScenario({ size: c.sourceSize, chunkSize: '', bad: [[3 * MIB, 4 * KIB], [40 * MIB - 2 * KIB, 8 * KIB], [90 * MIB + 512, 512]], plan: false });
      planScenario(s, s.source, ['--medium-size', `${c.stickSize / MIB}MiB`, '--fs', c.fs, '--test-mode', s.testMap]);
      const mnt = stick.mount;
      const readerRuns: string[] = [];
      const lowest: number[] = [];
      let trips = 0;
      let complete = false;
      while (!complete) {
        ++trips;
        expect(trips, 'trips').to.be.at.most(12);
        const r = await run([READER, 'rescue', s.job, '--to', mnt, '--token-file', s.token, '-q']);
        readerRuns.push(r.stderr);
        expect(r.code, r.stderr).to.be.oneOf([0, 4]);
        expect(r.stderr).to.not.contain('ERR_STICK_WRITE').and.not.contain('Interrupted by user').and.not.contain('does not tell its size');
        lowest.push(freeBytes(stick));
        if (process.env.DDFERRY_E2E_VERBOSE !== undefined) console.log(`trip ${trips} (${Math.round(freeBytes(stick) / KIB)} KiB free):\n${r.stderr}`);
        if (r.stderr.includes('The rescue is complete')) {
          complete = true;
          break;
        }
        if (r.code === 4) expect(r.stderr).to.contain(`The stick ${mnt} is full`).and.contain('ddferry-assembler import STICK IMAGE --token-file TOKEN     (on PC_B;');
        const i = await run([ASSEMBLER, 'import', mnt, s.image, '--token-file', s.token]);
        expect(i.code, i.stderr).to.equal(0);
        expect(i.stderr).to.contain('receipt: ').and.not.contain('ERR_IMPORT_RECEIPT_WRITE');
        expectUserFiles(stick, userFiles);
      }
      console.log(`      ${c.fs}: ${trips} trips; free after each reader trip (KiB): ${lowest.map((n) => Math.round(n / KIB)).join(' ')}`);
      expect(trips, 'at least five trips, the last one finishing').to.be.at.least(6);
      expect(readerRuns.filter((t) => /The stick .* is full/.test(t)).length).to.be.at.least(5);
      // the stick is never filled past what PC_B's receipt and the margin need
      for (const free of lowest.slice(0, -1)) expect(free).to.be.at.least(MIB);
      const image = checkImage(s);
      expect(compact(image)).to.deep.equal(commonMapBlocks(s));
      expect(image.some((b) => b.status === '-')).to.equal(true);
      expect(statusLine(`${s.image}.map`)[1], 'IMAGE.map status line').to.equal('+');
      expect(statusLine(join(s.job, 'common.map'))[1]).to.equal('+');
      await stick.unmount();
      const fsck = stick.check();
      expect(fsck.ok, fsck.output).to.equal(true);
      await stick.mountAgain();
      expectUserFiles(stick, userFiles);
    });
  }

  it('fat32: a stick its user filled but for 3 MiB: the trip leaves room for the receipt, the import writes it, the next trip frees what was merged', async () => {
    stick = await makeStick({ fs: 'fat32', size: 40 * MIB, clusterSize: 512 });
    const userFiles = putUserFiles(stick);
    // the harness's fill() reads statfs's blocks, which fusefat leaves at 0 here: fill by the FAT's free clusters
    const filler = join(stick.mount, 'Videos.bin');
    const fd = openSync(filler, 'w');
    try {
      const block = Buffer.alloc(MIB, 0xc3);
      for (let want = freeBytes(stick) - 3 * MIB; want > 0; want -= block.length) writeSync(fd, block, 0, Math.min(block.length, want));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    userFiles.set('Videos.bin', sha256(filler));
    expect(freeBytes(stick)).to.be.within(3 * MIB - 64 * KIB, 3 * MIB + 64 * KIB);
    s = makeScenario({ size: 16 * MIB, chunkSize: '4MiB', bad: [[MIB, 4 * KIB]] });
    const mnt = stick.mount;
    const first = await run([READER, 'rescue', s.job, '--to', mnt, '--token-file', s.token, '-q']);
    expect(first.code, first.stderr).to.equal(4);
    const left = freeBytes(stick);
    console.log(`      fat32 filled by its user: ${Math.round(left / KIB)} KiB free after the trip`);
    expect(left).to.be.at.least(MIB);
    const i = await run([ASSEMBLER, 'import', mnt, s.image, '--token-file', s.token]);
    expect(i.code, i.stderr).to.equal(0);
    expect(i.stderr).to.contain('receipt: ').and.not.contain('ERR_IMPORT_RECEIPT_WRITE');
    const second = await run([READER, 'rescue', s.job, '--to', mnt, '--token-file', s.token, '-q']);
    expect(second.stderr).to.match(/merged [1-9]\d* piece\(s\), reclaimed 0/);
    expectUserFiles(stick, userFiles);
  });

  // FAT32 of 64 MiB: the 40 MiB stick above is planned the same way, and mapfile's plan.test.ts checks the
  // chunk against mkfs.vfat's figures for it (writing 60 MiB through fusefat's 512-byte clusters takes long)
  const plans: ReadonlyArray<{ fs: StickFs; size: number; cluster?: number }> = [
    { fs: 'fat32', size: 160 * MIB, cluster: 512 }, { fs: 'exfat', size: 160 * MIB }, { fs: 'exfat', size: 64 * MIB },
  ];
  it('plan --medium-size N --fs F: a chunk file of the planned size fits a fresh stick of N bytes (mkfs.vfat\'s 512-byte clusters, mkfs.exfat)', async () => {
    for (const p of plans) {
      // a source four times the stick: the chunk is what the stick decides
      const maps = mkdtempSync(join(tmpdir(), 'ddferry-plan-'));
      const planned = spawnSync(process.execPath, [MAPTOOL, 'plan', String(4 * p.size), '--medium-size', `${p.size / MIB}MiB`, '--fs', p.fs, maps], { encoding: 'utf8' });
      rmSync(maps, { recursive: true, force: true });
      expect(planned.status, planned.stderr).to.equal(0);
      const chunk = Number(/chunk\(s\) of (\d+) bytes/.exec(planned.stdout)![1]);
      stick = await makeStick({ fs: p.fs, size: p.size, ...(p.cluster === undefined ? {} : { clusterSize: p.cluster }) });
      try {
        // what `ddrescue -m chunkNNNN.map -o 0 ...` writes onto the stick: a file of the chunk's size
        const fd = openSync(join(stick.mount, 'chunk0000.raw'), 'w');
        try {
          const block = Buffer.alloc(MIB, 0x5a);
          for (let at = 0; at < chunk; at += block.length) expect(writeSync(fd, block, 0, Math.min(block.length, chunk - at), at), `${p.fs} ${p.size / MIB} MiB at ${at}`).to.equal(Math.min(block.length, chunk - at));
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        console.log(`      ${p.fs} ${p.size / MIB} MiB: chunk ${chunk / MIB} MiB written, ${Math.round(freeBytes(stick) / KIB)} KiB left`);
      } finally {
        await stick.destroy();
        stick = undefined;
      }
    }
  });
});

describe('GNU-true endings: a rescue that mixes a stick trip and a LAN run', function () {
  this.timeout(240_000);
  let s: Scenario | undefined;
  afterEach(async () => {
    await killAll();
    s?.remove();
    s = undefined;
  });

  it('ends with IMAGE.map\'s status line +, bad areas left, when the stick is imported after the LAN run that finished', async () => {
    s = makeScenario({ size: 24 * MIB, chunkSize: '4MiB', bad: [[2 * MIB, 64 * KIB], [9 * MIB - 4 * KIB, 8 * KIB], [17 * MIB, 4 * KIB]] });
    const folder = join(s.dir, 'stick');
    mkdirSync(folder);
    // PC_A, trip 1 onto the stick: everything but scraping (-n)
    const trip = await run([READER, 'rescue', s.job, '--to', folder, '--token-file', s.token, '-q', '-n']);
    expect(trip.code, trip.stderr).to.equal(0);
    // then over the LAN: the scraping, to the end
    const a = await startAssembler(s);
    const lan = startReader(s, a.url);
    const e = await lan.exited();
    expect(e.code, lan.stderr()).to.equal(0);
    expect(lan.stderr()).to.not.contain('Interrupted by user');
    a.child.kill('SIGINT');
    await a.exited();
    expect(statusLine(`${s.image}.map`)[1], 'after the LAN run').to.equal('+');
    // PC_B imports the stick afterwards: its older pieces leave the status line
    const imp = await run([ASSEMBLER, 'import', folder, s.image, '--token-file', s.token]);
    expect(imp.code, imp.stderr).to.equal(0);
    expect(statusLine(`${s.image}.map`)[1], 'after the import of the older stick').to.equal('+');
    const last = await run([READER, 'rescue', s.job, '--to', folder, '--token-file', s.token, '-q']);
    expect(last.stderr).to.contain('The rescue is complete');
    const image = checkImage(s);
    expect(compact(image)).to.deep.equal(commonMapBlocks(s));
    expect(image.some((b) => b.status === '-')).to.equal(true);
    expect(statusLine(`${s.image}.map`)[1]).to.equal('+');
    expect(readdirSync(join(s.job, 'ledger'))).to.deep.equal([]);
    expect(blocksOf(readFileSync(`${s.image}.map`, 'latin1')).length).to.be.at.least(3);
  });
});
