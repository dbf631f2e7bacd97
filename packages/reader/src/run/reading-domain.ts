import { Domain, parseMapfile } from '@ddferry/mapfile';

import type { ReadingDomain } from './reading-messages.js';

/** The domain a `ReadingDomain` names: one range, or a domain mapfile's `+` blocks. */
export function domainOf(d: ReadingDomain): Domain {
  return 'mapText' in d ? Domain.fromOptions(0, -1, parseMapfile(d.mapText, { file: 'domain', loose: '?' }).blocks) : Domain.fromOptions(d.pos, d.size);
}
