import type { Logger } from 'pino';
import { startMetricsServer, type MetricsServer } from '../metrics/metrics-server.js';
import { MetricsView } from '../metrics/metrics-view.js';
import type { MetricsOption } from './metrics-option.js';
import { notLoopbackWarning } from './option-values.js';
import type { ProxySession } from './proxy-session.js';
import { VERSION } from './version.js';

// Loaded only with --metrics (proxy.ts imports it when asked): prom-client and the view cost a proxy without it nothing.

export interface RunningMetrics {
  server: MetricsServer;
  view: MetricsView;
  /**
   * The view hears the session's events as the UI does: a listener, so a
   * fault there drops it, once logged, and costs no connection anything.
   */
  attach(session: ProxySession): void;
}

/**
 * The metrics view and its endpoint, started before the session so a port
 * in use stops wstap before any traffic; `session()` is the session once it
 * runs (null until then). Hand the view to the session with `attach`.
 */
export async function startMetrics(
  option: MetricsOption,
  session: () => ProxySession | null,
  info: { mode: 'http' | 'tcp'; instance: string },
  logger: Logger,
): Promise<RunningMetrics> {
  const view = new MetricsView({
    pathGroups: option.pathGroups,
    processMetrics: option.processMetrics,
    captureTotals: () => session()?.captureTotals() ?? null,
    captureStalled: () => {
      const health = session()?.captureHealth() ?? null;
      return health !== null && (health.refusing !== null || health.paused !== null);
    },
    info: { version: VERSION, ...info },
    // Frames and messages in totals from the fold, read at scrape time: the view is not called for each.
    traffic: () => session()?.tracker.traffic ?? null,
  });
  const exposed = notLoopbackWarning(option.host, "read wstap's metrics (counts only: no paths, addresses or payloads)");
  if (exposed) logger.warn(`--metrics: ${exposed}`);
  const server = await startMetricsServer({
    host: option.host,
    port: option.port,
    registry: view.registry,
    onError: (err) => logger.warn({ err }, `metrics endpoint: ${err.message}; relaying continues`),
  });
  logger.info(`metrics at http://${server.address}/metrics`);
  return { server, view, attach: (s) => s.onEvent((event, summary, findings) => view.apply(event, summary, findings), { dataFrames: false }) };
}
