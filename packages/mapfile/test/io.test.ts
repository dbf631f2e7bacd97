import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { MapfileError } from '../src/errors.js';
import { readMapfile, saveMapfile } from '../src/io.js';

describe('io', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-io-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe('#saveMapfile', () => {
    it('replaces the file atomically and leaves no temporary file', async () => {
      const f = join(dir, 'm.map');
      await saveMapfile(f, 'one\n');
      await saveMapfile(f, 'two\n');
      expect(readFileSync(f, 'utf8')).to.equal('two\n');
      expect(readdirSync(dir)).to.deep.equal(['m.map']);
    });

    it('keeps the previous version as .bak when asked, as a separate file', async () => {
      const f = join(dir, 'm.map');
      await saveMapfile(f, 'one\n', { backup: true });
      await saveMapfile(f, 'two\n', { backup: true });
      await saveMapfile(f, 'three\n', { backup: true });
      expect(readFileSync(f, 'utf8')).to.equal('three\n');
      expect(readFileSync(`${f}.bak`, 'utf8')).to.equal('two\n');
      expect(statSync(f).ino).to.not.equal(statSync(`${f}.bak`).ino);
    });

    it('refuses to replace an existing file when exclusive, with a coded error', async () => {
      const f = join(dir, 'm.map');
      writeFileSync(f, 'old\n');
      const err = await saveMapfile(f, 'new\n', { exclusive: true }).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(MapfileError).with.property('code', 'ERR_MAPFILE_WRITE');
      expect(readFileSync(f, 'utf8')).to.equal('old\n');
      expect(readdirSync(dir)).to.deep.equal(['m.map']);
    });

    it('fails with ERR_MAPFILE_WRITE naming the file when the folder is missing', async () => {
      const f = join(dir, 'missing', 'm.map');
      const err = await saveMapfile(f, 'x').then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(MapfileError).with.property('file', f);
      expect((err as MapfileError).code).to.equal('ERR_MAPFILE_WRITE');
    });
  });

  describe('#readMapfile', () => {
    it('names a missing file with ERR_MAPFILE_NOT_FOUND', async () => {
      const err = await readMapfile(join(dir, 'none.map')).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(MapfileError).with.property('code', 'ERR_MAPFILE_NOT_FOUND');
    });

    it('names file and line of a malformed mapfile', async () => {
      const f = join(dir, 'bad.map');
      writeFileSync(f, '# c\n0 +\n0 512 +\n600 512 -\n');
      const err = await readMapfile(f).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(MapfileError);
      expect(err).to.include({ code: 'ERR_MAPFILE_NOT_CONTIGUOUS', file: f, line: 4 });
    });
  });
});
