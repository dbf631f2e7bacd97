import { Domain } from '@ddferry/mapfile';
import { pathExists, readMapfile } from '@ddferry/mapfile/io';

import { ReaderError } from '../errors.js';
import { FileSource } from './file-source.js';
import type { Source } from './source.js';
import { TestModeSource } from './test-mode-source.js';

/** A source, and its test-mode view when it is simulated with a GNU ddrescue test map. */
export interface OpenedSource {
  readonly source: Source;
  readonly testSource?: TestModeSource;
}

/**
 * Open a source read-only, through a test-mode map (`-H`, read loosely with `loose`) if given.
 * @throws ReaderError `ERR_SOURCE_OPEN`, `ERR_SOURCE_NOT_SEEKABLE`, `ERR_TEST_MAP`; MapfileError (a malformed test map).
 */
export async function openSource(path: string, options: { direct?: boolean; testMap?: string; loose?: boolean }): Promise<OpenedSource> {
  const raw = new FileSource(path, { direct: options.direct });
  if (options.testMap === undefined) return { source: raw };
  try {
    if (!(await pathExists(options.testMap))) {
      throw new ReaderError('ERR_TEST_MAP', options.testMap, `${options.testMap}: the test-mode mapfile does not exist. Check its name.`);
    }
    const tm = await readMapfile(options.testMap, { file: options.testMap, loose: options.loose ? '?' : undefined });
    const testSource = new TestModeSource(raw, Domain.fromOptions(0, -1, tm.blocks));
    return { source: testSource, testSource };
  } catch (err) {
    raw.close();
    throw err;
  }
}
