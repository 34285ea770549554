import net from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { CollectBudget, onBudget, PER_HANDLE_METRICS, PER_HANDLE_SHARE, registerProcessMetrics } from '../../src/metrics/process-metrics.js';
import { parseExposition, valueOf } from '../support/prom-text.js';

const opened: net.Socket[] = [];
const servers: net.Server[] = [];

afterEach(async () => {
  for (const s of opened.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** `count` real loopback connections (both ends are handles of this process). */
async function openConnections(count: number): Promise<void> {
  const server = net.createServer((socket) => opened.push(socket));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  for (let i = 0; i < count; i++) {
    const socket = net.connect(port, '127.0.0.1');
    opened.push(socket);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  }
}

describe('collect budget', () => {
  it('is due at first, then again only once 1/share times its last run has passed', () => {
    const budget = new CollectBudget(0.001);
    expect(budget.due(0)).toBe(true);
    budget.ran(10, 12); // 2 ms: due 2 s after it ended
    expect(budget.due(12)).toBe(false);
    expect(budget.due(2011)).toBe(false);
    expect(budget.due(2012)).toBe(true);
  });

  it('refuses a share outside (0, 1]', () => {
    expect(() => new CollectBudget(0)).toThrow(RangeError);
    expect(() => new CollectBudget(1.5)).toThrow(RangeError);
  });

  it('skips the collector while it is not due, and times it by the clock when it runs', () => {
    let now = 0;
    let runs = 0;
    const collect = onBudget(
      () => {
        runs++;
        now += 5; // the collector itself takes 5 ms
      },
      new CollectBudget(0.01),
      () => now,
    );
    collect.call(undefined);
    expect(runs).toBe(1);
    now = 100; // 5 ms at 1 %: next due at 5 + 500
    collect.call(undefined);
    expect(runs).toBe(1);
    now = 505;
    collect.call(undefined);
    expect(runs).toBe(2);
  });
});

describe('process metrics', () => {
  it('includes the per-handle metrics; between their runs a scrape repeats their last values', async () => {
    // A clock that moves 1 ms at each reading: every run of a collector seems to take 1 ms, so it is due again 1 / PER_HANDLE_SHARE ms later.
    let now = 0;
    const registry = new Registry();
    registerProcessMetrics(registry, () => now++);
    await openConnections(3);
    const first = parseExposition(await registry.metrics());
    for (const name of PER_HANDLE_METRICS) {
      if (name === 'process_open_fds' && process.platform !== 'linux') continue;
      expect(first.types.get(name), name).toBe('gauge');
    }
    const handles = valueOf(first, 'nodejs_active_handles_total');
    expect(handles).toBeGreaterThanOrEqual(6);
    // Three more connections, a few readings later: not due, so the count stays as it was.
    await openConnections(3);
    const second = parseExposition(await registry.metrics());
    expect(valueOf(second, 'nodejs_active_handles_total')).toBe(handles);
    // Once the budget allows, counted again.
    now += 2 / PER_HANDLE_SHARE;
    const third = parseExposition(await registry.metrics());
    expect(valueOf(third, 'nodejs_active_handles_total')).toBeGreaterThanOrEqual(handles + 6);
  });
});
