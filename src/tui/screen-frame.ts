import type { DiagnosisContext } from '../analysis/connection-diagnosis.js';
import { formatDuration } from '../analysis/countdown.js';
import { printable } from '../analysis/printable.js';
import type { CaptureHealth } from '../capture/capture-writer.js';
import type { ConnectionRow } from './connection-rows.js';
import { layoutTable, tableHeading, tableLine } from './connection-table.js';
import type { StyledLine } from './detail-lines.js';
import type { Paint, Tone } from './paint.js';
import { escapeTags, fitCell } from './terminal-text.js';
import type { UiState } from './ui-state.js';

export interface ScreenRegions {
  /** Lines for table rows (below the column heading) or for the detail view. */
  bodyHeight: number;
  logHeight: number;
}

/** Fixed lines: title, status, column heading, two footer lines; the log pane shrinks away on short terminals. */
export function screenRegions(height: number): ScreenRegions {
  const logHeight = height >= 20 ? 3 : height >= 14 ? 2 : 0;
  const fixed = 3 + 2 + (logHeight > 0 ? logHeight + 1 : 0);
  return { bodyHeight: Math.max(1, height - fixed), logHeight };
}

export interface SessionFacts {
  listen: string;
  target: string;
  profile: string | null;
  /** The profile's (and --timeout flags') knowledge of the path: countdowns, findings. */
  diagnosis: DiagnosisContext;
  /**
   * Several proxies' captures read as one whose instances ran with different
   * contexts: each connection is judged with its instance's (`diagnosis` is
   * then the first's). Absent when one context judges every connection.
   */
  perInstance?: ReadonlyMap<string, { profile: string | null; diagnosis: DiagnosisContext }>;
  /** Replaying a recording: the time the timers are frozen at. */
  frozenAt: number | null;
  logFile: string | null;
}

export interface Counts {
  open: number;
  closed: number;
  failed: number;
  /** null when replaying a recording. */
  framesPerSecond: number | null;
}

export interface FrameInput {
  width: number;
  height: number;
  paint: Paint;
  facts: SessionFacts;
  counts: Counts;
  state: UiState;
  /** The rows on screen, from `state.top` on (only these are built). */
  rows: readonly ConnectionRow[];
  /** Connections in the table (matching the filter), on screen or not. */
  rowCount: number;
  /** Lines of the detail view when it is open. */
  detail: readonly StyledLine[] | null;
  log: readonly string[];
  /** The live capture file's state; null when there is none (or replaying a recording). */
  capture: CaptureHealth | null;
  /** A transient line (export done, nothing to clear...). */
  message: string | null;
}

function styled(text: string, width: number, paint: Paint, tone: Tone = 'plain'): string {
  return paint.tone(escapeTags(fitCell(printable(text, width + 1), width)), tone);
}

function title(input: FrameInput): string {
  const { facts, counts, state } = input;
  const mode = facts.frozenAt !== null ? `  [recording, frozen at ${new Date(facts.frozenAt).toISOString().slice(11, 19)}]` : '';
  const paused = state.paused ? '  [PAUSED: capture continues]' : '';
  // Counts first: on a narrow terminal the addresses are what gets cut.
  return `wstap  open ${counts.open}  closed ${counts.closed}  failed ${counts.failed}${counts.framesPerSecond === null ? '' : `  ${counts.framesPerSecond} frames/s`}${paused}${mode}  ${facts.listen} → ${facts.target}`;
}

/**
 * The capture file is the full record: once it has lost events, or refuses
 * data now, the status line says so for the rest of the session.
 */
function captureTrouble(capture: CaptureHealth | null): { text: string; tone: Tone } | null {
  if (!capture || (capture.lostEvents === 0 && capture.refusing === null && !capture.paused)) return null;
  const lost = `${capture.lostEvents} event${capture.lostEvents === 1 ? '' : 's'} lost`;
  if (capture.paused) return { text: `CAPTURE PAUSED: disk below --min-free, relaying continues, ${lost} so far`, tone: 'bad' };
  return capture.refusing !== null
    ? { text: `CAPTURE FILE REFUSES DATA (${capture.refusing}), ${lost} so far`, tone: 'bad' }
    : { text: `capture: ${lost}, marked in the file as capture.gap`, tone: 'warn' };
}

function timeoutsText(diagnosis: DiagnosisContext): string {
  return diagnosis.timeouts.map((t) => `${t.hop}${t.setting ? `.${t.setting}` : ''} ${formatDuration(t.seconds)}`).join(', ');
}

/** What judges the connections: the profile and timeouts, or (instances that differ) each instance's. */
function judgingText(facts: SessionFacts): string {
  if (facts.perInstance) {
    const each = [...facts.perInstance].map(([instance, c]) => `${instance}: profile ${c.profile ?? 'none'}, timeouts ${timeoutsText(c.diagnosis) || 'none'}`);
    return `judged per instance (${each.join('; ')})`;
  }
  const timeouts = facts.diagnosis.timeouts.length === 0 ? 'none (--timeout NAME=SECONDS or a profile adds countdowns)' : timeoutsText(facts.diagnosis);
  return `profile ${facts.profile ?? 'none'} · timeouts ${timeouts}`;
}

function statusLine(input: FrameInput): string {
  const { facts, state } = input;
  const filter = state.filter ? `  filter "${state.filter}"` : '';
  return `${judgingText(facts)} · sort ${state.sort} · http ${state.showHttp ? 'shown' : 'hidden'}${filter}`;
}

function keyHelp(state: UiState): string {
  if (state.mode === 'filter') return `filter: ${state.draft}▏  Enter apply  Esc cancel  (path, client address, state)`;
  if (state.mode === 'detail') return '↑↓ PgUp PgDn scroll  Home End  Esc back  e export HAR  q quit';
  return '↑↓ move  Enter open  / filter  s sort  h http  c clear  p pause  e HAR  q quit';
}

/** The whole screen as tagged lines, exactly `height` of them, each `width` columns. */
export function composeScreen(input: FrameInput): string[] {
  const { width, height, paint, state } = input;
  const regions = screenRegions(height);
  const trouble = captureTrouble(input.capture);
  const status = trouble ? styled(`${trouble.text} · ${statusLine(input)}`, width, paint, trouble.tone) : styled(statusLine(input), width, paint, 'dim');
  const out: string[] = [styled(title(input), width, paint, 'heading'), status];
  if (input.detail) {
    const visible = input.detail.slice(state.detailTop, state.detailTop + regions.bodyHeight + 1);
    for (const l of visible) out.push(styled(l.text, width, paint, l.tone));
  } else {
    const layout = layoutTable(width, { instances: input.rows.some((r) => r.instance !== undefined) });
    out.push(tableHeading(layout, paint));
    // Only the visible rows are formatted.
    for (const row of input.rows.slice(0, regions.bodyHeight)) {
      out.push(tableLine(row, layout, paint, row.conn === state.selected));
    }
    if (input.rowCount === 0) {
      out.push(styled(state.filter ? `no connection matches "${state.filter}"` : 'waiting for connections…', width, paint, 'dim'));
    }
  }
  const bodyEnd = 3 + regions.bodyHeight;
  while (out.length < bodyEnd) out.push(' '.repeat(width));
  out.length = bodyEnd;
  if (regions.logHeight > 0) {
    out.push(styled(`── log ${'─'.repeat(Math.max(0, width - 7))}`, width, paint, 'dim'));
    const lines = input.log.slice(-regions.logHeight);
    for (let i = 0; i < regions.logHeight; i++) out.push(styled(lines[i] ?? '', width, paint));
  }
  out.push(styled(keyHelp(state), width, paint, state.mode === 'filter' ? 'accent' : 'plain'));
  const where = input.facts.logFile ? `log file ${input.facts.logFile}` : '';
  out.push(styled(input.message ? `${input.message}${where ? `  ·  ${where}` : ''}` : where, width, paint, input.message ? 'accent' : 'dim'));
  return out.slice(0, height);
}
