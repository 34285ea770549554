import { SORT_KEYS, type SortKey } from './connection-rows.js';

export type UiMode = 'table' | 'detail' | 'filter';

/** Everything the keyboard changes. Pure data: keys map one state to the next. */
export interface UiState {
  mode: UiMode;
  /** The selected connection (by id, so it survives re-sorting); null = none yet. */
  selected: number | null;
  /** First table row shown. */
  top: number;
  filter: string;
  /** The filter being typed after `/`. */
  draft: string;
  sort: SortKey;
  showHttp: boolean;
  paused: boolean;
  /** First detail line shown. */
  detailTop: number;
}

export const INITIAL_UI_STATE: UiState = {
  mode: 'table',
  selected: null,
  top: 0,
  filter: '',
  draft: '',
  sort: 'age',
  showHttp: true,
  paused: false,
  detailTop: 0,
};

/** What blessed tells us of a key: its name ("up", "q", "C-c") and the character typed. */
export interface KeyPress {
  full: string;
  ch?: string | undefined;
}

/** What the table and detail view look like right now, for moving within them. */
export interface ViewExtent {
  /** Row ids in display order. */
  rowIds: readonly number[];
  /** Rows that fit on screen. */
  tableHeight: number;
  detailLines: number;
  detailHeight: number;
}

export type UiCommand = 'quit' | 'export' | 'clear-closed';

export interface KeyResult {
  state: UiState;
  command: UiCommand | null;
}

function clamp(n: number, low: number, high: number): number {
  return Math.max(low, Math.min(high, n));
}

/** Keeps the selection valid and visible after rows came, went or moved. */
export function settle(state: UiState, view: ViewExtent): UiState {
  const ids = view.rowIds;
  if (ids.length === 0) return state.selected === null && state.top === 0 ? state : { ...state, selected: null, top: 0 };
  let index = state.selected === null ? -1 : ids.indexOf(state.selected);
  if (index < 0) index = state.selected === null ? 0 : clamp(state.top, 0, ids.length - 1);
  const height = Math.max(1, view.tableHeight);
  let top = clamp(state.top, 0, Math.max(0, ids.length - height));
  if (index < top) top = index;
  if (index >= top + height) top = index - height + 1;
  const selected = ids[index] ?? null;
  const detailTop = clamp(state.detailTop, 0, Math.max(0, view.detailLines - view.detailHeight));
  if (selected === state.selected && top === state.top && detailTop === state.detailTop) return state;
  return { ...state, selected, top, detailTop };
}

function move(state: UiState, view: ViewExtent, delta: number | 'home' | 'end'): UiState {
  const ids = view.rowIds;
  if (ids.length === 0) return state;
  const current = state.selected === null ? 0 : Math.max(0, ids.indexOf(state.selected));
  const index = delta === 'home' ? 0 : delta === 'end' ? ids.length - 1 : clamp(current + delta, 0, ids.length - 1);
  return settle({ ...state, selected: ids[index] ?? null }, view);
}

function scroll(state: UiState, view: ViewExtent, delta: number | 'home' | 'end'): UiState {
  const last = Math.max(0, view.detailLines - view.detailHeight);
  const detailTop = delta === 'home' ? 0 : delta === 'end' ? last : clamp(state.detailTop + delta, 0, last);
  return { ...state, detailTop };
}

function filterKey(state: UiState, key: KeyPress): UiState {
  switch (key.full) {
    case 'enter':
      return { ...state, mode: 'table', filter: state.draft.trim(), top: 0 };
    case 'escape':
      return { ...state, mode: 'table', draft: state.filter };
    case 'backspace':
      return { ...state, draft: state.draft.slice(0, -1) };
    case 'C-u':
      return { ...state, draft: '' };
    default: {
      const ch = key.ch;
      // Printable characters only: the filter is shown on screen.
      if (ch && ch.length === 1 && ch >= ' ' && ch !== '\x7f') return { ...state, draft: state.draft + ch };
      return state;
    }
  }
}

/** One key. `q` and Ctrl-C quit from anywhere (Ctrl-C even while typing a filter). */
export function onKey(state: UiState, key: KeyPress, view: ViewExtent): KeyResult {
  const same = (s: UiState): KeyResult => ({ state: s, command: null });
  if (key.full === 'C-c') return { state, command: 'quit' };
  if (state.mode === 'filter') return same(filterKey(state, key));
  const page = Math.max(1, (state.mode === 'detail' ? view.detailHeight : view.tableHeight) - 1);
  const go = state.mode === 'detail' ? scroll : move;
  switch (key.full) {
    case 'q':
      return { state, command: 'quit' };
    case 'up':
    case 'k':
      return same(go(state, view, -1));
    case 'down':
    case 'j':
      return same(go(state, view, 1));
    case 'pageup':
      return same(go(state, view, -page));
    case 'pagedown':
    case 'space':
      return same(go(state, view, page));
    case 'home':
    case 'g':
      return same(go(state, view, 'home'));
    case 'end':
    case 'S-g':
      return same(go(state, view, 'end'));
    case 'enter':
      return same(state.mode === 'table' && state.selected !== null ? { ...state, mode: 'detail', detailTop: 0 } : state);
    case 'escape':
      if (state.mode === 'detail') return same({ ...state, mode: 'table' });
      return same(state.filter ? { ...state, filter: '', draft: '' } : state);
    case '/':
      return same({ ...state, mode: 'filter', draft: state.filter });
    case 's': {
      const next = SORT_KEYS[(SORT_KEYS.indexOf(state.sort) + 1) % SORT_KEYS.length] ?? 'age';
      return same({ ...state, sort: next, top: 0 });
    }
    case 'h':
      return same({ ...state, showHttp: !state.showHttp });
    case 'p':
      return same({ ...state, paused: !state.paused });
    case 'c':
      return { state, command: 'clear-closed' };
    case 'e':
      return { state, command: 'export' };
    default:
      return same(state);
  }
}
