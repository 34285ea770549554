import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import { attributionOf, type ConnectionSummary } from '../analysis/connection-tracker.js';
import { describeEvidence, type CloseAttribution } from '../analysis/close-attribution.js';
import { seconds } from '../analysis/event-narrator.js';
import { printable } from '../analysis/printable.js';
import { diagnoseConnection, factsOf, type DiagnosisContext } from '../analysis/connection-diagnosis.js';
import { createLogger, createScreenLogger, type LogFormat } from '../log.js';
import { parseTarget } from '../relay/target.js';
import { startDemoApp, type DemoApp } from './demo-app.js';
import { parseArgsStrict, parseChoice } from './option-values.js';
import { shutdownOnSignal } from './shutdown.js';
import { ProxySession } from './proxy-session.js';
import { defaultLogFile, startLiveUi, terminalAvailable } from './terminal-ui.js';
import { UsageError } from './usage-error.js';

export const DEMO_HELP = `Usage: wstap demo [--no-tui] [--capture FILE] [--force] [--log-format auto|pretty|json]

Starts a small chat-like app and wstap in front of it on free loopback ports
and runs scripted clients through it:
  chatty        sends messages, gets echoes and pings, closes normally (1000)
  idle          says nothing; a simulated hop cuts it with a FIN (after 2 s;
                10 s in the UI, where its countdown runs against a 10 s
                demo-hop idle timeout)
  server-close  the app closes it with 1001 after three messages
  http          a plain GET through the same proxy
On a terminal it opens the live UI and repeats the scenarios until you press
q; otherwise (or with --no-tui) it runs them once and prints what wstap saw.
`;

interface Scenario {
  label: string;
  run(base: string, pace: Pace): Promise<void>;
}

/** How long the scripted clients take (the UI runs them slower so they can be watched), and when to stop. */
interface Pace {
  idleCutMs: number;
  /** Aborts the scripted clients' waits when the demo stops, so no timer keeps the process alive. */
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> => delay(ms, undefined, signal ? { signal } : {});

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
    async run(base, pace) {
      const ws = await opened(`${base}/ws?demo=chatty&heartbeat=400`);
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
    async run(base, pace) {
      const ws = await opened(`${base}/ws?demo=idle`);
      await sleep(pace.idleCutMs, pace.signal);
      // What a hop's idle timeout does (nginx proxy_read_timeout): a FIN, no close frame.
      ws.on('error', () => undefined);
      (ws as unknown as { _socket: { end(): void } })._socket.end();
      await closed(ws);
    },
  },
  {
    label: 'server-close',
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
    label: 'http',
    async run(base) {
      const res = await fetch(`${base.replace(/^ws/, 'http')}/api/health?demo=http`);
      await res.text();
    },
  },
];

export async function runDemo(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    'no-tui': { type: 'boolean' },
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
  const capturePath = typeof values.capture === 'string' ? values.capture : null;
  if (values['no-tui'] !== true && terminalAvailable()) return demoInTerminal(capturePath, values.force === true);
  const logger = createLogger({ format });

  const app = await startDemoApp();
  const session = await startDemoSession(app, capturePath, values.force === true, logger, demoContext(2));
  const base = `ws://${session.address}`;
  process.stdout.write(`wstap demo: app on 127.0.0.1:${app.port}, wstap on ${session.address}\n`);
  try {
    await runRound(base, { idleCutMs: 2000 });
    await sleep(200);
  } finally {
    await session.stop('demo finished');
    await app.close();
  }
  process.stdout.write(renderSummary([...session.tracker.closed].sort((a, b) => a.conn - b.conn), demoContext(2)));
  if (session.capturePath) process.stdout.write(`capture written to ${session.capturePath}\n`);
  return 0;
}

function startDemoSession(app: DemoApp, capturePath: string | null, force: boolean, logger: Logger, diagnosis: DiagnosisContext): Promise<ProxySession> {
  return ProxySession.start({
    mode: 'http',
    host: '127.0.0.1',
    port: 0,
    target: parseTarget(`http://127.0.0.1:${app.port}`, 'http'),
    insecure: false,
    previewLimit: 256,
    capturePath,
    overwriteCapture: force,
    logger,
    drainSeconds: 0,
    diagnosis,
  });
}

async function runRound(base: string, pace: Pace, stopped: () => boolean = () => false): Promise<void> {
  const runs: Array<Promise<void>> = [];
  for (const scenario of SCENARIOS) {
    if (stopped()) break;
    // A scenario that fails (the demo is stopping) must not end the others.
    runs.push(scenario.run(base, pace).catch(() => undefined));
    await sleep(50);
  }
  await Promise.all(runs);
}

/** The simulated hop in front of wstap whose idle timeout cuts the idle scenario (2 s, or 10 s in the UI). */
function demoContext(seconds: number): DiagnosisContext {
  return {
    timeouts: [{ hop: 'demo-hop', setting: 'idle_timeout', seconds, measures: 'both-idle', where: 'client-side', action: 'fin' }],
    requiredHeaders: [],
    heartbeat: null,
  };
}
const ROUND_EVERY_MS = 15_000;

/** The demo in the live UI: rounds of scenarios until q. */
async function demoInTerminal(capturePath: string | null, force: boolean): Promise<number> {
  const screenLog = createScreenLogger({ file: defaultLogFile() });
  const logger = screenLog.logger;
  const tempDir = capturePath ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-demo-'));
  const capture = capturePath ?? path.join(tempDir as string, 'capture.jsonl');
  const app = await startDemoApp();
  const session = await startDemoSession(app, capture, force, logger, demoContext(10));
  const stopper = shutdownOnSignal(session, logger);
  const ui = startLiveUi(session, {
    target: `http://127.0.0.1:${app.port} (demo app)`,
    profile: null,
    diagnosis: demoContext(10),
    redact: true,
    payloads: 'preview',
    screenLog,
    onQuit: () => stopper.stop('quit'),
  });
  logger.info(`demo app on 127.0.0.1:${app.port}, wstap on ${session.address}; a round of scenarios every ${ROUND_EVERY_MS / 1000} s; Enter opens a connection`);
  const base = `ws://${session.address}`;
  // q and a signal both stop the rounds: they go through the same shutdown.
  const stopping = (): boolean => stopper.requested;
  const abort = new AbortController();
  const rounds = (async () => {
    while (!stopping()) {
      void runRound(base, { idleCutMs: 10_000, signal: abort.signal }, stopping);
      for (let waited = 0; waited < ROUND_EVERY_MS && !stopping(); waited += 250) await sleep(250);
    }
  })();
  const code = await stopper.done;
  abort.abort();
  await rounds;
  ui.close();
  await app.close();
  screenLog.release();
  process.stderr.write(`wstap: log written to ${screenLog.file}${capturePath ? `; capture in ${capturePath}` : ''}\n`);
  if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
  await screenLog.close();
  return code;
}

function verdict(a: CloseAttribution): string {
  if (!a.first) return 'no close evidence';
  const idle = a.idleBeforeCloseMs;
  const silence = idle ? ` after ${seconds(Math.min(idle.client, idle.upstream))} of both-way silence` : '';
  return `closed by ${a.closedBy}: ${describeEvidence(a.first)}${silence}`;
}

/** The demo's closing table: one line per connection, what wstap concluded and from what. */
export function renderSummary(summaries: ConnectionSummary[], diagnosis: DiagnosisContext): string {
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
    for (const f of diagnoseConnection(factsOf(s), diagnosis)) {
      if (f.id !== 'timeout.none') lines.push(`     ${f.id}: ${f.message}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Scenarios tag their URL with `?demo=LABEL`. */
function demoLabel(s: ConnectionSummary): string | null {
  const url = s.handshakeRequest?.url ?? s.firstRequestUrl;
  if (!url) return null;
  return new URL(url, 'http://demo').searchParams.get('demo');
}
