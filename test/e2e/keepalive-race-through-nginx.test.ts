import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginxStack, finalCapture, type NginxStack } from '../support/nginx-stack.js';
import { rawClient } from '../support/raw-peers.js';
import { waitUntil } from '../support/wait-until.js';
import { ofConn, ofKind, sleep } from '../support/ws-peers.js';
import type { LoggedFinding } from '../support/wstap-process.js';

/** The app's keep-alive timeout in this test: short, so the test is too. */
const APP_KEEPALIVE_MS = 1000;

/**
 * An app whose keep-alive timeout fires exactly as a request arrives on an
 * idle connection: it answers requests, and a request that comes after the
 * connection sat idle for APP_KEEPALIVE_MS or more gets a FIN instead of an
 * answer. This is the race a Node app (keepAliveTimeout 5 s) loses to nginx
 * (upstream keepalive_timeout 60 s) now and then, made reliable: a real timer
 * would have to fire within the same millisecond as nginx's write.
 */
async function startRacingApp(): Promise<{ port: number; answered: () => number; closedUnanswered: () => number; close: () => Promise<void> }> {
  let answered = 0;
  let closedUnanswered = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    let lastAnswerAt: number | null = null;
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      for (;;) {
        const headEnd = buffered.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(buffered.slice(0, headEnd))?.[1] ?? 0);
        if (buffered.length < headEnd + 4 + length) return;
        buffered = buffered.slice(headEnd + 4 + length);
        if (lastAnswerAt !== null && Date.now() - lastAnswerAt >= APP_KEEPALIVE_MS) {
          closedUnanswered++;
          socket.end();
          return;
        }
        answered++;
        lastAnswerAt = Date.now();
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    answered: () => answered,
    closedUnanswered: () => closedUnanswered,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function post(port: number, path: string): Promise<string> {
  const client = await rawClient(port);
  client.write(`POST ${path} HTTP/1.1\r\nHost: app\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`);
  await client.waitForEnd();
  client.socket.destroy();
  return client.received;
}

describe('the keep-alive race through a real nginx (upstream keepalive)', () => {
  let app: Awaited<ReturnType<typeof startRacingApp>>;
  let stack: NginxStack;
  beforeAll(async () => {
    app = await startRacingApp();
    stack = await startNginxStack(app.port, {
      upstreamExtra: 'keepalive 4;',
      websocketHeaders: false,
      // Keep-alive to the upstream needs HTTP/1.1 (the default here) and an empty Connection header.
      locationExtra: 'proxy_set_header Connection "";',
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await app?.close();
  });

  it('nginx answers 502 and wstap names http.keepalive-race with the idle time and the app\'s FIN', async () => {
    expect(await post(stack.nginx.port, '/first')).toMatch(/^HTTP\/1\.1 200 /);
    // The scenario itself: nginx's connection to the app sits idle past the app's keep-alive timeout.
    await sleep(APP_KEEPALIVE_MS + 300);
    // POST is not retried by nginx (not idempotent): the lost request reaches the client as nginx's 502.
    expect(await post(stack.nginx.port, '/second')).toMatch(/^HTTP\/1\.1 502 /);
    expect(app.closedUnanswered()).toBe(1);
    await waitUntil('nginx to log the premature close', () => /upstream prematurely closed connection/.test(stack.nginx.errorLog()));

    const wstap = stack.wstap;
    await wstap.waitForLog((l) => /^#1 closed /.test(l.msg));
    const race = await waitUntil('the keep-alive race finding', () =>
      wstap.logs.flatMap((l) => {
        const f = (l as unknown as { finding?: LoggedFinding }).finding;
        return f?.id === 'http.keepalive-race' ? [{ conn: l.conn, finding: f }] : [];
      })[0],
    );
    expect(race.conn).toBe(1);
    expect(race.finding.severity).toBe('error');
    expect(race.finding.message).toMatch(/reused keep-alive connection with request #2 unanswered after (\d+\.\d+) s idle/);
    const idle = Number(/after (\d+\.\d+) s idle/.exec(race.finding.message)?.[1]);
    expect(idle).toBeGreaterThanOrEqual(APP_KEEPALIVE_MS / 1000);
    expect(idle).toBeLessThan(APP_KEEPALIVE_MS / 1000 + 5);
    expect(race.finding.evidence.join('\n')).toMatch(/request #2 on this connection \(POST \/second\) came after it had been idle/);
    expect(race.finding.evidence.join('\n')).toMatch(/the app's upstream fin came \d+\.\d+ s after that request arrived/);
    expect(race.finding.evidence.join('\n')).toMatch(/upstream prematurely closed connection/);
    expect(race.finding.fix).toMatch(/keepalive_timeout/);

    const events = await finalCapture(stack);
    // One nginx connection to wstap carried both requests, and wstap gave it one connection to the app.
    expect(ofConn(events, 1, 'http.request').map((r) => [r.exchange, r.url])).toEqual([
      [1, '/first'],
      [2, '/second'],
    ]);
    expect(ofConn(events, 1, 'http.response').map((r) => [r.exchange, r.statusCode])).toEqual([[1, 200]]);
    expect(ofConn(events, 1, 'http.error')).toEqual([expect.objectContaining({ exchange: 2, stage: 'response', code: 'UPSTREAM_CLOSED', answeredStatus: null })]);
    const fins = ofConn(events, 1, 'tcp.fin');
    expect(fins[0]).toMatchObject({ side: 'upstream' });
    expect(ofKind(events, 'conn.open')).toHaveLength(1);
  });
});
