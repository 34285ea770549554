import type { ProxySession } from './proxy-session.js';
import { UsageError } from './usage-error.js';

/**
 * TEST-ONLY fault injection: not for users, never documented for them. The
 * end-to-end tests set WSTAP_TEST_FAULT to make `wstap proxy` fail on
 * purpose where only a bug of ours could, and check that the failure is
 * contained. Read once, when the command starts.
 *
 *   observe:CONN[:CHUNKS]  the observer of connection CONN throws on its
 *                          chunk CHUNKS + 1 (default 20), both directions counted
 *   uncaught:CONN          a timer throws, outside every handler wstap guards,
 *                          right after connection CONN opens
 */
export interface TestFaults {
  observe: { conn: number; afterChunks: number } | null;
  uncaughtAfterOpen: number | null;
}

export const TEST_FAULT_VARIABLE = 'WSTAP_TEST_FAULT';

export function testFaultsFromEnv(env: NodeJS.ProcessEnv = process.env): TestFaults {
  const faults: TestFaults = { observe: null, uncaughtAfterOpen: null };
  const value = env[TEST_FAULT_VARIABLE];
  if (value === undefined || value === '') return faults;
  const observe = /^observe:(\d+)(?::(\d+))?$/.exec(value);
  const uncaught = /^uncaught:(\d+)$/.exec(value);
  if (observe) faults.observe = { conn: Number(observe[1]), afterChunks: observe[2] === undefined ? 20 : Number(observe[2]) };
  else if (uncaught) faults.uncaughtAfterOpen = Number(uncaught[1]);
  else throw new UsageError(`${TEST_FAULT_VARIABLE} (test-only): "${value}" is not observe:CONN[:CHUNKS] or uncaught:CONN`);
  return faults;
}

/** The `uncaught:CONN` fault: thrown from a timer, where only the process's last-resort handler sees it. */
export function armUncaughtFault(session: ProxySession, conn: number): void {
  session.onEvent((event) => {
    if (event.kind !== 'conn.open' || event.conn !== conn) return;
    setTimeout(() => {
      throw new Error(`test-only fault (${TEST_FAULT_VARIABLE}): thrown from a timer after connection ${conn} opened`);
    }, 0);
  });
}
