import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaptureFile } from '../../src/capture/capture-reader.js';
import { freePort } from '../support/ports.js';
import { paneExitStatus, readIfThere, shellQuote, tmuxMissing, TmuxServer } from '../support/tmux.js';
import { waitUntil } from '../support/wait-until.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient, MessageDigest, sleep } from '../support/ws-peers.js';
import { BIN } from '../support/wstap-process.js';

/**
 * The relay outlives its terminal: `wstap proxy` with its UI in a tmux pane,
 * a connection echoing through it, then the terminal is killed (tmux
 * kill-session hangs up the pty: the pane's shell gets SIGHUP and passes it
 * on, as an interactive shell does, and wstap's reads and writes on the
 * terminal fail with EIO) and SIGHUP is sent once more by hand. wstap must
 * go on relaying, say so once in its log file, and stop cleanly on SIGINT.
 */

const WIDTH = 100;
const HEIGHT = 30;
const HEADER = 'wstap  open';
const TERMINAL_GONE = /^terminal gone \(/;

interface LogLine {
  level: number;
  msg: string;
}

function logLines(file: string): LogLine[] {
  return (readIfThere(file) ?? '')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as LogLine);
}

function alive(pid: number): boolean {
  try {
    if (/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))) return false;
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Sends numbered messages of varying size one after another, each once the
 * previous came back, until stopped; checks every echo against what was sent.
 */
class EchoLoop {
  readonly sent = new MessageDigest();
  readonly received = new MessageDigest();
  #stopped = false;
  readonly done: Promise<void>;

  constructor(readonly ws: WebSocket) {
    this.done = this.#run();
  }

  async #run(): Promise<void> {
    for (let i = 0; !this.#stopped; i++) {
      const size = 4 + ((i * 7919) % 3000);
      const data = Buffer.alloc(size, i & 0xff);
      data.writeUInt32BE(i, 0);
      const back = new Promise<Buffer>((resolve) => this.ws.once('message', (d: Buffer) => resolve(d)));
      this.sent.add(data, true);
      this.ws.send(data, { binary: true });
      this.received.add(await back, true);
      await sleep(10);
    }
  }

  stop(): Promise<void> {
    this.#stopped = true;
    return this.done;
  }
}

/** wstap in a tmux pane whose shell outlives the hangup to report wstap's exit status. */
interface PaneRun {
  dir: string;
  tmux: TmuxServer;
  listenPort: number;
  logFile: string;
  capturePath: string;
  statusFile: string;
  pidFile: string;
  context: () => string;
}

async function startInPane(app: UpstreamApp): Promise<PaneRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-hup-'));
  const logFile = path.join(dir, 'wstap.log');
  const capturePath = path.join(dir, 'capture.jsonl');
  const statusFile = path.join(dir, 'status');
  const pidFile = path.join(dir, 'wstap.pid');
  const listenPort = await freePort();
  const q = shellQuote;
  const cli = [process.execPath, BIN, 'proxy', '--target', `http://127.0.0.1:${app.port}`, '--listen', `127.0.0.1:${listenPort}`, '--log-file', logFile, '--capture', capturePath]
    .map(q)
    .join(' ');
  // Like an interactive shell, the pane's shell passes SIGHUP on to its job,
  // and it stays alive through the hangup to report wstap's exit status. The
  // job keeps the terminal as stdin (via fd 3: an asynchronous list would
  // get /dev/null).
  const script = [
    'export TERM=xterm-256color NCURSES_NO_UTF8_ACS=1',
    `cd ${q(dir)}`,
    'trap \'kill -HUP "$child" 2>/dev/null\' HUP',
    'exec 3<&0',
    `${cli} <&3 3<&- &`,
    'child=$!',
    `echo "$child" > ${q(pidFile)}`,
    'wait "$child"; code=$?',
    // A trapped signal interrupts wait (status > 128) while the job runs on.
    'while [ "$code" -gt 128 ] && kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done',
    `echo "$code" > ${q(statusFile + '.tmp')} && mv ${q(statusFile + '.tmp')} ${q(statusFile)}`,
    'exec sleep 3600',
    '',
  ].join('\n');
  const tmux = new TmuxServer(dir);
  tmux.start({ width: WIDTH, height: HEIGHT, script, scriptFile: path.join(dir, 'run.sh') });
  const context = (): string =>
    [`exit status file: ${readIfThere(statusFile)?.trim() ?? '(none yet)'}`, `log file ${logFile}:`, (readIfThere(logFile) ?? '(missing)').split('\n').slice(-15).join('\n')].join('\n');
  return { dir, tmux, listenPort, logFile, capturePath, statusFile, pidFile, context };
}

async function cleanUp(run: PaneRun | undefined, client: WebSocket | undefined): Promise<void> {
  client?.terminate();
  if (!run) return;
  const pid = Number(readIfThere(run.pidFile) ?? NaN);
  await run.tmux.kill(Number.isInteger(pid) && pid > 0 ? [pid] : []);
  fs.rmSync(run.dir, { recursive: true, force: true });
}

describe('wstap proxy outlives its terminal, in tmux', () => {
  let app: UpstreamApp | undefined;
  let noTmux: Error | null = null;

  beforeAll(async () => {
    noTmux = tmuxMissing();
    if (!noTmux) app = await startUpstreamApp();
  });

  afterAll(async () => {
    await app?.close();
  });

  const cases = [
    {
      name: 'the terminal killed (tmux kill-session: the pty hangs up, the shell passes SIGHUP on), then SIGHUP again by hand',
      first: (run: PaneRun, _pid: number) => run.tmux.run(['kill-session', '-t', run.tmux.session]),
      then: (_run: PaneRun, pid: number) => process.kill(pid, 'SIGHUP'),
      // Whichever wstap notices first: its terminal input ending, or the SIGHUP.
      why: /^(stdin (ended|closed|EIO)|SIGHUP)$/,
    },
    {
      name: 'SIGHUP first (kill -HUP with the UI up), then the terminal killed',
      first: (_run: PaneRun, pid: number) => process.kill(pid, 'SIGHUP'),
      then: (run: PaneRun, _pid: number) => run.tmux.run(['kill-session', '-t', run.tmux.session]),
      why: /^SIGHUP$/,
    },
  ];

  for (const c of cases) {
    it(`${c.name}: relaying goes on byte-exact, one log line says so, SIGINT stops it cleanly`, async () => {
      if (noTmux) throw noTmux;
      let run: PaneRun | undefined;
      let client: WebSocket | undefined;
      try {
        run = await startInPane(app!);
        const { tmux: screen, context, logFile } = run;
        await screen.waitForScreen('the UI header', (lines) => lines[0]?.startsWith(`${HEADER} 0`), { timeoutMs: 15_000, context });
        const pid = Number(readIfThere(run.pidFile));
        expect(pid).toBeGreaterThan(0);

        // An echoing connection through wstap.
        const upstreamSide = app!.nextConnection();
        client = await connectClient(`ws://127.0.0.1:${run.listenPort}/echo`);
        const { ws: upstream } = await upstreamSide;
        upstream.on('message', (data: Buffer, isBinary: boolean) => upstream.send(data, { binary: isBinary }));
        const loop = new EchoLoop(client);
        await waitUntil('a first few echoes', () => loop.received.count >= 20, { timeoutMs: 15_000, context });

        c.first(run, pid);
        const gone = await waitUntil('the "terminal gone" line in the log file', () => logLines(logFile).find((l) => TERMINAL_GONE.test(l.msg)), { timeoutMs: 15_000, context });
        expect((gone as LogLine & { why?: string }).why).toMatch(c.why);
        expect(gone.msg).toMatch(/the UI is closed; wstap goes on relaying headless, logging to .*wstap\.log, until SIGINT or SIGTERM$/);
        expect(alive(pid), context()).toBe(true);

        // Relaying goes on: echoes keep coming for a few seconds.
        const atFirst = loop.received.count;
        await waitUntil('echoes after the terminal went', () => loop.received.count >= atFirst + 50, { timeoutMs: 20_000, context });
        await sleep(2000);
        expect(alive(pid), context()).toBe(true);

        // The other half: nothing changes, nothing more is said.
        c.then(run, pid);
        const atThen = loop.received.count;
        await waitUntil('echoes after the second blow', () => loop.received.count >= atThen + 50, { timeoutMs: 20_000, context });
        expect(alive(pid), context()).toBe(true);
        expect(logLines(logFile).filter((l) => TERMINAL_GONE.test(l.msg))).toHaveLength(1);

        await loop.stop();
        expect(loop.received.count).toBe(loop.sent.count);
        expect(loop.received.hex()).toBe(loop.sent.hex());
        const closed = closedEvent(client);
        client.close(1000, 'done');
        expect((await closed).code).toBe(1000);

        // SIGINT ends it cleanly: exit 0, the capture complete.
        process.kill(pid, 'SIGINT');
        const status = await paneExitStatus(run!.statusFile, run!.tmux, { timeoutMs: 15_000, context });
        expect(status, context()).toBe('0');
        const log = logLines(logFile);
        expect(log.filter((l) => l.level >= 50), context()).toEqual([]);
        expect(log.some((l) => l.msg === 'SIGINT: shutting down')).toBe(true);
        const events = await readCaptureFile(run.capturePath);
        expect(events.at(-1)?.kind).toBe('session.end');
        expect(events.filter((e) => e.kind === 'ws.message').length).toBe(2 * loop.sent.count);
      } finally {
        await cleanUp(run, client);
      }
    }, 120_000);
  }
});
