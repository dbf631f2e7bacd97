import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { expect } from 'chai';

import { currentHost, readingProcessCommand } from '../src/run/reading-process.js';

const PKG = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('readingProcessCommand', () => {
  it('starts the executable itself with __reading-process when the reader is a SEA', () => {
    const c = readingProcessCommand({ execPath: '/tmp/ddferry-reader', execArgv: [], moduleUrl: 'file:///tmp/ddferry-reader', isSea: true });
    expect(c).to.deep.equal({ file: '/tmp/ddferry-reader', args: ['__reading-process'] });
  });

  it('starts dist/main.js with Node and its options when the reader runs from the workspace', () => {
    const moduleUrl = pathToFileURL(join(PKG, 'dist', 'run', 'reading-process.js')).href;
    const c = readingProcessCommand({ execPath: '/usr/bin/node', execArgv: ['--max-old-space-size=512'], moduleUrl, isSea: false });
    expect(c).to.deep.equal({ file: '/usr/bin/node', args: ['--max-old-space-size=512', join(PKG, 'dist', 'main.js'), '__reading-process'] });
  });

  it('starts src/main.ts under the same loader when the reader runs as TypeScript', () => {
    const moduleUrl = pathToFileURL(join(PKG, 'src', 'run', 'reading-process.ts')).href;
    const c = readingProcessCommand({ execPath: '/usr/bin/node', execArgv: ['--import', 'tsx', '--inspect=9229'], moduleUrl, isSea: false });
    expect(c).to.deep.equal({ file: '/usr/bin/node', args: ['--import', 'tsx', join(PKG, 'src', 'main.ts'), '__reading-process'] });
  });

  it('starts the bundle file itself when the reader is one bundled module', () => {
    const c = readingProcessCommand({ execPath: '/usr/bin/node', execArgv: [], moduleUrl: 'file:///opt/ddferry/bin/ddferry-reader.mjs', isSea: false });
    expect(c).to.deep.equal({ file: '/usr/bin/node', args: ['/opt/ddferry/bin/ddferry-reader.mjs', '__reading-process'] });
  });

  it('names an entry that exists and answers as the reader, for this process', () => {
    const host = currentHost();
    expect(host.isSea).to.equal(false);
    const c = readingProcessCommand(host);
    const entry = c.args[c.args.length - 2]!;
    expect(existsSync(entry), entry).to.equal(true);
    // the same command with --version instead of __reading-process: the reader's own entry
    const r = spawnSync(c.file, [...c.args.slice(0, -1), '--version'], { encoding: 'utf8' });
    expect(r.stdout, r.stderr).to.match(/^ddferry-reader /);
  });
});
