import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Logger } from 'pino';
import { createLogger, type LogFormat } from '../log.js';
import { parseTarget, TargetError } from '../relay/target.js';
import {
  isLoopback,
  parseChoice,
  parseListen,
  parseNonNegativeInteger,
  parseNonNegativeNumber,
} from './option-values.js';
import { ProxySession } from './proxy-session.js';
import { UsageError } from './usage-error.js';

export const PROXY_HELP = `Usage: wstap proxy --target URL [options]

Relays every connection to --target unchanged and records what it sees.

Options:
  --target URL          where to forward: http://, https://, ws://, wss://
                        (with --tcp: HOST:PORT or tcp://HOST:PORT)     [required]
  --listen [HOST:]PORT  where to listen                      [127.0.0.1:8066]
  --tcp                 raw TCP relay: no HTTP parsing, close evidence only
  --capture FILE        append every event to FILE (JSON lines, mode 0600)
  --force               overwrite an existing capture file
  --preview-bytes N     payload bytes kept per frame and message          [256]
  --drain SECONDS       on Ctrl-C, let live connections finish first        [0]
  --insecure            do not verify the upstream's TLS certificate
  --no-tui              line output instead of the terminal UI
  --log-format FORMAT   auto, pretty or json                             [auto]
  --log-level LEVEL     info, warn, error or debug                       [info]
  -h, --help            this help
`;

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

export interface ParsedArgs {
  values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  positionals: string[];
}

/** node:util parseArgs, strict, with its errors turned into one-line usage errors. */
export function parseArgsStrict(args: string[], options: NonNullable<ParseArgsConfig['options']>): ParsedArgs {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    // Node's messages are long and suggest "--" tricks; one plain line is enough.
    const message = (err as Error).message.split('\n')[0] ?? 'bad arguments';
    const ambiguous = /^Option '(-[-\w]+)[^']*' argument is ambiguous/.exec(message);
    if (ambiguous) throw new UsageError(`${ambiguous[1]} needs a value; for one that starts with "-", write ${ambiguous[1]}=VALUE`);
    throw new UsageError(message.replace(/\. To specify.*$/, ''));
  }
}

export async function runProxy(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    target: { type: 'string' },
    listen: { type: 'string' },
    tcp: { type: 'boolean' },
    capture: { type: 'string' },
    force: { type: 'boolean' },
    'preview-bytes': { type: 'string' },
    drain: { type: 'string' },
    insecure: { type: 'boolean' },
    'no-tui': { type: 'boolean' },
    'log-format': { type: 'string' },
    'log-level': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(PROXY_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (typeof values.target !== 'string') throw new UsageError('--target is required (e.g. --target http://127.0.0.1:8065)');
  const mode = values.tcp ? 'tcp' : 'http';
  let target;
  try {
    target = parseTarget(values.target, mode);
  } catch (err) {
    if (err instanceof TargetError) throw new UsageError(err.message);
    throw err;
  }
  const listen = parseListen(typeof values.listen === 'string' ? values.listen : '127.0.0.1:8066');
  const previewLimit = parseNonNegativeInteger('--preview-bytes', typeof values['preview-bytes'] === 'string' ? values['preview-bytes'] : '256');
  const drainSeconds = parseNonNegativeNumber('--drain', typeof values.drain === 'string' ? values.drain : '0');
  const format = parseChoice<LogFormat>('--log-format', typeof values['log-format'] === 'string' ? values['log-format'] : 'auto', ['auto', 'pretty', 'json']);
  const level = parseChoice('--log-level', typeof values['log-level'] === 'string' ? values['log-level'] : 'info', LOG_LEVELS);
  const logger = createLogger({ format, level });

  if (!isLoopback(listen.host)) {
    logger.warn(`listening on ${listen.host}, not loopback: anyone who can reach this address can send traffic through wstap to ${target.href}`);
  }
  if (values.insecure && target.tls) {
    logger.warn(`--insecure: the certificate of ${target.href} is NOT verified`);
  }

  let session: ProxySession;
  try {
    session = await ProxySession.start({
      mode,
      host: listen.host,
      port: listen.port,
      target,
      insecure: values.insecure === true,
      previewLimit,
      capturePath: typeof values.capture === 'string' ? values.capture : null,
      overwriteCapture: values.force === true,
      logger,
      drainSeconds,
    });
  } catch (err) {
    return startFailure(err as NodeJS.ErrnoException, logger, listen, typeof values.capture === 'string' ? values.capture : null);
  }
  if (session.capturePath) logger.info(`capturing to ${session.capturePath}`);
  return waitForSignal(session, logger);
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

/** Runs until SIGINT/SIGTERM; a second signal exits at once after a synchronous flush. */
function waitForSignal(session: ProxySession, logger: Logger): Promise<number> {
  return new Promise((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        logger.warn(`${signal} again: exiting now`);
        session.flushSync();
        process.exit(130);
      }
      logger.info(`${signal}: shutting down`);
      session.stop('signal').then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          session.flushSync();
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
