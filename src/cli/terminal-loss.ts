import fs from 'node:fs';
import tty from 'node:tty';
import type { Logger } from 'pino';

export interface TerminalLossOptions {
  logger: Logger;
  /** With the UI: the file its log goes to (it still does afterwards). */
  logFile: string | null;
}

/**
 * The relay outlives its terminal. A hangup (SIGHUP: the terminal closed, an
 * SSH session dropped) and the terminal vanishing without one (stdin ending
 * or failing under the UI, stdout or stderr failing with EIO or EPIPE) are
 * the same thing: the UI, if up, is let go of without another byte written
 * to the terminal, one log line says wstap goes on headless, and it does,
 * until SIGINT or SIGTERM. Writes to stdout and stderr after that fail
 * quietly instead of throwing ('error' listeners), as any write to a dead
 * terminal would.
 */
export class TerminalLoss {
  readonly #options: TerminalLossOptions;
  #reason: string | null = null;
  #abandonUi: (() => void) | null = null;
  readonly #onStdin = (what: string) => (err?: NodeJS.ErrnoException) => this.lost(`stdin ${err?.code ?? what}`);
  readonly #stdinListeners: Array<[string, (err?: NodeJS.ErrnoException) => void]> = [
    ['end', this.#onStdin('ended')],
    ['close', this.#onStdin('closed')],
    ['error', this.#onStdin('error')],
  ];

  /** The standard descriptors that were terminals while it was there. */
  readonly #terminalFds: number[] = [0, 1, 2].filter((fd) => tty.isatty(fd));

  constructor(options: TerminalLossOptions) {
    this.#options = options;
    // Whether or not the loss was noticed (a terminal can die without a SIGHUP reaching us).
    process.once('exit', () => this.#detachDeadStdio());
    process.stdout.on('error', (err: NodeJS.ErrnoException) => this.lost(`stdout ${err.code ?? err.message}`));
    process.stderr.on('error', (err: NodeJS.ErrnoException) => this.lost(`stderr ${err.code ?? err.message}`));
  }

  /** Why the terminal is gone, or null while it is there. */
  get reason(): string | null {
    return this.#reason;
  }

  /**
   * At exit Node restores the terminal modes of the standard descriptors it
   * started with, and aborts (status 134) when that fails, as it does on a
   * hung-up terminal (EIO). It skips a descriptor that now names another
   * file, so each one that was a terminal and is one no longer (a hung-up
   * terminal answers no terminal request) is pointed at /dev/null first
   * (close, then open: the lowest free descriptor is the one just closed).
   * A live terminal is left alone, for Node to restore.
   */
  #detachDeadStdio(): void {
    for (const fd of this.#terminalFds) {
      if (tty.isatty(fd)) continue;
      try {
        fs.closeSync(fd);
        const reopened = fs.openSync('/dev/null', fd === 0 ? 'r' : 'w');
        if (reopened !== fd) fs.closeSync(reopened);
      } catch {
        // Closed is enough: Node skips a descriptor it cannot stat.
      }
    }
  }

  /** The UI is up on the terminal: stdin ending or failing means the terminal is gone; `abandon` lets go of the UI. */
  watchUi(abandon: () => void): void {
    this.#abandonUi = abandon;
    for (const [event, listener] of this.#stdinListeners) process.stdin.on(event, listener);
  }

  /** The UI is closing on purpose (q, a signal): stdin going away from now on is no loss. */
  unwatchUi(): void {
    if (this.#abandonUi === null) return;
    this.#abandonUi = null;
    for (const [event, listener] of this.#stdinListeners) process.stdin.off(event, listener);
  }

  /** The terminal is gone (`why`: SIGHUP, stdin EIO, ...); acts once, later calls do nothing. */
  lost(why: string): void {
    if (this.#reason !== null) return;
    this.#reason = why;
    const abandon = this.#abandonUi;
    if (abandon) {
      this.unwatchUi();
      // stdin stays with an 'error' listener: a dead terminal may still report a failed read after this.
      process.stdin.on('error', () => undefined);
      try {
        abandon();
      } catch {
        // A UI half torn down by its dead terminal is still gone; relaying is what matters.
      }
    }
    const where = this.#options.logFile ? `, logging to ${this.#options.logFile},` : '';
    try {
      this.#options.logger.warn(
        { terminal: 'gone', why },
        `terminal gone (${why})${abandon ? ': the UI is closed' : ''}; wstap goes on relaying headless${where} until SIGINT or SIGTERM`,
      );
    } catch {
      // The log's own destination may be that terminal.
    }
  }
}
