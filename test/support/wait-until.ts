export interface WaitOptions {
  /** How long to keep looking (default 10 s: generous, the machine is shared). */
  timeoutMs?: number;
  /** How often to look (default 100 ms). */
  intervalMs?: number;
  /** Added to the timeout error: what was there instead (a screen, a log). */
  context?: () => string;
}

/**
 * Polls `probe` until it returns something other than undefined, null or
 * false, and returns that; for conditions with no event to wait on (a file
 * appearing, a counter reaching a number). `probe` may throw to give up early.
 */
export async function waitUntil<T>(what: string, probe: () => T | undefined | null | false, options: WaitOptions = {}): Promise<T> {
  const { timeoutMs = 10_000, intervalMs = 100, context } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = probe();
    if (found !== undefined && found !== null && found !== false) return found;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${context ? `\n${context()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
