/**
 * The packaged programs (`npm run package`) where rescues happen:
 *
 * - each single executable in an empty chroot holding only it, the libraries `ldd` lists
 *   and /dev/null (no Node, no /proc, no /etc): the reader, copied off a stick made by
 *   `ddferry-assembler prepare-stick` as its README says, plans a simulated failing disk
 *   (a GNU ddrescue test map) and rescues onto the stick; the assembler, in a chroot of
 *   its own with the same stick, imports; trip after trip until the rescue is complete.
 *   The image equals the source on every rescued byte, and IMAGE.map = common.map = GNU
 *   ddrescue's final map; `ddferry-map` checks the map in a third chroot;
 * - every command's help is the workspace's;
 * - the npm tarball installs with `npm i -g` into an empty prefix and its three commands
 *   run a rescue.
 *
 * Needs root (chroot, mknod, mount) and GNU ddrescue; missing executables fail the test
 * with the command that makes them.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { expect } from 'chai';

import { type Block, type Scenario, ROOT, blocksOf, checkImageBlocks, compact, ddrescueFinalMap, makeSource, testMap } from './harness.js';

const MiB = 1 << 20;
const BIN = join(ROOT, 'dist', 'bin');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'lerna.json'), 'utf8')) as { version: string }).version;
const TGZ = join(ROOT, 'dist', 'npm', `ddferry-${VERSION}.tgz`);
const PROGRAMS = ['ddferry-reader', 'ddferry-assembler', 'ddferry-map'] as const;
/** The environment of a program in a chroot: nothing of this machine's (no NODE_OPTIONS, no certificates). */
const BARE_ENV = { PATH: '/bin', LANG: 'C' };

interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function sh(file: string, args: readonly string[], o: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Result {
  const r = spawnSync(file, args, { encoding: 'utf8', env: o.env ?? process.env, cwd: o.cwd, maxBuffer: 64 * MiB });
  if (r.error) throw new Error(`${file} could not start: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(file: string, args: readonly string[], o?: Parameters<typeof sh>[2]): Result {
  const r = sh(file, args, o);
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r;
}

/** The files `ldd` lists for an executable: its libraries and the dynamic loader. */
function lddFiles(exe: string): string[] {
  const out = must('ldd', [exe]).stdout;
  const files: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) files.push(m[1]!);
  }
  if (files.length === 0) throw new Error(`ldd ${exe} listed no library:\n${out}`);
  return files;
}

/** The path of a command (run with a bare environment, chroot must be named by its path). */
function which(cmd: string): string {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  const found = dirs.filter((d) => d !== '').map((d) => join(d, cmd)).find((f) => existsSync(f));
  if (found === undefined) throw new Error(`${cmd} not found: apt-get install coreutils`);
  return found;
}

/** Mounts made by the test, unmounted in reverse order at the end. */
const mounts: string[] = [];

function mount(args: readonly string[], at: string): void {
  const r = sh('mount', [...args, at]);
  if (r.status !== 0) throw new Error(`mount ${args.join(' ')} ${at} failed (needs root): ${r.stderr}`);
  mounts.push(at);
}

function unmountAll(): void {
  const failed: string[] = [];
  while (mounts.length > 0) {
    const at = mounts.pop()!;
    if (sh('umount', [at]).status !== 0) failed.push(at);
  }
  if (failed.length > 0) throw new Error(`could not unmount ${failed.join(', ')}`);
}

/**
 * An empty root holding the executable `exe` as /bin/NAME, the files `ldd` lists at their
 * paths, /dev/null, and empty folders `folders`. Returns a function running NAME in it.
 */
function makeRoot(root: string, exe: string, folders: readonly string[]): (args: readonly string[]) => Result {
  const name = exe.split('/').pop()!;
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync(exe, join(root, 'bin', name));
  chmodSync(join(root, 'bin', name), 0o755);
  for (const lib of lddFiles(exe)) {
    mkdirSync(join(root, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(root, lib));
  }
  mkdirSync(join(root, 'dev'));
  const r = sh('mknod', ['-m', '666', join(root, 'dev', 'null'), 'c', '1', '3']);
  if (r.status !== 0) throw new Error(`mknod ${root}/dev/null failed (needs root): ${r.stderr}`);
  for (const f of folders) mkdirSync(join(root, f), { recursive: true });
  const chroot = which('chroot');
  return (args) => sh(chroot, [root, `/bin/${name}`, ...args], { env: BARE_ENV });
}

/** Every file under `dir` (relative paths). */
function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? filesUnder(join(dir, d.name), `${prefix}${d.name}/`) : [`${prefix}${d.name}`]));
}

const mapBlocks = (file: string): Block[] => compact(blocksOf(readFileSync(file, 'latin1')));

describe('packaged programs (npm run package)', function () {
  this.timeout(600_000);
  let base: string | undefined;

  before(function () {
    const missing = [...PROGRAMS.map((p) => join(BIN, p)), TGZ].filter((f) => !existsSync(f));
    if (missing.length > 0) throw new Error(`${missing.join(', ')} missing: run npm run package first`);
  });

  afterEach(function () {
    try {
      unmountAll();
    } finally {
      // a mount left would be emptied by rm: keep the folder then
      if (base !== undefined && mounts.length === 0) rmSync(base, { recursive: true, force: true });
      base = undefined;
    }
  });

  it('run each in an empty chroot (only it, its ldd libraries, /dev/null): prepare-stick, plan, stick trips, import; the image equals the source on every rescued byte', function () {
    base = mkdtempSync(join(tmpdir(), 'ddferry-packaged-'));
    const size = 24 * MiB + 7 * 512;
    // bad areas, some across the 4 MiB chunk borders, one at the end
    const bad: Array<[number, number]> = [[1 * MiB + 512, 512], [4 * MiB - 2048, 8192], [9 * MiB, 70 * 1024], [16 * MiB - 512, 1024], [size - 3 * 512, 3 * 512]];
    const s: Scenario = {
      dir: base, source: join(base, 'disk.bin'), testMap: join(base, 'disk.testmap'), token: '', job: '', image: '', size, remove: () => undefined,
    };
    writeFileSync(s.source, makeSource(size, 17));
    writeFileSync(s.testMap, testMap(size, bad));

    // the stick: a tmpfs with room for the reader executable and 10 MiB of pieces
    const media = join(base, 'stick');
    mkdirSync(media);
    const readerBytes = statSync(join(BIN, 'ddferry-reader')).size;
    mount(['-t', 'tmpfs', '-o', `size=${Math.ceil(readerBytes / MiB) + 10}m`, 'tmpfs'], media);

    // PC_B prepares the stick: the reader beside the assembler executable, a README, no token
    const prep = must(join(BIN, 'ddferry-assembler'), ['prepare-stick', media]);
    expect(prep.stdout).to.contain('is ready');
    expect(filesUnder(media).sort()).to.deep.equal(['README-ddferry.txt', 'ddferry-reader']);
    const readme = readFileSync(join(media, 'README-ddferry.txt'), 'utf8');
    expect(readme).to.contain('cp /media/usb/ddferry-reader /tmp/ && chmod +x /tmp/ddferry-reader');

    // PC_A: copy the reader off the stick as the README says, into a root of its own
    const readerRoot = join(base, 'pc-a');
    mkdirSync(join(readerRoot, 'tmp'), { recursive: true });
    copyFileSync(join(media, 'ddferry-reader'), join(readerRoot, 'tmp', 'ddferry-reader'));
    const reader = makeRoot(readerRoot, join(readerRoot, 'tmp', 'ddferry-reader'), ['work', 'media/usb']);
    rmSync(join(readerRoot, 'tmp'), { recursive: true });
    copyFileSync(s.source, join(readerRoot, 'work', 'disk.bin'));
    copyFileSync(s.testMap, join(readerRoot, 'work', 'disk.testmap'));
    const assembler = makeRoot(join(base, 'pc-b'), join(BIN, 'ddferry-assembler'), ['work', 'media/usb']);
    const maptool = makeRoot(join(base, 'pc-b-map'), join(BIN, 'ddferry-map'), ['work']);
    // the same stick on both sides
    mount(['--bind', media], join(readerRoot, 'media', 'usb'));
    mount(['--bind', media], join(base, 'pc-b', 'media', 'usb'));
    for (const root of ['pc-a', 'pc-b', 'pc-b-map']) {
      const files = filesUnder(join(base, root)).filter((f) => !f.startsWith('work/') && !f.startsWith('media/'));
      expect(files.every((f) => f.startsWith('bin/') || f.startsWith('lib') || f === 'dev/null'), `${root}: ${files.join(' ')}`).to.equal(true);
    }

    for (const [run, name] of [[reader, 'ddferry-reader'], [assembler, 'ddferry-assembler'], [maptool, 'ddferry-map']] as const) {
      const v = run(['--version']);
      expect(v.status, v.stderr).to.equal(0);
      expect(v.stdout).to.match(new RegExp(`^${name} ${VERSION.replace(/\./g, '\\.')} `));
    }

    const plan = reader(['plan', '/work/disk.bin', '/work/job', '--chunk-size', '4MiB', '--test-mode', '/work/disk.testmap']);
    expect(plan.status, plan.stderr).to.equal(0);
    // the token reaches PC_B by other means, never on the stick
    copyFileSync(join(readerRoot, 'work', 'job', 'token'), join(base, 'pc-b', 'work', 'token'));
    chmodSync(join(base, 'pc-b', 'work', 'token'), 0o600);

    const codes: number[] = [];
    for (let trip = 1; ; ++trip) {
      expect(trip, `not complete after 30 trips (exit codes ${codes.join(' ')})`).to.be.at.most(30);
      const r = reader(['rescue', '/work/job', '--to', '/media/usb', '--token-file', '/work/job/token', '-q']);
      expect(r.status, r.stderr).to.be.oneOf([0, 4]);
      codes.push(r.status!);
      if (r.stderr.includes('The rescue is complete')) break;
      const i = assembler(['import', '/media/usb', '/work/image.raw', '--token-file', '/work/token']);
      expect(i.status, i.stderr).to.equal(0);
    }
    console.log(`      ${codes.length} reader runs in the chroot, exit codes ${codes.join(' ')}`);
    expect(codes.filter((c) => c === 4).length, 'the stick filled at least once').to.be.at.least(1);

    const image = join(base, 'pc-b', 'work', 'image.raw');
    s.image = image;
    const imageBlocks = mapBlocks(`${image}.map`);
    checkImageBlocks(s, imageBlocks, readFileSync(s.source));
    expect(imageBlocks.filter((b) => b.status === '+').reduce((n, b) => n + b.size, 0)).to.equal(size - bad.reduce((n, [, l]) => n + l, 0));
    const common = mapBlocks(join(readerRoot, 'work', 'job', 'common.map'));
    expect(imageBlocks, 'IMAGE.map = common.map').to.deep.equal(common);
    expect(common, 'common.map = GNU ddrescue final map').to.deep.equal(ddrescueFinalMap(s));
    // nothing secret was ever on the stick
    const secret = readFileSync(join(readerRoot, 'work', 'job', 'token'), 'utf8').trim();
    for (const f of filesUnder(media)) expect(readFileSync(join(media, f)).includes(secret), f).to.equal(false);

    copyFileSync(`${image}.map`, join(base, 'pc-b-map', 'work', 'image.map'));
    const t = maptool(['ddrescuelog', '-t', '/work/image.map']);
    expect(t.status, t.stderr).to.equal(0);
    expect(t.stdout).to.match(/rescued:/);
  });

  it('answer every --help as the workspace does', function () {
    const cases: Array<[string, string, string[]]> = [
      ['ddferry-reader', 'reader', ['--help']], ['ddferry-reader', 'reader', ['plan', '--help']], ['ddferry-reader', 'reader', ['rescue', '--help']],
      ['ddferry-reader', 'reader', ['ddrescue', '--help']], ['ddferry-reader', 'reader', ['--version']],
      ['ddferry-assembler', 'assembler', ['--help']], ['ddferry-assembler', 'assembler', ['serve', '--help']], ['ddferry-assembler', 'assembler', ['import', '--help']],
      ['ddferry-assembler', 'assembler', ['import-ddrescue', '--help']], ['ddferry-assembler', 'assembler', ['token', '--help']],
      ['ddferry-assembler', 'assembler', ['prepare-stick', '--help']], ['ddferry-assembler', 'assembler', ['--version']],
      ['ddferry-map', 'mapfile', ['--help']], ['ddferry-map', 'mapfile', ['--version']], ['ddferry-map', 'mapfile', ['nonsense']],
    ];
    for (const [name, pkg, args] of cases) {
      const exe = sh(join(BIN, name), args);
      const ws = sh(process.execPath, [join(ROOT, 'packages', pkg, 'bin', `${name}.js`), ...args]);
      expect({ status: exe.status, stdout: exe.stdout, stderr: exe.stderr }, `${name} ${args.join(' ')}`).to.deep.equal({ status: ws.status, stdout: ws.stdout, stderr: ws.stderr });
    }
  });

  it('install from the npm tarball with npm i -g into an empty prefix, and rescue with its three commands', function () {
    base = mkdtempSync(join(tmpdir(), 'ddferry-npm-'));
    const prefix = join(base, 'prefix');
    const i = sh('npm', ['i', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', TGZ]);
    expect(i.status, `npm i -g ${TGZ}: ${i.stderr}`).to.equal(0);
    const installed = join(prefix, 'lib', 'node_modules', 'ddferry');
    expect(existsSync(join(installed, 'node_modules')), 'no dependency installed').to.equal(false);
    const bin = (p: string): string => join(prefix, 'bin', p);
    for (const p of PROGRAMS) expect(must(bin(p), ['--version']).stdout).to.match(new RegExp(`^${p} ${VERSION.replace(/\./g, '\\.')} `));

    const size = 6 * MiB;
    writeFileSync(join(base, 'disk.bin'), makeSource(size, 5));
    writeFileSync(join(base, 'disk.testmap'), testMap(size, [[MiB, 4096]]));
    must(bin('ddferry-reader'), ['plan', 'disk.bin', 'job', '--chunk-size', '2MiB', '--test-mode', 'disk.testmap'], { cwd: base });
    mkdirSync(join(base, 'stick'));
    const r = sh(bin('ddferry-reader'), ['rescue', 'job', '--to', 'stick', '--token-file', 'job/token', '-q'], { cwd: base });
    expect(r.status, r.stderr).to.equal(0);
    must(bin('ddferry-assembler'), ['import', 'stick', 'image.raw', '--token-file', 'job/token'], { cwd: base });
    const s: Scenario = { dir: base, source: join(base, 'disk.bin'), testMap: '', token: '', job: '', image: join(base, 'image.raw'), size, remove: () => undefined };
    const blocks = mapBlocks(`${s.image}.map`);
    checkImageBlocks(s, blocks);
    expect(blocks).to.deep.equal([{ pos: 0, size: MiB, status: '+' }, { pos: MiB, size: 4096, status: '-' }, { pos: MiB + 4096, size: size - MiB - 4096, status: '+' }]);
    must(bin('ddferry-map'), ['ddrescuelog', '-t', `${s.image}.map`]);
  });
});
