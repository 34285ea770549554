import http from 'node:http';
import type net from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** Told about a scrape that failed or a server fault; the relay never hears of it. */
  onError: (err: Error) => void;
}

export interface MetricsServer {
  /** `host:port` bound (port 0 resolved). */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * The Prometheus endpoint: `GET /metrics`, nothing else. It shares the
 * relay's event loop, so it does little: a scrape formats the registry (one
 * pass over a bounded set of series) and nothing here waits on the relay.
 * Its faults are reported, never thrown.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server = http.createServer((req, res) => answer(req, res, options));
  server.on('clientError', (_err, socket: net.Socket) => socket.destroy());
  // Scrapers keep connections alive; a slow or stuck one cannot hold much.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => options.onError(err));
  const bound = server.address() as net.AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    address: `${host}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function answer(req: http.IncomingMessage, res: http.ServerResponse, options: MetricsServerOptions): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/metrics') return plain(res, 404, 'not found: the metrics are at /metrics\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
  options.registry.metrics().then(
    (text) => {
      res.writeHead(200, { 'content-type': options.registry.contentType, 'content-length': Buffer.byteLength(text) });
      res.end(req.method === 'HEAD' ? undefined : text);
    },
    (err: Error) => {
      options.onError(err);
      plain(res, 500, 'the metrics could not be collected; see wstap\'s log\n');
    },
  );
}

function plain(res: http.ServerResponse, status: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(text);
}
