import type { Logger } from 'pino';
import { MAX_PATH_GROUPS, parsePathGroup, PathGroupError, type PathGroup } from '../metrics/metric-labels.js';
import { parseListen } from './option-values.js';
import { UsageError } from './usage-error.js';

/** --metrics, --metrics-path-group and --metrics-no-process, checked before anything starts. */
export interface MetricsOption {
  host: string;
  port: number;
  pathGroups: PathGroup[];
  /** prom-client's default process metrics (false with --metrics-no-process: see process-metrics.ts for their cost). */
  processMetrics: boolean;
}

/** `PORT` (loopback) or `HOST:PORT`; null without --metrics. A unix socket is refused: Prometheus scrapes TCP. */
export function metricsOptionOf(address: unknown, groups: unknown, noProcess: unknown = false): MetricsOption | null {
  const groupTexts = Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [];
  if (typeof address !== 'string') {
    if (groupTexts.length > 0) throw new UsageError('--metrics-path-group needs --metrics [HOST:]PORT');
    if (noProcess === true) throw new UsageError('--metrics-no-process needs --metrics [HOST:]PORT');
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
  return { host: endpoint.host, port: endpoint.port, pathGroups, processMetrics: noProcess !== true };
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
