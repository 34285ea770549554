import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startWstap } from '../support/wstap-process.js';

/**
 * A proxy without the UI (--no-tui, no terminal) must not load the terminal
 * UI and blessed: a smaller heap, and under a bulk load V8 then ran a
 * mark-compact every ~100 ms instead of a few a second (README, Performance).
 * A preloaded module writes, at exit, which CommonJS modules the process
 * loaded (blessed is CommonJS).
 */
describe('headless proxy', () => {
  it('never loads blessed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-modules-'));
    const report = path.join(dir, 'modules.json');
    const hook = path.join(dir, 'report-modules.cjs');
    fs.writeFileSync(
      hook,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(report)}, JSON.stringify(Object.keys(require.cache))));\n`,
    );
    const wstap = await startWstap(['--target', 'http://127.0.0.1:9'], { nodeArgs: ['--require', hook] });
    expect(await wstap.stop()).toBe(0);
    const loaded = JSON.parse(fs.readFileSync(report, 'utf8')) as string[];
    // The hook sees the modules: pino's dependencies are CommonJS and always loaded.
    expect(loaded.some((file) => file.includes(`${path.sep}pino${path.sep}`))).toBe(true);
    expect(loaded.filter((file) => file.includes(`${path.sep}blessed${path.sep}`))).toEqual([]);
  });
});
