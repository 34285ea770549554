import { describe, expect, it } from 'vitest';
import { EMPTY_DIAGNOSIS_CONTEXT, type DiagnosisContext } from '../../src/analysis/connection-diagnosis.js';
import { findingsAt } from '../../src/analysis/connection-findings.js';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { CloseCodeLabels, parsePathGroup, pathGroupOf, PathGroupError } from '../../src/metrics/metric-labels.js';
import { MetricsView } from '../../src/metrics/metrics-view.js';
import {
  closeEvent,
  finEvent,
  frameEvent,
  handshakeRequestEvent,
  handshakeResponseEvent,
  httpErrorEvent,
  httpRequestEvent,
  httpResponseEvent,
  messageEvent,
  openEvent,
  proxyCloseEvent,
  rstEvent,
  T0,
} from '../support/event-fixtures.js';
import { parseExposition, sumOf, valueOf, wstapSeries, type Exposition } from '../support/prom-text.js';

/** Events through the fold as ProxySession.record does: the tracker, findingsAt, then the view. */
function feed(view: MetricsView, events: readonly CaptureEvent[], context: DiagnosisContext = EMPTY_DIAGNOSIS_CONTEXT): void {
  const tracker = new ConnectionTracker();
  for (const event of events) {
    const summary = tracker.apply(event);
    view.apply(event, summary, findingsAt(event, summary, context));
  }
}

async function scrape(view: MetricsView): Promise<Exposition> {
  return parseExposition(await view.registry.metrics());
}

const NGINX_60S: DiagnosisContext = {
  ...EMPTY_DIAGNOSIS_CONTEXT,
  timeouts: [{ hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'both-idle' }],
};

/** One connection of every close kind, and an HTTP exchange, a refused handshake and an unreachable app. */
function everyCloseKind(): CaptureEvent[] {
  const ws = (conn: number, t: number): CaptureEvent[] => [openEvent(conn, { t }), handshakeRequestEvent(conn, t + 1), handshakeResponseEvent(conn, t + 2)];
  return [
    // 1: client close frame 1000 first, then the upstream's, then FINs.
    ...ws(1, T0),
    frameEvent({ conn: 1, t: T0 + 10, side: 'client', opcode: 1, length: 5 }),
    messageEvent(1, T0 + 10, 'client', { wireLength: 5, size: 5 }),
    frameEvent({ conn: 1, t: T0 + 20, side: 'upstream', opcode: 9, length: 4, preview: 'cGluZw==' }),
    frameEvent({ conn: 1, t: T0 + 25, side: 'client', opcode: 10, length: 4, preview: 'cGluZw==' }),
    frameEvent({ conn: 1, t: T0 + 30, side: 'client', opcode: 8, length: 2, closeCode: 1000, idle: { client: 5, upstream: 5 } }),
    frameEvent({ conn: 1, t: T0 + 31, side: 'upstream', opcode: 8, length: 2, closeCode: 1000 }),
    finEvent(1, T0 + 32, 'upstream'),
    closeEvent(1, T0 + 33, { fromClient: 100, fromUpstream: 200 }),
    // 2: 60 s of silence, then a client FIN (nginx's proxy_read_timeout).
    ...ws(2, T0),
    finEvent(2, T0 + 60_000, 'client', { client: 59_990, upstream: 59_990 }),
    closeEvent(2, T0 + 60_001, { fromClient: 10, fromUpstream: 20 }),
    // 3: the upstream resets.
    ...ws(3, T0),
    rstEvent(3, T0 + 500, 'upstream', { client: 100, upstream: 200 }),
    closeEvent(3, T0 + 501, { fromClient: 1, fromUpstream: 2 }),
    // 4: plain HTTP, keep-alive ended by the client.
    openEvent(4, { t: T0 }),
    httpRequestEvent(4, T0 + 1),
    httpResponseEvent({ conn: 4, t: T0 + 2, exchange: 1 }),
    finEvent(4, T0 + 3, 'client'),
    closeEvent(4, T0 + 4),
    // 5: tcp mode, the app unreachable.
    openEvent(5, { t: T0, mode: 'tcp' }),
    { kind: 'tcp.error', t: T0 + 1, conn: 5, side: 'upstream', code: 'ECONNREFUSED', message: 'refused', idle: { client: 1, upstream: 1 } },
    closeEvent(5, T0 + 2, { fromClient: 0, fromUpstream: 0 }),
    // 6: wstap stopped.
    ...ws(6, T0),
    proxyCloseEvent(6, T0 + 900, { client: 800, upstream: 800 }),
    closeEvent(6, T0 + 901),
    // 7: a refused handshake; 8: the app unreachable for a handshake.
    openEvent(7, { t: T0 }),
    handshakeRequestEvent(7, T0 + 1),
    handshakeResponseEvent(7, T0 + 2, { statusCode: 403, reason: 'Forbidden', upgraded: false, rawHeaders: [] }),
    finEvent(7, T0 + 3, 'upstream'),
    closeEvent(7, T0 + 4),
    openEvent(8, { t: T0 }),
    handshakeRequestEvent(8, T0 + 1),
    httpErrorEvent(8, T0 + 2),
    closeEvent(8, T0 + 3),
  ];
}

describe('MetricsView', () => {
  it('counts every close kind by who closed first and its evidence, and the verdict that named a hop', async () => {
    const view = new MetricsView({ processMetrics: false });
    feed(view, everyCloseKind(), NGINX_60S);
    const e = await scrape(view);
    const closed = (labels: Record<string, string>): number => sumOf(e, 'wstap_connections_closed_total', labels);
    expect(closed({ kind: 'websocket', closed_by: 'client', evidence: 'close_frame' })).toBe(1);
    expect(closed({ kind: 'websocket', closed_by: 'client', evidence: 'fin', hop: 'nginx', setting: 'proxy_read_timeout' })).toBe(1);
    expect(closed({ kind: 'websocket', closed_by: 'upstream', evidence: 'rst', hop: '' })).toBe(1);
    expect(closed({ kind: 'http', closed_by: 'client', evidence: 'fin' })).toBe(1);
    expect(closed({ kind: 'tcp', closed_by: 'upstream', evidence: 'error' })).toBe(1);
    expect(closed({ kind: 'websocket', closed_by: 'proxy', evidence: 'proxy' })).toBe(1);
    expect(closed({})).toBe(8);
    expect(valueOf(e, 'wstap_connections_opened_total', { kind: 'websocket' })).toBe(6);
    expect(valueOf(e, 'wstap_connections_opened_total', { kind: 'http' })).toBe(1);
    expect(valueOf(e, 'wstap_connections_opened_total', { kind: 'tcp' })).toBe(1);
    for (const kind of ['http', 'websocket', 'tcp']) expect(valueOf(e, 'wstap_connections_open', { kind })).toBe(0);
    expect(valueOf(e, 'wstap_handshakes_total', { status_class: '1xx', path_group: 'other' })).toBe(4);
    expect(valueOf(e, 'wstap_handshakes_total', { status_class: '4xx', path_group: 'other' })).toBe(1);
    expect(valueOf(e, 'wstap_handshakes_total', { status_class: 'unreachable', path_group: 'other' })).toBe(1);
    expect(valueOf(e, 'wstap_http_responses_total', { status_class: '2xx', path_group: 'other' })).toBe(1);
    expect(valueOf(e, 'wstap_close_frames_total', { from: 'client', code: '1000' })).toBe(1);
    expect(valueOf(e, 'wstap_close_frames_total', { from: 'upstream', code: '1000' })).toBe(1);
    expect(valueOf(e, 'wstap_findings_total', { id: 'timeout.match', severity: 'warning' })).toBe(1);
    expect(valueOf(e, 'wstap_findings_total', { id: 'handshake.not-upgraded', severity: 'error' }) + valueOf(e, 'wstap_findings_total', { id: 'handshake.not-upgraded', severity: 'warning' })).toBe(1);
    expect(valueOf(e, 'wstap_frames_total', { from: 'client', opcode: 'text' })).toBe(1);
    expect(valueOf(e, 'wstap_frames_total', { from: 'upstream', opcode: 'ping' })).toBe(1);
    expect(valueOf(e, 'wstap_frame_payload_bytes_total', { from: 'client', opcode: 'text' })).toBe(5);
    expect(valueOf(e, 'wstap_messages_total', { from: 'client', type: 'text' })).toBe(1);
    expect(valueOf(e, 'wstap_message_bytes_total', { from: 'client', type: 'text' })).toBe(5);
    expect(valueOf(e, 'wstap_ping_rtt_seconds_count', { from: 'upstream' })).toBe(1);
    expect(valueOf(e, 'wstap_ping_rtt_seconds_sum', { from: 'upstream' })).toBeCloseTo(0.005, 6);
    // Every connection with close evidence (8, refused at connect, has none): 59.99 s for #2, under a second for the rest.
    expect(valueOf(e, 'wstap_silence_before_close_seconds_count', { direction: 'client' })).toBe(7);
    expect(valueOf(e, 'wstap_silence_before_close_seconds_bucket', { direction: 'client', le: '30' })).toBe(6);
    expect(valueOf(e, 'wstap_silence_before_close_seconds_bucket', { direction: 'client', le: '60' })).toBe(7);
    expect(e.types.get('wstap_ping_rtt_seconds')).toBe('histogram');
    expect(e.types.get('wstap_connections_closed_total')).toBe('counter');
    expect(view.tracked).toBe(0);
  });

  it('with the fold\'s traffic totals, needs no data frame or message: the same series as a view told every event', async () => {
    const everything = new MetricsView({ processMetrics: false });
    feed(everything, everyCloseKind(), NGINX_60S);
    // As ProxySession does for onEvent(..., { dataFrames: false }): the tracker sees every event, the view all but data frames and messages.
    const tracker = new ConnectionTracker();
    const told = new MetricsView({ processMetrics: false, traffic: () => tracker.traffic });
    let skipped = 0;
    for (const event of everyCloseKind()) {
      const summary = tracker.apply(event);
      if (event.kind === 'ws.message' || (event.kind === 'ws.frame' && event.opcode < 8)) {
        skipped++;
        continue;
      }
      told.apply(event, summary, findingsAt(event, summary, NGINX_60S));
    }
    expect(skipped).toBeGreaterThan(0);
    const a = await scrape(everything);
    const b = await scrape(told);
    expect(sumOf(b, 'wstap_frames_total', {})).toBeGreaterThan(0);
    expect(sumOf(b, 'wstap_messages_total', {})).toBeGreaterThan(0);
    expect(wstapSeries(b)).toEqual(wstapSeries(a));
    // Before the session exists the source is null: zeros, not an error.
    expect(sumOf(await scrape(new MetricsView({ processMetrics: false, traffic: () => null })), 'wstap_frames_total', {})).toBe(0);
  });

  it('keeps its label sets bounded under 10,000 distinct paths, close codes and addresses', async () => {
    const groups = [parsePathGroup('^/api/v4/websocket=websocket'), parsePathGroup('^/static/=static')];
    const view = new MetricsView({ pathGroups: groups, processMetrics: false });
    const baseline = new MetricsView({ pathGroups: groups, processMetrics: false });
    const events = (n: number): CaptureEvent[] => {
      const out: CaptureEvent[] = [];
      for (let conn = 1; conn <= n; conn++) {
        const t = T0 + conn;
        const url = conn % 3 === 0 ? `/api/v4/websocket?token=${conn}` : conn % 3 === 1 ? `/static/${conn}.js` : `/u/${conn}/${'x'.repeat(conn % 50)}`;
        out.push(openEvent(conn, { t, remoteAddress: `10.${conn >> 16}.${(conn >> 8) & 255}.${conn & 255}`, remotePort: conn }));
        if (conn % 3 === 0) {
          out.push(handshakeRequestEvent(conn, t, { url }), handshakeResponseEvent(conn, t));
          out.push(frameEvent({ conn, t: t + 1, side: conn % 2 ? 'client' : 'upstream', opcode: 8, length: 2, closeCode: 1000 + (conn % 4000) }));
        } else {
          out.push(httpRequestEvent(conn, t, { url }), httpResponseEvent({ conn, t, exchange: 1, statusCode: 100 + (conn % 500) }));
        }
        out.push(conn % 2 ? finEvent(conn, t + 2, 'client') : rstEvent(conn, t + 2, 'upstream'), closeEvent(conn, t + 3, { fromClient: conn, fromUpstream: conn }));
      }
      return out;
    };
    feed(view, events(10_000));
    feed(baseline, events(1_000));
    const e = await scrape(view);
    const series = wstapSeries(e);
    // The same label sets after 1,000 connections as after 10,000, and a small number of them.
    expect(series.length).toBeLessThan(600);
    const keys = (x: Exposition): string[] => wstapSeries(x).map((s) => `${s.name}${JSON.stringify(s.labels)}`).sort();
    const fewer = keys(await scrape(baseline));
    const grown = keys(e).filter((k) => !fewer.includes(k));
    // Only close codes past the first 1,000 connections' may add series, up to the cap of 100 distinct codes plus "other".
    expect(grown.every((k) => k.startsWith('wstap_close_frames_total'))).toBe(true);
    const codes = new Set(e.samples.filter((s) => s.name === 'wstap_close_frames_total').map((s) => s.labels['code']));
    expect(codes.size).toBeLessThanOrEqual(101);
    expect(codes.has('other')).toBe(true);
    for (const s of series) for (const value of Object.values(s.labels)) expect(value).not.toMatch(/^\/|token|10\.\d/);
    expect(sumOf(e, 'wstap_connections_closed_total', { path_group: 'websocket' })).toBe(3333);
    expect(sumOf(e, 'wstap_connections_closed_total', { path_group: 'static' })).toBe(3334);
    expect(sumOf(e, 'wstap_connections_closed_total', { path_group: 'other' })).toBe(3333);
    expect(sumOf(e, 'wstap_connections_closed_total')).toBe(10_000);
    expect(view.tracked).toBe(0);
  });

  it('counts a connection that closes before any request as http, and one whose open it never saw', async () => {
    const view = new MetricsView({ processMetrics: false });
    feed(view, [openEvent(1), finEvent(1, T0 + 1, 'client'), closeEvent(1, T0 + 2), frameEvent({ conn: 9, t: T0 + 3, side: 'client', opcode: 1, length: 3 }), closeEvent(9, T0 + 4)]);
    const e = await scrape(view);
    expect(valueOf(e, 'wstap_connections_opened_total', { kind: 'http' })).toBe(2);
    expect(sumOf(e, 'wstap_connections_closed_total', { closed_by: 'client', evidence: 'fin' })).toBe(1);
    expect(sumOf(e, 'wstap_connections_closed_total', { closed_by: 'unknown', evidence: 'none' })).toBe(1);
    expect(valueOf(e, 'wstap_connections_open', { kind: 'http' })).toBe(0);
  });

  it('reads the capture totals at scrape time and includes the process metrics', async () => {
    let written = 100;
    const view = new MetricsView({ captureTotals: () => ({ writtenBytes: written, writtenEvents: 3, lostEvents: 2, segment: 4 }), captureStalled: () => true, info: { version: '9.9.9', mode: 'tcp', instance: 'edge-1' } });
    expect(valueOf(await scrape(view), 'wstap_capture_written_bytes_total')).toBe(100);
    written = 250;
    const e = await scrape(view);
    expect(valueOf(e, 'wstap_capture_written_bytes_total')).toBe(250);
    expect(valueOf(e, 'wstap_capture_lost_events_total')).toBe(2);
    expect(valueOf(e, 'wstap_capture_rotations_total')).toBe(4);
    expect(valueOf(e, 'wstap_capture_stalled')).toBe(1);
    expect(valueOf(e, 'wstap_info', { version: '9.9.9', mode: 'tcp', wstap_instance: 'edge-1' })).toBe(1);
    expect(e.types.get('process_cpu_seconds_total')).toBe('counter');
    expect(e.types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
  });
});

describe('metric labels', () => {
  it('groups paths by the first REGEX that matches the path, never the query', () => {
    const groups = [parsePathGroup('^/api/v4/websocket$=ws'), parsePathGroup('token=secret')];
    expect(pathGroupOf('/api/v4/websocket?x=1', groups)).toBe('ws');
    expect(pathGroupOf('/other?token=secret', groups)).toBe('other');
    expect(pathGroupOf('/a=b', [parsePathGroup('^/a=b$=eq')])).toBe('eq');
  });

  it('refuses a bad REGEX=NAME with what is wrong', () => {
    expect(() => parsePathGroup('nothing')).toThrow(PathGroupError);
    expect(() => parsePathGroup('(=x')).toThrow(/REGEX/);
    expect(() => parsePathGroup('^/a=has space')).toThrow(/NAME/);
    expect(() => parsePathGroup('^/a=other')).toThrow(/other/);
  });

  it('labels close codes: none, invalid, then at most the limit of distinct codes', () => {
    const labels = new CloseCodeLabels(2);
    expect([labels.of(undefined), labels.of(999), labels.of(5000), labels.of(1000), labels.of(4001), labels.of(4002), labels.of(1000)]).toEqual(['none', 'invalid', 'invalid', '1000', '4001', 'other', '1000']);
  });
});
