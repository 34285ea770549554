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
  /**
   * With `hangup`: from now on SIGHUP goes to `handler` (never a stop: the
   * relay outlives its terminal); one that came before is handed over at once.
   */
  forwardHangupTo(handler: () => void): void;
  /** Stops listening (the session could not start). */
  release(): void;
}

/**
 * `hangup`: catch SIGHUP too, from the start, so a terminal closed while
 * wstap starts does not kill it (the default action) before the session
 * can go headless. Commands that should still die with their terminal
 * (demo) leave it off.
 */
export function catchSignalsEarly(options: { hangup?: boolean } = {}): EarlySignals {
  let held: NodeJS.Signals | null = null;
  let target: ((signal: NodeJS.Signals) => void) | null = null;
  let hangupHeld = false;
  let hangupTarget: (() => void) | null = null;
  const listener = (signal: NodeJS.Signals): void => {
    if (target) target(signal);
    else held ??= signal;
  };
  const hangupListener = (): void => {
    if (hangupTarget) hangupTarget();
    else hangupHeld = true;
  };
  process.on('SIGINT', listener);
  process.on('SIGTERM', listener);
  if (options.hangup) process.on('SIGHUP', hangupListener);
  return {
    forwardTo: (handler) => {
      target = handler;
      if (held) handler(held);
      held = null;
    },
    forwardHangupTo: (handler) => {
      hangupTarget = handler;
      if (hangupHeld) handler();
      hangupHeld = false;
    },
    release: () => {
      process.off('SIGINT', listener);
      process.off('SIGTERM', listener);
      process.off('SIGHUP', hangupListener);
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
