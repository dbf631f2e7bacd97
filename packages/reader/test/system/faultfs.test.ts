/**
 * The faultfs test helper behaves like a failing disk: good sectors read back the
 * backing data, a read that reaches a bad sector is cut short at the last good sector
 * boundary, and the next read fails with a real EIO; O_DIRECT works; vanish mode gives
 * ENXIO; the daemon logs exactly what reached it and which process asked; slow ranges
 * hold a read in the kernel (not even SIGKILL ends it early) while stat() still answers.
 * GNU ddrescue -d on it marks exactly the bad sectors.
 *
 * Needs root, /dev/fuse, gcc, pkg-config, libfuse3 and GNU ddrescue; fails (never
 * skips) when one is missing.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { FAULTFS_MAX_READ, mountFaultFs } from '../helpers/faultfs.js';
import type { FaultFs, FaultFsSlowRead } from '../helpers/faultfs.js';

const SIZE = 1 << 20;
/** One bad sector at 64 KiB + 4 KiB, and bytes 300000..300999 (sectors 585..587, 299520..301055). */
const BAD = [{ pos: 69632, size: 512 }, { pos: 300000, size: 1000 }] as const;

async function expectReject(promise: Promise<unknown>, code: string): Promise<void> {
  let error: unknown;
  try {
    await promise;
  } catch (caught) {
    error = caught;
  }
  expect(error, `expected ${code}`).to.be.instanceOf(Error);
  expect((error as NodeJS.ErrnoException).code).to.equal(code);
}

/**
 * A page-aligned buffer, as O_DIRECT on a real block device needs: Node's Buffers are
 * only 8- or 16-byte aligned (O_DIRECT reads into them fail with EINVAL on ext4), but a
 * WebAssembly.Memory is page-aligned. (FUSE direct_io itself accepts any alignment.)
 */
declare const WebAssembly: { Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer } }; // not in lib es2023

function alignedBuffer(size: number): Buffer {
  const memory = new WebAssembly.Memory({ initial: Math.ceil(size / 65536) });
  return Buffer.from(memory.buffer, 0, size);
}

describe('faultfs test helper (FUSE file with bad sectors)', function () {
  let dir: string;
  let backing: string;
  let data: Buffer;
  let fs: FaultFs;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-faultfs-test-'));
    backing = join(dir, 'backing.img');
    data = randomBytes(SIZE);
    writeFileSync(backing, data);
    fs = await mountFaultFs({ backing, bad: BAD });
  });

  after(async function () {
    await fs?.unmount();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves one read-only file with the size and good data of the backing file', async function () {
    const info = await stat(fs.path);
    expect(info.size).to.equal(SIZE);
    expect(info.mode & 0o777).to.equal(0o444);
    const handle = await open(fs.path, 'r');
    try {
      const buf = Buffer.alloc(65536);
      const { bytesRead } = await handle.read(buf, 0, 65536, 0);
      expect(bytesRead).to.equal(65536);
      expect(buf.equals(data.subarray(0, 65536))).to.equal(true);
      const tail = await handle.read(Buffer.alloc(65536), 0, 65536, SIZE - 1000);
      expect(tail.bytesRead).to.equal(1000);
      expect(tail.buffer.subarray(0, 1000).equals(data.subarray(SIZE - 1000))).to.equal(true);
    } finally {
      await handle.close();
    }
    await expectReject(open(fs.path, 'r+'), 'EROFS');
  });

  it('cuts a 64 KiB read short at a bad sector at +4096, then the next read fails with EIO', async function () {
    const handle = await open(fs.path, 'r');
    try {
      const buf = Buffer.alloc(65536);
      const { bytesRead } = await handle.read(buf, 0, 65536, 65536);
      expect(bytesRead).to.equal(4096);
      expect(buf.subarray(0, 4096).equals(data.subarray(65536, 69632))).to.equal(true);
      await expectReject(handle.read(buf, 0, 65536, 69632), 'EIO');
      // The sector after the bad one is good again.
      const after = await handle.read(buf, 0, 65536, 70144);
      expect(after.bytesRead).to.equal(65536);
      expect(buf.equals(data.subarray(70144, 70144 + 65536))).to.equal(true);
    } finally {
      await handle.close();
    }
  });

  it('fails a sector-sized read of a bad sector with EIO, and rounds short reads down to a sector', async function () {
    const handle = await open(fs.path, 'r');
    try {
      const buf = Buffer.alloc(4096);
      await expectReject(handle.read(buf, 0, 512, 69632), 'EIO');
      // Bad bytes from 300000 (inside sector 585, which starts at 299520): the sector is bad.
      await expectReject(handle.read(buf, 0, 512, 299520), 'EIO');
      await expectReject(handle.read(buf, 0, 512, 300544), 'EIO');
      expect((await handle.read(buf, 0, 512, 301056)).bytesRead).to.equal(512);
      // A read from 297984 reaches the first bad byte at 300000: 299520 - 297984 good bytes.
      const short = await handle.read(buf, 0, 4096, 297984);
      expect(short.bytesRead).to.equal(1536);
      expect(buf.subarray(0, 1536).equals(data.subarray(297984, 299520))).to.equal(true);
    } finally {
      await handle.close();
    }
  });

  it('logs every read that reaches the daemon with its offset, size and result', async function () {
    const before = (await fs.readLog()).length;
    const handle = await open(fs.path, 'r');
    try {
      const buf = Buffer.alloc(3 * FAULTFS_MAX_READ);
      await handle.read(buf, 0, 65536, 0);
      await handle.read(buf, 0, 65536, 65536);
      await expectReject(handle.read(buf, 0, 65536, 69632), 'EIO');
      await handle.read(buf, 0, 1000, 5);
      // Larger than max_read: split by the kernel into max_read pieces.
      await handle.read(buf, 0, 3 * FAULTFS_MAX_READ, 393216);
    } finally {
      await handle.close();
    }
    expect((await fs.readLog()).slice(before)).to.deep.equal([
      { offset: 0, size: 65536, result: '65536', pid: process.pid },
      { offset: 65536, size: 65536, result: '4096', pid: process.pid },
      { offset: 69632, size: 65536, result: 'EIO', pid: process.pid },
      { offset: 5, size: 1000, result: '1000', pid: process.pid },
      { offset: 393216, size: FAULTFS_MAX_READ, result: String(FAULTFS_MAX_READ), pid: process.pid },
      { offset: 393216 + FAULTFS_MAX_READ, size: FAULTFS_MAX_READ, result: String(FAULTFS_MAX_READ), pid: process.pid },
      { offset: 393216 + 2 * FAULTFS_MAX_READ, size: FAULTFS_MAX_READ, result: String(FAULTFS_MAX_READ), pid: process.pid },
    ]);
  });

  it('reads with O_DIRECT into aligned buffers, each pread reaching the daemon unchanged', async function () {
    const before = (await fs.readLog()).length;
    const handle = await open(fs.path, constants.O_RDONLY | constants.O_DIRECT);
    try {
      const buf = alignedBuffer(65536);
      expect((await handle.read(buf, 0, 65536, 0)).bytesRead).to.equal(65536);
      expect(buf.equals(data.subarray(0, 65536))).to.equal(true);
      expect((await handle.read(buf, 0, 65536, 65536)).bytesRead).to.equal(4096);
      expect(buf.subarray(0, 4096).equals(data.subarray(65536, 69632))).to.equal(true);
      await expectReject(handle.read(buf, 0, 512, 69632), 'EIO');
      expect((await handle.read(buf, 0, 512, 70144)).bytesRead).to.equal(512);
    } finally {
      await handle.close();
    }
    expect((await fs.readLog()).slice(before)).to.deep.equal([
      { offset: 0, size: 65536, result: '65536', pid: process.pid },
      { offset: 65536, size: 65536, result: '4096', pid: process.pid },
      { offset: 69632, size: 512, result: 'EIO', pid: process.pid },
      { offset: 70144, size: 512, result: '512', pid: process.pid },
    ]);
  });

  it('dd bs=64k iflag=direct stops with EIO after the good prefix', async function () {
    const out = join(dir, 'dd.out');
    const before = (await fs.readLog()).length;
    const dd = spawnSync('dd', [`if=${fs.path}`, `of=${out}`, 'bs=64k', 'iflag=direct'], { encoding: 'utf8' });
    expect(dd.error).to.equal(undefined);
    expect(dd.status, dd.stderr).to.equal(1);
    expect(dd.stderr).to.contain('Input/output error');
    expect(readFileSync(out).equals(data.subarray(0, 69632))).to.equal(true);
    expect((await fs.readLog()).slice(before)).to.deep.equal([
      { offset: 0, size: 65536, result: '65536', pid: dd.pid },
      { offset: 65536, size: 65536, result: '4096', pid: dd.pid },
      { offset: 69632, size: 65536, result: 'EIO', pid: dd.pid },
    ]);
  });

  it('GNU ddrescue -d marks exactly the bad sectors bad-sector (-)', async function () {
    const out = join(dir, 'rescued.img');
    const map = join(dir, 'rescued.map');
    const run = spawnSync('ddrescue', ['-d', '-q', fs.path, out, map], { encoding: 'utf8' });
    expect(run.error, 'GNU ddrescue must be installed (apt-get install -y gddrescue)').to.equal(undefined);
    expect(run.status, run.stderr).to.equal(0);
    const blocks = readFileSync(map, 'utf8').split('\n')
      .filter((line) => /^0x/.test(line))
      .slice(1) // the current_pos line
      .map((line) => {
        const [pos, size, status] = line.trim().split(/\s+/);
        return { pos: Number(pos), size: Number(size), status };
      });
    expect(blocks).to.deep.equal([
      { pos: 0, size: 69632, status: '+' },
      { pos: 69632, size: 512, status: '-' },
      { pos: 70144, size: 299520 - 70144, status: '+' },
      { pos: 299520, size: 1536, status: '-' },
      { pos: 301056, size: SIZE - 301056, status: '+' },
    ]);
    const rescued = readFileSync(out);
    expect(rescued.subarray(0, 69632).equals(data.subarray(0, 69632))).to.equal(true);
    expect(rescued.subarray(70144, 299520).equals(data.subarray(70144, 299520))).to.equal(true);
    expect(rescued.subarray(301056).equals(data.subarray(301056))).to.equal(true);
  });

  describe('vanish mode', function () {
    let gone: FaultFs;

    before(async function () {
      gone = await mountFaultFs({ backing, bad: [], vanishAfterReads: 2 });
    });

    after(async function () {
      await gone?.unmount();
    });

    it('fails every read after the first N with ENXIO while stat keeps working', async function () {
      const handle = await open(gone.path, 'r');
      try {
        const buf = Buffer.alloc(512);
        expect((await handle.read(buf, 0, 512, 0)).bytesRead).to.equal(512);
        expect((await handle.read(buf, 0, 512, 512)).bytesRead).to.equal(512);
        await expectReject(handle.read(buf, 0, 512, 1024), 'ENXIO');
        await expectReject(handle.read(buf, 0, 512, 0), 'ENXIO');
        expect((await handle.stat()).size).to.equal(SIZE);
      } finally {
        await handle.close();
      }
      expect((await stat(gone.path)).size).to.equal(SIZE);
      expect(await gone.readLog()).to.deep.equal([
        { offset: 0, size: 512, result: '512', pid: process.pid },
        { offset: 512, size: 512, result: '512', pid: process.pid },
        { offset: 1024, size: 512, result: 'ENXIO', pid: process.pid },
        { offset: 0, size: 512, result: 'ENXIO', pid: process.pid },
      ]);
    });
  });

  describe('slow ranges', function () {
    /** Reads of sector 256 sleep 1.5 s (the first two), of [512 KiB, +4 KiB) 3 s (all). */
    const ONCE = { pos: 131072, size: 512, delayMs: 1500, times: 2 };
    const ALWAYS = { pos: 524288, size: 4096, delayMs: 3000 };
    let slow: FaultFs;

    before(async function () {
      slow = await mountFaultFs({ backing, bad: BAD, slow: [ONCE, ALWAYS] });
    });

    after(async function () {
      await slow?.unmount();
    });

    async function startedSlowRead(fs: FaultFs, pid: number, offset: number): Promise<FaultFsSlowRead> {
      for (let i = 0; i < 200; ++i) {
        const found = (await fs.slowReads()).find((r) => r.pid === pid && r.offset === offset);
        if (found) return found;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`no delayed read at ${offset} by pid ${pid} started in 5 s; slow log: ${JSON.stringify(await fs.slowReads())}`);
    }

    it('answers a read overlapping a slow range after its delay, stat() at once meanwhile, and reads one at a time', async function () {
      const handle = await open(slow.path, 'r');
      try {
        const buf = Buffer.alloc(4096);
        const other = Buffer.alloc(4096);
        const t0 = Date.now();
        const order: string[] = [];
        const hung = handle.read(buf, 0, 4096, 129024).then((r) => {
          order.push('slow read');
          return r;
        });
        const started = await startedSlowRead(slow, process.pid, 129024);
        expect(started).to.deep.equal({ offset: 129024, size: 4096, pid: process.pid, delayMs: 1500 });
        expect((await slow.readLog()).some((r) => r.offset === 129024), 'not answered while it sleeps').to.equal(false);
        expect((await stat(slow.path)).size).to.equal(SIZE);
        order.push('stat');
        // a read elsewhere waits for the sleeping one, as in a disk's queue
        let elsewhereAt = 0;
        const queued = handle.read(other, 0, 4096, 0).then(() => {
          elsewhereAt = Date.now() - t0;
          order.push('read elsewhere');
        });
        const { bytesRead } = await hung;
        await queued;
        expect(Date.now() - t0, 'the read took its delay').to.be.at.least(1500);
        expect(bytesRead).to.equal(4096);
        expect(buf.equals(data.subarray(129024, 133120))).to.equal(true);
        expect(other.equals(data.subarray(0, 4096))).to.equal(true);
        // the read elsewhere was answered only once the sleeping one was done (the daemon's lock); which of the two
        // replies the kernel hands back first is a race between the daemon's threads, so the order is not asserted
        expect(order[0]).to.equal('stat');
        expect(elsewhereAt, 'the read elsewhere waited for the sleeping one').to.be.at.least(1500);
        // the second read of the range is slow too, the third no longer (times: 2)
        await handle.read(buf, 0, 512, 131072);
        await handle.read(buf, 0, 512, 131072);
        expect((await slow.slowReads()).filter((r) => r.offset <= 131072 && r.offset + r.size > 131072)).to.have.length(2);
      } finally {
        await handle.close();
      }
      const log = await slow.readLog();
      expect(log.slice(0, 2)).to.deep.equal([
        { offset: 129024, size: 4096, result: '4096', pid: process.pid },
        { offset: 0, size: 4096, result: '4096', pid: process.pid },
      ]);
    });

    it('keeps a process whose read sleeps in the daemon alive through SIGKILL until the read is answered', async function () {
      const dd = spawn('dd', [`if=${slow.path}`, 'of=/dev/null', 'bs=4096', 'skip=128', 'count=1', 'iflag=direct'], { stdio: 'ignore' });
      const exited = new Promise<NodeJS.Signals | null>((resolve) => dd.once('exit', (_code, signal) => resolve(signal)));
      expect(dd.pid, 'dd started').to.be.a('number');
      await startedSlowRead(slow, dd.pid!, ALWAYS.pos);
      dd.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 1000));
      expect(dd.exitCode === null && dd.signalCode === null, 'dd still in its read 1 s after SIGKILL').to.equal(true);
      expect((await slow.readLog()).some((r) => r.pid === dd.pid), 'the read not yet answered').to.equal(false);
      expect(await exited).to.equal('SIGKILL');
      expect((await slow.readLog()).filter((r) => r.pid === dd.pid)).to.deep.equal([{ offset: ALWAYS.pos, size: 4096, result: '4096', pid: dd.pid }]);
    });

    it('delays every read by delayAllMs', async function () {
      const all = await mountFaultFs({ backing, bad: [], delayAllMs: 300 });
      try {
        const handle = await open(all.path, 'r');
        try {
          const t0 = Date.now();
          await handle.read(Buffer.alloc(512), 0, 512, 0);
          await handle.read(Buffer.alloc(512), 0, 512, SIZE - 512);
          expect(Date.now() - t0).to.be.at.least(600);
        } finally {
          await handle.close();
        }
        expect(await all.slowReads()).to.deep.equal([
          { offset: 0, size: 512, pid: process.pid, delayMs: 300 },
          { offset: SIZE - 512, size: 512, pid: process.pid, delayMs: 300 },
        ]);
      } finally {
        await all.unmount();
      }
    });
  });

  describe('unmount', function () {
    it('removes the mount and its temp dir, and is idempotent', async function () {
      const once = await mountFaultFs({ backing, bad: [] });
      const mountinfo = (): string => readFileSync('/proc/self/mountinfo', 'utf8');
      expect(mountinfo()).to.contain(` ${once.mountpoint} `);
      await once.unmount();
      await once.unmount();
      expect(mountinfo()).not.to.contain(` ${once.mountpoint} `);
      await expectReject(stat(once.mountpoint), 'ENOENT');
    });
  });
});
