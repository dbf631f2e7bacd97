import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';

import { expect } from 'chai';

import { AssemblerError } from '../src/errors.js';
import { Image } from '../src/image.js';
import { lockPathOf } from '../src/image-lock.js';

import { tempDir } from './helpers.js';

async function refusal(p: Promise<unknown>): Promise<AssemblerError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(AssemblerError);
    return err as AssemblerError;
  }
  throw new Error('expected a refusal');
}

describe('IMAGE.lock', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let path: string;
  let holder: ChildProcess | undefined;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    path = `${dir}/disk.img`;
  });
  afterEach(async () => {
    if (holder !== undefined && holder.exitCode === null) {
      const gone = new Promise((r) => holder!.once('exit', r));
      holder.kill('SIGKILL');
      await gone;
    }
    holder = undefined;
    await cleanup();
  });

  it('is taken by open, names this process, and is released by close', async () => {
    const image = await Image.open(path);
    const text = await readFile(lockPathOf(path), 'utf8');
    expect(text.startsWith(`${process.pid} ${hostname()} `)).to.equal(true);
    await image.close();
    const gone = await readFile(lockPathOf(path), 'utf8').then(() => false, (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
    expect(gone).to.equal(true);
  });

  it('refuses the image with ERR_IMAGE_LOCKED while another live ddferry process holds it', async () => {
    // a live process whose command line names ddferry, standing in for `ddferry-assembler serve`
    holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)', 'ddferry-assembler-standin'], { stdio: 'ignore' });
    await new Promise((r) => holder!.once('spawn', r));
    await writeFile(lockPathOf(path), `${holder.pid} ${hostname()} ddferry-assembler serve ${path}\n`);
    const err = await refusal(Image.open(path));
    expect(err.code).to.equal('ERR_IMAGE_LOCKED');
    expect(err.message).to.include(String(holder.pid)).and.to.include('Stop it first');
  });

  it('takes over a stale lock: its process is gone', async () => {
    const dead = spawn(process.execPath, ['-e', '0', 'ddferry-gone'], { stdio: 'ignore' });
    await new Promise((r) => dead.once('exit', r));
    await writeFile(lockPathOf(path), `${dead.pid} ${hostname()} ddferry-assembler serve ${path}\n`);
    const image = await Image.open(path);
    expect(await readFile(lockPathOf(path), 'utf8')).to.match(new RegExp(`^${process.pid} `));
    await image.close();
  });

  it('takes over a lock whose pid now runs something else (pid reuse)', async () => {
    holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore' });
    await new Promise((r) => holder!.once('spawn', r));
    await writeFile(lockPathOf(path), `${holder.pid} ${hostname()} ddferry-assembler serve ${path}\n`);
    const image = await Image.open(path);
    await image.close();
  });

  it('refuses a lock taken on another machine (a shared folder), naming it', async () => {
    await writeFile(lockPathOf(path), `4242 another-host ddferry-assembler serve ${path}\n`);
    const err = await refusal(Image.open(path));
    expect(err.code).to.equal('ERR_IMAGE_LOCKED');
    expect(err.message).to.include('another-host');
  });
});
