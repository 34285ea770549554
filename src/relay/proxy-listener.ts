import http from 'node:http';
import net from 'node:net';
import type { EventSink } from '../capture/events.js';
import type { LiveActivity } from '../capture/live-activity.js';
import type { SessionClock } from '../capture/session-clock.js';
import { ConnectionContext } from './connection-context.js';
import type { DuplexRelay } from './duplex-relay.js';
import { HttpForwarder } from './http-forwarder.js';
import type { Target } from './target.js';
import { relayTcp } from './tcp-relay.js';
import { relayUpgrade } from './upgrade-relay.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, type DialOptions } from './upstream-dialer.js';

export interface ProxyListenerOptions {
  mode: 'http' | 'tcp';
  host: string;
  port: number;
  target: Target;
  insecure: boolean;
  previewLimit: number;
  clock: SessionClock;
  sink: EventSink;
  /** How long a client may take to send a whole request head (slowloris); 0 turns the limit off. Default 60 s, nginx's client_header_timeout. */
  headTimeoutMs?: number;
  /** How long an upstream dial (TCP connect and TLS handshake) may take; 0: no limit. Default 60 s, nginx's proxy_connect_timeout. */
  connectTimeoutMs?: number;
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
 * Accepts client connections and hands each to the right relay: plain HTTP
 * to http-proxy-3, Upgrade requests and raw TCP to our byte relay. Every
 * connection, whatever becomes of it, gets an id, `conn.open` and `conn.close`.
 */
export class ProxyListener {
  readonly #options: ProxyListenerOptions;
  readonly #server: net.Server;
  readonly #forwarder: HttpForwarder | null;
  readonly #connections = new Map<net.Socket, ConnectionEntry>();
  readonly #byId = new Map<number, ConnectionEntry>();
  #nextId = 1;

  constructor(options: ProxyListenerOptions) {
    this.#options = options;
    if (options.mode === 'tcp') {
      this.#forwarder = null;
      this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#onTcpConnection(socket));
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
      server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: net.Socket) => this.#onClientError(err, socket));
      server.on('connection', (socket: net.Socket) => this.#onHttpConnection(socket));
      server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onRequest(req, res));
      server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.#onUpgrade(req, socket, head));
      server.on('connect', (req: http.IncomingMessage, socket: net.Socket) => this.#onConnectMethod(req, socket));
      this.#server = server;
    }
  }

  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.removeListener('error', reject);
        resolve(this.#server.address() as net.AddressInfo);
      });
    });
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

  #open(socket: net.Socket, mode: 'http' | 'tcp'): ConnectionEntry {
    const ctx = new ConnectionContext(this.#nextId++, this.#options.clock, this.#options.sink);
    const entry: ConnectionEntry = { ctx, socket, relay: null, exchanges: 0 };
    this.#connections.set(socket, entry);
    this.#byId.set(ctx.id, entry);
    ctx.record({
      kind: 'conn.open',
      t: ctx.openedAt,
      conn: ctx.id,
      mode,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      localPort: socket.localPort ?? 0,
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

  #dialOptions(): DialOptions {
    return { insecure: this.#options.insecure, connectTimeoutMs: this.#options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS };
  }

  #onTcpConnection(socket: net.Socket): void {
    const entry = this.#open(socket, 'tcp');
    relayTcp(entry.ctx, socket, this.#options.target, this.#dialOptions(), this.#registrar(entry));
  }

  #onHttpConnection(socket: net.Socket): void {
    const { ctx } = this.#open(socket, 'http');
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
    this.#forwarder?.handle(entry.ctx, entry.exchanges, req, res);
  }

  #onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const entry = this.#entryOf(socket);
    entry.exchanges++;
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
