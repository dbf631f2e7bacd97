/**
 * Property-based comparison of ddferry-reader's `ddrescue` with GNU ddrescue 1.27's
 * rescue, in test mode (`-H`, spec 3): every run executes the real
 * `ddrescue -q [options] -H tm --log-reads=reads-K.log in.bin out map` and ours (in
 * process, or the CLI for the signal tests) on the same random input, each in its own
 * folder, and compares the exit status, the final mapfile (`mapBody`: everything but
 * the first, command-line and time lines), the read log after spec 3.2's `nreads`
 * normalisation, and the output file's size and bytes.
 *
 * Random inputs: deterministic content (spec 3.2's sectors, sometimes with zeroed ranges)
 * of 1 to 24 MiB (sometimes smaller), often not a multiple of the cluster or of the
 * sector; test maps with single bad sectors, clusters of them, bad areas straddling
 * cluster and skip boundaries, unaligned bytes, bad heads and tails, every non-`+`
 * status; existing mapfiles and `-m` domain maps; a sparse input above 4 GiB. Option
 * sets: a named matrix, random crosses, partial runs followed by resumes, `-A` and
 * `-M`, and SIGINT/SIGTERM sent to both programs mid-run (then a resume).
 *
 * Environment: DDFERRY_COMPAT_SEED (default 20261125) seeds every property (each adds a
 * hash of its title); DDFERRY_COMPAT_RUNS overrides the number of runs of every random
 * property (the named matrices, the sparse and the signal tests use a tenth of it) and
 * lifts the per-property time limit: run soaks with mocha's `--timeout 0`.
 * The signal tests run `node packages/reader/bin/ddferry-reader.js`: build first
 * (`npx tsc -b`).
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';

import {
  assertDdrescueVersion, detBytes, differences, mapBlocks, runOursInProcess, runRealDdrescue, snapshot, startProcess,
} from '../helpers/ddrescue-compare.js';
import type { Range, RunEnd, Snapshot } from '../helpers/ddrescue-compare.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const SEED = Number(process.env.DDFERRY_COMPAT_SEED ?? 20261125);
const RUNS_ENV = process.env.DDFERRY_COMPAT_RUNS;
/** Runs of a random property: `def`, or DDFERRY_COMPAT_RUNS. */
function runs(def: number): number {
  return RUNS_ENV === undefined ? def : Math.max(1, Number(RUNS_ENV));
}
/** Runs of each named case: `def`, or a tenth of DDFERRY_COMPAT_RUNS. */
function namedRuns(def: number): number {
  return RUNS_ENV === undefined ? def : Math.max(1, Math.ceil(Number(RUNS_ENV) / 10));
}

/** FNV-1a of a test's title, so that each property has its own seed, stable under --grep. */
function titleHash(title: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < title.length; ++i) h = Math.imul(h ^ title.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * fast-check parameters: a seed per property (from SEED and the test's title) and, for
 * the default run counts, a time limit below mocha's timeout (a slow property fails
 * instead of running on). Soaks (DDFERRY_COMPAT_RUNS) have no limit: give mocha
 * `--timeout 0`.
 */
function params<T>(ctx: Mocha.Context, numRuns: number, timeLimitMs = 240_000): fc.Parameters<T> {
  const seed = (SEED + titleHash(ctx.test?.fullTitle() ?? '')) | 0;
  return RUNS_ENV === undefined ? { seed, numRuns, interruptAfterTimeLimit: timeLimitMs, markInterruptAsFailure: true } : { seed, numRuns };
}

/** Make fast-check's report start with how to replay the whole suite. */
async function assertProperty<T>(property: fc.IAsyncPropertyWithHooks<T>, p: fc.Parameters<T>): Promise<void> {
  try {
    await fc.assert(property, p);
  } catch (err) {
    const e = err as Error;
    e.message = `DDFERRY_COMPAT_SEED=${SEED} (this property's seed: ${String(p.seed)})\n${e.message}`;
    throw e;
  }
}

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const CLI = join(REPO, 'packages', 'reader', 'bin', 'ddferry-reader.js');

// ---------------------------------------------------------------------------
// Mapfile text

type Status = '?' | '*' | '/' | '-' | '+';
type BadStatus = '?' | '*' | '/' | '-';

interface Block {
  readonly pos: number;
  readonly size: number;
  readonly status: Status;
}

function hex(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(8, '0')}`;
}

/** A strict mapfile: status line (pass left out when undefined) and contiguous blocks. */
function renderMapfile(blocks: readonly Block[], line: { pos: number; status: string; pass: number | undefined } = { pos: 0, status: '+', pass: 1 }): string {
  const out = ['# written by packages/reader/test/compat/rescue.test.ts', `${hex(line.pos)}     ${line.status}${line.pass === undefined ? '' : `               ${line.pass}`}`];
  for (const b of blocks) out.push(`${hex(b.pos)}  ${hex(b.size)}  ${b.status}`);
  return `${out.join('\n')}\n`;
}

/** Contiguous blocks from sorted, possibly overlapping bad areas over `[0, extent)`, `+` in between. */
function blocksFromAreas(extent: number, areas: readonly { pos: number; size: number; status: BadStatus }[]): Block[] {
  const sorted = areas
    .map((a) => ({ pos: Math.max(0, a.pos), end: Math.min(extent, a.pos + a.size), status: a.status }))
    .filter((a) => a.end > a.pos)
    .sort((a, b) => a.pos - b.pos);
  const merged: { pos: number; end: number; status: BadStatus }[] = [];
  for (const a of sorted) {
    const last = merged[merged.length - 1];
    if (last && a.pos < last.end) last.end = Math.max(last.end, a.end);
    else merged.push({ ...a });
  }
  const blocks: Block[] = [];
  let pos = 0;
  for (const a of merged) {
    if (a.pos > pos) blocks.push({ pos, size: a.pos - pos, status: '+' });
    blocks.push({ pos: a.pos, size: a.end - a.pos, status: a.status });
    pos = a.end;
  }
  if (pos < extent) blocks.push({ pos, size: extent - pos, status: '+' });
  return blocks;
}

// ---------------------------------------------------------------------------
// Generators

const badStatusArb = fc.constantFrom<BadStatus>('-', '?', '*', '/');

/** Input sizes: mostly 1-8 MiB, cluster multiples or not, sector multiples or not, up to 24 MiB. */
const inputSizeArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 16, max: 128 }).map((k) => k * 65536) },
  { weight: 2, arbitrary: fc.integer({ min: 2048, max: 16384 }).map((k) => k * 512) },
  { weight: 2, arbitrary: fc.integer({ min: 1 * MiB, max: 8 * MiB }) },
  { weight: 1, arbitrary: fc.constant(1000000) },
  { weight: 1, arbitrary: fc.integer({ min: 8 * MiB, max: 24 * MiB }) },
  { weight: 1, arbitrary: fc.integer({ min: 2, max: 300000 }) },
);

interface Area {
  readonly pos: number;
  readonly size: number;
  readonly status: BadStatus;
}

/** One bad feature of a test map for an input of `size` bytes. */
function featureArb(size: number): fc.Arbitrary<Area[]> {
  const sectors = Math.max(1, Math.floor(size / 512));
  const clusters = Math.max(1, Math.floor(size / 65536));
  const sector = fc.integer({ min: 0, max: sectors - 1 });
  return fc.oneof(
    // a single bad sector
    { weight: 4, arbitrary: fc.tuple(sector, badStatusArb).map(([s, status]) => [{ pos: s * 512, size: 512, status }]) },
    // a cluster of bad sectors close together
    {
      weight: 3,
      arbitrary: fc.tuple(sector, fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 2, maxLength: 10 }), badStatusArb)
        .map(([s, offsets, status]) => offsets.map((o) => ({ pos: (s + o) * 512, size: 512, status }))),
    },
    // an area straddling a cluster (64 KiB) boundary, in sectors or in bytes
    {
      weight: 3,
      arbitrary: fc.tuple(fc.integer({ min: 1, max: clusters }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }), fc.boolean(), badStatusArb)
        .map(([c, before, after, bytes, status]) => {
          const unit = bytes ? 97 : 512;
          return [{ pos: c * 65536 - before * unit, size: (before + after) * unit, status }];
        }),
    },
    // an area from near a cluster start running about k clusters: its end straddles the
    // skip sizes of pass 1 (64 KiB, 128 KiB, ..., max)
    {
      weight: 3,
      arbitrary: fc.tuple(fc.integer({ min: 0, max: clusters - 1 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 48 }), fc.integer({ min: -8, max: 8 }), badStatusArb)
        .map(([c, shift, k, d, status]) => [{ pos: c * 65536 + shift * 512, size: Math.max(512, k * 65536 + d * 512), status }]),
    },
    // a large area
    {
      weight: 2,
      arbitrary: fc.tuple(sector, fc.integer({ min: 128, max: 6144 }), badStatusArb).map(([s, n, status]) => [{ pos: s * 512, size: n * 512, status }]),
    },
    // a few unaligned bytes
    {
      weight: 2,
      arbitrary: fc.tuple(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 1, max: 3000 }), badStatusArb).map(([pos, n, status]) => [{ pos, size: n, status }]),
    },
    // a bad head
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom(512, 4096, 65536, 65536 + 512, 200000), badStatusArb).map(([n, status]) => [{ pos: 0, size: n, status }]),
    },
    // a bad tail (the test map's last finished block then ends early: a smaller input)
    {
      weight: 1,
      arbitrary: fc.tuple(fc.integer({ min: 1, max: 70000 }), badStatusArb).map(([n, status]) => [{ pos: size - Math.min(n, size - 1), size: n, status }]),
    },
  );
}

interface TestMap {
  readonly text: string;
  readonly blocks: readonly Block[];
}

/**
 * A test map for an input of `size` bytes: bad features with `+` in between, ending at
 * the input's end, a little past it (the real size then wins) or a little before it
 * (the apparent size is then the end of the last finished block); sometimes with
 * unmerged `+` neighbours.
 */
function testMapArb(size: number, maxFeatures = 8): fc.Arbitrary<TestMap> {
  return fc
    .record({
      features: fc.array(featureArb(size), { maxLength: maxFeatures }),
      extent: fc.oneof(
        { weight: 8, arbitrary: fc.constant(size) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: MiB }).map((d) => size + d) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: Math.min(size - 1, MiB) }).map((d) => size - d) },
      ),
      splits: fc.array(fc.boolean(), { maxLength: 6 }),
    })
    .map(({ features, extent, splits }) => {
      let blocks = blocksFromAreas(extent, features.flat());
      if (!blocks.some((b) => b.status === '+')) blocks.push({ pos: extent, size: 65536, status: '+' });
      blocks = blocks.flatMap((b, i) => {
        if (b.status !== '+' || !splits[i % Math.max(1, splits.length)] || b.size < 1024) return [b];
        const cut = Math.floor(b.size / 1024) * 512;
        return [{ pos: b.pos, size: cut, status: '+' }, { pos: b.pos + cut, size: b.size - cut, status: '+' }];
      });
      return { text: renderMapfile(blocks, { pos: 0, status: '+', pass: 1 }), blocks };
    });
}

/** Positions cutting `[0, extent)`: raw, sector-aligned or cluster-aligned. */
function cutsArb(extent: number, maxCuts: number): fc.Arbitrary<number[]> {
  if (extent < 2) return fc.constant([]);
  const cut = fc.oneof(
    { weight: 1, arbitrary: fc.integer({ min: 1, max: extent - 1 }) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: Math.max(1, Math.floor((extent - 1) / 512)) }).map((k) => k * 512) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: Math.max(1, Math.floor((extent - 1) / 65536)) }).map((k) => k * 65536) },
  );
  return fc.array(cut, { maxLength: maxCuts }).map((cs) => [...new Set(cs.filter((c) => c > 0 && c < extent))].sort((a, b) => a - b));
}

/** Strictly contiguous blocks over `[0, extent)` with random statuses (`+` weighted). */
function partitionArb(extent: number, maxBlocks: number, finishedWeight: number, others: readonly Status[] = ['?', '*', '/', '-']): fc.Arbitrary<Block[]> {
  const statusArb = finishedWeight > 0
    ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom<Status>(...others) }, { weight: finishedWeight, arbitrary: fc.constant<Status>('+') })
    : fc.constantFrom<Status>(...others);
  return fc
    .tuple(cutsArb(extent, maxBlocks - 1), fc.array(fc.tuple(statusArb, fc.integer({ min: 0, max: 4 })), { minLength: maxBlocks, maxLength: maxBlocks }))
    .map(([cuts, statuses]) => {
      const edges = [0, ...cuts, extent];
      const blocks: Block[] = [];
      for (let i = 0; i + 1 < edges.length; ++i) {
        const [status, repeat] = statuses[i] ?? ['?', 1];
        const prev = blocks[blocks.length - 1];
        blocks.push({ pos: edges[i]!, size: edges[i + 1]! - edges[i]!, status: repeat === 0 && prev ? prev.status : status });
      }
      return blocks;
    });
}

/** An existing mapfile for an input of `size` bytes: random statuses, covering the input (or a little less or more). */
function startMapArb(size: number, statuses?: readonly Status[]): fc.Arbitrary<string> {
  const extentArb = fc.oneof(
    { weight: 8, arbitrary: fc.constant(size) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: Math.min(size - 1, 2 * MiB) }).map((d) => size - d) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: MiB }).map((d) => size + d) },
  );
  return extentArb.chain((extent) =>
    fc.record({
      blocks: statuses ? partitionArb(extent, 24, 0, statuses) : partitionArb(extent, 24, 3),
      pos: fc.oneof(
        { weight: 2, arbitrary: fc.constant(0) },
        { weight: 3, arbitrary: fc.integer({ min: 0, max: Math.floor(extent / 512) }).map((k) => k * 512) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: extent }) },
      ),
      status: fc.oneof(
        { weight: 10, arbitrary: fc.constantFrom('?', '*', '/', '-', '+') },
        { weight: 1, arbitrary: fc.constantFrom('F', 'G') },
      ),
      pass: fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: 1, max: 5 }) },
        { weight: 1, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.integer({ min: 6, max: 9 }) },
      ),
    }).map(({ blocks, pos, status, pass }) => renderMapfile(blocks, { pos, status, pass })),
  );
}

/** A number as an option value: decimal, hex, or with a k/KiB multiplier. */
function numberArgArb(n: number): fc.Arbitrary<string> {
  const forms: fc.Arbitrary<string>[] = [fc.constant(String(n)), fc.constant(`0x${n.toString(16)}`)];
  if (n > 0 && n % 1024 === 0) forms.push(fc.constant(`${n / 1024}KiB`));
  if (n > 0 && n % 1000 === 0) forms.push(fc.constant(`${n / 1000}k`));
  // sectors of the -b given before it, whatever that is: both programs read it the same way
  if (n > 0 && n % 512 === 0) forms.push(fc.constant(`${n / 512}s`));
  return fc.oneof(...forms);
}

interface DomainChoice {
  readonly args: readonly string[];
  readonly domainMap?: string;
}

/** `-i`/`-s` for an input of `size` bytes; `aligned` picks sector/cluster multiples, else any byte. */
function iposSizeArb(size: number, aligned: boolean | undefined): fc.Arbitrary<DomainChoice> {
  const alignedPos = fc.oneof(
    fc.integer({ min: 0, max: Math.floor((size - 1) / 65536) }).map((k) => k * 65536),
    fc.integer({ min: 0, max: Math.floor((size - 1) / 512) }).map((k) => k * 512),
  );
  const alignedLen = fc.oneof(
    fc.integer({ min: 1, max: Math.max(1, Math.floor(size / 65536)) }).map((k) => k * 65536),
    fc.integer({ min: 1, max: Math.max(1, Math.floor(size / 512)) }).map((k) => k * 512),
  );
  const rawPos = fc.integer({ min: 1, max: size - 1 });
  const rawLen = fc.integer({ min: 1, max: size });
  const pos = aligned === true ? alignedPos : aligned === false ? rawPos : fc.oneof({ weight: 6, arbitrary: fc.oneof(alignedPos, rawPos) }, { weight: 1, arbitrary: fc.integer({ min: size, max: size + MiB }) });
  const len = aligned === true ? alignedLen : aligned === false ? rawLen : fc.oneof({ weight: 6, arbitrary: fc.oneof(alignedLen, rawLen) }, { weight: 1, arbitrary: fc.constantFrom(0, 2 * size) });
  return fc
    .tuple(fc.constantFrom('i', 's', 'is'), pos.chain(numberArgArb), len.chain(numberArgArb))
    .map(([which, p, l]) => ({ args: [...(which.includes('i') ? ['-i', p] : []), ...(which.includes('s') ? ['-s', l] : [])] }));
}

/** `-m dm`: a domain mapfile of random `+` blocks (possibly with `-i`/`-s` as well). */
function domainMapArb(size: number): fc.Arbitrary<DomainChoice> {
  const extentArb = fc.oneof({ weight: 6, arbitrary: fc.constant(size) }, { weight: 1, arbitrary: fc.integer({ min: Math.floor(size / 2), max: size + MiB }) });
  return fc
    .tuple(extentArb.chain((e) => partitionArb(e, 16, 4)), fc.oneof({ weight: 4, arbitrary: fc.constant<DomainChoice | null>(null) }, { weight: 1, arbitrary: iposSizeArb(size, undefined) }))
    .map(([blocks, extra]) => ({ args: ['-m', 'dm', ...(extra?.args ?? [])], domainMap: renderMapfile(blocks) }));
}

function domainArb(size: number): fc.Arbitrary<DomainChoice> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant<DomainChoice>({ args: [] }) },
    { weight: 3, arbitrary: iposSizeArb(size, undefined) },
    { weight: 2, arbitrary: domainMapArb(size) },
  );
}

/** A `--cpass` value: a random non-empty set of passes, as a list, ranges or both. */
const cpassArb: fc.Arbitrary<string> = fc
  .tuple(fc.subarray([1, 2, 3, 4, 5], { minLength: 1 }), fc.boolean())
  .map(([passes, ranges]) => {
    if (!ranges) return `--cpass=${passes.join(',')}`;
    const parts: string[] = [];
    for (let i = 0; i < passes.length;) {
      let j = i;
      while (j + 1 < passes.length && passes[j + 1] === passes[j]! + 1) ++j;
      parts.push(j > i ? `${passes[i]}-${passes[j]}` : String(passes[i]));
      i = j + 1;
    }
    return `--cpass=${parts.join(',')}`;
  });

function pick(weighted: readonly [number, readonly string[]][]): fc.Arbitrary<readonly string[]> {
  return fc.oneof(...weighted.map(([weight, v]) => ({ weight, arbitrary: fc.constant(v) })));
}

const directionArb = pick([[6, []], [2, ['-R']], [2, ['-u']], [1, ['-R', '-u']]]);
const retriesArb = pick([[6, []], [1, ['-r1']], [2, ['-r2']], [1, ['-r3']]]);
const trimScrapeArb = pick([[6, []], [2, ['-n']], [2, ['-N']], [1, ['-n', '-N']]]);
const skipArb = pick([
  [8, []], [2, ['-K0']], [2, ['-K', '64KiB,64KiB']], [2, ['-K', '128KiB,1MiB']], [1, ['-K', '192KiB']], [1, ['-K', ',256KiB']],
  [1, ['-K', '100000,3000000']],
]);
const geometryArb = pick([
  [10, []], [1, ['-c1']], [1, ['-c', '32768']], [1, ['-c', '16']], [1, ['-c', '300']],
  [2, ['-b', '4096']], [2, ['-b', '4096', '-c', '4']], [1, ['-b', '4096', '-c', '1']], [1, ['-b', '1024', '-c', '100']],
  [1, ['-b', '2048', '-c', '3']], [1, ['-b', '520']],
]);

/** Options that change the output, the checks or the map reading, not the reads (mostly). */
const extrasArb: fc.Arbitrary<readonly string[]> = fc.oneof(
  { weight: 14, arbitrary: fc.constant<readonly string[]>([]) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 4 * MiB }).chain(numberArgArb).map((n) => ['-o', n]) },
  { weight: 1, arbitrary: fc.constant<readonly string[]>(['-S']) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 28 * MiB }).map((n) => ['-x', String(n)]) },
  { weight: 1, arbitrary: fc.constant<readonly string[]>(['-C']) },
  { weight: 1, arbitrary: fc.constant<readonly string[]>(['-I']) },
  { weight: 1, arbitrary: fc.constant<readonly string[]>(['-t']) },
  { weight: 1, arbitrary: fc.constant<readonly string[]>(['-O']) },
  { weight: 1, arbitrary: fc.constant<readonly string[]>(['-L']) },
  { weight: 1, arbitrary: fc.constant<readonly string[]>(['--pause-on-error=s1']) },
);

/** A random cross of every option family (geometry first, so that `-b` comes before sizes). */
function optionCrossArb(size: number): fc.Arbitrary<DomainChoice> {
  return fc
    .tuple(
      geometryArb, directionArb, retriesArb, trimScrapeArb, skipArb,
      fc.oneof({ weight: 5, arbitrary: fc.constant<string[]>([]) }, { weight: 1, arbitrary: cpassArb.map((c) => [c]) }),
      extrasArb, domainArb(size),
    )
    .map(([g, d, r, t, k, c, x, dom]) => ({ args: [...g, ...d, ...r, ...t, ...k, ...c, ...x, ...dom.args], domainMap: dom.domainMap }));
}

// ---------------------------------------------------------------------------
// Scenarios: one input, one test map, maybe a start map and a domain map, and the
// option sets of one or more successive runs on the same files.

interface Scenario {
  readonly size: number;
  /** Ranges of the input zeroed (for `-S`), inside spec 3.2's content. */
  readonly zeros?: readonly Range[];
  readonly testMap: TestMap;
  readonly startMap?: string;
  readonly domainMap?: string;
  readonly steps: readonly (readonly string[])[];
}

let detCache: Buffer | undefined;
/** 24 MiB of spec 3.2's content; inputs are prefixes of it. */
function det(): Buffer {
  detCache ??= detBytes(0, 24 * MiB);
  return detCache;
}

/** The scratch folder of the test-mode comparisons. */
let ROOT: string;

function argvOf(step: readonly string[], k: number, input: string): string[] {
  return ['-q', ...step, '-H', 'tm', `--log-reads=reads-${k}.log`, input, 'out', 'map'];
}

function heredoc(name: string, text: string): string {
  return `cat > ${name} <<'EOF'\n${text}EOF`;
}

/** A bash recipe that replays the scenario with GNU ddrescue in an empty folder. */
function recipe(sc: Scenario, upTo = sc.steps.length): string {
  const lines = [
    `python3 -c "import struct,sys; n=${sc.size}; sys.stdout.buffer.write(b''.join(struct.pack('>Q',i+1)*64 for i in range((n+511)//512))[:n])" > in.bin`,
    heredoc('tm', sc.testMap.text),
  ];
  if (sc.zeros?.length) lines.splice(1, 0, `python3 -c "f=open('in.bin','r+b'); [(f.seek(p), f.write(bytes(n))) for p, n in ${JSON.stringify(sc.zeros.map((z) => [z.pos, z.size]))}]"`);
  if (sc.startMap !== undefined) lines.push(heredoc('map', sc.startMap));
  if (sc.domainMap !== undefined) lines.push(heredoc('dm', sc.domainMap));
  sc.steps.slice(0, upTo).forEach((step, i) => lines.push(`ddrescue ${argvOf(step, i + 1, 'in.bin').join(' ')}; echo "exit $?"`));
  return lines.join('\n');
}

function prepareSide(dir: string, sc: Scenario): void {
  mkdirSync(dir);
  writeFileSync(join(dir, 'tm'), sc.testMap.text);
  if (sc.startMap !== undefined) writeFileSync(join(dir, 'map'), sc.startMap);
  if (sc.domainMap !== undefined) writeFileSync(join(dir, 'dm'), sc.domainMap);
}

/** Run every step with both programs and compare after each; throw a replayable report on the first difference. */
async function checkScenario(sc: Scenario): Promise<void> {
  const dir = mkdtempSync(join(ROOT, 'run-'));
  try {
    writeFileSync(join(dir, 'in.bin'), inputOf(sc));
    const realDir = join(dir, 'real');
    const oursDir = join(dir, 'ours');
    prepareSide(realDir, sc);
    prepareSide(oursDir, sc);
    for (let k = 1; k <= sc.steps.length; ++k) {
      const argv = argvOf(sc.steps[k - 1]!, k, '../in.bin');
      const realRun = runRealDdrescue(argv, realDir);
      const oursEnd = await runOursInProcess(argv, oursDir);
      const realEnd = await realRun;
      const names = { map: 'map', reads: `reads-${k}.log`, out: 'out' };
      const problems = differences({ end: realEnd, snap: snapshot(realDir, names) }, { end: oursEnd, snap: snapshot(oursDir, names) });
      if (problems.length > 0) {
        throw new Error(`ddferry differs from GNU ddrescue 1.27 after run ${k} of ${sc.steps.length}\n  ${problems.join('\n  ')}\nreplay:\n${recipe(sc, k)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Zeroed ranges of an input of `size` bytes: none, or a few, aligned or not. */
function zerosArb(size: number): fc.Arbitrary<Range[]> {
  const range = fc.tuple(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 1, max: 300000 }), fc.boolean()).map(([pos, n, aligned]) => {
    const p = aligned ? pos - (pos % 512) : pos;
    return { pos: p, size: Math.min(size - p, aligned ? Math.ceil(n / 512) * 512 : n) };
  });
  return fc.oneof({ weight: 2, arbitrary: fc.constant<Range[]>([]) }, { weight: 1, arbitrary: fc.array(range, { minLength: 1, maxLength: 3 }) });
}

/**
 * The input size ddrescue sees in test mode (spec 3.1): the end of the test map's last
 * finished block if the file is larger.
 */
function apparentSize(size: number, tm: TestMap): number {
  const t = Math.max(0, ...tm.blocks.filter((b) => b.status === '+').map((b) => b.pos + b.size));
  return size > t ? t : size;
}

/** A scenario: an input size, a test map, zeroed ranges, and the steps made for the input size ddrescue sees. */
function scenarioArb(stepsOf: (size: number) => fc.Arbitrary<{ steps: readonly (readonly string[])[]; domainMap?: string; startMap?: string }>, sizeArb = inputSizeArb): fc.Arbitrary<Scenario> {
  return sizeArb.chain((size) =>
    fc.tuple(testMapArb(size), zerosArb(size)).chain(([testMap, zeros]) =>
      stepsOf(Math.max(2, apparentSize(size, testMap))).map((s) => ({ size, zeros, testMap, ...s }))),
  );
}

/** The scenario's input: spec 3.2's content with its zeroed ranges. */
function inputOf(sc: Scenario): Buffer {
  const buf = Buffer.from(det().subarray(0, sc.size));
  for (const z of sc.zeros ?? []) buf.fill(0, z.pos, z.pos + z.size);
  return buf;
}

// ---------------------------------------------------------------------------

describe('ddferry-reader ddrescue vs GNU ddrescue 1.27 (test mode, random inputs)', function () {
  before(async function () {
    await assertDdrescueVersion();
    ROOT = mkdtempSync(join(tmpdir(), 'ddferry-rescue-compat-'));
  });
  after(function () {
    if (ROOT) rmSync(ROOT, { recursive: true, force: true });
  });

  describe('one run from no mapfile, a named matrix of option sets', function () {
    const NAMED: readonly { name: string; steps: (size: number) => fc.Arbitrary<DomainChoice> }[] = [
      ...([
        [], ['-r3'], ['-n'], ['-N'], ['-R'], ['-u'], ['-K0'], ['-K', '64KiB,64KiB'], ['-K', '128KiB,1MiB'], ['-c1'], ['-c', '32768'],
        ['-R', '-r2'], ['-u', '-r2'], ['-b', '4096', '-c', '4'], ['-b', '4096'], ['-n', '-N'],
      ] as const).map((args) => ({ name: args.length ? args.join(' ') : '(default)', steps: () => fc.constant<DomainChoice>({ args }) })),
      { name: '--cpass=<random passes>', steps: () => cpassArb.map((c) => ({ args: [c] })) },
      { name: '-i/-s aligned', steps: (size) => iposSizeArb(size, true) },
      { name: '-i/-s unaligned', steps: (size) => iposSizeArb(size, false) },
      { name: '-m <random domain map>', steps: (size) => domainMapArb(size) },
    ];
    for (const n of NAMED) {
      it(`ddrescue ${n.name}`, async function () {
        await assertProperty(
          fc.asyncProperty(scenarioArb((size) => n.steps(size).map((d) => ({ steps: [d.args], domainMap: d.domainMap }))), checkScenario),
          params(this, namedRuns(5)),
        );
      });
    }
  });

  it('one run from no mapfile, random crosses of options (-b -c -R -u -r -n -N -K --cpass -i -s -m)', async function () {
    await assertProperty(
      fc.asyncProperty(scenarioArb((size) => optionCrossArb(size).map((d) => ({ steps: [d.args], domainMap: d.domainMap }))), checkScenario),
      params(this, runs(250)),
    );
  });

  describe('from a random existing mapfile: a named matrix', function () {
    const NAMED: readonly { name: string; statuses?: readonly Status[]; steps: readonly (readonly string[])[] }[] = [
      { name: 'ddrescue (resume)', steps: [[]] },
      { name: 'ddrescue -A', steps: [['-A'], []] },
      { name: 'ddrescue -M', steps: [['-M'], []] },
      { name: 'ddrescue -A -M -r1', steps: [['-A', '-M', '-r1']] },
      { name: 'ddrescue -R -r2', steps: [['-R', '-r2']] },
      { name: 'ddrescue -C', steps: [['-C']] },
      { name: 'ddrescue -I', steps: [['-I']] },
      { name: 'ddrescue -e +1, then ddrescue -e 3', steps: [['-e', '+1'], ['-e', '3']] },
      { name: 'ddrescue -X3 -r1, then ddrescue', steps: [['-X3', '-r1'], []] },
      { name: 'ddrescue -t (a mapfile of ? only: blank)', statuses: ['?'], steps: [['-t']] },
      { name: 'ddrescue -A -t (a mapfile of ?, * and / only: blank once -A has made it all ?)', statuses: ['?', '*', '/'], steps: [['-A', '-t']] },
    ];
    for (const n of NAMED) {
      it(`${n.name}${n.statuses ? '' : ' on a mapfile of random statuses'}`, async function () {
        await assertProperty(
          fc.asyncProperty(scenarioArb((size) => startMapArb(size, n.statuses).map((startMap) => ({ startMap, steps: n.steps })), fc.oneof(inputSizeArb.filter((s) => s <= 8 * MiB), fc.constant(1000000))), checkScenario),
          params(this, namedRuns(3)),
        );
      });
    }
  });

  it('from a random existing mapfile (random statuses and status line, strictly contiguous), random options, then a plain resume', async function () {
    const smallSize = fc.oneof(inputSizeArb.filter((s) => s <= 8 * MiB), fc.constant(1000000));
    await assertProperty(
      fc.asyncProperty(
        scenarioArb((size) =>
          fc.tuple(startMapArb(size), optionCrossArb(size), pick([[3, []], [1, ['-A']], [1, ['-M']], [1, ['-A', '-M']]]), fc.boolean())
            .map(([startMap, d, am, resume]) => ({ startMap, domainMap: d.domainMap, steps: resume ? [[...am, ...d.args], []] : [[...am, ...d.args]] })), smallSize),
        checkScenario,
      ),
      params(this, runs(250)),
    );
  });

  describe('a partial run, then a resume: a named matrix', function () {
    const NAMED: readonly (readonly (readonly string[])[])[] = [
      [['-X5'], []],
      [['-X', '0'], ['-X', '2'], []],
      [['-e', '2'], []],
      [['-e', '+1'], ['-e', '+1'], []],
      [['--cpass=1', '-n', '-N'], ['-A']],
      [['--cpass=1', '-n', '-N'], ['-M']],
      [['-X5'], ['-A']],
      [['-X5'], ['-M']],
      [['-n', '-N'], ['-M', '-r1']],
      [['-b', '4096', '-c', '4', '-X3'], ['-b', '4096', '-c', '4', '-A', '-M']],
    ];
    for (const steps of NAMED) {
      it(steps.map((a) => `ddrescue ${a.join(' ')}`.trimEnd()).join(', then '), async function () {
        await assertProperty(
          fc.asyncProperty(scenarioArb(() => fc.constant({ steps }), fc.oneof(inputSizeArb.filter((s) => s <= 8 * MiB), fc.constant(1000000))), checkScenario),
          params(this, namedRuns(3)),
        );
      });
    }
  });

  it('a partial run (-X, -e, --cpass -n -N, ...) then resumes (plain, -A, -M, -r, -R, ...)', async function () {
    const n = fc.integer({ min: 0, max: 8 });
    const firstArb = fc.oneof(
      fc.constant<readonly string[]>(['--cpass=1', '-n', '-N']),
      fc.constant<readonly string[]>(['--cpass=1-2', '-n', '-N']),
      n.map((x) => ['-X', String(x)]),
      n.map((x) => ['-X', String(x), '-R']),
      n.map((x) => ['--cpass=1', '-X', String(x)]),
      n.map((x) => ['-e', String(x)]),
      n.map((x) => ['-e', `+${x}`]),
      fc.constant<readonly string[]>(['-n']),
      fc.constant<readonly string[]>(['-N']),
      fc.constant<readonly string[]>(['-n', '-N', '-u']),
      n.map((x) => ['-r1', '-X', String(x + 8)]),
    );
    const secondArb = fc.oneof(
      fc.constant<readonly string[]>([]),
      fc.constant<readonly string[]>(['-A']),
      fc.constant<readonly string[]>(['-M']),
      fc.constant<readonly string[]>(['-A', '-M']),
      fc.constant<readonly string[]>(['-r2']),
      fc.constant<readonly string[]>(['-R']),
      fc.constant<readonly string[]>(['-u', '-r1']),
      fc.constant<readonly string[]>(['--cpass=3-4', '-n', '-N']),
      fc.constant<readonly string[]>(['-M', '-n']),
      fc.constant<readonly string[]>(['-A', '-N']),
      fc.constant<readonly string[]>(['-R', '-r1', '-M']),
      n.map((x) => ['-X', String(x)]),
      n.map((x) => ['-e', `+${x}`]),
    );
    const prefixArb = fc.tuple(pick([[6, []], [1, ['-b', '4096']], [1, ['-b', '4096', '-c', '4']], [1, ['-c', '16']]]), pick([[4, []], [1, ['-K0']], [1, ['-K', '64KiB,64KiB']]]));
    await assertProperty(
      fc.asyncProperty(
        scenarioArb(() =>
          fc.tuple(prefixArb, firstArb, secondArb, fc.oneof(fc.constant<readonly string[] | null>(null), fc.constant<readonly string[] | null>([]), fc.constant<readonly string[] | null>(['-r1'])))
            .map(([[g, k], first, second, third]) => ({ steps: [[...g, ...k, ...first], [...g, ...k, ...second], ...(third ? [[...g, ...k, ...third]] : [])] })),
        fc.oneof(inputSizeArb.filter((s) => s <= 8 * MiB), fc.constant(1000000))),
        checkScenario,
      ),
      params(this, runs(250)),
    );
  });
});

// ---------------------------------------------------------------------------
// A sparse input above 4 GiB

const BIG_SIZE = 4 * GiB + 12345;
/** Windows of the big input that hold data (the rest is a hole) and are good in the test maps. */
const WINDOWS: readonly Range[] = [
  { pos: 0, size: 256 * KiB },
  { pos: 4 * GiB - 1536 * KiB, size: 3 * MiB },
  { pos: Math.floor((BIG_SIZE - 700000) / 512) * 512, size: BIG_SIZE - Math.floor((BIG_SIZE - 700000) / 512) * 512 },
];

/** A mostly bad test map of the big input: the windows are good except for random features inside them. */
const bigTestMapArb: fc.Arbitrary<TestMap> = fc
  .tuple(
    fc.tuple(fc.array(featureArb(WINDOWS[0]!.size), { maxLength: 4 }), fc.array(featureArb(WINDOWS[1]!.size), { maxLength: 4 }), fc.array(featureArb(WINDOWS[2]!.size), { maxLength: 4 })),
    fc.tuple(badStatusArb, badStatusArb, fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 4096 })),
  )
  .map(([features, [gap1, gap2, trimA, trimB]]) => {
    const [w0, w1, w2] = [WINDOWS[0]!, WINDOWS[1]!, WINDOWS[2]!];
    // bad between the windows; the window edges move a little so that they are unaligned
    const areas: Area[] = [
      { pos: w0.size - trimA, size: w1.pos - w0.size + trimA + trimB, status: gap1 },
      { pos: w1.pos + w1.size, size: w2.pos - (w1.pos + w1.size), status: gap2 },
    ];
    WINDOWS.forEach((w, i) => {
      for (const a of (features[i] ?? []).flat()) {
        // keep the last 4 KiB of the input good: the apparent size stays the real one
        const end = Math.min(a.pos + a.size, w.size - (i === 2 ? 4096 : 0));
        if (end > a.pos) areas.push({ pos: w.pos + a.pos, size: end - a.pos, status: a.status });
      }
    });
    const blocks = blocksFromAreas(BIG_SIZE, areas);
    return { text: renderMapfile(blocks), blocks };
  });

/** The parts of `a` inside `b` (both sorted, non-overlapping). */
function intersect(a: readonly Range[], b: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const x of a) {
    for (const y of b) {
      const pos = Math.max(x.pos, y.pos);
      const end = Math.min(x.pos + x.size, y.pos + y.size);
      if (end > pos) out.push({ pos, size: end - pos });
    }
  }
  return out;
}

describe('ddferry-reader ddrescue vs GNU ddrescue 1.27 on a sparse input of 4 GiB + 12345 bytes', function () {
  let dir: string;
  before(async function () {
    await assertDdrescueVersion();
    dir = mkdtempSync(join(tmpdir(), 'ddferry-rescue-compat-big-'));
    const fd = openSync(join(dir, 'in.bin'), 'w');
    try {
      ftruncateSync(fd, BIG_SIZE);
      for (const w of WINDOWS) writeSync(fd, detBytes(w.pos, w.size), 0, w.size, w.pos);
    } finally {
      closeSync(fd);
    }
  });
  after(function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const w1 = WINDOWS[1]!;
  const w2 = WINDOWS[2]!;
  const CASES: readonly { name: string; args: fc.Arbitrary<DomainChoice & { startMap?: string }> }[] = [
    {
      name: 'from an existing mapfile with blocks above 4 GiB, -i/-s straddling 4 GiB, -A/-M/-r1',
      args: fc.tuple(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean()), { minLength: 4, maxLength: 24 }),
        fc.array(fc.constantFrom<Status>('?', '*', '/', '-', '+'), { minLength: 25, maxLength: 25 }),
        fc.integer({ min: w1.pos, max: 4 * GiB - 1 }),
        fc.integer({ min: 65536, max: 2 * MiB }),
        pick([[2, []], [1, ['-A']], [1, ['-M']], [1, ['-r1']], [1, ['-R', '-M']]]),
      ).map(([cutPicks, statuses, i, len, extra]) => {
        const cuts = cutPicks.map(([wi, f, aligned]) => {
          const w = WINDOWS[wi]!;
          const c = w.pos + Math.floor(f * w.size);
          return aligned ? c - (c % 512) : c;
        });
        const edges = [...new Set([0, ...cuts.filter((c) => c > 0 && c < BIG_SIZE), BIG_SIZE])].sort((a, b) => a - b);
        const blocks = edges.slice(1).map((end, k): Block => ({ pos: edges[k]!, size: end - edges[k]!, status: statuses[k] ?? '?' }));
        return { args: [...extra, '-i', String(i), '-s', String(len)], startMap: renderMapfile(blocks, { pos: w1.pos, status: '?', pass: 1 }) };
      }),
    },
    {
      name: '-i/-s straddling 4 GiB, random direction and retries',
      args: fc.tuple(fc.integer({ min: w1.pos - 65536, max: 4 * GiB - 1 }), fc.integer({ min: 65536, max: 2 * MiB }), directionArb, retriesArb)
        .map(([i, s, d, r]) => ({ args: [...d, ...r, '-i', String(i), '-s', String(s)] })),
    },
    {
      name: '-b 4096 -c 4 with -i/-s straddling 4 GiB',
      args: fc.tuple(fc.integer({ min: w1.pos / 4096, max: 4 * GiB / 4096 }), fc.integer({ min: 16, max: 512 }))
        .map(([i, s]) => ({ args: ['-b', '4096', '-c', '4', '-i', `0x${(i * 4096).toString(16)}`, '-s', `${s * 4}KiB`] })),
    },
    {
      name: '-i near the end (unaligned end of input), -R',
      args: fc.integer({ min: w2.pos - 65536, max: BIG_SIZE - 1 }).map((i) => ({ args: ['-R', '-i', String(i)] })),
    },
    {
      name: '-m with + blocks inside the windows',
      args: fc.array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true })), { minLength: 3, maxLength: 3 }).map((picks) => {
        const blocks: Block[] = [];
        let pos = 0;
        WINDOWS.forEach((w, i) => {
          const [a, b] = picks[i] ?? [0, 1];
          const start = w.pos + Math.floor(a * (w.size - 1));
          const end = Math.min(w.pos + w.size, start + 1 + Math.floor(b * w.size));
          if (start > pos) blocks.push({ pos, size: start - pos, status: '?' });
          blocks.push({ pos: start, size: end - start, status: '+' });
          pos = end;
        });
        if (pos < BIG_SIZE) blocks.push({ pos, size: BIG_SIZE - pos, status: '?' });
        return { args: ['-m', 'dm'], domainMap: renderMapfile(blocks) };
      }),
    },
    { name: 'whole input, -K0 -n -N (every cluster read once)', args: fc.constant({ args: ['-K0', '-n', '-N'] }) },
    { name: 'whole input, --cpass=1,2 -n (skips sized from the 4 GiB input size, trimming)', args: fc.constant({ args: ['--cpass=1,2', '-n'] }) },
  ];

  for (const c of CASES) {
    it(c.name, async function () {
      await assertProperty(
        fc.asyncProperty(bigTestMapArb, c.args, async (tm, d) => {
          const run = mkdtempSync(join(dir, 'run-'));
          try {
            const sc: Scenario = { size: BIG_SIZE, testMap: tm, domainMap: d.domainMap, startMap: d.startMap, steps: [d.args] };
            const realDir = join(run, 'real');
            const oursDir = join(run, 'ours');
            prepareSide(realDir, sc);
            prepareSide(oursDir, sc);
            const argv = argvOf(d.args, 1, relative(realDir, join(dir, 'in.bin')));
            const realRun = runRealDdrescue(argv, realDir);
            const oursEnd = await runOursInProcess(argv, oursDir);
            const realEnd = await realRun;
            const names = { map: 'map', reads: 'reads-1.log', out: 'out' };
            const realSnap0 = snapshot(realDir, names, []);
            // the outputs are sparse files of about 4 GiB: hash the rescued ranges inside the windows only
            const ranges = realSnap0.map === null ? [] : intersect(mapBlocks(realSnap0.map).filter((b) => b.status === '+'), WINDOWS);
            const problems = differences({ end: realEnd, snap: snapshot(realDir, names, ranges) }, { end: oursEnd, snap: snapshot(oursDir, names, ranges) });
            if (problems.length > 0) {
              throw new Error(`ddferry differs from GNU ddrescue 1.27\n  ${problems.join('\n  ')}\nreplay:\n` +
                `truncate -s ${BIG_SIZE} in.bin  # then spec 3.2's sectors written at ${WINDOWS.map((w) => `[${w.pos}, +${w.size})`).join(', ')}\n` +
                `${heredoc('tm', tm.text)}\n${d.domainMap ? `${heredoc('dm', d.domainMap)}\n` : ''}${d.startMap ? `${heredoc('map', d.startMap)}\n` : ''}ddrescue ${argvOf(d.args, 1, 'in.bin').join(' ')}`);
            }
          } finally {
            rmSync(run, { recursive: true, force: true });
          }
        }),
        params(this, namedRuns(2)),
      );
    });
  }
});

// ---------------------------------------------------------------------------
// Signals

/** Exit status 128+N, or death by the signal. */
function endedBySignal(end: RunEnd, sig: 'SIGINT' | 'SIGTERM'): boolean {
  return end.signal === sig || end.status === 128 + (sig === 'SIGINT' ? 2 : 15);
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > timeoutMs) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/**
 * Start `command args` in `cwd` with `--pause-on-error=2`, and once it has opened its
 * read log (so it runs) wait 0.8 s and send `sig`: by then it has made its first failed
 * read and sleeps in the 2 s pause after it, so both programs are interrupted at the same
 * read however long they took to start.
 */
async function interruptAfterFirstError(command: string, args: readonly string[], cwd: string, sig: 'SIGINT' | 'SIGTERM'): Promise<RunEnd> {
  const { child, done } = startProcess(command, args, { cwd });
  let ended = false;
  void done.then(() => {
    ended = true;
  }, () => {
    ended = true;
  });
  const started = await waitFor(() => ended || existsSync(join(cwd, 'reads-1.log')), 20_000);
  if (started && !ended) {
    await new Promise((r) => setTimeout(r, 800));
    child.kill(sig);
  }
  return done;
}

interface SignalCase {
  readonly name: string;
  readonly sig: 'SIGINT' | 'SIGTERM';
  readonly arb: fc.Arbitrary<Scenario>;
}

/**
 * A test map with bad sectors in the first 128 KiB, so that the first failed read comes
 * at once, and a good last 4 KiB, so that the input keeps its size.
 */
function earlyBadArb(size: number): fc.Arbitrary<TestMap> {
  return fc.tuple(testMapArb(size, 4), fc.integer({ min: 1, max: 255 }), badStatusArb).map(([tm, s, status]) => {
    const bad = tm.blocks.filter((b): b is Block & { status: BadStatus } => b.status !== '+' && b.pos + b.size <= size - 4096);
    const blocks = blocksFromAreas(size, [...bad, { pos: s * 512, size: 1024, status }]);
    return { text: renderMapfile(blocks), blocks };
  });
}

/** The test map's blocks from index `k` on, as one finished block (a start map that retries only its first blocks). */
function restPlus(blocks: readonly Block[], k: number): Block[] {
  const rest = blocks.slice(k);
  if (rest.length === 0) return [];
  const last = rest[rest.length - 1]!;
  return [{ pos: rest[0]!.pos, size: last.pos + last.size - rest[0]!.pos, status: '+' }];
}

const signalSizeArb = fc.oneof(fc.integer({ min: 16, max: 64 }).map((k) => k * 65536), fc.constant(1000000), fc.integer({ min: 1 * MiB, max: 4 * MiB }));

describe('signals: SIGINT/SIGTERM to GNU ddrescue and to the ddferry-reader CLI mid-run, then a resume', function () {
  let sigRoot: string;
  before(async function () {
    await assertDdrescueVersion();
    if (!existsSync(join(REPO, 'packages', 'reader', 'dist', 'main.js'))) {
      throw new Error(`${relative(process.cwd(), join(REPO, 'packages/reader/dist/main.js'))} is missing: build first with 'npx tsc -b' in ${REPO}`);
    }
    const stale = staleDistFiles();
    if (stale.length > 0) throw new Error(`packages/reader/dist is older than its sources (${stale.slice(0, 3).join(', ')}...): build first with 'npx tsc -b' in ${REPO}`);
    sigRoot = mkdtempSync(join(tmpdir(), 'ddferry-rescue-compat-sig-'));
  });
  after(function () {
    if (sigRoot) rmSync(sigRoot, { recursive: true, force: true });
  });

  const CASES: readonly SignalCase[] = [
    {
      name: 'SIGINT in copying pass 1 (default options or -u)',
      sig: 'SIGINT',
      arb: signalSizeArb.chain((size) => fc.tuple(earlyBadArb(size), directionArb.filter((d) => !d.includes('-R'))).map(([testMap, d]) => ({ size, testMap, steps: [d, d] }))),
    },
    {
      name: 'SIGTERM in copying pass 1 (-K0 or -b 4096 -c 4)',
      sig: 'SIGTERM',
      arb: signalSizeArb.chain((size) => fc.tuple(earlyBadArb(size), pick([[1, ['-K0']], [1, ['-b', '4096', '-c', '4']]])).map(([testMap, d]) => ({ size, testMap, steps: [d, d] }))),
    },
    {
      name: 'SIGINT while trimming and scraping (start map with * and / blocks)',
      sig: 'SIGINT',
      arb: signalSizeArb.chain((size) =>
        fc.tuple(earlyBadArb(size), fc.integer({ min: 2, max: Math.floor(size / 65536) - 1 })).map(([testMap, k]) => ({
          size,
          testMap,
          startMap: renderMapfile([{ pos: 0, size: 65536, status: '*' }, { pos: 65536, size: (k - 1) * 65536, status: '/' }, { pos: k * 65536, size: size - k * 65536, status: '+' }], { pos: 0, status: '*', pass: 1 }),
          steps: [[], []],
        }))),
    },
    {
      name: 'SIGTERM while retrying (-r2 on a start map of - blocks)',
      sig: 'SIGTERM',
      arb: signalSizeArb.chain((size) =>
        fc.tuple(earlyBadArb(size), fc.integer({ min: 2, max: 8 })).map(([testMap, k]) => ({
          size,
          testMap,
          startMap: renderMapfile(testMap.blocks.slice(0, k).map((blk): Block => ({ ...blk, status: blk.status === '+' ? '+' : '-' })).concat(restPlus(testMap.blocks, k)), { pos: 0, status: '-', pass: 1 }),
          steps: [['-r2'], ['-r2']],
        }))),
    },
  ];

  for (const pause of ['--pause-on-error=10', '--pause-on-pass=10']) {
    it(`a signal cuts ${pause.replace('=10', '')} short, as in ddrescue (which ends within a second of SIGINT)`, async function () {
      const dir = mkdtempSync(join(sigRoot, 'pause-'));
      try {
        const size = 1 * MiB;
        const testMap = renderMapfile([{ pos: 0, size: 0x10000, status: '+' }, { pos: 0x10000, size: 0x200, status: '-' }, { pos: 0x10200, size: size - 0x10200, status: '+' }]);
        writeFileSync(join(dir, 'in.bin'), det().subarray(0, size));
        const argv = ['-q', pause, '-H', 'tm', '--log-reads=reads-1.log', '../in.bin', 'out', 'map'];
        const ends: string[] = [];
        for (const [who, command, args] of [['ddrescue', 'ddrescue', argv], ['ddferry', process.execPath, [CLI, 'ddrescue', ...argv]]] as const) {
          const d = join(dir, who);
          mkdirSync(d);
          writeFileSync(join(d, 'tm'), testMap);
          const { child, done } = startProcess(command, args, { cwd: d });
          if (!(await waitFor(() => existsSync(join(d, 'reads-1.log')), 20_000))) throw new Error(`${who} did not start`);
          await new Promise((r) => setTimeout(r, 800));
          const t = Date.now();
          child.kill('SIGINT');
          const end = await done;
          const ms = Date.now() - t;
          ends.push(`${who}: ${end.signal ? `killed by ${end.signal}` : `exit ${String(end.status)}`} ${ms} ms after SIGINT`);
          if (!endedBySignal(end, 'SIGINT') || ms > 2500) {
            throw new Error(`ddferry differs from GNU ddrescue 1.27: SIGINT during ${pause.replace('=10', '')} must end the run at once\n  ${ends.join('\n  ')}\n` +
              `replay: printf '0 +\\n0 0x10000 +\\n0x10000 0x200 -\\n0x10200 0xEFE00 +\\n' > tm; head -c 1M /dev/urandom > in.bin\n` +
              `  ddrescue -q ${pause} -H tm in.bin out map & sleep 1; kill -INT $!; time wait $!      # ends at once\n` +
              `  node packages/reader/bin/ddferry-reader.js ddrescue -q ${pause} -H tm in.bin out2 map2 & sleep 1; kill -INT $!; time wait $!      # sleeps out the pause`);
          }
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  for (const c of CASES) {
    it(`${c.name}: both end by ${c.sig}, and the mapfiles after a resume are the same`, async function () {
      await assertProperty(
        fc.asyncProperty(c.arb, async (sc) => {
          const dir = mkdtempSync(join(sigRoot, 'run-'));
          try {
            writeFileSync(join(dir, 'in.bin'), det().subarray(0, sc.size));
            const realDir = join(dir, 'real');
            const oursDir = join(dir, 'ours');
            prepareSide(realDir, sc);
            prepareSide(oursDir, sc);
            const first = ['--pause-on-error=2', ...argvOf(sc.steps[0]!, 1, '../in.bin')];
            const [realInt, oursInt] = await Promise.all([
              interruptAfterFirstError('ddrescue', first, realDir, c.sig),
              interruptAfterFirstError(process.execPath, [CLI, 'ddrescue', ...first], oursDir, c.sig),
            ]);
            const names1 = { map: 'map', reads: 'reads-1.log', out: 'out' };
            const interrupted = { real: snapshot(realDir, names1), ours: snapshot(oursDir, names1) };
            const problems: string[] = [];
            if (!endedBySignal(realInt, c.sig)) problems.push(`interrupted ddrescue: ${JSON.stringify(realInt)} (expected death by ${c.sig} or exit ${c.sig === 'SIGINT' ? 130 : 143}; is the run too short?)`);
            if (!endedBySignal(oursInt, c.sig)) problems.push(`interrupted ddferry CLI: ${JSON.stringify(oursInt)} (expected death by ${c.sig} or exit ${c.sig === 'SIGINT' ? 130 : 143})`);
            const second = argvOf(sc.steps[1]!, 2, '../in.bin');
            const [realEnd, oursEnd] = await Promise.all([
              startProcess('ddrescue', second, { cwd: realDir }).done,
              startProcess(process.execPath, [CLI, 'ddrescue', ...second], { cwd: oursDir }).done,
            ]);
            const names2 = { map: 'map', reads: 'reads-2.log', out: 'out' };
            problems.push(...differences({ end: realEnd, snap: snapshot(realDir, names2) }, { end: oursEnd, snap: snapshot(oursDir, names2) }, { reads: false }));
            if (problems.length > 0) {
              const context = interrupted.real.map === interrupted.ours.map
                ? 'the interrupted mapfiles were the same'
                : `the interrupted mapfiles already differed (timing?): ${showInterrupted(interrupted.real, interrupted.ours)}`;
              const rec = [
                ...recipe(sc, 0).split('\n'),
                `ddrescue --pause-on-error=2 ${argvOf(sc.steps[0]!, 1, 'in.bin').join(' ')} & sleep 0.8; kill -${c.sig.slice(3)} $!; wait $!; echo "exit $?"`,
                `ddrescue ${argvOf(sc.steps[1]!, 2, 'in.bin').join(' ')}; echo "exit $?"`,
              ].join('\n');
              throw new Error(`ddferry differs from GNU ddrescue 1.27 (${c.sig} mid-run, then a resume)\n  ${problems.join('\n  ')}\n  (${context})\nreplay:\n${rec}`);
            }
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }),
        params(this, namedRuns(2), 120_000),
      );
    });
  }
});

function showInterrupted(real: Snapshot, ours: Snapshot): string {
  return differences({ end: { status: 0, signal: null, stderr: '' }, snap: real }, { end: { status: 0, signal: null, stderr: '' }, snap: ours }, { reads: false, output: false }).join('; ');
}

/**
 * Sources of packages/reader and packages/mapfile newer than both their compiled
 * JavaScript and the package's last build (tsc -b does not emit an unchanged file again).
 */
function staleDistFiles(): string[] {
  const stale: string[] = [];
  for (const pkg of ['reader', 'mapfile']) {
    const root = join(REPO, 'packages', pkg);
    const src = join(root, 'src');
    const info = join(root, 'tsconfig.tsbuildinfo');
    const built = existsSync(info) ? statSync(info).mtimeMs : 0;
    const walk = (d: string): void => {
      for (const name of readdirSync(d)) {
        const p = join(d, name);
        if (statSync(p).isDirectory()) {
          walk(p);
        } else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) {
          const js = join(root, 'dist', relative(src, p)).replace(/\.ts$/, '.js');
          if (!existsSync(js) || statSync(p).mtimeMs > Math.max(built, statSync(js).mtimeMs)) stale.push(relative(REPO, p));
        }
      }
    };
    walk(src);
  }
  return stale;
}
