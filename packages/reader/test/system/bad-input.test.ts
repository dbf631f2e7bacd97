/**
 * Bad input to `ddferry-reader ddrescue`, in process (runDdrescue with a collecting io):
 * a missing or unreadable source, a source shorter than the domain, a mapfile of
 * another size, an output or mapfile that is the source, a mapfile in a missing folder,
 * malformed mapfiles and test maps, bad option values. Each case gives GNU ddrescue
 * 1.27's exit status, and where ddrescue has a message, a message with the same words;
 * ddferry's own codes (ERR_...) and hints are checked too. GNU ddrescue is run on an
 * identical folder for every case; it must be installed (the test fails without it).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import {
  closeSync, constants, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runDdrescue } from '../../src/commands/ddrescue.js';

const SIZE = 1 << 20;
const SOURCE = (() => {
  const key = createHash('sha256').update('bad-input').digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(SIZE)), cipher.final()]);
})();

interface Outcome {
  readonly status: number;
  /** Messages (ours: io.stderr; GNU: stderr). */
  readonly messages: string;
  /** Files and folders in the case folder afterwards, besides those set up. */
  readonly created: readonly string[];
}

interface Case {
  readonly name: string;
  /** Files to make in the case folder (src.bin is always there). */
  readonly setup?: (dir: string) => void;
  readonly args: readonly string[];
  readonly status: number;
  /** Our ERR_ code, if the case has one. */
  readonly code?: string;
  /** Words that both our message and GNU ddrescue's must hold; null: ddrescue prints nothing. */
  readonly words: string | null;
  /** More that our message must hold (the file named, what to do). */
  readonly ours?: readonly (string | RegExp)[];
  /** Checks of the folder after our run. */
  readonly after?: (dir: string, outcome: Outcome) => void;
  /** Our final mapfile (header lines aside) must equal GNU ddrescue's. */
  readonly sameMap?: boolean;
  /** Files GNU ddrescue creates that ddferry deliberately does not (documented difference). */
  readonly gnuAlsoCreates?: readonly string[];
}

function listing(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const p = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory()) out.push(...listing(dir, p));
  }
  return out.sort();
}

async function runOurs(args: readonly string[], dir: string, before: ReadonlySet<string>): Promise<Outcome> {
  let messages = '';
  const result = await runDdrescue(args, {
    screen: () => undefined,
    stderr: (t) => { messages += t; },
    stdout: () => undefined,
    cwd: dir,
    signal: () => null,
  });
  return { status: result.status, messages, created: listing(dir).filter((f) => !before.has(f)) };
}

function runGnu(args: readonly string[], dir: string, before: ReadonlySet<string>): Outcome {
  const r = spawnSync('ddrescue', args, { cwd: dir, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`GNU ddrescue 1.27 must be installed (apt-get install -y gddrescue): ${r.error.message}`);
  return { status: r.status ?? -1, messages: r.stderr, created: listing(dir).filter((f) => !before.has(f)) };
}

const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const SOURCE_SHA = createHash('sha256').update(SOURCE).digest('hex');

function sourceUntouched(dir: string): void {
  expect(sha(join(dir, 'src.bin')), 'the source is untouched').to.equal(SOURCE_SHA);
}

function mapBody(text: string): string {
  return text.split('\n').slice(1).filter((l) => !/^# (Command line|Start time|Current time):/.test(l)).join('\n');
}

const writeMap = (name: string, text: string) => (dir: string): void => writeFileSync(join(dir, name), text);

function unchanged(name: string, text: string) {
  return (dir: string): void => {
    expect(readFileSync(join(dir, name), 'latin1'), `${name} is left as it was`).to.equal(text);
  };
}

const BIG_QUEUED = '0 ?\n0 0x180000 ?\n0x180000 0x80000 ?\n';
const BIG_RESCUED = '0 ?\n0 0x180000 +\n';
const SMALL = '0x10000 ? 1\n0 0x10000 +\n0x10000 0x30000 -\n';

/** Mapfiles that are not mapfiles, with the line GNU ddrescue names. */
const MALFORMED: readonly { name: string; text: string; words: string }[] = [
  { name: 'no status line', text: '0 0x1000 +\n', words: 'line 1: Bad or missing status line.' },
  { name: 'bad status character', text: '# comment\n0 X 1\n0 0x100000 +\n', words: 'line 2: Bad or missing status line.' },
  { name: 'pass 0', text: '0 + 0\n0 0x100000 +\n', words: 'line 1: Bad or missing status line.' },
  { name: 'bad block status', text: '0 +\n0 0x1000 x\n', words: 'line 2: Bad block line in list.' },
  { name: 'octal 08', text: '0 +\n0 08 +\n', words: 'line 2: Bad block line in list.' },
  { name: 'a gap', text: '0 +\n0 0x1000 +\n0x2000 0x1000 -\n', words: 'line 3: Blocks are not contiguous.' },
  { name: 'an overlap', text: '0 +\n0 0x2000 +\n0x1000 0x1000 -\n', words: 'line 3: Blocks are not contiguous.' },
  { name: 'a block line over 127 characters', text: `0 +\n0 0x100000${' '.repeat(130)}+\n`, words: 'line 2: Bad block line in list.' },
];

const CASES: readonly Case[] = [
  {
    name: 'missing source',
    args: ['missing.bin', 'out', 'map'],
    status: 1,
    code: 'ERR_SOURCE_OPEN',
    words: "Can't open input file",
    ours: ['missing.bin', 'Check the name'],
    after: (_dir, o) => expect(o.created, 'nothing created').to.deep.equal([]),
  },
  {
    name: 'a directory as the source',
    setup: (dir) => mkdirSync(join(dir, 'adir')),
    args: ['adir', 'out', 'map'],
    status: 1,
    code: 'ERR_SOURCE_NOT_SEEKABLE',
    // GNU ddrescue opens it and fails the first read: "Fatal error reading the input file: Is a directory"
    words: null,
    ours: ['adir', /Give a disk, a partition or a regular file/],
    after: (_dir, o) => expect(o.created, 'nothing created').to.deep.equal([]),
    gnuAlsoCreates: ['map', 'out'],
  },
  {
    name: 'a FIFO as the source',
    setup: (dir) => {
      const r = spawnSync('mkfifo', [join(dir, 'fifo')]);
      if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr.toString()}`);
    },
    args: ['fifo', 'out', 'map'],
    status: 1,
    code: 'ERR_SOURCE_NOT_SEEKABLE',
    words: 'Input file is not seekable.',
    ours: ['fifo'],
    after: (_dir, o) => expect(o.created, 'nothing created').to.deep.equal([]),
  },
  {
    name: '-i beyond the end of the source',
    args: ['-i', '2MiB', 'src.bin', 'out', 'map'],
    status: 1,
    words: "Can't start reading at pos 2Mi.",
    ours: ['Input file is only 1Mi bytes long.'],
    after: (_dir, o) => expect(o.created, 'nothing created').to.deep.equal([]),
  },
  {
    name: '-s larger than the source: silently cropped',
    args: ['-s', '2MiB', 'src.bin', 'out', 'map'],
    status: 0,
    words: null,
    sameMap: true,
    after: (dir, o) => {
      expect(o.messages, 'no message').to.equal('');
      expect(readFileSync(join(dir, 'map'), 'latin1')).to.match(/\n0x00000000 {2}0x00100000 {2}\+\n$/);
      expect(readFileSync(join(dir, 'out')).equals(SOURCE)).to.equal(true);
    },
  },
  {
    name: 'a mapfile whose last block begins past the end of the source',
    setup: writeMap('map', BIG_QUEUED),
    args: ['src.bin', 'out', 'map'],
    status: 1,
    code: 'ERR_MAPFILE_BEGINS_PAST_END',
    words: 'Last block in mapfile begins past end of input file.',
    ours: ['map', 'use -C'],
    after: unchanged('map', BIG_QUEUED),
  },
  {
    name: 'the same mapfile with -C (a partial copy)',
    setup: writeMap('map', BIG_QUEUED),
    args: ['-C', 'src.bin', 'out', 'map'],
    status: 0,
    words: null,
    sameMap: true,
  },
  {
    name: 'a mapfile with rescued data past the end of the source',
    setup: writeMap('map', BIG_RESCUED),
    args: ['src.bin', 'out', 'map'],
    status: 1,
    code: 'ERR_MAPFILE_RESCUED_PAST_END',
    words: 'Rescued data in mapfile goes past end of input file.',
    ours: ['map', 'use -C'],
    after: unchanged('map', BIG_RESCUED),
  },
  {
    name: 'the same mapfile with -C',
    setup: writeMap('map', BIG_RESCUED),
    args: ['-C', 'src.bin', 'out', 'map'],
    status: 0,
    words: null,
    sameMap: true,
  },
  {
    name: 'a mapfile shorter than the source: extended with non-tried',
    setup: writeMap('map', SMALL),
    args: ['src.bin', 'out', 'map'],
    status: 0,
    words: null,
    sameMap: true,
  },
  {
    name: 'a mapfile shorter than the source with -C: only its extent',
    setup: writeMap('map', SMALL),
    args: ['-C', '-r1', 'src.bin', 'out', 'map'],
    status: 0,
    words: null,
    sameMap: true,
  },
  {
    name: 'output = source (same path)',
    args: ['src.bin', 'src.bin', 'map'],
    status: 1,
    code: 'ERR_OUTPUT_IS_SOURCE',
    words: 'src.bin: Infile and outfile are the same',
    after: (dir, o) => {
      sourceUntouched(dir);
      expect(o.created, 'nothing created').to.deep.equal([]);
    },
  },
  {
    name: 'output = source (a hard link to it)',
    setup: (dir) => linkSync(join(dir, 'src.bin'), join(dir, 'hard.bin')),
    args: ['src.bin', 'hard.bin', 'map'],
    status: 1,
    code: 'ERR_OUTPUT_IS_SOURCE',
    words: 'hard.bin: Infile and outfile are the same',
    after: (dir, o) => {
      sourceUntouched(dir);
      expect(o.created, 'nothing created').to.deep.equal([]);
    },
  },
  {
    name: 'output = source (a symlink to it)',
    setup: (dir) => symlinkSync('src.bin', join(dir, 'sym.bin')),
    args: ['src.bin', 'sym.bin', 'map'],
    status: 1,
    code: 'ERR_OUTPUT_IS_SOURCE',
    words: 'sym.bin: Infile and outfile are the same',
    after: (dir, o) => {
      sourceUntouched(dir);
      expect(o.created, 'nothing created').to.deep.equal([]);
    },
  },
  {
    name: 'output = source (another path: ./sub/../src.bin)',
    setup: (dir) => mkdirSync(join(dir, 'sub')),
    args: ['src.bin', './sub/../src.bin', 'map'],
    status: 1,
    code: 'ERR_OUTPUT_IS_SOURCE',
    words: 'Infile and outfile are the same',
    after: (dir) => sourceUntouched(dir),
  },
  {
    name: 'mapfile in a missing folder',
    args: ['src.bin', 'out', 'nodir/map'],
    status: 1,
    code: 'ERR_MAPFILE_FOLDER_MISSING',
    // GNU ddrescue: "nodir/map: Can't create mapfile: No such file or directory", after creating the output
    words: 'nodir/map',
    ours: [/mkdir/],
    after: (_dir, o) => expect(o.created, 'nothing created, not even the output').to.deep.equal([]),
    gnuAlsoCreates: ['out'],
  },
  ...MALFORMED.map((m): Case => ({
    name: `malformed mapfile: ${m.name}`,
    setup: writeMap('map', m.text),
    args: ['src.bin', 'out', 'map'],
    status: 2,
    words: m.words,
    ours: ['map'],
    after: (dir, o) => {
      unchanged('map', m.text)(dir);
      expect(o.created, 'nothing created').to.deep.equal([]);
    },
  })),
  ...MALFORMED.filter((m) => m.name !== 'an overlap').map((m): Case => ({
    name: `malformed test map: ${m.name}`,
    setup: writeMap('testmap', m.text),
    args: ['-H', 'testmap', 'src.bin', 'out', 'map'],
    status: 2,
    words: m.words,
    ours: ['testmap'],
    after: (_dir, o) => expect(o.created, 'nothing created').to.deep.equal([]),
  })),
  {
    name: 'malformed test map (loose -L): blocks of different status overlap',
    setup: writeMap('testmap', '0 +\n0 0x2000 +\n0x1000 0x2000 -\n'),
    args: ['-L', '-H', 'testmap', 'src.bin', 'out', 'map'],
    status: 2,
    words: 'line 3: Blocks of different status overlap.',
    ours: ['testmap'],
  },
  {
    name: 'missing test map',
    args: ['-H', 'nosuch.map', 'src.bin', 'out', 'map'],
    status: 1,
    words: 'nosuch.map',
  },
  {
    name: 'mapfile = source',
    args: ['src.bin', 'out', 'src.bin'],
    status: 1,
    code: 'ERR_MAPFILE_SAME_AS_DATA',
    words: 'src.bin: Infile and mapfile are the same',
    after: (dir, o) => {
      sourceUntouched(dir);
      expect(o.created, 'nothing created').to.deep.equal([]);
    },
  },
  {
    name: 'mapfile = source (a hard link to it)',
    setup: (dir) => linkSync(join(dir, 'src.bin'), join(dir, 'hard.map')),
    args: ['src.bin', 'out', 'hard.map'],
    status: 1,
    code: 'ERR_MAPFILE_SAME_AS_DATA',
    words: 'Infile and mapfile are the same',
    after: (dir) => sourceUntouched(dir),
  },
  {
    name: 'mapfile = outfile',
    args: ['src.bin', 'same', 'same'],
    status: 1,
    code: 'ERR_MAPFILE_SAME_AS_DATA',
    words: 'same: Outfile and mapfile are the same.',
    after: (_dir, o) => expect(o.created, 'nothing created').to.deep.equal([]),
  },
  {
    name: 'mapfile backup = source (src.bin = map.bak)',
    setup: (dir) => linkSync(join(dir, 'src.bin'), join(dir, 'x.bak')),
    args: ['x.bak', 'out', 'x'],
    status: 1,
    code: 'ERR_MAPFILE_SAME_AS_DATA',
    words: 'Infile and mapfile backup are the same.',
  },
  {
    name: 'mapfile is a folder',
    setup: (dir) => mkdirSync(join(dir, 'mapdir')),
    args: ['src.bin', 'out', 'mapdir'],
    status: 1,
    words: 'mapdir: Mapfile exists and is not a regular file.',
  },
  {
    name: 'output is a folder (not a regular file, no -f)',
    setup: (dir) => mkdirSync(join(dir, 'outdir')),
    args: ['src.bin', 'outdir', 'map'],
    status: 1,
    code: 'ERR_OUTPUT_NOT_REGULAR',
    words: 'outdir: Output file exists and is not a regular file.',
  },
  {
    name: 'an empty mapfile: a valid, blank mapfile',
    setup: writeMap('map', ''),
    args: ['src.bin', 'out', 'map'],
    status: 0,
    words: null,
    sameMap: true,
  },
  {
    name: 'a mapfile of comments only: a valid, blank mapfile',
    setup: writeMap('map', '# nothing yet\n\n   # still nothing\n'),
    args: ['src.bin', 'out', 'map'],
    status: 0,
    words: null,
    sameMap: true,
  },
  {
    name: 'a finished mapfile from a larger disk, same size rescued with -C and -i/-s',
    setup: writeMap('map', '0x100000 + 1\n0 0x100000 +\n0x100000 0x100000 ?\n'),
    args: ['-C', '-i', '0x80000', '-s', '0x100000', 'src.bin', 'out', 'map'],
    status: 0,
    words: null,
    sameMap: true,
  },
  {
    name: '-K 1000: bad initial skip size',
    args: ['-K', '1000', 'src.bin', 'out', 'map'],
    status: 1,
    words: "'1000': Initial skip size must be 0 or >= 64KiB in option '-K'.",
    after: (_dir, o) => expect(o.created, 'nothing created').to.deep.equal([]),
  },
  {
    name: '-K 64KiB,1000: bad maximum skip size',
    args: ['-K', '64KiB,1000', 'src.bin', 'out', 'map'],
    status: 1,
    words: "in option '-K'.",
  },
  {
    name: '--cpass=6',
    args: ['--cpass=6', 'src.bin', 'out', 'map'],
    status: 1,
    words: "'6': Invalid pass or range of passes in option '--cpass'.",
    after: (_dir, o) => expect(o.created, 'nothing created').to.deep.equal([]),
  },
  {
    name: '--cpass=3-1',
    args: ['--cpass=3-1', 'src.bin', 'out', 'map'],
    status: 1,
    words: "Invalid pass or range of passes in option '--cpass'.",
  },
  {
    name: 'one file only',
    args: ['src.bin'],
    status: 1,
    words: 'Both input and output files must be specified.',
  },
  {
    name: 'four files',
    args: ['src.bin', 'out', 'map', 'extra'],
    status: 1,
    words: 'Too many files.',
  },
];

describe('bad input to ddferry-reader ddrescue, against GNU ddrescue 1.27', function () {
  let root: string;
  /** Writers that keep FIFOs open, so that opening them for reading does not block. */
  const fds: number[] = [];
  const differences: string[] = [];

  before(function () {
    const v = spawnSync('ddrescue', ['--version'], { encoding: 'utf8' });
    if (v.error || !/GNU ddrescue 1\.27/.test(v.stdout)) {
      throw new Error(`GNU ddrescue 1.27 is required for these tests (apt-get install -y gddrescue): ${v.error?.message ?? v.stdout.split('\n')[0]}`);
    }
    root = mkdtempSync(join(tmpdir(), 'ddferry-bad-input-'));
  });

  after(function () {
    for (const fd of fds) closeSync(fd);
    if (root) rmSync(root, { recursive: true, force: true });
    if (differences.length > 0) console.log(`      ${differences.join('\n      ')}`);
  });

  CASES.forEach((c, index) => {
    it(`${c.name}: exit ${c.status}${c.code ? `, ${c.code}` : ''}${c.words ? `, "${c.words}"` : ''}`, async function () {
      const prepare = (side: string): { dir: string; before: Set<string> } => {
        const dir = join(root, `${index}-${side}`);
        mkdirSync(dir);
        writeFileSync(join(dir, 'src.bin'), SOURCE);
        c.setup?.(dir);
        if (existsSync(join(dir, 'fifo'))) fds.push(openSync(join(dir, 'fifo'), constants.O_RDWR | constants.O_NONBLOCK));
        return { dir, before: new Set(listing(dir)) };
      };
      const o = prepare('ours');
      const ours = await runOurs(c.args, o.dir, o.before);
      const g = prepare('gnu');
      const gnu = runGnu(c.args, g.dir, g.before);

      expect(gnu.status, `GNU ddrescue's exit status (its messages: ${gnu.messages})`).to.equal(c.status);
      expect(ours.status, `our exit status (our messages: ${ours.messages})`).to.equal(c.status);
      if (c.code) expect(ours.messages, 'our error code').to.contain(`${c.code}:`);
      if (c.words) {
        expect(gnu.messages, 'GNU ddrescue\'s message').to.contain(c.words);
        expect(ours.messages, 'our message has GNU ddrescue\'s words').to.contain(c.words);
      }
      for (const w of c.ours ?? []) expect(ours.messages, 'our message').to.match(typeof w === 'string' ? new RegExp(w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : w);
      if (c.status !== 0) expect(ours.messages.split('\n')[0], 'the message starts with the program name').to.match(/^ddferry-reader: /);
      c.after?.(o.dir, ours);
      // ddferry creates no file that GNU ddrescue would not (and some that it would, on purpose, not)
      const extra = ours.created.filter((f) => !gnu.created.includes(f));
      expect(extra, 'files we create that GNU ddrescue does not').to.deep.equal([]);
      const missing = gnu.created.filter((f) => !ours.created.includes(f));
      expect(missing, 'files GNU ddrescue creates that we do not').to.deep.equal([...(c.gnuAlsoCreates ?? [])]);
      if (c.sameMap) {
        expect(mapBody(readFileSync(join(o.dir, 'map'), 'latin1')), 'final mapfile = GNU ddrescue\'s').to.equal(mapBody(readFileSync(join(g.dir, 'map'), 'latin1')));
        expect(readFileSync(join(o.dir, 'out')).equals(readFileSync(join(g.dir, 'out'))), 'output = GNU ddrescue\'s').to.equal(true);
      }
      const first = (s: string): string => s.split('\n').find((l) => l.trim() !== '') ?? '';
      const gnuLine = first(gnu.messages).replace(/^ddrescue: /, '');
      const ourLine = first(ours.messages).replace(/^ddferry-reader: /, '').replace(/^ERR_[A-Z_]+: /, '');
      if (gnuLine !== ourLine) differences.push(`${c.name}: GNU "${gnuLine}" / ours "${ourLine}"`);
    });
  });
});
