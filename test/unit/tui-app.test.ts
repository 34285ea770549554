import { EMPTY_DIAGNOSIS_CONTEXT } from '../../src/analysis/connection-diagnosis.js';
import { PassThrough, Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import { FrameHistory } from '../../src/analysis/frame-history.js';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import type { CaptureHealth } from '../../src/capture/capture-writer.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { LogTail } from '../../src/log.js';
import { Paint } from '../../src/tui/paint.js';
import type { SessionFacts } from '../../src/tui/screen-frame.js';
import { openTerminalScreen, type TerminalScreen } from '../../src/tui/terminal-screen.js';
import { TuiApp } from '../../src/tui/tui-app.js';
import { displayWidth } from '../../src/tui/terminal-text.js';
import {
  T0,
  b64,
  closeEvent,
  finEvent,
  frameEvent,
  httpRequestEvent,
  httpResponseEvent,
  openEvent,
  wsOpened,
} from '../support/tui-fixtures.js';

/**
 * The whole UI headless: real blessed on a fake terminal (a PassThrough for
 * the keyboard, a Writable that keeps what was written), no network.
 */

const nginx60: HopTimeout = { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'both-idle' };

interface Harness {
  app: TuiApp;
  screen: TerminalScreen;
  input: PassThrough;
  output: Writable & { columns: number; rows: number };
  tracker: ConnectionTracker;
  history: FrameHistory;
  clock: { now: number };
  logTail: LogTail;
  onQuit: ReturnType<typeof vi.fn<() => void>>;
  onExport: ReturnType<typeof vi.fn<() => Promise<string>>>;
  /** Everything written to the terminal, as text. */
  written(): string;
  feed(events: readonly CaptureEvent[]): void;
  type(keys: string): void;
  text(): string[];
}

const running: Harness[] = [];

function fakeTerminal(columns: number, rows: number): { input: PassThrough; output: Writable & { columns: number; rows: number }; written: () => string } {
  const input = new PassThrough();
  Object.assign(input, { isTTY: true, isRaw: false, setRawMode: () => input });
  const chunks: string[] = [];
  let size = 0;
  const output = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      // Keep the first few MB: enough to search for anything a test sends.
      if (size < 8_000_000) {
        const text = chunk.toString();
        chunks.push(text);
        size += text.length;
      }
      callback();
    },
  });
  return { input, output: Object.assign(output, { isTTY: true, columns, rows }), written: () => chunks.join('') };
}

function start(
  options: { columns?: number; rows?: number; onExport?: () => Promise<string>; facts?: Partial<SessionFacts>; captureHealth?: () => CaptureHealth | null } = {},
): Harness {
  const { input, output, written } = fakeTerminal(options.columns ?? 100, options.rows ?? 30);
  const warnings: string[] = [];
  const screen = openTerminalScreen({ input, output, onWarning: (m) => warnings.push(m) });
  const tracker = new ConnectionTracker();
  const history = new FrameHistory();
  const clock = { now: T0 + 5000 };
  const logTail = new LogTail();
  const onQuit = vi.fn<() => void>();
  const onExport = vi.fn<() => Promise<string>>(options.onExport ?? (async () => 'wrote /tmp/wstap-test.har: 3 entries, 7 messages, secrets redacted'));
  const app = new TuiApp({
    screen,
    tracker,
    history,
    facts: { listen: '127.0.0.1:8066', target: '127.0.0.1:8065', profile: null, diagnosis: { ...EMPTY_DIAGNOSIS_CONTEXT, timeouts: [nginx60] }, frozenAt: null, logFile: null, ...options.facts },
    paint: new Paint(true),
    redact: true,
    now: () => clock.now,
    logTail,
    ...(options.captureHealth ? { captureHealth: options.captureHealth } : {}),
    onQuit,
    onExport,
    frameInterval: 10,
  });
  const h: Harness = {
    app,
    screen,
    input,
    output,
    tracker,
    history,
    clock,
    logTail,
    onQuit,
    onExport,
    written,
    feed(events) {
      for (const e of events) app.record(e, tracker.apply(e));
    },
    type(keys) {
      input.write(keys);
    },
    text: () => screen.text(),
  };
  running.push(h);
  return h;
}

afterEach(() => {
  for (const h of running.splice(0)) {
    h.app.stop();
    h.input.destroy();
  }
});

/** Polls until `check` holds (up to `timeoutMs`); fails with the screen as it is. */
async function until(h: Harness, what: string, check: (lines: string[]) => boolean, timeoutMs = 2000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = h.text();
    if (check(lines)) return lines;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; screen:\n${lines.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const hasText = (needle: string) => (lines: string[]): boolean => lines.some((l) => l.includes(needle));
const lineWith = (lines: string[], needle: string): string => lines.find((l) => l.includes(needle)) ?? '';

/** A WebSocket whose both sides last spoke at T0 + 1000. */
function liveWs(conn: number, url: string): CaptureEvent[] {
  return [
    ...wsOpened(conn, { url, headers: [['Host', 'chat.example'], ['Cookie', 'MMAUTHTOKEN=s3cr3t'], ['X-Real-IP', '203.0.113.5']] }),
    frameEvent({ conn, t: T0 + 1000, side: 'client', opcode: 1, index: 0, length: 5, preview: b64('hello') }),
    frameEvent({ conn, t: T0 + 1000, side: 'upstream', opcode: 1, index: 0, length: 5, preview: b64('world') }),
  ];
}

function upstreamCloses(conn: number, t: number): CaptureEvent[] {
  return [
    frameEvent({ conn, t, side: 'upstream', opcode: 8, index: 1, length: 2, closeCode: 1001, idle: { client: 3000, upstream: 3000 } }),
    frameEvent({ conn, t: t + 1, side: 'client', opcode: 8, index: 1, length: 2, closeCode: 1001 }),
    finEvent(conn, t + 2, 'upstream'),
    finEvent(conn, t + 3, 'client'),
    closeEvent(conn, t + 4),
  ];
}

describe('TuiApp (headless, real blessed)', () => {
  it('draws the table and shows a new connection with its path', async () => {
    const h = start();
    await until(h, 'the empty table', hasText('waiting for connections'));
    h.feed(liveWs(1, '/api/v4/websocket?access_token=t0k3n'));
    const lines = await until(h, 'the row', hasText('/api/v4/websocket'));
    expect(lines.some((l) => l.includes('s3cr3t') || l.includes('t0k3n'))).toBe(false);
    expect(lines[0]).toMatch(/^wstap {2}open 1 {2}closed 0 {2}failed 0/);
    expect(lineWith(lines, '/api/v4/websocket')).toMatch(/^ {4}1 .*open/);
    expect(lines.some((l) => l.includes('waiting for connections'))).toBe(false);
  });

  it('advances the idle timers as the clock moves', async () => {
    const h = start();
    h.feed(liveWs(1, '/api/v4/websocket'));
    let lines = await until(h, 'the row', hasText('/api/v4/websocket'));
    expect(lineWith(lines, '/api/v4/websocket')).toContain(' 4s');
    h.clock.now = T0 + 65_000;
    // Nothing happens on the wire: the once-a-second tick redraws.
    lines = await until(h, 'the idle cell to reach 1m04s', (l) => lineWith(l, '/api/v4/websocket').includes('1m04s'), 3000);
    expect(lineWith(lines, '/api/v4/websocket')).toContain('nginx 60s over by 4s');
  });

  it('shows who closed once the connection is over', async () => {
    const h = start();
    h.feed(liveWs(1, '/api/v4/websocket'));
    await until(h, 'the row', hasText('/api/v4/websocket'));
    h.feed(upstreamCloses(1, T0 + 4000));
    const lines = await until(h, 'the closer', (l) => lineWith(l, '/api/v4/websocket').includes('upstream close 1001'));
    expect(lineWith(lines, '/api/v4/websocket')).toContain('closed');
    expect(lines[0]).toMatch(/^wstap {2}open 0 {2}closed 1 {2}failed 0/);
  });

  it('Enter opens the detail view, Esc returns to the table', async () => {
    const h = start();
    h.feed(liveWs(1, '/api/v4/websocket'));
    await until(h, 'the row', hasText('/api/v4/websocket'));
    h.type('\r');
    let lines = await until(h, 'the detail view', hasText('Handshake request as it reached wstap'));
    expect(h.app.state.mode).toBe('detail');
    expect(lines).toEqual(expect.arrayContaining([expect.stringContaining('Cookie: [redacted]')]));
    // The frame timeline is further down (findings and the handshake come first).
    h.type('\x1b[F');
    lines = await until(h, 'the frame timeline', hasText('"hello"'));
    expect(lines.some((l) => l.includes('timeout / closed by'))).toBe(false);
    // blessed waits briefly to see whether an escape sequence follows a lone ESC.
    h.type('\x1b');
    await new Promise((resolve) => setTimeout(resolve, 100));
    lines = await until(h, 'the table again', hasText('timeout / closed by'));
    expect(h.app.state.mode).toBe('table');
    expect(lines.some((l) => l.includes('Handshake request'))).toBe(false);
  });

  it('q calls onQuit', async () => {
    const h = start();
    await until(h, 'the first frame', hasText('wstap'));
    h.type('q');
    await until(h, 'the goodbye', hasText('shutting down…'));
    expect(h.onQuit).toHaveBeenCalledTimes(1);
    expect(h.onExport).not.toHaveBeenCalled();
  });

  it('Ctrl-C calls onQuit even while typing a filter', async () => {
    const h = start();
    await until(h, 'the first frame', hasText('wstap'));
    h.type('/ab');
    await until(h, 'the filter prompt', hasText('filter: ab'));
    h.type('\x03');
    await until(h, 'the goodbye', hasText('shutting down…'));
    expect(h.onQuit).toHaveBeenCalledTimes(1);
  });

  it('e calls onExport and shows what it says', async () => {
    const h = start();
    await until(h, 'the first frame', hasText('wstap'));
    h.type('e');
    await until(h, 'the export message', hasText('wrote /tmp/wstap-test.har: 3 entries'));
    expect(h.onExport).toHaveBeenCalledTimes(1);
    expect(h.onQuit).not.toHaveBeenCalled();
  });

  it('shows why an export failed', async () => {
    const h = start({ onExport: async () => Promise.reject(new Error('disk full')) });
    await until(h, 'the first frame', hasText('wstap'));
    h.type('e');
    await until(h, 'the failure', hasText('export failed: disk full'));
  });

  it('c clears the closed connections and their frames, keeping the live ones', async () => {
    const h = start();
    h.feed([...liveWs(1, '/closed-one'), ...upstreamCloses(1, T0 + 2000), ...liveWs(2, '/live-one')]);
    await until(h, 'both rows', (l) => hasText('/closed-one')(l) && hasText('/live-one')(l));
    expect(h.history.framesOf(1).length).toBeGreaterThan(0);
    h.type('c');
    const lines = await until(h, 'the closed row to go', (l) => !hasText('/closed-one')(l));
    expect(lines.some((l) => l.includes('/live-one'))).toBe(true);
    expect(lines.some((l) => l.includes('cleared 1 closed connection(s)'))).toBe(true);
    expect(h.tracker.get(1)).toBeUndefined();
    expect(h.tracker.get(2)).toBeDefined();
    expect(h.history.framesOf(1)).toEqual([]);
    h.type('c');
    await until(h, 'the nothing-to-clear message', hasText('no closed connections to clear'));
  });

  it('/ filters the rows, Esc clears the filter', async () => {
    const h = start();
    h.feed([...liveWs(1, '/api/v4/websocket'), ...liveWs(2, '/socket.io/?EIO=4')]);
    await until(h, 'both rows', (l) => hasText('/api/v4/websocket')(l) && hasText('/socket.io/')(l));
    h.type('/socket.io\r');
    let lines = await until(h, 'the filtered table', (l) => !hasText('/api/v4/websocket')(l));
    expect(lines.some((l) => l.includes('/socket.io/'))).toBe(true);
    expect(lines.some((l) => l.includes('filter "socket.io"'))).toBe(true);
    h.type('\x1b');
    await new Promise((resolve) => setTimeout(resolve, 100));
    lines = await until(h, 'both rows again', (l) => hasText('/api/v4/websocket')(l) && hasText('/socket.io/')(l));
    expect(h.app.state.filter).toBe('');
  });

  it('h hides plain HTTP connections', async () => {
    const h = start();
    h.feed([...liveWs(1, '/ws-path'), openEvent(2), httpRequestEvent(2, T0 + 1, { url: '/http-path' }), httpResponseEvent({ conn: 2, t: T0 + 2, exchange: 1 })]);
    await until(h, 'both rows', (l) => hasText('/ws-path')(l) && hasText('/http-path')(l));
    h.type('h');
    await until(h, 'the HTTP row to go', (l) => !hasText('/http-path')(l) && hasText('http hidden')(l));
  });

  it('p pauses the table while events keep arriving', async () => {
    const h = start();
    h.feed(liveWs(1, '/first-path'));
    await until(h, 'the row', hasText('/first-path'));
    h.type('p');
    await until(h, 'PAUSED', hasText('[PAUSED'));
    h.feed(liveWs(2, '/second-path'));
    // The counters move on; the rows stay as they were.
    await until(h, 'the counters', (l) => (l[0] ?? '').includes('open 2'));
    expect(h.text().some((l) => l.includes('/second-path'))).toBe(false);
    h.type('p');
    await until(h, 'the new row after resuming', hasText('/second-path'));
  });

  it('says in the status line when the capture file refuses data, and when it took data again', async () => {
    let health: CaptureHealth = { lostEvents: 0, refusing: null, paused: null };
    const h = start({ captureHealth: () => health });
    await until(h, 'the first frame', (lines) => (lines[1] ?? '').startsWith('profile none'));
    health = { lostEvents: 12, refusing: 'ENOSPC', paused: null };
    await until(h, 'the refusal', (lines) => (lines[1] ?? '').startsWith('CAPTURE FILE REFUSES DATA (ENOSPC), 12 events lost so far · profile none'), 4000);
    health = { lostEvents: 12, refusing: null, paused: null };
    await until(h, 'the resumption', (lines) => (lines[1] ?? '').startsWith('capture: 12 events lost, marked in the file as capture.gap'), 4000);
    // The disk guard pauses it with no new loss yet: the line changes all the same.
    health = { lostEvents: 12, refusing: null, paused: { dir: '/tmp', freeBytes: 1, minFreeBytes: 2, resumeAboveBytes: 3 } };
    await until(h, 'the pause', (lines) => (lines[1] ?? '').startsWith('CAPTURE PAUSED: disk below --min-free, relaying continues, 12 events lost so far'), 4000);
  });

  it('shows the log tail', async () => {
    const h = start();
    await until(h, 'the first frame', hasText('── log'));
    h.logTail.push('INFO: #1 connection from 203.0.113.5');
    await until(h, 'the log line', hasText('INFO: #1 connection from 203.0.113.5'));
  });

  it('never lets a hostile path reach the terminal as control sequences', async () => {
    const h = start({ columns: 200, rows: 30 });
    h.feed(liveWs(1, '/x\x1b]0;owned\x07\x1b[31m{red-fg}'));
    const lines = await until(h, 'the row', hasText('/x\\x1b]0;owned'));
    expect(lineWith(lines, '/x\\x1b]0;owned')).toContain('\\x07\\x1b[31m{red-fg}');
    expect(h.written()).not.toContain('\x1b]0;owned');
  });

  it('fits the whole screen in 80x24', async () => {
    const h = start({ columns: 80, rows: 24, facts: { logFile: '/tmp/wstap/wstap.log' } });
    h.feed([...liveWs(1, '/ws/one'), ...liveWs(2, '/ws/two'), ...upstreamCloses(2, T0 + 3000)]);
    const lines = await until(h, 'both rows', (l) => hasText('/ws/one')(l) && hasText('/ws/two')(l));
    expect(h.screen.width).toBe(80);
    expect(h.screen.height).toBe(24);
    expect(lines).toHaveLength(24);
    for (const l of lines) expect(displayWidth(l), JSON.stringify(l)).toBe(80);
    expect(lines[0]).toMatch(/^wstap {2}open 1 {2}closed 1/);
    expect(lines[2]).toMatch(/^ {4}# path .*state .*idle c→u .*idle u→c .*timeout \/ closed by *$/);
    expect(lines[22]?.trimEnd()).toBe('↑↓ move  Enter open  / filter  s sort  h http  c clear  p pause  e HAR  q quit');
    expect(lines[23]?.trimEnd()).toBe('log file /tmp/wstap/wstap.log');
  });

  it('redraws for the new size when the terminal is resized', async () => {
    const h = start({ columns: 100, rows: 30 });
    h.feed(liveWs(1, '/api/v4/websocket'));
    await until(h, 'the row', hasText('/api/v4/websocket'));
    h.output.columns = 140;
    h.output.rows = 20;
    h.output.emit('resize');
    const lines = await until(h, 'the new size', (l) => l.length === 20 && (l[0]?.length ?? 0) === 140);
    for (const l of lines) expect(displayWidth(l)).toBe(140);
    // 140 columns have room for the traffic columns again.
    expect(lines[2]).toContain('c→u');
    expect(lines[2]).toContain('u→c');
    expect(lines[18]?.trimEnd()).toBe('↑↓ move  Enter open  / filter  s sort  h http  c clear  p pause  e HAR  q quit');
  });

  it('stop() restores the terminal and is idempotent', async () => {
    const h = start();
    await until(h, 'the first frame', hasText('wstap'));
    h.app.stop();
    h.app.stop();
    // Keys after stop reach nobody.
    h.type('q');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(h.onQuit).not.toHaveBeenCalled();
  });
});

describe('TuiApp over a capture whose first file was deleted', () => {
  it('counts a connection whose conn.open is not in the capture as open, then closed (never a negative open count)', async () => {
    const h = start();
    h.feed([frameEvent({ conn: 5, t: T0 + 100, side: 'client', opcode: 1, index: 3, length: 2 })]);
    await until(h, 'one open connection', (lines) => /^wstap {2}open 1 {2}closed 0\b/.test(lines[0] ?? ''));
    expect(h.text().some((l) => l.includes('(beginning not in capture)'))).toBe(true);
    h.feed([finEvent(5, T0 + 200, 'upstream'), closeEvent(5, T0 + 201)]);
    await until(h, 'it closed', (lines) => /^wstap {2}open 0 {2}closed 1\b/.test(lines[0] ?? ''));
  });
});

describe('TuiApp over several instances judged each with its own context', () => {
  const edge = (seconds: number): SessionFacts['diagnosis'] => ({ ...EMPTY_DIAGNOSIS_CONTEXT, timeouts: [{ hop: 'front', setting: 'idle', seconds, measures: 'both-idle' }] });
  const via = (instance: string, events: CaptureEvent[]): CaptureEvent[] => events.map((e) => (e.kind === 'conn.open' ? { ...e, instance, instanceConn: 1 } : e));

  it('counts each connection down toward its instance\'s timeout and says so in the status line', async () => {
    const h = start({
      columns: 160,
      facts: {
        diagnosis: edge(2),
        perInstance: new Map([
          ['edge-a', { profile: null, diagnosis: edge(2) }],
          ['edge-b', { profile: 'slow', diagnosis: edge(30) }],
        ]),
      },
    });
    h.clock.now = T0 + 4000;
    h.feed([...via('edge-a', liveWs(1, '/via-a')), ...via('edge-b', liveWs(2, '/via-b'))]);
    const lines = await until(h, 'both rows', (l) => hasText('/via-a')(l) && hasText('/via-b')(l));
    expect(lineWith(lines, '/via-a')).toContain('front 2s over by');
    expect(lineWith(lines, '/via-b')).not.toContain('over by');
    expect(lineWith(lines, '/via-b')).toMatch(/front 30s/);
    expect(lines[1]).toContain('judged per instance (edge-a: profile none, timeouts front.idle 2s; edge-b: profile slow, timeouts front.idle 30s)');
  });
});
