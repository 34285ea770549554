import net from 'node:net';
import type tls from 'node:tls';
import type { EventSink } from '../capture/events.js';
import { headerTokens } from '../capture/raw-headers.js';
import type { LiveActivity } from '../capture/live-activity.js';
import type { SessionClock } from '../capture/session-clock.js';
import { ConnectionContext } from './connection-context.js';
import type { DuplexRelay } from './duplex-relay.js';
import { relayHttp } from './http-relay.js';
import { listenOn, type ListenEndpoint } from './listen-endpoint.js';
import { probeRequestHead, ProbeResponder, type ProbeRequestHead } from './probe-responder.js';
import type { ClaimedRequest } from './later-request-gate.js';
import type { HttpRequestHead } from '../wire/http-head-parser.js';
import { layerOn } from './tcp-beneath.js';
import type { Target } from './target.js';
import { relayTcp } from './tcp-relay.js';
import { terminateTls, TLS_HANDSHAKE_TIMEOUT_MS, watchHandshake } from './tls-termination.js';
import { DEFAULT_HEAD_TIMEOUT_MS, holdRequestHead, type HeldRequest } from './request-head-gate.js';
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
  /** --probe-token: any request carrying `X-Wstap-Probe`, first or later on its connection, is answered by wstap itself (probe-responder.ts), never forwarded. */
  probeToken?: string;
}

export { DEFAULT_HEAD_TIMEOUT_MS, MAX_REQUEST_HEAD_BYTES } from './request-head-gate.js';

interface ConnectionEntry {
  ctx: ConnectionContext;
  socket: net.Socket;
  relay: DuplexRelay | null;
}

/**
 * Accepts client connections (TCP or a unix socket, under TLS or not) and
 * hands each to the byte relay: in http mode once its first request head is
 * complete (request-head-gate: 431/408/400/405 answered there), with --tcp at
 * once. One relay for all traffic: plain HTTP, upgrades and raw TCP alike go
 * byte for byte to an upstream connection of their own. With --probe-token,
 * a request carrying X-Wstap-Probe, first or later on its connection, is
 * answered by wstap (ProbeResponder) and never reaches the app. Every
 * connection, whatever becomes of it, gets an id, `conn.open` and `conn.close`.
 */
export class ProxyListener {
  readonly #options: ProxyListenerOptions;
  readonly #server: net.Server;
  readonly #connections = new Map<net.Socket, ConnectionEntry>();
  readonly #byId = new Map<number, ConnectionEntry>();
  readonly #probe: ProbeResponder | null;
  #nextId = 1;

  constructor(options: ProxyListenerOptions) {
    this.#options = options;
    this.#probe = options.probeToken !== undefined && options.mode === 'http' ? new ProbeResponder(options.probeToken, options.previewLimit) : null;
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (raw) => this.#accept(raw));
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
    // A byte relay counts as it forwards; before it, a connection's socket knows its own totals.
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
    const { ctx, socket } = entry;
    if (this.#options.mode === 'tcp') {
      relayTcp(ctx, socket, this.#options.target, this.#dialOptions(), this.#registrar(entry));
      return;
    }
    // Dialed once the first head is complete, not on connect: a head wstap refuses (431/408/400/405)
    // reaches no app, and a port scanner or an idle pre-connection makes no upstream connection (nginx does the same).
    holdRequestHead(ctx, socket, this.#options.headTimeoutMs ?? DEFAULT_HEAD_TIMEOUT_MS, {
      passed: (held) => {
        if (this.#probe && this.#answeredAsProbe(entry, held)) return;
        const probe = this.#probe;
        // With --probe-token, later heads on the connection are held until complete too (later-request-gate.ts).
        const claims = probe
          ? {
              claims: (head: HttpRequestHead) => probe.claim(probeRequestHead(head)) !== 'none',
              answer: (claimed: ClaimedRequest) => {
                // The relay let go of the connection: from here it is as a first-request probe's.
                entry.relay = null;
                ctx.relayed = false;
                this.#answerProbe(entry, probe, probeRequestHead(claimed.head), claimed.early, claimed.exchange);
              },
            }
          : undefined;
        relayHttp(ctx, socket, held, { target: this.#options.target, previewLimit: this.#options.previewLimit, ...this.#dialOptions(), ...(claims ? { claims } : {}) }, this.#registrar(entry));
      },
    });
  }

  /**
   * A connection whose first request carries X-Wstap-Probe is wstap's (the
   * right token) or refused (a wrong one): it never reaches the app, which
   * is not even dialed. A later request carrying it never reaches the app
   * either: the relay holds each later head until complete, and once every
   * earlier exchange is complete it ends the app's connection and hands the
   * client's socket here (the `claims` given to relayHttp).
   */
  #answeredAsProbe(entry: ConnectionEntry, held: HeldRequest): boolean {
    const probe = this.#probe;
    const head = probeRequestHead(held.head);
    if (!probe || probe.claim(head) === 'none') return false;
    const early = Buffer.concat(held.chunks.map((c) => c.chunk)).subarray(head.headLength);
    this.#answerProbe(entry, probe, head, early, 1);
    return true;
  }

  /** wstap answers a claimed request on the client's socket (paused, no other listener of ours on it). */
  #answerProbe(entry: ConnectionEntry, probe: ProbeResponder, head: ProbeRequestHead, early: Buffer, exchange: number): void {
    const { ctx, socket } = entry;
    if (headerTokens(head.rawHeaders, 'upgrade').includes('websocket')) {
      probe.answerUpgrade(ctx, head, socket, early, () => this.#forget(entry));
      socket.resume();
    } else {
      probe.answerRequest(ctx, head, socket, exchange);
    }
  }

  #open(socket: net.Socket, raw: net.Socket): ConnectionEntry {
    const ctx = new ConnectionContext(this.#nextId++, this.#options.clock, this.#options.sink);
    const injected = this.#options.testObserverFault;
    if (injected?.conn === ctx.id) ctx.injectObserverFault({ afterChunks: injected.afterChunks });
    const entry: ConnectionEntry = { ctx, socket, relay: null };
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
}
