import type { Block } from '@ddferry/mapfile';
import type { Limits, WelcomeMessage } from '@ddferry/protocol';
import { encodeEnvelope, isProtocolError } from '@ddferry/protocol';

import type { Image } from './image.js';

/**
 * The Welcome for `image`: its `+` ranges, its merged seqs and its size. Both
 * lists only help the reader skip work, so when they do not fit in one message
 * (`maxFinishedRanges`, `maxSeqs`, `maxMessageBytes`) they are cut, keeping the
 * first finished ranges and the latest seqs: a reader told less than the truth
 * re-reads or resends, which merging makes harmless (A2), never the reverse.
 * @returns the encoded envelope, and whether it lists everything.
 */
export function encodeWelcome(proof: Uint8Array, image: Image, limits: Limits): { bytes: Uint8Array; complete: boolean } {
  const allFinished = image.finishedRanges();
  let finished: Block[] = allFinished.slice(0, limits.maxFinishedRanges);
  let mergedSeqs = image.mergedSeqs(limits.maxSeqs);
  let complete = finished.length === allFinished.length && mergedSeqs.length === image.mergedCount;
  for (;;) {
    const msg: WelcomeMessage = { type: 'welcome', serverProof: proof, finished, mergedSeqs, imageSize: image.size };
    try {
      return { bytes: encodeEnvelope(msg, limits), complete };
    } catch (err) {
      if (!isProtocolError(err) || err.code !== 'ERR_PROTO_MESSAGE_TOO_LARGE' || (finished.length === 0 && mergedSeqs.length === 0)) throw err;
      complete = false;
      finished = finished.slice(0, Math.floor(finished.length / 2));
      mergedSeqs = mergedSeqs.slice(Math.ceil(mergedSeqs.length / 2));
    }
  }
}
