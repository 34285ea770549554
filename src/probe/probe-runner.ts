import crypto from 'node:crypto';
import type { ProbeRunReport } from '../relay/probe-protocol.js';
import { runVariant, type ProbeTarget } from './probe-connection.js';
import { variantsFor, type VariantOutcome } from './probe-variants.js';
import { fetchProbeReport } from './proxy-report-client.js';

export interface ProbeRunOptions {
  url: string;
  headers: ReadonlyArray<readonly [string, string]>;
  insecure: boolean;
  token: string | null;
  intervalMs: number;
  maxMs: number;
  /** Ctrl-C: every variant still open is reported as open now. */
  stop: AbortSignal;
  /** Each variant as it ends (for progress lines). */
  onVariantEnd?: (outcome: VariantOutcome) => void;
}

export interface ProbeRun {
  run: string;
  outcomes: VariantOutcome[];
  /** With --token: why wstap's end could not be asked (its ends are then null). */
  reportError: string | null;
}

/** How long the probe waits for wstap's end to have seen every connection close, after its own end did. */
const REPORT_SETTLE_MS = 3000;
const REPORT_RETRY_MS = 250;

/**
 * Runs every variant in parallel, one connection each, then (with a token)
 * asks wstap's end what it saw and joins it to the variants by name.
 */
export async function runProbe(options: ProbeRunOptions): Promise<ProbeRun> {
  const run = crypto.randomBytes(8).toString('hex');
  const target: ProbeTarget = { url: options.url, headers: options.headers, insecure: options.insecure, token: options.token, run, intervalMs: options.intervalMs, maxMs: options.maxMs };
  const outcomes = await Promise.all(
    variantsFor(options.token !== null).map(async (variant) => {
      const outcome = await runVariant(target, variant, options.stop);
      options.onVariantEnd?.(outcome);
      return outcome;
    }),
  );
  if (options.token === null || !outcomes.some((o) => o.opened)) return { run, outcomes, reportError: null };
  let report: ProbeRunReport;
  try {
    report = await settledReport({ url: options.url, headers: options.headers, insecure: options.insecure, token: options.token, run }, outcomes.filter((o) => o.opened).length);
  } catch (err) {
    return { run, outcomes, reportError: (err as Error).message };
  }
  const joined = outcomes.map((o) => ({ ...o, proxy: report.connections.find((c) => c.variant === o.name) ?? null }));
  return { run, outcomes: joined, reportError: null };
}

/**
 * The report once wstap's end has seen every opened connection end (its
 * close evidence travels through the same hops as the probe's, a moment
 * later or earlier), or what it has after REPORT_SETTLE_MS.
 */
async function settledReport(request: Parameters<typeof fetchProbeReport>[0], opened: number): Promise<ProbeRunReport> {
  const deadline = Date.now() + REPORT_SETTLE_MS;
  for (;;) {
    const report = await fetchProbeReport(request);
    const ended = report.connections.filter((c) => c.ends.length > 0).length;
    if (ended >= opened || Date.now() >= deadline) return report;
    await new Promise((resolve) => setTimeout(resolve, REPORT_RETRY_MS));
  }
}
