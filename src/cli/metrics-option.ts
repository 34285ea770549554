import type { Logger } from 'pino';
import { MAX_PATH_GROUPS, parsePathGroup, PathGroupError, type PathGroup } from '../metrics/metric-labels.js';
import { startMetricsServer, type MetricsServer } from '../metrics/metrics-server.js';
import { MetricsView } from '../metrics/metrics-view.js';
import { notLoopbackWarning, parseListen } from './option-values.js';
import type { ProxySession } from './proxy-session.js';
import { UsageError } from './usage-error.js';
import { VERSION } from './version.js';

/** --metrics and --metrics-path-group, checked before anything starts. */
export interface MetricsOption {
  host: string;
  port: number;
  pathGroups: PathGroup[];
}

/** `PORT` (loopback) or `HOST:PORT`; null without --metrics. A unix socket is refused: Prometheus scrapes TCP. */
export function metricsOptionOf(address: unknown, groups: unknown): MetricsOption | null {
  const groupTexts = Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [];
  if (typeof address !== 'string') {
    if (groupTexts.length > 0) throw new UsageError('--metrics-path-group needs --metrics [HOST:]PORT');
    return null;
  }
  if (address.startsWith('unix:')) throw new UsageError(`--metrics "${address}": Prometheus scrapes TCP; give [HOST:]PORT (e.g. 9466)`);
  let endpoint;
  try {
    endpoint = parseListen(address);
  } catch {
    throw new UsageError(`--metrics "${address}" is not [HOST:]PORT (e.g. 9466 or 127.0.0.1:9466)`);
  }
  if (endpoint.kind !== 'tcp') throw new UsageError(`--metrics "${address}" is not [HOST:]PORT`);
  if (groupTexts.length > MAX_PATH_GROUPS) throw new UsageError(`--metrics-path-group given ${groupTexts.length} times: at most ${MAX_PATH_GROUPS} (each multiplies the series)`);
  const pathGroups = groupTexts.map((text) => {
    try {
      return parsePathGroup(text);
    } catch (err) {
      if (err instanceof PathGroupError) throw new UsageError(`--metrics-path-group ${err.message}`);
      throw err;
    }
  });
  return { host: endpoint.host, port: endpoint.port, pathGroups };
}

export interface RunningMetrics {
  server: MetricsServer;
  view: MetricsView;
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
    captureTotals: () => session()?.captureTotals() ?? null,
    captureStalled: () => {
      const health = session()?.captureHealth() ?? null;
      return health !== null && (health.refusing !== null || health.paused !== null);
    },
    info: { version: VERSION, ...info },
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
  return { server, view };
}

/**
 * The view hears the session's events as the UI does: a listener, so a
 * fault there drops it, once logged, and costs no connection anything.
 */
export function attachMetrics(metrics: RunningMetrics, session: ProxySession): void {
  session.onEvent((event, summary, findings) => metrics.view.apply(event, summary, findings));
}

/** Errors of bind that say what to change rather than a bug. */
const BIND_ERRORS = new Set(['EACCES', 'EADDRNOTAVAIL', 'EPERM', 'EINVAL']);

/** Why --metrics could not listen, in one line; exit status 2. Anything else is a bug and is thrown. */
export function metricsStartFailure(err: NodeJS.ErrnoException, logger: Logger, option: MetricsOption): number {
  const where = `${option.host}:${option.port}`;
  if (err.code === 'EADDRINUSE') logger.error(`cannot listen on ${where} for --metrics: the port is in use`);
  else if (err.code && BIND_ERRORS.has(err.code)) logger.error(`cannot listen on ${where} for --metrics: ${err.message}`);
  else if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') logger.error(`cannot listen on ${where} for --metrics: unknown host ${option.host}`);
  else throw err;
  return 2;
}
