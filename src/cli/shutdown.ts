import type { Logger } from 'pino';
import type { ProxySession } from './proxy-session.js';

export interface Shutdown {
  /** Resolves with the exit code once the session has stopped. */
  done: Promise<number>;
  /** The same graceful stop a signal starts (the UI's q key). */
  stop(why: string): void;
  /** A stop was asked for, by a signal or stop(). */
  readonly requested: boolean;
}

/**
 * SIGINT/SIGTERM from before the session has started. The session logs that
 * it listens before `shutdownOnSignal` takes over, and a signal in between
 * must neither kill the process unflushed nor be lost. The listeners stay
 * installed and forward: removing the last one would let Node drop a signal
 * already caught but not yet dispatched, and restore the default (death)
 * until the next listener is added.
 */
export interface EarlySignals {
  /** From now on signals go to `handler`; one that came before is handed over at once. */
  forwardTo(handler: (signal: NodeJS.Signals) => void): void;
  /** Stops listening (the session could not start). */
  release(): void;
}

export function catchSignalsEarly(): EarlySignals {
  let held: NodeJS.Signals | null = null;
  let target: ((signal: NodeJS.Signals) => void) | null = null;
  const listener = (signal: NodeJS.Signals): void => {
    if (target) target(signal);
    else held ??= signal;
  };
  process.on('SIGINT', listener);
  process.on('SIGTERM', listener);
  return {
    forwardTo: (handler) => {
      target = handler;
      if (held) handler(held);
      held = null;
    },
    release: () => {
      process.off('SIGINT', listener);
      process.off('SIGTERM', listener);
    },
  };
}

/** SIGINT/SIGTERM (or stop()) shut the session down; a second one exits at once after a synchronous flush. */
export function shutdownOnSignal(session: ProxySession, logger: Logger, signals: EarlySignals = catchSignalsEarly()): Shutdown {
  let resolveDone: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  let requests = 0;
  const stop = (why: string): void => {
    requests++;
    if (requests > 1) {
      logger.warn(`${why} again: exiting now`);
      session.flushSync();
      process.exit(130);
    }
    logger.info(`${why}: shutting down`);
    session.stop('signal').then(
      () => resolveDone(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        session.flushSync();
        resolveDone(1);
      },
    );
  };
  signals.forwardTo(stop);
  return {
    done,
    stop,
    get requested() {
      return requests > 0;
    },
  };
}
