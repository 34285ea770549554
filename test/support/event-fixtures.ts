import type { FrameEvent, HttpResponseEvent, Side } from '../../src/capture/events.js';

/** A `ws.frame` event with plain defaults: a final, unmasked-unless-client, empty frame. */
export function frameEvent(fields: { conn: number; t: number; side: Side; opcode: number } & Partial<FrameEvent>): FrameEvent {
  return {
    kind: 'ws.frame',
    index: 0,
    offset: 0,
    fin: true,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    masked: fields.side === 'client',
    length: 0,
    preview: '',
    previewTruncated: false,
    ...fields,
  };
}

/** An `http.response` event: 200 OK, 12 body bytes. */
export function httpResponseEvent(fields: { conn: number; t: number; exchange: number } & Partial<HttpResponseEvent>): HttpResponseEvent {
  return {
    kind: 'http.response',
    statusCode: 200,
    statusMessage: 'OK',
    httpVersion: '1.1',
    rawHeaders: [],
    requestBodyBytes: 0,
    responseBodyBytes: 12,
    ttfbMs: 3,
    totalMs: 4,
    complete: true,
    ...fields,
  };
}
