import type { MissingPart } from '../analysis/missing-part.js';
import type { HandshakeRequestEvent, HandshakeResponseEvent } from '../capture/events.js';
import type { HarIncomplete } from './har-types.js';

/**
 * The handshake of a WebSocket connection whose beginning is not in the
 * capture (a deleted file of a rotated set), standing in so the connection
 * can still be an entry: a request with no headers, and the 101 the frames
 * prove (frames are only decoded after a 101 that upgraded). The entry's
 * `_wstap.incomplete` says so.
 */
export function standInHandshake(event: { conn: number; t: number }): { request: HandshakeRequestEvent; response: HandshakeResponseEvent } {
  return {
    request: { kind: 'ws.handshake.request', t: event.t, conn: event.conn, method: 'GET', url: '', httpVersion: '1.1', rawHeaders: [], headLength: 0 },
    response: {
      kind: 'ws.handshake.response',
      t: event.t,
      conn: event.conn,
      statusCode: 101,
      reason: 'Switching Protocols',
      httpVersion: '1.1',
      rawHeaders: [],
      headLength: 0,
      upgraded: true,
      deflate: null,
      waitMs: 0,
    },
  };
}

/** What `_wstap.incomplete` says about a connection the capture has only part of. */
export function incompleteNote(missing: MissingPart, undecided: string | undefined): HarIncomplete {
  return {
    beginningMissing: missing.beginning,
    note: missing.beginning
      ? 'the beginning of this connection is not in the capture (a deleted file of a rotated set): the request is unknown, the 101 is inferred from the frames, startedDateTime is its first event read'
      : 'some events of this connection are not in the capture (a capture gap while it was open)',
    ...(undecided ? { closedByUnknown: undecided } : {}),
  };
}
