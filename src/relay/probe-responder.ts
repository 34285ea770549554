import crypto from 'node:crypto';
import type net from 'node:net';
import type { HandshakeResponseEvent, RawHeaders } from '../capture/events.js';
import { headerTokens, headerValue, headerValues, rawHeaderPairs } from '../capture/raw-headers.js';
import { FrameDecoder, type DecodedFrame } from '../wire/frame-decoder.js';
import type { HttpRequestHead } from '../wire/http-head-parser.js';
import type { ChunkObserver, ConnectionContext } from './connection-context.js';
import {
  PROBE_ID_PATTERN,
  PROBE_INTERVAL_HEADER,
  PROBE_INTERVAL_LIMITS,
  PROBE_MODE_HEADER,
  PROBE_MODES,
  PROBE_REPORT_HEADER,
  PROBE_RUN_HEADER,
  PROBE_TOKEN_HEADER,
  PROBE_VARIANT_HEADER,
  type ProbeConnectionReport,
  type ProbeMode,
} from './probe-protocol.js';
import { ProbeReports } from './probe-reports.js';
import { WebSocketTap } from './websocket-tap.js';

/**
 * `wstap proxy --probe-token TOKEN`: wstap answers, itself, every request that
 * carries `X-Wstap-Probe` (any path), so `wstap probe` can measure the path
 * in front of wstap from both ends; the app never sees such a request.
 *
 * - The right token on a WebSocket upgrade: wstap completes the handshake and
 *   plays the app: silent, or sending messages or pings as the probe asked;
 *   it answers pings with pongs and a close frame with a close frame. Every
 *   byte is recorded as on any connection (handshake, frames through the same
 *   WebSocketTap, FIN, RST, conn.close; wstap's own frames as the upstream
 *   side's), and what its end saw is kept for the probe's report request.
 * - The right token on a plain GET with `X-Wstap-Probe-Report: RUN`: the
 *   report of that run as JSON.
 * - A wrong token: 403, never forwarded. Forwarding it would hand the app a
 *   header meant for wstap, and a probe with a mistyped token would then
 *   measure the app while believing it measured wstap's end; a clear refusal
 *   says what is wrong. (Without --probe-token nothing is claimed: the header
 *   is relayed like any other.)
 */

/** Whether a request is wstap's to answer: no probe header, the right token, or a wrong one. */
export type ProbeClaim = 'none' | 'probe' | 'wrong-token';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OPCODE = { text: 1, close: 8, ping: 9, pong: 10 } as const;

/** An unmasked frame (a server's), payload at most 125 bytes (all this responder sends). */
export function serverFrame(opcode: number, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x80 | opcode, payload.length]), payload]);
}

function digest(text: string): Buffer {
  return crypto.createHash('sha256').update(text, 'utf8').digest();
}

/**
 * A request head as wstap read it: all the responder needs, whichever relay
 * parsed it (a connection's first request head, request-head-gate.ts, or a
 * later one, later-request-gate.ts).
 */
export interface ProbeRequestHead {
  method: string;
  url: string;
  httpVersion: string;
  rawHeaders: RawHeaders;
  /** Bytes of the head as it arrived. */
  headLength: number;
}

export function probeRequestHead(head: HttpRequestHead): ProbeRequestHead {
  return { method: head.method, url: head.target, httpVersion: head.httpVersion, rawHeaders: head.rawHeaders, headLength: head.headLength };
}

/** wstap's answer to a plain request it claimed: the status, its headers and a small body. */
export interface PlainAnswer {
  status: number;
  rawHeaders: RawHeaders;
  body: string;
}

interface ProbeRequest {
  mode: ProbeMode;
  intervalMs: number;
  run: string;
  variant: string;
  key: string;
}

export class ProbeResponder {
  readonly #tokenDigest: Buffer;
  readonly #previewLimit: number;
  readonly reports = new ProbeReports();

  constructor(token: string, previewLimit: number) {
    this.#tokenDigest = digest(token);
    this.#previewLimit = previewLimit;
  }

  /** Compared in constant time (digests of equal length), so the answer's timing says nothing about the token. */
  claim(head: ProbeRequestHead): ProbeClaim {
    const values = headerValues(head.rawHeaders, PROBE_TOKEN_HEADER);
    if (values.length === 0) return 'none';
    const right = values.length === 1 && crypto.timingSafeEqual(digest(values[0] as string), this.#tokenDigest);
    return right ? 'probe' : 'wrong-token';
  }

  /** An upgrade request this responder claimed (claim() was not 'none'): refused (403, 400) or answered as a WebSocket. */
  answerUpgrade(ctx: ConnectionContext, head: ProbeRequestHead, socket: net.Socket, early: Buffer, onClosed: () => void): void {
    socket.on('error', () => undefined);
    if (this.claim(head) !== 'probe') return refuse(ctx, head, socket, 403, 'Forbidden', `${PROBE_TOKEN_HEADER} does not match this wstap's --probe-token`);
    const parsed = parseProbeRequest(head.rawHeaders);
    if (typeof parsed === 'string') return refuse(ctx, head, socket, 400, 'Bad Request', parsed);
    new ProbeConnection(ctx, head, socket, parsed, this.#previewLimit, this.reports, onClosed).start(early);
  }

  /** What wstap answers a plain request it claimed: the report of a run as JSON, or a refusal. */
  plainAnswer(head: ProbeRequestHead): PlainAnswer {
    const run = headerValue(head.rawHeaders, PROBE_REPORT_HEADER);
    let status = 200;
    let body: string;
    if (this.claim(head) !== 'probe') {
      status = 403;
      body = `wstap: ${PROBE_TOKEN_HEADER} does not match this wstap's --probe-token\n`;
    } else if (run === undefined || !PROBE_ID_PATTERN.test(run)) {
      status = 400;
      body = `wstap: a request with ${PROBE_TOKEN_HEADER} is a WebSocket upgrade or asks for a report (${PROBE_REPORT_HEADER}: RUN, letters, digits, . _ -)\n`;
    } else {
      body = JSON.stringify(this.reports.report(run));
    }
    const rawHeaders: RawHeaders = [
      ['Content-Type', status === 200 ? 'application/json' : 'text/plain; charset=utf-8'],
      ['Content-Length', String(Buffer.byteLength(body))],
      ['Cache-Control', 'no-store'],
    ];
    return { status, rawHeaders, body };
  }

  /**
   * A plain request this responder claimed: answered (plainAnswer) on the
   * client's socket, recorded as an exchange, and the connection closed
   * (Connection: close): nothing of it, and nothing after it, reaches the app.
   * `exchange`: its number on the connection (1 unless earlier requests were relayed).
   */
  answerRequest(ctx: ConnectionContext, head: ProbeRequestHead, socket: net.Socket, exchange = 1): void {
    socket.on('error', () => socket.destroy());
    const startedAt = ctx.now();
    ctx.record({ kind: 'http.request', t: startedAt, conn: ctx.id, exchange, method: head.method, url: head.url, httpVersion: head.httpVersion, rawHeaders: head.rawHeaders });
    const answer = this.plainAnswer(head);
    const rawHeaders: RawHeaders = [...answer.rawHeaders, ['Connection', 'close']];
    const reason = answer.status === 200 ? 'OK' : answer.status === 403 ? 'Forbidden' : 'Bad Request';
    const bytes = Buffer.from(`HTTP/1.1 ${answer.status} ${reason}\r\n${rawHeaders.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n${answer.body}`, 'utf8');
    socket.end(bytes);
    socket.resume();
    const t = ctx.now();
    ctx.record({
      kind: 'http.response',
      t,
      conn: ctx.id,
      exchange,
      statusCode: answer.status,
      statusMessage: reason,
      httpVersion: '1.1',
      rawHeaders,
      requestBodyBytes: 0,
      responseBodyBytes: Buffer.byteLength(answer.body),
      ttfbMs: round(t - startedAt),
      totalMs: round(t - startedAt),
      complete: true,
    });
  }
}

/** The probe's headers, or what is wrong with them (answered 400). */
function parseProbeRequest(headers: RawHeaders): ProbeRequest | string {
  if (!headerTokens(headers, 'upgrade').includes('websocket')) return 'the probe upgrade must ask for Upgrade: websocket';
  const key = headerValue(headers, 'sec-websocket-key');
  if (key === undefined || key.trim() === '') return 'Sec-WebSocket-Key is missing';
  const mode = headerValue(headers, PROBE_MODE_HEADER) ?? 'silent';
  if (!(PROBE_MODES as readonly string[]).includes(mode)) return `${PROBE_MODE_HEADER} "${mode}" is not one of ${PROBE_MODES.join(', ')}`;
  const intervalText = headerValue(headers, PROBE_INTERVAL_HEADER) ?? '1';
  const interval = Number(intervalText);
  if (!Number.isFinite(interval) || interval < PROBE_INTERVAL_LIMITS.minSeconds || interval > PROBE_INTERVAL_LIMITS.maxSeconds) {
    return `${PROBE_INTERVAL_HEADER} "${intervalText}" is not a number of seconds from ${PROBE_INTERVAL_LIMITS.minSeconds} to ${PROBE_INTERVAL_LIMITS.maxSeconds}`;
  }
  const run = headerValue(headers, PROBE_RUN_HEADER) ?? 'anonymous';
  const variant = headerValue(headers, PROBE_VARIANT_HEADER) ?? mode;
  if (!PROBE_ID_PATTERN.test(run) || !PROBE_ID_PATTERN.test(variant)) return `${PROBE_RUN_HEADER} and ${PROBE_VARIANT_HEADER} may hold letters, digits, . _ - (at most 64)`;
  return { mode: mode as ProbeMode, intervalMs: interval * 1000, run, variant, key: key.trim() };
}

/** wstap's own answer to a request it will not take: recorded as a rejection, the connection ended. */
function refuse(ctx: ConnectionContext, head: ProbeRequestHead, socket: net.Socket, status: number, reason: string, why: string): void {
  ctx.record({ kind: 'http.rejected', t: ctx.now(), conn: ctx.id, method: head.method, url: head.url, statusCode: status, reason: why });
  const body = `wstap: ${why}\n`;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** One probe WebSocket at wstap's end, from the 101 to the close. */
class ProbeConnection {
  readonly #tap: WebSocketTap;
  readonly #decoder: FrameDecoder;
  readonly #observe: ChunkObserver;
  #timer: NodeJS.Timeout | null = null;
  #sentClose = false;
  #report: ProbeConnectionReport | null = null;

  constructor(
    readonly ctx: ConnectionContext,
    readonly head: ProbeRequestHead,
    readonly socket: net.Socket,
    readonly probe: ProbeRequest,
    previewLimit: number,
    readonly reports: ProbeReports,
    readonly onClosed: () => void,
  ) {
    this.#tap = new WebSocketTap(ctx, { previewLimit });
    this.#observe = (side, chunk, t, previousByteAt) => this.#tap.observe(side, chunk, t, previousByteAt);
    // Acting on the probe's frames is the responder's job, apart from recording them (the tap).
    this.#decoder = new FrameDecoder(
      {
        onFrame: (frame) => this.#onFrame(frame),
        onError: (error) => {
          this.#ended({ kind: 'close-frame', side: 'proxy', t: error.t, code: 1002, reason: error.code });
          this.#close(1002, 'protocol error');
        },
      },
      { previewLimit: 0, expectMasked: true },
    );
  }

  start(early: Buffer): void {
    const { ctx, head, socket, probe } = this;
    const requestAt = ctx.now();
    ctx.record({ kind: 'ws.handshake.request', t: requestAt, conn: ctx.id, method: head.method, url: head.url, httpVersion: head.httpVersion, rawHeaders: head.rawHeaders, headLength: head.headLength });
    const accept = crypto.createHash('sha1').update(probe.key + GUID).digest('base64');
    const rawHeaders: RawHeaders = [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Accept', accept], ['X-Wstap-Probe-Conn', String(ctx.id)]];
    const answer = Buffer.from(`HTTP/1.1 101 Switching Protocols\r\n${rawHeaders.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`, 'latin1');
    // From here on this module, not the listener, records the connection's close evidence and its conn.close.
    ctx.relayed = true;
    socket.write(answer);
    const t = ctx.now();
    ctx.lastByteAt.upstream = t;
    ctx.bytes.fromUpstream += answer.length;
    ctx.bytes.fromClient += head.headLength;
    const response: HandshakeResponseEvent = { kind: 'ws.handshake.response', t, conn: ctx.id, statusCode: 101, reason: 'Switching Protocols', httpVersion: '1.1', rawHeaders, headLength: answer.length, upgraded: true, deflate: null, waitMs: round(t - requestAt) };
    ctx.record(response);
    this.#tap.arm(response);
    this.#report = this.reports.add(probe.run, { variant: probe.variant, mode: probe.mode, conn: ctx.id, upgradedAt: t, ends: [], closedAt: null });

    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => {
      ctx.recordFin('client');
      this.#ended({ kind: 'fin', side: 'client', t: ctx.now() });
      // As a WebSocket server does: the client has nothing more to say, so this end closes too.
      if (!socket.destroyed) socket.end();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      ctx.recordSocketError('client', err);
      this.#ended(err.code === 'ECONNRESET' ? { kind: 'rst', side: 'client', t: ctx.now() } : { kind: 'error', side: 'client', t: ctx.now(), error: err.code ?? err.message });
      socket.destroy();
    });
    socket.on('close', () => this.#onSocketClose());
    if (early.length > 0) this.#onData(early);
    if (probe.mode !== 'silent') {
      let n = 0;
      this.#timer = setInterval(() => {
        n++;
        if (probe.mode === 'server-messages') this.#send(OPCODE.text, Buffer.from(`wstap probe message ${n}`));
        else this.#send(OPCODE.ping, Buffer.from(`wstap probe ping ${n}`));
      }, probe.intervalMs);
      this.#timer.unref();
    }
  }

  #onData(chunk: Buffer): void {
    const { ctx } = this;
    const t = ctx.now();
    const previousByteAt = ctx.lastByteAt.client;
    ctx.lastByteAt.client = t;
    ctx.bytes.fromClient += chunk.length;
    ctx.observe(this.#observe, 'client', chunk, t, previousByteAt);
    this.#decoder.push(chunk, t, previousByteAt);
  }

  #onFrame(frame: DecodedFrame): void {
    if (frame.opcode === OPCODE.ping) {
      this.#send(OPCODE.pong, frame.preview);
    } else if (frame.opcode === OPCODE.close) {
      this.#ended({ kind: 'close-frame', side: 'client', t: frame.t, ...(frame.closeCode !== undefined ? { code: frame.closeCode } : {}), ...(frame.closeReason ? { reason: frame.closeReason } : {}) });
      this.#close(frame.closeCode ?? null, '');
    }
  }

  /** Sends a close frame (once) and then a FIN: the answer to the probe's close, or to a protocol error. */
  #close(code: number | null, reason: string): void {
    this.#stopTimer();
    if (this.#sentClose) return;
    this.#sentClose = true;
    const body = code === null ? Buffer.alloc(0) : Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason.slice(0, 100))]);
    this.#send(OPCODE.close, body);
    if (!this.socket.destroyed) this.socket.end();
  }

  #send(opcode: number, payload: Buffer): void {
    const { ctx, socket } = this;
    if (socket.destroyed || socket.writableEnded) return;
    const frame = serverFrame(opcode, payload.subarray(0, 125));
    socket.write(frame);
    const t = ctx.now();
    const previousByteAt = ctx.lastByteAt.upstream;
    ctx.lastByteAt.upstream = t;
    ctx.bytes.fromUpstream += frame.length;
    ctx.observe(this.#observe, 'upstream', frame, t, previousByteAt);
  }

  #ended(event: ProbeConnectionReport['ends'][number]): void {
    this.#stopTimer();
    this.#report?.ends.push(event);
  }

  #stopTimer(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #onSocketClose(): void {
    this.#stopTimer();
    const { ctx } = this;
    if (this.#report) this.#report.closedAt = ctx.now();
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      ctx.recordClose();
      this.onClosed();
    };
    ctx.guard('settle', () => this.#tap.close(done));
    if (!ctx.observing) done();
  }
}

function round(ms: number): number {
  return Math.max(0, Math.round(ms * 1000) / 1000);
}
