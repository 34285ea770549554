import type { CheckReport } from './check-run.js';
import { targetWhere } from './check-run.js';
import { levelOf } from './check-targets.js';
import { positionText } from './config-ast.js';

/**
 * The report as a linter prints it (`file:line:col severity id message`,
 * the fix on the next line) and as JSON for machines. Text from the
 * configuration goes through `printable` before it reaches a terminal.
 */

export function reportText(report: CheckReport, printable: (text: string) => string): string {
  const lines: string[] = [];
  for (const t of report.targets) {
    const block = levelOf(t).directive;
    lines.push(printable(`checked ${targetWhere(t)}${block ? ` at ${positionText(block.pos)}` : ''}: ${t.why}`));
  }
  if (report.targets.length === 0) lines.push('no WebSocket location found (name one with --path URI)');
  for (const f of report.findings) {
    lines.push(printable(`${f.file}:${f.line}:${f.col} ${f.severity} ${f.id} ${f.message} [${f.where}]`));
    lines.push(printable(`    fix: ${f.fix}`));
  }
  const count = (s: string): number => report.findings.filter((f) => f.severity === s).length;
  lines.push(`${count('error')} error(s), ${count('warning')} warning(s), ${count('info')} info in ${report.targets.length} WebSocket location(s)`);
  return `${lines.join('\n')}\n`;
}

export interface ReportJson {
  locations: Array<{ server: string[]; location: string | null; file: string | null; line: number | null; why: string; paths: string[]; redirect: boolean }>;
  findings: CheckReport['findings'];
}

export function reportJson(report: CheckReport): ReportJson {
  return {
    locations: report.targets.map((t) => {
      const block = levelOf(t).directive;
      return {
        server: t.server.names.length > 0 ? t.server.names : t.server.listens,
        location: t.location ? `${t.location.modifier ? `${t.location.modifier} ` : ''}${t.location.name}` : null,
        file: block?.pos.file ?? null,
        line: block?.pos.line ?? null,
        why: t.why,
        paths: t.paths,
        redirect: t.redirect,
      };
    }),
    findings: report.findings,
  };
}

/** 1 when anything is at warning or above, else 0. */
export function reportExitCode(report: CheckReport): number {
  return report.findings.some((f) => f.severity !== 'info') ? 1 : 0;
}
