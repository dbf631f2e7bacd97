import { execFileSync } from 'node:child_process';

import { expect } from 'chai';
import fc from 'fast-check';

import { createXxh64, hexOf, parseHex64, xxh64, XXH64_LIBRARY, XXH64_SLICE_BYTES } from '../src/xxh64.js';
import { bytesOf } from './helpers.js';

describe('xxh64', () => {
  it('matches the reference vectors (seed 0)', () => {
    expect(xxh64(new Uint8Array(0))).to.equal(0xef46db3751d8e999n);
    expect(xxh64(Buffer.from('a'))).to.equal(0xd24ec4f1a98c6e5bn);
    expect(xxh64(Buffer.from('abc'))).to.equal(0x44bc2cf5ad770999n);
    expect(createXxh64().digest()).to.equal(0xef46db3751d8e999n);
  });

  it('gives the same value fed in any slices', () => {
    const data = bytesOf(100_000, 1);
    const whole = xxh64(data);
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 100_000 }), { maxLength: 10 }), (cuts) => {
      const points = [0, ...cuts.sort((a, b) => a - b), data.length];
      const h = createXxh64();
      for (let i = 1; i < points.length; i++) h.update(data.subarray(points[i - 1], points[i]));
      expect(h.digest()).to.equal(whole);
    }), { numRuns: 200, seed: 5 });
  });

  it('hashes inputs larger than one slice the same as the streaming hasher', () => {
    const data = bytesOf(XXH64_SLICE_BYTES * 2 + 7, 2);
    const h = createXxh64();
    h.update(data.subarray(0, 12345)).update(data.subarray(12345));
    expect(xxh64(data)).to.equal(h.digest());
  });

  it('detects a flipped bit', () => {
    const data = bytesOf(4096, 3);
    const before = xxh64(data);
    data[1000] = (data[1000] ?? 0) ^ 0x10;
    expect(xxh64(data)).to.not.equal(before);
  });

  it('runs the native library where it loads (this platform has its prebuilt binary)', () => {
    expect(XXH64_LIBRARY).to.equal('native');
  });

  it('gives the same values with the WebAssembly library (DDFERRY_XXH64=wasm, as in a single executable)', function () {
    this.timeout(30_000);
    const sizes = [0, 1, 3, 31, 32, 33, 4096, XXH64_SLICE_BYTES - 1, XXH64_SLICE_BYTES, XXH64_SLICE_BYTES * 3 + 5, 4 << 20];
    const cut = 12_345;
    // in a child process: the library is chosen when the module loads
    const code = `
      const m = await import(${JSON.stringify(new URL('../src/xxh64.ts', import.meta.url).href)});
      const h = await import(${JSON.stringify(new URL('./helpers.ts', import.meta.url).href)});
      const out = { library: m.XXH64_LIBRARY, whole: [], streamed: [] };
      for (const [i, n] of ${JSON.stringify(sizes)}.entries()) {
        const data = h.bytesOf(n, 10 + i);
        out.whole.push(m.xxh64(data).toString(16));
        out.streamed.push(m.createXxh64().update(data.subarray(0, ${cut})).update(data.subarray(${cut})).digest().toString(16));
      }
      process.stdout.write(JSON.stringify(out));`;
    const child = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      env: { ...process.env, DDFERRY_XXH64: 'wasm' }, encoding: 'utf8',
    })) as { library: string; whole: string[]; streamed: string[] };
    expect(child.library).to.equal('wasm');
    const here = sizes.map((n, i) => xxh64(bytesOf(n, 10 + i)).toString(16));
    expect(child.whole).to.deep.equal(here);
    expect(child.streamed).to.deep.equal(here);
  });

  it('writes and reads 16 lowercase hex digits', () => {
    expect(hexOf(0xef46db3751d8e999n)).to.equal('ef46db3751d8e999');
    expect(hexOf(1n)).to.equal('0000000000000001');
    expect(parseHex64('ef46db3751d8e999')).to.equal(0xef46db3751d8e999n);
    expect(parseHex64('EF46DB3751D8E999')).to.equal(undefined);
    expect(parseHex64('ef46db3751d8e99')).to.equal(undefined);
    expect(() => hexOf(-1n)).to.throw(RangeError);
    expect(() => hexOf(1n << 64n)).to.throw(RangeError);
  });
});
