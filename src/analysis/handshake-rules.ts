import type { HandshakeBodyEvent, RawHeaders } from '../capture/events.js';
import { headerTokens, headerValue, headerValues } from '../capture/raw-headers.js';
import { parseExtensions, webSocketAccept } from '../wire/websocket-extensions.js';
import type { CloseActor } from './close-attribution.js';
import type { Finding } from './finding.js';
import { printable } from './printable.js';

/** A WebSocket handshake as wstap saw it: the request as it reached wstap and what the app answered. */
export interface HandshakeFacts {
  request: { method: string; url: string; httpVersion: string; rawHeaders: RawHeaders };
  /** The app's answer head, or null when there was none. */
  response: { statusCode: number; reason: string; rawHeaders: RawHeaders; body?: ResponseBodyFacts } | null;
  /** wstap could not reach the app (or lost it) for this request. */
  upstreamError: { stage: string; code: string; message: string } | null;
  /** Who ended the connection first, once it has ended. */
  closedBy: CloseActor | null;
  closed: boolean;
  /** Request headers the app needs (from the profile). */
  requiredHeaders: readonly string[];
}

/** The start of the body sent with an answer that did not upgrade (`ws.handshake.body`). */
export interface ResponseBodyFacts {
  /** First bytes of the body (de-chunked), or text. */
  preview: Buffer | string;
  /** Body bytes on the wire when it was recorded. */
  bytes: number;
  /** The preview does not hold the whole body. */
  truncated: boolean;
}

export function responseBodyFacts(event: HandshakeBodyEvent): ResponseBodyFacts {
  return { preview: Buffer.from(event.preview, 'base64'), bytes: event.bytes, truncated: event.previewTruncated };
}

/** Characters of a body quoted in a finding. */
const BODY_QUOTE_CHARS = 200;

/** The evidence line quoting a body: what the app said about why it refused. */
export function bodyEvidence(body: ResponseBodyFacts, headers: RawHeaders): string {
  if (body.bytes === 0) return 'body: (no body)';
  const details = [`${body.bytes} byte${body.bytes === 1 ? '' : 's'}`];
  if (headerTokens(headers, 'transfer-encoding').includes('chunked')) details.push('chunked');
  // The preview is de-chunked, not decompressed: a compressed body is not worth quoting.
  const encoding = [...headerTokens(headers, 'transfer-encoding'), ...headerTokens(headers, 'content-encoding')].filter((c) => c !== 'identity' && c !== 'chunked');
  const label = `body (${details.join(', ')})`;
  if (encoding.length > 0) return `${label}: (${encoding.map((c) => printable(c)).join(', ')}-encoded, not shown)`;
  // A cut preview may end inside a UTF-8 sequence: streaming decode leaves that tail out instead of showing U+FFFD.
  const text = typeof body.preview === 'string' ? body.preview : new TextDecoder('utf-8').decode(body.preview, { stream: body.truncated });
  if (text.length === 0) return `${label}: (no text recorded; --preview-bytes 0 records sizes only)`;
  const quoted = printable(text, BODY_QUOTE_CHARS);
  // printable() marks its own cut; a preview that was already cut gets the same mark.
  return `${label}: ${quoted}${body.truncated && !quoted.endsWith('…') ? '…' : ''}`;
}

/** A request that is a WebSocket handshake by its own headers, whether or not it still says Upgrade. */
export function isHandshakeRequest(headers: RawHeaders): boolean {
  return headerValue(headers, 'sec-websocket-key') !== undefined;
}


function shown(headers: RawHeaders, name: string): string {
  const values = headerValues(headers, name);
  return values.length === 0 ? `${name}: (absent)` : values.map((v) => `${name}: ${printable(v, 200)}`).join('; ');
}

const UPGRADE_FIX = 'in the nginx location: proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; (hop-by-hop headers are not passed on unless set)';

/**
 * The handshake rules: each finding names the rule, the observed headers or
 * answer it rests on, and the nginx (or app) change that fixes it.
 */
export function handshakeFindings(f: HandshakeFacts): Finding[] {
  const out: Finding[] = [];
  const req = f.request.rawHeaders;
  const requestLine = `request: ${printable(f.request.method)} ${printable(f.request.url, 200)} HTTP/${printable(f.request.httpVersion)}`;

  const upgrade = headerTokens(req, 'upgrade');
  const connection = headerTokens(req, 'connection');
  if (!upgrade.includes('websocket') || !connection.includes('upgrade')) {
    out.push({
      id: 'handshake.missing-upgrade',
      severity: 'error',
      message: `a WebSocket handshake reached the app without ${!upgrade.includes('websocket') ? '"Upgrade: websocket"' : ''}${!upgrade.includes('websocket') && !connection.includes('upgrade') ? ' and ' : ''}${!connection.includes('upgrade') ? '"upgrade" in Connection' : ''}: it arrived as a plain GET (it still carries Sec-WebSocket-Key), so the app cannot upgrade it`,
      evidence: [requestLine, shown(req, 'Upgrade'), shown(req, 'Connection'), shown(req, 'Sec-WebSocket-Key')],
      fix: UPGRADE_FIX,
    });
  }
  if (f.request.httpVersion === '1.0') {
    out.push({
      id: 'handshake.http10',
      severity: 'error',
      message: 'the handshake reached the app as HTTP/1.0, which has no Upgrade mechanism',
      evidence: [requestLine],
      fix: 'in the nginx location: proxy_http_version 1.1; (nginx speaks HTTP/1.0 to upstreams by default)',
    });
  }
  for (const name of f.requiredHeaders) {
    if (headerValue(req, name) === undefined) {
      out.push({
        id: 'handshake.missing-header',
        severity: 'warning',
        message: `the app needs ${name} (per the profile) and the request did not carry it`,
        evidence: [requestLine, `${name}: (absent)`],
        fix: forwardedHeaderFix(name),
      });
    }
  }

  if (f.upstreamError && !f.response) {
    out.push({
      id: 'handshake.upstream-unreachable',
      severity: 'error',
      message: `wstap could not reach the app for the handshake: ${printable(f.upstreamError.code)}: ${printable(f.upstreamError.message)}`,
      evidence: [requestLine, `upstream error (${f.upstreamError.stage}): ${printable(f.upstreamError.code)}`],
      fix: 'check that the app is running and that --target (or the profile\'s target) points at it',
    });
    return out;
  }
  const res = f.response;
  if (!res) {
    if (f.closed && f.closedBy === 'upstream') {
      out.push({
        id: 'handshake.no-answer',
        severity: 'error',
        message: 'the app closed (or reset) the connection before answering the handshake; nginx reports "upstream prematurely closed connection"',
        evidence: [requestLine, 'no response head from the upstream; first close evidence from the upstream'],
        fix: 'look at the app\'s log for why it dropped the request (wrong port or path, a crash, a TLS listener on a plain port)',
      });
    }
    return out;
  }
  if (res.statusCode !== 101) {
    out.push({
      id: 'handshake.not-upgraded',
      severity: 'error',
      message: `the app answered ${res.statusCode} ${printable(res.reason)} instead of 101 Switching Protocols`,
      evidence: [
        requestLine,
        `response: ${res.statusCode} ${printable(res.reason)}`,
        shown(res.rawHeaders, 'Content-Type'),
        ...(res.body ? [bodyEvidence(res.body, res.rawHeaders)] : []),
      ],
      fix: 'the app refused the upgrade: check its log for the reason (origin check, authentication, path); if the request lacked Upgrade or came as HTTP/1.0, fix nginx first (see the other findings)',
    });
    return out;
  }

  const key = headerValue(req, 'sec-websocket-key');
  const accept = headerValue(res.rawHeaders, 'sec-websocket-accept');
  if (key !== undefined && accept?.trim() !== webSocketAccept(key.trim())) {
    out.push({
      id: 'handshake.bad-accept',
      severity: 'error',
      message: accept === undefined ? 'the 101 answer has no Sec-WebSocket-Accept: browsers fail the connection' : 'the 101 answer\'s Sec-WebSocket-Accept does not match the request\'s key: browsers fail the connection',
      evidence: [shown(req, 'Sec-WebSocket-Key'), shown(res.rawHeaders, 'Sec-WebSocket-Accept'), `expected Sec-WebSocket-Accept: ${webSocketAccept(key.trim())}`],
      fix: 'something between wstap and the app rewrites the handshake, or the app computes the accept value wrongly (RFC 6455 4.2.2)',
    });
  }
  const offered = new Set(parseExtensions(headerValues(req, 'sec-websocket-extensions')).extensions.map((e) => e.name.toLowerCase()));
  const accepted = parseExtensions(headerValues(res.rawHeaders, 'sec-websocket-extensions')).extensions.map((e) => e.name.toLowerCase());
  const unoffered = accepted.filter((name) => !offered.has(name));
  if (unoffered.length > 0) {
    out.push({
      id: 'handshake.unoffered-extension',
      severity: 'error',
      message: `the app accepted extension(s) the request did not offer: ${unoffered.map((n) => printable(n)).join(', ')}`,
      evidence: [shown(req, 'Sec-WebSocket-Extensions'), shown(res.rawHeaders, 'Sec-WebSocket-Extensions')],
      fix: 'a client must fail such a connection (RFC 6455 4.1); if nginx strips Sec-WebSocket-Extensions, stop it, else fix the app',
    });
  }
  const protocol = headerValue(res.rawHeaders, 'sec-websocket-protocol')?.trim();
  if (protocol !== undefined && protocol !== '' && !headerTokens(req, 'sec-websocket-protocol').includes(protocol.toLowerCase())) {
    out.push({
      id: 'handshake.unoffered-subprotocol',
      severity: 'error',
      message: `the app chose subprotocol "${printable(protocol)}", which the request did not offer`,
      evidence: [shown(req, 'Sec-WebSocket-Protocol'), shown(res.rawHeaders, 'Sec-WebSocket-Protocol')],
      fix: 'a client must fail such a connection (RFC 6455 4.1); check that nginx passes Sec-WebSocket-Protocol and that the app only echoes an offered one',
    });
  }
  return out;
}

function forwardedHeaderFix(name: string): string {
  switch (name.toLowerCase()) {
    case 'x-forwarded-for':
      return 'in the nginx location: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;';
    case 'x-forwarded-proto':
      return 'in the nginx location: proxy_set_header X-Forwarded-Proto $scheme;';
    case 'x-real-ip':
      return 'in the nginx location: proxy_set_header X-Real-IP $remote_addr;';
    case 'host':
      return 'in the nginx location: proxy_set_header Host $host;';
    default:
      return `in the nginx location: proxy_set_header ${name} ...;`;
  }
}
