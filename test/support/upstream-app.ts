import http from 'node:http';
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { WebSocketServer, type WebSocket, type ServerOptions } from 'ws';

export interface UpstreamApp {
  port: number;
  /** Resolves with the server side of the next WebSocket connection. */
  nextConnection(): Promise<{ ws: WebSocket; req: http.IncomingMessage }>;
  /** The URL of every WebSocket connection the app accepted, in order. */
  upgrades: string[];
  /** Plain HTTP requests seen, in order. */
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }>;
  close(): Promise<void>;
}

/**
 * A real `ws` server standing in for the app behind wstap. Plain HTTP
 * requests are answered 200 with a JSON echo, except a WebSocket handshake
 * that arrives without its Upgrade headers, answered 426 as a real app would.
 */
export async function startUpstreamApp(wsOptions: Omit<ServerOptions, 'server' | 'port' | 'noServer'> = {}): Promise<UpstreamApp> {
  const requests: UpstreamApp['requests'] = [];
  const server = http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (req.headers['sec-websocket-key']) {
        res.writeHead(426, { 'content-type': 'text/plain' });
        res.end('Upgrade Required: no Upgrade header');
        return;
      }
      const out = JSON.stringify({ method: req.method, url: req.url, bodyLength: body.length });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ server, ...wsOptions });
  const upgrades: string[] = [];
  const queue: Array<{ ws: WebSocket; req: http.IncomingMessage }> = [];
  const waiting: Array<(c: { ws: WebSocket; req: http.IncomingMessage }) => void> = [];
  wss.on('connection', (ws, req) => {
    upgrades.push(req.url ?? '');
    ws.on('error', () => undefined);
    const entry = { ws, req };
    const waiter = waiting.shift();
    if (waiter) waiter(entry);
    else queue.push(entry);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    upgrades,
    requests,
    nextConnection: () =>
      new Promise((resolve) => {
        const ready = queue.shift();
        if (ready) resolve(ready);
        else waiting.push(resolve);
      }),
    close: async () => {
      for (const c of wss.clients) c.terminate();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface RawUpgradeServer {
  port: number;
  /** The request heads as they reached the app, in order. */
  heads: string[];
  /** The headers it answered each one with, in order. */
  answers: Array<Array<[string, string]>>;
  close(): Promise<void>;
}

/** The answer of a correct app: Upgrade, Connection and the right Sec-WebSocket-Accept. */
export function correctUpgradeHeaders(key: string): Array<[string, string]> {
  return [
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Accept', createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')],
  ];
}

export interface RawUpgradeServerOptions {
  /** Speak TLS (a wss:// app) with this key and certificate, up to maxVersion (default: Node's, TLSv1.3). */
  tls?: { key: Buffer; cert: Buffer; maxVersion?: tls.SecureVersion };
  /** Interim responses (1xx heads, each written on its own) sent before the 101. */
  interim?: string[];
}

/**
 * An upstream that answers the WebSocket handshake itself with `101
 * Switching Protocols` and the headers `answer` returns (by default a correct
 * answer), then hands the raw socket (half-open allowed) to the test: for
 * behaviour `ws` cannot show, such as sending after the client's FIN, or a
 * wrong Sec-WebSocket-Accept. With `tls`, `socket` is the TLS socket and
 * `tcp` the TCP socket under it (for an RST or bytes that are not TLS);
 * without, both are the same socket.
 */
export async function startRawUpgradeServer(
  onUpgraded: (socket: net.Socket, tcp: net.Socket) => void,
  answer: (key: string, head: string) => Array<[string, string]> = correctUpgradeHeaders,
  options: RawUpgradeServerOptions = {},
): Promise<RawUpgradeServer> {
  const heads: string[] = [];
  const answers: Array<Array<[string, string]>> = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (tcp) => {
    sockets.add(tcp);
    tcp.once('close', () => sockets.delete(tcp));
    tcp.on('error', () => undefined);
    // The TLS socket takes allowHalfOpen from the TCP socket it wraps.
    const socket = options.tls ? new tls.TLSSocket(tcp, { isServer: true, ...options.tls }) : tcp;
    socket.on('error', () => undefined);
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.removeListener('data', onData);
      const requestHead = head.slice(0, end + 4);
      heads.push(requestHead);
      const key = /^sec-websocket-key:[ \t]*(\S+)/im.exec(requestHead)?.[1] ?? '';
      const headers = answer(key, requestHead);
      answers.push(headers);
      for (const interim of options.interim ?? []) socket.write(interim, 'latin1');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`, 'latin1');
      onUpgraded(socket, tcp);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    heads,
    answers,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An unmasked server text frame (payload < 126 bytes). */
export function serverTextFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}
