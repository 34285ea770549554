import { EMPTY_DIAGNOSIS_CONTEXT } from '../../src/analysis/connection-diagnosis.js';
import { describe, it, expect } from 'vitest';
import { FrameHistory } from '../../src/analysis/frame-history.js';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import type { ConnectionRow } from '../../src/tui/connection-rows.js';
import { detailLines, type StyledLine } from '../../src/tui/detail-lines.js';
import { Paint } from '../../src/tui/paint.js';
import { composeScreen, screenRegions, type FrameInput, type SessionFacts } from '../../src/tui/screen-frame.js';
import { INITIAL_UI_STATE, type UiState } from '../../src/tui/ui-state.js';
import {
  T0,
  UNSAFE_CHARS,
  b64,
  closeEvent,
  finEvent,
  fold,
  frameEvent,
  handshakeRequestEvent,
  handshakeResponseEvent,
  httpRequestEvent,
  httpResponseEvent,
  openEvent,
  query,
  rowsOf,
  untag,
  visibleWidth,
  wsOpened,
} from '../support/tui-fixtures.js';
import { connectionRows } from '../../src/tui/connection-rows.js';

const SIZES = [
  [80, 24],
  [120, 40],
  [40, 10],
] as const;

const nginx60: HopTimeout = { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'both-idle' };
const NOW = T0 + 100_000;

const FACTS: SessionFacts = {
  listen: '127.0.0.1:8066',
  target: '127.0.0.1:8065',
  profile: 'mattermost',
  diagnosis: { ...EMPTY_DIAGNOSIS_CONTEXT, timeouts: [nginx60] },
  frozenAt: null,
  logFile: '/tmp/wstap/wstap.log',
};

function events(): CaptureEvent[] {
  return [
    ...wsOpened(1, { url: '/api/v4/websocket' }),
    frameEvent({ conn: 1, t: T0 + 50_000, side: 'client', opcode: 1, length: 5, preview: b64('hello') }),
    frameEvent({ conn: 1, t: T0 + 50_000, side: 'upstream', opcode: 1, length: 5, preview: b64('world') }),
    ...wsOpened(2, { url: '/socket.io/?EIO=4&transport=websocket' }),
    frameEvent({ conn: 2, t: T0 + 9000, side: 'upstream', opcode: 8, length: 2, closeCode: 1001, idle: { client: 8000, upstream: 9000 } }),
    finEvent(2, T0 + 9001, 'upstream'),
    closeEvent(2, T0 + 9002),
    openEvent(3),
    handshakeRequestEvent(3, T0 + 1),
    handshakeResponseEvent(3, T0 + 2, { statusCode: 502, reason: 'Bad Gateway', upgraded: false }),
    openEvent(4),
    httpRequestEvent(4, T0 + 1, { url: '/api/v4/users/me' }),
    httpResponseEvent({ conn: 4, t: T0 + 2, exchange: 1 }),
  ];
}

const ROWS = rowsOf(events(), query(NOW, { timeouts: [nginx60] }));

function detailFor(conn: number, width: number): StyledLine[] {
  const evs = events();
  const tracker = fold(evs);
  const history = new FrameHistory();
  for (const e of evs) history.apply(e);
  const summary = tracker.get(conn)!;
  const row = connectionRows([summary], query(NOW, { timeouts: [nginx60] }))[0]!;
  return detailLines({ summary, row, frames: history.framesOf(conn), droppedFrames: 0, redact: true, width });
}

function frame(overrides: Partial<FrameInput> & { width: number; height: number }): string[] {
  const state: UiState = { ...INITIAL_UI_STATE, selected: 1 };
  return composeScreen({
    paint: new Paint(true),
    facts: FACTS,
    counts: { open: 3, closed: 1, failed: 1, framesPerSecond: 12 },
    state,
    rows: ROWS,
    rowCount: (overrides.rows ?? ROWS).length,
    detail: null,
    log: [],
    capture: null,
    message: null,
    ...overrides,
  });
}

const plain = (lines: readonly string[]): string[] => lines.map(untag);
const screenText = (lines: readonly string[]): string => plain(lines).join('\n');

function expectExactSize(lines: readonly string[], width: number, height: number): void {
  expect(lines).toHaveLength(height);
  for (const line of lines) expect(visibleWidth(line), JSON.stringify(untag(line))).toBe(width);
}

describe('screenRegions', () => {
  it('gives the log pane 3 lines on tall terminals, 2 on medium, none on short ones', () => {
    expect(screenRegions(24)).toEqual({ bodyHeight: 15, logHeight: 3 });
    expect(screenRegions(40)).toEqual({ bodyHeight: 31, logHeight: 3 });
    expect(screenRegions(14)).toEqual({ bodyHeight: 6, logHeight: 2 });
    expect(screenRegions(10)).toEqual({ bodyHeight: 5, logHeight: 0 });
    expect(screenRegions(3)).toEqual({ bodyHeight: 1, logHeight: 0 });
  });
});

describe('composeScreen: size', () => {
  for (const [width, height] of SIZES) {
    const detail = detailFor(1, width);
    const cases: Array<[string, Partial<FrameInput>]> = [
      ['the detail view', { detail }],
      ['the detail view scrolled', { detail, state: { ...INITIAL_UI_STATE, selected: 1, mode: 'detail', detailTop: 4 } }],
      ['an empty table', { rows: [] }],
      ['the filter prompt', { rows: [], state: { ...INITIAL_UI_STATE, mode: 'filter', draft: 'x'.repeat(200) } }],
      ['a message, a long log line, frozen and paused', { rows: [], message: 'm'.repeat(300), log: ['l'.repeat(500)], facts: { ...FACTS, frozenAt: T0 }, state: { ...INITIAL_UI_STATE, paused: true } }],
    ];
    if (width >= 48) cases.push(['the table', {}], ['the table with a selection', { state: { ...INITIAL_UI_STATE, selected: 2 } }]);
    for (const [what, overrides] of cases) {
      it(`${width}x${height}, ${what}: exactly ${height} lines of ${width} columns`, () => {
        for (const paint of [new Paint(true), new Paint(false)]) expectExactSize(frame({ width, height, paint, ...overrides }), width, height);
      });
    }
  }

  it('stays exactly the size on very short terminals', () => {
    for (const height of [1, 2, 3, 4, 5, 8, 13, 14, 19, 20]) expectExactSize(frame({ width: 80, height, rows: ROWS }), 80, height);
  });

  // BUG (src/tui/connection-table.ts, layoutTable/tableLine): below 48 columns
  // the always-shown columns (# 5, path min 12, state 11, two idle 8s, with
  // separators) no longer fit; layoutTable keeps them anyway and tableLine pads
  // with max(0, width - used), so every table row is 48 columns wide on a
  // 40-column terminal (the heading alone is cut to fit). composeScreen
  // promises lines of exactly `width` columns.
  it('40x10 with rows: table lines are exactly 40 columns', () => {
    const lines = frame({ width: 40, height: 10 });
    expect(lines).toHaveLength(10);
    for (const line of lines) expect(visibleWidth(line), JSON.stringify(untag(line))).toBe(40);
  });
});

describe('composeScreen: content', () => {
  it('title: counts, frames per second, addresses; status: profile, timeouts, sort, http', () => {
    const lines = plain(frame({ width: 200, height: 24 }));
    expect(lines[0]).toMatch(/^wstap {2}open 3 {2}closed 1 {2}failed 1 {2}12 frames\/s {2}127\.0\.0\.1:8066 → 127\.0\.0\.1:8065 *$/);
    expect(lines[1]).toMatch(/^profile mattermost · timeouts nginx\.proxy_read_timeout 60s · sort age · http shown *$/);
  });

  it('status line: a capture file that refuses data, or lost events, leads it in red or yellow', () => {
    const refusing = frame({ width: 200, height: 24, capture: { lostEvents: 1234, refusing: 'ENOSPC', paused: null } });
    expect(plain(refusing)[1]).toMatch(/^CAPTURE FILE REFUSES DATA \(ENOSPC\), 1234 events lost so far · profile mattermost · /);
    expect(refusing[1]).toContain('{red-fg}');
    const resumed = frame({ width: 200, height: 24, capture: { lostEvents: 1, refusing: null, paused: null } });
    expect(plain(resumed)[1]).toMatch(/^capture: 1 event lost, marked in the file as capture\.gap · profile mattermost · /);
    expect(resumed[1]).toContain('{yellow-fg}');
    // A capture that lost nothing says nothing.
    expect(plain(frame({ width: 200, height: 24, capture: { lostEvents: 0, refusing: null, paused: null } }))[1]).toMatch(/^profile mattermost · /);
  });

  it('status line: a capture the disk guard paused says so in red, before any event is lost', () => {
    const pause = { dir: '/var/log/wstap', freeBytes: 10, minFreeBytes: 1024, resumeAboveBytes: 66560 };
    const paused = frame({ width: 200, height: 24, capture: { lostEvents: 0, refusing: null, paused: pause } });
    expect(plain(paused)[1]).toMatch(/^CAPTURE PAUSED: disk below --min-free, relaying continues, 0 events lost so far · profile mattermost · /);
    expect(paused[1]).toContain('{red-fg}');
  });

  it('status line: no timeouts, another sort, HTTP hidden, an applied filter', () => {
    const lines = plain(
      frame({ width: 200, height: 24, facts: { ...FACTS, profile: null, diagnosis: EMPTY_DIAGNOSIS_CONTEXT }, state: { ...INITIAL_UI_STATE, sort: 'bytes', showHttp: false, filter: 'chat' } }),
    );
    expect(lines[1]).toContain('profile none · timeouts none (--timeout NAME=SECONDS or a profile adds countdowns) · sort bytes · http hidden  filter "chat"');
  });

  it('the table: heading, one line per row in order, the selected one in reverse video', () => {
    const tagged = frame({ width: 120, height: 24, state: { ...INITIAL_UI_STATE, selected: 2 } });
    const lines = plain(tagged);
    expect(lines[2]).toContain('timeout / closed by');
    expect(lines[2]).toMatch(/^ {4}# path/);
    expect(lines.slice(3, 7).map((l) => l.trimStart().split(' ')[0])).toEqual(['1', '2', '3', '4']);
    expect(lines[3]).toContain('/api/v4/websocket');
    expect(lines[4]).toContain('upstream close 1001 idle 8s');
    expect(lines[5]).toContain('failed: answered 502');
    expect(lines[6]).toContain('/api/v4/users/me');
    expect(lines[6]).toContain('nginx 60s over by');
    expect(tagged[4]?.startsWith('{inverse}')).toBe(true);
    expect(tagged.filter((l) => l.includes('{inverse}'))).toHaveLength(1);
  });

  it('shows only the rows that fit (the caller passes them from `top` on)', () => {
    const many: ConnectionRow[] = Array.from({ length: 40 }, (_, i) => ({ ...ROWS[0]!, conn: 100 + i }));
    const lines = plain(frame({ width: 80, height: 24, rows: many.slice(10), rowCount: 40, state: { ...INITIAL_UI_STATE, selected: 110, top: 10 } }));
    const body = lines.slice(3, 3 + 15).map((l) => Number(l.slice(0, 5)));
    expect(body).toEqual(Array.from({ length: 15 }, (_, i) => 110 + i));
    expect(lines[3 + 15]).toMatch(/^── log ─+$/);
  });

  it('says it is waiting when there are no connections', () => {
    const lines = plain(frame({ width: 80, height: 24, rows: [] }));
    expect(lines[2]).toContain('path');
    expect(lines[3]).toMatch(/^waiting for connections… *$/);
  });

  it('says nothing matches an applied filter', () => {
    const lines = plain(frame({ width: 80, height: 24, rows: [], state: { ...INITIAL_UI_STATE, filter: 'zzz' } }));
    expect(lines[3]).toMatch(/^no connection matches "zzz" *$/);
  });

  it('the log pane shows the last lines under a rule', () => {
    const log = ['first', 'second', 'third', 'fourth', 'fifth'];
    const lines = plain(frame({ width: 80, height: 24, log }));
    // 24 lines: title, status, heading, 15 body, rule, 3 log lines, key help, message.
    expect(lines[18]).toMatch(/^── log ─+$/);
    expect(lines.slice(19, 22).map((l) => l.trimEnd())).toEqual(['third', 'fourth', 'fifth']);
    expect(screenText(frame({ width: 80, height: 24, log }))).not.toContain('second');
    // Fewer lines than the pane: the rest stays blank.
    const short = plain(frame({ width: 80, height: 24, log: ['only'] }));
    expect(short.slice(19, 22).map((l) => l.trimEnd())).toEqual(['only', '', '']);
  });

  it('a medium terminal keeps a 2-line log; a short one drops it', () => {
    const log = ['a1', 'b2', 'c3'];
    const medium = plain(frame({ width: 80, height: 16, log }));
    expect(medium.filter((l) => l.startsWith('── log'))).toHaveLength(1);
    expect(medium.map((l) => l.trimEnd())).toEqual(expect.arrayContaining(['b2', 'c3']));
    expect(medium.map((l) => l.trimEnd())).not.toContain('a1');
    const short = plain(frame({ width: 80, height: 10, log, rows: [] }));
    expect(short.join('\n')).not.toContain('── log');
    expect(short.map((l) => l.trimEnd())).not.toContain('c3');
  });

  it('detail mode shows the detail lines instead of the table, from detailTop', () => {
    const detail = detailFor(1, 120);
    const top = plain(frame({ width: 120, height: 40, detail, state: { ...INITIAL_UI_STATE, selected: 1, mode: 'detail' } }));
    expect(top[2]).toContain('#1 ws  /api/v4/websocket');
    expect(top.join('\n')).not.toContain('timeout / closed by');
    expect(top.join('\n')).toContain('Handshake request as it reached wstap');
    expect(top[top.length - 2]).toContain('Esc back');

    const scrolled = plain(frame({ width: 120, height: 40, detail, state: { ...INITIAL_UI_STATE, selected: 1, mode: 'detail', detailTop: 4 } }));
    expect(detail[4]?.text).toContain('Handshake request');
    expect(scrolled[2]?.trimEnd()).toBe(detail[4]?.text);
    expect(scrolled.join('\n')).not.toContain('#1 ws  /api/v4/websocket');
  });

  it('detail mode uses the heading line too: bodyHeight + 1 detail lines', () => {
    const detail: StyledLine[] = Array.from({ length: 100 }, (_, i) => ({ text: `detail line ${i}`, tone: 'plain' }));
    const lines = plain(frame({ width: 80, height: 24, detail, state: { ...INITIAL_UI_STATE, mode: 'detail' } }));
    const shown = lines.filter((l) => l.startsWith('detail line')).map((l) => l.trimEnd());
    expect(shown).toEqual(Array.from({ length: 16 }, (_, i) => `detail line ${i}`));
  });

  it('the filter prompt replaces the key help while typing', () => {
    const lines = plain(frame({ width: 120, height: 24, state: { ...INITIAL_UI_STATE, mode: 'filter', draft: 'chat' } }));
    expect(lines[22]).toMatch(/^filter: chat▏ {2}Enter apply {2}Esc cancel/);
    const tagged = frame({ width: 120, height: 24, state: { ...INITIAL_UI_STATE, mode: 'filter', draft: 'chat' } });
    expect(tagged[22]).toContain('{cyan-fg}');
  });

  it('the key help in the table', () => {
    const lines = plain(frame({ width: 80, height: 24 }));
    expect(lines[22]?.trimEnd()).toBe('↑↓ move  Enter open  / filter  s sort  h http  c clear  p pause  e HAR  q quit');
  });

  it('the footer names the log file, and shows a message with it', () => {
    expect(plain(frame({ width: 80, height: 24 }))[23]?.trimEnd()).toBe('log file /tmp/wstap/wstap.log');
    expect(plain(frame({ width: 80, height: 24, message: 'wrote x.har' }))[23]?.trimEnd()).toBe('wrote x.har  ·  log file /tmp/wstap/wstap.log');
    expect(plain(frame({ width: 80, height: 24, facts: { ...FACTS, logFile: null }, message: 'hi' }))[23]?.trimEnd()).toBe('hi');
  });

  it('a frozen recording says so and shows no frame rate', () => {
    const frozenAt = Date.UTC(2024, 0, 2, 12, 34, 56, 789);
    const lines = plain(frame({ width: 120, height: 24, facts: { ...FACTS, frozenAt }, counts: { open: 0, closed: 4, failed: 1, framesPerSecond: null } }));
    expect(lines[0]).toContain('[recording, frozen at 12:34:56]');
    expect(lines[0]).not.toContain('frames/s');
  });

  it('pause shows PAUSED in the title', () => {
    const lines = plain(frame({ width: 120, height: 24, state: { ...INITIAL_UI_STATE, paused: true } }));
    expect(lines[0]).toContain('[PAUSED: capture continues]');
    expect(plain(frame({ width: 120, height: 24 }))[0]).not.toContain('PAUSED');
  });

  it('cuts a long title at the end, keeping the counts', () => {
    const lines = plain(frame({ width: 40, height: 10, rows: [], facts: { ...FACTS, listen: 'x'.repeat(100) } }));
    expect(lines[0]).toMatch(/^wstap {2}open 3 {2}closed 1 {2}failed 1/);
    expect(lines[0]?.endsWith('…')).toBe(true);
  });

  it('escapes log lines, messages and the filter from the wire', () => {
    const hostile = '\x1b[2J\x1b]0;t\x07{red-fg}\u202e';
    const tagged = frame({
      width: 120,
      height: 24,
      rows: [],
      log: [`GET /x${hostile}`],
      message: `export failed: ${hostile}`,
      state: { ...INITIAL_UI_STATE, filter: hostile },
    });
    for (const line of tagged) {
      expect(line).not.toMatch(UNSAFE_CHARS);
      expect(untag(line)).not.toMatch(UNSAFE_CHARS);
    }
    const text = screenText(tagged);
    expect(text).toContain('GET /x\\x1b[2J\\x1b]0;t\\x07{red-fg}\\u202e');
    expect(tagged.join('\n')).not.toContain('{red-fg}');
  });

  it('NO_COLOR: no colour tags anywhere on the screen', () => {
    for (const overrides of [{}, { detail: detailFor(1, 120) }, { state: { ...INITIAL_UI_STATE, mode: 'filter' as const } }, { message: 'hi' }]) {
      const text = frame({ width: 120, height: 24, paint: new Paint(false), log: ['x'], ...overrides }).join('\n');
      expect(text).not.toContain('-fg}');
      expect(text).not.toContain('-bg}');
    }
  });
});
