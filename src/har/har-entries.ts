import net from 'node:net';
import { redactRawHeaders, redactUrl } from '../analysis/redaction.js';
import type { HandshakeBodyEvent, HandshakeInterimEvent, PausedSince, RawHeaders } from '../capture/events.js';
import { headerTokens, headerValue } from '../capture/raw-headers.js';
import type { HarNameValue, HarRequest, HarResponse, HarTimings, HarWstap, PayloadMode } from './har-types.js';

/** Pieces shared by HTTP and WebSocket entries. */

/** An interim response for `_wstap.interimResponses`, its headers redacted like the response's. */
export function harInterimResponse(event: HandshakeInterimEvent, redact: boolean): NonNullable<HarWstap['interimResponses']>[number] {
  return {
    status: event.statusCode,
    statusText: event.reason,
    headers: toNameValues(redact ? redactRawHeaders(event.rawHeaders) : event.rawHeaders),
    time: epochSeconds(event.t),
  };
}

export function toNameValues(headers: RawHeaders): HarNameValue[] {
  return headers.map(([name, value]) => ({ name, value }));
}

/** Bytes of a head as relayed: start line, `Name: value` lines, blank line. */
export function headSize(startLine: string, headers: RawHeaders): number {
  let size = Buffer.byteLength(startLine, 'latin1') + 2 + 2;
  for (const [name, value] of headers) size += Buffer.byteLength(name, 'latin1') + 2 + Buffer.byteLength(value, 'latin1') + 2;
  return size;
}

/** Query parameters as written (not decoded twice, order kept). */
export function queryString(url: string): HarNameValue[] {
  const q = url.indexOf('?');
  if (q < 0) return [];
  const end = url.indexOf('#', q);
  const query = url.slice(q + 1, end < 0 ? undefined : end);
  if (!query) return [];
  return query.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    return { name: safeDecode(name), value: safeDecode(value) };
  });
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/**
 * The URL the client asked for, as nginx forwarded it: scheme from
 * X-Forwarded-Proto (ws/wss for WebSocket entries), host from Host.
 */
export function absoluteUrl(target: string, headers: RawHeaders, websocket: boolean, fallbackHost: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) return target;
  const proto = (headerValue(headers, 'x-forwarded-proto') ?? 'http').split(',')[0]?.trim().toLowerCase();
  const secure = proto === 'https' || proto === 'wss';
  const scheme = websocket ? (secure ? 'wss' : 'ws') : secure ? 'https' : 'http';
  const host = headerValue(headers, 'host') ?? fallbackHost;
  return `${scheme}://${host}${target.startsWith('/') ? '' : '/'}${target}`;
}

export interface RequestParts {
  method: string;
  url: string;
  httpVersion: string;
  rawHeaders: RawHeaders;
  headersSize?: number;
  bodySize: number;
  websocket: boolean;
}

export function harRequest(parts: RequestParts, redact: boolean, fallbackHost: string): HarRequest {
  const headers = redact ? redactRawHeaders(parts.rawHeaders) : parts.rawHeaders;
  const url = absoluteUrl(parts.url, parts.rawHeaders, parts.websocket, fallbackHost);
  const shownUrl = redact ? redactUrl(url) : url;
  return {
    method: parts.method,
    url: shownUrl,
    httpVersion: `HTTP/${parts.httpVersion}`,
    cookies: [],
    headers: toNameValues(headers),
    queryString: queryString(shownUrl),
    headersSize: parts.headersSize ?? headSize(`${parts.method} ${parts.url} HTTP/${parts.httpVersion}`, parts.rawHeaders),
    bodySize: parts.bodySize,
  };
}

export interface ResponseParts {
  status: number;
  statusText: string;
  httpVersion: string;
  rawHeaders: RawHeaders;
  headersSize?: number;
  bodySize: number;
  /** What is known of the body beyond its size (`content.size` is `bodySize`). */
  content?: BodyContent;
  error?: string;
}

export interface BodyContent {
  text?: string;
  encoding?: 'base64';
  comment?: string;
}

export function harResponse(parts: ResponseParts, redact: boolean): HarResponse {
  const headers = redact ? redactRawHeaders(parts.rawHeaders) : parts.rawHeaders;
  const known = parts.status > 0;
  const response: HarResponse = {
    status: parts.status,
    statusText: parts.statusText,
    httpVersion: known ? `HTTP/${parts.httpVersion}` : '',
    cookies: [],
    headers: toNameValues(headers),
    content: { size: parts.bodySize, mimeType: headerValue(parts.rawHeaders, 'content-type') ?? 'x-unknown', ...parts.content },
    redirectURL: headerValue(parts.rawHeaders, 'location') ?? '',
    headersSize: known ? (parts.headersSize ?? headSize(`HTTP/${parts.httpVersion} ${parts.status} ${parts.statusText}`, parts.rawHeaders)) : -1,
    bodySize: parts.bodySize,
  };
  if (parts.error) response._error = parts.error;
  return response;
}

/**
 * `response.content` for the body of a handshake answer that did not
 * upgrade (`ws.handshake.body`): the preview as text when it is text (valid
 * UTF-8 and not content-encoded; a cut preview may end inside a character),
 * else base64; nothing with `--payloads none`. A comment says when it is only
 * the start of the body.
 */
export function handshakeBodyContent(body: HandshakeBodyEvent, headers: RawHeaders, payloads: PayloadMode): BodyContent {
  if (payloads === 'none' || body.preview === '') return {};
  const bytes = Buffer.from(body.preview, 'base64');
  const comment = body.previewTruncated ? { comment: `first ${bytes.length} bytes of the body` } : {};
  const codings = [...headerTokens(headers, 'transfer-encoding'), ...headerTokens(headers, 'content-encoding')];
  const encoded = codings.some((c) => c !== 'identity' && c !== 'chunked');
  if (!encoded) {
    try {
      return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: body.previewTruncated }), ...comment };
    } catch {
      // Not UTF-8: base64 below.
    }
  }
  return { text: bytes.toString('base64'), encoding: 'base64', ...comment };
}

/**
 * HAR timings whose send + wait + receive is `time` exactly: `time` is
 * defined as that sum, so any reader re-adding them gets the same number.
 */
export function harTimings(waitMs: number, receiveMs: number): { time: number; timings: HarTimings } {
  const wait = round3(Math.max(0, waitMs));
  let receive = round3(Math.max(0, receiveMs));
  // Binary floating point: nudge receive by a microsecond or two until the sum
  // also prints with three decimals, so `time` reads as cleanly as its parts.
  for (let i = 0; i < 8 && round3(wait + receive) !== wait + receive; i++) receive = round3(receive + 0.001);
  const send = 0;
  return { time: send + wait + receive, timings: { blocked: -1, dns: -1, connect: -1, send, wait, receive, ssl: -1 } };
}

export function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Epoch ms -> epoch seconds with microsecond precision (Chrome's WebSocket message time). */
export function epochSeconds(ms: number): number {
  return Math.round(ms * 1000) / 1e6;
}

/** A close event's paused sides, their times in epoch seconds like the event's own `time`. */
export function pausedSinceSeconds(pausedSince: PausedSince): PausedSince {
  const out: PausedSince = {};
  if (pausedSince.client !== undefined) out.client = epochSeconds(pausedSince.client);
  if (pausedSince.upstream !== undefined) out.upstream = epochSeconds(pausedSince.upstream);
  return out;
}

export function isoTime(ms: number): string {
  return new Date(Math.floor(ms)).toISOString();
}

/** HAR says serverIPAddress is an IP: give it only when the target is one. */
export function serverIp(targetHref: string): string | undefined {
  try {
    const host = new URL(targetHref).hostname.replace(/^\[(.*)\]$/, '$1');
    return net.isIP(host) ? host : undefined;
  } catch {
    return undefined;
  }
}

export function emptyWstap(connectionId: number, redacted: boolean): HarWstap {
  return { connectionId, closedBy: null, closeEvents: [], frames: [], idleBeforeCloseMs: null, pings: [], diagnosis: [], redacted };
}
