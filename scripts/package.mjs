#!/usr/bin/env node
/**
 * `npm run package`: ddferry for machines without Node or npm (a rescue live system).
 *
 *   dist/bin/ddferry-reader, ddferry-assembler, ddferry-map
 *       single executables for Linux x86-64 (Node's SEA): Node, the code and its runtime
 *       dependencies in one file, needing only the C library (glibc, libstdc++)
 *   dist/bundle/ddferry-reader.mjs, ...
 *       the same programs as one ES module each, for any Node 20.19 or later
 *   dist/npm/ddferry-<version>.tgz
 *       an npm package of the three bundles (no dependencies): `npm i -g ./ddferry-<version>.tgz`
 *   dist/bundle/THIRD-PARTY-NOTICES.txt
 *       the licenses of the npm packages inside (copied into dist/bin and the npm package)
 *
 * Builds the workspace first if `packages/<p>/dist` is missing (`npm run package` runs
 * `tsc -b` before this). `--no-sea`: the bundles and the npm package only.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { MJS_HEAD, bundleProgram, seaMain } from './package/bundle.mjs';
import { PROGRAMS } from './package/programs.mjs';
import { makeExecutable } from './package/sea.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const DIST = join(ROOT, 'dist');
const VERSION = JSON.parse(readFileSync(join(ROOT, 'lerna.json'), 'utf8')).version;

const MiB = 1024 * 1024;
const mib = (file) => `${(statSync(file).size / MiB).toFixed(1)} MiB`;

function notices(packages) {
  const parts = ['The ddferry programs hold the npm packages below. The single executables hold Node.js too',
    `(${process.version}, MIT license, with the licenses of its own dependencies in its LICENSE file).`, ''];
  for (const p of packages) {
    const dir = join(ROOT, p.dir);
    const file = ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'license', 'LICENCE'].map((f) => join(dir, f)).find((f) => existsSync(f));
    parts.push(`${'-'.repeat(78)}\n${p.name} ${p.version} (${p.license ?? 'see below'})\n`);
    parts.push(file ? readFileSync(file, 'utf8').trim() : `(no license file in the package; package.json says ${p.license})`);
    parts.push('');
  }
  return `${parts.join('\n')}\n`;
}

async function main() {
  const noSea = process.argv.includes('--no-sea');
  for (const p of PROGRAMS) {
    if (!existsSync(join(ROOT, p.entry))) {
      const r = spawnSync('npx', ['tsc', '-b'], { cwd: ROOT, stdio: 'inherit' });
      if (r.status !== 0) throw new Error('tsc -b failed');
      break;
    }
  }
  const bundleDir = join(DIST, 'bundle');
  const binDir = join(DIST, 'bin');
  const npmDir = join(DIST, 'npm');
  rmSync(bundleDir, { recursive: true, force: true });
  rmSync(npmDir, { recursive: true, force: true });
  mkdirSync(bundleDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'ddferry-package-'));
  try {
    const packages = new Map();
    const bodies = new Map();
    for (const p of PROGRAMS) {
      const { body, packages: held } = await bundleProgram(ROOT, p.entry);
      bodies.set(p.name, body);
      for (const h of held) packages.set(h.name, h);
      const mjs = join(bundleDir, `${p.name}.mjs`);
      writeFileSync(mjs, MJS_HEAD + body);
      chmodSync(mjs, 0o755);
      console.log(`${mjs}: ${mib(mjs)}`);
    }
    const noticeFile = join(bundleDir, 'THIRD-PARTY-NOTICES.txt');
    writeFileSync(noticeFile, notices([...packages.values()].sort((a, b) => a.name.localeCompare(b.name))));
    makeNpmPackage(npmDir, noticeFile);
    if (noSea) return;
    mkdirSync(binDir, { recursive: true });
    for (const p of PROGRAMS) {
      const main = join(work, `${p.name}.sea.cjs`);
      writeFileSync(main, seaMain(bodies.get(p.name)));
      const output = join(binDir, p.name);
      const stripped = await makeExecutable(ROOT, { name: p.name, main, output, work });
      console.log(`${output}: ${mib(output)}${stripped ? '' : ' (not stripped: no strip command; apt-get install binutils)'}`);
    }
    copyFileSync(noticeFile, join(binDir, 'THIRD-PARTY-NOTICES.txt'));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `dist/npm/ddferry-<version>.tgz`: a package.json naming the three bundles as its bins, and nothing to install. */
function makeNpmPackage(npmDir, noticeFile) {
  const pkg = join(npmDir, 'package');
  mkdirSync(join(pkg, 'bin'), { recursive: true });
  const bin = {};
  for (const p of PROGRAMS) {
    copyFileSync(join(DIST, 'bundle', `${p.name}.mjs`), join(pkg, 'bin', `${p.name}.mjs`));
    chmodSync(join(pkg, 'bin', `${p.name}.mjs`), 0o755);
    bin[p.name] = `bin/${p.name}.mjs`;
  }
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  writeFileSync(join(pkg, 'package.json'), `${JSON.stringify({
    name: 'ddferry',
    version: VERSION,
    description: root.description,
    type: 'module',
    bin,
    files: ['bin', 'README.md', 'THIRD-PARTY-NOTICES.txt'],
    engines: root.engines,
  }, null, 2)}\n`);
  copyFileSync(join(ROOT, 'README.md'), join(pkg, 'README.md'));
  copyFileSync(noticeFile, join(pkg, 'THIRD-PARTY-NOTICES.txt'));
  const r = spawnSync('npm', ['pack', '--silent', '--pack-destination', npmDir], { cwd: pkg, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm pack failed (${r.status}): ${r.stderr}`);
  const tgz = join(npmDir, `ddferry-${VERSION}.tgz`);
  if (!existsSync(tgz)) throw new Error(`npm pack made no ${tgz}: ${r.stdout}`);
  console.log(`${tgz}: ${mib(tgz)}`);
}

main().catch((err) => {
  console.error(`npm run package: ${err.stack ?? err}`);
  process.exitCode = 1;
});
