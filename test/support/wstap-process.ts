import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CaptureEvent } from '../../src/capture/events.js';
import { readCaptureFile } from '../../src/capture/capture-reader.js';
import { ofConn } from './ws-peers.js';

export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/wstap');

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface WstapProcess {
  /** The TCP port wstap listens on (NaN on a unix socket). */
  port: number;
  /** Where wstap says it listens (its `listen` log field): `127.0.0.1:PORT`, `unix:PATH`, `https://...`, `tls:...`. */
  listen: string;
  /** The wstap process itself (for /proc readings). */
  pid: number;
  capturePath: string;
  logs: LogLine[];
  stderr(): string;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGINT, then waits for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code when the process exits by itself. */
  exited: Promise<number | null>;
  events(): Promise<CaptureEvent[]>;
}

/** A finding as wstap logs it (the `finding` field of its log line). */
export interface LoggedFinding {
  id: string;
  severity: string;
  message: string;
  evidence: string[];
  fix: string;
}

/** Every finding wstap has logged so far (each log line of a finding carries it whole). */
export function findingsIn(wstap: WstapProcess): LoggedFinding[] {
  return wstap.logs.flatMap((l) => {
    const f = (l as unknown as { finding?: LoggedFinding }).finding;
    return f ? [f] : [];
  });
}

/**
 * Every finding wstap logged for connection `conn`, once it has closed. The
 * findings of a close are written right behind the close line, in the same
 * call; the pipe may hand them over a moment later, hence the short wait.
 */
export async function findingsAfterClose(wstap: WstapProcess, conn: number): Promise<LoggedFinding[]> {
  await wstap.waitForLog((l) => l.conn === conn && l.msg.startsWith(`#${conn} closed `));
  await new Promise((resolve) => setTimeout(resolve, 200));
  return wstap.logs.flatMap((l) => {
    const f = (l as unknown as { finding?: LoggedFinding }).finding;
    return l.conn === conn && f ? [f] : [];
  });
}

export interface StartWstapOptions {
  /** A command that execs the rest, e.g. ['prlimit', '--fsize=65536:unlimited', '--']: the process keeps its pid. */
  wrapper?: string[];
  /** Where the capture goes (default: a new temporary directory). */
  capturePath?: string;
  /** Options for node itself, before the script (e.g. ['--inspect=127.0.0.1:0']). */
  nodeArgs?: string[];
  /** The --listen value (default 127.0.0.1:0). */
  listen?: string;
  /** Resolve even when wstap exits before it listens (to test start failures); `port` is NaN then. */
  mayFail?: boolean;
  /** Added to the environment (e.g. the test-only WSTAP_TEST_FAULT, NODE_EXTRA_CA_CERTS). */
  env?: NodeJS.ProcessEnv;
}

/** Runs the real CLI (`bin/wstap proxy`) with JSON logs and a capture file in a temp dir. */
export async function startWstap(args: string[], options: StartWstapOptions = {}): Promise<WstapProcess> {
  const capturePath = options.capturePath ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-run-')), 'capture.jsonl');
  const command = [
    ...(options.wrapper ?? []),
    process.execPath,
    ...(options.nodeArgs ?? []),
    BIN, 'proxy', '--listen', options.listen ?? '127.0.0.1:0', '--no-tui', '--log-format', 'json', '--capture', capturePath, ...args,
  ];
  const child: ChildProcess = spawn(command[0] as string, command.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
  });
  const logs: LogLine[] = [];
  let raw = '';
  let partial = '';
  const waiters: Array<() => void> = [];
  child.stderr?.on('data', (d: Buffer) => {
    raw += d.toString();
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ level: 60, msg: line });
      }
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const waitForLog = async (predicate: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = logs.find(predicate);
      if (found) return found;
      if (child.exitCode !== null) throw new Error(`wstap exited (${child.exitCode}) before the expected log line:\n${raw}`);
      if (Date.now() > deadline) throw new Error(`no matching wstap log line within ${timeoutMs} ms:\n${raw}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  };

  let listen = '';
  try {
    listen = String((await waitForLog((l) => typeof l.listen === 'string')).listen);
  } catch (err) {
    if (!options.mayFail) throw err;
    await exited;
  }
  const port = listen === '' || listen.includes('unix:') ? NaN : Number(listen.split(':').pop());
  return {
    port,
    listen,
    pid: child.pid ?? -1,
    capturePath,
    logs,
    stderr: () => raw,
    waitForLog,
    exited,
    stop: async (signal = 'SIGINT') => {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
    events: () => readCaptureFile(capturePath),
  };
}

/**
 * The capture once `done` holds for it, read again every 100 ms (the writer
 * flushes at least every 250 ms). Past `timeoutMs` it throws with the
 * capture's last events and the end of wstap's stderr.
 */
export async function captureWhen(wstap: WstapProcess, done: (events: CaptureEvent[]) => boolean, timeoutMs = 15_000): Promise<CaptureEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = await wstap.events();
    if (done(events)) return events;
    if (Date.now() > deadline) {
      throw new Error(
        `the capture ${wstap.capturePath} never reached the expected state within ${timeoutMs} ms; its last events:\n` +
          `${events.slice(-30).map((e) => JSON.stringify(e)).join('\n')}\nwstap's stderr (end):\n${wstap.stderr().slice(-3000)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The capture once it holds the conn.close of a connection (recorded after
 * all its other events): `conn` is its id, or finds the id in the capture
 * (undefined while it is not there, e.g. `(events) => connOfUrl(events, tag)`).
 */
export async function captureOfClosed(
  wstap: WstapProcess,
  conn: number | ((events: CaptureEvent[]) => number | undefined),
  timeoutMs = 15_000,
): Promise<{ conn: number; events: CaptureEvent[] }> {
  const idIn = (events: CaptureEvent[]): number | undefined => (typeof conn === 'number' ? conn : conn(events));
  const closed = (events: CaptureEvent[]): boolean => {
    const id = idIn(events);
    return id !== undefined && ofConn(events, id, 'conn.close').length > 0;
  };
  const events = await captureWhen(wstap, closed, timeoutMs);
  return { conn: idIn(events) as number, events };
}

/** Runs the real CLI to its end (`bin/wstap ARGS`: view, export...), with its output. */
export function runWstapSync(args: string[], timeoutMs = 30_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the real CLI to its end without blocking this process (peers in the test keep serving meanwhile). */
export function runWstap(args: string[], timeoutMs = 60_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wstap ${args.join(' ')} did not end within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
