import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

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
});
