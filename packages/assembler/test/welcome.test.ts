import { decodeEnvelope, DEFAULT_LIMITS, resolveLimits } from '@ddferry/protocol';
import { expect } from 'chai';

import { Image } from '../src/image.js';
import { mergePieces } from '../src/merge.js';
import { answerQuery, encodeWelcome } from '../src/welcome.js';

import { bindRequest, makePiece, tempDir } from './helpers.js';

describe('Welcome and Answer', () => {
  let cleanup: () => Promise<void>;
  let image: Image;
  const pieces = [1, 2, 3, 5].map((s) => makePiece(s, 0, [{ pos: s * 512, size: 512, status: '+' }]));
  const ref = (i: number): { seq: number; headerHash: string } => ({ seq: pieces[i]!.seq, headerHash: pieces[i]!.headerHash });
  beforeEach(async () => {
    let dir: string;
    ({ dir, cleanup } = await tempDir());
    image = await Image.open(`${dir}/disk.img`);
    await image.bind(bindRequest());
    await mergePieces(image, pieces);
  });
  afterEach(async () => {
    await image.close();
    await cleanup();
  });

  it('welcomes with the finished ranges, the image size and the largest merged seq, and no list of seqs', () => {
    const { bytes, complete } = encodeWelcome(new Uint8Array(32), image, DEFAULT_LIMITS);
    expect(complete).to.equal(true);
    expect(decodeEnvelope(bytes)).to.deep.include({ type: 'welcome', finished: [{ pos: 512, size: 1536 }, { pos: 2560, size: 512 }], maxMergedSeq: 5 });
  });

  it('answers a query with the seqs the image holds and their header hashes, in the order asked, each once', () => {
    expect(answerQuery(image, [5, 4, 1, 5], DEFAULT_LIMITS)).to.deep.equal([{ type: 'answer', merged: [ref(3), ref(0)], more: false }]);
    expect(answerQuery(image, [], DEFAULT_LIMITS)).to.deep.equal([{ type: 'answer', merged: [], more: false }]);
  });

  it('cuts a long answer in messages of at most maxSeqs references, all but the last with more', () => {
    const limits = resolveLimits({ maxSeqs: 2 });
    expect(answerQuery(image, [1, 2, 3, 5], limits)).to.deep.equal([
      { type: 'answer', merged: [ref(0), ref(1)], more: true },
      { type: 'answer', merged: [ref(2), ref(3)], more: false },
    ]);
    expect(answerQuery(image, [1, 2], limits)).to.deep.equal([{ type: 'answer', merged: [ref(0), ref(1)], more: false }]);
  });
});
