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

/** SIGINT/SIGTERM (or stop()) shut the session down; a second one exits at once after a synchronous flush. */
export function shutdownOnSignal(session: ProxySession, logger: Logger): Shutdown {
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
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return {
    done,
    stop,
    get requested() {
      return requests > 0;
    },
  };
}
