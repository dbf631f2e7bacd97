import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { expect } from 'chai';

import { ProtocolError } from '../src/errors.js';
import { checkRealFolder, openSafeFile, readSafeFile, readSafeFileInto } from '../src/safe-file.js';

async function expectCode(p: Promise<unknown>, code: string, file: string): Promise<ProtocolError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as ProtocolError).code).to.equal(code);
    expect((err as ProtocolError).file).to.equal(file);
    return err as ProtocolError;
  }
  return expect.fail(`expected ${code}`);
}

describe('safe-file', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ddferry-safe-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('#openSafeFile', () => {
    it('opens a regular file', async () => {
      await writeFile(join(dir, 'f'), 'hello');
      const h = await openSafeFile(join(dir, 'f'), { maxBytes: 5 });
      try {
        expect((await h.stat()).size).to.equal(5);
      } finally {
        await h.close();
      }
    });

    it('refuses a symbolic link, even to a regular file', async () => {
      await writeFile(join(dir, 'f'), 'hello');
      await symlink(join(dir, 'f'), join(dir, 'l'));
      const err = await expectCode(openSafeFile(join(dir, 'l'), { what: 'the bundle' }), 'ERR_FILE_SYMLINK', join(dir, 'l'));
      expect(err.message).to.contain('The bundle is a symbolic link');
    });

    it('refuses a FIFO at once, without a writer and without blocking', async () => {
      execFileSync('mkfifo', [join(dir, 'p')]);
      const started = Date.now();
      const err = await expectCode(openSafeFile(join(dir, 'p')), 'ERR_FILE_NOT_REGULAR', join(dir, 'p'));
      expect(err.message).to.contain('FIFO');
      expect(Date.now() - started).to.be.below(2000);
    });

    it('refuses a folder, a socket and a character device', async () => {
      await mkdir(join(dir, 'd'));
      await expectCode(openSafeFile(join(dir, 'd')), 'ERR_FILE_NOT_REGULAR', join(dir, 'd'));
      const server = createServer();
      await new Promise<void>((ok) => server.listen(join(dir, 's'), ok));
      try {
        // a socket cannot be opened at all: the system says so (ENXIO)
        await openSafeFile(join(dir, 's')).then(() => expect.fail('opened a socket'), (err: unknown) => {
          expect((err as { code?: string }).code).to.be.oneOf(['ENXIO', 'ERR_FILE_NOT_REGULAR']);
        });
      } finally {
        server.close();
      }
      await expectCode(openSafeFile('/dev/null'), 'ERR_FILE_NOT_REGULAR', '/dev/null');
    });

    it('refuses a file over maxBytes, accepts one just at it', async () => {
      await writeFile(join(dir, 'f'), 'x'.repeat(10));
      await (await openSafeFile(join(dir, 'f'), { maxBytes: 10 })).close();
      const err = await expectCode(openSafeFile(join(dir, 'f'), { maxBytes: 9 }), 'ERR_FILE_TOO_LARGE', join(dir, 'f'));
      expect(err.limit).to.equal(9);
    });

    it('passes system errors unchanged', async () => {
      await openSafeFile(join(dir, 'none')).then(() => expect.fail('opened nothing'), (err: unknown) => {
        expect((err as { code?: string }).code).to.equal('ENOENT');
      });
    });
  });

  describe('#readSafeFile', () => {
    it('reads a small file whole, at and over the limit', async () => {
      await writeFile(join(dir, 'f'), 'abc');
      expect((await readSafeFile(join(dir, 'f'), { maxBytes: 3 })).toString()).to.equal('abc');
      await expectCode(readSafeFile(join(dir, 'f'), { maxBytes: 2 }), 'ERR_FILE_TOO_LARGE', join(dir, 'f'));
      await writeFile(join(dir, 'e'), '');
      expect((await readSafeFile(join(dir, 'e'), { maxBytes: 3 })).length).to.equal(0);
    });
  });

  describe('#readSafeFileInto', () => {
    const content = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i % 251) + 1));

    it('yields the file in slices of its buffer: the first slice, then chunks; a shorter file ends early', async () => {
      await writeFile(join(dir, 'f'), content(100));
      const buf = new Uint8Array(80);
      const sizes: number[] = [];
      for await (const slice of readSafeFileInto(join(dir, 'f'), buf, { firstBytes: 10, chunkBytes: 32 })) {
        expect(slice.buffer).to.equal(buf.buffer);
        sizes.push(slice.length);
      }
      expect(sizes).to.deep.equal([10, 32, 32, 6]);
      expect(Buffer.from(buf).equals(content(80))).to.equal(true);
      const big = new Uint8Array(200);
      const got: number[] = [];
      for await (const slice of readSafeFileInto(join(dir, 'f'), big, { firstBytes: 10, chunkBytes: 64 })) got.push(slice.length);
      expect(got).to.deep.equal([10, 64, 26]);
      expect(Buffer.from(big.subarray(0, 100)).equals(content(100))).to.equal(true);
      await writeFile(join(dir, 'e'), '');
      for await (const slice of readSafeFileInto(join(dir, 'e'), buf)) expect.fail(`yielded ${slice.length} bytes of an empty file`);
      await symlink(join(dir, 'f'), join(dir, 'l'));
      const it = readSafeFileInto(join(dir, 'l'), buf);
      await expectCode(it.next(), 'ERR_FILE_SYMLINK', join(dir, 'l'));
    });

    it('reads the next slice while the caller still works on this one', async () => {
      await writeFile(join(dir, 'f'), content(64));
      const buf = new Uint8Array(64);
      const it = readSafeFileInto(join(dir, 'f'), buf, { firstBytes: 16, chunkBytes: 16 });
      const first = await it.next();
      expect(first.value?.length).to.equal(16);
      await sleep(100); // the caller works; the reading does not wait for its next()
      expect(Buffer.from(buf.subarray(16, 32)).equals(content(64).subarray(16, 32))).to.equal(true);
      expect(Buffer.from(buf.subarray(32)).every((b) => b === 0)).to.equal(true); // one slice ahead, no more
      let rest = 0;
      for (let r = await it.next(); r.done !== true; r = await it.next()) rest += r.value.length;
      expect(rest).to.equal(48);
    });

    it('a caller that stops early: the read ahead lands, then the file is closed', async () => {
      await writeFile(join(dir, 'f'), content(64));
      const buf = new Uint8Array(64);
      for await (const slice of readSafeFileInto(join(dir, 'f'), buf, { firstBytes: 16, chunkBytes: 16 })) {
        expect(slice.length).to.equal(16);
        break;
      }
      expect(Buffer.from(buf.subarray(16, 32)).equals(content(64).subarray(16, 32))).to.equal(true);
      expect(Buffer.from(buf.subarray(32)).every((b) => b === 0)).to.equal(true);
    });
  });

  describe('#checkRealFolder', () => {
    it('says whether a real folder is there, refuses a link or a file there', async () => {
      expect(await checkRealFolder(dir)).to.equal(true);
      expect(await checkRealFolder(join(dir, 'none'))).to.equal(false);
      await symlink(tmpdir(), join(dir, 'l'));
      await expectCode(checkRealFolder(join(dir, 'l'), 'receipts'), 'ERR_FILE_SYMLINK', join(dir, 'l'));
      await writeFile(join(dir, 'f'), '');
      await expectCode(checkRealFolder(join(dir, 'f')), 'ERR_FILE_NOT_FOLDER', join(dir, 'f'));
    });
  });
});
