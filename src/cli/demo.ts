import { WebSocket } from 'ws';
import { attributionOf, type ConnectionSummary } from '../analysis/connection-tracker.js';
import { describeEvidence, type CloseAttribution } from '../analysis/close-attribution.js';
import { seconds } from '../analysis/event-narrator.js';
import { printable } from '../analysis/printable.js';
import { createLogger, type LogFormat } from '../log.js';
import { parseTarget } from '../relay/target.js';
import { startDemoApp } from './demo-app.js';
import { parseArgsStrict, parseChoice } from './option-values.js';
import { ProxySession } from './proxy-session.js';
import { UsageError } from './usage-error.js';

export const DEMO_HELP = `Usage: wstap demo [--capture FILE] [--force] [--log-format auto|pretty|json]

Starts a small chat-like app and wstap in front of it on free loopback ports,
runs scripted clients through it, and prints what wstap saw:
  chatty        sends messages, gets echoes and pings, closes normally (1000)
  idle          says nothing; a simulated hop cuts it after 2 s with a FIN
  server-close  the app closes it with 1001 after three messages
  http          a plain GET through the same proxy
`;

interface Scenario {
  label: string;
  run(base: string): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function opened(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: true });
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

const SCENARIOS: Scenario[] = [
  {
    label: 'chatty',
    async run(base) {
      const ws = await opened(`${base}/ws?demo=chatty&heartbeat=400`);
      for (let i = 1; i <= 6; i++) {
        ws.send(JSON.stringify({ seq: i, text: `hello ${i}`.repeat(i) }));
        await sleep(250);
      }
      ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
      await sleep(200);
      ws.close(1000, 'bye');
      await closed(ws);
    },
  },
  {
    label: 'idle',
    async run(base) {
      const ws = await opened(`${base}/ws?demo=idle`);
      await sleep(2000);
      // What a hop's idle timeout does (nginx proxy_read_timeout): a FIN, no close frame.
      ws.on('error', () => undefined);
      (ws as unknown as { _socket: { end(): void } })._socket.end();
      await closed(ws);
    },
  },
  {
    label: 'server-close',
    async run(base) {
      const ws = await opened(`${base}/ws?demo=server-close&close-after=3`);
      for (let i = 1; i <= 3; i++) {
        ws.send(`message ${i}`);
        await sleep(150);
      }
      await closed(ws);
    },
  },
  {
    label: 'http',
    async run(base) {
      const res = await fetch(`${base.replace(/^ws/, 'http')}/api/health?demo=http`);
      await res.text();
    },
  },
];

export async function runDemo(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    capture: { type: 'string' },
    force: { type: 'boolean' },
    'log-format': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const format = parseChoice<LogFormat>('--log-format', typeof values['log-format'] === 'string' ? values['log-format'] : 'auto', ['auto', 'pretty', 'json']);
  const logger = createLogger({ format });

  const app = await startDemoApp();
  const session = await ProxySession.start({
    mode: 'http',
    host: '127.0.0.1',
    port: 0,
    target: parseTarget(`http://127.0.0.1:${app.port}`, 'http'),
    insecure: false,
    previewLimit: 256,
    capturePath: typeof values.capture === 'string' ? values.capture : null,
    overwriteCapture: values.force === true,
    logger,
    drainSeconds: 0,
  });
  const base = `ws://${session.address}`;
  process.stdout.write(`wstap demo: app on 127.0.0.1:${app.port}, wstap on ${session.address}\n`);
  try {
    const runs: Array<Promise<void>> = [];
    for (const scenario of SCENARIOS) {
      runs.push(scenario.run(base));
      await sleep(50);
    }
    await Promise.all(runs);
    await sleep(200);
  } finally {
    await session.stop('demo finished');
    await app.close();
  }
  process.stdout.write(renderSummary([...session.tracker.closed].sort((a, b) => a.conn - b.conn)));
  if (session.capturePath) process.stdout.write(`capture written to ${session.capturePath}\n`);
  return 0;
}

function verdict(a: CloseAttribution): string {
  if (!a.first) return 'no close evidence';
  const idle = a.idleBeforeCloseMs;
  const silence = idle ? ` after ${seconds(Math.min(idle.client, idle.upstream))} of both-way silence` : '';
  return `closed by ${a.closedBy}: ${describeEvidence(a.first)}${silence}`;
}

/** The demo's closing table: one line per connection, what wstap concluded and from what. */
export function renderSummary(summaries: ConnectionSummary[]): string {
  const lines = ['', 'What wstap saw:'];
  for (const s of summaries) {
    const label = (demoLabel(s) ?? '').padEnd(13);
    const request = s.handshakeRequest ? `${s.handshakeRequest.method} ${printable(s.handshakeRequest.url)}` : s.httpExchanges > 0 ? `${s.httpExchanges} HTTP exchange(s)` : 'tcp';
    const status = s.handshakeResponse ? ` -> ${s.handshakeResponse.statusCode}` : '';
    const frames = s.handshakeResponse?.upgraded ? `, frames ${s.directions.client.frames} up / ${s.directions.upstream.frames} down` : '';
    const ping = s.pings.at(-1);
    const rtt = ping ? `, ping rtt ${ping.rttMs.toFixed(2)} ms` : '';
    lines.push(`  #${s.conn} ${label} ${request}${status}${frames}${rtt}`);
    if (s.handshakeRequest) lines.push(`     ${verdict(attributionOf(s))}`);
  }
  return lines.join('\n') + '\n';
}

/** Scenarios tag their URL with `?demo=LABEL`. */
function demoLabel(s: ConnectionSummary): string | null {
  const url = s.handshakeRequest?.url ?? s.firstRequestUrl;
  if (!url) return null;
  return new URL(url, 'http://demo').searchParams.get('demo');
}
