import http from 'node:http';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface DemoApp {
  port: number;
  close(): Promise<void>;
}

/**
 * The upstream of `wstap demo`: a small chat-like app. It echoes messages,
 * answers `GET /api/health`, answers a WebSocket handshake that lost its
 * Upgrade header with 426 (as real apps do), and per connection, from the
 * query string: `heartbeat=MS` pings the client on that timer (as
 * Mattermost's server does every 60 s), `close-after=N` closes with 1001
 * after N messages, `reset-after=N` resets the TCP connection (RST) after N.
 */
export async function startDemoApp(): Promise<DemoApp> {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://app').pathname;
    if (req.headers['sec-websocket-key'] !== undefined) {
      const body = 'Upgrade Required: the handshake arrived without "Upgrade: websocket"\n';
      res.writeHead(426, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), upgrade: 'websocket' });
      res.end(body);
      return;
    }
    const body = JSON.stringify({ status: 'OK', path });
    res.writeHead(path === '/api/health' ? 200 : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: { threshold: 0 } });
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    const query = new URL(req.url ?? '/', 'http://app').searchParams;
    const closeAfter = Number(query.get('close-after') ?? 0);
    const resetAfter = Number(query.get('reset-after') ?? 0);
    const heartbeatMs = Number(query.get('heartbeat') ?? 0);
    let received = 0;
    const heartbeat = heartbeatMs > 0 ? setInterval(() => ws.ping(Buffer.from(String(Date.now()))), heartbeatMs) : undefined;
    ws.on('message', (data, isBinary) => {
      received++;
      ws.send(data, { binary: isBinary });
      if (closeAfter > 0 && received >= closeAfter) ws.close(1001, 'server going away');
      // What a crashing app or a killed worker looks like on the wire.
      if (resetAfter > 0 && received >= resetAfter) req.socket.resetAndDestroy();
    });
    ws.on('close', () => clearInterval(heartbeat));
    ws.on('error', () => clearInterval(heartbeat));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
