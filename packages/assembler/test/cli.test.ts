import { chmod, readFile, stat, writeFile } from 'node:fs/promises';

import { readTokenFile } from '@ddferry/protocol';
import { expect } from 'chai';

import { parseListen, parseSize, run, SERVE_USAGE, TOKEN_USAGE, USAGE } from '../src/cli.js';
import { IMPORT_USAGE } from '../src/import-command.js';
import { IMPORT_DDRESCUE_USAGE } from '../src/import-ddrescue.js';

import { Client } from './client.js';
import { tempDir } from './helpers.js';

function capture(): { out: string[]; err: string[]; io: { stdout: (t: string) => void; stderr: (t: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (t) => out.push(t), stderr: (t) => err.push(t) } };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); ++i) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error('timed out');
}

describe('cli', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => cleanup());

  describe('--version', () => {
    it('prints the version and exits 0 (-V, --version, version)', async () => {
      for (const args of [['--version'], ['-V'], ['version']]) {
        const c = capture();
        expect(await run(args, c.io), args.join(' ')).to.equal(0);
        expect(c.out.join('')).to.match(/^ddferry-assembler \d+\.\d+\.\d+ \(ddferry protocol 3, GNU ddrescue 1\.27 mapfiles\)\n$/);
      }
    });
  });

  describe('parseListen', () => {
    it('reads HOST:PORT, [IPV6]:PORT and :PORT', () => {
      expect(parseListen('127.0.0.1:4455')).to.deep.equal({ host: '127.0.0.1', port: 4455 });
      expect(parseListen('[::1]:0')).to.deep.equal({ host: '::1', port: 0 });
      expect(parseListen(':80')).to.deep.equal({ host: '0.0.0.0', port: 80 });
      expect(parseListen('pc-b.local:65535')).to.deep.equal({ host: 'pc-b.local', port: 65535 });
    });

    it('refuses anything else with ERR_USAGE', () => {
      for (const bad of ['4455', 'host:', 'host:65536', '::1:80', 'a:b']) {
        expect(() => parseListen(bad), bad).to.throw().with.property('code', 'ERR_USAGE');
      }
    });
  });

  describe('run', () => {
    it('prints the usage for --help and returns 0', async () => {
      const c = capture();
      expect(await run(['--help'], c.io)).to.equal(0);
      expect(c.out.join('')).to.contain('Usage: ddferry-assembler COMMAND').and.contain('serve IMAGE...').and.contain('token [FILE]');
    });

    it('prints each command\'s own help for COMMAND --help and help COMMAND (issue 12)', async () => {
      const cases: [string[], string][] = [
        [['serve', '--help'], SERVE_USAGE], [['serve', 'x.img', '-h'], SERVE_USAGE], [['help', 'serve'], SERVE_USAGE],
        [['import', '--help'], IMPORT_USAGE], [['help', 'import'], IMPORT_USAGE],
        [['import-ddrescue', '--help'], IMPORT_DDRESCUE_USAGE], [['help', 'import-ddrescue'], IMPORT_DDRESCUE_USAGE],
        [['token', '--help'], TOKEN_USAGE], [['help', 'token'], TOKEN_USAGE], [['help'], USAGE],
      ];
      for (const [argv, usage] of cases) {
        const c = capture();
        expect(await run(argv, c.io), argv.join(' ')).to.equal(0);
        expect(c.out.join(''), argv.join(' ')).to.equal(usage);
      }
      expect(SERVE_USAGE).to.match(/^Usage: ddferry-assembler serve /).and.contain('--max-memory');
      const c = capture();
      expect(await run(['help', 'merge'], c.io)).to.equal(1);
      expect(c.err.join('')).to.contain('ERR_USAGE');
    });

    it('token makes a 140-bit grouped base32 token, writes it mode 600 and refuses to overwrite (ERR_TOKEN_FILE_WRITE)', async () => {
      const c = capture();
      expect(await run(['token'], c.io)).to.equal(0);
      expect(c.out.join('')).to.match(/^[A-Z2-7]{4}(?:-[A-Z2-7]{4}){6}\n$/);
      const file = `${dir}/token`;
      const w = capture();
      expect(await run(['token', file], w.io)).to.equal(0);
      expect(await readFile(file, 'utf8')).to.equal(w.out.join(''));
      expect((await stat(file)).mode & 0o777).to.equal(0o600);
      expect(await readTokenFile(file)).to.equal(w.out.join('').trim().replaceAll('-', ''));
      const again = capture();
      expect(await run(['token', file], again.io)).to.equal(1);
      expect(again.err.join('')).to.contain('ERR_TOKEN_FILE_WRITE').and.contain('EEXIST');
      expect(await readFile(file, 'utf8')).to.equal(w.out.join(''));
    });

    it('parses --max-memory sizes and refuses others', () => {
      expect(parseSize('512M', '--max-memory')).to.equal(512 * 1024 * 1024);
      expect(parseSize('2GiB', '--max-memory')).to.equal(2 * 1024 ** 3);
      expect(parseSize('4096', '--max-memory')).to.equal(4096);
      for (const bad of ['', '0', '-1', '1T', 'lots', '1.5G']) expect(() => parseSize(bad, '--max-memory'), bad).to.throw().with.property('code', 'ERR_USAGE');
    });

    it('returns 1 with ERR_USAGE and a hint for a missing image, an unknown command or option', async () => {
      for (const argv of [['serve'], ['merge', 'x'], ['serve', 'x', '--bogus'], [], ['serve', 'x', '--listen', 'nope']]) {
        const c = capture();
        expect(await run(argv, c.io), argv.join(' ')).to.equal(1);
        expect(c.err.join('')).to.match(/^ddferry-assembler: ERR_USAGE: /).and.contain("Try 'ddferry-assembler --help'.");
      }
    });

    it('refuses a token file others can read with ERR_AUTH_TOKEN_PERMISSIONS', async () => {
      const token = `${dir}/token`;
      await writeFile(token, 'secret\n');
      await chmod(token, 0o644);
      const c = capture();
      expect(await run(['serve', `${dir}/disk.img`, '--token-file', token], c.io)).to.equal(1);
      expect(c.err.join('')).to.contain('ERR_AUTH_TOKEN_PERMISSIONS').and.contain('chmod 600');
    });

    it('returns 2 for a malformed IMAGE.map, naming the file and line', async () => {
      await writeFile(`${dir}/disk.img.map`, '0x0 ?\n0 zz ?\n');
      const c = capture();
      expect(await run(['serve', `${dir}/disk.img`, '--listen', '127.0.0.1:0'], c.io)).to.equal(2);
      expect(c.err.join('')).to.contain(`${dir}/disk.img.map: line 2`);
    });

    it('returns 1 with ERR_LISTEN when the port is taken', async () => {
      const controller = new AbortController();
      const first = capture();
      const running = run(['serve', `${dir}/a.img`, '--listen', '127.0.0.1:0'], first.io, controller.signal);
      await until(() => first.out.length > 0);
      const port = /:(\d+)\n$/.exec(first.out[0]!)![1]!;
      const second = capture();
      expect(await run(['serve', `${dir}/b.img`, '--listen', `127.0.0.1:${port}`], second.io)).to.equal(1);
      expect(second.err.join('')).to.contain('ERR_LISTEN').and.contain('EADDRINUSE');
      controller.abort();
      expect(await running).to.equal(0);
    });

    it('serves: prints "listening ws://HOST:PORT", warns without a token, and stops cleanly (0) on abort', async () => {
      const controller = new AbortController();
      const c = capture();
      const running = run(['serve', `${dir}/disk.img`, '--listen', '127.0.0.1:0'], c.io, controller.signal);
      await until(() => c.out.length > 0);
      const m = /^listening (ws:\/\/127\.0\.0\.1:\d+)\n$/.exec(c.out[0]!);
      expect(m).to.not.equal(null);
      expect(c.err.join('')).to.contain('warning: No token');
      const client = await Client.connect(m![1]!);
      expect((await client.handshake(''))?.type).to.equal('welcome');
      controller.abort();
      expect(await running).to.equal(0);
      expect((await client.closed).code).to.equal(1001);
    });

    it('uses the token file on both sides', async () => {
      const token = `${dir}/token`;
      await writeFile(token, '  s3cret-token-0123456789abcdef \n', { mode: 0o600 });
      const controller = new AbortController();
      const c = capture();
      const running = run(['serve', `${dir}/disk.img`, '--listen', '127.0.0.1:0', '--token-file', token], c.io, controller.signal);
      await until(() => c.out.length > 0);
      const url = /^listening (\S+)\n$/.exec(c.out[0]!)![1]!;
      expect(c.err.join('')).to.not.contain('No token');
      const good = await Client.connect(url);
      expect((await good.handshake('s3cret-token-0123456789abcdef'))?.type).to.equal('welcome');
      const bad = await Client.connect(url);
      expect(await bad.handshake('')).to.deep.include({ type: 'error', code: 'ERR_AUTH_FAILED' });
      controller.abort();
      expect(await running).to.equal(0);
    });
  });
});
