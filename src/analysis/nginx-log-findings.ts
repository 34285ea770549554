import type { NginxLogEvent } from '../capture/events.js';
import { errorLogText } from '../nginx/error-log-lines.js';
import type { Finding, FindingSeverity } from './finding.js';
import type { JoinedLine } from './nginx-log-join.js';
import { printable } from './printable.js';

/** nginx cuts its lines at 2048 bytes; evidence shows them whole, escaped for a terminal. */
export const LINE_SHOWN = 2048;

/**
 * The nginx error-log lines that bear on a WebSocket behind nginx, as
 * findings. Messages and actions are nginx's own (src/http/ngx_http_upstream.c,
 * ngx_http_request.c, src/event/ngx_event_connect.c, ngx_event_accept.c,
 * ngx_http_upstream_round_robin.c); what nginx answers with is from the
 * same code. Every other line is evidence only (it can still tie or
 * untie a verdict), never a finding. Pure.
 */

interface LineRule {
  id: string;
  severity: FindingSeverity;
  matches(e: NginxLogEvent): boolean;
  /** What happened, in words, after "nginx: ". */
  says(e: NginxLogEvent): string;
  fix: string;
}

const UPGRADED = 'proxying upgraded connection';
const READING_HEAD = 'reading response header from upstream';

const RULES: readonly LineRule[] = [
  {
    id: 'nginx.timeout',
    severity: 'warning',
    matches: (e) => e.action === UPGRADED && e.message === 'upstream timed out',
    says: () => "closed the upgraded connection by its own timer (proxy_read_timeout: no data either way for that long; or proxy_send_timeout, a write to the upstream blocked that long); nginx sent FINs both ways, no close frame",
    fix: "raise proxy_read_timeout in nginx's location above the app's heartbeat interval, or make the app send a heartbeat (a ping or message either way re-arms nginx's timer) more often",
  },
  {
    id: 'nginx.timeout',
    severity: 'warning',
    matches: (e) => e.action === UPGRADED && e.message === 'client timed out',
    says: () => 'closed the upgraded connection by its send_timeout: a write to the client blocked that long (the client or its network stopped reading)',
    fix: "look at the client's side (a stalled browser tab, a saturated link); raise send_timeout only if slow readers are expected",
  },
  {
    id: 'nginx.reset',
    severity: 'info',
    matches: (e) => e.action === UPGRADED && e.errno?.code === 104,
    says: (e) => `saw a connection reset while proxying the upgraded connection (${e.message})`,
    fix: '',
  },
  {
    id: 'nginx.handshake-timeout',
    severity: 'error',
    matches: (e) => e.action === READING_HEAD && e.message === 'upstream timed out',
    says: () => 'gave up waiting for the answer to the request after proxy_read_timeout and answered the client 504',
    fix: 'find out why the app answers so late (wstap shows the handshake wait); raise proxy_read_timeout only if the app is slow on purpose',
  },
  {
    id: 'nginx.upstream-closed',
    severity: 'error',
    matches: (e) => e.message.startsWith('upstream prematurely closed connection'),
    says: (e) => `saw its upstream close the connection early${e.action ? ` while ${e.action}` : ''}${e.action === READING_HEAD ? ': nginx answered the client 502' : ''}`,
    fix: "see wstap's own record of that connection: which side closed, and whether the app answered at all",
  },
  {
    id: 'nginx.connect-failed',
    severity: 'error',
    matches: (e) => /^connect\(\)( to .*)? failed$/.test(e.message),
    says: (e) => `could not connect to its upstream${e.errno ? ` (${e.errno.code}: ${e.errno.text})` : ''}${e.fields['upstream'] ? ` ${e.fields['upstream']}` : ''}: the client got a 502 (or the next server was tried)`,
    fix: "check that wstap (or the app) is running and listening where nginx's proxy_pass points",
  },
  {
    id: 'nginx.no-live-upstreams',
    severity: 'error',
    matches: (e) => e.message === 'no live upstreams',
    says: () => 'every server of its upstream block was marked failed (max_fails within fail_timeout): it answered 502 without trying one',
    fix: "find the failures before this line (connect() failed, timeouts); max_fails and fail_timeout on nginx's upstream servers set how soon nginx gives up",
  },
  {
    id: 'nginx.big-header',
    severity: 'error',
    matches: (e) => e.message.startsWith('upstream sent too big header'),
    says: () => "the upstream's response head did not fit proxy_buffer_size: nginx answered 502",
    fix: "raise proxy_buffer_size in nginx's location (large Set-Cookie or many headers on the 101)",
  },
  {
    id: 'nginx.bad-upstream-response',
    severity: 'error',
    matches: (e) => /^upstream sent (invalid|no valid|unknown)/.test(e.message),
    says: (e) => `could not read the upstream's response (${e.message}): nginx answered 502`,
    fix: "see the app's answer in wstap's record of that connection",
  },
  {
    id: 'nginx.body-too-large',
    severity: 'error',
    matches: (e) => e.message.startsWith('client intended to send too large'),
    says: (e) => `refused a request body over client_max_body_size (${e.message}): the client got 413`,
    fix: "raise client_max_body_size in nginx's server or location if such bodies are expected",
  },
  {
    id: 'nginx.worker-connections',
    severity: 'error',
    matches: (e) => e.message.endsWith('worker_connections are not enough'),
    says: (e) => `ran out of connections (${e.message}): new connections were refused`,
    fix: 'raise worker_connections (each WebSocket holds two of them in nginx: the client and the upstream) and worker_rlimit_nofile with it',
  },
  {
    id: 'nginx.open-files',
    severity: 'error',
    matches: (e) => e.errno?.code === 24,
    says: (e) => `ran out of file descriptors (${e.message}: Too many open files)`,
    fix: 'raise worker_rlimit_nofile (and the service limit, LimitNOFILE) above twice the WebSockets expected per worker',
  },
];

/** The finding an nginx log line makes, or null when the line is evidence only. */
export function nginxLineFinding(e: NginxLogEvent, joined: JoinedLine | null): Finding | null {
  const rule = RULES.find((r) => r.matches(e));
  if (!rule) return null;
  // The request line and the upstream URL come from the wire: escaped before anything prints them.
  const tie = joined ? `tied to this connection ${joined.how}` : 'not tied to one of wstap\'s connections';
  return {
    id: rule.id,
    severity: rule.severity,
    message: printable(`nginx ${rule.says(e)}`, LINE_SHOWN),
    evidence: [`nginx's error log (${printable(e.file)}): "${printable(errorLogText(e), LINE_SHOWN)}"`, tie],
    fix: rule.fix,
  };
}
