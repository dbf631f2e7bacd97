#!/usr/bin/env node
// The program as one module (dist/ddferry-reader.mjs, written by `npm run build`: it starts faster),
// unless a `tsc -b` of a package it holds ran after it: then the modules `tsc -b` wrote.
import { statSync } from 'node:fs';

const mtime = (path) => statSync(new URL(path, import.meta.url), { throwIfNoEntry: false })?.mtimeMs ?? -1;
const bundle = mtime('../dist/ddferry-reader.mjs');
const fresh = bundle > 0 && ['../tsconfig.tsbuildinfo', '../../protocol/tsconfig.tsbuildinfo', '../../mapfile/tsconfig.tsbuildinfo'].every((f) => mtime(f) <= bundle);
await import(fresh ? '../dist/ddferry-reader.mjs' : '../dist/main.js');
