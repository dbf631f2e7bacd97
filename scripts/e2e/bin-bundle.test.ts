/**
 * `packages/<p>/bin/<program>.js` runs the program's one-file build (`dist/<program>.mjs`,
 * which `npm run build` writes after `tsc -b`) when it is newer than the last `tsc -b` of
 * every package it holds, else the modules `tsc -b` wrote: a `tsc -b` alone never leaves
 * a program running old code.
 *
 * The rule is checked on each bin script copied into a tree of stand-ins (a `dist/main.js`
 * and a bundle that print which ran, `tsconfig.tsbuildinfo` files of chosen times); then
 * the workspace's own programs, built by `npm run build`, are checked to run their bundle.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { expect } from 'chai';

import { ROOT } from './harness.js';

const PROGRAMS = [
  { pkg: 'reader', name: 'ddferry-reader', holds: ['reader', 'protocol', 'mapfile'] },
  { pkg: 'assembler', name: 'ddferry-assembler', holds: ['assembler', 'protocol', 'mapfile'] },
  { pkg: 'mapfile', name: 'ddferry-map', holds: ['mapfile'] },
] as const;
const PACKAGES = ['reader', 'assembler', 'protocol', 'mapfile'] as const;

/** Seconds since the epoch of `at` seconds after a fixed time. */
const time = (at: number): number => 1_700_000_000 + at;

function touch(file: string, at: number, text = ''): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
  utimesSync(file, time(at), time(at));
}

/** What the copied bin of `program` runs in `tree`: `bundle`, `modules`, or the failure. */
function runs(tree: string, program: (typeof PROGRAMS)[number]): string {
  const r = spawnSync(process.execPath, [join(tree, 'packages', program.pkg, 'bin', `${program.name}.js`)], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : `exit ${r.status}: ${r.stderr}`;
}

describe('bin scripts: the one-file build or the modules', () => {
  let tree = '';
  beforeEach(() => {
    tree = mkdtempSync(join(tmpdir(), 'ddferry-bin-'));
  });
  afterEach(() => rmSync(tree, { recursive: true, force: true }));

  /** A tree where every package was compiled at `compiled` and each program bundled at `bundled` (undefined: no bundle). */
  function build(compiled: number, bundled: number | undefined): void {
    for (const p of PACKAGES) touch(join(tree, 'packages', p, 'tsconfig.tsbuildinfo'), compiled);
    for (const program of PROGRAMS) {
      const dir = join(tree, 'packages', program.pkg);
      mkdirSync(join(dir, 'bin'), { recursive: true });
      copyFileSync(join(ROOT, 'packages', program.pkg, 'bin', `${program.name}.js`), join(dir, 'bin', `${program.name}.js`));
      touch(join(dir, 'dist', 'main.js'), compiled, "console.log('modules');\n");
      if (bundled !== undefined) touch(join(dir, 'dist', `${program.name}.mjs`), bundled, "console.log('bundle');\n");
    }
  }

  for (const program of PROGRAMS) {
    describe(program.name, () => {
      it('runs the bundle when it was written after the last compilation of each package it holds', () => {
        build(100, 200);
        expect(runs(tree, program)).to.equal('bundle');
        build(100, 100);
        expect(runs(tree, program), 'written in the same instant').to.equal('bundle');
      });

      it('runs the modules when a package it holds was compiled again after the bundle', () => {
        for (const again of program.holds) {
          build(100, 200);
          touch(join(tree, 'packages', again, 'tsconfig.tsbuildinfo'), 300);
          expect(runs(tree, program), `${again} compiled again`).to.equal('modules');
        }
      });

      it('ignores the compilation of a package it does not hold', () => {
        for (const other of PACKAGES.filter((p) => !(program.holds as readonly string[]).includes(p))) {
          build(100, 200);
          touch(join(tree, 'packages', other, 'tsconfig.tsbuildinfo'), 300);
          expect(runs(tree, program), `${other} compiled again`).to.equal('bundle');
        }
      });

      it('runs the modules when there is no bundle, the bundle when there is no compilation record', () => {
        build(100, undefined);
        expect(runs(tree, program)).to.equal('modules');
        build(100, 200);
        for (const p of PACKAGES) rmSync(join(tree, 'packages', p, 'tsconfig.tsbuildinfo'));
        expect(runs(tree, program)).to.equal('bundle');
      });
    });
  }

  it('the workspace built by npm run build: each program runs its bundle, which answers as the modules do', () => {
    for (const program of PROGRAMS) {
      const bundle = join(ROOT, 'packages', program.pkg, 'dist', `${program.name}.mjs`);
      expect(existsSync(bundle), `${bundle}: run npm run build`).to.equal(true);
      for (const p of program.holds) {
        const info = join(ROOT, 'packages', p, 'tsconfig.tsbuildinfo');
        expect(statSync(info).mtimeMs, `${info} is newer than ${bundle}: run npm run build`).to.be.at.most(statSync(bundle).mtimeMs);
      }
      const viaBin = spawnSync(process.execPath, [join(ROOT, 'packages', program.pkg, 'bin', `${program.name}.js`), '--help'], { encoding: 'utf8' });
      const viaModules = spawnSync(process.execPath, [join(ROOT, 'packages', program.pkg, 'dist', 'main.js'), '--help'], { encoding: 'utf8' });
      expect(viaBin.status, viaBin.stderr).to.equal(0);
      expect(viaBin.stdout).to.equal(viaModules.stdout);
      expect(viaBin.stdout.length).to.be.above(100);
    }
  });
});
