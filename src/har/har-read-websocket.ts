import { noAnswerReason } from '../analysis/close-attribution.js';
import type { CaptureEvent, HandshakeBodyEvent } from '../capture/events.js';
import { headerValues } from '../capture/raw-headers.js';
import { negotiatedDeflate } from '../wire/websocket-extensions.js';
import { headSize, round3 } from './har-entries.js';
import { closeEvidenceEvents, parseCloseEvents } from './har-read-close.js';
import { addUnknown, requestSentAt, timingsOf, UNKNOWN, type Connection, type GoodEntry } from './har-read-entries.js';
import { cutFrameEvents, handshakeErrorEvents, observerFaultEvents, protocolErrorEvents } from './har-read-faults.js';
import { frameEventsOf, messageEvents, parseFrames, parseMessages } from './har-read-frames.js';
import { bool, headersOf, httpVersionOf, isObject, nonNegative, num, pathAndQuery, secondsToMs, splitError, str, type Json } from './har-read-values.js';

/**
 * A WebSocket entry of a HAR back into the events of one WebSocket
 * connection: the handshake (request, interim responses, the answer or the
 * failure to get one), then frames, messages, close evidence and faults
 * from the modules that read each, with what the entry cannot tell (a
 * browser's HAR has no frames and no close evidence) added to the
 * connection's `unknown`.
 */

const NO_ANSWER_REASONS = new Set((['upstream', 'client', 'proxy', null] as const).map(noAnswerReason));

export function webSocketEvents(entry: GoodEntry, conn: number, connection: Connection, warnings: string[]): CaptureEvent[] {
  const { raw, request, response, wstap } = entry;
  const where = `log.entries[${entry.index}]`;
  const events: CaptureEvent[] = [];
  const requestHeaders = headersOf(request['headers']);
  const requestAt = requestSentAt(entry);
  events.push({
    kind: 'ws.handshake.request',
    t: requestAt,
    conn,
    method: str(request['method']) ?? 'GET',
    url: pathAndQuery(str(request['url']) ?? ''),
    httpVersion: httpVersionOf(request['httpVersion']),
    rawHeaders: requestHeaders,
    headLength: nonNegative(request['headersSize']) ?? 0,
  });

  const status = num(response['status']) ?? 0;
  const error = str(response['_error']);
  const answeredByWstap = wstap?.['answeredBy'] === 'wstap';
  const handshake: CaptureEvent[] = [events[0] as CaptureEvent];
  // wstap writes why a handshake got no answer when nobody failed (the client or the app closed first): no http.error then.
  const unanswered = wstap !== undefined && status <= 0 && NO_ANSWER_REASONS.has(error ?? '');
  if (status <= 0 || (answeredByWstap && status === 502)) {
    // No upstream answer: wstap records http.error for the handshake (with its own 502, or nothing sent); when
    // nothing failed (the client or the app closed first) only the request, and the close evidence below says who.
    if (!unanswered) {
      const { code, message } = splitError(error);
      events.push({ kind: 'http.error', t: entry.end, conn, exchange: 1, stage: 'connect', code, message, answeredStatus: status > 0 ? status : null });
    }
    // What the app sent instead of a head, when it sent something.
    const headError = handshakeErrorEvents(wstap?.['handshakeError'], conn, `${where}._wstap.handshakeError`, warnings);
    events.push(...headError);
    handshake.push(...headError);
  } else {
    events.push(...interimResponsesOf(wstap, conn, requestAt));
    const { send, wait } = timingsOf(entry);
    const responseHeaders = headersOf(response['headers']);
    const responseEvent: CaptureEvent = {
      kind: 'ws.handshake.response',
      t: round3(requestAt + send + wait),
      conn,
      statusCode: status,
      reason: str(response['statusText']) ?? '',
      httpVersion: httpVersionOf(response['httpVersion']),
      rawHeaders: responseHeaders,
      headLength: nonNegative(response['headersSize']) ?? 0,
      upgraded: status === 101,
      deflate: negotiatedDeflate(headerValues(responseHeaders, 'sec-websocket-extensions')),
      waitMs: wait,
    };
    events.push(responseEvent);
    handshake.push(responseEvent);
    if (status !== 101) {
      const body = handshakeBodyEvent(response, wstap, conn, entry.end, `${where}._wstap.handshakeBody`, warnings);
      if (body) {
        body.t = Math.max(body.t, responseEvent.t);
        events.push(body);
        handshake.push(body);
      }
    }
  }

  const messages = parseMessages(raw['_webSocketMessages'], `${where}._webSocketMessages`, warnings);
  const frameList = wstap && Array.isArray(wstap['frames']) ? parseFrames(wstap['frames'], `${where}._wstap.frames`, warnings) : undefined;
  const closeEvents = wstap && Array.isArray(wstap['closeEvents']) ? parseCloseEvents(wstap['closeEvents'], `${where}._wstap.closeEvents`, warnings) : [];

  // An empty frame list next to messages means the frames were not written, not that there were none.
  const framesKnown = frameList !== undefined && (frameList.length > 0 || messages.length === 0);
  const frames = framesKnown ? frameList : [];
  if (!framesKnown) {
    addUnknown(connection, UNKNOWN.frames);
    addUnknown(connection, UNKNOWN.pings);
  }
  if (!wstap) addUnknown(connection, UNKNOWN.closeEvidence);
  if (framesKnown && messages.length === 0 && frames.some((f) => f.opcode === 1 || f.opcode === 2)) addUnknown(connection, UNKNOWN.messages);

  const frameEvents = frameEventsOf(frames, conn);
  const body: CaptureEvent[] = [...frameEvents];
  body.push(...closeEvidenceEvents(closeEvents, frameEvents, wstap, conn, connection));
  body.push(...messageEvents(messages, frameEvents, conn));
  body.push(...protocolErrorEvents(wstap, frameEvents, conn, connection, handshake, `${where}._wstap.protocolErrors`, warnings));
  body.push(...cutFrameEvents(wstap?.['cutFrames'], frameEvents, conn, `${where}._wstap.cutFrames`, warnings));
  body.push(...observerFaultEvents(wstap?.['observerFault'], conn, `${where}._wstap.observerFault`, warnings));

  // The handshake precedes everything on the connection even when the file's clocks disagree.
  const firstBody = body.reduce((min, e) => Math.min(min, e.t), Infinity);
  for (const e of handshake) e.t = Math.min(e.t, firstBody);
  events.push(...body);
  return events;
}

/**
 * The body of an answer that did not upgrade, as `ws.handshake.body`: its
 * start from `response.content` (text, or base64 with `encoding`), when and
 * how much from wstap's `_wstap.handshakeBody`. Without that (another tool's
 * HAR, an older wstap), a body with text is taken as recorded at the entry's
 * end, `bodySize` bytes long. Null when the HAR says nothing of a body.
 */
function handshakeBodyEvent(
  response: Json,
  wstap: Json | undefined,
  conn: number,
  endT: number,
  where: string,
  warnings: string[],
): HandshakeBodyEvent | null {
  const content = isObject(response['content']) ? response['content'] : {};
  const text = str(content['text']);
  const preview = text === undefined ? Buffer.alloc(0) : Buffer.from(text, content['encoding'] === 'base64' ? 'base64' : 'utf8');
  const facts = wstap?.['handshakeBody'];
  if (facts !== undefined) {
    const time = isObject(facts) ? num(facts['time']) : undefined;
    const bytes = isObject(facts) ? nonNegative(facts['bytes']) : undefined;
    const truncated = isObject(facts) ? bool(facts['truncated']) : undefined;
    if (time !== undefined && bytes !== undefined && truncated !== undefined) {
      return { kind: 'ws.handshake.body', t: secondsToMs(time), conn, preview: preview.toString('base64'), previewTruncated: truncated, bytes };
    }
    warnings.push(`${where}: ignored: needs time, bytes and truncated`);
  }
  if (text === undefined) return null;
  const bytes = nonNegative(response['bodySize']) ?? nonNegative(content['size']) ?? preview.length;
  return { kind: 'ws.handshake.body', t: endT, conn, preview: preview.toString('base64'), previewTruncated: bytes > preview.length, bytes: Math.max(bytes, preview.length) };
}

/** wstap's `_wstap.interimResponses` (103 Early Hints... before the 101) back as events; items without a status and time are skipped. */
function interimResponsesOf(wstap: Record<string, unknown> | undefined, conn: number, requestAt: number): CaptureEvent[] {
  const list = wstap?.['interimResponses'];
  if (!Array.isArray(list)) return [];
  const out: CaptureEvent[] = [];
  for (const item of list) {
    if (!isObject(item)) continue;
    const statusCode = num(item['status']);
    const time = num(item['time']);
    if (statusCode === undefined || time === undefined) continue;
    const t = secondsToMs(time);
    const reason = str(item['statusText']) ?? '';
    const rawHeaders = headersOf(item['headers']);
    out.push({
      kind: 'ws.handshake.interim',
      t,
      conn,
      statusCode,
      reason,
      httpVersion: '1.1',
      rawHeaders,
      headLength: headSize(`HTTP/1.1 ${statusCode} ${reason}`, rawHeaders),
      waitMs: round3(Math.max(0, t - requestAt)),
    });
  }
  return out;
}
