import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedBodyDecoder } from '../../src/wire/chunked-body.js';

/** De-chunks a (possibly cut-off) prefix at once. */
function dechunkPrefix(prefix: Buffer, keep = prefix.length): { data: Buffer; dataBytes: number; done: boolean; error: string | null } {
  const decoder = new ChunkedBodyDecoder({ keep });
  decoder.push(prefix);
  return { data: decoder.data, dataBytes: decoder.dataBytes, done: decoder.done, error: decoder.error };
}

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Encodes `data` as a chunked body with the given chunk sizes (the last one repeats). */
function chunked(data: Buffer, sizes: number[], trailer = ''): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  let i = 0;
  while (at < data.length) {
    const size = Math.max(1, Math.min(sizes[Math.min(i, sizes.length - 1)] ?? 1, data.length - at));
    parts.push(bytes(`${size.toString(16)}\r\n`), data.subarray(at, at + size), bytes('\r\n'));
    at += size;
    i++;
  }
  parts.push(bytes(`0\r\n${trailer}\r\n`));
  return Buffer.concat(parts);
}

describe('chunked body decoder', () => {
  it('de-chunks a whole body and says it is done', () => {
    const wire = bytes('7\r\nOrigin \r\nc\r\nnot allowed\n\r\n0\r\n\r\n');
    const r = dechunkPrefix(wire);
    expect(r.data.toString()).toBe('Origin not allowed\n');
    expect(r).toMatchObject({ dataBytes: 19, done: true, error: null });
  });

  it('accepts chunk extensions, upper-case hex, trailers and bare LF', () => {
    const wire = bytes('A;name=value\r\n0123456789\r\n2 ; x\nab\n0\r\nX-Trailer: 1\r\nY: 2\n\r\n');
    const r = dechunkPrefix(wire);
    expect(r.data.toString()).toBe('0123456789ab');
    expect(r.done).toBe(true);
    expect(r.error).toBeNull();
  });

  it('a prefix cut anywhere gives the data so far and is not done', () => {
    const wire = bytes('7\r\nOrigin \r\nc\r\nnot allowed\n\r\n0\r\n\r\n');
    for (let cut = 0; cut < wire.length; cut++) {
      const r = dechunkPrefix(wire.subarray(0, cut));
      expect(r.done, `cut at ${cut}`).toBe(false);
      expect(r.error, `cut at ${cut}`).toBeNull();
      expect('Origin not allowed\n'.startsWith(r.data.toString()), `cut at ${cut}`).toBe(true);
    }
    expect(dechunkPrefix(bytes('7\r\nOri')).data.toString()).toBe('Ori');
    expect(dechunkPrefix(bytes('7\r')).dataBytes).toBe(0);
  });

  it('keeps only `keep` bytes but counts them all', () => {
    const r = dechunkPrefix(bytes('a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n'), 4);
    expect(r.data.toString()).toBe('0123');
    expect(r.dataBytes).toBe(13);
    expect(r.done).toBe(true);
    const none = dechunkPrefix(bytes('3\r\nabc\r\n0\r\n\r\n'), 0);
    expect(none.data.length).toBe(0);
    expect(none).toMatchObject({ dataBytes: 3, done: true });
  });

  it('stops at malformed framing, keeping what it decoded', () => {
    expect(dechunkPrefix(bytes('zz\r\n')).error).toMatch(/expected a hex chunk size/);
    const long = dechunkPrefix(bytes('3\r\nabcdef\r\n0\r\n\r\n'));
    expect(long.error).toMatch(/longer than its chunk size/);
    expect(long.data.toString()).toBe('abc');
    expect(dechunkPrefix(bytes('3\rx')).error).toMatch(/expected LF/);
    expect(dechunkPrefix(bytes('3x\r\n')).error).toMatch(/unexpected byte 0x78/);
    expect(dechunkPrefix(bytes('ffffffffffffffff\r\n')).error).toMatch(/too large/);
  });

  it('ignores bytes after the end of the body', () => {
    const decoder = new ChunkedBodyDecoder({ keep: 100 });
    decoder.push(bytes('1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n'));
    expect(decoder.done).toBe(true);
    expect(decoder.data.toString()).toBe('a');
    expect(decoder.wireBytes).toBe(11);
  });

  it('does not keep a reference to the pushed chunk', () => {
    const decoder = new ChunkedBodyDecoder({ keep: 100 });
    const chunk = bytes('3\r\nabc\r\n');
    decoder.push(chunk);
    chunk.fill(0x21);
    expect(decoder.data.toString()).toBe('abc');
  });

  it('gives the same result under any chunking of the input (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 0, max: 400 }),
        (data, sizes, cuts, keep) => {
          const body = Buffer.from(data);
          const wire = chunked(body, sizes, 'X-T: y\r\n');
          const decoder = new ChunkedBodyDecoder({ keep });
          let at = 0;
          let i = 0;
          while (at < wire.length) {
            const n = cuts[i++ % cuts.length] as number;
            decoder.push(wire.subarray(at, at + n));
            at += n;
          }
          expect(decoder.error).toBeNull();
          expect(decoder.done).toBe(true);
          expect(decoder.dataBytes).toBe(body.length);
          expect(decoder.wireBytes).toBe(wire.length);
          expect(decoder.data.equals(body.subarray(0, keep))).toBe(true);
        },
      ),
    );
  });
});
