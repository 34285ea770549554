import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaptureFile } from '../../src/capture/capture-reader.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { freePort } from '../support/ports.js';
import { paneExitStatus, readIfThere, shellQuote, tmuxMissing, TmuxServer } from '../support/tmux.js';
import { findRow, seconds } from '../support/tmux-table.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient, sleep } from '../support/ws-peers.js';
import { BIN } from '../support/wstap-process.js';

/** The real CLI in a real terminal: `wstap proxy` inside tmux, read back with capture-pane. */

const WIDTH = 100;
const HEIGHT = 30;
const HEADER = 'wstap  open';
const WS_PATH = '/tui-e2e/room-7';

describe('wstap proxy terminal UI, in tmux', () => {
  let dir: string;
  let tmux: TmuxServer | undefined;
  let app: UpstreamApp | undefined;
  let client: WebSocket | undefined;
  let listenPort: number;
  let logFile: string;
  let statusFile: string;
  let cliPidFile: string;
  let sttyBefore: string;
  let sttyAfter: string;
  /** The capture wstap kept at exit (in a temporary directory of its own). */
  let keptCapture: string | undefined;

  /** What the pane's script left behind, for failure messages. */
  const context = (): string =>
    [
      `exit status file: ${readIfThere(statusFile)?.trim() ?? '(none yet)'}`,
      `log file ${logFile}:`,
      (readIfThere(logFile) ?? '(missing)').split('\n').slice(-15).join('\n'),
    ].join('\n');

  /** Reported by the test itself, so a missing tmux counts as a failure, not a skip. */
  let noTmux: Error | null = null;

  beforeAll(async () => {
    noTmux = tmuxMissing();
    if (noTmux) return;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-tui-'));
    logFile = path.join(dir, 'wstap.log');
    statusFile = path.join(dir, 'status');
    cliPidFile = path.join(dir, 'cli.pid');
    sttyBefore = path.join(dir, 'stty.before');
    sttyAfter = path.join(dir, 'stty.after');
    app = await startUpstreamApp();
    listenPort = await freePort();
    const q = shellQuote;
    const cli = [
      process.execPath,
      BIN,
      'proxy',
      '--target',
      `http://127.0.0.1:${app.port}`,
      '--listen',
      `127.0.0.1:${listenPort}`,
      '--log-file',
      logFile,
      '--timeout',
      'nginx.proxy_read_timeout=60',
    ]
      .map(q)
      .join(' ');
    // The CLI runs in the foreground on the pane's terminal; its pid is noted
    // for cleanup, its exit status and the terminal modes around it are kept,
    // and a sleep keeps the pane (and the restored screen) alive afterwards.
    const script = [
      'export TERM=xterm-256color NCURSES_NO_UTF8_ACS=1',
      // The e key writes its HAR into the working directory.
      `cd ${q(dir)}`,
      `stty -g > ${q(sttyBefore)}`,
      `sh -c 'echo $$ > "$0"; exec "$@"' ${q(cliPidFile)} ${cli}`,
      'code=$?',
      `stty -g > ${q(sttyAfter)}`,
      `echo "$code" > ${q(statusFile + '.tmp')} && mv ${q(statusFile + '.tmp')} ${q(statusFile)}`,
      'exec sleep 3600',
      '',
    ].join('\n');
    tmux = new TmuxServer(dir);
    tmux.start({ width: WIDTH, height: HEIGHT, script, scriptFile: path.join(dir, 'run.sh') });
  });

  afterAll(async () => {
    client?.terminate();
    const cliPid = Number(readIfThere(cliPidFile ?? '') ?? NaN);
    await tmux?.kill(Number.isInteger(cliPid) && cliPid > 0 ? [cliPid] : []);
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    if (keptCapture) fs.rmSync(path.dirname(keptCapture), { recursive: true, force: true });
  });

  it('shows the live connection, advances its idle timer, names upstream as the closer; e writes a HAR; q exits 0 and restores the terminal', async () => {
    if (noTmux) throw noTmux;
    const screen = tmux!;

    // The UI is up: header, column heading, nothing connected yet, on the alternate screen.
    await screen.waitForScreen(
      'the UI header and "waiting for connections…"',
      (lines) => lines[0]?.startsWith(`${HEADER} 0`) && lines.some((l) => l.startsWith('waiting for connections')),
      { timeoutMs: 10_000, context },
    );
    expect(screen.display('#{alternate_on}'), 'the UI draws on the alternate screen').toBe('1');
    const first = screen.capture();
    expect(first[0]).toContain(`127.0.0.1:${listenPort} → http://127.0.0.1:${app!.port}`);
    expect(first.join('\n'), 'the --timeout in the status line').toContain('timeouts nginx.proxy_read_timeout ');
    expect(first.join('\n')).toContain(`log file ${logFile}`);

    // Traffic both ways through wstap.
    const upstreamSide = app!.nextConnection();
    client = await connectClient(`ws://127.0.0.1:${listenPort}${WS_PATH}`);
    const { ws: upstream, req } = await upstreamSide;
    expect(req.url).toBe(WS_PATH);
    const upstreamGot: string[] = [];
    const bothArrived = new Promise<void>((resolve) =>
      upstream.on('message', (data: Buffer) => {
        upstreamGot.push(data.toString());
        if (upstreamGot.length === 2) resolve();
      }),
    );
    const reply = new Promise<string>((resolve) => client!.once('message', (data: Buffer) => resolve(data.toString())));
    client.send('hello');
    client.send('world');
    await bothArrived;
    upstream.send('ack');
    expect(await reply).toBe('ack');
    expect(upstreamGot).toEqual(['hello', 'world']);

    // A row for the live connection.
    const open = await screen.waitForScreen(
      `an open row for ${WS_PATH}`,
      (lines) => {
        const row = findRow(lines, WS_PATH);
        return row?.state === 'open' ? row : null;
      },
      { context },
    );
    expect(open.conn).toBe(1);
    expect(open.note, 'the --timeout countdown').toMatch(/^nginx\b/);

    // Its idle timers advance by themselves between two reads ~2.5 s apart.
    await sleep(2500);
    const later = await screen.waitForScreen(
      `idle timers of ${WS_PATH} past ${open.idleUp} / ${open.idleDown}`,
      (lines) => {
        const row = findRow(lines, WS_PATH);
        return row && seconds(row.idleUp) > seconds(open.idleUp) && seconds(row.idleDown) > seconds(open.idleDown) ? row : null;
      },
      { timeoutMs: 2500, context },
    );
    expect(later.state).toBe('open');
    expect(seconds(later.idleUp) - seconds(open.idleUp)).toBeGreaterThanOrEqual(1);
    expect(seconds(later.idleUp) - seconds(open.idleUp)).toBeLessThanOrEqual(10);
    expect(seconds(later.idleDown)).toBeGreaterThan(seconds(open.idleDown));

    // The upstream closes (1001): the row says closed, by upstream.
    const clientClosed = closedEvent(client);
    upstream.close(1001, 'going away');
    expect((await clientClosed).code).toBe(1001);
    const closed = await screen.waitForScreen(
      `a closed row for ${WS_PATH}`,
      (lines) => {
        const row = findRow(lines, WS_PATH);
        return row?.state === 'closed' ? row : null;
      },
      { context },
    );
    expect(closed.conn).toBe(1);
    expect(closed.note, `closed-by column of: ${closed.line}`).toMatch(/^upstream close 1001\b/);
    expect(screen.capture()[0]).toMatch(/^wstap {2}open 0 {2}closed 1 {2}failed 0\b/);
    expect(fs.existsSync(logFile), `log file ${logFile}`).toBe(true);

    // e: the session so far as a timestamped HAR in the working directory, and the footer says where.
    screen.sendKeys('e');
    const wrote = await screen.waitForScreen(
      'the footer naming the HAR the e key wrote',
      (lines) => lines.map((l) => /wrote (\S+\.har): (\d+) entries/.exec(l)).find((m) => m) ?? null,
      { timeoutMs: 10_000, context },
    );
    const harPath = wrote[1]!;
    expect(path.dirname(harPath)).toBe(fs.realpathSync(dir));
    expect(path.basename(harPath)).toMatch(/^wstap-\d{8}-\d{6}\.har$/);
    const har = JSON.parse(fs.readFileSync(harPath, 'utf8')) as { log: { entries: Array<{ _webSocketMessages?: Array<{ type: string; data: string }>; _wstap?: { closedBy: string | null } }> } };
    expect(harSchemaErrors(har)).toEqual([]);
    const entry = har.log.entries.find((e) => e._webSocketMessages);
    expect(entry?._webSocketMessages?.map((m) => `${m.type}:${m.data}`)).toEqual(['send:hello', 'send:world', 'receive:ack']);
    expect(entry?._wstap?.closedBy).toBe('upstream');

    // q quits: exit status 0, terminal restored.
    screen.sendKeys('q');
    expect(await paneExitStatus(statusFile, screen, { context }), context()).toBe('0');
    const restored = await screen.waitForScreen(
      'the primary screen, without the UI',
      (lines) => (screen.display('#{alternate_on}') === '0' && !lines.some((l) => l.startsWith(HEADER)) ? lines : null),
      { timeoutMs: 3000, context },
    );
    expect(screen.display('#{alternate_on}')).toBe('0');
    expect(restored.filter((l) => l.startsWith(HEADER))).toEqual([]);
    expect(restored.join('\n')).toContain(`wstap: log written to ${logFile}`);
    // No --capture: the session's temporary capture is kept, private, and its path printed.
    const kept = /wstap: capture kept at (\S+)/.exec(restored.join('\n'))?.[1];
    expect(kept, `"capture kept at" on the primary screen:\n${restored.join('\n')}`).toBeDefined();
    keptCapture = kept!;
    expect(fs.statSync(keptCapture).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(keptCapture)).mode & 0o777).toBe(0o700);
    const captured = (await readCaptureFile(keptCapture)).filter((e) => e.kind === 'ws.message');
    expect(captured.map((e) => e.kind === 'ws.message' && Buffer.from(e.preview, 'base64').toString())).toEqual(['hello', 'world', 'ack']);
    expect(screen.display('#{cursor_flag}'), 'cursor visible again').toBe('1');
    expect(screen.display('#{keypad_cursor_flag}'), 'cursor keys back in normal mode').toBe('0');
    expect(readIfThere(sttyAfter), 'terminal modes (stty -g) as before the UI').toBe(readIfThere(sttyBefore));

    // The log file holds the session, ending with who closed.
    const log = fs
      .readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { msg: string });
    expect(log.some((l) => l.msg.startsWith(`listening on 127.0.0.1:${listenPort}`))).toBe(true);
    expect(log.some((l) => /^#1 closed by upstream\b/.test(l.msg))).toBe(true);
  });
});
