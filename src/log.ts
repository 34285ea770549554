import pino, { type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export type LogFormat = 'auto' | 'pretty' | 'json';

export interface LoggerOptions {
  format: LogFormat;
  level?: string;
  /** File descriptor to write to; logs go to stderr so stdout stays for results. */
  fd?: number;
}

/**
 * pino set-up for line output: human lines on a terminal, JSON lines
 * otherwise. pino-pretty runs as a synchronous stream in this process, not
 * as a transport worker, so nothing is lost when the process exits right
 * after a shutdown line. (The TUI, which owns the screen, logs to a file
 * instead; see src/tui.)
 */
export function createLogger(options: LoggerOptions): Logger {
  const fd = options.fd ?? 2;
  const level = options.level ?? 'info';
  const isTty = fd === 2 ? process.stderr.isTTY === true : fd === 1 ? process.stdout.isTTY === true : false;
  const pretty = options.format === 'pretty' || (options.format === 'auto' && isTty);
  if (!pretty) {
    return pino({ level, base: null, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: fd, sync: true }));
  }
  const stream = pinoPretty({
    destination: fd,
    sync: true,
    colorize: isTty && !process.env.NO_COLOR,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    // The fields are for JSON consumers; the message already says it all.
    hideObject: true,
  });
  return pino({ level, base: null }, stream);
}
