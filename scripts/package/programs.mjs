/**
 * The three programs: the built entry of each (`tsc -b`), and where `npm run build` writes
 * its one-file build (`scripts/bundle-programs.mjs`), which its `bin/` script runs.
 */
export const PROGRAMS = [
  { name: 'ddferry-reader', entry: 'packages/reader/dist/main.js', bundle: 'packages/reader/dist/ddferry-reader.mjs' },
  { name: 'ddferry-assembler', entry: 'packages/assembler/dist/main.js', bundle: 'packages/assembler/dist/ddferry-assembler.mjs' },
  { name: 'ddferry-map', entry: 'packages/mapfile/dist/main.js', bundle: 'packages/mapfile/dist/ddferry-map.mjs' },
];
