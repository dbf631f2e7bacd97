import { expect } from 'chai';

import { printable } from '../src/text.js';

describe('printable', () => {
  it('replaces terminal escapes, C0 and C1 controls and DEL by ?', () => {
    expect(printable('pc\u001b]0;owned\u0007\u001b[2J\r\nx\t\u007f\u009b')).to.equal('pc?]0;owned??[2J??x???');
  });

  it('replaces bidi controls and line separators, keeps other Unicode', () => {
    expect(printable('a\u202egnp.exe\u2066b\u2069\u200f\u061c\u2028é日本🙂')).to.equal('a?gnp.exe?b????é日本🙂');
  });

  it('replaces lone surrogates by U+FFFD', () => {
    expect(printable('a\ud800b\udc00')).to.equal('a\ufffdb\ufffd');
  });

  it('cuts to max code points with an ellipsis, never inside a pair', () => {
    expect(printable('abcdef', 6)).to.equal('abcdef');
    expect(printable('abcdefg', 6)).to.equal('abcde…');
    expect(printable('🙂'.repeat(10), 3)).to.equal('🙂🙂…');
    expect(printable('x'.repeat(300))).to.have.length(200);
  });

  it('gives an empty text for nothing, and refuses a bad max', () => {
    expect(printable(undefined)).to.equal('');
    expect(printable(null)).to.equal('');
    expect(() => printable('a', 0)).to.throw(RangeError);
  });
});
