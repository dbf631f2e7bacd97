/**
 * One bundle per program (esbuild): the program's built code (`packages/<p>/dist/main.js`)
 * and its runtime dependencies in one ES module, which `package.mjs` writes twice:
 *
 * - `dist/bundle/<program>.mjs` for any Node 20.19 or later;
 * - `<program>.sea.cjs`, the main script of the single executable (Node 20's SEA runs one
 *   CommonJS script, whose `require` knows only Node's built-in modules).
 *
 * Both share one body. In it every built-in module is reached through
 * `__ddferry_require(name)` and `import.meta.url` is `__ddferry_module_url`; each form
 * defines the two in its own head. The body keeps its top-level awaits (xxhash-wasm is
 * instantiated when the protocol loads): the SEA runs it inside an async function.
 * Nothing is read from beside the code at run time: the live page, the protobuf schema
 * and the WebAssembly of xxhash-wasm and zstd-wasm are in the JavaScript already.
 */
import { readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { Script } from 'node:vm';

import * as esbuild from 'esbuild';

/** Optional speed-ups `ws` tries to load and does without. */
const ABSENT = ['bufferutil', 'utf-8-validate'];

/** Every built-in module comes from the head's `__ddferry_require`; the absent optional ones throw as unresolved. */
const builtins = {
  name: 'ddferry-builtins',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (isBuiltin(args.path) || args.path === 'node:sea') return { path: args.path, namespace: 'builtin' };
      if (ABSENT.includes(args.path)) return { path: args.path, namespace: 'absent' };
      return undefined;
    });
    build.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: `module.exports = __ddferry_require(${JSON.stringify(args.path)});`, loader: 'js' }));
    build.onLoad({ filter: /.*/, namespace: 'absent' }, (args) => ({
      contents: `const e = new Error(${JSON.stringify(`Cannot find module '${args.path}' (not bundled)`)}); e.code = 'MODULE_NOT_FOUND'; throw e;`,
      loader: 'js',
    }));
  },
};

/**
 * zstd-wasm reads `zstd.wasm` from beside its module when it starts: in a bundle that
 * file is not there, so its bytes go into the code (base64), as xxhash-wasm's are.
 */
const inlineZstdWasm = {
  name: 'ddferry-inline-zstd-wasm',
  setup(build) {
    build.onLoad({ filter: /zstd-wasm[\\/]dist[\\/]common[\\/]index\.node\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const read = "yield readFile(resolve(__dirname, './zstd.wasm'))";
      if (!source.includes(read)) throw new Error(`${args.path}: the line that reads zstd.wasm changed; update scripts/package/bundle.mjs`);
      const wasm = readFileSync(join(dirname(args.path), 'zstd.wasm')).toString('base64');
      return { contents: source.replace(read, `Buffer.from(${JSON.stringify(wasm)}, 'base64')`), loader: 'js' };
    });
  },
};

/**
 * Bundle `entry` (a built `dist/main.js`).
 * @returns the shared body, and the npm packages it holds (name, version, license file) for the notices.
 */
export async function bundleProgram(root, entry) {
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [entry],
    bundle: true,
    write: false,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    define: { 'import.meta.url': '__ddferry_module_url' },
    plugins: [builtins, inlineZstdWasm],
    minifyWhitespace: true,
    minifySyntax: true,
    // keepNames would wrap every function made at run time in `__name` (a defineProperty per
    // closure): a scraping-heavy run took 1.66 s instead of 1.27. Names are not minified;
    // one esbuild renames to avoid a clash shows with a digit in a stack trace.
    keepNames: false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'error',
  });
  const body = result.outputFiles[0].text;
  // the SEA runs the body as a script: an import, an export or import.meta left in it would not even compile
  new Script(seaMain(body), { filename: `${entry} (SEA main)` });
  return { body, packages: packagesOf(root, Object.keys(result.metafile.inputs)) };
}

/** The npm packages whose files are in a bundle, from esbuild's inputs. */
function packagesOf(root, inputs) {
  const found = new Map();
  for (const input of inputs) {
    const parts = input.split(/[\\/]/);
    const at = parts.lastIndexOf('node_modules');
    if (at < 0) continue;
    const n = parts[at + 1].startsWith('@') ? 2 : 1;
    const dir = join(root, ...parts.slice(0, at + 1 + n));
    if (found.has(dir)) continue;
    const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    found.set(dir, { name: pj.name, version: pj.version, license: pj.license, dir: relative(root, dir).split(sep).join('/') });
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** The head of `dist/bundle/<program>.mjs`. */
export const MJS_HEAD = `#!/usr/bin/env node
import { createRequire as __ddferryCreateRequire } from 'node:module';
const __ddferry_require = __ddferryCreateRequire(import.meta.url);
const __ddferry_module_url = import.meta.url;
`;

/**
 * The SEA's main script around `body`: CommonJS, the body in an async function (its
 * top-level awaits), and an error that escapes it ends the process as in an ES module
 * (printed, exit 1).
 */
export function seaMain(body) {
  return `'use strict';
const __ddferry_require = require;
const __ddferry_module_url = require('node:url').pathToFileURL(process.execPath).href;
(async () => {
${body}
})().catch((err) => {
  process.nextTick(() => {
    throw err;
  });
});
`;
}
