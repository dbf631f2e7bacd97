/**
 * Compatibility of our `ddrescuelog` with GNU ddrescuelog 1.27: every operation on
 * random mapfile text, with random domains (`-i`, `-s`, `-m`, `-L`), compared byte
 * for byte (exit code, stdout, stderr, files left behind). See harness.ts.
 */
import fc from 'fast-check';

import { assertToolVersion, expectSameAsDdrescuelog, FC_PARAMS, makeScratch } from './harness.js';
import type { Invocation } from './harness.js';
import {
  BLOCK_STATUS_CHARS,
  looseMapfileArb,
  mapfileArb,
  mapfileOverArb,
  secondMapfileArb,
  standaloneLooseMapfileArb,
} from './random-mapfile.js';
import type { Extent, RandomMapfile } from './random-mapfile.js';

// ---------------------------------------------------------------------------
// Option arbitraries

/**
 * A number as a command-line argument: mostly decimal or hex (either case); rarely
 * octal or with a multiplier (`k`, `Ki`, or `s`, which uses the `-b` parsed so far).
 */
function numArg(n: number): fc.Arbitrary<string> {
  if (n < 0) return fc.constant(String(n));
  const plain = fc.constantFrom(String(n), `0x${n.toString(16)}`, `0x${n.toString(16).toUpperCase()}`);
  const rare = [`0${n.toString(8)}`];
  if (n > 0 && n % 1000 === 0) rare.push(`${n / 1000}k`);
  if (n > 0 && n % 1024 === 0) rare.push(`${n / 1024}Ki`);
  if (n > 0 && n % 512 === 0) rare.push(`${n / 512}s`);
  return fc.oneof({ arbitrary: plain, weight: 12 }, { arbitrary: fc.constantFrom(...rare), weight: 1 });
}

function maybe<T>(arb: fc.Arbitrary<T>, weight = 1): fc.Arbitrary<T | undefined> {
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: 1 }, { arbitrary: arb, weight });
}

/** A position for `-i`: at 0, inside the extent (often at a sector boundary), or just past it. */
function positionArb(extent: Extent): fc.Arbitrary<number> {
  const last = Math.max(extent.pos, extent.end - 1);
  const firstSector = Math.ceil(extent.pos / 512);
  const lastSector = Math.max(firstSector, Math.floor(last / 512));
  return fc.oneof(
    { arbitrary: fc.constant(0), weight: 1 },
    { arbitrary: fc.integer({ min: extent.pos, max: last }), weight: 4 },
    { arbitrary: fc.integer({ min: firstSector, max: lastSector }).map((k) => k * 512), weight: 2 },
    { arbitrary: fc.integer({ min: extent.end, max: extent.end + 4096 }), weight: 1 },
  );
}

/** A size for `-s`: inside the extent's span, a sector multiple, tiny, 0, or -1 (no limit). */
function domainSizeArb(extent: Extent): fc.Arbitrary<number> {
  const span = Math.max(1, extent.end - extent.pos);
  return fc.oneof(
    { arbitrary: fc.integer({ min: 1, max: span }), weight: 4 },
    { arbitrary: fc.integer({ min: 1, max: Math.ceil(span / 512) }).map((k) => k * 512), weight: 2 },
    { arbitrary: fc.integer({ min: 1, max: 4096 }), weight: 1 },
    { arbitrary: fc.constantFrom(0, -1), weight: 1 },
  );
}

/** Extra options and the files they name. */
interface Extra {
  readonly args: readonly string[];
  readonly files: Readonly<Record<string, string>>;
}

interface DomainOptions extends Extra {
  /** The `-i` value, if given. */
  readonly ipos: number | undefined;
}

/**
 * How an option with a value is spelled: mostly `-i V`; sometimes `-iV`,
 * `--input-position=V`, or a unique abbreviation `--input V` (Arg_parser accepts all).
 */
function spell(short: string, long: string, abbrev: string, value: string): fc.Arbitrary<readonly string[]> {
  return fc.oneof(
    { arbitrary: fc.constant([short, value]), weight: 8 },
    { arbitrary: fc.constant([`${short}${value}`]), weight: 1 },
    { arbitrary: fc.constant([`--${long}=${value}`]), weight: 1 },
    { arbitrary: fc.constant([`--${abbrev}`, value]), weight: 1 },
  );
}

const looseFlagArb = fc.oneof(
  { arbitrary: fc.constant('-L'), weight: 8 },
  { arbitrary: fc.constantFrom('--loose-domain', '--loose'), weight: 1 },
);

/** `-m dom.map`: a loose map (mostly with `-L`) or a strict one (sometimes with `-L`). */
function domainMapArb(extent: Extent): fc.Arbitrary<Extra> {
  const percent = fc.noBias(fc.integer({ min: 0, max: 99 }));
  return fc
    .oneof(
      fc.tuple(fc.boolean().chain((finishedOnly) => looseMapfileArb(extent, finishedOnly)), percent.map((r) => r < 85)),
      fc.tuple(mapfileOverArb(extent, 4), percent.map((r) => r < 25)),
    )
    .chain(([map, loose]) =>
      fc.tuple(spell('-m', 'domain-mapfile', 'domain', 'dom.map'), looseFlagArb, fc.boolean()).map(([m, l, lFirst]) => ({
        args: loose ? (lFirst ? [l, ...m] : [...m, l]) : m,
        files: { 'dom.map': map.text },
      })),
    );
}

/** Random `-i`, `-s` (hex or decimal) and `-m`/`-L`, each present about half the time. */
function domainArb(extent: Extent): fc.Arbitrary<DomainOptions> {
  const none = fc.constant<readonly string[]>([]);
  return fc
    .record({
      ipos: maybe(positionArb(extent)),
      size: maybe(domainSizeArb(extent)),
      map: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: domainMapArb(extent), weight: 2 }),
    })
    .chain(({ ipos, size, map }) =>
      fc
        .tuple(
          ipos === undefined ? none : numArg(ipos).chain((v) => spell('-i', 'input-position', 'input', v)),
          size === undefined ? none : numArg(size).chain((v) => fc.constantFrom('size', 'max-size').chain((long) => spell('-s', long, 'si', v))),
        )
        .map(([i, s]) => ({ ipos, args: [...i, ...s, ...(map?.args ?? [])], files: map?.files ?? {} })),
    );
}

/** `-o` for `-l`/`-c`: absent, `-i` plus a multiple of `bs` (possibly negative), 0, or misaligned (an error). */
function outputPositionArgs(bs: number, ipos: number): fc.Arbitrary<readonly string[]> {
  const below = Math.floor(ipos / bs);
  return fc
    .oneof(
      { arbitrary: fc.constant(undefined), weight: 6 },
      { arbitrary: fc.integer({ min: -below, max: 64 }).map((k) => ipos + k * bs), weight: 3 },
      { arbitrary: fc.constant(0), weight: 1 },
      { arbitrary: fc.integer({ min: 1, max: bs - 1 }).map((r) => ipos + r), weight: 1 },
    )
    .chain((opos) => (opos === undefined ? fc.constant<readonly string[]>([]) : numArg(opos).map((o) => ['-o', o])));
}

/** Block types for `-l`: a non-empty subset in random order, rarely with a repeat or a bad character. */
const listTypesArb: fc.Arbitrary<string> = fc
  .tuple(fc.shuffledSubarray([...BLOCK_STATUS_CHARS], { minLength: 1 }), fc.noBias(fc.integer({ min: 0, max: 39 })))
  .map(([types, r]) => types.join('') + (r === 0 ? types[0]! : r === 1 ? 'F' : ''));

const statusArb = fc.constantFrom(...BLOCK_STATUS_CHARS);

/** Mostly none; sometimes a few of `flags`. */
function flagsArb(flags: readonly string[]): fc.Arbitrary<readonly string[]> {
  return fc.oneof({ arbitrary: fc.constant([]), weight: 3 }, { arbitrary: fc.subarray([...flags]), weight: 1 });
}

/** Read the main mapfile from stdin (`-`) one time in ten. */
const viaStdinArb = fc.noBias(fc.integer({ min: 0, max: 9 })).map((r) => r === 0);

// ---------------------------------------------------------------------------
// Assembling invocations

interface Parts {
  readonly op: readonly string[];
  readonly domain: Extra;
  readonly domainFirst: boolean;
  readonly main?: RandomMapfile;
  readonly viaStdin?: boolean;
  readonly operands?: readonly string[];
  /** Operands after the main mapfile. */
  readonly after?: readonly string[];
  readonly files?: Readonly<Record<string, string | Uint8Array>>;
  readonly stdin?: string | Uint8Array;
  readonly mapfileOutput?: boolean;
  readonly binaryOutput?: boolean;
  /** Put the operands before the options (Arg_parser permutes them). */
  readonly operandsFirst?: boolean;
}

function assemble(p: Parts): Invocation {
  const files: Record<string, string | Uint8Array> = { ...p.files, ...p.domain.files };
  const operands = [...(p.operands ?? [])];
  let stdin = p.stdin;
  if (p.main) {
    if (p.viaStdin) {
      operands.push('-');
      stdin = p.main.text;
    } else {
      operands.push('a.map');
      files['a.map'] = p.main.text;
    }
  }
  operands.push(...(p.after ?? []));
  const options = p.domainFirst ? [...p.domain.args, ...p.op] : [...p.op, ...p.domain.args];
  return {
    args: p.operandsFirst ? [...operands, ...options] : [...options, ...operands],
    files,
    ...(stdin === undefined ? {} : { stdin }),
    ...(p.mapfileOutput ? { mapfileOutput: true } : {}),
    ...(p.binaryOutput ? { binaryOutput: true } : {}),
  };
}

/** A main mapfile plus random domain options, placement and stdin choice. */
function withDomain(main: RandomMapfile) {
  return fc.record({
    domain: domainArb(main.extent),
    domainFirst: fc.boolean(),
    viaStdin: viaStdinArb,
    operandsFirst: fc.noBias(fc.integer({ min: 0, max: 9 })).map((r) => r === 0),
  });
}

const mainArb = mapfileArb({ corruptPercent: 4 });

// ---------------------------------------------------------------------------
// Operations

const showStatusArb = fc
  .record({ main: mainArb, more: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.integer({ min: 1, max: 2 }), weight: 1 }) })
  .chain(({ main, more }) =>
    fc
      .record({
        parts: withDomain(main),
        flags: flagsArb(['-v', '-B', '-q']),
        grouped: fc.boolean(),
        others: fc.array(fc.oneof(secondMapfileArb(main.model), looseMapfileArb(main.extent)), { minLength: more, maxLength: more }),
      })
      .map(({ parts, flags, grouped, others }) => {
        const names = others.map((_, i) => `m${i}.map`);
        return assemble({
          ...parts,
          op: grouped ? [`-t${flags.map((f) => f.slice(1)).join('')}`] : ['-t', ...flags],
          main,
          after: names,
          files: Object.fromEntries(others.map((o, i) => [names[i]!, o.text])),
        });
      }),
  );

const showStatusLooseArb = standaloneLooseMapfileArb().chain((main) =>
  fc.tuple(withDomain(main), flagsArb(['-B'])).map(([parts, flags]) => assemble({ ...parts, op: ['-t', '-L', ...flags], main })),
);

const listArb = fc
  .record({ main: mapfileArb({ sizes: 'narrow', corruptPercent: 2 }), types: listTypesArb, bs: fc.constantFrom(512, 4096, 512, 4096, 1000, 2048) })
  .chain(({ main, types, bs }) =>
    withDomain(main).chain((parts) =>
      fc
        .tuple(outputPositionArgs(bs, parts.domain.ipos ?? 0), fc.boolean())
        .map(([opos, attached]) =>
          assemble({ ...parts, op: [...(attached ? [`-l${types}`] : ['-l', types]), '-b', String(bs), ...opos], main }),
        ),
    ),
  );

const bitmapArb = fc
  .record({
    main: mapfileArb({ sizes: 'narrow', start: 'low', corruptPercent: 2 }),
    types: listTypesArb,
    bs: fc.constantFrom(512, 4096),
    format: fc.constantFrom('bitmap-le', 'bitmap-be', 'bitmap'),
  })
  .chain(({ main, types, bs, format }) =>
    withDomain(main).chain((parts) =>
      outputPositionArgs(bs, parts.domain.ipos ?? 0).map((opos) =>
        assemble({ ...parts, op: ['-l', types, '-b', String(bs), '-F', format, ...opos], main, binaryOutput: true }),
      ),
    ),
  );

const changeTypesArgArb: fc.Arbitrary<string> = fc.oneof(
  {
    arbitrary: fc
      .tuple(fc.shuffledSubarray([...BLOCK_STATUS_CHARS], { minLength: 1 }), fc.array(statusArb, { minLength: 1, maxLength: 5 }))
      .map(([from, to]) => `${from.join('')},${to.join('')}`),
    weight: 19,
  },
  { arbitrary: fc.constantFrom('+', ',+', '+,', '+,-,?', 'X,+', '?,F'), weight: 1 },
);

const changeTypesArb = fc.record({ main: mainArb, types: changeTypesArgArb, long: fc.boolean() }).chain(({ main, types, long }) =>
  withDomain(main).map((parts) =>
    assemble({ ...parts, op: long ? [`--change-types=${types}`] : ['-a', types], main, mapfileOutput: true }),
  ),
);

const invertArb = mainArb.chain((main) => withDomain(main).map((parts) => assemble({ ...parts, op: ['-n'], main, mapfileOutput: true })));

const annotateArb = mainArb.chain((main) =>
  fc.tuple(withDomain(main), flagsArb(['-B'])).map(([parts, flags]) => assemble({ ...parts, op: ['-A', ...flags], main, mapfileOutput: true })),
);

const completeTypeArb = fc.oneof(
  { arbitrary: fc.constant(''), weight: 3 },
  { arbitrary: statusArb, weight: 4 },
  { arbitrary: fc.constantFrom('X', '+-', 'F'), weight: 1 },
);

const completeArb = fc
  .record({ main: fc.oneof(standaloneLooseMapfileArb(), mainArb), type: completeTypeArb, long: fc.boolean(), domain: fc.boolean() })
  .chain(({ main, type, long, domain }) =>
    withDomain(main).map((parts) =>
      assemble({
        ...parts,
        domain: domain ? parts.domain : { args: [], files: {} },
        op: [long && type !== '' ? `--complete-mapfile=${type}` : `-C${type}`],
        main,
        mapfileOutput: true,
      }),
    ),
  );

const doneArb = fc
  .record({
    main: mapfileArb({ finishedWeight: 16, corruptPercent: 3 }),
    op: fc.constantFrom('-d', '-D', '--delete-if-done', '--done-status'),
    flags: flagsArb(['-v', '-q']),
  })
  .chain(({ main, op, flags }) => withDomain(main).map((parts) => assemble({ ...parts, op: [op, ...flags], main })));

/** The second mapfile of -x/-y/-z/-p/-P: `b.map`, or one time in ten stdin (`-`) when the main file is not read from it. */
function secondOperand(second: RandomMapfile, mainViaStdin: boolean, roll: number): Pick<Parts, 'files' | 'stdin'> & { readonly name: string } {
  if (roll === 0 && !mainViaStdin) return { name: '-', files: {}, stdin: second.text };
  return { name: 'b.map', files: { 'b.map': second.text } };
}

const rollArb = fc.noBias(fc.integer({ min: 0, max: 9 }));

const logicArb = fc
  .record({ main: mainArb, op: fc.constantFrom('x', 'y', 'z'), long: fc.boolean(), roll: rollArb })
  .chain(({ main, op, long, roll }) =>
    fc.tuple(withDomain(main), secondMapfileArb(main.model)).map(([parts, second]) => {
      const name = { x: 'xor', y: 'and', z: 'or' }[op];
      const b = secondOperand(second, parts.viaStdin, roll);
      return assemble({
        ...parts,
        op: long ? [`--${name}-mapfile=${b.name}`] : [`-${op}`, b.name],
        main,
        files: b.files,
        ...(b.stdin === undefined ? {} : { stdin: b.stdin }),
        mapfileOutput: true,
      });
    }),
  );

const compareArb = fc
  .record({ main: mainArb, op: fc.constantFrom('-p', '-P'), loose: rollArb, flags: flagsArb(['-q']), roll: rollArb })
  .chain(({ main, op, loose, flags, roll }) => {
    const useLoose = op === '-P' && loose < 3;
    const second = useLoose && loose === 0 ? looseMapfileArb(main.extent, true) : secondMapfileArb(main.model);
    return fc.tuple(withDomain(main), second).map(([parts, secondMap]) => {
      const b = secondOperand(secondMap, parts.viaStdin, roll);
      return assemble({
        ...parts,
        op: [op, b.name, ...(useLoose ? ['-L'] : []), ...flags],
        main,
        files: b.files,
        ...(b.stdin === undefined ? {} : { stdin: b.stdin }),
      });
    });
  });

/** `--shift` with `-o` (positive shift), `-i` and `-o 0` (negative), or both non-zero (an error). */
const shiftArb = mainArb.chain((main) =>
  fc
    .tuple(
      withDomain(main),
      fc.oneof(
        { arbitrary: fc.constant(undefined), weight: 1 },
        { arbitrary: fc.constant(0), weight: 2 },
        { arbitrary: positionArb(main.extent), weight: 2 },
      ),
    )
    .chain(([parts, opos]) =>
      (opos === undefined ? fc.constant<readonly string[]>([]) : numArg(opos).map((o) => ['-o', o])).map((oargs) =>
        assemble({ ...parts, op: ['--shift', ...oargs], main, mapfileOutput: true }),
      ),
    ),
);

/** A block list for `-c` on stdin: numbers in any C base and white space; one case in twenty has a bad token. */
function blockListArb(maxBlock: number): fc.Arbitrary<string> {
  const number = fc
    .tuple(fc.integer({ min: 0, max: maxBlock }), fc.constantFrom<'dec' | 'hex' | 'oct'>('dec', 'dec', 'hex', 'oct'))
    .map(([n, style]) => (style === 'dec' ? String(n) : style === 'hex' ? `0x${n.toString(16)}` : `0${n.toString(8)}`));
  const garbage = fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 19 },
    { arbitrary: fc.tuple(fc.constantFrom('abc', '-5', '0x', '99999999999999999999', '12z', '+7'), fc.nat()), weight: 1 },
  );
  const sep = fc.constantFrom(' ', '\n', '\n', '\t', '\r\n', ' \n\n');
  return fc
    .tuple(fc.array(fc.tuple(number, sep), { maxLength: 60 }), fc.constantFrom('', '', ' ', '\n'), garbage)
    .map(([items, lead, bad]) => {
      const tokens = items.map(([t, s]) => t + s);
      if (bad) tokens.splice(bad[1] % (tokens.length + 1), 0, `${bad[0]}\n`);
      return lead + tokens.join('');
    });
}

const createTypesArb = fc.oneof(
  { arbitrary: fc.constant(''), weight: 4 },
  { arbitrary: fc.tuple(statusArb, statusArb).filter(([a, b]) => a !== b).map(([a, b]) => a + b), weight: 3 },
  { arbitrary: fc.constantFrom('++', 'X-', '+'), weight: 1 },
);

/** Where `-c` writes: stdout, a new file, or an existing mapfile (with or without `-f`). */
type CreateTarget = 'stdout' | 'new' | 'existing' | 'existing-forced';

function createArb(bitmap: boolean): fc.Arbitrary<Invocation> {
  return fc
    .record({
      bs: fc.constantFrom(512, 4096, 2048),
      scale: fc.constantFrom(64, 4096, 2 ** 30),
      types: createTypesArb,
      target: fc.constantFrom<CreateTarget>('stdout', 'stdout', 'stdout', 'new', 'existing', 'existing-forced'),
      existing: mapfileArb({ maxBlocks: 5 }),
      format: bitmap ? fc.constantFrom('bitmap-le', 'bitmap-be', 'bitmap') : fc.constantFrom('', '', 'list'),
      bytes: fc.array(fc.oneof(fc.constant(0), fc.constant(255), fc.integer({ min: 0, max: 255 })), { maxLength: 48 }),
    })
    .chain(({ bs, scale, types, target, existing, format, bytes }) => {
      const extent = bitmap ? { pos: 0, end: (bytes.length * 8 + 1) * bs } : { pos: 0, end: (scale + 1) * bs };
      return fc
        .record({ domain: domainArb(extent), domainFirst: fc.boolean(), list: blockListArb(scale) })
        .chain((parts) =>
          outputPositionArgs(bs, parts.domain.ipos ?? 0).map((opos) => {
            const out = target === 'stdout' ? '-' : target === 'new' ? 'new.map' : 'a.map';
            return assemble({
              ...parts,
              op: [`-c${types}`, '-b', String(bs), ...(format ? ['-F', format] : []), ...opos, ...(target === 'existing-forced' ? ['-f'] : [])],
              operands: [out],
              files: target.startsWith('existing') ? { 'a.map': existing.text } : {},
              stdin: bitmap ? Uint8Array.from(bytes) : parts.list,
              mapfileOutput: out === '-',
            });
          }),
        );
    });
}

/**
 * Command lines that are often wrong: zero or two operations, missing or extra
 * files, unknown or ambiguous options, bad numbers. (`--help` and `--version` are
 * ours on purpose, so they are not compared.)
 */
const usageArb = fc
  .record({
    ops: fc.subarray(
      [['-t'], ['-n'], ['-A'], ['-D'], ['-C'], ['-l+'], ['-a', '?,+'], ['--shift'], ['-x', 'b.map'], ['-p', 'b.map'], ['-c'], ['-d']],
      { maxLength: 2 },
    ),
    extras: fc.subarray(
      [
        ['-k'], ['--foo'], ['--s'], ['-i', '08'], ['-i', '1K'], ['-s', '-2'], ['-b', '0'], ['-i', '1e3'], ['-i', '0x'],
        ['-s', '2Ki'], ['-b', '4096', '-s', '1s'], ['-s', '1s', '-b', '4096'], ['-i', '4000000000000000000'], ['-s', '9Ei'],
        ['-F', 'bogus'], ['-o', '-5'], ['-v', '-v', '-v'], ['-q'], ['-f'], ['-B'], ['-b', '2147483648'], ['-a'],
      ],
      { maxLength: 2 },
    ),
    operands: fc.subarray(['a.map', 'b.map', 'missing.map', '-']),
    a: mapfileArb({ sizes: 'narrow', maxBlocks: 8 }),
    b: mapfileArb({ sizes: 'narrow', maxBlocks: 8 }),
  })
  .chain(({ ops, extras, operands, a, b }) =>
    fc.shuffledSubarray([...ops, ...extras], { minLength: ops.length + extras.length }).map((groups) => ({
      args: [...groups.flat(), ...operands],
      files: { 'a.map': a.text, 'b.map': b.text },
      stdin: a.text,
      mapfileOutput: true,
    })),
  );

// ---------------------------------------------------------------------------

/**
 * Known differences between ours and ddrescuelog 1.27, reported and not fixed yet.
 * Cases they cover are skipped (`fc.pre`); delete an entry once it is fixed.
 */
const KNOWN_DIFFERENCES: ReadonlyArray<{ readonly what: string; readonly applies: (inv: Invocation) => boolean }> = [
  {
    // By design (issue 2: "positions and sizes up to 2^53-1 exactly, anything larger
    // refused"): ddrescuelog's -i/-o/-s take any value up to 2^63-1, so
    // `ddrescuelog -t -s 9007199254740992 a.map` works, while ours refuses it with
    // ERR_ARG_TOO_LARGE. Values out of ddrescuelog's own limits are compared as usual.
    what: 'command-line positions and sizes between 2^53 and 2^63-1',
    applies: (inv) => inv.args.some((a, i) => ['-i', '-o', '-s'].includes(inv.args[i - 1] ?? '') && isOutOfOurRange(a)),
  },
];

/** A value that ddrescuelog accepts and ours refuses: between 2^53 and 2^63-1. */
function isOutOfOurRange(arg: string): boolean {
  const m = /^(\d+)(Ei)?$/.exec(arg);
  if (!m) return false;
  const value = BigInt(m[1]!) * (m[2] ? 2n ** 60n : 1n);
  return value > BigInt(Number.MAX_SAFE_INTEGER) && value < 2n ** 63n;
}

const isKnownDifference = (inv: Invocation): boolean => KNOWN_DIFFERENCES.some((k) => k.applies(inv));

describe('ddrescuelog (compared with GNU ddrescuelog 1.27)', function () {
  let scratch: ReturnType<typeof makeScratch>;

  before(function () {
    assertToolVersion('ddrescuelog');
    scratch = makeScratch();
  });

  after(function () {
    scratch?.remove();
  });

  const check = (arb: fc.Arbitrary<Invocation>): Promise<void> =>
    fc.assert(
      fc.asyncProperty(arb, (inv) => { fc.pre(!isKnownDifference(inv)); return expectSameAsDdrescuelog(inv, scratch); }),
      { ...FC_PARAMS, maxSkipsPerRun: 1000 },
    );

  describe('-t (--show-status)', function () {
    it('prints the same summary when given random mapfiles and domains', () => check(showStatusArb));
    it('prints the same summary when reading loose mapfiles with -L', () => check(showStatusLooseArb));
  });

  describe('-l (--list-blocks)', function () {
    it('lists the same block numbers when given random types, -b 512|4096 and -o', () => check(listArb));
    it('writes the same bitmap bytes when given -F bitmap-le or bitmap-be', () => check(bitmapArb));
  });

  describe('-a (--change-types)', function () {
    it('writes the same mapfile when given random OLD,NEW types', () => check(changeTypesArb));
  });

  describe('-n (--invert-mapfile)', function () {
    it('writes the same mapfile when given random domains', () => check(invertArb));
  });

  describe('-c (--create-mapfile)', function () {
    it('writes the same mapfile when given a block list on stdin, with and without -s', () => check(createArb(false)));
    it('writes the same mapfile when given a bitmap on stdin', () => check(createArb(true)));
  });

  describe('-d and -D (--delete-if-done, --done-status)', function () {
    it('exits, prints and deletes the same when the mapfile is a copy', () => check(doneArb));
  });

  describe('-x, -y, -z (logic operations)', function () {
    it('writes the same mapfile when given a second mapfile over about the same extent', () => check(logicArb));
  });

  describe('-p and -P (--compare-mapfile, --compare-as-domain)', function () {
    it('gives the same verdict when given equal, re-split and different mapfiles', () => check(compareArb));
  });

  describe('--shift', function () {
    it('writes the same mapfile when given -o or -i with -o 0', () => check(shiftArb));
  });

  describe('-C (--complete-mapfile)', function () {
    it('writes the same mapfile when given loose and strict mapfiles and a fill type', () => check(completeArb));
  });

  describe('command line', function () {
    it('gives the same messages and exit codes when given wrong or unusual command lines', () => check(usageArb));
  });

  describe('-A (--annotate-mapfile)', function () {
    it('writes the same annotations when given random domains and -B', () => check(annotateArb));
  });
});
