import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { makeSecretText } from '@ddferry/protocol';
import { expect } from 'chai';

import { run, VERSION } from '../src/cli.js';
import { readerCandidates, runPrepareStick, STICK_JOB, STICK_README, STICK_READER } from '../src/prepare-stick.js';

import { tempDir } from './helpers.js';

function capture(): { out: string[]; err: string[]; io: { stdout: (t: string) => void; stderr: (t: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (t) => out.push(t), stderr: (t) => err.push(t) } };
}

/** Every file under `dir`, relative. */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    if (d.isDirectory()) out.push(...(await filesUnder(join(dir, d.name), `${prefix}${d.name}/`)));
    else out.push(`${prefix}${d.name}`);
  }
  return out.sort();
}

describe('prepare-stick', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let stick: string;
  let reader: string;
  let token: string;
  let tokenText: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    stick = join(dir, 'stick');
    await mkdir(stick);
    // a stand-in for dist/bin/ddferry-reader: answers --version as the reader of this version
    reader = join(dir, 'fake-reader');
    await writeFile(reader, `#!/bin/sh\necho "ddferry-reader ${VERSION} (a test stand-in)"\n`);
    await chmod(reader, 0o755);
    token = join(dir, 'token');
    tokenText = makeSecretText();
    await writeFile(token, `${tokenText}\n`, { mode: 0o600 });
  });
  afterEach(async () => cleanup());

  /** A job folder as `ddferry-reader plan` leaves it, with a token, a spool and a ledger. */
  async function makeJob(): Promise<string> {
    const job = join(dir, 'job');
    await mkdir(join(job, 'chunks'), { recursive: true });
    await mkdir(join(job, 'spool'));
    await mkdir(join(job, 'ledger'));
    await writeFile(join(job, 'job.json'), '{"version":1}\n');
    await writeFile(join(job, 'common.map'), '0x0 ?\n0x0 0x1000 ?\n');
    await writeFile(join(job, 'chunks', 'chunk0000.map'), '0x0 ?\n0x0 0x1000 +\n');
    await writeFile(join(job, 'spool', 'piece-000001.tar'), 'sealed');
    await writeFile(join(job, 'ledger', 'piece-000002.json'), '{}');
    await writeFile(join(job, 'seq.json'), '{}');
    await writeFile(join(job, 'token'), `${makeSecretText()}\n`, { mode: 0o600 });
    return job;
  }

  it('writes the reader (executable, same bytes) and a README telling to copy it off the stick, chmod +x and run it', async () => {
    const c = capture();
    expect(await runPrepareStick([stick, '--reader', reader], c.io, VERSION)).to.equal(0);
    expect(await filesUnder(stick)).to.deep.equal([STICK_README, STICK_READER]);
    expect(await readFile(join(stick, STICK_READER))).to.deep.equal(await readFile(reader));
    expect((await stat(join(stick, STICK_READER))).mode & 0o111).to.not.equal(0);
    const readme = await readFile(join(stick, STICK_README), 'utf8');
    expect(readme).to.contain(`cp /media/usb/${STICK_READER} /tmp/ && chmod +x /tmp/${STICK_READER}`);
    expect(readme).to.contain(`sudo /tmp/${STICK_READER} plan /dev/sdc /root/job --medium-size `);
    expect(readme).to.contain(`sudo /tmp/${STICK_READER} rescue /root/job --to /media/usb --token-file /root/job/token -d`);
    expect(readme).to.match(/noexec/);
    expect(c.out.join('')).to.contain(`The stick ${stick} is ready`);
  });

  it('copies the plan with --plan (job.json, common.map, chunks) and never a token, the spool or the ledger', async () => {
    const job = await makeJob();
    const jobToken = (await readFile(join(job, 'token'), 'utf8')).trim();
    const c = capture();
    expect(await runPrepareStick([stick, '--reader', reader, '--plan', join(job, 'job.json'), '--token-file', token], c.io, VERSION)).to.equal(0);
    expect(await filesUnder(stick)).to.deep.equal([
      STICK_README, `${STICK_JOB}/chunks/chunk0000.map`, `${STICK_JOB}/common.map`, `${STICK_JOB}/job.json`, STICK_READER,
    ]);
    for (const f of await filesUnder(stick)) {
      const text = (await readFile(join(stick, f))).toString('latin1');
      expect(text, f).to.not.contain(tokenText);
      expect(text, f).to.not.contain(jobToken);
    }
    const readme = await readFile(join(stick, STICK_README), 'utf8');
    expect(readme).to.contain(`cp -r /media/usb/${STICK_JOB} /root/job`);
    expect(readme).to.contain(`PC_B's token is the file ${token} there`);
    expect(readme).to.contain('--token-file /root/token -d');
  });

  it('refuses a token file on the stick (ERR_PREPARE_TOKEN_ON_STICK) and writes nothing', async () => {
    const onStick = join(stick, 'token');
    await writeFile(onStick, `${tokenText}\n`, { mode: 0o600 });
    const err = await runPrepareStick([stick, '--reader', reader, '--token-file', onStick], capture().io, VERSION).then(() => null, (e: unknown) => e);
    expect(err).to.have.property('code', 'ERR_PREPARE_TOKEN_ON_STICK');
    expect(await filesUnder(stick)).to.deep.equal(['token']);
  });

  it('refuses a reader of another version or none (ERR_PREPARE_NO_READER), and a folder that is no job (ERR_PREPARE_PLAN)', async () => {
    await writeFile(reader, '#!/bin/sh\necho "ddferry-reader 0.0.1 (old)"\n');
    let err = await runPrepareStick([stick, '--reader', reader], capture().io, VERSION).then(() => null, (e: unknown) => e);
    expect(err).to.have.property('code', 'ERR_PREPARE_NO_READER');
    err = await runPrepareStick([stick, '--reader', join(dir, 'nothing')], capture().io, VERSION).then(() => null, (e: unknown) => e);
    expect(err).to.have.property('code', 'ERR_PREPARE_NO_READER');
    err = await runPrepareStick([stick, '--reader', reader, '--plan', dir], capture().io, VERSION).then(() => null, (e: unknown) => e);
    expect(err).to.have.property('code', 'ERR_PREPARE_PLAN');
    expect(await filesUnder(stick)).to.deep.equal([]);
  });

  it('is a command of ddferry-assembler: a usage error exits 1 with a hint', async () => {
    const c = capture();
    expect(await run(['prepare-stick'], c.io)).to.equal(1);
    expect(c.err.join('')).to.contain('ERR_USAGE');
    const h = capture();
    expect(await run(['prepare-stick', '--help'], h.io)).to.equal(0);
    expect(h.out.join('')).to.contain('NEVER written on the stick');
  });

  it('looks for the reader beside a SEA, else in the repository\'s dist/bin', () => {
    expect(readerCandidates({ execPath: '/opt/ddferry/ddferry-assembler', isSea: true, moduleUrl: 'file:///opt/ddferry/ddferry-assembler' })).to.deep.equal(['/opt/ddferry/ddferry-reader']);
    const fromDist = readerCandidates({ execPath: '/usr/bin/node', isSea: false, moduleUrl: pathToFileURL('/repo/packages/assembler/dist/prepare-stick.js').href });
    expect(fromDist[0]).to.equal('/repo/dist/bin/ddferry-reader');
    const fromBundle = readerCandidates({ execPath: '/usr/bin/node', isSea: false, moduleUrl: pathToFileURL('/repo/dist/bundle/ddferry-assembler.mjs').href });
    expect(fromBundle).to.include('/repo/dist/bin/ddferry-reader');
  });
});
