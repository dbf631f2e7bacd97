#!/usr/bin/env node
// Every error code the packages can raise is documented in the root README (what a user
// reads first), and every code the README names exists. Run by `npm run lint`.
//
// A code is a word ERR_… in packages/*/src (string literals, messages, comments), except Node's own
// codes (ERR_PARSE_ARGS_…, ERR_STREAM_…, …) and prefixes ending in `_`. The README may list the codes of a
// family in one row (`ERR_PIECE_*` (`BAD_SEQ`, …)): a suffix in backticks counts there.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const FAMILIES = ['ERR_PROTO_', 'ERR_PIECE_', 'ERR_BUNDLE_'];
/** Node's own codes, which the code tests for but never raises as ddferry's. */
const NODE_CODE = /^ERR_(PARSE_ARGS|STREAM|INVALID_ARG|OUT_OF_RANGE|SOCKET|HTTP|MODULE|ASSERTION|TLS|IPC|CHILD_PROCESS|FS|BUFFER|UNHANDLED)_/;
/** Prefixes tested with startsWith, not codes themselves. */
const PREFIXES = new Set(['ERR_BUNDLE', 'ERR_STICK', 'ERR_LIVE', 'ERR_AUTH']);

function* sources(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sources(path);
    else if (name.endsWith('.ts')) yield path;
  }
}

const codes = new Map();
for (const pkg of readdirSync(join(ROOT, 'packages'))) {
  const src = join(ROOT, 'packages', pkg, 'src');
  if (!existsSync(src)) continue;
  for (const file of sources(src)) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\b(ERR_[A-Z0-9_]+)\b/g)) {
      const code = m[1];
      if (code.endsWith('_') || PREFIXES.has(code) || NODE_CODE.test(code) || codes.has(code)) continue;
      codes.set(code, file.slice(ROOT.length + 1));
    }
  }
}
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const documented = (code) => {
  if (readme.includes(`\`${code}\``)) return true;
  const family = FAMILIES.find((f) => code.startsWith(f));
  return family !== undefined && readme.includes(`\`${family}*\``) && readme.includes(`\`${code.slice(family.length)}\``);
};
const missing = [...codes.keys()].filter((c) => !documented(c)).sort();
const unknown = [...new Set([...readme.matchAll(/`(ERR_[A-Z0-9_]*[A-Z0-9])`/g)].map((m) => m[1]))].filter((c) => !codes.has(c)).sort();
if (missing.length > 0 || unknown.length > 0) {
  for (const c of missing) console.error(`README.md: error code ${c} (raised in ${codes.get(c)}) is not documented: add it to the Errors section`);
  for (const c of unknown) console.error(`README.md: names ${c}, which no package raises: remove or correct it`);
  process.exit(1);
}
console.log(`error codes: all ${codes.size} raised by the packages are documented in README.md`);
