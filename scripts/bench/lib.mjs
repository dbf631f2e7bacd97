// Shared measuring helpers of the benches: a child process timed here, its peak RSS and CPU time
// from GNU time; medians; the build being measured; tool versions.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const TIME_BIN = '/usr/bin/time';
const TIME_TAG = 'DDFERRY_BENCH_TIME';

/** The children's environment: C locale, and no NODE_EXTRA_CA_CERTS (it makes every Node start load a CA bundle). */
export const CHILD_ENV = { ...process.env, LC_ALL: 'C' };
delete CHILD_ENV.NODE_EXTRA_CA_CERTS;

export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * Run a command to its end. Wall time from here; peak RSS (KiB) and CPU seconds from GNU time
 * (`apt-get install time`); without it they are null.
 */
export function runMeasured(cmd, args, { env = CHILD_ENV, cwd } = {}) {
  const useTime = existsSync(TIME_BIN);
  const file = useTime ? TIME_BIN : cmd;
  const fullArgs = useTime ? ['-f', `${TIME_TAG} %e %M %U %S`, cmd, ...args] : args;
  const t0 = nowMs();
  const r = spawnSync(file, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, encoding: 'utf8', env, cwd });
  const wallMs = nowMs() - t0;
  const lines = (r.stderr ?? '').split('\n');
  const k = lines.findLastIndex((l) => l.startsWith(TIME_TAG));
  let maxRssKiB = null;
  let cpuS = null;
  if (k >= 0) {
    const f = lines[k].split(' ');
    maxRssKiB = Number(f[2]);
    cpuS = Number(f[3]) + Number(f[4]);
    lines.splice(k, 1);
  }
  const stderr = lines.join('\n').trim() || (r.error?.message ?? '');
  return { ok: r.status === 0 && !r.error, status: r.status, wallMs, maxRssKiB, cpuS, stdout: r.stdout ?? '', stderr };
}

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function min(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length ? Math.min(...v) : null;
}

/** The newest modification time of the files below `dir` (0 if none). */
function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The commit measured, whether packages/ differs from it, and when the newest file of the packages' dist folders was built. */
export function buildInfo(root) {
  const git = (...args) => spawnSync('git', ['-C', root, ...args], { encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD').stdout?.trim() || 'unknown commit';
  const dirty = (git('status', '--porcelain', '--', 'packages').stdout ?? '').trim() !== '';
  const dists = readdirSync(join(root, 'packages')).map((p) => join(root, 'packages', p, 'dist')).filter((d) => existsSync(d));
  const newest = Math.max(0, ...dists.map(newestMtime));
  const built = newest > 0 ? new Date(newest).toISOString().replace('T', ' ').slice(0, 19) : '?';
  return `commit ${head}${dirty ? ' plus uncommitted changes in packages/' : ''}; dist built ${built} UTC`;
}

/** The first line a tool prints of its version, or null if it does not run. */
export function toolVersion(cmd, flag = '--version') {
  const r = spawnSync(cmd, [flag], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '') ?? null;
}

/** A TCP port free on 127.0.0.1 now. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolvePort(port));
    });
  });
}

/**
 * Start a process under GNU time, in its own process group: `stop` sends SIGINT to the group (GNU time
 * ignores it while it waits; the child stops cleanly). `exited` resolves with its code, peak RSS (KiB) and CPU seconds.
 */
export function startMeasured(cmd, args) {
  const child = spawn(TIME_BIN, ['-f', `${TIME_TAG} %e %M %U %S`, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise((res) => child.on('exit', (code) => {
    const line = stderr.split('\n').findLast((l) => l.startsWith(TIME_TAG));
    const f = line?.split(' ');
    res({ code, maxRssKiB: f ? Number(f[2]) : null, cpuS: f ? Number(f[3]) + Number(f[4]) : null, stderr });
  }));
  return { child, exited, stop: () => process.kill(-child.pid, 'SIGINT'), stdout: () => stdout, stderr: () => stderr };
}
