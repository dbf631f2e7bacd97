import { MapfileError } from '@ddferry/mapfile';
import { expect } from 'chai';

import { BlockingSource, MAX_SLOW_SECONDS, parseSlowReads } from '../src/source/blocking-source.js';
import type { ReadResult, Source, SourceIdentity } from '../src/source/source.js';

const IDENTITY: SourceIdentity = { kind: 'file', size: 1 << 20, logicalSectorSize: 512, physicalSectorSize: 4096, deviceId: '1:2' };

/** A source that records its calls and the time of each read. */
class RecordingSource implements Source {
  readonly name = 'inner.img';
  readonly size = 1 << 20;
  readonly identity = IDENTITY;
  readonly calls: string[] = [];
  readonly readAt: number[] = [];
  there = true;

  read(buf: Uint8Array, size: number, pos: number): ReadResult {
    this.calls.push(`read ${pos} ${size}`);
    this.readAt.push(performance.now());
    buf.fill(7, 0, size);
    return { copied: size, errno: pos === 4096 ? 'EIO' : null };
  }

  stillThere(): boolean {
    this.calls.push('stillThere');
    return this.there;
  }

  reopen(): void {
    this.calls.push('reopen');
  }

  close(): void {
    this.calls.push('close');
  }
}

function argumentError(fn: () => unknown): MapfileError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(MapfileError);
    return err as MapfileError;
  }
  throw new Error('expected an MapfileError');
}

describe('parseSlowReads', function () {
  it('reads POS+SIZE@SECONDS items in GNU ddrescue number forms', function () {
    expect(parseSlowReads('0x100000+64KiB@12')).to.deep.equal([{ pos: 0x100000, size: 65536, seconds: 12 }]);
    expect(parseSlowReads('0+512@1, 1MiB+4KiB@2.5,010+1k@0.25')).to.deep.equal([
      { pos: 0, size: 512, seconds: 1 },
      { pos: 1 << 20, size: 4096, seconds: 2.5 },
      { pos: 8, size: 1000, seconds: 0.25 },
    ]);
  });

  it('counts s in sectors of the sector size given (512 by default)', function () {
    expect(parseSlowReads('8s+1s@3')).to.deep.equal([{ pos: 4096, size: 512, seconds: 3 }]);
    expect(parseSlowReads('8s+1s@3', 4096)).to.deep.equal([{ pos: 32768, size: 4096, seconds: 3 }]);
  });

  it(`takes SECONDS up to ${MAX_SLOW_SECONDS}, and a range that ends at 2^53-1`, function () {
    expect(parseSlowReads(`0+1@${MAX_SLOW_SECONDS}`)[0]!.seconds).to.equal(MAX_SLOW_SECONDS);
    expect(parseSlowReads('9007199254740990+1@1')).to.deep.equal([{ pos: Number.MAX_SAFE_INTEGER - 1, size: 1, seconds: 1 }]);
  });

  it('refuses malformed lists and items with ERR_ARG_INVALID naming the option and the spec', function () {
    const bad = [
      '', ' ', ',', '0+512', '0+512@', '0+@1', '+512@1', '0@1', '0+512@1,', '0+512@1,,1+1@1', '0+512@1@2', '0+1+2@1',
      '0+0@1', '0+512@0', '0+512@-1', '0+512@1e3', '0+512@.5', '0+512@1.', '0+512@NaN', '0+512@Infinity', '0+512@0x10',
      `0+512@${MAX_SLOW_SECONDS + 0.5}`, '9007199254740991+1@1', '9007199254740990+2@1',
    ];
    for (const spec of bad) {
      const err = argumentError(() => parseSlowReads(spec));
      expect(err.code, spec).to.equal('ERR_ARG_INVALID');
      expect(err.option).to.equal('--test-slow-reads');
      expect(err.value).to.equal(spec);
      expect(err.message).to.contain('--test-slow-reads');
    }
  });

  it('refuses bad numbers with the codes of ddrescue number arguments', function () {
    const cases: Array<[string, string]> = [
      ['abc+512@1', 'ERR_ARG_BAD_NUMBER'],
      ['0+zz@1', 'ERR_ARG_BAD_NUMBER'],
      ['1X+512@1', 'ERR_ARG_BAD_MULTIPLIER'],
      ['0+512Kq@1', 'ERR_ARG_BAD_MULTIPLIER'],
      ['-1+512@1', 'ERR_ARG_OUT_OF_LIMITS'],
      ['0+-512@1', 'ERR_ARG_OUT_OF_LIMITS'],
      ['0x20000000000000+1@1', 'ERR_ARG_TOO_LARGE'],
    ];
    for (const [spec, code] of cases) {
      const err = argumentError(() => parseSlowReads(spec));
      expect(err.code, spec).to.equal(code);
      expect(err.option, spec).to.equal('--test-slow-reads');
    }
  });
});

describe('BlockingSource', function () {
  it('passes name, size, identity, stillThere, reopen and close through to the inner source', function () {
    const inner = new RecordingSource();
    const s = new BlockingSource(inner, [{ pos: 0, size: 512, seconds: 1 }]);
    expect([s.name, s.size, s.identity]).to.deep.equal([inner.name, inner.size, IDENTITY]);
    inner.there = false;
    expect(s.stillThere()).to.equal(false);
    s.reopen();
    s.close();
    expect(inner.calls).to.deep.equal(['stillThere', 'reopen', 'close']);
  });

  describe('#delayOf', function () {
    const s = new BlockingSource(new RecordingSource(), [
      { pos: 4096, size: 4096, seconds: 2 },
      { pos: 6144, size: 512, seconds: 5 },
    ]);

    it('is 0 for reads that only touch a slow range', function () {
      expect(s.delayOf(0, 4096)).to.equal(0);
      expect(s.delayOf(8192, 65536)).to.equal(0);
    });

    it('is the range\'s seconds for a read overlapping it by one byte', function () {
      expect(s.delayOf(0, 4097)).to.equal(2);
      expect(s.delayOf(8191, 1)).to.equal(2);
    });

    it('is the longest of the ranges a read overlaps', function () {
      expect(s.delayOf(0, 1 << 20)).to.equal(5);
      expect(s.delayOf(6655, 2)).to.equal(5);
      expect(s.delayOf(6656, 2)).to.equal(2);
    });
  });

  describe('#read', function () {
    it('answers a read outside every slow range from the inner source, errors included, without blocking', function () {
      const inner = new RecordingSource();
      const s = new BlockingSource(inner, [{ pos: 65536, size: 512, seconds: MAX_SLOW_SECONDS }]);
      const buf = new Uint8Array(4096);
      expect(s.read(buf, 4096, 0)).to.deep.equal({ copied: 4096, errno: null });
      expect(s.read(buf, 512, 4096)).to.deep.equal({ copied: 512, errno: 'EIO' });
      expect(s.block(0, 65536)).to.equal(0);
      expect(inner.calls).to.deep.equal(['read 0 4096', 'read 4096 512']);
      expect(buf[0]).to.equal(7);
    });

    it('blocks a read overlapping a slow range for its seconds before the inner read, each time', function () {
      const inner = new RecordingSource();
      const s = new BlockingSource(inner, [{ pos: 1000, size: 24, seconds: 0.2 }]);
      const buf = new Uint8Array(1024);
      const t0 = performance.now();
      expect(s.read(buf, 1024, 512)).to.deep.equal({ copied: 1024, errno: null });
      expect(inner.readAt[0]! - t0, 'the inner read came after the block').to.be.at.least(200);
      s.read(buf, 1, 1023);
      expect(inner.readAt[1]! - inner.readAt[0]!, 'the second read blocked too').to.be.at.least(200);
      expect(inner.calls).to.deep.equal(['read 512 1024', 'read 1023 1']);
    });

    it('holds the thread without spinning: no timer runs and little CPU is used while it blocks', async function () {
      const s = new BlockingSource(new RecordingSource(), [{ pos: 0, size: 512, seconds: 0.5 }]);
      let ticks = 0;
      const timer = setInterval(() => ++ticks, 1);
      await new Promise((r) => setTimeout(r, 20));
      const before = ticks;
      const cpu = process.cpuUsage();
      const seconds = s.block(0, 512);
      const used = process.cpuUsage(cpu);
      const during = ticks - before;
      clearInterval(timer);
      expect(seconds).to.equal(0.5);
      expect(during, 'timer ticks while blocked').to.equal(0);
      expect((used.user + used.system) / 1000, 'CPU milliseconds used in a 500 ms block').to.be.below(250);
    });
  });

  it('refuses slow ranges out of bounds with a RangeError', function () {
    const bad = [
      { pos: -1, size: 1, seconds: 1 }, { pos: 0, size: 0, seconds: 1 }, { pos: 0.5, size: 1, seconds: 1 },
      { pos: 0, size: 1, seconds: 0 }, { pos: 0, size: 1, seconds: Number.NaN }, { pos: 0, size: 1, seconds: MAX_SLOW_SECONDS + 1 },
      { pos: Number.MAX_SAFE_INTEGER, size: 1, seconds: 1 },
    ];
    for (const r of bad) expect(() => new BlockingSource(new RecordingSource(), [r]), JSON.stringify(r)).to.throw(RangeError, /slow\[0\]/);
  });
});
