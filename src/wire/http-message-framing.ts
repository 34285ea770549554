import type { HttpRequestHead, HttpResponseHead } from './http-head-parser.js';

/**
 * How an HTTP/1.x message says its body ends (RFC 9112 section 6.3), and
 * what comes after it on the connection:
 * - `none`: no body; the next message follows at once;
 * - `length`: Content-Length bytes;
 * - `chunked`: the chunked coding, up to its last chunk and trailer section;
 * - `until-close`: everything up to the sender's FIN (a response only);
 * - `switch`: no body, and the rest of the stream is another protocol (after
 *   a 101, or a 2xx answer to CONNECT);
 * - `unframed`: the framing cannot be known (a request with an unknown
 *   coding, conflicting lengths): the rest of the stream is not parsed.
 */
export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  | { kind: 'until-close' }
  | { kind: 'switch' }
  | { kind: 'unframed' };

/** Framing troubles: recorded as findings, never acted on (the bytes are relayed as they are). */
export type FramingAnomalyCode =
  | 'CL_AND_TE'
  | 'CONFLICTING_CONTENT_LENGTH'
  | 'DUPLICATE_CONTENT_LENGTH'
  | 'BAD_CONTENT_LENGTH'
  | 'UNKNOWN_TRANSFER_CODING';

export interface FramingAnomaly {
  code: FramingAnomalyCode;
  message: string;
}

export interface FramingDecision {
  framing: BodyFraming;
  anomalies: FramingAnomaly[];
}

const NO_ANOMALIES: FramingAnomaly[] = [];
const NO_BODY: BodyFraming = { kind: 'none' };
const CONTENT_LENGTH = /^\d{1,15}$/;

/** A request's body framing (RFC 9112 section 6.3, items 3 to 6). */
export function requestFraming(head: HttpRequestHead): FramingDecision {
  return messageFraming(head.rawHeaders, 'request');
}

/**
 * A response's body framing, which also depends on the request it answers
 * (RFC 9112 section 6.3, items 1 and 2): HEAD, 1xx, 204 and 304 have no
 * body whatever their headers say; 101 and a 2xx to CONNECT switch protocols.
 */
export function responseFraming(head: HttpResponseHead, requestMethod: string): FramingDecision {
  const status = head.statusCode;
  if (status === 101) return { framing: { kind: 'switch' }, anomalies: NO_ANOMALIES };
  if (requestMethod === 'CONNECT' && status >= 200 && status < 300) return { framing: { kind: 'switch' }, anomalies: NO_ANOMALIES };
  if (requestMethod === 'HEAD' || status < 200 || status === 204 || status === 304) return { framing: { kind: 'none' }, anomalies: NO_ANOMALIES };
  return messageFraming(head.rawHeaders, 'response');
}

function messageFraming(headers: ReadonlyArray<readonly [string, string]>, kind: 'request' | 'response'): FramingDecision {
  // One pass over the fields, comparing names without allocating: it runs for every message of every connection.
  let codings: string[] | null = null;
  let lengths: string[] | null = null;
  // The usual message: one Content-Length of plain digits and no Transfer-Encoding, decided without an array or a Set.
  let single: string | null = null;
  for (const [name, value] of headers) {
    if (name.length === 17 && sameLetters(name, 'transfer-encoding')) (codings ??= []).push(...tokens(value));
    else if (name.length === 14 && sameLetters(name, 'content-length')) {
      if (single === null && lengths === null && CONTENT_LENGTH.test(value)) single = value;
      else {
        lengths ??= single === null ? [] : [single];
        if (DIGITS.test(value)) lengths.push(value);
        else lengths.push(...value.split(',').map((v) => v.trim()));
      }
    }
  }
  if (single !== null) {
    if (codings === null && lengths === null) {
      const length = Number(single);
      return { framing: length === 0 ? NO_BODY : { kind: 'length', length }, anomalies: NO_ANOMALIES };
    }
    lengths ??= [single];
  }
  const anomalies: FramingAnomaly[] = [];
  if (codings !== null) {
    if (lengths !== null) {
      anomalies.push({
        code: 'CL_AND_TE',
        message: `${kind} has both Transfer-Encoding (${codings.join(', ')}) and Content-Length (${lengths.join(', ')}); Transfer-Encoding wins (RFC 9112 6.3), a peer that reads Content-Length sees other message boundaries (request smuggling)`,
      });
    }
    if (codings.at(-1) === 'chunked') return { framing: { kind: 'chunked' }, anomalies };
    if (kind === 'response') return { framing: { kind: 'until-close' }, anomalies };
    anomalies.push({ code: 'UNKNOWN_TRANSFER_CODING', message: `request's Transfer-Encoding ${JSON.stringify(codings.join(', '))} does not end in chunked: its length cannot be known (RFC 9112 6.3)` });
    return { framing: { kind: 'unframed' }, anomalies };
  }
  if (lengths !== null) {
    const distinct = new Set(lengths);
    if (distinct.size > 1) {
      anomalies.push({ code: 'CONFLICTING_CONTENT_LENGTH', message: `${kind} has conflicting Content-Length values (${lengths.join(', ')}): its length cannot be known (RFC 9112 6.3)` });
      return { framing: { kind: 'unframed' }, anomalies };
    }
    const only = lengths[0] ?? '';
    if (!CONTENT_LENGTH.test(only)) {
      anomalies.push({ code: 'BAD_CONTENT_LENGTH', message: `${kind} has an invalid Content-Length ${JSON.stringify(only.slice(0, 40))}` });
      return { framing: { kind: 'unframed' }, anomalies };
    }
    if (lengths.length > 1) {
      anomalies.push({ code: 'DUPLICATE_CONTENT_LENGTH', message: `${kind} repeats Content-Length ${lengths.length} times (${only}); read as one, but a stricter peer refuses it` });
    }
    const length = Number(only);
    return { framing: length === 0 ? { kind: 'none' } : { kind: 'length', length }, anomalies };
  }
  return { framing: kind === 'request' ? { kind: 'none' } : { kind: 'until-close' }, anomalies: NO_ANOMALIES };
}

const DIGITS = /^\d+$/;

/** `name` equals the lower-case ASCII `lower` ignoring case (same length checked by the caller). */
function sameLetters(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = name.charCodeAt(i);
    const l = lower.charCodeAt(i);
    if (c === l) continue;
    // Only a letter may differ, by its case (0x20); any other character must be the same.
    if (l < 0x61 || l > 0x7a || (c | 0x20) !== l) return false;
  }
  return true;
}

function tokens(value: string): string[] {
  return value
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
}

/** An upgrade request (RFC 9110 7.8): an Upgrade field named in Connection. Its answer decides what the stream carries next. */
export function isUpgradeRequest(head: HttpRequestHead): boolean {
  let upgrade = false;
  let connectionUpgrade = false;
  for (const [name, value] of head.rawHeaders) {
    if (name.length === 7 && sameLetters(name, 'upgrade') && value.trim() !== '') upgrade = true;
    else if (name.length === 10 && sameLetters(name, 'connection') && tokens(value).includes('upgrade')) connectionUpgrade = true;
  }
  return upgrade && connectionUpgrade;
}
