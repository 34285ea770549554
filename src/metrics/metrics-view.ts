import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { attributionOf, type ConnectionSummary } from '../analysis/connection-tracker.js';
import type { Finding } from '../analysis/finding.js';
import type { PingRoundTrip } from '../analysis/ping-pairing.js';
import type { CaptureTotals } from '../capture/capture-writer.js';
import { TrafficTotals } from '../analysis/traffic-totals.js';
import type { CaptureEvent, Side } from '../capture/events.js';
import {
  closedByLabel,
  CloseCodeLabels,
  evidenceLabel,
  opcodeLabel,
  pathGroupOf,
  SIDES,
  statusClass,
  type ConnectionKind,
  type PathGroup,
} from './metric-labels.js';
import { registerProcessMetrics } from './process-metrics.js';

export interface MetricsViewOptions {
  /** --metrics-path-group: the path_group label's values; none: every connection is `other`. */
  pathGroups?: readonly PathGroup[];
  /** The capture's totals at scrape time; absent or null: no capture (its metrics stay 0). */
  captureTotals?: () => CaptureTotals | null;
  /** The capture refuses data now, or the disk guard holds it back (read at scrape time). */
  captureStalled?: () => boolean;
  /** wstap_info's labels. */
  info?: { version: string; mode: 'http' | 'tcp'; instance: string };
  /** prom-client's default process metrics (CPU, memory, event loop lag, ...; see process-metrics.ts); on by default. */
  processMetrics?: boolean;
  /**
   * Where frames and messages are counted: the fold's totals
   * (ConnectionTracker.traffic; null until there is one), read at scrape
   * time, so the view need not hear data frames and messages at all (see
   * ProxySession.onEvent). Absent: the view counts them from the events it
   * is given.
   */
  traffic?: () => TrafficTotals | null;
}

/** What the view keeps per live connection: forgotten at its close. */
interface ConnectionState {
  kind: ConnectionKind;
  /** Counted in wstap_connections_opened_total (when its first request said what it is, or at its close). */
  counted: boolean;
  group: string;
  handshakeCounted: boolean;
  lastRoundTrip: PingRoundTrip | undefined;
}

const DURATION_BUCKETS = [0.1, 0.5, 1, 5, 10, 30, 60, 75, 90, 120, 300, 600, 1800, 3600, 14400];
const RTT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The Prometheus view over the fold: each event, with the summary the
 * ConnectionTracker made of it and the findings findingsAt made known, moves
 * a few counters. It computes no verdict: who closed and which timeout are
 * the fold's, read from the summary and the findings. O(1) per event (the
 * per-frame counts are plain numbers, handed to prom-client only when
 * scraped), so keeping the metrics costs the relay's event loop next to
 * nothing; the scrape itself runs on that loop too and is O(series).
 *
 * Kinds: a tcp connection is `tcp` from its open; an http-mode connection is
 * `websocket` or `http` from its first request (a handshake or not), and one
 * that closes before sending any is `http` at its close. Until its first
 * request an open connection counts as `http` in wstap_connections_open.
 */
export class MetricsView {
  readonly registry = new Registry();
  readonly #groups: readonly PathGroup[];
  readonly #connections = new Map<number, ConnectionState>();
  readonly #codes = new CloseCodeLabels();
  /** Frames and messages counted from the events given, when no `traffic` source was (see MetricsViewOptions.traffic). */
  readonly #ownTraffic: TrafficTotals | null;

  readonly #opened: Counter<'kind'>;
  readonly #open: Gauge<'kind'>;
  readonly #closed: Counter<'kind' | 'closed_by' | 'evidence' | 'hop' | 'setting' | 'path_group'>;
  readonly #duration: Histogram<'kind'>;
  readonly #silence: Histogram<'direction'>;
  readonly #handshakes: Counter<'status_class' | 'path_group'>;
  readonly #httpResponses: Counter<'status_class' | 'path_group'>;
  readonly #upstreamErrors: Counter<'stage'>;
  readonly #closeFrames: Counter<'from' | 'code'>;
  readonly #findings: Counter<'id' | 'severity'>;
  readonly #rtt: Histogram<'from'>;
  readonly #relayed: Counter<'from'>;
  readonly #protocolErrors: Counter<'from'>;
  readonly #observerFaults: Counter;

  constructor(options: MetricsViewOptions = {}) {
    this.#groups = options.pathGroups ?? [];
    this.#ownTraffic = options.traffic ? null : new TrafficTotals();
    const own = this.#ownTraffic;
    const traffic = options.traffic ?? ((): TrafficTotals | null => own);
    const registers = [this.registry];
    if (options.processMetrics !== false) registerProcessMetrics(this.registry);
    if (options.info) {
      new Gauge({ name: 'wstap_info', help: 'Always 1: the running wstap version, mode and --instance name', labelNames: ['version', 'mode', 'wstap_instance'], registers }).set(
        { version: options.info.version, mode: options.info.mode, wstap_instance: options.info.instance },
        1,
      );
    }
    this.#opened = new Counter({ name: 'wstap_connections_opened_total', help: 'Connections accepted, by kind (http, websocket, tcp), counted once their first request says which', labelNames: ['kind'], registers });
    this.#open = new Gauge({ name: 'wstap_connections_open', help: 'Connections open now, by kind (an http-mode connection is http until a handshake)', labelNames: ['kind'], registers });
    for (const kind of ['http', 'websocket', 'tcp'] as const) {
      this.#opened.inc({ kind }, 0);
      this.#open.set({ kind }, 0);
    }
    this.#closed = new Counter({
      name: 'wstap_connections_closed_total',
      help: 'Connections closed, by kind, who closed first (client, upstream, proxy, unknown), the first close evidence (close_frame, fin, rst, error, proxy, none), the hop and setting a timeout.match verdict named ("" when none) and path group',
      labelNames: ['kind', 'closed_by', 'evidence', 'hop', 'setting', 'path_group'],
      registers,
    });
    this.#duration = new Histogram({ name: 'wstap_connection_duration_seconds', help: 'Connection lifetime, open to close', labelNames: ['kind'], buckets: DURATION_BUCKETS, registers });
    this.#silence = new Histogram({
      name: 'wstap_silence_before_close_seconds',
      help: 'Silence of each direction (data from client, from upstream) just before the first close evidence',
      labelNames: ['direction'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.#handshakes = new Counter({
      name: 'wstap_handshakes_total',
      help: 'WebSocket handshakes by the answer: status class (1xx is the 101 upgrade), unreachable (wstap could not reach the app), no_answer (closed before an answer)',
      labelNames: ['status_class', 'path_group'],
      registers,
    });
    this.#httpResponses = new Counter({ name: 'wstap_http_responses_total', help: 'Plain HTTP responses by status class', labelNames: ['status_class', 'path_group'], registers });
    this.#upstreamErrors = new Counter({ name: 'wstap_upstream_errors_total', help: 'HTTP exchanges that failed at the upstream: connect (wstap answered 502) or response', labelNames: ['stage'], registers });
    this.#closeFrames = new Counter({ name: 'wstap_close_frames_total', help: 'WebSocket close frames by the side that sent them and close code (none, invalid, other past 100 distinct codes)', labelNames: ['from', 'code'], registers });
    this.#findings = new Counter({ name: 'wstap_findings_total', help: 'Findings (timeout verdicts, handshake and heartbeat rules) by id and severity', labelNames: ['id', 'severity'], registers });
    this.#rtt = new Histogram({ name: 'wstap_ping_rtt_seconds', help: 'Ping to pong round trip, by the side that sent the ping', labelNames: ['from'], buckets: RTT_BUCKETS, registers });
    this.#relayed = new Counter({ name: 'wstap_relayed_bytes_total', help: 'Bytes received from each side of closed connections (counted at the close)', labelNames: ['from'], registers });
    this.#protocolErrors = new Counter({ name: 'wstap_protocol_errors_total', help: 'WebSocket protocol errors (decoding of that direction stops; relaying does not)', labelNames: ['from'], registers });
    // At 0 from the start, so rate() and increase() over them work before the first one happens.
    for (const stage of ['connect', 'response']) this.#upstreamErrors.inc({ stage }, 0);
    for (const from of SIDES) this.#protocolErrors.inc({ from }, 0);
    this.#observerFaults = new Counter({ name: 'wstap_observer_faults_total', help: "Connections wstap stopped observing after a fault of its own (still relayed)", registers });
    this.#perFrameMetrics(registers, traffic);
    this.#captureMetrics(registers, options.captureTotals ?? (() => null), options.captureStalled ?? (() => false));
  }

  /** One event, after the tracker applied it (`summary`) and with the findings it made known. */
  apply(event: CaptureEvent, summary: ConnectionSummary | null, findings: readonly Finding[]): void {
    if (findings.length > 0) for (const f of findings) this.#findings.inc({ id: f.id, severity: f.severity });
    if (!summary) return;
    // Data frames and messages are nearly every event: plain array counts (or none here: the fold's), no per-connection lookup.
    if (event.kind === 'ws.frame') {
      this.#ownTraffic?.frame(event);
      if ((event.opcode & 0x0f) < 8) return;
    } else if (event.kind === 'ws.message') {
      this.#ownTraffic?.message(event);
      return;
    }
    if (!('conn' in event)) return;
    const state = this.#connections.get(event.conn) ?? this.#track(summary);
    switch (event.kind) {
      case 'ws.frame':
        if (event.opcode === 8) this.#closeFrames.inc({ from: event.side, code: this.#codes.of(event.closeCode) });
        else if (event.opcode === 10) this.#roundTrip(summary, state);
        break;
      case 'ws.handshake.request':
        this.#classify(state, 'websocket', event.url);
        break;
      case 'http.request':
        this.#classify(state, 'http', event.url);
        break;
      case 'ws.handshake.response':
        this.#handshake(state, statusClass(event.statusCode));
        break;
      case 'http.response':
        this.#httpResponses.inc({ status_class: statusClass(event.statusCode), path_group: state.group });
        break;
      case 'http.error':
        this.#upstreamErrors.inc({ stage: event.stage });
        if (state.kind === 'websocket' && event.stage === 'connect') this.#handshake(state, 'unreachable');
        break;
      case 'ws.protocol-error':
        this.#protocolErrors.inc({ from: event.side });
        break;
      case 'observer.fault':
        this.#observerFaults.inc();
        break;
      case 'conn.close':
        this.#close(summary, state, findings, event.bytes);
        break;
      default:
        break;
    }
  }

  /** Connections the view holds state for (live ones): bounded as the relay's own. */
  get tracked(): number {
    return this.#connections.size;
  }

  #track(summary: ConnectionSummary): ConnectionState {
    const kind: ConnectionKind = summary.open.mode === 'tcp' ? 'tcp' : 'http';
    const state: ConnectionState = { kind, counted: kind === 'tcp', group: 'other', handshakeCounted: false, lastRoundTrip: undefined };
    if (kind === 'tcp') this.#opened.inc({ kind });
    this.#open.inc({ kind });
    this.#connections.set(summary.conn, state);
    return state;
  }

  /** The first request says what an http-mode connection is. */
  #classify(state: ConnectionState, kind: ConnectionKind, url: string): void {
    if (state.counted) return;
    state.counted = true;
    state.group = pathGroupOf(url, this.#groups);
    if (kind !== state.kind) {
      this.#open.dec({ kind: state.kind });
      this.#open.inc({ kind });
      state.kind = kind;
    }
    this.#opened.inc({ kind });
  }

  #handshake(state: ConnectionState, answer: string): void {
    if (state.handshakeCounted) return;
    state.handshakeCounted = true;
    this.#handshakes.inc({ status_class: answer, path_group: state.group });
  }

  /** A pong the fold paired with a ping made a new round trip: the tracker's newest. */
  #roundTrip(summary: ConnectionSummary, state: ConnectionState): void {
    const last = summary.pings.at(-1);
    if (!last || last === state.lastRoundTrip) return;
    state.lastRoundTrip = last;
    this.#rtt.observe({ from: last.from }, last.rttMs / 1000);
  }

  #close(summary: ConnectionSummary, state: ConnectionState, findings: readonly Finding[], bytes: { fromClient: number; fromUpstream: number }): void {
    if (!state.counted) this.#opened.inc({ kind: state.kind });
    if (state.kind === 'websocket') this.#handshake(state, 'no_answer');
    const attribution = attributionOf(summary);
    const named = findings.find((f) => f.id === 'timeout.match')?.timeout;
    this.#closed.inc({
      kind: state.kind,
      closed_by: closedByLabel(attribution),
      evidence: evidenceLabel(attribution),
      hop: named?.hop ?? '',
      setting: named?.setting ?? '',
      path_group: state.group,
    });
    this.#open.dec({ kind: state.kind });
    this.#duration.observe({ kind: state.kind }, Math.max(0, (summary.closedAt ?? summary.open.t) - summary.open.t) / 1000);
    const idle = attribution.idleBeforeCloseMs;
    if (idle) {
      this.#silence.observe({ direction: 'client' }, idle.client / 1000);
      this.#silence.observe({ direction: 'upstream' }, idle.upstream / 1000);
    }
    this.#relayed.inc({ from: 'client' }, bytes.fromClient);
    this.#relayed.inc({ from: 'upstream' }, bytes.fromUpstream);
    this.#connections.delete(summary.conn);
  }

  /** Frames, messages and their bytes: plain numbers (TrafficTotals), handed over at scrape time. */
  #perFrameMetrics(registers: Registry[], traffic: () => TrafficTotals | null): void {
    const byOpcode = (pick: (t: TrafficTotals) => number[][]) =>
      function (this: Counter<'from' | 'opcode'>): void {
        this.reset();
        const t = traffic();
        if (t) pick(t).forEach((row, side) =>
          row.forEach((n, opcode) => {
            if (n > 0) this.inc({ from: SIDES[side] as Side, opcode: opcodeLabel(opcode) }, n);
          }),
        );
      };
    const byType = (pick: (t: TrafficTotals) => number[][]) =>
      function (this: Counter<'from' | 'type'>): void {
        this.reset();
        const t = traffic();
        (t ? pick(t) : [[0, 0, 0], [0, 0, 0]]).forEach((row, side) => {
          this.inc({ from: SIDES[side] as Side, type: 'text' }, row[1] ?? 0);
          this.inc({ from: SIDES[side] as Side, type: 'binary' }, row[2] ?? 0);
        });
      };
    new Counter({ name: 'wstap_frames_total', help: 'WebSocket frames by the side that sent them and opcode', labelNames: ['from', 'opcode'], registers, collect: byOpcode((t) => t.frames) });
    new Counter({ name: 'wstap_frame_payload_bytes_total', help: 'WebSocket frame payload bytes (as on the wire) by side and opcode', labelNames: ['from', 'opcode'], registers, collect: byOpcode((t) => t.frameBytes) });
    new Counter({ name: 'wstap_messages_total', help: 'Whole WebSocket data messages by side and type', labelNames: ['from', 'type'], registers, collect: byType((t) => t.messages) });
    new Counter({ name: 'wstap_message_bytes_total', help: 'WebSocket message bytes (inflated when compressed) by side and type', labelNames: ['from', 'type'], registers, collect: byType((t) => t.messageBytes) });
  }

  #captureMetrics(registers: Registry[], totals: () => CaptureTotals | null, stalled: () => boolean): void {
    const total = (name: string, help: string, pick: (t: CaptureTotals) => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect(this: Counter) {
          this.reset();
          const t = totals();
          this.inc(t ? pick(t) : 0);
        },
      });
    };
    total('wstap_capture_written_bytes_total', 'Bytes written to the capture files (headers included)', (t) => t.writtenBytes);
    total('wstap_capture_written_events_total', 'Events written to the capture files', (t) => t.writtenEvents);
    total('wstap_capture_lost_events_total', 'Events that never reached the capture (disk full, a disk too slow, --min-free)', (t) => t.lostEvents);
    total('wstap_capture_rotations_total', 'New capture files started by --rotate', (t) => t.segment);
    new Gauge({
      name: 'wstap_capture_stalled',
      help: '1 while the capture refuses data or --min-free holds it back (relaying goes on), else 0',
      registers,
      collect(this: Gauge) {
        this.set(stalled() ? 1 : 0);
      },
    });
  }
}
