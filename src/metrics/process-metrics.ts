import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's default process metrics (CPU, memory, event loop lag, GC,
 * handles, descriptors, ...), with the collectors whose work grows with the
 * open connections held to a share of the time.
 *
 * A scrape runs on the relay's event loop. Most default collectors cost
 * microseconds whatever the load, but five walk every handle or descriptor:
 * process._getActiveHandles() and getActiveResourcesInfo() (twice each, by
 * type and total) and a readdir of /proc/self/fd. Measured on 2 cores: about
 * 2 ms a scrape with 100 proxied connections, 8 ms with 1,000, so tens of ms
 * with 10,000, each time stalling every connection. Those five run again only
 * once 1/PER_HANDLE_SHARE times as long as their last run took has passed
 * (2 ms: 2 s later); in between a scrape repeats their last values. With few
 * connections they run at every scrape, as before.
 */

/** The default metrics whose collection is O(open handles or descriptors). */
export const PER_HANDLE_METRICS = [
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
  'process_open_fds',
] as const;

/** At most this share of the relay's time goes to each of them: 0.1 %. */
export const PER_HANDLE_SHARE = 0.001;

/** When a costly collector may run again: after its last run's duration divided by `share`. Times in ms. */
export class CollectBudget {
  readonly #share: number;
  #nextAt = -Infinity;

  constructor(share: number) {
    if (!(share > 0 && share <= 1)) throw new RangeError(`CollectBudget share ${share}: give a share in (0, 1]`);
    this.#share = share;
  }

  due(now: number): boolean {
    return now >= this.#nextAt;
  }

  ran(startedAt: number, endedAt: number): void {
    this.#nextAt = endedAt + Math.max(0, endedAt - startedAt) / this.#share;
  }
}

type Collect = (this: unknown) => void | Promise<void>;

/** What prom-client keeps of a metric's `collect` option: an own property of the metric (a public option, read back). */
interface Collecting {
  collect?: Collect;
}

/** Registers the default process metrics in `registry`, the per-handle ones on a budget. */
export function registerProcessMetrics(registry: Registry, clock: () => number = () => performance.now()): void {
  collectDefaultMetrics({ register: registry });
  for (const name of PER_HANDLE_METRICS) {
    // Absent on a platform without it (process_open_fds is Linux only; resources need Node 17+).
    const metric = registry.getSingleMetric(name) as Collecting | undefined;
    const collect = metric?.collect;
    if (!metric || !collect) continue;
    metric.collect = onBudget(collect, new CollectBudget(PER_HANDLE_SHARE), clock);
  }
}

/** `collect`, skipped while its budget says it is not due: the metric keeps the values it last set. */
export function onBudget(collect: Collect, budget: CollectBudget, clock: () => number): Collect {
  return function (this: unknown): void | Promise<void> {
    const startedAt = clock();
    if (!budget.due(startedAt)) return;
    const result = collect.call(this);
    if (result instanceof Promise) return result.finally(() => budget.ran(startedAt, clock()));
    budget.ran(startedAt, clock());
  };
}
