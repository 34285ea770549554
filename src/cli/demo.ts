import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { attributionOf, type ConnectionSummary } from '../analysis/connection-tracker.js';
import { describeEvidence, type CloseAttribution } from '../analysis/close-attribution.js';
import { seconds } from '../analysis/event-narrator.js';
import { printable } from '../analysis/printable.js';
import { diagnosisRecord } from '../analysis/diagnosis-record.js';
import { diagnoseConnection, factsOf, type DiagnosisContext } from '../analysis/connection-diagnosis.js';
import { createLogger, createScreenLogger, flushLogger, type LogFormat } from '../log.js';
import { parseTarget } from '../relay/target.js';
import { startDemoApp, type DemoApp } from './demo-app.js';
import { SimulatedNginxLog } from './demo-nginx-log.js';
import { LOCAL_TIME } from '../nginx/error-log-line.js';
import { SCENARIOS, type Pace } from './demo-scenarios.js';
import { parseArgsStrict, parseChoice } from './option-values.js';
import { shutdownOnSignal } from './shutdown.js';
import { ProxySession } from './proxy-session.js';
import { defaultLogFile, terminalAvailable } from './ui-prerequisites.js';
import { UsageError } from './usage-error.js';

export const DEMO_HELP = `Usage: wstap demo [--no-tui] [--capture FILE] [--force] [--log-format auto|pretty|json]

A guided tour: starts a small chat-like app and wstap in front of it on free
loopback ports, and runs one scripted client per verdict wstap gives:
${SCENARIOS.map((s) => `  ${s.label.padEnd(15)}${s.about}`).join('\n')}
A simulated hop in front of wstap has a both-way idle timeout (demo-hop,
2 s; 6 s in the UI, where its countdown can be watched), and so has a
simulated nginx behind it (proxy_read_timeout, as long): wstap alone cannot
tell them apart. It follows the simulated nginx's error log
(--nginx-error-log): nginx's timeout line names nginx, its absence the hop
in front. No nginx is needed.
On a terminal it opens the live UI and repeats the tour every 25 s until
you press q; otherwise (or with --no-tui) it runs it once and prints what
wstap concluded.
`;

/** Without a terminal: over in about 7 s. */
const QUICK: Pace = { hopIdleMs: 2000, slowHeartbeatMs: 2500 };
/** In the UI: slow enough to watch the countdowns; every verdict within about 20 s. */
const WATCHABLE: Pace = { hopIdleMs: 6000, slowHeartbeatMs: 7000 };
const ROUND_EVERY_MS = 25_000;

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
  const nginxLog = simulatedNginxLog();
  const session = await startDemoSession(app, capturePath, values.force === true, logger, demoContext(QUICK), nginxLog);
  const base = `ws://${session.address}`;
  process.stdout.write(`wstap demo: app on 127.0.0.1:${app.port}, wstap on ${session.address}; ${SCENARIOS.length} scenarios, about 7 s\n`);
  try {
    await runRound(base, { ...QUICK, nginxLog });
    await delay(200);
  } finally {
    await session.stop('demo finished');
    await app.close();
    fs.rmSync(path.dirname(nginxLog.path), { recursive: true, force: true });
  }
  // The session's last lines (written in batches) come before the summary, as they happened.
  await flushLogger(logger);
  process.stdout.write(renderSummary([...session.tracker.closed].sort((a, b) => a.conn - b.conn), demoContext(QUICK)));
  if (session.capturePath) process.stdout.write(`capture written to ${session.capturePath}\n`);
  return 0;
}

/** The simulated nginx's error log, in a private temporary directory (removed when the demo ends). */
function simulatedNginxLog(): SimulatedNginxLog {
  const log = new SimulatedNginxLog(path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-demo-nginx-')), 'error.log'));
  log.start();
  return log;
}

function startDemoSession(app: DemoApp, capturePath: string | null, force: boolean, logger: Logger, diagnosis: DiagnosisContext, nginxLog: SimulatedNginxLog): Promise<ProxySession> {
  return ProxySession.start({
    mode: 'http',
    listen: { kind: 'tcp', host: '127.0.0.1', port: 0 },
    target: parseTarget(`http://127.0.0.1:${app.port}`, 'http'),
    insecure: false,
    previewLimit: 256,
    capturePath,
    overwriteCapture: force,
    logger,
    drainSeconds: 0,
    diagnosis: diagnosisRecord({ name: 'demo', source: 'built-in' }, [], diagnosis),
    nginxErrorLog: { path: nginxLog.path, zone: LOCAL_TIME },
  });
}

async function runRound(base: string, pace: Pace, stopped: () => boolean = () => false): Promise<void> {
  const runs: Array<Promise<void>> = [];
  for (const scenario of SCENARIOS) {
    if (stopped()) break;
    // A scenario that fails (the demo is stopping) must not end the others.
    runs.push(scenario.run(base, pace).catch(() => undefined));
    await delay(50);
  }
  await Promise.all(runs);
}

/**
 * What wstap knows of the demo's path: the simulated hop, then the simulated
 * nginx behind it, in front of wstap, with the same timer (no profile
 * heartbeat: the checks go by what they see).
 */
function demoContext(pace: Pace): DiagnosisContext {
  const seconds = pace.hopIdleMs / 1000;
  return {
    timeouts: [
      { hop: 'demo-hop', setting: 'idle_timeout', seconds, measures: 'both-idle', where: 'client-side', action: 'fin' },
      { hop: 'nginx', setting: 'proxy_read_timeout', seconds, measures: 'both-idle', where: 'client-side', action: 'fin' },
    ],
    requiredHeaders: [],
    heartbeat: null,
  };
}

/** The demo in the live UI: rounds of scenarios until q. */
async function demoInTerminal(capturePath: string | null, force: boolean): Promise<number> {
  const { startLiveUi } = await import('./terminal-ui.js');
  const screenLog = createScreenLogger({ file: defaultLogFile() });
  const logger = screenLog.logger;
  const tempDir = capturePath ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-demo-'));
  const capture = capturePath ?? path.join(tempDir as string, 'capture.jsonl');
  const app = await startDemoApp();
  const nginxLog = simulatedNginxLog();
  const session = await startDemoSession(app, capture, force, logger, demoContext(WATCHABLE), nginxLog);
  const stopper = shutdownOnSignal(session, logger);
  const ui = startLiveUi(session, {
    target: `http://127.0.0.1:${app.port} (demo app)`,
    profile: null,
    diagnosis: demoContext(WATCHABLE),
    redact: true,
    payloads: 'preview',
    screenLog,
    onQuit: () => stopper.stop('quit'),
  });
  logger.info(`demo app on 127.0.0.1:${app.port}, wstap on ${session.address}; the tour (${SCENARIOS.map((x) => x.label).join(', ')}) every ${ROUND_EVERY_MS / 1000} s; Enter opens a connection`);
  const base = `ws://${session.address}`;
  // q and a signal both stop the rounds: they go through the same shutdown.
  const stopping = (): boolean => stopper.requested;
  const abort = new AbortController();
  const rounds = (async () => {
    while (!stopping()) {
      void runRound(base, { ...WATCHABLE, signal: abort.signal, nginxLog }, stopping);
      for (let waited = 0; waited < ROUND_EVERY_MS && !stopping(); waited += 250) await delay(250);
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
  fs.rmSync(path.dirname(nginxLog.path), { recursive: true, force: true });
  await screenLog.close();
  return code;
}

function verdict(a: CloseAttribution): string {
  if (!a.first) return 'no close evidence';
  const idle = a.idleBeforeCloseMs;
  const silence = idle ? ` after ${seconds(Math.min(idle.client, idle.upstream))} of both-way silence` : '';
  if (a.orderUnknown) return `close order unknown: ${describeEvidence(a.first)} recorded first while ${a.orderUnknown.pausedSide} was not being read`;
  return `closed by ${a.closedBy}: ${describeEvidence(a.first)}${silence}`;
}

/** The demo's closing table: per connection, what it was meant to show, what wstap concluded and from what. */
export function renderSummary(summaries: ConnectionSummary[], diagnosis: DiagnosisContext): string {
  const lines = ['', 'What wstap saw:'];
  for (const s of summaries) {
    const label = demoLabel(s) ?? '';
    const handshake = s.handshakeRequest ?? s.handshakeLike?.request;
    // A plain HTTP connection: its last answered exchange (the log has it only at debug: not a notable event).
    const plain = !handshake && s.lastAnswered ? `${s.lastAnswered.method} ${printable(s.lastAnswered.url)}${s.httpExchanges > 1 ? ` (the last of ${s.httpExchanges} exchanges)` : ''}` : null;
    const request = handshake ? `${handshake.method} ${printable(handshake.url)}` : (plain ?? (s.httpExchanges > 0 ? `${s.httpExchanges} HTTP exchange(s)` : 'tcp'));
    const answer = s.handshakeResponse?.statusCode ?? s.handshakeLike?.response?.statusCode ?? (plain !== null ? (s.lastStatus ?? undefined) : undefined);
    const status = answer !== undefined ? ` -> ${answer}${s.handshakeLike ? ' (as plain HTTP)' : ''}` : '';
    const frames = s.handshakeResponse?.upgraded ? `, frames ${s.directions.client.frames} up / ${s.directions.upstream.frames} down` : '';
    const ping = s.pings.at(-1);
    const rtt = ping ? `, ping rtt ${ping.rttMs.toFixed(2)} ms` : '';
    lines.push(`  #${s.conn} ${label.padEnd(15)} ${request}${status}${frames}${rtt}`);
    const about = SCENARIOS.find((x) => x.label === label)?.about;
    if (about) lines.push(`     scenario: ${about}`);
    if (s.handshakeRequest) lines.push(`     ${verdict(attributionOf(s))}`);
    for (const f of diagnoseConnection(factsOf(s), diagnosis)) {
      if (f.id === 'timeout.none') continue;
      lines.push(`     ${f.id}: ${f.message}`);
      // What named the hop when two had the same timer: nginx's log line, or its absence.
      if (f.id.startsWith('timeout.')) for (const e of f.evidence.filter((x) => x.startsWith('ruled out: ') && x.includes("nginx's error log"))) lines.push(`       ${e}`);
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
