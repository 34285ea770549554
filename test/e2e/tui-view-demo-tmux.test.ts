import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { paneExitStatus, shellQuote, tmuxMissing, TmuxServer } from '../support/tmux.js';
import { sleep } from '../support/ws-peers.js';
import { BIN } from '../support/wstap-process.js';

/** `wstap view` and `wstap demo` open the same UI as the live proxy when they have a terminal. */

const HEADER = 'wstap  open';

/** Runs `wstap ARGS` in a fresh tmux pane (80x24); the exit status lands in DIR/status. */
function runInPane(dir: string, args: string[]): TmuxServer {
  const cli = [process.execPath, BIN, ...args].map(shellQuote).join(' ');
  const script = [
    'export TERM=xterm-256color',
    `cd ${shellQuote(dir)}`,
    cli,
    `echo "$?" > ${shellQuote(path.join(dir, 'status.tmp'))} && mv ${shellQuote(path.join(dir, 'status.tmp'))} ${shellQuote(path.join(dir, 'status'))}`,
    'exec sleep 3600',
    '',
  ].join('\n');
  const tmux = new TmuxServer(dir);
  tmux.start({ width: 80, height: 24, script, scriptFile: path.join(dir, 'run.sh') });
  return tmux;
}

describe('the terminal UI over a recording and in the demo, in tmux', () => {
  let dir: string;
  let tmux: TmuxServer | undefined;
  let noTmux: Error | null = null;

  beforeAll(() => {
    noTmux = tmuxMissing();
  });

  afterEach(async () => {
    await tmux?.kill();
    tmux = undefined;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('wstap view CAPTURE: the recorded connections with their closers, timers frozen; Enter shows a handshake; q exits 0', async () => {
    if (noTmux) throw noTmux;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-tui-view-'));
    const capture = path.join(dir, 'demo.jsonl');
    // A recording made by the demo without a terminal (its seven scripted connections).
    const made = spawnSync(process.execPath, [BIN, 'demo', '--no-tui', '--capture', capture, '--log-format', 'json'], { encoding: 'utf8', timeout: 30_000 });
    expect(made.status, made.stderr).toBe(0);

    tmux = runInPane(dir, ['view', capture, '--timeout', 'nginx.proxy_read_timeout=60']);
    const screen = tmux;
    const lines = await screen.waitForScreen('the recording in the UI', (l) => (l.some((x) => x.includes('end of recording')) ? l : null), { timeoutMs: 10_000 });
    expect(lines[0]).toMatch(/^wstap {2}open 0 {2}closed 8 {2}failed 0 {2}\[recording, frozen at \d\d:\d\d:\d\d\]/);
    const row = (pathStart: string): string => lines.find((l) => new RegExp(`^\\s+\\d+ ${pathStart.replace(/[?]/g, '\\?')}`).test(l)) ?? '';
    expect(row('/ws?demo=chatt')).toMatch(/closed .* client close 1000\b/);
    expect(row('/ws?demo=idle')).toMatch(/closed .* client fin idle 2s/);
    expect(row('/ws?demo=serve')).toMatch(/closed .* upstream close 1001\b/);

    // Frozen: the same screen a second later.
    await sleep(1200);
    expect(screen.capture().slice(0, 8)).toEqual(lines.slice(0, 8));

    // The idle connection's detail: its handshake and close evidence, from the file.
    screen.sendKeys('Down', 'Enter');
    const detail = await screen.waitForScreen('the detail view of #2', (l) => (l.some((x) => x.startsWith('#2 ws  /ws?demo=idle')) ? l : null));
    expect(detail.join('\n')).toContain('Handshake request as it reached wstap');
    expect(detail.join('\n')).toContain('GET /ws?demo=idle HTTP/1.1');
    screen.sendKeys('End');
    const end = await screen.waitForScreen('the close evidence', (l) => (l.some((x) => x.includes('verdict: closed by client')) ? l : null));
    expect(end.join('\n')).toMatch(/client fin/);

    screen.sendKeys('q');
    expect(await paneExitStatus(path.join(dir, 'status'), screen)).toBe('0');
    await screen.waitForScreen('the primary screen again', (l) => (screen.display('#{alternate_on}') === '0' && !l.some((x) => x.startsWith(HEADER)) ? l : null));
  });

  it('wstap view CAPTURE: the header names the profile the capture recorded; --timeout there replaces it and the log says so', async () => {
    if (noTmux) throw noTmux;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-tui-view-ctx-'));
    const capture = path.join(dir, 'demo.jsonl');
    const made = spawnSync(process.execPath, [BIN, 'demo', '--no-tui', '--capture', capture, '--log-format', 'json'], { encoding: 'utf8', timeout: 30_000 });
    expect(made.status, made.stderr).toBe(0);

    // No --profile, no --timeout: the demo's own context, as recorded in its session.start.
    tmux = runInPane(dir, ['view', capture]);
    const recorded = await tmux.waitForScreen('the recorded profile in the header', (l) => (l.some((x) => x.includes('end of recording')) && l.some((x) => x.startsWith('profile demo · timeouts demo-hop.idle_timeout')) ? l : null), { timeoutMs: 10_000 });
    expect(recorded.join('\n')).not.toMatch(/judging with/);
    tmux.sendKeys('q');
    expect(await paneExitStatus(path.join(dir, 'status'), tmux)).toBe('0');
    await tmux.kill();
    fs.rmSync(path.join(dir, 'status'), { force: true });

    tmux = runInPane(dir, ['view', capture, '--timeout', 'nginx.proxy_read_timeout=60']);
    const overridden = await tmux.waitForScreen('the override in the header and the log', (l) => (l.some((x) => x.includes('end of recording')) && l.some((x) => x.startsWith('profile none · timeouts nginx.proxy_read_timeout 60s')) ? l : null), { timeoutMs: 10_000 });
    // The log pane is 80 columns: the note's start (--no-tui prints it whole, see context-in-capture.test.ts).
    expect(overridden.join('\n')).toContain("judging with --timeout nginx.proxy_read_timeout=60 instead of the capture's");
    tmux.sendKeys('q');
    expect(await paneExitStatus(path.join(dir, 'status'), tmux)).toBe('0');
  });

  it('wstap demo: live rows with a ticking countdown, then the closers; q exits 0', async () => {
    if (noTmux) throw noTmux;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-tui-demo-'));
    tmux = runInPane(dir, ['demo']);
    const screen = tmux;
    const countdown = /demo-hop 6s in (\d+)s/;
    const first = await screen.waitForScreen('the idle connection counting down', (l) => {
      const line = l.find((x) => /\/ws\?demo=idle\s+open/.test(x));
      const m = line ? countdown.exec(line) : null;
      return m ? Number(m[1]) : null;
    }, { timeoutMs: 10_000 });
    const later = await screen.waitForScreen('the countdown moving', (l) => {
      const line = l.find((x) => /\/ws\?demo=idle\s+open/.test(x));
      const m = line ? countdown.exec(line) : null;
      return m && Number(m[1]) < first ? Number(m[1]) : null;
    }, { timeoutMs: 5000 });
    expect(later).toBeLessThan(first);
    const closers = await screen.waitForScreen('the chatty, server-close and reset closers', (l) =>
      l.some((x) => /demo=chatt.* client close 1000/.test(x)) && l.some((x) => /demo=serve.* upstream close 1001/.test(x)) && l.some((x) => /demo=reset.* upstream rst/.test(x)) ? l : null,
    { timeoutMs: 10_000 });
    expect(closers[0]).toMatch(/^wstap {2}open \d+ {2}closed \d+/);
    screen.sendKeys('q');
    expect(await paneExitStatus(path.join(dir, 'status'), screen)).toBe('0');
  });
});
