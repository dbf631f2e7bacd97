/**
 * The faultfs test helper behaves like a failing disk: good sectors read back the
 * backing data, a read that reaches a bad sector is cut short at the last good sector
 * boundary, and the next read fails with a real EIO; O_DIRECT works; vanish mode gives
 * ENXIO; and the daemon logs exactly what reached it. GNU ddrescue -d on it marks
 * exactly the bad sectors.
 *
 * Needs root, /dev/fuse, gcc, pkg-config, libfuse3 and GNU ddrescue; fails (never
 * skips) when one is missing.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { FAULTFS_MAX_READ, mountFaultFs } from '../helpers/faultfs.js';
import type { FaultFs } from '../helpers/faultfs.js';

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
      { offset: 0, size: 65536, result: '65536' },
      { offset: 65536, size: 65536, result: '4096' },
      { offset: 69632, size: 65536, result: 'EIO' },
      { offset: 5, size: 1000, result: '1000' },
      { offset: 393216, size: FAULTFS_MAX_READ, result: String(FAULTFS_MAX_READ) },
      { offset: 393216 + FAULTFS_MAX_READ, size: FAULTFS_MAX_READ, result: String(FAULTFS_MAX_READ) },
      { offset: 393216 + 2 * FAULTFS_MAX_READ, size: FAULTFS_MAX_READ, result: String(FAULTFS_MAX_READ) },
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
      { offset: 0, size: 65536, result: '65536' },
      { offset: 65536, size: 65536, result: '4096' },
      { offset: 69632, size: 512, result: 'EIO' },
      { offset: 70144, size: 512, result: '512' },
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
      { offset: 0, size: 65536, result: '65536' },
      { offset: 65536, size: 65536, result: '4096' },
      { offset: 69632, size: 65536, result: 'EIO' },
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
        { offset: 0, size: 512, result: '512' },
        { offset: 512, size: 512, result: '512' },
        { offset: 1024, size: 512, result: 'ENXIO' },
        { offset: 0, size: 512, result: 'ENXIO' },
      ]);
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
