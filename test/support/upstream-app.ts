import http from 'node:http';
import type net from 'node:net';
import { WebSocketServer, type WebSocket, type ServerOptions } from 'ws';

export interface UpstreamApp {
  port: number;
  /** Resolves with the server side of the next WebSocket connection. */
  nextConnection(): Promise<{ ws: WebSocket; req: http.IncomingMessage }>;
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
  const queue: Array<{ ws: WebSocket; req: http.IncomingMessage }> = [];
  const waiting: Array<(c: { ws: WebSocket; req: http.IncomingMessage }) => void> = [];
  wss.on('connection', (ws, req) => {
    ws.on('error', () => undefined);
    const entry = { ws, req };
    const waiter = waiting.shift();
    if (waiter) waiter(entry);
    else queue.push(entry);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
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
  close(): Promise<void>;
}

/**
 * An upstream that answers the WebSocket handshake itself and then hands the
 * raw socket (half-open allowed) to the test: for behaviour `ws` cannot show,
 * such as sending after the client's FIN.
 */
export async function startRawUpgradeServer(onUpgraded: (socket: net.Socket) => void): Promise<RawUpgradeServer> {
  const { createHash } = await import('node:crypto');
  const netModule = await import('node:net');
  const sockets = new Set<net.Socket>();
  const server = netModule.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.removeListener('data', onData);
      const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? '';
      const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      onUpgraded(socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
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
