import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ProxySession } from '../../src/cli/proxy-session.js';
import { exportFromUi } from '../../src/cli/terminal-ui.js';
import { parseTarget } from '../../src/relay/target.js';
import { EchoClient, echoEverything } from '../support/echo-client.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';

/**
 * The UI's `e` key (exportFromUi, in process: the same call the key makes)
 * over a live `--rotate --keep` capture: it reads the kept set, not only the
 * file the user named (deleted by --keep by then), while the writer goes on
 * rotating and deleting under it.
 */

interface HarDoc {
  log: { entries: Array<{ serverIPAddress?: string; _wstap?: { connectionId: number; incomplete?: { beginningMissing: boolean } } }> };
}

describe('the UI export of a rotated capture being written', () => {
  let app: UpstreamApp | undefined;
  let session: ProxySession | undefined;
  const cwd = process.cwd();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-ui-export-'));

  afterEach(async () => {
    process.chdir(cwd);
    await session?.stop('test');
    await app?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exports the kept files as one session while traffic keeps rotating them: a valid HAR, the connection whose start was deleted marked incomplete', async () => {
    app = await startUpstreamApp();
    echoEverything(app);
    const base = path.join(dir, 'cap.jsonl');
    session = await ProxySession.start({
      mode: 'http',
      listen: { kind: 'tcp', host: '127.0.0.1', port: 0 },
      target: parseTarget(`http://127.0.0.1:${app.port}`, 'http'),
      insecure: false,
      previewLimit: 256,
      capturePath: base,
      overwriteCapture: false,
      rotateBytes: 64 * 1024,
      keepFiles: 3,
      logger: pino({ level: 'silent' }),
      drainSeconds: 0,
    });
    const port = Number(session.address.split(':').pop());
    const client = await EchoClient.open(port, '/kept-open', 7);
    // Until --keep has deleted cap.jsonl (and with it #1's conn.open).
    while (fs.existsSync(base)) await client.round(20);
    // The export reads while more traffic rotates the set under it.
    const more = (async () => {
      for (let i = 0; i < 5; i++) await client.round(20);
    })();
    process.chdir(dir);
    const live = session;
    const message = await exportFromUi({ capturePath: live.capturePath, redact: true, payloads: 'preview', logger: pino({ level: 'silent' }), flush: () => live.flush() });
    await more;
    process.chdir(cwd);
    expect(message).toMatch(/^wrote .*wstap-[^/]*\.har: 1 entries, \d+ messages, secrets redacted$/);
    const harPath = (/^wrote (.*\.har):/.exec(message) as RegExpExecArray)[1] as string;
    const doc = JSON.parse(fs.readFileSync(harPath, 'utf8')) as HarDoc;
    expect(harSchemaErrors(doc)).toEqual([]);
    expect(doc.log.entries.map((e) => e._wstap?.connectionId)).toEqual([1]);
    expect(doc.log.entries[0]?._wstap?.incomplete?.beginningMissing).toBe(true);
    // The session's start came from a kept file's header.
    expect(doc.log.entries[0]?.serverIPAddress).toBe('127.0.0.1');
    await client.close();
  });
});
