import { describe, it, expect } from 'vitest';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import type { ConnectionRow } from '../../src/tui/connection-rows.js';
import { layoutTable, noteCell, tableHeading, tableLine } from '../../src/tui/connection-table.js';
import { Paint, colorWanted } from '../../src/tui/paint.js';
import {
  T0,
  UNSAFE_CHARS,
  b64,
  closeEvent,
  finEvent,
  frameEvent,
  handshakeRequestEvent,
  handshakeResponseEvent,
  httpErrorEvent,
  httpRequestEvent,
  httpResponseEvent,
  openEvent,
  proxyCloseEvent,
  query,
  rowOf,
  rowsOf,
  rstEvent,
  untag,
  visibleWidth,
  wsOpened,
} from '../support/tui-fixtures.js';

const WIDTHS = [60, 80, 120, 200] as const;
const nginx60: HopTimeout = { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'both-idle' };
const HOSTILE_PATH = '/a\x1b[2J\x1b[31m{red-fg}\u202e';

const ids = (width: number): string[] => layoutTable(width).columns.map((c) => c.id);

/** Connections of every kind and fate, so every cell is exercised. */
function sampleRows(now = T0 + 100_000): ConnectionRow[] {
  const hb = b64('hb');
  const events: CaptureEvent[] = [
    // 1: live ws, upstream pinging, quiet for 50 s (warn against 60 s).
    ...wsOpened(1, { url: '/api/v4/websocket?access_token=abc123def456', headers: [['X-Real-IP', '203.0.113.5']] }),
    frameEvent({ conn: 1, t: T0 + 40_000, side: 'upstream', opcode: 9, length: 2, preview: hb }),
    frameEvent({ conn: 1, t: T0 + 40_003.5, side: 'client', opcode: 10, length: 2, preview: hb }),
    frameEvent({ conn: 1, t: T0 + 50_000, side: 'client', opcode: 1, length: 2_000_000 }),
    frameEvent({ conn: 1, t: T0 + 50_000, side: 'upstream', opcode: 2, length: 1234 }),
    // 2: live ws, quiet for 70 s (over).
    ...wsOpened(2, { t: T0 + 29_000, url: '/中文/路径/😀/very/long/path/that/will/not/fit/anywhere/at/all/even/at/two/hundred/columns/wide/really' }),
    // 3: closed by the upstream, close 1001.
    ...wsOpened(3),
    frameEvent({ conn: 3, t: T0 + 5000, side: 'upstream', opcode: 8, length: 5, closeCode: 1001, closeReason: 'bye', idle: { client: 4000, upstream: 4997 } }),
    finEvent(3, T0 + 5001, 'upstream'),
    closeEvent(3, T0 + 5002),
    // 4: failed handshake.
    openEvent(4),
    handshakeRequestEvent(4, T0 + 1),
    handshakeResponseEvent(4, T0 + 2, { statusCode: 403, reason: 'Forbidden', upgraded: false }),
    // 5: plain HTTP, answered 200.
    openEvent(5),
    httpRequestEvent(5, T0 + 1),
    httpResponseEvent({ conn: 5, t: T0 + 2, exchange: 1 }),
    // 6: tcp.
    openEvent(6, { mode: 'tcp' }),
  ];
  return rowsOf(events, query(now, { timeouts: [nginx60] }));
}

function allLines(width: number, paint: Paint, rows = sampleRows()): string[] {
  const layout = layoutTable(width);
  return [tableHeading(layout, paint), ...rows.map((r, i) => tableLine(r, layout, paint, i === 1))];
}

describe('layoutTable', () => {
  it('shows every column at 200 and gives the path the rest', () => {
    const layout = layoutTable(200);
    expect(ids(200)).toEqual(['conn', 'kind', 'client', 'path', 'state', 'age', 'up', 'down', 'idle-up', 'idle-down', 'rtt', 'note']);
    const path = layout.columns.find((c) => c.id === 'path')!;
    expect(path.fitted).toBeGreaterThan(12);
    expect(layout.columns.reduce((sum, c) => sum + c.fitted, 0) + layout.columns.length - 1).toBe(200);
  });

  it('drops the least important columns first as the terminal narrows', () => {
    expect(ids(120)).toEqual(['conn', 'path', 'state', 'age', 'up', 'down', 'idle-up', 'idle-down', 'note']);
    expect(ids(80)).toEqual(['conn', 'path', 'state', 'idle-up', 'idle-down', 'note']);
    expect(ids(60)).toEqual(['conn', 'path', 'state', 'idle-up', 'idle-down']);
  });

  it('keeps #, path, state, both idle columns and the timeout / closed-by column at 80', () => {
    const titles = layoutTable(80).columns.map((c) => c.title);
    for (const title of ['#', 'path', 'state', 'idle c→u', 'idle u→c', 'timeout / closed by']) expect(titles).toContain(title);
  });

  it('never shows c→u without u→c', () => {
    for (let width = 40; width <= 220; width++) {
      const shown = ids(width);
      expect(shown.includes('up'), `width ${width}`).toBe(shown.includes('down'));
      expect(shown.includes('idle-up'), `width ${width}`).toBe(shown.includes('idle-down'));
    }
  });

  it('uses exactly the width for every width the always-shown columns fit in', () => {
    for (let width = 48; width <= 220; width++) {
      const layout = layoutTable(width);
      const used = layout.columns.reduce((sum, c) => sum + c.fitted, 0) + layout.columns.length - 1;
      expect(used, `width ${width}`).toBe(width);
      expect(layout.width).toBe(width);
    }
  });
});

describe('tableHeading and tableLine', () => {
  for (const width of WIDTHS) {
    it(`every line is exactly ${width} columns once the tags are interpreted`, () => {
      for (const paint of [new Paint(true), new Paint(false)]) {
        for (const line of allLines(width, paint)) expect(visibleWidth(line), untag(line)).toBe(width);
      }
    });
  }

  it('puts the cells under their titles', () => {
    const layout = layoutTable(120);
    const heading = untag(tableHeading(layout, new Paint(false)));
    const row = sampleRows().find((r) => r.conn === 1)!;
    const line = untag(tableLine(row, layout, new Paint(false), false));
    const stateAt = heading.indexOf('state');
    expect(line.slice(stateAt, stateAt + 'open'.length)).toBe('open');
    // '#' is right-aligned in 5 columns.
    expect(line.slice(0, 5)).toBe('    1');
    expect(heading.slice(0, 5)).toBe('    #');
  });

  it('shows traffic, idle, rtt and age in compact form', () => {
    const layout = layoutTable(200);
    const row = sampleRows().find((r) => r.conn === 1)!;
    const line = untag(tableLine(row, layout, new Paint(false), false));
    expect(line).toContain('ws');
    expect(line).toContain('203.0.113.5');
    expect(line).toContain('/api/v4/websocket?access_token=[redacted]');
    expect(line).not.toContain('abc123def456');
    expect(line).toContain('2f 1.9M'); // client: the pong and a 2 MB text frame
    expect(line).toContain('2f 1.2K');
    expect(line).toContain('1m40s'); // age
    expect(line).toContain('50s'); // idle both ways
    expect(line).toContain('3.50ms'); // ping rtt
    expect(line).toContain('nginx 60s in 10s');
  });

  it('cuts a wide-character path with an ellipsis and stays aligned', () => {
    const row = sampleRows().find((r) => r.conn === 2)!;
    for (const width of WIDTHS) {
      const line = untag(tableLine(row, layoutTable(width), new Paint(true), false));
      expect(line).toContain('…');
      expect(visibleWidth(line)).toBe(width);
    }
  });

  it('renders a hostile path harmlessly: no ESC, controls or bidi, braces shown literally', () => {
    const events = wsOpened(1, { url: HOSTILE_PATH, headers: [['X-Forwarded-For', '\x1b]0;owned\x07{bold}']] });
    const row = rowOf(events, 1, query(T0 + 10, { redact: false }));
    for (const width of WIDTHS) {
      for (const paint of [new Paint(true), new Paint(false)]) {
        for (const selected of [false, true]) {
          const tagged = tableLine(row, layoutTable(width), paint, selected);
          expect(tagged).not.toMatch(UNSAFE_CHARS);
          expect(untag(tagged)).not.toMatch(UNSAFE_CHARS);
          expect(visibleWidth(tagged)).toBe(width);
          // Nothing from the wire opens a tag of its own: without colour, and
          // not selected, the only tags left are the escaped braces.
          if (!paint.color && !selected) expect(tagged.replace(/\{(open|close)\}/g, '')).not.toMatch(/[{}]/);
          expect(tagged).not.toContain('{red-fg}');
        }
      }
    }
    const wide = untag(tableLine(row, layoutTable(200), new Paint(true), false));
    expect(wide).toContain('{red-fg}');
    expect(wide).toContain('/a\\x1b[2J\\x1b[31m{red-fg}\\u202e');
    expect(wide).toContain('\\x1b]0;owned'); // the client cell, cut to its 15 columns
  });

  it('marks the selected line with reverse video and no tones inside', () => {
    const rows = sampleRows();
    const layout = layoutTable(120);
    const over = rows.find((r) => r.conn === 2)!;
    const line = tableLine(over, layout, new Paint(true), true);
    expect(line.startsWith('{inverse}')).toBe(true);
    expect(line.endsWith('{/inverse}')).toBe(true);
    expect(line.slice('{inverse}'.length, -'{/inverse}'.length)).not.toMatch(/\{\/?[a-z-]+\}/);
  });

  it('NO_COLOR: no colour tags at all; warnings bold, alarms bold and underlined', () => {
    const paint = new Paint(false);
    const lines = allLines(120, paint);
    for (const line of lines) {
      expect(line).not.toContain('-fg}');
      expect(line).not.toContain('-bg}');
    }
    const rows = sampleRows();
    const layout = layoutTable(120);
    const warn = tableLine(rows.find((r) => r.conn === 1)!, layout, paint, false);
    const over = tableLine(rows.find((r) => r.conn === 2)!, layout, paint, false);
    expect(warn).toContain('{bold}');
    expect(warn).not.toContain('{underline}');
    expect(over).toContain('{bold}{underline}');
  });

  it('colour: warn is yellow, over is red, closed is gray, a failure stays red', () => {
    const paint = new Paint(true);
    const rows = sampleRows();
    const layout = layoutTable(120);
    const line = (conn: number): string => tableLine(rows.find((r) => r.conn === conn)!, layout, paint, false);
    expect(line(1)).toContain('{yellow-fg}');
    expect(line(1)).toContain('{yellow-fg}     50s{/yellow-fg}');
    expect(line(1)).not.toContain('{red-fg}');
    expect(line(2)).toContain('{red-fg}{bold}');
    expect(line(2)).toContain('{red-fg}{bold}nginx 60s over by 11s');
    expect(line(3)).toContain('{gray-fg}');
    expect(line(3)).not.toContain('{yellow-fg}');
    expect(line(4)).toContain('{red-fg}failed: answered 403');
  });

  it('colorWanted honours NO_COLOR', () => {
    expect(colorWanted({})).toBe(true);
    expect(colorWanted({ NO_COLOR: '' })).toBe(true);
    expect(colorWanted({ NO_COLOR: '1' })).toBe(false);
  });
});

describe('noteCell', () => {
  const note = (events: CaptureEvent[], conn = 1, timeouts: HopTimeout[] = []) => noteCell(rowOf(events, conn, query(T0 + 100_000, { timeouts })));

  it('closed by the upstream with close 1001, after 3 s of both-way silence', () => {
    const events = [
      ...wsOpened(1),
      frameEvent({ conn: 1, t: T0 + 50_000, side: 'upstream', opcode: 8, length: 5, closeCode: 1001, idle: { client: 45_000, upstream: 3000 } }),
      closeEvent(1, T0 + 50_010),
    ];
    expect(note(events)).toEqual({ text: 'upstream close 1001 idle 3s', tone: 'dim' });
  });

  it('a FIN by the client', () => {
    const events = [...wsOpened(1), finEvent(1, T0 + 9000, 'client', { client: 65_000, upstream: 61_000 }), closeEvent(1, T0 + 9001)];
    expect(note(events).text).toBe('client fin idle 1m01s');
  });

  it('a reset by the upstream', () => {
    const events = [...wsOpened(1), rstEvent(1, T0 + 10, 'upstream'), closeEvent(1, T0 + 11)];
    expect(note(events).text).toBe('upstream rst idle 0s');
  });

  it('a close whose order is unknown (the upstream was not read while the client was not reading) names no side', () => {
    const paused = { upstream: T0 + 500 };
    const events = [...wsOpened(1), finEvent(1, T0 + 1500, 'client', undefined, paused), finEvent(1, T0 + 2000, 'upstream', undefined, paused), closeEvent(1, T0 + 2001)];
    expect(note(events)).toEqual({ text: 'close order unknown', tone: 'warn' });
    const caughtUp = [...wsOpened(1), finEvent(1, T0 + 1500, 'client', undefined, paused), finEvent(1, T0 + 2000, 'upstream'), closeEvent(1, T0 + 2001)];
    expect(note(caughtUp).text).toBe('client fin idle 0s');
  });

  it('wstap shutting down reads "wstap"', () => {
    const events = [...wsOpened(1), proxyCloseEvent(1, T0 + 4000, { client: 4000, upstream: 2000 }), closeEvent(1, T0 + 4001)];
    expect(note(events).text).toBe('wstap fin idle 2s');
  });

  it('a failed handshake says what the upstream answered', () => {
    const events: CaptureEvent[] = [openEvent(1), handshakeRequestEvent(1, T0 + 1), handshakeResponseEvent(1, T0 + 2, { statusCode: 400, upgraded: false })];
    expect(note(events)).toEqual({ text: 'failed: answered 400', tone: 'bad' });
  });

  it('a handshake the upstream never answered', () => {
    const events: CaptureEvent[] = [openEvent(1), handshakeRequestEvent(1, T0 + 1), finEvent(1, T0 + 2, 'upstream'), closeEvent(1, T0 + 3)];
    expect(note(events)).toEqual({ text: 'failed: no answer', tone: 'bad' });
  });

  it('an unreachable upstream wstap answered 502 for', () => {
    const events: CaptureEvent[] = [openEvent(1), httpRequestEvent(1, T0 + 1), httpErrorEvent(1, T0 + 2)];
    expect(note(events).text).toBe('failed: answered 502');
    const unanswered: CaptureEvent[] = [openEvent(1), httpRequestEvent(1, T0 + 1), httpErrorEvent(1, T0 + 2, { answeredStatus: null })];
    expect(note(unanswered).text).toBe('failed: upstream failed');
  });

  it('plain HTTP shows its status, live or closed', () => {
    const events: CaptureEvent[] = [openEvent(1), httpRequestEvent(1, T0 + 1), httpResponseEvent({ conn: 1, t: T0 + 2, exchange: 1, statusCode: 204 })];
    expect(note(events)).toEqual({ text: 'HTTP 204', tone: 'plain' });
    expect(note([...events, closeEvent(1, T0 + 3)])).toEqual({ text: 'closed after HTTP 204', tone: 'dim' });
  });

  it('a live connection with timeouts shows the nearest countdown in its level\'s tone', () => {
    const events = [...wsOpened(1), frameEvent({ conn: 1, t: T0 + 50_000, side: 'client', opcode: 1, length: 1 }), frameEvent({ conn: 1, t: T0 + 50_000, side: 'upstream', opcode: 1, length: 1 })];
    expect(note(events, 1, [nginx60])).toEqual({ text: 'nginx 60s in 10s', tone: 'warn' });
    expect(note(events, 1, [{ ...nginx60, seconds: 30 }])).toEqual({ text: 'nginx 30s over by 20s', tone: 'over' });
    expect(note(events, 1, [{ ...nginx60, seconds: 600 }])).toEqual({ text: 'nginx 10m in 9m10s', tone: 'plain' });
  });

  it('a live connection without timeouts or status is empty', () => {
    expect(note(wsOpened(1))).toEqual({ text: '', tone: 'plain' });
  });
});
