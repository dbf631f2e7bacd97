import { expect } from 'chai';

import { formatMapfile } from '../src/format.js';
import { formatPercentage } from '../src/format-num.js';
import { parseMapfile } from '../src/parse.js';

describe('formatMapfile', () => {
  it('writes the 1.27 layout, with columns growing past 32 bits and an unbounded end as 2^63-1', () => {
    const m = parseMapfile('0x100000000 - 3\n0 0x100000000 +\n0x100000000 0x123456789 -\n0x223456789 0x7FFFFFFDDCBA9876 ?\n');
    const text = formatMapfile(m, { program: 'ddrescue', commandLine: 'ddrescue in out map', startTime: '2026-11-23 08:01:39', currentTime: '2026-11-23 08:01:40', message: 'Retrying bad sectors... Retry 3 (forwards)' }).toString();
    expect(text).to.equal([
      '# Mapfile. Created by GNU ddrescue version 1.27',
      '# Command line: ddrescue in out map',
      '# Start time:   2026-11-23 08:01:39',
      '# Current time: 2026-11-23 08:01:40',
      '# Retrying bad sectors... Retry 3 (forwards)',
      '# current_pos  current_status  current_pass',
      '0x100000000     -               3',
      '#      pos        size  status',
      '0x00000000  0x100000000  +',
      '0x100000000  0x123456789  -',
      '0x223456789  0x7FFFFFFDDCBA9876  ?',
      '',
    ].join('\n'));
  });

  it('formats percentages as ddrescuelog does', () => {
    expect(formatPercentage(1, 8)).to.equal(' 12.5%');
    expect(formatPercentage(0, 8)).to.equal('  0%');
    expect(formatPercentage(99999, 100000)).to.equal('100.00%');
    expect(formatPercentage(129, 1000)).to.equal(' 12.9%');
    expect(formatPercentage(1289999, 10000000)).to.equal(' 12.90%');
  });
});
