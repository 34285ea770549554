import http from 'node:http';
import net from 'node:net';
import type tls from 'node:tls';
import type { EventSink } from '../capture/events.js';
import type { LiveActivity } from '../capture/live-activity.js';
import type { SessionClock } from '../capture/session-clock.js';
import { ConnectionContext } from './connection-context.js';
import type { DuplexRelay } from './duplex-relay.js';
import { HttpForwarder } from './http-forwarder.js';
import { listenOn, type ListenEndpoint } from './listen-endpoint.js';
import { probeRequestHead, ProbeResponder } from './probe-responder.js';
import { layerOn } from './tcp-beneath.js';
import type { Target } from './target.js';
import { relayTcp } from './tcp-relay.js';
import { terminateTls, TLS_HANDSHAKE_TIMEOUT_MS, watchHandshake } from './tls-termination.js';
import { relayUpgrade } from './upgrade-relay.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, type DialOptions } from './upstream-dialer.js';

export interface ProxyListenerOptions {
  mode: 'http' | 'tcp';
  endpoint: ListenEndpoint;
  /** Accept TLS (the certificate and key wstap shows its clients); null: plaintext. */
  tls: tls.SecureContext | null;
  target: Target;
  insecure: boolean;
  previewLimit: number;
  clock: SessionClock;
  sink: EventSink;
  /** How long a client may take to send a whole request head (slowloris); 0 turns the limit off. Default 60 s, nginx's client_header_timeout. */
  headTimeoutMs?: number;
  /** Test-only: the observer of connection `conn` throws after `afterChunks` chunks (see ConnectionContext.injectObserverFault). */
  testObserverFault?: { conn: number; afterChunks: number };
  /** How long an upstream dial (TCP connect and TLS handshake) may take; 0: no limit. Default 60 s, nginx's proxy_connect_timeout. */
  connectTimeoutMs?: number;
  /** --probe-token: requests carrying `X-Wstap-Probe` are answered by wstap itself (probe-responder.ts), never forwarded. */
  probeToken?: string;
}

/** The largest request head accepted, as large as the upstream side's head parser allows (nginx's large_client_header_buffers go up to this). */
export const MAX_REQUEST_HEAD_BYTES = 64 * 1024;
export const DEFAULT_HEAD_TIMEOUT_MS = 60_000;

/** What wstap answers a client whose head it will not read: over the limit, too slow, or not HTTP. */
const CLIENT_ERROR_ANSWERS: Record<string, { status: number; reason: string; why: (err: NodeJS.ErrnoException) => string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, reason: 'Request Header Fields Too Large', why: () => `request head over ${MAX_REQUEST_HEAD_BYTES / 1024} KiB` },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, reason: 'Request Timeout', why: () => 'request head not complete in time (--head-timeout)' },
};
const BAD_REQUEST = { status: 400, reason: 'Bad Request', why: (err: NodeJS.ErrnoException) => `not a valid HTTP request (${err.code ?? err.message})` };

interface ConnectionEntry {
  ctx: ConnectionContext;
  socket: net.Socket;
  relay: DuplexRelay | null;
  exchanges: number;
}

/**
 * Accepts client connections (TCP or a unix socket, under TLS or not) and
 * hands each to the right relay: plain HTTP to http-proxy-3, Upgrade requests
 * and raw TCP to our byte relay. Every connection, whatever becomes of it,
 * gets an id, `conn.open` and `conn.close`.
 */
export class ProxyListener {
  readonly #options: ProxyListenerOptions;
  readonly #server: net.Server;
  readonly #forwarder: HttpForwarder | null;
  /** Node's HTTP parsing of a connection (http mode): handed the decrypted socket under TLS. */
  readonly #parseHttp: ((socket: net.Socket) => void) | null;
  readonly #connections = new Map<net.Socket, ConnectionEntry>();
  readonly #byId = new Map<number, ConnectionEntry>();
  readonly #probe: ProbeResponder | null;
  #nextId = 1;

  constructor(options: ProxyListenerOptions) {
    this.#options = options;
    this.#probe = options.probeToken !== undefined && options.mode === 'http' ? new ProbeResponder(options.probeToken, options.previewLimit) : null;
    if (options.mode === 'tcp') {
      this.#forwarder = null;
      this.#parseHttp = null;
      this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (raw) => this.#accept(raw));
    } else {
      this.#forwarder = new HttpForwarder({ target: options.target, maxHeadBytes: MAX_REQUEST_HEAD_BYTES, ...this.#dialOptions() });
      const headTimeoutMs = options.headTimeoutMs ?? DEFAULT_HEAD_TIMEOUT_MS;
      const server = http.createServer({
        // Transparent to long requests (long polling, uploads): the app decides.
        requestTimeout: 0,
        // Only the head has a deadline: a client trickling one in (slowloris) is answered 408.
        headersTimeout: headTimeoutMs,
        // Node checks the deadline on this timer (default 30 s, which would let a 2 s limit run to 32 s).
        connectionsCheckingInterval: Math.max(100, Math.min(1000, headTimeoutMs / 4 || 1000)),
        keepAliveTimeout: 65_000,
        noDelay: true,
        // Node's default is 16 KiB; nginx can send larger heads (large_client_header_buffers).
        maxHeaderSize: MAX_REQUEST_HEAD_BYTES,
      });
      // The server parses HTTP in its own 'connection' listener. It is taken
      // out and called by #accept, with the TLSSocket once the handshake is
      // done (with the accepted socket itself without TLS): one path for both.
      const own = server.listeners('connection');
      const parseHttp = own[0];
      if (own.length !== 1 || typeof parseHttp !== 'function') throw new Error('wstap: http.Server does not parse connections the way this Node version was expected to');
      server.removeListener('connection', parseHttp as (socket: net.Socket) => void);
      this.#parseHttp = (socket) => (parseHttp as (socket: net.Socket) => void).call(server, socket);
      server.on('connection', (raw: net.Socket) => this.#accept(raw));
      server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: net.Socket) => this.#onClientError(err, socket));
      server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onRequest(req, res));
      server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.#onUpgrade(req, socket, head));
      server.on('connect', (req: http.IncomingMessage, socket: net.Socket) => this.#onConnectMethod(req, socket));
      this.#server = server;
    }
  }

  /** Resolves with the endpoint as bound (port 0 resolved); a unix socket file follows listen-endpoint's rules. */
  listen(): Promise<ListenEndpoint> {
    return listenOn(this.#server, this.#options.endpoint);
  }

  get liveConnections(): number {
    return this.#connections.size;
  }

  /** For displays: read on their own timer, never from a socket handler. */
  activity(conn: number): LiveActivity | null {
    const entry = this.#byId.get(conn);
    if (!entry) return null;
    // A byte relay counts as it forwards; a plain HTTP connection's socket knows its own totals.
    const bytes = entry.ctx.relayed ? entry.ctx.bytes : { fromClient: entry.socket.bytesRead, fromUpstream: entry.socket.bytesWritten };
    return { lastByteAt: entry.ctx.lastByteAt, bytes };
  }

  #forget(entry: ConnectionEntry): void {
    this.#connections.delete(entry.socket);
    this.#byId.delete(entry.ctx.id);
  }

  /** Stops accepting new connections; live ones carry on. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** Resolves when no connection is left, or after `ms`. */
  async drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.#connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Ends every live connection, recorded as closed by the proxy. */
  async closeAll(reason: string, graceMs = 1000): Promise<void> {
    for (const entry of this.#connections.values()) {
      if (entry.relay) {
        entry.relay.shutdown(reason);
      } else {
        const t = entry.ctx.now();
        entry.ctx.record({ kind: 'proxy.close', t, conn: entry.ctx.id, reason, idle: entry.ctx.idleAt(t) });
        entry.socket.destroy();
      }
    }
    await this.drain(graceMs);
    for (const entry of this.#connections.values()) {
      entry.socket.destroy();
      entry.relay?.upstream.destroy();
    }
    this.#forwarder?.close();
  }

  /**
   * A new connection: recorded at once (a TLS handshake that fails is a
   * connection too, with its error as close evidence), relayed once it
   * carries plaintext.
   */
  #accept(raw: net.Socket): void {
    const context = this.#options.tls;
    const socket = context ? terminateTls(raw, context, this.#options.mode === 'http' ? ['http/1.1'] : undefined) : raw;
    layerOn(socket, raw);
    const entry = this.#open(socket, raw);
    if (!context) {
      this.#relay(entry);
      return;
    }
    watchHandshake(socket as tls.TLSSocket, this.#handshakeTimeoutMs(), {
      secure: () => this.#relay(entry),
      failed: (err) => entry.ctx.recordSocketError('client', err),
      ended: () => entry.ctx.recordFin('client'),
    });
  }

  /**
   * In http mode the handshake is the start of the request head and shares
   * its deadline, as in nginx (client_header_timeout covers the SSL
   * handshake); --tcp has no head, so Node's tls.Server default applies.
   */
  #handshakeTimeoutMs(): number {
    const head = this.#options.headTimeoutMs ?? DEFAULT_HEAD_TIMEOUT_MS;
    return this.#options.mode === 'http' && head > 0 ? head : TLS_HANDSHAKE_TIMEOUT_MS;
  }

  #dialOptions(): DialOptions {
    return { insecure: this.#options.insecure, connectTimeoutMs: this.#options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS };
  }

  #relay(entry: ConnectionEntry): void {
    if (this.#options.mode === 'tcp') {
      relayTcp(entry.ctx, entry.socket, this.#options.target, this.#dialOptions(), this.#registrar(entry));
      return;
    }
    this.#parseHttp?.(entry.socket);
    this.#watchHttpConnection(entry);
  }

  #open(socket: net.Socket, raw: net.Socket): ConnectionEntry {
    const ctx = new ConnectionContext(this.#nextId++, this.#options.clock, this.#options.sink);
    const injected = this.#options.testObserverFault;
    if (injected?.conn === ctx.id) ctx.injectObserverFault({ afterChunks: injected.afterChunks });
    const entry: ConnectionEntry = { ctx, socket, relay: null, exchanges: 0 };
    this.#connections.set(socket, entry);
    this.#byId.set(ctx.id, entry);
    ctx.record({
      kind: 'conn.open',
      t: ctx.openedAt,
      conn: ctx.id,
      mode: this.#options.mode,
      // Empty on a unix socket: its peer has no address (nginx's X-Real-IP names the client).
      remoteAddress: raw.remoteAddress ?? '',
      remotePort: raw.remotePort ?? 0,
      localPort: raw.localPort ?? 0,
    });
    socket.once('close', () => {
      if (!ctx.relayed) {
        ctx.bytes.fromClient = socket.bytesRead;
        ctx.bytes.fromUpstream = socket.bytesWritten;
        ctx.recordClose();
        this.#forget(entry);
      }
    });
    return entry;
  }

  #registrar(entry: ConnectionEntry): (relay: DuplexRelay | null) => void {
    return (relay) => {
      entry.relay = relay;
      if (!relay) this.#forget(entry);
    };
  }

  #watchHttpConnection({ ctx, socket }: ConnectionEntry): void {
    // Plain HTTP connections have close evidence too (a keep-alive connection
    // the client or nginx lets go); once upgraded, the byte relay records it.
    socket.once('end', () => {
      if (!ctx.relayed) ctx.recordFin('client');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (!ctx.relayed) ctx.recordSocketError('client', err);
    });
  }

  #entryOf(socket: net.Socket): ConnectionEntry {
    const entry = this.#connections.get(socket);
    if (!entry) throw new Error('wstap: request on an untracked socket');
    return entry;
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const entry = this.#entryOf(req.socket);
    entry.exchanges++;
    const probeHead = this.#probe ? probeRequestHead(req) : null;
    if (this.#probe && probeHead && this.#probe.claim(probeHead) !== 'none') return this.#probe.answerRequest(entry.ctx, entry.exchanges, probeHead, res);
    this.#forwarder?.handle(entry.ctx, entry.exchanges, req, res);
  }

  #onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const entry = this.#entryOf(socket);
    entry.exchanges++;
    // The complete request head is known here: a probe's is answered by wstap and goes no further.
    const probeHead = this.#probe ? probeRequestHead(req) : null;
    if (this.#probe && probeHead && this.#probe.claim(probeHead) !== 'none') return this.#probe.answerUpgrade(entry.ctx, probeHead, socket, head, () => this.#forget(entry));
    relayUpgrade(
      entry.ctx,
      req,
      socket,
      head,
      { target: this.#options.target, previewLimit: this.#options.previewLimit, ...this.#dialOptions() },
      this.#registrar(entry),
    );
  }

  /**
   * A request head Node's parser refused (too large, too slow, not HTTP):
   * recorded, answered as nginx would (431, 408, 400), and the connection
   * ended. Nothing of it reaches the app.
   */
  #onClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: net.Socket): void {
    const entry = this.#connections.get(socket);
    // A reset or an already closed socket has no one to answer; its close is recorded by #open.
    if (err.code === 'ECONNRESET' || !socket.writable || !entry) {
      socket.destroy();
      return;
    }
    const answer = (err.code !== undefined ? CLIENT_ERROR_ANSWERS[err.code] : undefined) ?? BAD_REQUEST;
    // Node hands over only the packet it choked on: it names the request when that packet starts the head.
    const line = /^([A-Z]{1,20}) (\S{1,2048}) HTTP\//.exec(err.rawPacket?.subarray(0, 2100).toString('latin1') ?? '');
    entry.ctx.record({
      kind: 'http.rejected',
      t: entry.ctx.now(),
      conn: entry.ctx.id,
      method: line?.[1] ?? '',
      url: line?.[2] ?? '',
      statusCode: answer.status,
      reason: answer.why(err),
    });
    const body = `wstap: ${answer.why(err)}\n`;
    socket.end(
      `HTTP/1.1 ${answer.status} ${answer.reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      // Then close without waiting for the client's FIN: a slowloris client may never send one.
      () => socket.destroy(),
    );
  }

  /** wstap is a reverse proxy for one target, never a tunnel to anywhere else. */
  #onConnectMethod(req: http.IncomingMessage, socket: net.Socket): void {
    const entry = this.#entryOf(socket);
    const body = 'wstap: CONNECT is not supported; wstap only forwards to its configured target\n';
    entry.ctx.record({
      kind: 'http.rejected',
      t: entry.ctx.now(),
      conn: entry.ctx.id,
      method: req.method ?? 'CONNECT',
      url: req.url ?? '',
      statusCode: 405,
      reason: 'CONNECT is not supported',
    });
    socket.on('error', () => socket.destroy());
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
}
