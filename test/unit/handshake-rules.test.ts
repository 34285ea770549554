import { describe, expect, it } from 'vitest';
import { bodyEvidence, handshakeFindings, isHandshakeRequest, type HandshakeFacts } from '../../src/analysis/handshake-rules.js';
import type { RawHeaders } from '../../src/capture/events.js';
import { webSocketAccept } from '../../src/wire/websocket-extensions.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const GOOD_REQUEST: RawHeaders = [
  ['Host', 'chat.example'],
  ['Upgrade', 'websocket'],
  ['Connection', 'upgrade'],
  ['Sec-WebSocket-Key', KEY],
  ['Sec-WebSocket-Version', '13'],
  ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits'],
  ['Sec-WebSocket-Protocol', 'chat, superchat'],
];
const GOOD_RESPONSE: RawHeaders = [
  ['Upgrade', 'websocket'],
  ['Connection', 'Upgrade'],
  ['Sec-WebSocket-Accept', webSocketAccept(KEY)],
];

function facts(overrides: Partial<HandshakeFacts> & { headers?: RawHeaders; httpVersion?: string } = {}): HandshakeFacts {
  const { headers, httpVersion, ...rest } = overrides;
  return {
    request: { method: 'GET', url: '/api/v4/websocket', httpVersion: httpVersion ?? '1.1', rawHeaders: headers ?? GOOD_REQUEST },
    response: { statusCode: 101, reason: 'Switching Protocols', rawHeaders: GOOD_RESPONSE },
    upstreamError: null,
    closedBy: null,
    closed: false,
    requiredHeaders: [],
    ...rest,
  };
}

const ids = (f: HandshakeFacts): string[] => handshakeFindings(f).map((x) => x.id);

describe('handshake rules', () => {
  it('a clean handshake has no findings', () => {
    expect(handshakeFindings(facts())).toEqual([]);
    expect(isHandshakeRequest(GOOD_REQUEST)).toBe(true);
    expect(isHandshakeRequest([['Host', 'x']])).toBe(false);
  });

  it('missing Upgrade and Connection: the plain GET nginx sends without proxy_set_header', () => {
    const headers = GOOD_REQUEST.filter(([n]) => n !== 'Upgrade' && n !== 'Connection');
    const [f] = handshakeFindings(facts({ headers, response: { statusCode: 426, reason: 'Upgrade Required', rawHeaders: [] } }));
    expect(f?.id).toBe('handshake.missing-upgrade');
    expect(f?.severity).toBe('error');
    expect(f?.message).toMatch(/without "Upgrade: websocket" and "upgrade" in Connection/);
    expect(f?.evidence).toEqual(['request: GET /api/v4/websocket HTTP/1.1', 'Upgrade: (absent)', 'Connection: (absent)', `Sec-WebSocket-Key: ${KEY}`]);
    expect(f?.fix).toContain('proxy_set_header Connection "upgrade"');
  });

  it('Connection: close (nginx\'s default to upstreams) alone is enough to break it', () => {
    const headers: RawHeaders = GOOD_REQUEST.map(([n, v]) => (n === 'Connection' ? [n, 'close'] : [n, v]));
    expect(handshakeFindings(facts({ headers }))[0]?.message).toMatch(/without "upgrade" in Connection/);
  });

  it('HTTP/1.0', () => {
    const f = handshakeFindings(facts({ httpVersion: '1.0' })).find((x) => x.id === 'handshake.http10');
    expect(f?.fix).toContain('proxy_http_version 1.1');
    expect(f?.evidence).toEqual(['request: GET /api/v4/websocket HTTP/1.0']);
  });

  it('headers the profile says the app needs', () => {
    const found = handshakeFindings(facts({ requiredHeaders: ['Host', 'X-Forwarded-For', 'X-Forwarded-Proto'] }));
    expect(found.map((x) => [x.id, x.severity, x.fix])).toEqual([
      ['handshake.missing-header', 'warning', 'in the nginx location: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;'],
      ['handshake.missing-header', 'warning', 'in the nginx location: proxy_set_header X-Forwarded-Proto $scheme;'],
    ]);
  });

  it('upstream unreachable, and no answer only when the upstream closed first', () => {
    expect(ids(facts({ response: null, upstreamError: { stage: 'connect', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:9' } }))).toEqual([
      'handshake.upstream-unreachable',
    ]);
    expect(ids(facts({ response: null, closed: true, closedBy: 'upstream' }))).toEqual(['handshake.no-answer']);
    expect(ids(facts({ response: null, closed: true, closedBy: 'client' }))).toEqual([]);
    expect(ids(facts({ response: null, closed: false }))).toEqual([]);
  });

  it('an answer other than 101', () => {
    const [f] = handshakeFindings(facts({ response: { statusCode: 403, reason: 'Forbidden', rawHeaders: [['Content-Type', 'text/plain']] } }));
    expect(f?.id).toBe('handshake.not-upgraded');
    expect(f?.message).toBe('the app answered 403 Forbidden instead of 101 Switching Protocols');
    expect(f?.evidence).toContain('Content-Type: text/plain');
  });

  it('Sec-WebSocket-Accept missing or wrong', () => {
    const without = GOOD_RESPONSE.filter(([n]) => n !== 'Sec-WebSocket-Accept');
    const missing = handshakeFindings(facts({ response: { statusCode: 101, reason: 'Switching Protocols', rawHeaders: without } }));
    expect(missing[0]?.message).toMatch(/has no Sec-WebSocket-Accept/);
    const wrong: RawHeaders = [...without, ['Sec-WebSocket-Accept', 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=']];
    const bad = handshakeFindings(facts({ response: { statusCode: 101, reason: 'Switching Protocols', rawHeaders: wrong } }));
    expect(bad[0]?.id).toBe('handshake.bad-accept');
    expect(bad[0]?.evidence).toContain(`expected Sec-WebSocket-Accept: ${webSocketAccept(KEY)}`);
  });

  it('an extension or subprotocol the request did not offer', () => {
    const response: RawHeaders = [...GOOD_RESPONSE, ['Sec-WebSocket-Extensions', 'x-webkit-deflate-frame'], ['Sec-WebSocket-Protocol', 'mqtt']];
    const found = handshakeFindings(facts({ response: { statusCode: 101, reason: 'Switching Protocols', rawHeaders: response } }));
    expect(found.map((x) => x.id)).toEqual(['handshake.unoffered-extension', 'handshake.unoffered-subprotocol']);
    expect(found[1]?.message).toBe('the app chose subprotocol "mqtt", which the request did not offer');
    const offered: RawHeaders = [...GOOD_RESPONSE, ['Sec-WebSocket-Extensions', 'permessage-deflate'], ['Sec-WebSocket-Protocol', 'superchat']];
    expect(handshakeFindings(facts({ response: { statusCode: 101, reason: 'Switching Protocols', rawHeaders: offered } }))).toEqual([]);
  });

  it('hostile header values are escaped in the evidence', () => {
    const headers: RawHeaders = GOOD_REQUEST.map(([n, v]) => (n === 'Upgrade' ? [n, 'x\x1b[2Jy'] : [n, v]));
    const [f] = handshakeFindings(facts({ headers }));
    expect(f?.evidence.join('\n')).not.toContain('\x1b');
    expect(f?.evidence).toContain('Upgrade: x\\x1b[2Jy');
  });
});

describe('handshake rules: the body of an answer other than 101', () => {
  const refused = (body: NonNullable<HandshakeFacts['response']>['body'], rawHeaders: RawHeaders = [['Content-Type', 'text/plain']]): string[] => {
    const [f] = handshakeFindings(facts({ response: { statusCode: 400, reason: 'Bad Request', rawHeaders, ...(body ? { body } : {}) } }));
    expect(f?.id).toBe('handshake.not-upgraded');
    return f?.evidence ?? [];
  };

  it('quotes the body, escaped for terminals', () => {
    const evidence = refused({ preview: Buffer.from('Origin not allowed\n'), bytes: 19, truncated: false });
    expect(evidence).toEqual([
      'request: GET /api/v4/websocket HTTP/1.1',
      'response: 400 Bad Request',
      'Content-Type: text/plain',
      'body (19 bytes): Origin not allowed\\n',
    ]);
    expect(refused({ preview: 'x\x1b[2J\u202e', bytes: 6, truncated: false }).at(-1)).toBe('body (6 bytes): x\\x1b[2J\\u202e');
  });

  it('says "(no body)" for an empty one, and nothing without a recorded body', () => {
    expect(refused({ preview: Buffer.alloc(0), bytes: 0, truncated: false }).at(-1)).toBe('body: (no body)');
    expect(refused(undefined)).toHaveLength(3);
  });

  it('marks a cut preview with "…", once, and cuts long text at 200 characters', () => {
    expect(refused({ preview: Buffer.from('Origin not'), bytes: 4000, truncated: true }).at(-1)).toBe('body (4000 bytes): Origin not…');
    const long = refused({ preview: Buffer.from('a'.repeat(1024)), bytes: 4000, truncated: true }).at(-1) ?? '';
    expect(long).toBe(`body (4000 bytes): ${'a'.repeat(200)}…`);
    expect(refused({ preview: Buffer.from('b'.repeat(300)), bytes: 300, truncated: false }).at(-1)).toBe(`body (300 bytes): ${'b'.repeat(200)}…`);
    // A preview cut inside a UTF-8 character does not end in U+FFFD.
    const euro = Buffer.from('price €');
    expect(refused({ preview: euro.subarray(0, euro.length - 1), bytes: 100, truncated: true }).at(-1)).toBe('body (100 bytes): price …');
  });

  it('names chunked framing, and does not quote a compressed body', () => {
    expect(refused({ preview: Buffer.from('nope'), bytes: 14, truncated: false }, [['Transfer-Encoding', 'chunked']]).at(-1)).toBe('body (14 bytes, chunked): nope');
    expect(refused({ preview: Buffer.from([0x1f, 0x8b, 8]), bytes: 3, truncated: false }, [['Content-Encoding', 'gzip']]).at(-1)).toBe('body (3 bytes): (gzip-encoded, not shown)');
  });

  it('says when the preview was not recorded (preview limit 0)', () => {
    expect(bodyEvidence({ preview: '', bytes: 1, truncated: true }, [])).toBe('body (1 byte): (no text recorded; --preview-bytes 0 records sizes only)');
  });

  it('an upgraded answer never quotes a body', () => {
    const found = handshakeFindings(facts({ response: { statusCode: 101, reason: 'Switching Protocols', rawHeaders: GOOD_RESPONSE, body: { preview: 'x', bytes: 1, truncated: false } } }));
    expect(found).toEqual([]);
  });
});
