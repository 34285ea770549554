import type { Logger } from 'pino';

/** Exit status after an internal error nothing else caught (sysexits.h EX_SOFTWARE). */
export const EXIT_INTERNAL_ERROR = 70;

export interface LastResortOptions {
  logger: Logger;
  /** Gives the terminal back (or lets go of it, when it is gone) before anything is said on it. */
  closeUi(): void;
  /** Writes out what the logger buffers (the UI's log file is written asynchronously). */
  flushLog(): void;
  /** Writes out every event recorded so far (ProxySession.flushSync). */
  flushCapture(): void;
  /** The logger writes to a file (the UI was up): say it on stderr too, where the user looks. */
  alsoStderr(): boolean;
}

/**
 * The proxy's last resort: an exception no handler caught, or a rejected
 * promise nobody awaited, is a bug of ours outside every place that contains
 * faults (ConnectionContext, ProxySession.record). The process cannot be
 * trusted to go on, so it says why (the stack, in the log; on stderr when
 * the log cannot take it or is a file), writes out the capture
 * synchronously so every event recorded before is on disk, and exits with
 * EXIT_INTERNAL_ERROR. A second fault while doing that exits at once.
 */
export function installLastResort(options: LastResortOptions): void {
  let handling = false;
  const handle = (reason: unknown, origin: string): void => {
    if (handling) {
      try {
        options.flushCapture();
      } finally {
        process.exit(EXIT_INTERNAL_ERROR);
      }
    }
    handling = true;
    const err = reason instanceof Error ? reason : new Error(`non-error thrown: ${String(reason)}`);
    attempt(() => options.closeUi());
    const logged = attempt(() => {
      options.logger.fatal({ err, origin }, `internal error (${origin}): ${err.message}; the capture is written out and wstap exits with status ${EXIT_INTERNAL_ERROR}`);
      options.flushLog();
    });
    if (!logged || options.alsoStderr()) {
      attempt(() => process.stderr.write(`wstap: internal error (${origin}); exiting with status ${EXIT_INTERNAL_ERROR}\n${err.stack ?? err.message}\n`));
    }
    attempt(() => options.flushCapture());
    process.exit(EXIT_INTERNAL_ERROR);
  };
  process.on('uncaughtException', (err, origin) => handle(err, origin));
  process.on('unhandledRejection', (reason) => handle(reason, 'unhandledRejection'));
}

function attempt(run: () => void): boolean {
  try {
    run();
    return true;
  } catch {
    return false;
  }
}
