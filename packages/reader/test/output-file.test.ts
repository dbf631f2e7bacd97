import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { expect } from 'chai';

import { FLUSH_HINT_BYTES, OutputFile } from '../src/engine/output-file.js';

const MiB = 1024 * 1024;

describe('OutputFile', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ddferry-output-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('hints the kernel to write back every FLUSH_HINT_BYTES written (fdatasync not waited for), one at a time; the bytes are what was written', async () => {
    const path = join(dir, 'out');
    const out = new OutputFile(path, { offset: 0 });
    const total = 2 * FLUSH_HINT_BYTES + MiB;
    const chunk = Buffer.alloc(MiB);
    for (let pos = 0; pos < total; pos += MiB) {
      chunk.fill((pos / MiB) & 0xff);
      out.write(pos, chunk);
      if (pos === FLUSH_HINT_BYTES) await sleep(50); // the first hint lands, as while a disk is read
    }
    expect(out.flushHints).to.be.within(1, 2);
    expect(out.finish()).to.equal(null);
    expect(out.close()).to.equal(null);
    const bytes = readFileSync(path);
    expect(bytes.length).to.equal(total);
    for (let pos = 0; pos < total; pos += MiB) expect(bytes[pos + 7], `MiB ${pos / MiB}`).to.equal((pos / MiB) & 0xff);
  });

  it('gives no hint for less than FLUSH_HINT_BYTES', () => {
    const out = new OutputFile(join(dir, 'small'), { offset: 0 });
    out.write(0, Buffer.alloc(FLUSH_HINT_BYTES - 1, 1));
    expect(out.flushHints).to.equal(0);
    expect(out.finish()).to.equal(null);
    expect(out.close()).to.equal(null);
  });
});
