import { describe, expect, it } from 'vitest';
import { diagnoseConnection, factsOf, type DiagnosisContext } from '../../src/analysis/connection-diagnosis.js';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import type { Finding } from '../../src/analysis/finding.js';
import type { CaptureEvent, NginxLogEvent } from '../../src/capture/events.js';
import type { Heartbeat } from '../../src/profiles/heartbeat.js';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import { closeEvent, finEvent, frameEvent, handshakeRequestEvent, handshakeResponseEvent, openEvent, rstEvent, T0 } from '../support/event-fixtures.js';

/**
 * Issue 16 item 3: a hop's profile `action` (what it sends when its timer
 * fires) is a fingerprint checked against what was observed wherever a hop
 * is named as the cause of a close: the timeout verdict and the heartbeat
 * finding that blames the timeout "which closed this connection" (both
 * through diagnoseConnection, which the live log, view, the HAR and the UI's
 * detail all use). nginx's log line is checked after the action, as a
 * fourth fingerprint.
 */

const S = 1000;
const heartbeat: Heartbeat = { from: 'upstream', kind: 'ws-ping', interval: 60 };
const hop = (name: string, action: HopTimeout['action'], code?: number): HopTimeout => ({
  hop: name,
  setting: 'idle_timeout',
  seconds: 60,
  measures: 'both-idle',
  where: 'client-side',
  action,
  ...(code !== undefined ? { code } : {}),
});

/** A WebSocket quiet for 60 s, then `end` from the client side. */
function closed(end: CaptureEvent[]): CaptureEvent[] {
  return [openEvent(1, { t: T0 }), handshakeRequestEvent(1, T0 + 1, { rawHeaders: [['X-Nginx-Connection', '5']] }), handshakeResponseEvent(1, T0 + 2), ...end, closeEvent(1, T0 + 60 * S + 50)];
}
const quiet = { client: 60 * S, upstream: 60 * S };
const FIN = [finEvent(1, T0 + 60 * S + 2, 'client', quiet), finEvent(1, T0 + 60 * S + 3, 'upstream', { client: 1, upstream: 60 * S })];

function judge(events: CaptureEvent[], timeouts: HopTimeout[]): Finding[] {
  const tracker = new ConnectionTracker();
  for (const e of events) tracker.apply(e);
  const context: DiagnosisContext = { timeouts, requiredHeaders: [], heartbeat };
  return diagnoseConnection(factsOf(tracker.get(1)!), context);
}

const blamed = (found: Finding[]): string | undefined => found.find((f) => f.message.endsWith('which closed this connection'))?.message;

describe('actions as fingerprints wherever a hop is named as the cause', () => {
  it('a FIN: the hop that sends an RST is ruled out in the verdict and never blamed by the heartbeat finding', () => {
    const found = judge(closed(FIN), [hop('front-lb', 'rst'), hop('nginx', 'fin')]);
    expect(found.find((f) => f.id.startsWith('timeout.'))?.message).toMatch(/matches nginx idle_timeout 60s$/);
    expect(found.find((f) => f.id === 'timeout.match')?.evidence).toContain('ruled out: front-lb idle_timeout 60s sends an RST when it fires and a FIN was seen');
    expect(blamed(found)).toMatch(/not more frequent than nginx idle_timeout 60s, which closed/);
  });

  it('the only hop whose silence fits sends an RST and a FIN came: no match, so no hop is blamed by the heartbeat either', () => {
    const found = judge(closed(FIN), [hop('front-lb', 'rst')]);
    expect(found.map((f) => f.id)).toContain('timeout.none');
    expect(found.find((f) => f.id === 'timeout.none')?.evidence).toContain('front-lb idle_timeout 60s: both-idle was 60.00 s, but it sends an RST when it fires and a FIN was seen');
    expect(blamed(found)).toBeUndefined();
  });

  it('an RST picks the hop that sends one; a close frame picks the hop whose code it carries', () => {
    const rst = judge(closed([rstEvent(1, T0 + 60 * S + 2, 'client', quiet)]), [hop('front-lb', 'rst'), hop('nginx', 'fin')]);
    expect(rst.find((f) => f.id === 'timeout.match')?.message).toMatch(/matches front-lb idle_timeout 60s$/);
    expect(blamed(rst)).toMatch(/front-lb idle_timeout 60s, which closed/);
    const frame = frameEvent({ conn: 1, t: T0 + 60 * S + 2, side: 'client', opcode: 8, closeCode: 1001, idle: quiet });
    const byCode = judge(closed([frame]), [hop('cdn', 'close-frame', 1001), hop('gateway', 'close-frame', 4000), hop('nginx', 'fin')]);
    expect(byCode.find((f) => f.id === 'timeout.match')?.message).toMatch(/matches cdn idle_timeout 60s$/);
    expect(byCode.find((f) => f.id === 'timeout.match')?.evidence).toEqual(
      expect.arrayContaining([
        'ruled out: gateway idle_timeout 60s sends a close frame 4000 when it fires and a close frame 1001 was seen',
        'ruled out: nginx idle_timeout 60s sends a FIN when it fires and a close frame 1001 was seen',
      ]),
    );
  });

  it("after the action, nginx's log: both send a FIN, nginx's timeout line names nginx in the verdict and in the heartbeat's blame", () => {
    const source: CaptureEvent = { kind: 'nginx.log.source', t: T0 - 1, file: 'error.log', zone: 'UTC+00:00' };
    const timedOut: NginxLogEvent = {
      kind: 'nginx.log', t: T0 + 60 * S + 10, file: 'error.log', at: T0 + 60 * S, time: '2023/11/14 22:14:20', level: 'info', pid: 1, tid: 1, connection: 5,
      message: 'upstream timed out', errno: { code: 110, text: 'Connection timed out' }, action: 'proxying upgraded connection', fields: { client: '127.0.0.1' },
    };
    const events = closed(FIN);
    events.splice(events.length - 1, 0, timedOut);
    const found = judge([source, ...events], [hop('front-lb', 'fin'), { ...hop('nginx', 'fin'), setting: 'proxy_read_timeout' }]);
    expect(found.find((f) => f.id === 'timeout.match')?.message).toMatch(/matches nginx proxy_read_timeout 60s$/);
    expect(blamed(found)).toMatch(/nginx proxy_read_timeout 60s, which closed/);
  });
});
