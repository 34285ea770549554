import os from 'node:os';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { ConnectionTracker, type ConnectionSummary } from '../analysis/connection-tracker.js';
import { EMPTY_DIAGNOSIS_CONTEXT, type DiagnosisContext } from '../analysis/connection-diagnosis.js';
import type { DiagnosisRecord } from '../analysis/diagnosis-record.js';
import { narrate, narrationOfFindings, seconds, type Narration, type NarrationLevel } from '../analysis/event-narrator.js';
import { findingsAt } from '../analysis/connection-findings.js';
import type { Finding } from '../analysis/finding.js';
import { TimeoutWatch } from '../analysis/timeout-watch.js';
import { CaptureWriter, type CaptureHealth, type CaptureTotals } from '../capture/capture-writer.js';
import type { CaptureEvent, EventSink } from '../capture/events.js';
import { SessionClock } from '../capture/session-clock.js';
import type { LiveActivity } from '../capture/live-activity.js';
import { endpointText, type ListenEndpoint } from '../relay/listen-endpoint.js';
import { ProxyListener } from '../relay/proxy-listener.js';
import type { Target } from '../relay/target.js';
import { VERSION } from './version.js';
import { formatByteSize } from './option-values.js';
import { GAP_MIN_FREE } from '../capture/events.js';
import { ErrorLogFollower } from '../nginx/error-log-follower.js';
import { describeZone, type LogTimeZone } from '../nginx/error-log-line.js';
import { errorLogEvent } from '../nginx/error-log-lines.js';

export interface ProxySessionOptions {
  mode: 'http' | 'tcp';
  listen: ListenEndpoint;
  /** Accept TLS with this certificate and key (--tls-cert, --tls-key); null or absent: plaintext. */
  tls?: tls.SecureContext | null;
  target: Target;
  insecure: boolean;
  previewLimit: number;
  capturePath: string | null;
  overwriteCapture: boolean;
  /** --rotate: a new capture file before one would pass this many bytes; absent: one file. */
  rotateBytes?: number;
  /** --keep: rotated files kept, the oldest deleted; absent: all. */
  keepFiles?: number;
  /** --min-free: the capture pauses below this much free space; absent: the default; 0: no guard. */
  minFreeBytes?: number;
  logger: Logger;
  /** Seconds to let live connections finish on shutdown before ending them. */
  drainSeconds: number;
  /** How long a client may take to send a request head; 0 = no limit (default 60 s). */
  headTimeoutMs?: number;
  /** How long an upstream dial (TCP connect, TLS handshake) may take; 0 = no limit (default 60 s). */
  connectTimeoutMs?: number;
  /** What is known about the path (profile, --timeout): closes, handshakes and heartbeats are judged against it. */
  diagnosis?: DiagnosisRecord;
  /** --probe-token: wstap answers requests carrying X-Wstap-Probe with this token itself. */
  probeToken?: string;
  /** Test-only (WSTAP_TEST_FAULT, see test-faults.ts): make one connection's observer throw. */
  testObserverFault?: { conn: number; afterChunks: number } | null;
  /** --nginx-error-log: nginx's error log, followed live; its lines are recorded as nginx.log events. */
  nginxErrorLog?: { path: string; zone: LogTimeZone } | null;
  /** --instance: recorded in the capture's header and session.start. */
  instance?: string;
}

/** The longest a close waits for nginx's log to be read past it (a local file takes milliseconds). */
const CLOSE_HOLD_MAX_MS = 5000;

/** How often open connections are compared with the known timeouts (the UI's countdown ticks as often). */
const WATCH_EVERY_MS = 1000;

/** A view of the session: each event after the fold applied it, with the findings it made known (the same the log says). */
export type EventListener = (event: CaptureEvent, summary: ConnectionSummary | null, findings: readonly Finding[]) => void;

/**
 * One running proxy: listener, capture file, the connection fold and the
 * log lines, wired so that every event goes the same way.
 */
export class ProxySession implements EventSink {
  readonly clock = new SessionClock();
  readonly tracker = new ConnectionTracker();
  readonly #options: ProxySessionOptions;
  readonly #diagnosis: DiagnosisContext;
  readonly #writer: CaptureWriter | null;
  readonly #listener: ProxyListener;
  readonly #listeners: EventListener[] = [];
  /** Listeners that read frame and message totals from the fold: not told of each data frame and message. */
  readonly #listenersNotDataFrames: EventListener[] = [];
  readonly #watch: TimeoutWatch;
  #watchTimer: NodeJS.Timeout | null = null;
  #address = '';
  #stopping: Promise<void> | null = null;
  #nginxLog: ErrorLogFollower | null = null;
  /** Closes waiting for the nginx log to be read past them (see #holdClose). */
  readonly #heldCloses = new Set<Promise<void>>();
  /** Whether the logger prints a level: a line it would drop is not built (an exchange at debug, thousands a second). */
  readonly #logsLevel = (level: NarrationLevel): boolean => {
    try {
      return this.#options.logger.isLevelEnabled(level);
    } catch {
      return true;
    }
  };

  private constructor(options: ProxySessionOptions) {
    this.#options = options;
    this.#diagnosis = options.diagnosis?.context ?? EMPTY_DIAGNOSIS_CONTEXT;
    this.#watch = new TimeoutWatch(this.#diagnosis.timeouts);
    const capturePath = options.capturePath;
    this.#writer = capturePath
      ? new CaptureWriter({
          path: capturePath,
          createdBy: `wstap ${VERSION}`,
          ...(options.instance !== undefined ? { instance: options.instance } : {}),
          overwrite: options.overwriteCapture,
          now: () => this.clock.now(),
          // One line when it stops and one when it resumes: the writer retries every second, quietly.
          onError: (err) =>
            options.logger.warn(
              { path: capturePath, code: err.code },
              `capture file ${capturePath} stopped accepting data (${err.code ?? err.message}); relaying continues, events are counted but not saved until it accepts data again`,
            ),
          onResume: (gap) =>
            gap.code === GAP_MIN_FREE
              ? options.logger.info(
                  { path: capturePath, code: gap.code, lostEvents: gap.lostEvents },
                  `capture resumed: free space is back above --min-free; ${gap.lostEvents} events were not saved over ${seconds(gap.t - gap.from)} (${gap.code}), marked in the capture as capture.gap`,
                )
              : options.logger.info(
                  { path: capturePath, code: gap.code, lostEvents: gap.lostEvents },
                  `capture file ${capturePath} accepts data again: ${gap.lostEvents} events were lost over ${seconds(gap.t - gap.from)} (${gap.code}), marked in it as capture.gap`,
                ),
          onPause: (p) =>
            options.logger.warn(
              { path: capturePath, freeBytes: p.freeBytes, minFreeBytes: p.minFreeBytes },
              `capture paused: free space on ${p.dir} is ${formatByteSize(p.freeBytes)}, below --min-free ${formatByteSize(p.minFreeBytes)}; relaying continues, events are counted but not saved until free space is above ${formatByteSize(p.resumeAboveBytes)}`,
            ),
          onDeleteError: (file, err) =>
            options.logger.warn({ path: file, code: err.code }, `could not delete old capture file ${file} (${err.code ?? err.message}); the capture goes on with one file more than --keep`),
          ...(options.rotateBytes !== undefined ? { maxFileBytes: options.rotateBytes } : {}),
          ...(options.keepFiles !== undefined ? { keepFiles: options.keepFiles } : {}),
          ...(options.minFreeBytes === 0 ? {} : { diskGuard: options.minFreeBytes !== undefined ? { minFreeBytes: options.minFreeBytes } : {} }),
        })
      : null;
    this.#listener = new ProxyListener({
      mode: options.mode,
      endpoint: options.listen,
      tls: options.tls ?? null,
      target: options.target,
      insecure: options.insecure,
      previewLimit: options.previewLimit,
      clock: this.clock,
      sink: this,
      ...(options.headTimeoutMs !== undefined ? { headTimeoutMs: options.headTimeoutMs } : {}),
      ...(options.testObserverFault ? { testObserverFault: options.testObserverFault } : {}),
      ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
      ...(options.probeToken !== undefined ? { probeToken: options.probeToken } : {}),
    });
  }

  static async start(options: ProxySessionOptions): Promise<ProxySession> {
    const session = new ProxySession(options);
    try {
      session.#address = listenAddressText(await session.#listener.listen(), options.mode, Boolean(options.tls));
    } catch (err) {
      await session.#writer?.close();
      throw err;
    }
    session.record({
      kind: 'session.start',
      t: session.clock.now(),
      version: VERSION,
      mode: options.mode,
      listen: session.#address,
      target: options.target.href,
      pid: process.pid,
      host: os.hostname(),
      previewLimit: options.previewLimit,
      ...(options.diagnosis ? { diagnosis: options.diagnosis } : {}),
      ...(options.instance !== undefined ? { instance: options.instance } : {}),
    });
    if (options.nginxErrorLog) await session.#followNginxLog(options.nginxErrorLog);
    if (session.#watch.active) {
      session.#watchTimer = setInterval(() => session.#watchOpenConnections(), WATCH_EVERY_MS);
      session.#watchTimer.unref();
    }
    return session;
  }

  /** Where wstap listens, as logged and recorded: `host:port` (port 0 resolved) or `unix:PATH`, under TLS prefixed `https://` (http mode) or `tls:` (--tcp). */
  get address(): string {
    return this.#address;
  }

  get capturePath(): string | null {
    return this.#options.capturePath;
  }

  /** The capture file's losses and whether it refuses data now (for displays); null without a capture. */
  captureHealth(): CaptureHealth | null {
    return this.#writer?.health() ?? null;
  }

  /** What the capture has written and lost so far (for metrics); null without a capture. */
  captureTotals(): CaptureTotals | null {
    return this.#writer?.totals() ?? null;
  }

  /** Exact last byte and byte counts of a live connection (for displays). */
  activity(conn: number): LiveActivity | null {
    return this.#listener.activity(conn);
  }

  /**
   * `listener` hears every event after the fold, with its summary and
   * findings. `dataFrames: false`: not the data frames and whole messages
   * (nearly every event), for a listener that reads their totals from the
   * fold (ConnectionTracker.traffic) instead: a call per frame was most of
   * what --metrics cost (bench/metrics-overhead.mjs).
   */
  onEvent(listener: EventListener, options: { dataFrames?: boolean } = {}): void {
    (options.dataFrames === false ? this.#listenersNotDataFrames : this.#listeners).push(listener);
  }

  /**
   * Every event goes through here: the capture file, the fold, the log, the
   * listeners (UI). Called from socket handlers through ConnectionContext,
   * which contains what this throws.
   *
   * Faults are kept to where they belong. The capture line, the fold and the
   * narration are about this one event: for a connection's event a throw there
   * is rethrown, so ConnectionContext stops observing that connection alone
   * (one `observer.fault`) and every other connection is still recorded in
   * full; for a session event it is logged. The logger and the listeners serve
   * every connection: their faults are contained here and cost no
   * connection its observation (a listener that throws is dropped, once
   * logged; a logger that throws loses that line).
   */
  record(event: CaptureEvent): void {
    if (event.kind === 'conn.close' && this.#nginxLog) {
      this.#holdClose(event);
      return;
    }
    this.#recordNow(event);
  }

  /**
   * With nginx's log followed, a connection's close is recorded once the log
   * has been read up to now: nginx writes its line about a connection (its
   * timeout) before it closes it, so the line is in the capture, and in the
   * fold, before the close's verdict, which may rest on it or on its absence.
   * The relay is not held: the sockets are closed already; only the record
   * of the close waits for a read of a local file.
   */
  #holdClose(event: CaptureEvent): void {
    const log = this.#nginxLog as ErrorLogFollower;
    let timer: NodeJS.Timeout | undefined;
    // A log that hangs (a stalled network file system) must not keep a close out of the capture for ever.
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#log({ level: 'warn', fields: { conn: 'conn' in event ? event.conn : undefined }, msg: `nginx's error log was not read within ${CLOSE_HOLD_MAX_MS / 1000} s of a close; recording it without waiting: its verdict may lack nginx's latest lines` });
        resolve();
      }, CLOSE_HOLD_MAX_MS);
    });
    const held: Promise<void> = Promise.race([log.catchUp().catch(() => undefined), late])
      .then(() => {
        clearTimeout(timer);
        try {
          this.#recordNow(event);
        } catch (err) {
          this.#log({ level: 'error', fields: { err, conn: 'conn' in event ? event.conn : undefined }, msg: `internal fault while recording ${event.kind}; relaying continues` });
        }
      })
      .finally(() => this.#heldCloses.delete(held));
    this.#heldCloses.add(held);
  }

  async #followNginxLog(options: { path: string; zone: LogTimeZone }): Promise<void> {
    const file = options.path;
    const follower = new ErrorLogFollower({
      path: file,
      zone: options.zone,
      onLines: (lines) => {
        for (const line of lines) this.#recordNow(errorLogEvent(line, file, this.clock.now()));
      },
      onNote: (message) => this.#log({ level: 'warn', fields: { nginxErrorLog: file }, msg: message }),
    });
    const before = await follower.start();
    this.#recordNow({ kind: 'nginx.log.source', t: this.clock.now(), file, zone: describeZone(options.zone), before });
    this.#nginxLog = follower;
  }

  #recordNow(event: CaptureEvent): void {
    let summary: ConnectionSummary | null;
    let lines: Narration[];
    let findings: readonly Finding[];
    try {
      this.#writer?.record(event);
      summary = this.tracker.apply(event);
      if (event.kind === 'conn.close') this.#watch.forget(event.conn);
      const line = narrate(event, summary, this.#logsLevel);
      // Judged once: the log and every listener (the UI, metrics) get the same findings.
      findings = findingsAt(event, summary, this.#diagnosis);
      const found = narrationOfFindings(findings, summary);
      lines = line ? [line, ...found] : [...found];
    } catch (err) {
      if ('conn' in event) throw err;
      this.#log({ level: 'error', fields: { err }, msg: `internal fault while recording ${event.kind}; relaying continues` });
      return;
    }
    for (const line of lines) this.#log(line);
    this.#tell(this.#listeners, event, summary, findings);
    const dataFrame = event.kind === 'ws.message' || (event.kind === 'ws.frame' && event.opcode < 8);
    if (!dataFrame && this.#listenersNotDataFrames.length > 0) this.#tell(this.#listenersNotDataFrames, event, summary, findings);
  }

  /** Hands an event to each listener; one that throws is dropped, once logged. */
  #tell(listeners: EventListener[], event: CaptureEvent, summary: ConnectionSummary | null, findings: readonly Finding[]): void {
    for (const listener of listeners) {
      try {
        listener(event, summary, findings);
      } catch (err) {
        listeners.splice(listeners.indexOf(listener), 1);
        this.#log({ level: 'error', fields: { err }, msg: `internal fault in a display while showing ${event.kind}: it gets no more events; relaying and recording continue` });
        break;
      }
    }
  }

  /** A log line; a logger that throws loses that line, never the event or the relay. */
  #log(line: Narration): void {
    try {
      this.#options.logger[line.level](line.fields, line.msg);
    } catch {
      // Nowhere left to say it: the capture file still has the event.
    }
  }

  /** Open WebSocket (and tcp mode) connections nearing a known timeout get one log line each, as the UI's countdown turns yellow. */
  #watchOpenConnections(): void {
    try {
      const now = this.clock.now();
      for (const s of this.tracker.live) {
        // A connection already closing (close frame or FIN seen) is past its timeouts: only open ones are watched.
        if (s.state !== 'open' || !(s.handshakeResponse?.upgraded || s.open.mode === 'tcp')) continue;
        const activity = this.#listener.activity(s.conn);
        if (!activity) continue;
        const idle = { client: now - activity.lastByteAt.client, upstream: now - activity.lastByteAt.upstream };
        for (const finding of this.#watch.check({ conn: s.conn, idle, ageMs: now - s.open.t })) {
          this.#options.logger.warn({ conn: s.conn, finding }, `#${s.conn} ${finding.message}; fix: ${finding.fix}`);
        }
      }
    } catch (err) {
      this.#options.logger.error({ err }, 'internal fault while watching open connections; relaying continues');
    }
  }

  /** Stop accepting, let connections drain if asked, end the rest, close the capture. Idempotent. */
  stop(reason: string): Promise<void> {
    this.#stopping ??= this.#stop(reason);
    return this.#stopping;
  }

  async #stop(reason: string): Promise<void> {
    if (this.#watchTimer) clearInterval(this.#watchTimer);
    const closing = this.#listener.stopAccepting();
    if (this.#options.drainSeconds > 0 && this.#listener.liveConnections > 0) {
      this.#options.logger.info(`waiting up to ${this.#options.drainSeconds} s for ${this.#listener.liveConnections} connection(s) to finish`);
      await this.#listener.drain(this.#options.drainSeconds * 1000);
    }
    await this.#listener.closeAll(reason === 'signal' ? 'shutdown' : reason);
    await closing;
    await Promise.all([...this.#heldCloses]);
    await this.#nginxLog?.close();
    this.record({
      kind: 'session.end',
      t: this.clock.now(),
      reason,
      droppedEvents: this.#writer?.droppedEvents ?? 0,
    });
    await this.#writer?.close();
  }

  /** Everything recorded so far readable in the capture (the UI's export reads it while the session goes on). */
  async flush(): Promise<void> {
    await this.#writer?.flush();
  }

  /** Last-resort flush for a process that is about to die. */
  flushSync(): void {
    this.#writer?.flushSync();
  }
}

/** The `listen` of `session.start` and the UI's header line. */
export function listenAddressText(bound: ListenEndpoint, mode: 'http' | 'tcp', tls: boolean): string {
  const text = endpointText(bound);
  if (!tls) return text;
  return mode === 'http' ? `https://${text}` : `tls:${text}`;
}

