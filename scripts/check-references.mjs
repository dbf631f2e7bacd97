#!/usr/bin/env node
// Asserts that each package's tsconfig references equal its workspace dependencies,
// and that the solution tsconfig references every package.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const packagesDir = join(root, 'packages');
const names = new Map();
for (const dir of readdirSync(packagesDir)) {
  const pj = JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8'));
  names.set(pj.name, dir);
}
const problems = [];
for (const dir of names.values()) {
  const pj = JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8'));
  const deps = Object.keys({ ...pj.dependencies, ...pj.peerDependencies })
    .filter((d) => names.has(d)).map((d) => names.get(d)).sort();
  const ts = JSON.parse(readFileSync(join(packagesDir, dir, 'tsconfig.json'), 'utf8'));
  const refs = (ts.references ?? []).map((r) => r.path.replace(/^\.\.\//, '')).sort();
  if (JSON.stringify(deps) !== JSON.stringify(refs)) {
    problems.push(`${dir}: workspace dependencies [${deps}] but tsconfig references [${refs}]`);
  }
  if (dir === 'reader' && deps.includes('assembler')) problems.push('reader must not import assembler');
  if (dir === 'assembler' && deps.includes('reader')) problems.push('assembler must not import reader');
}
const solution = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'));
const solRefs = new Set(solution.references.map((r) => r.path));
for (const dir of names.values()) {
  if (!solRefs.has(`packages/${dir}`)) problems.push(`tsconfig.json does not reference packages/${dir}`);
  if (existsSync(join(packagesDir, dir, 'test', 'tsconfig.json')) && !solRefs.has(`packages/${dir}/test`)) {
    problems.push(`tsconfig.json does not reference packages/${dir}/test`);
  }
}
if (problems.length) {
  for (const p of problems) console.error(`check-references: ${p}`);
  process.exit(1);
}
console.log(`check-references: ${names.size} packages consistent`);
