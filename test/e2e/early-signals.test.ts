import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startUpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient } from '../support/ws-peers.js';
import { startWstap } from '../support/wstap-process.js';

/**
 * A SIGINT that reaches wstap after it said it listens but before the
 * shutdown handler took over once killed it unflushed (the process was
 * descheduled between the two on a busy machine: CI). Signals are now caught
 * before the session starts and handed over, never dropped. Real signals, in
 * a child process (the compiled module, as the CLI runs it).
 */
const SHUTDOWN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli/shutdown.js');

function runChild(script: string): { status: number | null; signal: NodeJS.Signals | null; stdout: string } {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  return { status: result.status, signal: result.signal, stdout: result.stdout };
}

describe('signals before the session has started', () => {
  it('a SIGINT that comes before the handler is there is held, then handed to it', () => {
    const result = runChild(`
      const { catchSignalsEarly } = await import(${JSON.stringify(SHUTDOWN)});
      const early = catchSignalsEarly();
      process.kill(process.pid, 'SIGINT');
      // Let it be dispatched while nobody but the early catcher listens.
      await new Promise((r) => setTimeout(r, 200));
      early.forwardTo((signal) => { process.stdout.write('handled ' + signal + '\\n'); process.exit(0); });
      setTimeout(() => process.exit(3), 2000);
    `);
    expect(result).toEqual({ status: 0, signal: null, stdout: 'handled SIGINT\n' });
  });

  it('later signals go straight to the handler, each one', () => {
    const result = runChild(`
      const { catchSignalsEarly } = await import(${JSON.stringify(SHUTDOWN)});
      const early = catchSignalsEarly();
      let n = 0;
      early.forwardTo((signal) => { process.stdout.write(signal + '\\n'); if (++n === 2) process.exit(0); });
      process.kill(process.pid, 'SIGTERM');
      setTimeout(() => process.kill(process.pid, 'SIGINT'), 100);
      setTimeout(() => process.exit(3), 2000);
    `);
    expect(result).toEqual({ status: 0, signal: null, stdout: 'SIGTERM\nSIGINT\n' });
  });

  it('with hangup: a SIGHUP before the handler is there is held, never fatal, and handed to the hangup handler only', () => {
    const result = runChild(`
      const { catchSignalsEarly } = await import(${JSON.stringify(SHUTDOWN)});
      const early = catchSignalsEarly({ hangup: true });
      process.kill(process.pid, 'SIGHUP');
      await new Promise((r) => setTimeout(r, 200));
      early.forwardTo((signal) => { process.stdout.write('stop ' + signal + '\\n'); process.exit(4); });
      early.forwardHangupTo(() => { process.stdout.write('hangup\\n'); process.exit(0); });
      setTimeout(() => process.exit(3), 2000);
    `);
    expect(result).toEqual({ status: 0, signal: null, stdout: 'hangup\n' });
  });
});

describe('SIGHUP to a running proxy without the UI', () => {
  it('logs one line, goes on relaying, and SIGINT still stops it with status 0', async () => {
    const app = await startUpstreamApp();
    const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`]);
    try {
      process.kill(wstap.pid, 'SIGHUP');
      const line = await wstap.waitForLog((l) => /^terminal gone \(SIGHUP\)/.test(l.msg));
      expect(line.msg).toBe('terminal gone (SIGHUP); wstap goes on relaying headless until SIGINT or SIGTERM');
      process.kill(wstap.pid, 'SIGHUP');
      const upstreamSide = app.nextConnection();
      const client = await connectClient(`ws://127.0.0.1:${wstap.port}/after-hangup`);
      const { ws: upstream } = await upstreamSide;
      const got = new Promise<string>((resolve) => upstream.once('message', (d: Buffer) => resolve(d.toString())));
      client.send('still relaying');
      expect(await got).toBe('still relaying');
      const closed = closedEvent(client);
      client.close(1000);
      await closed;
      expect(await wstap.stop('SIGINT')).toBe(0);
      expect(wstap.logs.filter((l) => /^terminal gone/.test(l.msg))).toHaveLength(1);
      expect((await wstap.events()).at(-1)?.kind).toBe('session.end');
    } finally {
      await wstap.stop();
      await app.close();
    }
  });
});
