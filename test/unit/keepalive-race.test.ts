import { describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { EMPTY_DIAGNOSIS_CONTEXT, type DiagnosisContext } from '../../src/analysis/connection-diagnosis.js';
import { findingsAt } from '../../src/analysis/connection-findings.js';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import type { Finding } from '../../src/analysis/finding.js';
import { httpResponseEvent, openEvent, T0 } from '../support/event-fixtures.js';

const IDLE = { client: 0, upstream: 0 };

function request(exchange: number, t: number, url = `/r${exchange}`): CaptureEvent {
  return { kind: 'http.request', t, conn: 1, exchange, method: 'POST', url, httpVersion: '1.1', rawHeaders: [] };
}

function appClosed(exchange: number, t: number): CaptureEvent {
  return { kind: 'http.error', t, conn: 1, exchange, stage: 'response', code: 'UPSTREAM_CLOSED', message: 'the upstream closed the connection (FIN)', answeredStatus: null };
}

/** Every finding the events make known, through the one fold. */
function findings(events: CaptureEvent[], context: DiagnosisContext = EMPTY_DIAGNOSIS_CONTEXT): Finding[] {
  const tracker = new ConnectionTracker();
  return events.flatMap((e) => [...findingsAt(e, tracker.apply(e), context)]);
}

/** A reused connection: request 1 answered, idle `idleMs`, request 2 sent, the app's FIN `finAfterMs` later, then nginx closes. */
function raceEvents(idleMs: number, finAfterMs = 0.4): CaptureEvent[] {
  const answered = T0 + 20;
  const second = answered + idleMs;
  const fin = second + finAfterMs;
  return [
    openEvent(1),
    request(1, T0 + 10),
    httpResponseEvent({ conn: 1, t: answered, exchange: 1 }),
    request(2, second),
    { kind: 'tcp.fin', t: fin, conn: 1, side: 'upstream', idle: IDLE },
    appClosed(2, fin),
    { kind: 'tcp.fin', t: fin + 1, conn: 1, side: 'client', idle: IDLE },
    { kind: 'conn.close', t: fin + 2, conn: 1, bytes: { fromClient: 100, fromUpstream: 50 } },
  ];
}

describe('http.keepalive-race', () => {
  it('names a reused connection the app closed with a request unanswered: idle before it, when the FIN came, nginx 502, the fix', () => {
    const race = findings(raceEvents(5003)).find((f) => f.id === 'http.keepalive-race');
    expect(race).toBeDefined();
    expect(race!.severity).toBe('error');
    expect(race!.message).toMatch(/^the app closed a reused keep-alive connection with request #2 unanswered after 5\.00 s idle/);
    // Without the app's timeout, the other explanation stays on the table.
    expect(race!.message).toMatch(/another reason/);
    expect(race!.evidence).toEqual([
      'request #2 on this connection (POST /r2) came after it had been idle 5.00 s since the answer to request #1',
      expect.stringMatching(/^the app's upstream fin came 0\.00 s after that request arrived, and no answer to it$/),
      expect.stringMatching(/nginx answers .* 502 .*upstream prematurely closed connection/),
    ]);
    expect(race!.fix).toMatch(/keepalive_timeout/);
  });

  it('with the app\'s keep-alive timeout known (profile), says whether the idle time matches it', () => {
    const context = { ...EMPTY_DIAGNOSIS_CONTEXT, appKeepAliveMs: 5000 };
    const matching = findings(raceEvents(5003), context).find((f) => f.id === 'http.keepalive-race');
    expect(matching!.message).toMatch(/the app's keep-alive timeout \(5\.00 s\) closed it$/);
    const other = findings(raceEvents(2000), context).find((f) => f.id === 'http.keepalive-race');
    expect(other!.message).toMatch(/does not match the app's keep-alive timeout/);
  });

  it('is not said for a connection\'s first request, a request answered, or a close by the client', () => {
    const first: CaptureEvent[] = [openEvent(1), request(1, T0 + 10), { kind: 'tcp.fin', t: T0 + 20, conn: 1, side: 'upstream', idle: IDLE }, appClosed(1, T0 + 20), { kind: 'conn.close', t: T0 + 30, conn: 1, bytes: { fromClient: 1, fromUpstream: 0 } }];
    expect(findings(first).map((f) => f.id)).not.toContain('http.keepalive-race');
    const answered: CaptureEvent[] = [
      openEvent(1),
      request(1, T0 + 10),
      httpResponseEvent({ conn: 1, t: T0 + 20, exchange: 1 }),
      request(2, T0 + 6000),
      httpResponseEvent({ conn: 1, t: T0 + 6010, exchange: 2 }),
      { kind: 'tcp.fin', t: T0 + 9000, conn: 1, side: 'upstream', idle: IDLE },
      { kind: 'conn.close', t: T0 + 9001, conn: 1, bytes: { fromClient: 1, fromUpstream: 0 } },
    ];
    expect(findings(answered).map((f) => f.id)).not.toContain('http.keepalive-race');
  });
});
