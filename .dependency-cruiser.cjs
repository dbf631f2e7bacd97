/**
 * Which code may import which (npm run lint: `depcruise`). Type-only imports count
 * (`tsPreCompilationDeps`), so a cycle through types fails too.
 *
 * Packages: mapfile <- protocol <- reader, assembler; reader and assembler never
 * import each other. Inside the reader, folders by concern, each importing only the
 * layers below it:
 *
 *   commands  ->  lan, stick  ->  run  ->  job, progress  ->  logs  ->  engine  ->  source  ->  (errors, durable-file, strerror)
 *
 * (job may use engine and source; progress may use logs and engine; lan and stick
 * never import each other: the run loop knows neither. used, the file-system scan,
 * imports nothing of the reader but its root files: it reads through what it is given.)
 */
const READER = '^packages/reader/src/';
const layer = (name) => `${READER}${name}/`;
const ROOT_FILES = `${READER}(errors|durable-file|strerror)\\.ts$`;

/** A reader folder may import only these. */
const allowed = {
  used: [],
  source: [],
  engine: ['source'],
  logs: ['engine'],
  progress: ['engine', 'logs'],
  job: ['engine', 'source', 'logs', 'used'],
  run: ['job', 'progress', 'engine', 'source', 'logs', 'used'],
  lan: ['run', 'job', 'progress', 'engine', 'source', 'logs'],
  stick: ['run', 'job', 'progress', 'engine', 'source', 'logs'],
};

const folderRules = Object.entries(allowed).map(([from, to]) => ({
  name: `reader-${from}-layer`,
  comment: `reader/src/${from} may import only ${to.length ? to.join(', ') : 'nothing'} of the reader's folders (and errors, durable-file, strerror)`,
  severity: 'error',
  from: { path: layer(from) },
  to: { path: READER, pathNot: [layer(from), ROOT_FILES, ...to.map(layer)] },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycle, type-only imports included.',
      severity: 'error',
      from: { path: '^packages/' },
      to: { circular: true },
    },
    {
      name: 'reader-not-assembler',
      comment: 'reader and assembler never import each other; what they share lives in protocol or mapfile.',
      severity: 'error',
      from: { path: '^packages/reader/' },
      to: { path: ['^packages/assembler/', '^@ddferry/assembler'] },
    },
    {
      name: 'assembler-not-reader',
      severity: 'error',
      from: { path: '^packages/assembler/' },
      to: { path: ['^packages/reader/', '^@ddferry/reader'] },
    },
    {
      name: 'protocol-only-mapfile',
      comment: 'protocol imports mapfile and nothing else of ours.',
      severity: 'error',
      from: { path: '^packages/protocol/' },
      to: { path: ['^packages/(reader|assembler)/', '^@ddferry/(reader|assembler)'] },
    },
    {
      name: 'mapfile-alone',
      comment: 'mapfile imports nothing of ours.',
      severity: 'error',
      from: { path: '^packages/mapfile/' },
      to: { path: ['^packages/(protocol|reader|assembler)/', '^@ddferry/(protocol|reader|assembler)'] },
    },
    {
      name: 'no-deep-package-imports',
      comment: 'Other packages are imported by name (their index or a declared subpath export), never by a path into them.',
      severity: 'error',
      from: { path: '^packages/([^/]+)/' },
      to: { path: '^packages/([^/]+)/', pathNot: '^packages/$1/' },
    },
    {
      name: 'reader-lan-not-stick',
      comment: 'LAN code never calls stick code, nor the other way round.',
      severity: 'error',
      from: { path: layer('lan') },
      to: { path: layer('stick') },
    },
    {
      name: 'reader-stick-not-lan',
      severity: 'error',
      from: { path: layer('stick') },
      to: { path: layer('lan') },
    },
    ...folderRules,
    {
      name: 'reader-root-files-alone',
      comment: 'errors, durable-file and strerror are below every folder.',
      severity: 'error',
      from: { path: ROOT_FILES },
      to: { path: `${READER}[a-z]+/` },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['(^|/)dist/', '(^|/)node_modules/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'types', 'default'], extensions: ['.ts', '.js'] },
  },
};
