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

export interface ProxyListenerOptions {
  mode: 'http' | 'tcp';
  host: string;
  port: number;
  target: Target;
  insecure: boolean;
  previewLimit: number;
  clock: SessionClock;
  sink: EventSink;
}

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
      this.#forwarder = new HttpForwarder({ target: options.target, insecure: options.insecure });
      const server = http.createServer({
        // Transparent to long requests (long polling, uploads): the app decides.
        requestTimeout: 0,
        keepAliveTimeout: 65_000,
        noDelay: true,
        // Node's default is 16 KiB; nginx can send larger heads (large_client_header_buffers),
        // and the upstream side's head parser allows 64 KiB too.
        maxHeaderSize: 64 * 1024,
      });
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

  #onTcpConnection(socket: net.Socket): void {
    const entry = this.#open(socket, 'tcp');
    relayTcp(entry.ctx, socket, this.#options.target, this.#options.insecure, this.#registrar(entry));
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
      { target: this.#options.target, insecure: this.#options.insecure, previewLimit: this.#options.previewLimit },
      this.#registrar(entry),
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
