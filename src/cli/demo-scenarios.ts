import http from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { WebSocket, type ClientOptions } from 'ws';
import type { SimulatedNginxLog } from './demo-nginx-log.js';

/**
 * The scripted clients of `wstap demo`, one per verdict wstap can give. Each
 * tags its URL with `?demo=LABEL` so the table, the summary and the capture
 * say which is which.
 */
export interface Scenario {
  label: string;
  /** One line: what it does and what wstap should conclude. */
  about: string;
  run(base: string, pace: Pace): Promise<void>;
}

/** The demo's timings: short without a terminal, slow enough to watch in the UI. */
export interface Pace {
  /** The simulated hop's both-way idle timeout (what nginx's proxy_read_timeout does). */
  hopIdleMs: number;
  /** The heartbeat of the slow-heartbeat scenario: longer than the hop's timeout. */
  slowHeartbeatMs: number;
  /** Aborts the scripted clients' waits when the demo stops, so no timer keeps the process alive. */
  signal?: AbortSignal;
  /** The simulated nginx's error log, which wstap follows (--nginx-error-log). */
  nginxLog?: SimulatedNginxLog;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> => delay(ms, undefined, signal ? { signal } : {});

function opened(url: string, options: ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: true, ...options });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closed(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve();
    else ws.once('close', () => resolve());
  });
}

/**
 * A hop in front of wstap with a both-way idle timeout, simulated in the
 * client: when nothing has moved either way for `idleMs`, it ends the TCP
 * connection with a FIN and no close frame, as nginx's proxy_read_timeout does.
 */
function behindSimulatedHop(ws: WebSocket, idleMs: number, signal?: AbortSignal, beforeCut: () => void = () => {}): void {
  let last = Date.now();
  const moved = (): void => {
    last = Date.now();
  };
  ws.on('message', moved);
  ws.on('ping', moved);
  ws.on('pong', moved);
  const send = ws.send.bind(ws);
  ws.send = ((...args: Parameters<WebSocket['send']>) => {
    moved();
    send(...args);
  }) as WebSocket['send'];
  const timer = setInterval(() => {
    if (Date.now() - last < idleMs) return;
    clearInterval(timer);
    ws.on('error', () => undefined);
    beforeCut();
    (ws as unknown as { _socket: { end(): void } })._socket.end();
  }, 20);
  ws.once('close', () => clearInterval(timer));
  signal?.addEventListener('abort', () => clearInterval(timer), { once: true });
}

export const SCENARIOS: readonly Scenario[] = [
  {
    label: 'chatty',
    about: 'messages, echoes and pings, closed normally (1000)',
    async run(base, pace) {
      const ws = await opened(`${base}/ws?demo=chatty&heartbeat=400`);
      behindSimulatedHop(ws, pace.hopIdleMs, pace.signal);
      for (let i = 1; i <= 6; i++) {
        ws.send(JSON.stringify({ seq: i, text: `hello ${i}`.repeat(i) }));
        await sleep(250, pace.signal);
      }
      ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
      await sleep(200, pace.signal);
      ws.close(1000, 'bye');
      await closed(ws);
    },
  },
  {
    label: 'idle',
    about: "says nothing; the simulated hop in front of nginx cuts it (FIN) at its idle timeout: nginx's log has no line for it",
    async run(base, pace) {
      const ws = await opened(`${base}/ws?demo=idle`);
      behindSimulatedHop(ws, pace.hopIdleMs, pace.signal);
      await closed(ws);
    },
  },
  {
    label: 'nginx-timeout',
    about: "says nothing; the simulated nginx's proxy_read_timeout (as long as the hop's) cuts it and logs it: its line names nginx",
    async run(base, pace) {
      const log = pace.nginxLog;
      if (!log) return;
      const n = log.nextConnection();
      const path = '/ws?demo=nginx-timeout';
      // What nginx sends with `proxy_set_header X-Nginx-Connection $connection;`: its line is tied to the connection exactly.
      const ws = await opened(`${base}${path}`, { headers: { 'X-Nginx-Connection': String(n) } });
      const host = new URL(base).host;
      behindSimulatedHop(ws, pace.hopIdleMs, pace.signal, () => log.timedOut(n, `GET ${path} HTTP/1.1`, `http://${host}${path}`, 'chat.example'));
      await closed(ws);
    },
  },
  {
    label: 'server-close',
    about: 'the app closes with 1001 after three messages',
    async run(base, pace) {
      const ws = await opened(`${base}/ws?demo=server-close&close-after=3`);
      for (let i = 1; i <= 3; i++) {
        ws.send(`message ${i}`);
        await sleep(150, pace.signal);
      }
      await closed(ws);
    },
  },
  {
    label: 'reset',
    about: 'the app resets the connection (RST) after two messages, as a crash would',
    async run(base, pace) {
      const ws = await opened(`${base}/ws?demo=reset&reset-after=2`);
      ws.on('error', () => undefined);
      for (let i = 1; i <= 2; i++) {
        ws.send(`message ${i}`);
        await sleep(150, pace.signal);
      }
      await closed(ws);
    },
  },
  {
    label: 'no-upgrade',
    about: 'a handshake that lost its Upgrade header on the way (nginx without proxy_set_header Upgrade)',
    async run(base) {
      // What nginx forwards without the Upgrade lines: a plain GET that still carries the WebSocket key.
      const url = new URL(`${base.replace(/^ws/, 'http')}/ws?demo=no-upgrade`);
      await new Promise<void>((resolve) => {
        const req = http.request(url, {
          headers: { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13', Connection: 'close' },
        });
        req.on('response', (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', () => resolve());
        req.end();
      });
    },
  },
  {
    label: 'slow-heartbeat',
    about: 'the app pings less often than the hop\'s idle timeout: quiet, it is cut before the next ping',
    async run(base, pace) {
      const ws = await opened(`${base}/ws?demo=slow-heartbeat&heartbeat=${pace.slowHeartbeatMs}`);
      behindSimulatedHop(ws, pace.hopIdleMs, pace.signal);
      let pings = 0;
      ws.on('ping', () => pings++);
      // Chat (which keeps the hop open) until two pings have shown the app's cadence, then go quiet.
      for (let i = 1; pings < 2 && ws.readyState === WebSocket.OPEN; i++) {
        ws.send(`still here ${i}`);
        await sleep(pace.hopIdleMs / 2, pace.signal);
      }
      await closed(ws);
    },
  },
  {
    label: 'http',
    about: 'a plain GET through the same proxy',
    async run(base) {
      const res = await fetch(`${base.replace(/^ws/, 'http')}/api/health?demo=http`);
      await res.text();
    },
  },
];
