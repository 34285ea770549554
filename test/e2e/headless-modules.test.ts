import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startWstap } from '../support/wstap-process.js';

/**
 * A proxy without the UI (--no-tui, no terminal), without a profile and with
 * JSON logs must not load blessed, the YAML parser or pino-pretty: with them
 * its heap was large enough that V8 followed the scavenges of a bulk load
 * with a mark-compact every ~100 ms (README, Performance). A preloaded module
 * writes, at exit, which CommonJS modules the process loaded (all three are
 * CommonJS under Node).
 */
describe('headless proxy', () => {
  it('never loads blessed, yaml or pino-pretty', async () => {
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
    for (const unwanted of ['blessed', 'yaml', 'pino-pretty']) {
      expect(loaded.filter((file) => file.includes(`${path.sep}node_modules${path.sep}${unwanted}${path.sep}`))).toEqual([]);
    }
  });
});
