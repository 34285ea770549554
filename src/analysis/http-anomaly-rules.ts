import type { HttpAnomalyEvent } from '../capture/events.js';
import type { Finding } from './finding.js';
import { printable } from './printable.js';

/** Finding ids by anomaly code; the rest are `http.unparsed` (the passive parser could not follow). */
const IDS: Readonly<Record<string, string>> = {
  CL_AND_TE: 'http.cl-and-te',
  CONFLICTING_CONTENT_LENGTH: 'http.conflicting-content-length',
  DUPLICATE_CONTENT_LENGTH: 'http.duplicate-content-length',
  BAD_CONTENT_LENGTH: 'http.bad-content-length',
  UNKNOWN_TRANSFER_CODING: 'http.unknown-transfer-coding',
};

const FIXES: Readonly<Record<string, string>> = {
  CL_AND_TE: 'send one framing: drop Content-Length where Transfer-Encoding is set (whoever produced this message: the client, a proxy in front, or the app)',
  CONFLICTING_CONTENT_LENGTH: 'send one Content-Length (whoever produced this message)',
  DUPLICATE_CONTENT_LENGTH: 'send Content-Length once',
  BAD_CONTENT_LENGTH: 'send Content-Length as decimal digits',
  UNKNOWN_TRANSFER_CODING: 'end Transfer-Encoding of a request with chunked',
};

/**
 * A framing or parsing trouble in one HTTP message, as a finding. wstap
 * relayed the bytes unchanged; the finding says what a peer may read
 * differently and, when the parser stopped, that the rest of that side's
 * exchanges are not recorded.
 */
export function httpAnomalyFinding(event: HttpAnomalyEvent): Finding {
  const where = `${event.side === 'client' ? 'request' : 'answer'}${event.exchange !== null ? ` of exchange #${event.exchange}` : ''} at byte ${event.offset} of the ${event.side}'s stream`;
  const evidence = [`${where}: ${printable(event.message)}`, 'wstap relayed the bytes unchanged'];
  if (event.parsing === 'stopped') evidence.push(`the rest of the ${event.side}'s bytes on this connection were relayed without being parsed: later exchanges on it are not recorded`);
  return {
    id: IDS[event.code] ?? 'http.unparsed',
    severity: event.code === 'DUPLICATE_CONTENT_LENGTH' ? 'info' : 'warning',
    message: `${event.code}: ${printable(event.message)}`,
    evidence,
    fix: FIXES[event.code] ?? '',
  };
}
