/**
 * The stick harness itself: a FAT32 and an exFAT stick on loop devices through FUSE mount,
 * show the expected mountinfo type, keep an fsynced file across an unmount, report free
 * space that follows writes, and fail a write when full (exFAT: ENOSPC; fusefat: EPERM,
 * see the table in stick-harness.ts).
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';

import { type Stick, type StickFs, makeStick } from './stick-harness.js';

const MiB = 1 << 20;

function writeDurably(file: string, data: Buffer): void {
  const fd = openSync(file, 'wx');
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

for (const fs of ['fat32', 'exfat'] as const satisfies readonly StickFs[]) {
  describe(`stick harness: ${fs} on a loop device through FUSE`, function () {
    this.timeout(120000);
    let stick: Stick | undefined;
    afterEach(async function () {
      await stick?.destroy();
      stick = undefined;
    });

    it('mounts, keeps a file across remount, and refuses a write when full', async function () {
      stick = await makeStick({ fs, size: 32 * MiB });
      expect(stick.mountType()).to.equal(fs === 'fat32' ? 'fuse.fusefat' : 'fuseblk');
      const free0 = stick.free();
      expect(free0, 'free space of an empty 32 MiB stick').to.be.within(28 * MiB, 32 * MiB);

      const data = Buffer.alloc(3 * MiB + 123);
      for (let i = 0; i < data.length; ++i) data[i] = (i * 31 + 7) & 0xff;
      mkdirSync(join(stick.mount, 'ddferry', 'r1'), { recursive: true });
      const tmp = join(stick.mount, 'ddferry', 'r1', '.piece-000001.tar.tmp');
      const file = join(stick.mount, 'ddferry', 'r1', 'piece-000001.tar');
      writeDurably(tmp, data);
      renameSync(tmp, file);
      const dirFd = openSync(join(stick.mount, 'ddferry', 'r1'), 'r');
      fsyncSync(dirFd);
      closeSync(dirFd);
      const free1 = stick.free();
      expect(free0 - free1, 'statfs follows a 3 MiB write').to.be.within(3 * MiB, 3 * MiB + 256 * 1024);

      await stick.remount();
      expect(stick.mounted).to.equal(true);
      expect(existsSync(tmp), 'the temporary name is gone after the rename').to.equal(false);
      expect(readFileSync(file).equals(data), 'the file reads back the same after remount').to.equal(true);

      // write until it fails: a short write first, then the error
      const fd = openSync(join(stick.mount, 'big.bin'), 'w');
      let written = 0;
      let code: string | undefined;
      try {
        const block = Buffer.alloc(MiB, 1);
        for (let i = 0; i < 64 && code === undefined; ++i) {
          try {
            written += writeSync(fd, block);
          } catch (err) {
            code = (err as NodeJS.ErrnoException).code;
          }
        }
      } finally {
        closeSync(fd);
      }
      expect(code, `a write to a full ${fs} stick fails (after ${written} bytes)`).to.equal(fs === 'fat32' ? 'EPERM' : 'ENOSPC');
      expect(written, 'what fitted was written').to.be.within(free1 - 2 * MiB, free1);
      expect(stick.free(), 'statfs says full').to.be.below(256 * 1024);

      writeFileSync(join(stick.mount, 'big.bin'), '');
      expect(stick.free(), 'truncating the file frees the space').to.be.above(free1 - MiB);

      await stick.unmount();
      const fsck = stick.check();
      expect(fsck.ok, `fsck after the run:\n${fsck.output}`).to.equal(true);
      await stick.mountAgain();
      expect(readFileSync(file).equals(data)).to.equal(true);
    });
  });
}

describe('stick harness: the fusefat quirks stick-harness.ts documents (the reader and assembler rely on them)', function () {
  this.timeout(120000);
  let stick: Stick | undefined;
  afterEach(async function () {
    await stick?.destroy();
    stick = undefined;
  });

  it('with 512-byte clusters statfs says 0 blocks; a renamed folder loses its files; the volume label is a file at the root', async function () {
    stick = await makeStick({ fs: 'fat32', size: 32 * MiB, clusterSize: 512 });
    const st = statfsSync(stick.mount);
    expect([st.blocks, st.bavail], 'statfs blocks and bavail with 512-byte clusters').to.deep.equal([0, 0]);
    expect(st.files, 'statfs files = clusters').to.be.above(60000);
    expect(readdirSync(stick.mount), 'the label TESTSTICK listed as a file, in 8.3 form').to.deep.equal(['TESTSTIC.K']);
    mkdirSync(join(stick.mount, 'a'));
    writeFileSync(join(stick.mount, 'a', 'f'), 'data');
    renameSync(join(stick.mount, 'a'), join(stick.mount, 'b'));
    await stick.remount();
    expect(readdirSync(join(stick.mount, 'b')), 'the files of a renamed folder (fusefat loses them)').to.deep.equal([]);
  });
});
