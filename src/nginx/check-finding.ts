import type { SourcePosition } from './config-ast.js';

/** How bad a finding is: errors and warnings make `nginx-check` exit 1, info does not. */
export type NginxSeverity = 'error' | 'warning' | 'info';

export interface NginxFinding {
  id: string;
  severity: NginxSeverity;
  file: string;
  line: number;
  col: number;
  message: string;
  fix: string;
  /** The server and location it is about (`server example.com location /ws`). */
  where: string;
}

/** What the checks need to know beyond the configuration. */
export interface CheckContext {
  /** The app's heartbeat from --profile: who pings and how often (seconds). */
  heartbeat: { from: 'client' | 'upstream'; interval: number; profile: string } | null;
  /** Request headers the profile says the app needs (Host, X-Forwarded-For, ...). */
  requiredHeaders: string[];
  /** The nginx version the configuration runs on (`1.22.1`), when known. */
  nginxVersion: string | null;
  /** nginx's compiled-in error log (`nginx -V`: --error-log-path), in force where the configuration names none. */
  defaultErrorLog: string | null;
}

/** Where nginx logs when no error_log is written anywhere and its compiled-in path is unknown. */
export const FALLBACK_ERROR_LOG = 'logs/error.log';

export function finding(id: string, severity: NginxSeverity, pos: SourcePosition, where: string, message: string, fix: string): NginxFinding {
  return { id, severity, file: pos.file, line: pos.line, col: pos.col, message, fix, where };
}

/** Whether a version string (`1.29.7`) is at least `min`. */
export function versionAtLeast(version: string, min: readonly number[]): boolean {
  const parts = version.split('.').map((p) => Number.parseInt(p, 10));
  for (let i = 0; i < min.length; i++) {
    const have = parts[i] ?? 0;
    const want = min[i] as number;
    if (have !== want) return have > want;
  }
  return true;
}

export const SEVERITY_ORDER: Record<NginxSeverity, number> = { error: 0, warning: 1, info: 2 };

/** Findings in file, line, column order; the same finding for the same place once. */
export function sortFindings(findings: NginxFinding[]): NginxFinding[] {
  const seen = new Set<string>();
  return findings
    .filter((f) => {
      const key = `${f.id} ${f.file}:${f.line}:${f.col} ${f.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col || SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]);
}
