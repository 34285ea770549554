import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HttpHeadParser } from '../../src/wire/http-head-parser.js';
import type { HeadKind, HeadFor, HeadParseResult } from '../../src/wire/http-head-parser.js';

const SWITCHING =
  'HTTP/1.1 101 Switching Protocols\r\n' +
  'Upgrade: websocket\r\n' +
  'Connection: Upgrade\r\n' +
  'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n' +
  'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n' +
  '\r\n';
/** The first WebSocket frame bytes that follow the head in the same TCP segment. */
const FRAME = Buffer.from([0x81, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]);

/** Pushes the pieces one by one; returns the first non-incomplete result and everything after the head. */
function feed<K extends HeadKind>(parser: HttpHeadParser<K>, pieces: Buffer[]): { result: HeadParseResult<HeadFor<K>>; after: Buffer } {
  let result: HeadParseResult<HeadFor<K>> = { state: 'incomplete' };
  const after: Buffer[] = [];
  for (const piece of pieces) {
    if (result.state === 'complete') {
      after.push(piece);
      // Later pushes return the very same final result.
      expect(parser.push(piece)).toBe(result);
      continue;
    }
    result = parser.push(piece);
    if (result.state === 'complete') after.push(result.rest);
  }
  return { result, after: Buffer.concat(after) };
}

function complete<H>(result: HeadParseResult<H>): H {
  if (result.state !== 'complete') throw new Error(`expected a complete head, got ${JSON.stringify(result)}`);
  return result.head;
}

describe('HttpHeadParser responses', () => {
  it('parses a 101 response split at every position, body bytes in rest', () => {
    const whole = Buffer.concat([Buffer.from(SWITCHING, 'latin1'), FRAME]);
    const reference = new HttpHeadParser('response').push(whole);
    const head = complete(reference);
    expect(head).toEqual({
      kind: 'response',
      httpVersion: '1.1',
      statusCode: 101,
      reason: 'Switching Protocols',
      rawHeaders: [
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Accept', 's3pPLMBiTxaQ9kYGzzhZRbK+xOo='],
        ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits=10'],
      ],
      headLength: SWITCHING.length,
    });
    for (let split = 0; split <= whole.length; split += 1) {
      const parser = new HttpHeadParser('response');
      const { result, after } = feed(parser, [whole.subarray(0, split), whole.subarray(split)]);
      expect(complete(result)).toEqual(head);
      expect(after.equals(FRAME)).toBe(true);
      expect(parser.bytesSeen).toBe(whole.length);
    }
  });

  it('finds the terminator split across three chunks inside "\\r\\n\\r\\n"', () => {
    const whole = Buffer.from(SWITCHING, 'latin1');
    const end = whole.length;
    for (const [a, b] of [[end - 3, end - 1], [end - 2, end - 1], [end - 4, end - 2]] as const) {
      const { result } = feed(new HttpHeadParser('response'), [whole.subarray(0, a), whole.subarray(a, b), whole.subarray(b)]);
      expect(complete(result).headLength).toBe(end);
    }
  });

  it('returns the body start of a 400 in rest and does not mutate the chunk', () => {
    const text = 'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nbad request';
    const chunk = Buffer.from(text, 'latin1');
    const copy = Buffer.from(chunk);
    const result = new HttpHeadParser('response').push(chunk);
    expect(result.state).toBe('complete');
    if (result.state !== 'complete') return;
    expect(result.head.statusCode).toBe(400);
    expect(result.rest.toString()).toBe('bad request');
    expect(result.rest.buffer).toBe(chunk.buffer);
    expect(chunk.equals(copy)).toBe(true);
  });

  it('keeps duplicate headers, odd casing and order; trims optional whitespace', () => {
    const text = 'HTTP/1.0 200 OK\r\nset-COOKIE: a=1\r\nX-Empty:\r\nSet-Cookie:\t b=2 \t\r\nx-odd-CASE:  v a l  \r\n\r\n';
    const head = complete(new HttpHeadParser('response').push(Buffer.from(text, 'latin1')));
    expect(head.httpVersion).toBe('1.0');
    expect(head.rawHeaders).toEqual([
      ['set-COOKIE', 'a=1'],
      ['X-Empty', ''],
      ['Set-Cookie', 'b=2'],
      ['x-odd-CASE', 'v a l'],
    ]);
  });

  it('accepts bare LF line endings, a missing reason and latin1 bytes', () => {
    const bytes = Buffer.concat([Buffer.from('HTTP/1.1 204\nX-Name: caf'), Buffer.from([0xe9]), Buffer.from('\n\nrest')]);
    const result = new HttpHeadParser('response').push(bytes);
    const head = complete(result);
    expect(head.reason).toBe('');
    expect(head.statusCode).toBe(204);
    expect(head.rawHeaders).toEqual([['X-Name', 'café']]);
    expect(head.headLength).toBe(bytes.length - 4);
  });

  it('treats LF then CRLF as the end of the head', () => {
    const head = complete(new HttpHeadParser('response').push(Buffer.from('HTTP/1.1 200 OK\nA: 1\n\r\n')));
    expect(head.rawHeaders).toEqual([['A', '1']]);
    expect(head.headLength).toBe(23);
  });

  it('keeps a value as sent but for the whitespace around it: inner spaces, tabs, an empty value, no space after the colon', () => {
    const text = 'HTTP/1.1 200 OK\r\nx-weird:   spaced  inside \t\r\nEmpty:\r\nTight:v\r\nAlso-Empty: \t \r\nColons: a:b: c\r\n\r\n';
    const head = complete(new HttpHeadParser('response').push(Buffer.from(text)));
    expect(head.rawHeaders).toEqual([
      ['x-weird', 'spaced  inside'],
      ['Empty', ''],
      ['Tight', 'v'],
      ['Also-Empty', ''],
      ['Colons', 'a:b: c'],
    ]);
  });

  it('joins obsolete line folding with a single space', () => {
    const text = 'HTTP/1.1 200 OK\r\nX-Folded: first\r\n   second\r\n\tthird \r\nNext: n\r\n\r\n';
    const head = complete(new HttpHeadParser('response').push(Buffer.from(text)));
    expect(head.rawHeaders).toEqual([
      ['X-Folded', 'first second third'],
      ['Next', 'n'],
    ]);
  });

  it('reports malformed header lines at the offset of the line', () => {
    const cases: Array<[string, string, string]> = [
      ['HTTP/1.1 200 OK\r\nGood: 1\r\nno colon here\r\n\r\n', 'no colon here', 'header line without a colon'],
      ['HTTP/1.1 200 OK\r\nGood: 1\r\n: empty name\r\n\r\n', ': empty name', 'header line with an empty field name'],
      ['HTTP/1.1 200 OK\r\nGood: 1\r\nBad : space\r\n\r\n', 'Bad : space', 'whitespace in a header field name'],
      ['HTTP/1.1 200 OK\r\nGood: 1\r\nBad\t: tab\r\n\r\n', 'Bad\t: tab', 'whitespace in a header field name'],
      ['HTTP/1.1 200 OK\r\nGood: 1\r\nBad name no colon\r\n\r\n', 'Bad name no colon', 'header line without a colon'],
      ['HTTP/1.1 200 OK\r\n folded-first: x\r\n\r\n', ' folded-first: x', 'continuation line before any header field'],
    ];
    for (const [text, badLine, problem] of cases) {
      const result = new HttpHeadParser('response').push(Buffer.from(text));
      expect(result).toMatchObject({ state: 'error', code: 'MALFORMED_HEADER', offset: text.indexOf(badLine), message: `${problem}: ${JSON.stringify(badLine)}` });
    }
  });

  it('rejects a malformed status line as soon as its line ends', () => {
    for (const line of ['HTTP/1.1 20 OK', 'HTTP/1.1 2000 OK', 'http/1.1 200 OK', 'HTTP/11 200 OK', 'SSH-2.0-OpenSSH_9.6', '']) {
      const parser = new HttpHeadParser('response');
      const result = parser.push(Buffer.from(`${line}\r\nMore: headers`));
      expect(result).toMatchObject({ state: 'error', code: 'MALFORMED_START_LINE', offset: 0 });
    }
  });

  it('keeps returning the final result without re-parsing', () => {
    const parser = new HttpHeadParser('response');
    const first = parser.push(Buffer.from('HTTP/1.1 101 Switching Protocols\r\n\r\n'));
    const again = parser.push(Buffer.from('HTTP/1.1 500 Oops\r\n\r\n'));
    expect(again).toBe(first);
    const broken = new HttpHeadParser('response');
    const error = broken.push(Buffer.from('garbage\n'));
    expect(broken.push(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'))).toBe(error);
    expect(broken.bytesSeen).toBe(8 + 19);
  });

  it('reports HEAD_TOO_LARGE at maxHeadBytes, but accepts a head of exactly that size', () => {
    const head = 'HTTP/1.1 200 OK\r\nX: 12345\r\n\r\n';
    const exact = new HttpHeadParser('response', { maxHeadBytes: head.length });
    expect(exact.push(Buffer.from(head + 'body')).state).toBe('complete');
    const tooSmall = new HttpHeadParser('response', { maxHeadBytes: head.length - 1 });
    expect(tooSmall.push(Buffer.from(head))).toMatchObject({ state: 'error', code: 'HEAD_TOO_LARGE', offset: head.length - 1 });
    const dribble = new HttpHeadParser('response', { maxHeadBytes: 100 });
    let result = dribble.push(Buffer.from('HTTP/1.1 200 OK\r\n'));
    for (let i = 0; i < 20 && result.state === 'incomplete'; i += 1) result = dribble.push(Buffer.from('X-Filler: 0123\r\n'));
    expect(result).toMatchObject({ state: 'error', code: 'HEAD_TOO_LARGE', offset: 100 });
  });

  it('gives the same result for a head that arrives whole in one chunk (read without a copy) as for the same bytes one at a time', () => {
    const cases = [
      SWITCHING + 'after',
      'HTTP/1.1 200 OK\nA: 1\n\n',
      'HTTP/1.1 200 OK\r\n\r\n',
      'HTTP/1.1 200 OK\n\r\nbody',
      'garbage\r\nX: 1\r\n\r\n',
      'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: 1\r\n',
    ];
    for (const text of cases) {
      for (const maxHeadBytes of [65536, 20]) {
        const whole = new HttpHeadParser('response', { maxHeadBytes }).push(Buffer.from(text, 'latin1'));
        const bytewise = feed(new HttpHeadParser('response', { maxHeadBytes }), [...Buffer.from(text, 'latin1')].map((b) => Buffer.from([b]))).result;
        const { rest: wholeRest, ...wholeResult } = whole as HeadParseResult<HeadFor<'response'>> & { rest?: Buffer };
        const { rest: _bytewiseRest, ...bytewiseResult } = bytewise as HeadParseResult<HeadFor<'response'>> & { rest?: Buffer };
        expect(wholeResult, `${JSON.stringify(text)} within ${maxHeadBytes}`).toEqual(bytewiseResult);
        if (whole.state === 'complete') expect(wholeRest?.toString('latin1')).toBe(text.slice(whole.head.headLength));
      }
    }
  });

  it('defaults maxHeadBytes to 65536', () => {
    const parser = new HttpHeadParser('response');
    expect(parser.push(Buffer.from('HTTP/1.1 200 OK\r\n')).state).toBe('incomplete');
    expect(parser.push(Buffer.alloc(65536 - 17, 0x61)).state).toBe('incomplete');
    expect(parser.push(Buffer.from('a'))).toMatchObject({ state: 'error', code: 'HEAD_TOO_LARGE', offset: 65536 });
  });

  it('parses a 60 KiB head pushed one byte at a time in linear time', () => {
    const lines = ['HTTP/1.1 101 Switching Protocols'];
    while (lines.join('\r\n').length < 60 * 1024) lines.push(`X-Padding-${lines.length}: ${'p'.repeat(100)}`);
    const text = `${lines.join('\r\n')}\r\n\r\n`;
    const bytes = Buffer.from(text);
    const parser = new HttpHeadParser('response');
    const started = performance.now();
    let result: HeadParseResult<HeadFor<'response'>> = { state: 'incomplete' };
    let incomplete = 0;
    for (let i = 0; i < bytes.length; i += 1) {
      result = parser.push(bytes.subarray(i, i + 1));
      if (result.state === 'incomplete') incomplete += 1;
    }
    const elapsed = performance.now() - started;
    expect(incomplete).toBe(bytes.length - 1);
    const head = complete(result);
    expect(head.rawHeaders).toHaveLength(lines.length - 1);
    expect(head.headLength).toBe(bytes.length);
    // About 50 ms when linear; copying the head on every push would take seconds.
    expect(elapsed).toBeLessThan(1000);
  });
});

describe('HttpHeadParser requests', () => {
  const UPGRADE =
    'GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

  it('parses an upgrade request split at every position', () => {
    const whole = Buffer.from(UPGRADE);
    for (let split = 0; split <= whole.length; split += 1) {
      const { result, after } = feed(new HttpHeadParser('request'), [whole.subarray(0, split), whole.subarray(split)]);
      const head = complete(result);
      expect(head).toMatchObject({ kind: 'request', method: 'GET', target: '/chat?room=1', httpVersion: '1.1', headLength: whole.length });
      expect(head.rawHeaders[3]).toEqual(['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']);
      expect(after.length).toBe(0);
    }
  });

  it('accepts other methods and absolute or authority targets', () => {
    const connect = complete(new HttpHeadParser('request').push(Buffer.from('CONNECT example.com:443 HTTP/1.1\n\n')));
    expect(connect).toMatchObject({ method: 'CONNECT', target: 'example.com:443', rawHeaders: [] });
    const proxied = complete(new HttpHeadParser('request').push(Buffer.from('GET http://a.example/x HTTP/1.0\r\nA: b\r\n\r\n')));
    expect(proxied).toMatchObject({ target: 'http://a.example/x', httpVersion: '1.0' });
  });

  it('rejects malformed request lines', () => {
    for (const line of ['GET /', 'GET  / HTTP/1.1', 'GET / HTTP/1.1 extra', 'G(T / HTTP/1.1', 'HTTP/1.1 200 OK']) {
      expect(new HttpHeadParser('request').push(Buffer.from(`${line}\r\n\r\n`))).toMatchObject({ state: 'error', code: 'MALFORMED_START_LINE', offset: 0 });
    }
  });

  it('reports a bad header line in a request with its stream offset across pushes', () => {
    const text = 'GET / HTTP/1.1\r\nHost: x\r\nBroken\r\n\r\n';
    const parser = new HttpHeadParser('request');
    expect(parser.push(Buffer.from(text.slice(0, 20))).state).toBe('incomplete');
    expect(parser.push(Buffer.from(text.slice(20)))).toMatchObject({ state: 'error', code: 'MALFORMED_HEADER', offset: 25 });
  });
});

describe('HttpHeadParser property', () => {
  const tchar = fc.constantFrom(...'!#$%&\'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'.split(''));
  const name = fc.string({ unit: tchar, minLength: 1, maxLength: 20 });
  const valueChar = fc.integer({ min: 0x21, max: 0xff }).filter((code) => code !== 0x7f).map((code) => String.fromCharCode(code));
  const word = fc.string({ unit: valueChar, minLength: 1, maxLength: 12 });
  const value = fc.array(word, { maxLength: 4 }).map((words) => words.join(' '));
  const headers = fc.array(fc.tuple(name, value), { maxLength: 30 });
  const lineEnding = fc.constantFrom('\r\n', '\n');

  it('parses random header sets split at random points the same as whole', () => {
    fc.assert(
      fc.property(headers, lineEnding, fc.uint8Array({ maxLength: 40 }), fc.array(fc.nat(), { maxLength: 8 }), (fields, eol, body, cuts) => {
        const text = `HTTP/1.1 101 Switching Protocols${eol}${fields.map(([n, v]) => `${n}: ${v}${eol}`).join('')}${eol}`;
        const whole = Buffer.concat([Buffer.from(text, 'latin1'), body]);
        const reference = new HttpHeadParser('response').push(whole);
        const head = complete(reference);
        expect(head.rawHeaders).toEqual(fields);
        expect(head.headLength).toBe(text.length);
        const points = [...new Set(cuts.map((cut) => cut % (whole.length + 1)))].sort((a, b) => a - b);
        const pieces = [0, ...points].map((start, i) => whole.subarray(start, [...points, whole.length][i]));
        const { result, after } = feed(new HttpHeadParser('response'), pieces);
        expect(complete(result)).toEqual(head);
        expect(after.equals(Buffer.from(body))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
