import { describe, it, expect } from 'vitest';
import {
  REDACTED,
  REDACTED_IN_URL,
  SECRET_HEADERS,
  isSecretParamName,
  redactHeaderValue,
  redactRawHeaders,
  redactUrl,
} from '../../src/analysis/redaction.js';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_x';
const K8S_TOKEN = 'ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNklp';
const proto = (value: string): string => redactHeaderValue('Sec-WebSocket-Protocol', value);

describe('secret headers', () => {
  it.each(SECRET_HEADERS.flatMap((h) => [h, h.toUpperCase(), h.replace(/(^|-)([a-z])/g, (m) => m.toUpperCase())]))(
    '%s is redacted whole',
    (name) => {
      expect(redactHeaderValue(name, 'Bearer abc.def; x=1')).toBe(REDACTED);
    },
  );

  it('keeps other headers and empty secret values unchanged', () => {
    expect(redactHeaderValue('Host', 'example.com:8080')).toBe('example.com:8080');
    expect(redactHeaderValue('Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==')).toBe('dGhlIHNhbXBsZSBub25jZQ==');
    expect(redactHeaderValue('Authorization', '')).toBe('');
  });

  it('redactRawHeaders keeps order, case and duplicates', () => {
    const input = [
      ['Host', 'h'],
      ['Cookie', 'a=1'],
      ['cookie', 'b=2'],
      ['X-Trace', 'x'],
      ['SET-COOKIE', 's=3'],
      ['Sec-WebSocket-Protocol', `access_token, ${JWT}`],
    ] as const;
    expect(redactRawHeaders(input)).toEqual([
      ['Host', 'h'],
      ['Cookie', REDACTED],
      ['cookie', REDACTED],
      ['X-Trace', 'x'],
      ['SET-COOKIE', REDACTED],
      ['Sec-WebSocket-Protocol', `access_token, ${REDACTED}`],
    ]);
  });
});

describe('Sec-WebSocket-Protocol', () => {
  it.each([
    'graphql-transport-ws',
    'v12.stomp, v11.stomp',
    'mqtt',
    'mqttv3.1',
    'base64.channel.k8s.io',
    'v4.channel.k8s.io, v5.channel.k8s.io',
    'actioncable-v1-json, actioncable-unsupported',
    'wamp.2.json',
  ])('keeps protocol names: %s', (value) => {
    expect(proto(value)).toBe(value);
  });

  it('redacts the item after a token marker, keeping the marker and layout', () => {
    expect(proto(`access_token, ${JWT}`)).toBe(`access_token, ${REDACTED}`);
    expect(proto('bearer,abc')).toBe(`bearer,${REDACTED}`);
    expect(proto(`chat ,  Authorization ,  x1 `)).toBe(`chat ,  Authorization ,  ${REDACTED} `);
  });

  it('redacts JWT-like items anywhere (Hasura graphql-ws form)', () => {
    expect(proto(`graphql-ws, ${JWT}`)).toBe(`graphql-ws, ${REDACTED}`);
  });

  it('redacts only the opaque part of the Kubernetes bearer form', () => {
    expect(proto(`v4.channel.k8s.io, base64url.bearer.authorization.k8s.io.${K8S_TOKEN}`)).toBe(
      `v4.channel.k8s.io, base64url.bearer.authorization.k8s.io.${REDACTED}`,
    );
    expect(proto('bearer-Ab3dEf6hIj9kLm2nOp')).toBe(`bearer-${REDACTED}`);
  });

  it('redacts long opaque items but not long protocol names', () => {
    expect(proto('chat, 9f86d081884c7d659a2feaa0c55ad015')).toBe(`chat, ${REDACTED}`);
    expect(proto('chat, 123e4567-e89b-12d3-a456-426614174000')).toBe(`chat, ${REDACTED}`);
    expect(proto('chat, aB3xY7qZ9mN2pL5kR8tW')).toBe(`chat, ${REDACTED}`);
    // Long but a protocol-name shape, or no digits: kept.
    expect(proto('com.example.notifications-v2')).toBe('com.example.notifications-v2');
    expect(proto('authorization.v1.example.com')).toBe('authorization.v1.example.com');
  });
});

describe('redactUrl', () => {
  it('marks redacted values percent-encoded, so the URL stays a valid URI', () => {
    expect(REDACTED_IN_URL).toBe('%5Bredacted%5D');
    expect(() => new URL(`http://h${redactUrl('/ws?token=abc')}`)).not.toThrow();
  });

  it.each([
    ['/ws?access_token=abc&x=1', `/ws?access_token=${REDACTED_IN_URL}&x=1`],
    ['/ws?token=a&token=b', `/ws?token=${REDACTED_IN_URL}&token=${REDACTED_IN_URL}`],
    [
      'wss://host:8443/api/v4/websocket?session=1&connection_id=abc&sequence_number=0',
      `wss://host:8443/api/v4/websocket?session=${REDACTED_IN_URL}&connection_id=abc&sequence_number=0`,
    ],
    ['/ws?token', '/ws?token'],
    ['/ws?token=&x=1', '/ws?token=&x=1'],
    ['/ws?access%5Ftoken=x&y=2', `/ws?access%5Ftoken=${REDACTED_IN_URL}&y=2`],
    ['/ws?apiKey=k#frag?token=z', `/ws?apiKey=${REDACTED_IN_URL}#frag?token=z`],
    ['/ws#token=z', '/ws#token=z'],
    ['/chat/room', '/chat/room'],
    ['ws://h/p', 'ws://h/p'],
    ['/ws?q=a+b%20c&token=t+u&name=%E2%9C%93', `/ws?q=a+b%20c&token=${REDACTED_IN_URL}&name=%E2%9C%93`],
    ['/ws?bad%ZZ=1&X-Amz-Signature=abc', `/ws?bad%ZZ=1&X-Amz-Signature=${REDACTED_IN_URL}`],
    ['wss://alice:s3cret@host/p?x=1', `wss://alice:${REDACTED_IN_URL}@host/p?x=1`],
    ['wss://alice@host/p', 'wss://alice@host/p'],
  ])('%s', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });
});

describe('isSecretParamName', () => {
  it.each([
    // secret
    ['token', true],
    ['TOKEN', true],
    ['access_token', true],
    ['accessToken', true],
    ['accesstoken', true],
    ['apiKey', true],
    ['api_key', true],
    ['APIKey', true],
    ['apikey', true],
    ['key', true],
    ['auth', true],
    ['authorization', true],
    ['secret', true],
    ['client_secret', true],
    ['session', true],
    ['session_id', true],
    ['sessionId', true],
    ['sessionid', true],
    ['sessions_list', true],
    ['password', true],
    ['passwd', true],
    ['pwd', true],
    ['jwt', true],
    ['sig', true],
    ['X-Amz-Signature', true],
    ['X-Amz-Credential', true],
    ['X-Amz-Security-Token', true],
    ['id_token', true],
    ['refresh.token', true],
    ['bearer', true],
    ['token2', true],
    // innocent
    ['keyboard', false],
    ['monkey', false],
    ['turkey', false],
    ['donkey', false],
    ['authorized_view', false],
    ['author', false],
    ['connection_id', false],
    ['client_id', false],
    ['sequence_number', false],
    ['X-Amz-SignedHeaders', false],
    ['X-Amz-Date', false],
    ['signal', false],
    ['passenger', false],
    ['', false],
  ])('%s -> %s', (name, expected) => {
    expect(isSecretParamName(name)).toBe(expected);
  });
});
