import { describe, expect, it } from 'vitest';
import { negotiatedDeflate, parseExtensions, webSocketAccept } from '../../src/wire/websocket-extensions.js';

describe('parseExtensions', () => {
  it('parses a typical browser offer', () => {
    const { extensions, problems } = parseExtensions(['permessage-deflate; client_max_window_bits']);
    expect(problems).toEqual([]);
    expect(extensions).toEqual([{ name: 'permessage-deflate', params: { client_max_window_bits: true } }]);
  });

  it('parses several extensions across several header values, in order', () => {
    const { extensions, problems } = parseExtensions([
      'permessage-deflate; client_no_context_takeover; server_max_window_bits=10, x-webkit-deflate-frame',
      'foo;bar=baz ;  qux = 1',
    ]);
    expect(problems).toEqual([]);
    expect(extensions).toEqual([
      { name: 'permessage-deflate', params: { client_no_context_takeover: true, server_max_window_bits: '10' } },
      { name: 'x-webkit-deflate-frame', params: {} },
      { name: 'foo', params: { bar: 'baz', qux: '1' } },
    ]);
  });

  it('unescapes quoted-string values (RFC 7692 allows client_max_window_bits="10")', () => {
    const { extensions, problems } = parseExtensions(['permessage-deflate; client_max_window_bits="10"; x="a\\bc", other; y="comma,inside"']);
    expect(extensions).toEqual([
      { name: 'permessage-deflate', params: { client_max_window_bits: '10', x: 'abc' } },
      { name: 'other', params: { y: 'comma,inside' } },
    ]);
    // "comma,inside" is not a token after unescaping.
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/value 1, character \d+: quoted value of parameter "y" is not a token/);
  });

  it('ignores empty list elements and surrounding whitespace', () => {
    const { extensions, problems } = parseExtensions([' , permessage-deflate ,, ', '', '\t']);
    expect(problems).toEqual([]);
    expect(extensions.map((extension) => extension.name)).toEqual(['permessage-deflate']);
  });

  it('reports problems and resumes at the next element', () => {
    const { extensions, problems } = parseExtensions([
      '=bad, good; a=1',
      'ext; =1, ext2; p=, ext3 junk, ext4; q="unterminated, ext5',
    ]);
    expect(extensions.map((extension) => extension.name)).toEqual(['good', 'ext', 'ext2', 'ext3', 'ext4']);
    expect(extensions[0]?.params).toEqual({ a: '1' });
    expect(problems).toEqual([
      'Sec-WebSocket-Extensions value 1, character 0: expected an extension name, found "="',
      'Sec-WebSocket-Extensions value 2, character 5: expected a parameter name',
      'Sec-WebSocket-Extensions value 2, character 17: expected a value for parameter "p"',
      'Sec-WebSocket-Extensions value 2, character 24: expected ";" or "," but found "j"',
      'Sec-WebSocket-Extensions value 2, character 38: unterminated quoted value for parameter "q"',
    ]);
  });

  it('keeps the first of repeated parameters and reports the repeat', () => {
    const { extensions, problems } = parseExtensions(['permessage-deflate; server_max_window_bits=10; server_max_window_bits=12']);
    expect(extensions[0]?.params).toEqual({ server_max_window_bits: '10' });
    expect(problems).toEqual([expect.stringContaining('parameter "server_max_window_bits" repeated')]);
  });

  it('is safe with parameter names such as __proto__', () => {
    const { extensions } = parseExtensions(['x; __proto__=1; constructor']);
    const params = extensions[0]?.params ?? {};
    expect(Object.keys(params)).toEqual(['__proto__', 'constructor']);
    expect(params.__proto__).toBe('1');
  });
});

describe('negotiatedDeflate', () => {
  it('returns null when permessage-deflate was not accepted', () => {
    expect(negotiatedDeflate([])).toBeNull();
    expect(negotiatedDeflate(['x-webkit-deflate-frame'])).toBeNull();
  });

  it('defaults to context takeover and 15-bit windows', () => {
    expect(negotiatedDeflate(['permessage-deflate'])).toEqual({
      serverNoContextTakeover: false,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
    });
  });

  it('reads every parameter, quoted or not, in any header value and case', () => {
    expect(
      negotiatedDeflate(['foo', 'Permessage-Deflate; server_no_context_takeover; Client_No_Context_Takeover; server_max_window_bits=8; client_max_window_bits="12"']),
    ).toEqual({ serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 12 });
  });

  it('falls back to 15 for unusable window sizes', () => {
    for (const value of ['7', '16', '010', 'abc', '']) {
      const result = negotiatedDeflate([`permessage-deflate; server_max_window_bits=${value === '' ? '""' : value}; client_max_window_bits`]);
      expect(result?.serverMaxWindowBits).toBe(15);
      expect(result?.clientMaxWindowBits).toBe(15);
    }
  });

  it('uses the first permessage-deflate element', () => {
    expect(negotiatedDeflate(['permessage-deflate; server_max_window_bits=9, permessage-deflate'])?.serverMaxWindowBits).toBe(9);
  });
});

describe('webSocketAccept', () => {
  it('matches the example of RFC 6455 section 1.3', () => {
    expect(webSocketAccept('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('matches a second well-known key and accept pair', () => {
    expect(webSocketAccept('x3JJHMbDL1EzLkh9GBhXDw==')).toBe('HSmrc0sMlYUkAGmm5OPpG2HaGWk=');
  });
});
