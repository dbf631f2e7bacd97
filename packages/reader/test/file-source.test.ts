/**
 * The file source's check after a failed read (ddrescue's `stat(infile)`: "Input file
 * disappeared"): true while the name leads to the file, false once it does not.
 */
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { FileSource } from '../src/source/file-source.js';

describe('FileSource.stillThere', function () {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-file-source-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is true while the source is there, false once it is deleted or moved away', function () {
    const a = join(dir, 'a.img');
    const b = join(dir, 'b.img');
    writeFileSync(a, Buffer.alloc(4096, 1));
    writeFileSync(b, Buffer.alloc(4096, 2));
    const sa = new FileSource(a);
    const sb = new FileSource(b);
    try {
      expect(sa.stillThere()).to.equal(true);
      unlinkSync(a);
      expect(sa.stillThere(), 'deleted').to.equal(false);
      renameSync(b, join(dir, 'moved.img'));
      expect(sb.stillThere(), 'moved away').to.equal(false);
      writeFileSync(a, Buffer.alloc(512));
      expect(sa.stillThere(), 'a file under its name again').to.equal(true);
    } finally {
      sa.close();
      sb.close();
    }
  });
});
