import { describe, expect, it } from 'vitest';
import { findingsAt } from '../../src/analysis/connection-findings.js';
import type { DiagnosisContext } from '../../src/analysis/connection-diagnosis.js';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import { narrateFindings } from '../../src/analysis/event-narrator.js';
import type { Finding } from '../../src/analysis/finding.js';
import { joinLine, upstreamPath, type JoinableConnection } from '../../src/analysis/nginx-log-join.js';
import type { CaptureEvent, NginxLogEvent } from '../../src/capture/events.js';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import { buildHar } from '../../src/har/har-document.js';
import type { HarEntry } from '../../src/har/har-types.js';
import { diagnoseConnection, factsOf } from '../../src/analysis/connection-diagnosis.js';
import { closeEvent, finEvent, handshakeRequestEvent, handshakeResponseEvent, openEvent, T0 } from '../support/event-fixtures.js';

const frontLb: HopTimeout = { hop: 'front-lb', setting: 'idle_timeout', seconds: 2, measures: 'both-idle', where: 'client-side', action: 'unknown' };
const nginx: HopTimeout = { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 2, measures: 'both-idle', where: 'client-side', action: 'fin' };
const context: DiagnosisContext = { timeouts: [frontLb, nginx], requiredHeaders: [], heartbeat: null };
const URL = '/api/v4/websocket';

/** A WebSocket idle for 2 s, then a FIN from the client side (nginx's side), as either hop's timer would leave it. */
function idleConnection(conn: number, headers: Array<[string, string]> = [], t0 = T0): CaptureEvent[] {
  const idle = { client: 2000, upstream: 2000 };
  return [
    openEvent(conn, { t: t0 }),
    handshakeRequestEvent(conn, t0 + 10, { rawHeaders: [['Host', 'chat.example'], ['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['X-Real-IP', '198.51.100.4'], ...headers] }),
    handshakeResponseEvent(conn, t0 + 20),
    finEvent(conn, t0 + 2020, 'client', idle),
    finEvent(conn, t0 + 2021, 'upstream', { client: 1, upstream: 2001 }),
    closeEvent(conn, t0 + 2030),
  ];
}

function line(fields: Partial<NginxLogEvent> = {}): NginxLogEvent {
  return {
    kind: 'nginx.log',
    t: T0 + 2025,
    file: '/var/log/nginx/error.log',
    at: T0 + 2000,
    time: '2023/11/14 22:13:22',
    level: 'info',
    pid: 40,
    tid: 40,
    connection: 12,
    message: 'upstream timed out',
    errno: { code: 110, text: 'Connection timed out' },
    action: 'proxying upgraded connection',
    fields: { client: '198.51.100.4', server: '', request: `GET ${URL} HTTP/1.1`, upstream: `http://127.0.0.1:8066${URL}`, host: 'chat.example' },
    ...fields,
  };
}

const INFO_LINE = line({ t: T0 - 5000, at: T0 - 5000, connection: 1, message: 'client closed connection', action: 'waiting for request', fields: { client: '127.0.0.1', server: '127.0.0.1:8080' } });
const source: CaptureEvent = { kind: 'nginx.log.source', t: T0 - 10_000, file: '/var/log/nginx/error.log', zone: 'UTC+00:00' };

/** Every finding the one fold makes, per event, in order (the live log, view and HAR all take these). */
function fold(events: CaptureEvent[]): Array<{ kind: string; conn: number | null; finding: Finding }> {
  const tracker = new ConnectionTracker();
  const out: Array<{ kind: string; conn: number | null; finding: Finding }> = [];
  for (const e of events) {
    const summary = tracker.apply(e);
    for (const finding of findingsAt(e, summary, context)) out.push({ kind: e.kind, conn: summary?.conn ?? null, finding });
  }
  return out;
}

/** Events with the log lines placed before the conn.close of `conn` (wstap holds a close until the log is read past it). */
function withLines(events: CaptureEvent[], lines: CaptureEvent[]): CaptureEvent[] {
  const close = events.findIndex((e) => e.kind === 'conn.close');
  return [source, ...events.slice(0, close), ...lines, ...events.slice(close)];
}

const verdictOf = (found: ReturnType<typeof fold>, conn = 1): Finding => {
  const v = found.find((f) => f.conn === conn && f.finding.id.startsWith('timeout.'));
  if (!v) throw new Error(`no timeout verdict for #${conn}: ${JSON.stringify(found.map((f) => f.finding.id))}`);
  return v.finding;
};

describe('nginx error log: tying a line to a connection', () => {
  const c = (over: Partial<JoinableConnection>): JoinableConnection => ({
    conn: 1,
    openedAt: T0,
    closedAt: T0 + 2030,
    nginxConnection: null,
    request: { method: 'GET', url: URL, httpVersion: '1.1' },
    forwardedFor: '198.51.100.4',
    ...over,
  });

  it('exactly by X-Nginx-Connection; otherwise by request line, client and time, only when one connection fits', () => {
    const exact = c({ nginxConnection: 12 });
    expect(joinLine(line(), (n) => (n === 12 ? exact : undefined), [exact])).toEqual({ conn: 1, how: 'exactly: X-Nginx-Connection 12 on the request wstap recorded' });
    expect(joinLine(line(), () => undefined, [c({})])).toEqual({
      conn: 1,
      how: `by request line "GET ${URL} HTTP/1.1", client 198.51.100.4, time (whole seconds); not exact: no X-Nginx-Connection header on the request`,
    });
    // Two connections with the same request from the same client in the same seconds: not tied to either.
    expect(joinLine(line(), () => undefined, [c({}), c({ conn: 2 })])).toEqual({ conn: null, fits: 2 });
    // Another client, or a time outside the connection's life: not this one.
    expect(joinLine(line(), () => undefined, [c({ forwardedFor: '203.0.113.9' })])).toEqual({ conn: null, fits: 0 });
    expect(joinLine(line({ at: T0 + 60_000 }), () => undefined, [c({})])).toEqual({ conn: null, fits: 0 });
    // A header number seen long before (nginx restarted, its counter began again) is not an exact tie.
    expect(joinLine(line({ at: T0 + 600_000 }), () => exact, [exact])).toEqual({ conn: null, fits: 0 });
    // nginx rewrote the URI: the upstream URL's path still ties it.
    expect(joinLine(line({ fields: { client: '198.51.100.4', request: 'GET /chat/ws HTTP/1.1', upstream: `http://unix:/run/wstap.sock:${URL}` } }), () => undefined, [c({})]).conn).toBe(1);
    expect(upstreamPath('http://127.0.0.1:8066/ws?x=1')).toBe('/ws?x=1');
  });
});

describe('nginx error log: the hop verdict (two hops with the same 2 s timer in front of wstap)', () => {
  it("nginx's timeout line tied exactly: nginx named, the line in the evidence, the other hop ruled out by it", () => {
    const found = fold(withLines(idleConnection(1, [['X-Nginx-Connection', '12']]), [INFO_LINE, line()]));
    const v = verdictOf(found);
    expect(v.id).toBe('timeout.match');
    expect(v.message).toMatch(/matches nginx proxy_read_timeout 2s$/);
    expect(v.evidence).toContain(
      `nginx's error log: "2023/11/14 22:13:22 [info] 40#40: *12 upstream timed out (110: Connection timed out) while proxying upgraded connection, client: 198.51.100.4, server: , request: "GET ${URL} HTTP/1.1", upstream: "http://127.0.0.1:8066${URL}", host: "chat.example"" (tied to this connection exactly: X-Nginx-Connection 12 on the request wstap recorded): nginx's timer fired and nginx closed it`,
    );
    expect(v.evidence).toContain("ruled out: front-lb idle_timeout 2s is not nginx, and nginx's error log says nginx's own timer closed this connection");
    // The line is a finding of its own when read, on its connection.
    expect(found.find((f) => f.kind === 'nginx.log')).toMatchObject({ conn: 1, finding: { id: 'nginx.timeout', evidence: [expect.any(String), 'tied to this connection exactly: X-Nginx-Connection 12 on the request wstap recorded'] } });
  });

  it('the same line tied without the header: by request line, client and time, and the evidence says so', () => {
    const v = verdictOf(fold(withLines(idleConnection(1), [INFO_LINE, line()])));
    expect(v.id).toBe('timeout.match');
    expect(v.message).toMatch(/nginx proxy_read_timeout 2s$/);
    expect(v.evidence.join('\n')).toContain('by request line "GET /api/v4/websocket HTTP/1.1", client 198.51.100.4, time (whole seconds); not exact');
  });

  it('no timeout line and the log at info: nginx did not fire, the hop in front of it is named', () => {
    const v = verdictOf(fold(withLines(idleConnection(1, [['X-Nginx-Connection', '12']]), [INFO_LINE])));
    expect(v.id).toBe('timeout.match');
    expect(v.message).toMatch(/matches front-lb idle_timeout 2s$/);
    expect(v.evidence).toContain('/var/log/nginx/error.log logs at info (1 info line(s) read, the last at 2023/11/14 22:13:22) and has no timeout line for this connection: nginx did not close it by its timer');
    expect(v.evidence.join('\n')).toContain("ruled out: nginx proxy_read_timeout 2s wrote no timeout line for this connection, and nginx's error log is at info");
  });

  it('a log without info lines cannot tell: timeout.ambiguous, and the fix says to log at info', () => {
    const errorOnly = line({ level: 'error', connection: 3, message: 'connect() failed', action: 'connecting to upstream', at: T0 - 3000, t: T0 - 3000 });
    const v = verdictOf(fold(withLines(idleConnection(1, [['X-Nginx-Connection', '12']]), [errorOnly])));
    expect(v.id).toBe('timeout.ambiguous');
    expect(v.evidence).toContain(
      '/var/log/nginx/error.log holds no info-level lines (1 line(s) read): nginx writes the timeout of an upgraded connection only at info, so its silence cannot tell whether nginx fired',
    );
    expect(v.fix).toContain("log nginx's errors at info (`error_log /var/log/nginx/error.log info;`)");
  });

  it('a timeout line near the close that fits two connections proves nothing either way: ambiguous for both, advice to add X-Nginx-Connection', () => {
    const a = idleConnection(1);
    const b = idleConnection(2);
    const merged = [...a.slice(0, -1), ...b.slice(0, -1), INFO_LINE, line(), a.at(-1) as CaptureEvent, b.at(-1) as CaptureEvent];
    const found = fold([source, ...merged]);
    for (const conn of [1, 2]) {
      const v = verdictOf(found, conn);
      expect(v.id).toBe('timeout.ambiguous');
      expect(v.evidence.join('\n')).toContain("nginx's error log has a timeout line at 2023/11/14 22:13:22 that could not be tied to one connection (2 fit)");
      expect(v.fix).toContain('proxy_set_header X-Nginx-Connection $connection;');
    }
    // The line itself is said once, for the session.
    expect(found.filter((f) => f.kind === 'nginx.log').map((f) => [f.conn, f.finding.id])).toEqual([[null, 'nginx.timeout']]);
  });

  it('without a log nothing changes: the tie stays timeout.ambiguous without a word about nginx\'s log', () => {
    const v = verdictOf(fold(idleConnection(1)));
    expect(v.id).toBe('timeout.ambiguous');
    expect(v.evidence.join('\n')).not.toContain("nginx's error log");
  });

  it('a line tied to no connection is a finding of the session, said without a connection number', () => {
    const failed = line({ level: 'error', connection: 7, message: 'connect() failed', errno: { code: 111, text: 'Connection refused' }, action: 'connecting to upstream' });
    const tracker = new ConnectionTracker();
    tracker.apply(source);
    const summary = tracker.apply(failed);
    expect(summary).toBeNull();
    const [said] = narrateFindings(failed, summary, context);
    expect(said?.level).toBe('error');
    expect(said?.msg).toMatch(/^nginx could not connect to its upstream \(111: Connection refused\) http:\/\/127\.0\.0\.1:8066\/api\/v4\/websocket: the client got a 502/);
  });
});

describe('nginx error log: one fold for every reader', () => {
  it("the live log's findings, the HAR's _wstap.diagnosis and the UI's detail (diagnoseConnection) agree on a connection with nginx's line", () => {
    const start: CaptureEvent = {
      kind: 'session.start', t: T0 - 20_000, version: 'x', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 1, previewLimit: 256,
      diagnosis: { version: 1, profile: null, timeoutFlags: [], context },
    };
    const events = [start, ...withLines(idleConnection(1, [['X-Nginx-Connection', '12']]), [INFO_LINE, line()])];
    const live = fold(events).filter((f) => f.conn === 1).map((f) => f.finding);
    expect(live.map((f) => f.id)).toEqual(['nginx.timeout', 'timeout.match']);
    const har = (buildHar(events, { payloads: 'preview', redact: false }, '0.1.0').log.entries as HarEntry[]).flatMap((e) => e._wstap?.diagnosis ?? []);
    expect(har).toEqual(live);
    const tracker = new ConnectionTracker();
    for (const e of events) tracker.apply(e);
    const summary = tracker.get(1);
    expect(summary).toBeDefined();
    expect(diagnoseConnection(factsOf(summary!), context).map((f) => f.id).sort()).toEqual(['nginx.timeout', 'timeout.match']);
  });
});
