import { printable } from '../analysis/printable.js';
import type { ProxyEndEvent } from '../relay/probe-protocol.js';
import type { EndKind, VariantOutcome } from './probe-variants.js';
import { endWords, type ProbeVerdict } from './probe-verdict.js';

/**
 * A probe run as `--json` prints it and as people read it. Pure.
 *
 * Times of wstap's end are its wall clock; `afterSeconds` puts them on the
 * probe's (from the probe's 101), which is one clock only when both run on
 * the same host (or on hosts whose clocks agree: NTP keeps them within
 * milliseconds, far below the probe's one-second resolution).
 */

export interface ProbeJson {
  idleTimeoutSeconds: number | null;
  variants: Array<{
    name: string;
    livedSeconds: number;
    clientEnd: { kind: EndKind; code?: number };
    proxyEnd: { kind: EndKind; side: 'client' | 'proxy' | null; afterSeconds: number | null } | null;
  }>;
  verdict: string;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/** The first thing wstap's end saw of a variant's close, or null when it was not asked (no --token) or did not know the connection. */
export function firstProxyEnd(o: VariantOutcome): ProxyEndEvent | 'open' | null {
  if (!o.proxy) return null;
  return o.proxy.ends[0] ?? 'open';
}

/** `reportError`: why wstap's end could not be asked (--token), said in the verdict since the shape has no other place for it. */
export function probeJson(outcomes: readonly VariantOutcome[], verdict: ProbeVerdict, reportError: string | null = null): ProbeJson {
  return {
    idleTimeoutSeconds: verdict.idleTimeoutSeconds,
    variants: outcomes.map((o) => {
      const end = firstProxyEnd(o);
      return {
        name: o.name,
        livedSeconds: round3(o.livedSeconds),
        clientEnd: { kind: o.clientEnd.kind, ...(o.clientEnd.code !== undefined ? { code: o.clientEnd.code } : {}) },
        proxyEnd: end === null ? null : end === 'open' ? { kind: 'open', side: null, afterSeconds: null } : { kind: end.kind, side: end.side, afterSeconds: round3((end.t - o.openedAt) / 1000) },
      };
    }),
    verdict: [...verdict.lines, ...(reportError !== null ? [`wstap's end could not be asked: ${reportError}`] : [])].join('\n'),
  };
}

function proxyEndWords(o: VariantOutcome): string {
  const end = firstProxyEnd(o);
  if (end === null) return '';
  if (end === 'open') return "; wstap's end: still open when asked";
  const what = end.kind === 'close-frame' ? `a close frame${end.code !== undefined ? ` ${end.code}` : ''}` : end.kind === 'fin' ? 'a FIN' : end.kind === 'rst' ? 'an RST' : `an error (${printable(end.error ?? '', 60)})`;
  const from = end.side === 'client' ? 'from the path (client side)' : 'from wstap itself';
  return `; wstap's end (#${o.proxy?.conn ?? '?'}): ${what} ${from} at ${((end.t - o.openedAt) / 1000).toFixed(1)} s`;
}

/** One line per variant: how its end looked at the probe and, with --token, at wstap. */
export function variantLine(o: VariantOutcome): string {
  const end = o.clientEnd.kind === 'open' ? `still open after ${o.livedSeconds.toFixed(1)} s` : o.opened ? `${endWords(o.clientEnd)} after ${o.livedSeconds.toFixed(1)} s` : endWords(o.clientEnd);
  const reason = o.clientEnd.reason ? ` "${printable(o.clientEnd.reason, 80)}"` : '';
  return `  ${o.name.padEnd(16)} ${end}${reason}${proxyEndWords(o)}`;
}

/** The human report: the variants, then the verdict. */
export function probeText(url: string, outcomes: readonly VariantOutcome[], verdict: ProbeVerdict, reportError: string | null): string {
  const lines = [`wstap probe ${printable(url, 300)}`, ...outcomes.map(variantLine)];
  if (reportError !== null) lines.push(`  (wstap's end could not be asked: ${printable(reportError, 300)})`);
  lines.push('', ...verdict.lines);
  return `${lines.join('\n')}\n`;
}
