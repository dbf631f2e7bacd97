/**
 * Node's single executable applications (SEA), as Node 20.20 makes them: a preparation
 * blob of the main script (`node --experimental-sea-config`), injected with postject into
 * a copy of the running Node binary, stripped of its debugging symbols first.
 *
 * SEA options of Node 20.20 (`useSnapshot`, `useCodeCache` and `assets` are there; `execArgv`
 * is not): `disableExperimentalSEAWarning` (the programs print nothing of their own on
 * start), `useCodeCache` (V8's compiled code of the main script, made here, saves
 * compiling it at each start). `useSnapshot` is not used: it needs a main script written
 * for snapshots (no open handles, a deserialize callback). Nothing goes in `assets`:
 * every runtime asset is in the bundle.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** The fuse postject flips in Node's binary (Node's documentation of SEA). */
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function run(file, args, what) {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${what}: ${file} could not start (${r.error.message})`);
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return r;
}

/** postject in a process of its own (it prints a warning per ELF note it meets); its output is shown only when it fails. */
function inject(root, executable, blob) {
  const cli = join(createRequire(join(root, 'package.json')).resolve('postject'), '..', 'cli.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, executable, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL_FUSE], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`postject ${executable} failed (${code}): ${out.slice(-4000)}`))));
  });
}

/**
 * Make the executable `output` from the main script `main` (in `work`).
 * @returns whether the Node binary could be stripped.
 */
export async function makeExecutable(root, { name, main, output, work }) {
  const blob = join(work, `${name}.blob`);
  const config = join(work, `${name}.sea-config.json`);
  writeFileSync(config, `${JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }, null, 2)}\n`);
  run(process.execPath, ['--experimental-sea-config', config], `node --experimental-sea-config ${config}`);
  rmSync(output, { force: true });
  copyFileSync(process.execPath, output);
  chmodSync(output, 0o755);
  const strip = spawnSync('strip', [output], { encoding: 'utf8' });
  const stripped = strip.status === 0;
  if (!stripped && !strip.error) throw new Error(`strip ${output} failed (${strip.status}): ${strip.stderr}`);
  await inject(root, output, blob);
  const check = run(output, ['--version'], `${output} --version`);
  if (!check.stdout.startsWith(name)) throw new Error(`${output} --version printed "${check.stdout.trim()}", not ${name}'s version`);
  return stripped;
}
