import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export type LogFormat = 'auto' | 'pretty' | 'json';

/**
 * pino-pretty, loaded the first time a human-readable line is wanted: JSON
 * logging (services, CI, the benchmarks) never carries it in its heap.
 */
function prettyModule(): typeof PinoPretty {
  return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
}

export interface LoggerOptions {
  format: LogFormat;
  level?: string;
  /** File descriptor to write to; logs go to stderr so stdout stays for results. */
  fd?: number;
}

/** Log bytes that may wait for a slow stderr before lines are dropped (and counted). */
export const MAX_PENDING_LOG_BYTES = 4 * 1024 * 1024;

/** sonic-boom writes once this many bytes wait (its minLength) ... */
const BATCH_BYTES = 4096;
/** ... and at most this long after they were logged when it is quiet. */
const BATCH_WAIT_MS = 100;
/** Lines are joined here up to this many characters before sonic-boom gets them, to write in one call (under its maxWrite, 16 KiB). */
const HANDOVER_CHARS = 12 * 1024;

/** How long the flush at exit keeps retrying a full pipe. */
const EXIT_FLUSH_MS = 1000;

/**
 * pino set-up for line output: human lines on a terminal, JSON lines
 * otherwise. pino-pretty formats in this process (no transport worker).
 *
 * Lines are written asynchronously, in batches: a synchronous write to a
 * terminal or a pipe that nobody reads (a paused pager, a stuck log shipper)
 * would stop the event loop, and the relay with it (principle 3), and under
 * load a write per line was the proxy's largest cost on plain HTTP (bench
 * (e)). A line waits BATCH_WAIT_MS at most; past MAX_PENDING_LOG_BYTES
 * waiting, lines are dropped, and one line says how many once the reader
 * catches up. Whatever waits is written out synchronously when the process
 * exits, however it exits (process 'exit').
 */
export function createLogger(options: LoggerOptions): Logger {
  const fd = options.fd ?? 2;
  const level = options.level ?? 'info';
  const isTty = fd === 2 ? process.stderr.isTTY === true : fd === 1 ? process.stdout.isTTY === true : false;
  const pretty = options.format === 'pretty' || (options.format === 'auto' && isTty);
  let exitDeadline = Number.POSITIVE_INFINITY;
  const destination = quietOnError(
    batchedWithin(
      BATCH_WAIT_MS,
      pino.destination({
        dest: fd,
        sync: false,
        minLength: BATCH_BYTES,
        maxLength: MAX_PENDING_LOG_BYTES,
        // A full pipe (EAGAIN) is retried for as long as it takes, except by the flush at exit past its deadline.
        retryEAGAIN: () => Date.now() < exitDeadline,
      }),
    ),
  );
  let logger: Logger;
  if (!pretty) {
    logger = pino({ level, base: null, timestamp: isoTimeField }, destination);
  } else {
    // pino-pretty as a formatter over our destination, not its own stream
    // pipeline: a failing descriptor then costs the lines, never the pipeline.
    const format = prettyModule().prettyFactory({ ...PRETTY_LINE, colorize: isTty && !process.env.NO_COLOR });
    const stream = { write: (line: string): void => void destination.write(format(line)) };
    logger = pino({ level, base: null }, stream);
  }
  countDrops(destination, logger);
  // Every synchronous flush is an exit's (pino's own at 'exit', ours below, a second signal's): a full pipe is retried
  // until the deadline, then the lines are given up. Without it, pino's flush at exit retried for ever, and a SIGTERM'd
  // wstap whose log reader had stalled never exited (test/e2e/log-backpressure.test.ts).
  const flushSyncAtExit = destination.flushSync.bind(destination);
  destination.flushSync = (): void => {
    exitDeadline = Math.min(exitDeadline, Date.now() + EXIT_FLUSH_MS);
    try {
      flushSyncAtExit();
    } catch {
      // A reader that stayed away past the deadline, or a descriptor that failed: there is nowhere left to say it.
    }
  };
  process.once('exit', () => destination.flushSync());
  return logger;
}

/** Resolves once the lines `logger` holds are written (before output on stdout that should follow them). */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

/**
 * A destination whose lines, once one is waiting, are written within `waitMs`
 * even when fewer than its minLength bytes wait. Lines are joined here and
 * handed to sonic-boom HANDOVER_CHARS at a time: sonic-boom measures the
 * UTF-8 length of its last buffer on every write, so a line cost it in
 * proportion to the lines already waiting, and larger writes cost less a
 * line (with a line per exchange, 48.4 -> 42.9 µs of CPU per request in
 * bench/http-cpu.mjs, A/B in the same rounds).
 */
function batchedWithin(waitMs: number, destination: Destination): Destination {
  const write = destination.write.bind(destination);
  const flushAsync = destination.flush.bind(destination);
  const flushSync = destination.flushSync.bind(destination);
  let pending = '';
  let timer: NodeJS.Timeout | null = null;
  const handOver = (): void => {
    if (pending === '') return;
    const batch = pending;
    pending = '';
    write(batch);
  };
  const flush = (): void => {
    timer = null;
    try {
      handOver();
      flushAsync();
    } catch {
      // Destroyed (a failed descriptor): nothing to write to.
    }
  };
  destination.write = (data: string): boolean => {
    pending += data;
    if (timer === null) {
      timer = setTimeout(flush, waitMs);
      timer.unref();
    }
    if (pending.length >= HANDOVER_CHARS) handOver();
    return true;
  };
  destination.flush = (cb?: (err?: Error) => void): void => {
    try {
      handOver();
    } catch {
      // Destroyed: flushAsync says so to cb.
    }
    flushAsync(cb);
  };
  destination.flushSync = (): void => {
    if (pending !== '') {
      // Into sonic-boom's buffer without starting an asynchronous write there: at exit that write would never finish,
      // and the last lines (a shutdown's closes and findings) with it. Its flushSync then writes them in order.
      const held = destination as unknown as { minLength: number };
      const minLength = held.minLength;
      held.minLength = Number.MAX_SAFE_INTEGER;
      try {
        handOver();
      } finally {
        held.minLength = minLength;
      }
    }
    flushSync();
  };
  return destination;
}

/** Lines dropped while the buffer was full are counted and, once it has drained, said in one line. */
function countDrops(destination: Destination, logger: Logger): void {
  let dropped = 0;
  // What sonic-boom drops is a batch of lines (see batchedWithin): each is counted.
  destination.on('drop', (data: string) => {
    for (let at = data.indexOf('\n'); at !== -1; at = data.indexOf('\n', at + 1)) dropped++;
  });
  destination.on('drain', () => {
    if (dropped === 0) return;
    const lines = dropped;
    dropped = 0;
    logger.warn({ droppedLogLines: lines }, `${lines} log line${lines === 1 ? ' was' : 's were'} dropped: ${MAX_PENDING_LOG_BYTES / 2 ** 20} MiB of lines waited for a reader of this output (the capture file has every event)`);
  });
}

type Destination = ReturnType<typeof pino.destination>;

let isoTimeMs = -1;
let isoTimeText = '';

/**
 * pino's isoTime, made once per millisecond: under load many lines share a
 * millisecond, and formatting the date was a tenth of a log line's cost.
 */
function isoTimeField(): string {
  const now = Date.now();
  if (now !== isoTimeMs) {
    isoTimeMs = now;
    isoTimeText = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoTimeText;
}

/**
 * A destination that goes quiet, instead of throwing into whoever logged,
 * once its descriptor fails: a terminal that hung up (EIO), a pipe whose
 * reader left (EPIPE). Lines after that are dropped, not buffered: the relay
 * outlives its terminal (README, Reliability).
 */
function quietOnError(destination: Destination): Destination {
  destination.on('error', () => {
    const drop = (): boolean => true;
    Object.assign(destination, { write: drop, flushSync: () => undefined });
  });
  return destination;
}

const PRETTY_LINE = {
  translateTime: 'SYS:HH:MM:ss.l',
  ignore: 'pid,hostname',
  // The fields are for JSON consumers; the message already says it all.
  hideObject: true,
} as const;

/** The most recent formatted log lines, for the TUI's log pane. */
export class LogTail {
  readonly #lines: string[] = [];
  #version = 0;

  constructor(readonly capacity = 200) {}

  push(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > this.capacity) this.#lines.splice(0, this.#lines.length - this.capacity);
    this.#version++;
  }

  /** Changes whenever a line arrives, so a display knows to redraw. */
  get version(): number {
    return this.#version;
  }

  last(n: number): string[] {
    return this.#lines.slice(-n);
  }
}

export interface ScreenLogger {
  logger: Logger;
  /** Where every line goes while the UI owns the terminal (mode 0600). */
  file: string;
  tail: LogTail;
  /** The UI is gone: from now on lines also go to stderr, as without the UI. */
  release(): void;
  /** Writes out what is buffered now, synchronously (a process about to exit on a fault). */
  flushSync(): void;
  /** Writes out what is buffered; call before exiting. */
  close(): Promise<void>;
}

/**
 * pino while the TUI owns the screen: JSON lines to a file (asynchronous,
 * so logging never blocks the relay) and human lines into a small pane.
 * Nothing may write to the terminal under the UI, so pino-pretty runs here
 * as a formatter, not as a transport writing to a file descriptor.
 */
export function createScreenLogger(options: { level?: string; file: string }): ScreenLogger {
  const level = options.level ?? 'info';
  const tail = new LogTail();
  const paneLine = prettyModule().prettyFactory({ ...PRETTY_LINE, colorize: false });
  let stderrLine: ((input: string) => string) | null = null;
  const file = pino.destination({ dest: options.file, sync: false, mkdir: true, mode: 0o600 });
  const pane = {
    write(line: string): void {
      tail.push(paneLine(line).trimEnd());
      if (stderrLine) process.stderr.write(stderrLine(line));
    },
  };
  const logger = pino(
    { level, base: null, timestamp: isoTimeField },
    pino.multistream([
      { level: level as pino.Level, stream: file },
      { level: level as pino.Level, stream: pane },
    ]),
  );
  return {
    logger,
    file: options.file,
    tail,
    release() {
      const tty = process.stderr.isTTY === true;
      stderrLine = prettyModule().prettyFactory({ ...PRETTY_LINE, colorize: tty && !process.env.NO_COLOR });
    },
    flushSync() {
      // SonicBoom refuses before its file is open; nothing was written then anyway.
      if ((file as unknown as { fd: number }).fd >= 0) file.flushSync();
    },
    close() {
      return new Promise((resolve) => {
        const done = (): void => resolve();
        const end = (): void => {
          file.once('close', done);
          file.end();
        };
        // SonicBoom refuses to flush before its file is open.
        if ((file as unknown as { fd: number }).fd >= 0) end();
        else file.once('ready', end);
      });
    },
  };
}
