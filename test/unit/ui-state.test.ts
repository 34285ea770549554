import { describe, it, expect } from 'vitest';
import { INITIAL_UI_STATE, onKey, settle, type KeyPress, type UiState, type ViewExtent } from '../../src/tui/ui-state.js';

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** 20 rows (ids 101..120), 5 visible; a 50-line detail view showing 10. */
const VIEW: ViewExtent = { rowIds: range(101, 120), tableHeight: 5, detailLines: 50, detailHeight: 10 };
const EMPTY: ViewExtent = { rowIds: [], tableHeight: 5, detailLines: 0, detailHeight: 10 };

function key(full: string, ch?: string): KeyPress {
  return ch === undefined ? { full } : { full, ch };
}

/** A printable key as blessed reports it. */
function typed(ch: string): KeyPress {
  return { full: ch, ch };
}

function press(state: UiState, keys: ReadonlyArray<KeyPress | string>, view: ViewExtent = VIEW): UiState {
  let s = state;
  for (const k of keys) {
    const result = onKey(s, typeof k === 'string' ? key(k) : k, view);
    expect(result.command).toBeNull();
    s = result.state;
  }
  return s;
}

const start = (): UiState => settle(INITIAL_UI_STATE, VIEW);

/** The selection's index is within [top, top + height). */
function expectVisible(state: UiState, view: ViewExtent = VIEW): void {
  const index = view.rowIds.indexOf(state.selected ?? -1);
  expect(index).toBeGreaterThanOrEqual(0);
  expect(index).toBeGreaterThanOrEqual(state.top);
  expect(index).toBeLessThan(state.top + view.tableHeight);
}

describe('settle', () => {
  it('selects the first row once rows exist', () => {
    expect(INITIAL_UI_STATE.selected).toBeNull();
    const s = start();
    expect(s).toMatchObject({ selected: 101, top: 0 });
  });

  it('returns the very same state when nothing needs to change', () => {
    const s = start();
    expect(settle(s, VIEW)).toBe(s);
    expect(settle(INITIAL_UI_STATE, EMPTY)).toBe(INITIAL_UI_STATE);
  });

  it('clears the selection when the rows are gone', () => {
    const s = press(start(), ['end']);
    expect(settle(s, EMPTY)).toMatchObject({ selected: null, top: 0 });
  });

  it('follows the selected connection when the rows reorder', () => {
    const s = press(start(), ['down', 'down']);
    expect(s.selected).toBe(103);
    const reordered: ViewExtent = { ...VIEW, rowIds: [...VIEW.rowIds].reverse() }; // 103 is now at index 17
    const after = settle(s, reordered);
    expect(after.selected).toBe(103);
    expect(after.top).toBe(13);
    expectVisible(after, reordered);
    // And moving continues from its new place.
    expect(onKey(after, key('down'), reordered).state.selected).toBe(102);
  });

  it('keeps the selection visible when rows appear above it', () => {
    const s = press(start(), ['down']); // 102 at index 1, top 0
    const grown: ViewExtent = { ...VIEW, rowIds: [...range(1, 10), ...VIEW.rowIds] };
    const after = settle(s, grown);
    expect(after.selected).toBe(102);
    expectVisible(after, grown);
  });

  it('picks a row near the old position when the selected one disappears', () => {
    const s = press(start(), ['pagedown', 'pagedown']); // 109, top 4
    expect(s).toMatchObject({ selected: 109, top: 4 });
    const without: ViewExtent = { ...VIEW, rowIds: VIEW.rowIds.filter((id) => id !== 109) };
    const after = settle(s, without);
    expect(without.rowIds).toContain(after.selected);
    expectVisible(after, without);
  });

  it('clamps top when the list shrinks below it', () => {
    const s = press(start(), ['end']);
    const short: ViewExtent = { ...VIEW, rowIds: range(101, 103) };
    const after = settle(s, short);
    expect(after.top).toBe(0);
    expect(after.selected).toBe(103);
  });

  it('clamps the detail scroll when the detail view got shorter', () => {
    const s = press({ ...start(), mode: 'detail' }, ['end']);
    expect(s.detailTop).toBe(40);
    expect(settle(s, { ...VIEW, detailLines: 15 }).detailTop).toBe(5);
    expect(settle(s, { ...VIEW, detailLines: 3 }).detailTop).toBe(0);
  });
});

describe('onKey: moving in the table', () => {
  it('down/j and up/k move one row and clamp at the ends', () => {
    let s = press(start(), ['down', typed('j')]);
    expect(s.selected).toBe(103);
    s = press(s, ['up', typed('k'), 'up', 'k']);
    expect(s).toMatchObject({ selected: 101, top: 0 });
    s = press(s, ['end', 'down', 'j']);
    expect(s.selected).toBe(120);
  });

  it('scrolls the table to keep the selection visible', () => {
    const s = press(start(), ['down', 'down', 'down', 'down', 'down', 'down']);
    expect(s).toMatchObject({ selected: 107, top: 2 });
    const back = press(s, ['up', 'up', 'up', 'up', 'up']);
    expect(back).toMatchObject({ selected: 102, top: 1 });
    expectVisible(back);
  });

  it('pageup/pagedown move a page less one row, clamped', () => {
    let s = press(start(), ['pagedown']);
    expect(s).toMatchObject({ selected: 105, top: 0 });
    s = press(s, ['pagedown']);
    expect(s).toMatchObject({ selected: 109, top: 4 });
    s = press(s, ['pagedown', 'pagedown', 'pagedown', 'pagedown', 'space']);
    expect(s).toMatchObject({ selected: 120, top: 15 });
    s = press(s, ['pageup']);
    expect(s).toMatchObject({ selected: 116, top: 15 });
    s = press(s, ['pageup', 'pageup', 'pageup', 'pageup', 'pageup']);
    expect(s).toMatchObject({ selected: 101, top: 0 });
  });

  it('home/g and end/G jump to the ends', () => {
    let s = press(start(), ['end']);
    expect(s).toMatchObject({ selected: 120, top: 15 });
    s = press(s, ['home']);
    expect(s).toMatchObject({ selected: 101, top: 0 });
    s = press(s, ['S-g']);
    expect(s.selected).toBe(120);
    s = press(s, [typed('g')]);
    expect(s.selected).toBe(101);
  });

  it('stays visible after any sequence of moves', () => {
    const moves = ['down', 'pagedown', 'j', 'end', 'pageup', 'k', 'up', 'pageup', 'home', 'pagedown', 'pagedown', 'down'];
    let s = start();
    for (const m of moves) {
      s = press(s, [m]);
      expectVisible(s);
    }
  });

  it('moving with no rows changes nothing', () => {
    const s = settle(INITIAL_UI_STATE, EMPTY);
    for (const m of ['down', 'up', 'pagedown', 'end', 'home']) expect(onKey(s, key(m), EMPTY).state).toBe(s);
  });

  it('a tiny table still pages by one row', () => {
    const one: ViewExtent = { ...VIEW, tableHeight: 1 };
    const s = press(settle(INITIAL_UI_STATE, one), ['pagedown'], one);
    expect(s).toMatchObject({ selected: 102, top: 1 });
  });
});

describe('onKey: detail view', () => {
  it('Enter opens the detail of the selected row, from the top', () => {
    const s = press({ ...start(), detailTop: 7 }, ['down', 'enter']);
    expect(s).toMatchObject({ mode: 'detail', selected: 102, detailTop: 0 });
  });

  it('Enter does nothing without a selection', () => {
    const s = settle(INITIAL_UI_STATE, EMPTY);
    const after = onKey(s, key('enter'), EMPTY);
    expect(after.state.mode).toBe('table');
    expect(after.state).toBe(s);
  });

  it('Esc closes the detail and keeps the selection', () => {
    const s = press(start(), ['down', 'enter', 'escape']);
    expect(s).toMatchObject({ mode: 'table', selected: 102 });
  });

  it('scrolls within the content and clamps at both ends', () => {
    let s = press(start(), ['enter']);
    s = press(s, ['up', 'pageup', 'home']);
    expect(s.detailTop).toBe(0);
    s = press(s, ['down', 'j']);
    expect(s.detailTop).toBe(2);
    s = press(s, ['pagedown']);
    expect(s.detailTop).toBe(11);
    s = press(s, ['end']);
    expect(s.detailTop).toBe(40); // 50 lines, 10 shown
    s = press(s, ['down', 'pagedown', 'space']);
    expect(s.detailTop).toBe(40);
    s = press(s, ['k', 'pageup']);
    expect(s.detailTop).toBe(30);
    // Scrolling the detail never moves the table selection.
    expect(s.selected).toBe(101);
  });

  it('does not scroll content that fits', () => {
    const short: ViewExtent = { ...VIEW, detailLines: 4 };
    const s = press(press(start(), ['enter'], short), ['down', 'pagedown', 'end'], short);
    expect(s.detailTop).toBe(0);
  });
});

describe('onKey: filter', () => {
  it('/ starts typing, characters and backspace edit, Enter applies (trimmed)', () => {
    let s = press(start(), [typed('/')]);
    expect(s).toMatchObject({ mode: 'filter', draft: '' });
    s = press(s, [key('space', ' '), typed('c'), typed('h'), typed('x'), 'backspace', typed('a'), typed('t'), key('space', ' ')]);
    expect(s.draft).toBe(' chat ');
    expect(s.filter).toBe('');
    s = press(s, ['enter']);
    expect(s).toMatchObject({ mode: 'table', filter: 'chat', top: 0 });
  });

  it('letters that are commands elsewhere are text while typing', () => {
    const result = onKey(press(start(), ['/']), typed('q'), VIEW);
    expect(result.command).toBeNull();
    const s = press(result.state, [typed('s'), typed('c'), typed('e'), typed('h'), typed('p'), typed('j'), typed('/')]);
    expect(s).toMatchObject({ mode: 'filter', draft: 'qscehpj/', sort: 'age', showHttp: true, paused: false });
  });

  it('Esc cancels the draft and keeps the filter that was applied', () => {
    let s = press(start(), ['/', typed('o'), typed('l'), typed('d'), 'enter']);
    expect(s.filter).toBe('old');
    s = press(s, ['/']);
    expect(s.draft).toBe('old'); // editing starts from the current filter
    s = press(s, ['backspace', 'backspace', 'backspace', typed('n'), typed('e'), typed('w'), 'escape']);
    expect(s).toMatchObject({ mode: 'table', filter: 'old', draft: 'old' });
  });

  it('C-u empties the draft; backspace on an empty draft is harmless', () => {
    const s = press(start(), ['/', typed('a'), typed('b'), 'C-u', 'backspace']);
    expect(s.draft).toBe('');
    expect(s.mode).toBe('filter');
  });

  it('control characters, DEL and non-character keys are not added', () => {
    const s = press(start(), [
      '/',
      typed('a'),
      key('C-a', '\x01'),
      key('tab', '\t'),
      key('escape-like', '\x1b'),
      key('delete', '\x7f'),
      key('C-h', '\b'),
      key('up'),
      key('f1'),
      typed('b'),
    ]);
    expect(s.draft).toBe('ab');
    expect(s.mode).toBe('filter');
  });

  it('takes non-ASCII letters', () => {
    const s = press(start(), ['/', typed('é'), typed('中'), 'enter']);
    expect(s.filter).toBe('é中');
  });

  it('Esc in the table clears an applied filter, and otherwise does nothing', () => {
    const filtered = press(start(), ['/', typed('x'), 'enter']);
    const cleared = press(filtered, ['escape']);
    expect(cleared).toMatchObject({ filter: '', draft: '', mode: 'table' });
    expect(onKey(cleared, key('escape'), VIEW).state).toBe(cleared);
  });

  it('applying a filter scrolls back to the top', () => {
    const s = press(start(), ['end', '/', typed('1'), 'enter']);
    expect(s.top).toBe(0);
  });
});

describe('onKey: toggles and commands', () => {
  it('s cycles the sort age → idle → bytes → age and scrolls to the top', () => {
    let s = press(start(), ['end']);
    const sorts: string[] = [];
    for (let i = 0; i < 3; i++) {
      s = press(s, [typed('s')]);
      sorts.push(s.sort);
      expect(s.top).toBe(0);
    }
    expect(sorts).toEqual(['idle', 'bytes', 'age']);
  });

  it('h toggles HTTP rows, p toggles pause', () => {
    let s = press(start(), [typed('h'), typed('p')]);
    expect(s).toMatchObject({ showHttp: false, paused: true });
    s = press(s, [typed('h'), typed('p')]);
    expect(s).toMatchObject({ showHttp: true, paused: false });
  });

  it('c, e and q return commands and leave the state alone', () => {
    const s = press(start(), ['down']);
    for (const [k, command] of [['c', 'clear-closed'], ['e', 'export'], ['q', 'quit']] as const) {
      const result = onKey(s, typed(k), VIEW);
      expect(result.command).toBe(command);
      expect(result.state).toBe(s);
    }
  });

  it('q and e work from the detail view too', () => {
    const s = press(start(), ['enter']);
    expect(onKey(s, typed('q'), VIEW).command).toBe('quit');
    expect(onKey(s, typed('e'), VIEW).command).toBe('export');
  });

  it('C-c quits from the table, the detail view and while typing a filter', () => {
    const table = start();
    const detail = press(table, ['enter']);
    const filter = press(table, ['/', typed('a')]);
    for (const s of [table, detail, filter]) {
      const result = onKey(s, key('C-c', '\x03'), VIEW);
      expect(result.command).toBe('quit');
      expect(result.state).toBe(s);
    }
  });

  it('unknown keys change nothing', () => {
    const s = start();
    for (const k of [typed('x'), typed('Z'), key('f5'), key('C-z', '\x1a')]) {
      const result = onKey(s, k, VIEW);
      expect(result.command).toBeNull();
      expect(result.state).toBe(s);
    }
  });
});
