/**
 * The server's memory budget for piece data: requests over all connections, and
 * the buffers of merged pieces kept for the next ones, under one cap (issue 13
 * finding 8: 16 connections each keeping its last 64 MiB held 1.1 GB under
 * --max-memory 128M).
 */
import { expect } from 'chai';

import { MemoryBudget } from '../src/memory-budget.js';

const MiB = 1024 * 1024;

describe('MemoryBudget', () => {
  it('grants what fits at once, queues the rest in arrival order, and grants a request over the cap once nothing is held', () => {
    const budget = new MemoryBudget(10 * MiB);
    const granted: string[] = [];
    expect(budget.take(6 * MiB, () => granted.push('a'))).to.equal(true);
    expect(budget.take(6 * MiB, () => granted.push('b'))).to.be.a('function');
    expect(budget.take(20 * MiB, () => granted.push('c'))).to.be.a('function');
    budget.give(6 * MiB);
    expect(granted).to.deep.equal(['b']);
    budget.give(6 * MiB);
    expect(granted).to.deep.equal(['b', 'c']);
    expect(budget.used).to.equal(20 * MiB);
  });

  it('counts kept buffers as held: connections that each keep their last piece stay under the cap together', () => {
    const budget = new MemoryBudget(128 * MiB);
    // 16 connections, each merging a 64 MiB piece one after the other and keeping its buffer
    for (let i = 0; i < 16; i++) {
      expect(budget.take(64 * MiB, () => undefined)).to.equal(true);
      const data = new Uint8Array(new ArrayBuffer(64 * MiB));
      budget.give(64 * MiB);
      budget.keep(data);
      expect(budget.used).to.be.at.most(128 * MiB);
    }
    expect(budget.kept).to.be.at.most(128 * MiB);
  });

  it('grants a waiting piece on the buffer of the piece just merged (release), never on new memory beside the dead one', () => {
    // e2e finding 8 again: 16 token holders, 64 MiB pieces, --max-memory 128M; a merged piece's buffer
    // was let go (someone waited) while the next piece allocated its own: three pieces' memory at once
    const budget = new MemoryBudget(128 * MiB);
    const granted: string[] = [];
    expect(budget.take(64 * MiB, () => undefined)).to.equal(true);
    expect(budget.take(64 * MiB, () => undefined)).to.equal(true);
    expect(budget.take(64 * MiB, () => granted.push('c'))).to.be.a('function');
    const merged = new Uint8Array(new ArrayBuffer(64 * MiB));
    budget.release(64 * MiB, merged);
    expect(granted).to.deep.equal(['c']);
    const got = budget.reuse(64 * MiB);
    expect(got?.buffer).to.equal(merged.buffer);
    expect(budget.used).to.equal(128 * MiB);
    expect(budget.kept).to.equal(0);
    // without a waiter it is kept as keep does; over the cap it is let go
    budget.release(64 * MiB, got!);
    expect(budget.kept).to.equal(64 * MiB);
    expect(budget.used).to.equal(128 * MiB);
  });

  it('drops kept buffers before a request waits for their room', () => {
    const budget = new MemoryBudget(10 * MiB);
    expect(budget.take(4 * MiB, () => undefined)).to.equal(true);
    budget.give(4 * MiB);
    budget.keep(new Uint8Array(new ArrayBuffer(4 * MiB)));
    expect(budget.take(4 * MiB, () => undefined)).to.equal(true);
    budget.give(4 * MiB);
    budget.keep(new Uint8Array(new ArrayBuffer(4 * MiB)));
    expect(budget.kept).to.equal(8 * MiB);
    // 9 MiB fit only without the kept buffers: granted now, not queued
    expect(budget.take(9 * MiB, () => undefined)).to.equal(true);
    expect(budget.kept).to.equal(0);
    expect(budget.used).to.equal(9 * MiB);
  });

  it('drops kept buffers for a waiting request when room is given back', () => {
    const budget = new MemoryBudget(10 * MiB);
    let granted = false;
    expect(budget.take(6 * MiB, () => undefined)).to.equal(true);
    expect(budget.take(4 * MiB, () => undefined)).to.equal(true);
    expect(budget.take(8 * MiB, () => (granted = true))).to.be.a('function');
    budget.give(4 * MiB);
    // a request waits: nothing is kept
    budget.keep(new Uint8Array(new ArrayBuffer(4 * MiB)));
    expect(budget.kept).to.equal(0);
    budget.give(6 * MiB);
    expect(granted).to.equal(true);
  });

  it('reuses a kept buffer of at least the size asked and at most twice, moving its bytes to the request', () => {
    const budget = new MemoryBudget(64 * MiB);
    const buf = new ArrayBuffer(8 * MiB);
    budget.keep(new Uint8Array(buf));
    expect(budget.used).to.equal(8 * MiB);
    expect(budget.reuse(2 * MiB)).to.equal(undefined);
    expect(budget.reuse(9 * MiB)).to.equal(undefined);
    const got = budget.reuse(6 * MiB)!;
    expect(got.buffer).to.equal(buf);
    expect(got.length).to.equal(6 * MiB);
    expect(budget.used).to.equal(0);
    expect(budget.kept).to.equal(0);
    // small buffers and views into a larger buffer are not kept
    budget.keep(new Uint8Array(64 * 1024));
    budget.keep(new Uint8Array(new ArrayBuffer(4 * MiB), MiB));
    expect(budget.kept).to.equal(0);
  });
});
