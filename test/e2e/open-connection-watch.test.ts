import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type Nginx } from '../support/nginx.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient, sleep } from '../support/ws-peers.js';
import { startWstap, type LoggedFinding, type WstapProcess } from '../support/wstap-process.js';

/**
 * A connection still open but heading for a known timeout is flagged in the
 * --no-tui log before anything closes it. wstap is told nginx's timeout is
 * 1.5 s while nginx really waits 60 s, so the connection outlives the warning.
 */
describe('open connections nearing a known timeout', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  let nginx: Nginx;
  beforeAll(async () => {
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--timeout', 'nginx.proxy_read_timeout=1500ms']);
    nginx = await startNginx({ upstreamPort: wstap.port });
  });
  afterAll(async () => {
    await nginx?.stop();
    await wstap?.stop();
    await app?.close();
  });

  const warningsFor = (conn: number): LoggedFinding[] =>
    wstap.logs.flatMap((l) => {
      const f = (l as unknown as { finding?: LoggedFinding }).finding;
      return l.conn === conn && f?.id === 'timeout.approaching' ? [f] : [];
    });

  it('a quiet connection is flagged once, while open; a chatty one is not', async () => {
    const quiet = await connectClient(`ws://127.0.0.1:${nginx.port}/ws?test=quiet`);
    const chatty = await connectClient(`ws://127.0.0.1:${nginx.port}/ws?test=chatty`);
    let ticks = 0;
    const talking = setInterval(() => chatty.send(`tick ${ticks++}`), 250);
    const quietConn = (await wstap.waitForLog((l) => l.url === '/ws?test=quiet')).conn as number;
    const chattyConn = (await wstap.waitForLog((l) => l.url === '/ws?test=chatty')).conn as number;
    const line = await wstap.waitForLog((l) => l.conn === quietConn && /heading for/.test(l.msg));
    expect(line.msg).toMatch(
      new RegExp(`^#${quietConn} heading for nginx proxy_read_timeout 1s500ms: \\d\\.\\d\\d s without data either way; it (fires in \\d\\.\\d\\d s unless data flows|should have fired \\d\\.\\d\\d s ago); fix: traffic \\(an app heartbeat\\) more often than every 1s500ms keeps it open$`),
    );
    // Nothing had closed it: the warning comes while the connection is open.
    expect(wstap.logs.some((l) => l.conn === quietConn && /closed by/.test(l.msg))).toBe(false);
    expect(quiet.readyState).toBe(quiet.OPEN);
    // Let a few more once-a-second checks pass.
    await sleep(2500);
    clearInterval(talking);
    expect(ticks).toBeGreaterThan(10);
    expect(warningsFor(quietConn)).toHaveLength(1);
    expect(warningsFor(chattyConn)).toHaveLength(0);
    const closed = Promise.all([closedEvent(quiet), closedEvent(chatty)]);
    quiet.close(1000);
    chatty.close(1000);
    await closed;
  });
});
