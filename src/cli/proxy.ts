import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { createLogger, createScreenLogger, type LogFormat } from '../log.js';
import { parseTarget, TargetError } from '../relay/target.js';
import {
  isLoopback,
  parseArgsStrict,
  parseChoice,
  parseListen,
  parseNonNegativeInteger,
  parseNonNegativeNumber,
  parsePayloadMode,
} from './option-values.js';
import { heartbeatSetupFindings } from '../analysis/heartbeat-rules.js';
import type { DiagnosisContext } from '../analysis/connection-diagnosis.js';
import type { PayloadMode } from '../har/har-types.js';
import { ProxySession } from './proxy-session.js';
import { catchSignalsEarly, shutdownOnSignal } from './shutdown.js';
import { captureKeptLine, keepsTemporaryCapture } from './temporary-capture.js';
import { diagnosisContextOf, profileFromOption } from './profile-option.js';
import { defaultLogFile, terminalAvailable } from './ui-prerequisites.js';
import { UsageError } from './usage-error.js';
import { VERSION } from './version.js';

export const PROXY_HELP = `Usage: wstap proxy --target URL [options]

Relays every connection to --target unchanged and records what it sees.

Options:
  --target URL          where to forward: http://, https://, ws://, wss://
                        (with --tcp: HOST:PORT or tcp://HOST:PORT)     [required]
  --listen [HOST:]PORT  where to listen                      [127.0.0.1:8066]
  --tcp                 raw TCP relay: no HTTP parsing, close evidence only
  --capture FILE        write every event to FILE, a new file (JSON lines,
                        mode 0600); an existing FILE is refused without --force.
                        Without it, the UI keeps its session in a private
                        temporary file and prints its path at exit
  --har FILE            at exit, write the session as a HAR file (see wstap export)
  --payloads MODE       none or preview: with --har, each message's first
                        --preview-bytes bytes (a longer one is marked with
                        _size), or sizes only                      [preview]
  --no-redact           with --har: keep secrets (redacted by default)
  --force               overwrite an existing capture or HAR file
  --preview-bytes N     payload bytes kept per frame and message          [256]
  --drain SECONDS       on Ctrl-C, let live connections finish first        [0]
  --head-timeout SECONDS
                        a client that has not sent a whole request head by then
                        is answered 408 (slowloris); 0 turns it off      [60]
  --insecure            do not verify the upstream's TLS certificate
  --profile NAME|FILE   the hops' timeouts and the app's heartbeat (wstap profiles
                        lists the shipped ones); flags override its values
  --timeout NAME=DUR[:MEASURE]
                        a hop's idle timeout, for the UI's countdowns; repeatable,
                        e.g. --timeout nginx.proxy_read_timeout=60s. MEASURE is
                        both-idle (default), client-idle, upstream-idle or lifetime
  --no-tui              line output instead of the terminal UI (the default
                        when stdout is not a terminal)
  --log-file FILE       with the UI: where log lines go [$TMPDIR/wstap-log-*/]
  --log-format FORMAT   auto, pretty or json                             [auto]
  --log-level LEVEL     info, warn, error or debug                       [info]
  -h, --help            this help
`;

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

export async function runProxy(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    target: { type: 'string' },
    listen: { type: 'string' },
    tcp: { type: 'boolean' },
    capture: { type: 'string' },
    har: { type: 'string' },
    payloads: { type: 'string' },
    'no-redact': { type: 'boolean' },
    force: { type: 'boolean' },
    'preview-bytes': { type: 'string' },
    drain: { type: 'string' },
    'head-timeout': { type: 'string' },
    insecure: { type: 'boolean' },
    'no-tui': { type: 'boolean' },
    timeout: { type: 'string', multiple: true },
    profile: { type: 'string' },
    'log-file': { type: 'string' },
    'log-format': { type: 'string' },
    'log-level': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(PROXY_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const profile = await profileFromOption(values.profile);
  const targetText = typeof values.target === 'string' ? values.target : profile?.proxy?.target;
  if (targetText === undefined) throw new UsageError('--target is required (e.g. --target http://127.0.0.1:8065)');
  const mode = values.tcp ? 'tcp' : 'http';
  let target;
  try {
    target = parseTarget(targetText, mode);
  } catch (err) {
    if (err instanceof TargetError) throw new UsageError(err.message);
    throw err;
  }
  const listen = parseListen(typeof values.listen === 'string' ? values.listen : (profile?.proxy?.listen ?? '127.0.0.1:8066'));
  const previewLimit = parseNonNegativeInteger('--preview-bytes', typeof values['preview-bytes'] === 'string' ? values['preview-bytes'] : '256');
  const drainSeconds = parseNonNegativeNumber('--drain', typeof values.drain === 'string' ? values.drain : '0');
  const headTimeoutSeconds = parseNonNegativeNumber('--head-timeout', typeof values['head-timeout'] === 'string' ? values['head-timeout'] : '60');
  const format = parseChoice<LogFormat>('--log-format', typeof values['log-format'] === 'string' ? values['log-format'] : 'auto', ['auto', 'pretty', 'json']);
  const level = parseChoice('--log-level', typeof values['log-level'] === 'string' ? values['log-level'] : 'info', LOG_LEVELS);
  const payloads = parsePayloadMode(values.payloads);
  const harPath = typeof values.har === 'string' ? values.har : null;
  if (harPath && values.force !== true && fs.existsSync(harPath)) {
    throw new UsageError(`--har ${harPath} already exists; choose another name or pass --force`);
  }
  const diagnosis = diagnosisContextOf(profile, values.timeout);
  const redact = values['no-redact'] !== true;
  const screenLog = values['no-tui'] !== true && terminalAvailable()
    ? createScreenLogger({ level, file: typeof values['log-file'] === 'string' ? values['log-file'] : defaultLogFile() })
    : null;
  const logger = screenLog?.logger ?? createLogger({ format, level });
  // Loaded only when shown (see ui-prerequisites.ts), and before the session starts so the UI misses nothing.
  const terminalUi = screenLog ? await import('./terminal-ui.js') : null;
  // --har and the UI's export key need a capture; without --capture it is a private temporary one.
  const tempDir = (harPath || screenLog) && typeof values.capture !== 'string' ? fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-')) : null;
  const capturePath = typeof values.capture === 'string' ? values.capture : tempDir ? path.join(tempDir, 'capture.jsonl') : null;

  if (!isLoopback(listen.host)) {
    logger.warn(`listening on ${listen.host}, not loopback: anyone who can reach this address can send traffic through wstap to ${target.href}`);
  }
  if (values.insecure && target.tls) {
    logger.warn(`--insecure: the certificate of ${target.href} is NOT verified`);
  }

  let session: ProxySession;
  const signals = catchSignalsEarly();
  try {
    session = await ProxySession.start({
      mode,
      host: listen.host,
      port: listen.port,
      target,
      insecure: values.insecure === true,
      previewLimit,
      capturePath,
      overwriteCapture: values.force === true,
      logger,
      drainSeconds,
      headTimeoutMs: headTimeoutSeconds * 1000,
      diagnosis,
    });
  } catch (err) {
    signals.release();
    if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
    screenLog?.release();
    await screenLog?.close();
    return startFailure(err as NodeJS.ErrnoException, logger, listen, capturePath);
  }
  if (session.capturePath && !tempDir) logger.info(`capturing to ${session.capturePath}`);
  // Said once, before any traffic: every quiet connection of the session will meet it.
  for (const finding of heartbeatSetupFindings(diagnosis.heartbeat, diagnosis.timeouts)) {
    logger.warn({ finding }, `${profile ? `profile ${profile.name}: ` : ''}${finding.message}; fix: ${finding.fix}`);
  }
  const stopper = shutdownOnSignal(session, logger, signals);
  const ui = screenLog && terminalUi
    ? terminalUi.startLiveUi(session, { target: target.href, profile: profile?.name ?? null, diagnosis, redact, payloads, screenLog, onQuit: () => stopper.stop('quit') })
    : null;
  let code = await stopper.done;
  ui?.close();
  if (screenLog) {
    screenLog.release();
    process.stderr.write(`wstap: log written to ${screenLog.file}\n`);
  }
  const harWritten = harPath && capturePath ? await writeHarAtExit(capturePath, harPath, { overwrite: values.force === true, redact, payloads, diagnosis }, logger) : null;
  if (harWritten === false) code = 1;
  if (tempDir && capturePath && keepsTemporaryCapture({ ui: screenLog !== null, harWritten })) {
    if (screenLog) process.stderr.write(captureKeptLine(capturePath));
    else logger.warn(`capture kept at ${capturePath}: the HAR could not be written from it`);
  } else if (tempDir) {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
  await screenLog?.close();
  return code;
}

async function writeHarAtExit(
  capturePath: string,
  harPath: string,
  settings: { overwrite: boolean; redact: boolean; payloads: PayloadMode; diagnosis: DiagnosisContext },
  logger: Logger,
): Promise<boolean> {
  try {
    const { exportCapture } = await import('../har/export-capture.js');
    const stats = await exportCapture({
      capturePath,
      harPath,
      ...settings,
      creatorVersion: VERSION,
      onWarning: (w) => logger.warn(`capture line ${w.line}: ${w.message}`),
    });
    logger.info({ har: harPath, entries: stats.entries, messages: stats.messages }, `wrote ${harPath}: ${stats.entries} entries, ${stats.messages} messages`);
    return true;
  } catch (err) {
    logger.error({ err }, `could not write ${harPath}: ${(err as Error).message}`);
    return false;
  }
}

function startFailure(err: NodeJS.ErrnoException, logger: Logger, listen: { host: string; port: number }, capture: string | null): number {
  if (err.code === 'EEXIST' && capture) {
    logger.error(`capture file ${capture} already exists; choose another name or pass --force to overwrite it`);
  } else if (err.code === 'EADDRINUSE') {
    logger.error(`cannot listen on ${listen.host}:${listen.port}: the port is in use`);
  } else if (err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') {
    logger.error(`cannot listen on ${listen.host}:${listen.port}: ${err.message}`);
  } else if (err.code && capture && err.syscall === 'open') {
    logger.error(`cannot create capture file ${capture}: ${err.message}`);
  } else {
    throw err;
  }
  return 2;
}
