import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { createProxyServer, type ProxyServer } from 'http-proxy-3';
import { rawHeaderPairs } from '../capture/raw-headers.js';
import type { ConnectionContext } from './connection-context.js';
import type { Target } from './target.js';
import { failDialAfter, type DialOptions } from './upstream-dialer.js';

interface ExchangeState {
  ctx: ConnectionContext;
  exchange: number;
  startedAt: number;
  requestBodyBytes: number;
  responseHeadAt: number | null;
  proxyRes: http.IncomingMessage | null;
  responseBodyBytes: number;
  settled: boolean;
}

export interface HttpForwarderOptions extends DialOptions {
  target: Target;
  /** The largest response head read from the app (Node's client default is 16 KiB); a larger one is answered 502. */
  maxHeadBytes: number;
}

/**
 * Plain HTTP exchanges go through http-proxy-3 with a keep-alive agent.
 * Headers are passed on as they came (no X-Forwarded-*: nginx in front already
 * set what the app expects); each exchange is recorded when it ends.
 */
export class HttpForwarder {
  readonly #proxy: ProxyServer;
  readonly #agent: http.Agent;
  readonly #target: Target;
  readonly #exchanges = new WeakMap<http.IncomingMessage, ExchangeState>();

  constructor(options: HttpForwarderOptions) {
    this.#target = options.target;
    this.#agent = connectingWithin(
      readingHeadsUpTo(
        options.target.tls ? new https.Agent({ keepAlive: true, rejectUnauthorized: !options.insecure }) : new http.Agent({ keepAlive: true }),
        options.maxHeadBytes,
      ),
      options,
    );
    this.#proxy = createProxyServer({
      // A unix socket target: Node's http client dials socketPath and ignores host and port.
      target: options.target.socketPath !== undefined ? { host: options.target.host, port: options.target.port, protocol: 'http:', socketPath: options.target.socketPath } : options.target.httpBase,
      agent: this.#agent,
      xfwd: false,
      changeOrigin: false,
      preserveHeaderKeyCase: true,
      secure: !options.insecure,
      ws: false,
    });
    this.#proxy.on('proxyRes', (proxyRes, req) => this.#onResponseHead(proxyRes, req));
  }

  handle(ctx: ConnectionContext, exchange: number, req: http.IncomingMessage, res: http.ServerResponse): void {
    const startedAt = ctx.now();
    const state: ExchangeState = {
      ctx,
      exchange,
      startedAt,
      requestBodyBytes: 0,
      responseHeadAt: null,
      proxyRes: null,
      responseBodyBytes: 0,
      settled: false,
    };
    this.#exchanges.set(req, state);
    ctx.lastByteAt.client = startedAt;
    // Recording is contained (ctx.guard): a fault stops observing the connection, the exchange is forwarded all the same.
    ctx.guard('http.request', () =>
      ctx.record({
        kind: 'http.request',
        t: startedAt,
        conn: ctx.id,
        exchange,
        method: req.method ?? '',
        url: req.url ?? '',
        httpVersion: req.httpVersion,
        rawHeaders: rawHeaderPairs(req.rawHeaders),
      }),
    );
    req.on('data', (chunk: Buffer) => {
      state.requestBodyBytes += chunk.length;
      ctx.lastByteAt.client = ctx.now();
    });
    res.on('close', () => ctx.guard('http.response', () => this.#onResponseClosed(req, res, state)));
    this.#proxy.web(req, res, {}, (err) => this.#onError(err as NodeJS.ErrnoException, req, res, state));
  }

  close(): void {
    this.#proxy.close();
    this.#agent.destroy();
  }

  #onResponseHead(proxyRes: http.IncomingMessage, req: http.IncomingMessage): void {
    const state = this.#exchanges.get(req);
    if (!state) return;
    state.ctx.guard('http.response head', () => this.#watchResponse(proxyRes, state));
  }

  #watchResponse(proxyRes: http.IncomingMessage, state: ExchangeState): void {
    state.responseHeadAt = state.ctx.now();
    state.ctx.lastByteAt.upstream = state.responseHeadAt;
    proxyRes.on('data', (chunk: Buffer) => {
      state.responseBodyBytes += chunk.length;
      state.ctx.lastByteAt.upstream = state.ctx.now();
    });
    state.proxyRes = proxyRes;
  }

  #onResponseClosed(req: http.IncomingMessage, res: http.ServerResponse, state: ExchangeState): void {
    if (state.settled) return;
    const { ctx } = state;
    const t = ctx.now();
    const proxyRes = state.proxyRes;
    state.settled = true;
    this.#exchanges.delete(req);
    if (!proxyRes) {
      // The client went away before the upstream answered.
      ctx.record({
        kind: 'http.error',
        t,
        conn: ctx.id,
        exchange: state.exchange,
        stage: 'connect',
        code: 'CLIENT_ABORTED',
        message: 'client closed the connection before the upstream answered',
        answeredStatus: null,
      });
      return;
    }
    ctx.record({
      kind: 'http.response',
      t,
      conn: ctx.id,
      exchange: state.exchange,
      statusCode: proxyRes.statusCode ?? 0,
      statusMessage: proxyRes.statusMessage ?? '',
      httpVersion: proxyRes.httpVersion,
      rawHeaders: rawHeaderPairs(proxyRes.rawHeaders),
      requestBodyBytes: state.requestBodyBytes,
      responseBodyBytes: state.responseBodyBytes,
      ttfbMs: ms((state.responseHeadAt ?? t) - state.startedAt),
      totalMs: ms(t - state.startedAt),
      complete: res.writableFinished,
    });
  }

  #onError(err: NodeJS.ErrnoException, req: http.IncomingMessage, res: http.ServerResponse, state: ExchangeState): void {
    if (state.settled) return;
    const { ctx } = state;
    const hadResponse = state.responseHeadAt !== null;
    const code = err.code ?? err.name;
    let answeredStatus: number | null = null;
    if (!res.headersSent) {
      answeredStatus = 502;
      const body = `wstap: upstream ${this.#target.href} failed: ${code}: ${err.message}\n`;
      res.writeHead(502, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'x-wstap-error': code,
      });
      res.end(body);
    } else {
      res.destroy();
    }
    state.settled = true;
    this.#exchanges.delete(req);
    ctx.guard('http.error', () =>
      ctx.record({
        kind: 'http.error',
        t: ctx.now(),
        conn: ctx.id,
        exchange: state.exchange,
        stage: hadResponse ? 'response' : 'connect',
        code,
        message: err.message,
        answeredStatus,
      }),
    );
  }
}

/** The agent's side of a request: Node's ClientRequest hands itself over in its constructor, before its response parser exists. */
interface AgentRequestHook {
  addRequest(req: http.ClientRequest & { maxHeaderSize?: number }, options: unknown): void;
}

/**
 * Response heads up to `max` bytes: `maxHeaderSize` is a per-request option
 * of http.request that http-proxy-3 does not pass on, so the agent sets it on
 * each request as it is handed over (the parser reads it later, when the
 * socket is assigned). Covered by test/e2e/head-limits.test.ts.
 */
function readingHeadsUpTo<A extends http.Agent>(agent: A, max: number): A {
  const hook = agent as unknown as AgentRequestHook;
  const addRequest = hook.addRequest.bind(agent);
  hook.addRequest = (req, options) => {
    req.maxHeaderSize = max;
    addRequest(req, options);
  };
  return agent;
}

interface AgentConnectHook {
  createConnection(options: unknown, callback: unknown): net.Socket | undefined;
}

/**
 * --connect-timeout for plain HTTP: each new upstream socket the agent opens
 * (TCP connect, and for https the TLS handshake) is destroyed with ETIMEDOUT
 * if not ready in time; the request then fails as an unreachable upstream
 * does (502, http.error at stage 'connect').
 */
function connectingWithin<A extends http.Agent>(agent: A, options: HttpForwarderOptions): A {
  const hook = agent as unknown as AgentConnectHook;
  const createConnection = hook.createConnection.bind(agent);
  hook.createConnection = (connectOptions, callback) => {
    const socket = createConnection(connectOptions, callback);
    if (socket) failDialAfter(socket, options.target.tls ? 'secureConnect' : 'connect', options.connectTimeoutMs, options.target);
    return socket;
  };
  return agent;
}

function ms(value: number): number {
  return Math.round(value * 1000) / 1000;
}
