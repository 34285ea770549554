import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, flushLogger } from '../../src/log.js';

/** The logger's lines are joined and written in batches (src/log.ts): none may be lost, reordered or held past the wait. */
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function fileLogger(): { logger: ReturnType<typeof createLogger>; lines: () => Array<{ msg: string; n?: number }> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-log-batch-'));
  dirs.push(dir);
  const file = path.join(dir, 'log.jsonl');
  const fd = fs.openSync(file, 'w');
  const logger = createLogger({ format: 'json', fd, level: 'info' });
  const lines = (): Array<{ msg: string; n?: number }> =>
    fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { msg: string; n?: number });
  return { logger, lines };
}

describe('the batched logger', () => {
  it('writes every line, in order, across many batches, once flushed', async () => {
    const { logger, lines } = fileLogger();
    const count = 5000;
    for (let n = 0; n < count; n++) logger.info({ n }, `line ${n} ${'é'.repeat(n % 7)}`);
    await flushLogger(logger);
    const got = lines();
    expect(got).toHaveLength(count);
    expect(got.map((l) => l.n)).toEqual(Array.from({ length: count }, (_, n) => n));
    expect(got[6]?.msg).toBe(`line 6 ${'é'.repeat(6)}`);
  });

  it('writes a lone line within its wait (100 ms), with no flush asked for', async () => {
    const { logger, lines } = fileLogger();
    logger.info('quiet');
    expect(lines()).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(lines().map((l) => l.msg)).toEqual(['quiet']);
  });

  it('writes the lines still joined when the process exits, in order, after those handed over before', () => {
    const logModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/log.js');
    // 30 lines of about 1 KB written out; then 6 more (more than sonic-boom's 4 KiB, less than a hand-over) still
    // joined in log.ts when the process exits at once, as a shutdown's last lines are when the event loop empties.
    const script = `
      import { createLogger } from ${JSON.stringify(logModule)};
      const logger = createLogger({ format: 'json' });
      for (let n = 0; n < 30; n++) logger.info({ n, pad: 'x'.repeat(1000) }, 'line ' + n);
      setTimeout(() => {
        for (let n = 30; n < 36; n++) logger.info({ n, pad: 'x'.repeat(1000) }, 'line ' + n);
        process.exit(0);
      }, 500);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    // stderr, a pipe, as under a service manager or the tests' own wstap processes.
    const got = r.stderr
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { n: number }).n);
    expect(got).toEqual(Array.from({ length: 36 }, (_, n) => n));
  });
});
