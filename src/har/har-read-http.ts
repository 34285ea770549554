import type { CaptureEvent } from '../capture/events.js';
import { round3 } from './har-entries.js';
import { closeEvidenceEvents, parseCloseEvents } from './har-read-close.js';
import { requestSentAt, timingsOf, type Connection, type GoodEntry } from './har-read-entries.js';
import { headersOf, httpVersionOf, isObject, nonNegative, num, pathAndQuery, splitError, str } from './har-read-values.js';

/**
 * A plain HTTP entry of a HAR back into the events wstap's capture holds for
 * one exchange: `http.request` and then `http.response`, or `http.error`
 * when no upstream answered, or only `http.rejected` when wstap refused the
 * request itself. Times come from startedDateTime and the entry's timings.
 * wstap writes its connection's close evidence on a connection's last entry
 * (`_wstap.closeEvents`): read back after the exchange.
 */
export function httpEvents(entry: GoodEntry, conn: number, exchange: number, connection: Connection, warnings: string[]): CaptureEvent[] {
  return [...exchangeEvents(entry, conn, exchange), ...connectionCloseEvents(entry, conn, connection, warnings)];
}

function connectionCloseEvents(entry: GoodEntry, conn: number, connection: Connection, warnings: string[]): CaptureEvent[] {
  const list = entry.wstap?.['closeEvents'];
  if (!Array.isArray(list) || list.length === 0) return [];
  return closeEvidenceEvents(parseCloseEvents(list, `log.entries[${entry.index}]._wstap.closeEvents`, warnings), [], entry.wstap, conn, connection);
}

function exchangeEvents(entry: GoodEntry, conn: number, exchange: number): CaptureEvent[] {
  const { request, response, wstap } = entry;
  const method = str(request['method']) ?? '';
  const url = pathAndQuery(str(request['url']) ?? '');
  const status = num(response['status']) ?? 0;
  const statusText = str(response['statusText']) ?? '';
  const error = str(response['_error']);
  const answeredByWstap = wstap?.['answeredBy'] === 'wstap';
  const sentAt = requestSentAt(entry);
  // wstap refused the request itself: the capture has only http.rejected for it.
  if (answeredByWstap && status > 0 && status !== 502 && error === undefined) {
    return [{ kind: 'http.rejected', t: sentAt, conn, method, url, statusCode: status, reason: statusText }];
  }
  const events: CaptureEvent[] = [
    {
      kind: 'http.request',
      t: sentAt,
      conn,
      exchange,
      method,
      url,
      httpVersion: httpVersionOf(request['httpVersion']),
      rawHeaders: headersOf(request['headers']),
    },
  ];
  if (status <= 0 || (answeredByWstap && status === 502)) {
    const { code, message } = splitError(error);
    events.push({
      kind: 'http.error',
      t: entry.end,
      conn,
      exchange,
      stage: 'connect',
      code,
      message,
      answeredStatus: status > 0 ? status : null,
    });
    return events;
  }
  const { send, wait } = timingsOf(entry);
  const content = isObject(response['content']) ? response['content'] : {};
  events.push({
    kind: 'http.response',
    t: entry.end,
    conn,
    exchange,
    statusCode: status,
    statusMessage: statusText,
    httpVersion: httpVersionOf(response['httpVersion']),
    rawHeaders: headersOf(response['headers']),
    requestBodyBytes: nonNegative(request['bodySize']) ?? 0,
    responseBodyBytes: nonNegative(response['bodySize']) ?? nonNegative(content['size']) ?? 0,
    ttfbMs: round3(wait + send),
    totalMs: round3(entry.end - entry.start),
    // wstap (and browsers) keep the status of a response cut short and say why in `_error`.
    complete: error === undefined,
  });
  return events;
}
