/**
 * Redaction of credentials in header values and URLs, so HAR files can be
 * handed to vendors (DESIGN.md section 5). Pure functions: the HAR builder and
 * the terminal UI call them; `--no-redact` simply skips them. It lives in
 * analysis, below both views, so neither view imports the other for it.
 */

import type { RecordedHandshake } from './connection-diagnosis.js';

export const REDACTED = '[redacted]';
/** The same mark inside a URL, percent-encoded so the URL stays a valid URI (it decodes to REDACTED). */
export const REDACTED_IN_URL = encodeURIComponent(REDACTED);

/** Header names whose values are always secret (compared case-insensitively). */
export const SECRET_HEADERS: readonly string[] = [
  'cookie',
  'set-cookie',
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'x-auth-token',
  'x-csrf-token',
  'x-xsrf-token',
  // wstap probe's token (relay/probe-protocol.ts): it opens wstap's own answering end.
  'x-wstap-probe',
];

const SECRET_HEADER_SET = new Set(SECRET_HEADERS);

/**
 * One word part of a parameter name. A part is secret when it is a secret word,
 * optionally glued to a known qualifier in front ("accesstoken", "apikey") and
 * a plural "s" and/or "id" behind ("sessions", "sessionid"). Whole-part
 * matching is what keeps "keyboard", "monkey" or "authorized" innocent.
 */
const SECRET_PART =
  /^(?:access|refresh|id|api|auth|oauth|client|app|private|secret|session|user|csrf|xsrf|bearer)?(?:token|auth|authorization|authentication|key|secret|session|sessid|sid|password|passwd|pwd|signature|sig|jwt|credential|bearer)s?(?:id)?$/;

/**
 * True when the name carries a credential. The name is cut into word parts at
 * every non-letter (separators `_ - .`, digits, spaces) and at camelCase
 * boundaries ("apiKey", "XAmzSignature", "APIKey"); any secret part marks it.
 */
export function isSecretParamName(name: string): boolean {
  const spaced = name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/([A-Z])([A-Z][a-z])/g, '$1 $2');
  return spaced
    .split(/[^A-Za-z]+/)
    .some((part) => part !== '' && SECRET_PART.test(part.toLowerCase()));
}

/** Redacts one header value by header name; empty values stay empty (nothing to hide, and "present but empty" helps debugging). */
export function redactHeaderValue(name: string, value: string): string {
  const lower = name.toLowerCase();
  if (SECRET_HEADER_SET.has(lower)) return value === '' ? value : REDACTED;
  if (lower === 'sec-websocket-protocol') return redactSubprotocols(value);
  return value;
}

/** [name, value] pairs (order, case, duplicates kept) with values redacted. */
export function redactRawHeaders(headers: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  return headers.map(([name, value]): [string, string] => [name, redactHeaderValue(name, value)]);
}

/**
 * Replaces secret query values and a userinfo password; every other byte is
 * kept as written so the vendor sees the exact request target. `marker`
 * defaults to the percent-encoded mark (a HAR needs a valid URI); a terminal
 * shows the plain one.
 */
export function redactUrl(url: string, marker: string = REDACTED_IN_URL): string {
  const hash = url.indexOf('#');
  const beforeHash = hash === -1 ? url : url.slice(0, hash);
  const fragment = hash === -1 ? '' : url.slice(hash);
  const q = beforeHash.indexOf('?');
  // "wss://user:pass@host" carries a password too; the user name is kept for debugging.
  const base = (q === -1 ? beforeHash : beforeHash.slice(0, q)).replace(
    /^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#@:]*:)[^/?#@]+@/,
    (_m, keep: string) => `${keep}${marker}@`,
  );
  if (q === -1) return base + fragment;
  const query = beforeHash.slice(q + 1).split('&').map((pair) => redactQueryPair(pair, marker)).join('&');
  return `${base}?${query}${fragment}`;
}

function redactQueryPair(pair: string, marker: string): string {
  const eq = pair.indexOf('=');
  // No value ("?token") or an empty one ("?token=") hides nothing.
  if (eq <= 0 || eq === pair.length - 1) return pair;
  const name = pair.slice(0, eq);
  return isSecretParamName(decodeName(name)) ? `${name}=${marker}` : pair;
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name; // malformed escapes: judge the name as written
  }
}

const JWT = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const KEYWORD = /bearer|token|auth/i;

/** Browsers cannot set headers on WebSocket, so apps smuggle tokens as subprotocol items. */
function redactSubprotocols(value: string): string {
  let afterMarker = false;
  return value
    .split(',')
    .map((raw) => {
      const item = raw.trim();
      if (item === '') return raw;
      const out = afterMarker ? REDACTED : redactProtocolItem(item);
      // A bare word like "access_token" announces that the next item is the token.
      afterMarker = out === item && /^[A-Za-z_-]+$/.test(item) && isSecretParamName(item);
      if (out === item) return raw;
      const at = raw.indexOf(item);
      return raw.slice(0, at) + out + raw.slice(at + item.length);
    })
    .join(',');
}

function redactProtocolItem(item: string): string {
  if (JWT.test(item)) return REDACTED;
  const kw = KEYWORD.exec(item);
  if (kw !== null) {
    // Keep the descriptive prefix (k8s "base64url.bearer.authorization.k8s.io."),
    // redact from the first opaque run after the keyword to the end.
    for (let p = kw.index + kw[0].length; p < item.length; p++) {
      if (!/[.:=~_-]/.test(item.charAt(p - 1))) continue;
      if (isOpaque(item.slice(p).split('.')[0] ?? '', 16)) return item.slice(0, p) + REDACTED;
    }
  }
  if (item.length >= 20 && /[A-Za-z]/.test(item) && /\d/.test(item) && !isProtocolName(item)) return REDACTED;
  return item;
}

/** Token-alphabet run that looks random: has a digit, or mixes upper and lower case. */
function isOpaque(s: string, minLength: number): boolean {
  return (
    s.length >= minLength &&
    /^[A-Za-z0-9+/=_~-]+$/.test(s) &&
    (/\d/.test(s) || (/[a-z]/.test(s) && /[A-Z]/.test(s)))
  );
}

/**
 * Lowercase words joined by '-', '.', '_' ("graphql-transport-ws",
 * "base64.channel.k8s.io"); a word has at most 15 chars and 3 digits, which
 * rules out hex tokens and UUIDs.
 */
function isProtocolName(item: string): boolean {
  if (!/^[a-z0-9]+(?:[-._][a-z0-9]+)*$/.test(item)) return false;
  return item.split(/[-._]/).every((w) => w.length <= 15 && w.replace(/\D/g, '').length <= 3);
}

/** A recorded handshake with its headers and URL redacted, so findings built from it can be shared. */
export function redactHandshake(h: RecordedHandshake): RecordedHandshake {
  return {
    request: { ...h.request, url: redactUrl(h.request.url), rawHeaders: redactRawHeaders(h.request.rawHeaders) },
    response: h.response ? { ...h.response, rawHeaders: redactRawHeaders(h.response.rawHeaders) } : null,
    error: h.error,
    // A body is not a header: what the app said about why it refused stays as it is.
    ...(h.responseBody !== undefined ? { responseBody: h.responseBody } : {}),
  };
}
