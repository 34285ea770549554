import type { CountdownLevel } from '../analysis/countdown.js';
import { printable } from '../analysis/printable.js';
import type { ConnectionRow } from './connection-rows.js';
import type { Paint, Tone } from './paint.js';
import { compactBytes, compactDuration, compactLatency, escapeTags, fitCell } from './terminal-text.js';

interface Cell {
  text: string;
  tone: Tone;
}

interface Column {
  id: string;
  title: string;
  /** Fixed width; the path column takes what is left (at least `PATH_MIN`). */
  width: number;
  /** 0 = always shown; higher numbers go first when the terminal is narrow. */
  priority: number;
  align: 'left' | 'right';
  cell(row: ConnectionRow): Cell;
}

const PATH_MIN = 12;

const LEVEL_TONE: Record<CountdownLevel, Tone> = { ok: 'plain', warn: 'warn', over: 'over' };

function plain(text: string): Cell {
  return { text, tone: 'plain' };
}

function traffic(row: ConnectionRow, side: 'client' | 'upstream'): Cell {
  if (row.kind === 'ws') return plain(`${row.frames[side]}f ${compactBytes(row.bytes[side])}`);
  return plain(compactBytes(row.bytes[side]));
}

function idleCell(row: ConnectionRow, side: 'client' | 'upstream'): Cell {
  if (row.state === 'closed') return { text: compactDuration(row.idle[side]), tone: 'dim' };
  return { text: compactDuration(row.idle[side]), tone: LEVEL_TONE[row.idleLevel[side]] };
}

const CLOSE_WORD = { 'close-frame': 'close', fin: 'fin', rst: 'rst', error: 'error', timeout: 'timeout' } as const;

/** The last column: where a live connection is heading, or how a closed one ended. */
export function noteCell(row: ConnectionRow): Cell {
  if (row.failed) {
    const what = row.status !== null ? `answered ${row.status}` : row.kind === 'ws' && row.state === 'closed' ? 'no answer' : 'upstream failed';
    return { text: `failed: ${what}`, tone: 'bad' };
  }
  if (row.close) {
    if (row.close.orderUnknown) return { text: 'close order unknown', tone: 'warn' };
    if (!row.close.by) return { text: row.kind === 'http' && row.status !== null ? `closed after HTTP ${row.status}` : 'closed, no evidence', tone: 'dim' };
    const by = row.close.by === 'proxy' ? 'wstap' : row.close.by;
    const how = row.close.kind ? ` ${CLOSE_WORD[row.close.kind]}` : '';
    const code = row.close.code !== null ? ` ${row.close.code}` : '';
    const idle = row.close.idleMs !== null ? ` idle ${compactDuration(row.close.idleMs)}` : '';
    return { text: `${by}${how}${code}${idle}`, tone: 'dim' };
  }
  if (row.countdown) return { text: row.countdown.label, tone: LEVEL_TONE[row.countdown.level] };
  if (row.kind === 'http' && row.status !== null) return plain(`HTTP ${row.status}`);
  return plain('');
}

const COLUMNS: Column[] = [
  { id: 'conn', title: '#', width: 5, priority: 0, align: 'right', cell: (r) => plain(String(r.conn)) },
  { id: 'kind', title: 'type', width: 4, priority: 6, align: 'left', cell: (r) => plain(r.kind) },
  { id: 'instance', title: 'instance', width: 14, priority: 4, align: 'left', cell: (r) => plain(r.instance ?? '') },
  { id: 'client', title: 'client', width: 15, priority: 4, align: 'left', cell: (r) => plain(r.client) },
  { id: 'path', title: 'path', width: 0, priority: 0, align: 'left', cell: (r) => plain(r.path) },
  {
    id: 'state',
    title: 'state',
    width: 11,
    priority: 0,
    align: 'left',
    cell: (r) => ({ text: r.state, tone: r.state === 'closed' ? 'dim' : r.state === 'half-closed' ? 'warn' : 'plain' }),
  },
  { id: 'age', title: 'age', width: 6, priority: 2, align: 'right', cell: (r) => plain(compactDuration(r.ageMs)) },
  { id: 'up', title: 'c→u', width: 10, priority: 3, align: 'right', cell: (r) => traffic(r, 'client') },
  { id: 'down', title: 'u→c', width: 10, priority: 3, align: 'right', cell: (r) => traffic(r, 'upstream') },
  { id: 'idle-up', title: 'idle c→u', width: 8, priority: 0, align: 'right', cell: (r) => idleCell(r, 'client') },
  { id: 'idle-down', title: 'idle u→c', width: 8, priority: 0, align: 'right', cell: (r) => idleCell(r, 'upstream') },
  { id: 'rtt', title: 'ping rtt', width: 8, priority: 5, align: 'right', cell: (r) => plain(r.rttMs === null ? '' : compactLatency(r.rttMs)) },
  { id: 'note', title: 'timeout / closed by', width: 28, priority: 1, align: 'left', cell: noteCell },
];

export interface TableLayout {
  columns: ReadonlyArray<Column & { fitted: number }>;
  width: number;
}

/** Drops the least important columns until the rest fit; the path takes the remaining width. */
export function layoutTable(width: number, options: { instances?: boolean } = {}): TableLayout {
  // The instance column only when several proxies' captures are read as one.
  let shown = options.instances ? [...COLUMNS] : COLUMNS.filter((c) => c.id !== 'instance');
  const need = (cols: Column[]): number => cols.reduce((sum, c) => sum + (c.id === 'path' ? PATH_MIN : c.width), 0) + cols.length - 1;
  while (need(shown) > width) {
    // Columns of the same priority go together (c→u without u→c would mislead).
    const worst = Math.max(...shown.map((c) => c.priority));
    if (worst === 0) break;
    shown = shown.filter((c) => c.priority !== worst);
  }
  const rest = Math.max(PATH_MIN, width - need(shown) + PATH_MIN);
  const columns = shown.map((c) => ({ ...c, fitted: c.id === 'path' ? rest : c.width }));
  // Narrower than the essential columns: the path gives way first, then
  // columns are cut from the right, so a line is never wider than the screen.
  let over = need(shown) - width;
  const path = columns.find((c) => c.id === 'path');
  if (path && over > 0) {
    const cut = Math.min(over, path.fitted - 4);
    path.fitted -= cut;
    over -= cut;
  }
  while (over > 0 && columns.length > 1) {
    const last = columns[columns.length - 1] as Column & { fitted: number };
    const cut = Math.min(over, last.fitted);
    last.fitted -= cut;
    over -= cut;
    if (last.fitted === 0) {
      columns.pop();
      over--; // its separator
    }
  }
  return { columns, width };
}

export function tableHeading(layout: TableLayout, paint: Paint): string {
  const text = layout.columns.map((c) => fitCell(c.title, c.fitted, c.align)).join(' ');
  return paint.tone(escapeTags(fitCell(text, layout.width)), 'heading');
}

/** One table line, tagged; text from the wire is made printable, cut to its cell and tag-escaped. */
export function tableLine(row: ConnectionRow, layout: TableLayout, paint: Paint, selected: boolean): string {
  const cells = layout.columns.map((c) => {
    const cell = c.cell(row);
    const text = escapeTags(fitCell(printable(cell.text, c.fitted + 1), c.fitted, c.align));
    if (selected) return text; // reverse video alone: tones would fight it
    // Closed rows stay, dimmed; a failure stays red.
    return paint.tone(text, row.state === 'closed' && cell.tone !== 'bad' ? 'dim' : cell.tone);
  });
  const used = layout.columns.reduce((sum, c) => sum + c.fitted, 0) + layout.columns.length - 1;
  const line = cells.join(' ') + ' '.repeat(Math.max(0, layout.width - used));
  return selected ? paint.selected(line) : line;
}
