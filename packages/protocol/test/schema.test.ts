import { readFileSync } from 'node:fs';

import { expect } from 'chai';

import { MESSAGE_TYPES } from '../src/messages.js';
import { envelopeSchema, PROTO_TEXT, PROTOCOL_VERSION } from '../src/schema.js';

describe('schema', () => {
  it('is the text of src/ddferry.proto', () => {
    expect(PROTO_TEXT).to.equal(readFileSync(new URL('../src/ddferry.proto', import.meta.url), 'utf8'));
  });

  it('is package ddferry.v2, protocol version 3 (encoded frames)', () => {
    expect(PROTO_TEXT).to.match(/^package ddferry\.v2;$/m);
    expect(PROTO_TEXT).to.match(/^syntax = "proto3";$/m);
    expect(PROTOCOL_VERSION).to.equal(3);
  });

  it('has one envelope body per message type, in field order', () => {
    const body = envelopeSchema().oneofs.body;
    expect(body?.fieldsArray.map((f) => [f.name, f.id])).to.deep.equal(MESSAGE_TYPES.map((t, i) => [t, i + 1]));
  });
});
