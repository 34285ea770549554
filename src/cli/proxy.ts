import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { createLogger, createScreenLogger, type LogFormat } from '../log.js';
import { endpointText, ListenPathError, type ListenEndpoint } from '../relay/listen-endpoint.js';
import { listenerTlsContext, TlsMaterialError } from '../relay/tls-termination.js';
import { parseTarget, TargetError } from '../relay/target.js';
import {
  notLoopbackWarning,
  parseArgsStrict,
  parseChoice,
  parseListen,
  parseNonNegativeInteger,
  parseNonNegativeNumber,
  parseByteSize,
  parsePayloadMode,
} from './option-values.js';
import { heartbeatSetupFindings } from '../analysis/heartbeat-rules.js';
import type { DiagnosisRecord } from '../analysis/diagnosis-record.js';
import type { PayloadMode } from '../har/har-types.js';
import { ProxySession } from './proxy-session.js';
import { installLastResort } from './last-resort.js';
import { catchSignalsEarly, shutdownOnSignal } from './shutdown.js';
import { TerminalLoss } from './terminal-loss.js';
import type { RunningUi } from './terminal-ui.js';
import { armUncaughtFault, testFaultsFromEnv } from './test-faults.js';
import { captureKeptLine, keepsTemporaryCapture } from './temporary-capture.js';
import { diagnosisRecordOf, profileFromOption } from './profile-option.js';
import { metricsOptionOf, metricsStartFailure, type MetricsOption } from './metrics-option.js';
import type { RunningMetrics } from './metrics-endpoint.js';
import { instanceOf } from './instance-name.js';
import { defaultLogFile, terminalAvailable } from './ui-prerequisites.js';
import { UsageError } from './usage-error.js';
import { VERSION } from './version.js';
import { PROXY_HELP } from './proxy-help.js';
import { LOCAL_TIME } from '../nginx/error-log-line.js';


const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

export async function runProxy(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    target: { type: 'string' },
    listen: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    tcp: { type: 'boolean' },
    capture: { type: 'string' },
    har: { type: 'string' },
    payloads: { type: 'string' },
    'no-redact': { type: 'boolean' },
    force: { type: 'boolean' },
    rotate: { type: 'string' },
    keep: { type: 'string' },
    'min-free': { type: 'string' },
    'preview-bytes': { type: 'string' },
    drain: { type: 'string' },
    'head-timeout': { type: 'string' },
    'connect-timeout': { type: 'string' },
    insecure: { type: 'boolean' },
    'no-tui': { type: 'boolean' },
    timeout: { type: 'string', multiple: true },
    profile: { type: 'string' },
    'probe-token': { type: 'string' },
    metrics: { type: 'string' },
    'metrics-path-group': { type: 'string', multiple: true },
    'metrics-no-process': { type: 'boolean' },
    instance: { type: 'string' },
    'log-file': { type: 'string' },
    'log-format': { type: 'string' },
    'log-level': { type: 'string' },
    'nginx-error-log': { type: 'string' },
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
  const listenTls = tlsFromOptions(values['tls-cert'], values['tls-key']);
  const previewLimit = parseNonNegativeInteger('--preview-bytes', typeof values['preview-bytes'] === 'string' ? values['preview-bytes'] : '256');
  const drainSeconds = parseNonNegativeNumber('--drain', typeof values.drain === 'string' ? values.drain : '0');
  const headTimeoutSeconds = parseNonNegativeNumber('--head-timeout', typeof values['head-timeout'] === 'string' ? values['head-timeout'] : '60');
  const connectTimeoutSeconds = parseNonNegativeNumber('--connect-timeout', typeof values['connect-timeout'] === 'string' ? values['connect-timeout'] : '60');
  const format = parseChoice<LogFormat>('--log-format', typeof values['log-format'] === 'string' ? values['log-format'] : 'auto', ['auto', 'pretty', 'json']);
  const level = parseChoice('--log-level', typeof values['log-level'] === 'string' ? values['log-level'] : 'info', LOG_LEVELS);
  const payloads = parsePayloadMode(values.payloads);
  const harPath = typeof values.har === 'string' ? values.har : null;
  if (harPath && values.force !== true && fs.existsSync(harPath)) {
    throw new UsageError(`--har ${harPath} already exists; choose another name or pass --force`);
  }
  const capture = captureLimits(values);
  const probeToken = probeTokenOf(values['probe-token'], mode);
  const nginxErrorLog = typeof values['nginx-error-log'] === 'string' ? nginxLogOption(values['nginx-error-log']) : null;
  const metricsOption = metricsOptionOf(values.metrics, values['metrics-path-group'], values['metrics-no-process']);
  const instance = instanceOf(values.instance, listen);
  // Recorded in session.start: view and export later judge the capture as this run does.
  const recorded = diagnosisRecordOf(profile, values.profile, values.timeout);
  const diagnosis = recorded.context;
  const redact = values['no-redact'] !== true;
  const testFaults = testFaultsFromEnv();
  const screenLog = values['no-tui'] !== true && terminalAvailable()
    ? createScreenLogger({ level, file: typeof values['log-file'] === 'string' ? values['log-file'] : defaultLogFile() })
    : null;
  const logger = screenLog?.logger ?? createLogger({ format, level });
  // From here on the terminal may go away (SIGHUP, EIO) without taking the relay with it.
  const terminal = new TerminalLoss({ logger, logFile: screenLog?.file ?? null });
  let session: ProxySession | null = null;
  let ui: RunningUi | null = null;
  installLastResort({
    logger,
    closeUi: () => (terminal.reason ? ui?.abandon() : ui?.close()),
    flushLog: () => screenLog?.flushSync(),
    flushCapture: () => session?.flushSync(),
    alsoStderr: () => screenLog !== null && terminal.reason === null,
  });
  // Loaded only when shown (see ui-prerequisites.ts), and before the session starts so the UI misses nothing.
  const terminalUi = screenLog ? await import('./terminal-ui.js') : null;
  // --har and the UI's export key need a capture; without --capture it is a private temporary one.
  const tempDir = (harPath || screenLog) && typeof values.capture !== 'string' ? fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-')) : null;
  const capturePath = typeof values.capture === 'string' ? values.capture : tempDir ? path.join(tempDir, 'capture.jsonl') : null;

  // A unix socket is local by nature; who may use it is its mode's business (0660).
  const exposed = listen.kind === 'tcp' ? notLoopbackWarning(listen.host, `send traffic through wstap to ${target.href}`) : null;
  if (exposed) logger.warn(exposed);
  if (values.insecure && target.tls) {
    logger.warn(`--insecure: the certificate of ${target.href} is NOT verified`);
  }

  const signals = catchSignalsEarly({ hangup: true });
  let metrics: RunningMetrics | null = null;
  try {
    // Before the session: a metrics port in use stops wstap before any traffic.
    if (metricsOption) metrics = await (await import('./metrics-endpoint.js')).startMetrics(metricsOption, () => session, { mode, instance }, logger);
  } catch (err) {
    signals.release();
    screenLog?.release();
    await screenLog?.close();
    if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
    return metricsStartFailure(err as NodeJS.ErrnoException, logger, metricsOption as MetricsOption);
  }
  try {
    session = await ProxySession.start({
      mode,
      listen,
      tls: listenTls,
      target,
      insecure: values.insecure === true,
      previewLimit,
      capturePath,
      overwriteCapture: values.force === true,
      ...capture,
      logger,
      drainSeconds,
      headTimeoutMs: headTimeoutSeconds * 1000,
      connectTimeoutMs: connectTimeoutSeconds * 1000,
      diagnosis: recorded,
      testObserverFault: testFaults.observe,
      ...(probeToken !== null ? { probeToken } : {}),
      nginxErrorLog,
      instance,
    });
  } catch (err) {
    await metrics?.server.close();
    signals.release();
    if (tempDir) fs.rmSync(tempDir, { recursive: true, force: true });
    screenLog?.release();
    await screenLog?.close();
    return startFailure(err as NodeJS.ErrnoException, logger, listen, capturePath);
  }
  if (metrics) metrics.attach(session);
  if (session.capturePath && !tempDir) logger.info(`capturing to ${session.capturePath}`);
  // Said once, before any traffic: every quiet connection of the session will meet it.
  for (const finding of heartbeatSetupFindings(diagnosis.heartbeat, diagnosis.timeouts)) {
    logger.warn({ finding }, `${profile ? `profile ${profile.name}: ` : ''}${finding.message}; fix: ${finding.fix}`);
  }
  if (testFaults.uncaughtAfterOpen !== null) armUncaughtFault(session, testFaults.uncaughtAfterOpen);
  const stopper = shutdownOnSignal(session, logger, signals);
  ui = screenLog && terminalUi
    ? terminalUi.startLiveUi(session, { target: target.href, profile: profile?.name ?? null, diagnosis, redact, payloads, screenLog, onQuit: () => stopper.stop('quit') })
    : null;
  const liveUi = ui;
  if (liveUi) terminal.watchUi(() => liveUi.abandon());
  signals.forwardHangupTo(() => terminal.lost('SIGHUP'));
  let code = await stopper.done;
  // Scraped until the end: the last scrape sees the shutdown's closes.
  await metrics?.server.close();
  terminal.unwatchUi();
  // After the terminal went away nothing more is said on it: the log file has it all.
  if (terminal.reason === null) {
    ui?.close();
    if (screenLog) {
      screenLog.release();
      process.stderr.write(`wstap: log written to ${screenLog.file}\n`);
    }
  }
  const harWritten = harPath && capturePath ? await writeHarAtExit(capturePath, harPath, { overwrite: values.force === true, redact, payloads, diagnosis: recorded }, logger) : null;
  if (harWritten === false) code = 1;
  if (tempDir && capturePath && keepsTemporaryCapture({ ui: screenLog !== null, harWritten })) {
    // The terminal may be gone (SIGHUP): then the log file says where the capture is.
    if (screenLog && terminal.reason === null) process.stderr.write(captureKeptLine(capturePath));
    else if (screenLog) logger.info(`capture kept at ${capturePath}`);
    else logger.warn(`capture kept at ${capturePath}: the HAR could not be written from it`);
  } else if (tempDir) {
    fs.rmSync(tempDir, { recursive: true, force: true });
  }
  await screenLog?.close();
  return code;
}

/** --nginx-error-log FILE: a file (or one to come, in a directory that exists), read in this process's time zone. */
function nginxLogOption(file: string): { path: string; zone: typeof LOCAL_TIME } {
  let isFile: boolean;
  try {
    isFile = fs.statSync(file).isFile();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UsageError(`--nginx-error-log ${file}: ${(err as Error).message}`);
    if (!fs.existsSync(path.dirname(path.resolve(file)))) throw new UsageError(`--nginx-error-log ${file}: the directory ${path.dirname(path.resolve(file))} does not exist`);
    return { path: file, zone: LOCAL_TIME };
  }
  if (!isFile) throw new UsageError(`--nginx-error-log ${file}: not a file`);
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch (err) {
    throw new UsageError(`--nginx-error-log ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return { path: file, zone: LOCAL_TIME };
}

/** Smallest --rotate: a header line and a good number of events per file. */
const MIN_ROTATE_BYTES = 4096;

/** --rotate, --keep and --min-free, checked against each other. */
function captureLimits(values: Record<string, unknown>): { rotateBytes?: number; keepFiles?: number; minFreeBytes?: number } {
  const text = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const limits: { rotateBytes?: number; keepFiles?: number; minFreeBytes?: number } = {};
  const rotate = text('rotate');
  const keep = text('keep');
  const minFree = text('min-free');
  if (rotate !== undefined) {
    if (typeof values.capture !== 'string') throw new UsageError('--rotate needs --capture FILE');
    limits.rotateBytes = parseByteSize('--rotate', rotate);
    if (limits.rotateBytes < MIN_ROTATE_BYTES) throw new UsageError(`--rotate "${rotate}" is too small: at least 4K (each file starts with a header line)`);
  }
  if (keep !== undefined) {
    if (rotate === undefined) throw new UsageError('--keep needs --rotate SIZE');
    limits.keepFiles = parseNonNegativeInteger('--keep', keep);
    if (limits.keepFiles < 1) throw new UsageError(`--keep "${keep}" must be at least 1`);
  }
  if (minFree !== undefined) limits.minFreeBytes = parseByteSize('--min-free', minFree);
  return limits;
}

async function writeHarAtExit(
  capturePath: string,
  harPath: string,
  settings: { overwrite: boolean; redact: boolean; payloads: PayloadMode; diagnosis: DiagnosisRecord },
  logger: Logger,
): Promise<boolean> {
  try {
    const { exportCapture } = await import('../har/export-capture.js');
    const stats = await exportCapture({
      capturePath,
      harPath,
      ...settings,
      creatorVersion: VERSION,
      onWarning: (w) => logger.warn(`${w.path}${w.line === null ? '' : `:${w.line}`}: ${w.message}`),
      // A rotated capture: which files the HAR covers, and that --keep deleted the earlier ones.
      onNote: (note) => logger.info(`${harPath}: ${note}`),
    });
    logger.info({ har: harPath, entries: stats.entries, messages: stats.messages }, `wrote ${harPath}: ${stats.entries} entries, ${stats.messages} messages`);
    return true;
  } catch (err) {
    logger.error({ err }, `could not write ${harPath}: ${(err as Error).message}`);
    return false;
  }
}

/** `--probe-token`: long enough not to be guessed in a few tries, and a valid header value. */
function probeTokenOf(value: unknown, mode: 'http' | 'tcp'): string | null {
  if (value === undefined) return null;
  const token = String(value);
  if (mode === 'tcp') throw new UsageError('--probe-token needs HTTP: with --tcp wstap reads no request heads');
  if (token.length < 8) throw new UsageError('--probe-token must have at least 8 characters');
  if (!/^[\x21-\x7e]+$/.test(token)) throw new UsageError('--probe-token may hold only printable ASCII characters, no spaces');
  return token;
}

/** --tls-cert and --tls-key, both or neither: the listener's TLS context, or null for plaintext. */
function tlsFromOptions(certFile: unknown, keyFile: unknown): tls.SecureContext | null {
  if (certFile === undefined && keyFile === undefined) return null;
  if (typeof certFile !== 'string' || typeof keyFile !== 'string') {
    throw new UsageError(`${certFile === undefined ? '--tls-key' : '--tls-cert'} needs ${certFile === undefined ? '--tls-cert' : '--tls-key'} too: TLS takes both a certificate and its key`);
  }
  const read = (flag: string, file: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new UsageError(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  const cert = read('--tls-cert', certFile);
  const key = read('--tls-key', keyFile);
  try {
    return listenerTlsContext(cert, key);
  } catch (err) {
    if (err instanceof TlsMaterialError) throw new UsageError(`--tls-cert ${certFile} and --tls-key ${keyFile}: ${err.message}`);
    throw err;
  }
}

/** Errors of bind and listen (or of probing a unix socket path) that say what to change rather than a bug. */
const LISTEN_ERRORS = new Set(['EACCES', 'EADDRNOTAVAIL', 'EPERM', 'ENOENT', 'ENOTDIR', 'EROFS', 'ENAMETOOLONG', 'EINVAL']);

function startFailure(err: NodeJS.ErrnoException, logger: Logger, listen: ListenEndpoint, capture: string | null): number {
  const where = endpointText(listen);
  if (err instanceof ListenPathError) {
    logger.error(`cannot listen on ${where}: ${err.message}`);
  } else if (err.code === 'EEXIST' && capture) {
    // A rotated capture's leftover segment names itself in `path`.
    logger.error(`capture file ${err.path ?? capture} already exists; choose another name or pass --force to overwrite it`);
  } else if (err.code && capture && err.syscall === 'open') {
    logger.error(`cannot create capture file ${capture}: ${err.message}`);
  } else if (err.code && capture && err.syscall === 'statfs') {
    logger.error(`cannot read the free space of the disk holding ${capture} for --min-free (${err.message}); --min-free 0 turns the guard off`);
  } else if (err.code === 'EADDRINUSE') {
    logger.error(`cannot listen on ${where}: the ${listen.kind === 'tcp' ? 'port' : 'socket path'} is in use`);
  } else if (listen.kind === 'unix' && err.code && !fs.existsSync(path.dirname(listen.path))) {
    // libuv reports a missing directory as EACCES.
    logger.error(`cannot listen on ${where}: the directory ${path.dirname(listen.path)} does not exist`);
  } else if (err.code && LISTEN_ERRORS.has(err.code)) {
    logger.error(`cannot listen on ${where}: ${err.message}`);
  } else {
    throw err;
  }
  return 2;
}
