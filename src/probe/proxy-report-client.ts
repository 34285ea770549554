import http from 'node:http';
import https from 'node:https';
import { PROBE_REPORT_HEADER, PROBE_TOKEN_HEADER, type ProbeConnectionReport, type ProbeRunReport } from '../relay/probe-protocol.js';

/**
 * Asks wstap's end what it saw of a probe run: a plain GET to the probe's
 * own URL (http for ws, https for wss), through the same path, carrying the
 * token and `X-Wstap-Probe-Report: RUN`. Through the path rather than from
 * wstap's capture file: it works wherever the probe runs, with no access to
 * the proxy's host, and wstap answers it itself (the app never sees it).
 */

export interface ReportRequest {
  url: string;
  headers: ReadonlyArray<readonly [string, string]>;
  insecure: boolean;
  token: string;
  run: string;
  timeoutMs?: number;
}

export class ProbeReportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProbeReportError';
  }
}

const MAX_REPORT_BYTES = 1024 * 1024;

export function fetchProbeReport(request: ReportRequest): Promise<ProbeRunReport> {
  const url = new URL(request.url);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  const headers: Record<string, string> = {};
  for (const [name, value] of request.headers) headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  headers[PROBE_TOKEN_HEADER] = request.token;
  headers[PROBE_REPORT_HEADER] = request.run;
  const where = `${url.origin}${url.pathname}`;
  return new Promise((resolve, reject) => {
    const get = url.protocol === 'https:' ? https.get : http.get;
    const req = get(url, { headers, rejectUnauthorized: !request.insecure, agent: false, timeout: request.timeoutMs ?? 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes > MAX_REPORT_BYTES) req.destroy(new ProbeReportError(`the report from ${where} is over ${MAX_REPORT_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          reject(new ProbeReportError(`${where} answered the report request with HTTP ${res.statusCode}: ${body.trim().slice(0, 200)}`));
          return;
        }
        try {
          resolve(parseProbeReport(body, request.run));
        } catch (err) {
          reject(new ProbeReportError(`the report from ${where} is not wstap's: ${(err as Error).message}`));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new ProbeReportError(`no report from ${where} within ${(request.timeoutMs ?? 10_000) / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof ProbeReportError ? err : new ProbeReportError(`report request to ${where} failed: ${err.code ?? err.message}`)));
  });
}

/** The report's JSON, checked field by field (it came over the network, through hops that may answer in its place). */
export function parseProbeReport(text: string, run: string): ProbeRunReport {
  const data = JSON.parse(text) as unknown;
  if (!isObject(data) || data.run !== run || !Array.isArray(data.connections)) throw new Error(`expected {"run": "${run}", "connections": [...]}`);
  const connections = data.connections.map((c: unknown, i: number): ProbeConnectionReport => {
    if (!isObject(c) || typeof c.variant !== 'string' || typeof c.mode !== 'string' || typeof c.conn !== 'number' || typeof c.upgradedAt !== 'number' || !Array.isArray(c.ends)) {
      throw new Error(`connection ${i} lacks variant, mode, conn, upgradedAt or ends`);
    }
    const ends = c.ends.map((e: unknown, j: number) => {
      if (!isObject(e) || typeof e.kind !== 'string' || (e.side !== 'client' && e.side !== 'proxy') || typeof e.t !== 'number') throw new Error(`connection ${i} end ${j} lacks kind, side or t`);
      return e as unknown as ProbeConnectionReport['ends'][number];
    });
    return { variant: c.variant, mode: c.mode as ProbeConnectionReport['mode'], conn: c.conn, upgradedAt: c.upgradedAt, ends, closedAt: typeof c.closedAt === 'number' ? c.closedAt : null };
  });
  return { run, connections };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
