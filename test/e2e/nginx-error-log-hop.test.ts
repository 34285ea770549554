import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type Nginx } from '../support/nginx.js';
import { startSocatBalancer, type SocatBalancer } from '../support/socat-balancer.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient } from '../support/ws-peers.js';
import { waitUntil } from '../support/wait-until.js';
import { captureWhen, findingsAfterClose, runWstapSync, startWstap, type LoggedFinding, type WstapProcess } from '../support/wstap-process.js';

/**
 * The incident chain: a load balancer (socat -T, both-way idle, FIN) in
 * front of a real nginx, wstap behind nginx, the app behind wstap, and
 * nginx's error log followed by wstap (--nginx-error-log). wstap sees one
 * leg (nginx to the app): an idle WebSocket cut by the balancer and one cut
 * by nginx's proxy_read_timeout both arrive as a FIN from nginx after the
 * same silence. nginx's log line, or its absence, names the hop.
 */

interface Chain {
  lb: SocatBalancer;
  nginx: Nginx;
  wstap: WstapProcess;
  errorLog: string;
  found: LoggedFinding[];
}

/** A profile with the balancer and nginx in front of wstap, each with the timeout given (seconds), both FIN. */
function writeProfile(dir: string, name: string, lbSeconds: number, nginxSeconds: number): string {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(
    file,
    `name: ${name}
description: test profile, a balancer then nginx in front of wstap
hops:
  - name: front-lb
    where: client-side
    timeouts:
      - setting: idle_timeout
        after: ${lbSeconds}s
        measures: both-idle
        action: fin
  - name: nginx
    where: client-side
    timeouts:
      - setting: proxy_read_timeout
        after: ${nginxSeconds}s
        measures: both-idle
        action: fin
`,
  );
  return file;
}

interface ChainSpec {
  name: string;
  /** What really runs: socat's -T and nginx's proxy_read_timeout. */
  lbSeconds: number;
  nginxSeconds: number;
  /** What the profile says. */
  profile: { lb: number; nginx: number };
  logLevel?: 'info' | 'error';
  /** proxy_set_header X-Nginx-Connection $connection (exact join); otherwise joined by request line and time. */
  connectionHeader?: boolean;
  /** Rotate nginx's log before the connection: logrotate's `create` (rename, then nginx reopens) or `copytruncate`. */
  rotate?: 'rename' | 'copytruncate';
}

/** Runs the chain until the idle WebSocket through it is cut; the findings wstap logged for it. */
async function idleThroughChain(app: UpstreamApp, dir: string, spec: ChainSpec): Promise<Chain> {
  const errorLog = path.join(dir, `${spec.name}-error.log`);
  const profile = writeProfile(dir, spec.name, spec.profile.lb, spec.profile.nginx);
  const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--profile', profile, '--nginx-error-log', errorLog]);
  const nginx = await startNginx({
    upstreamPort: wstap.port,
    proxyReadTimeout: `${spec.nginxSeconds}s`,
    errorLog: { path: errorLog, level: spec.logLevel ?? 'info' },
    ...(spec.connectionHeader === false ? {} : { locationExtra: 'proxy_set_header X-Nginx-Connection $connection;' }),
  });
  const lb = await startSocatBalancer(nginx.port, spec.lbSeconds);
  // wstap has read the log once (nginx's line about socat's probe connection) before it is rotated under it.
  if (spec.rotate) await captureWhen(wstap, (events) => events.some((e) => e.kind === 'nginx.log'));
  if (spec.rotate === 'rename') {
    fs.renameSync(errorLog, `${errorLog}.1`);
    nginx.reopenLogs();
    await waitUntil('nginx reopened its error log', () => fs.existsSync(errorLog));
    await wstap.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('was rotated (renamed away)'));
  } else if (spec.rotate === 'copytruncate') {
    fs.copyFileSync(errorLog, `${errorLog}.1`);
    fs.truncateSync(errorLog, 0);
    await wstap.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('was truncated (copytruncate)'));
  }
  const client = await connectClient(`ws://127.0.0.1:${lb.port}/ws?test=${spec.name}`);
  // Both hops end with a FIN and no close frame: the browser-side code is 1006.
  expect((await closedEvent(client)).code).toBe(1006);
  const request = await wstap.waitForLog((l) => typeof l.url === 'string' && l.url.endsWith(`test=${spec.name}`));
  const found = (await findingsAfterClose(wstap, request.conn as number)).filter((f) => f.id !== 'timeout.approaching');
  return { lb, nginx, wstap, errorLog, found };
}

async function stopChain(c: Chain | undefined): Promise<void> {
  if (!c) return;
  await c.lb.stop();
  await c.nginx.stop();
  await c.wstap.stop();
}

const verdict = (c: Chain): LoggedFinding => {
  const v = c.found.find((f) => f.id.startsWith('timeout.'));
  if (!v) throw new Error(`no timeout verdict: ${JSON.stringify(c.found)}\n${c.wstap.stderr().slice(-3000)}`);
  return v;
};

describe('nginx error log names the hop: socat balancer -> real nginx -> wstap -> app, an idle WebSocket', () => {
  let app: UpstreamApp;
  let dir: string;
  const chains: Record<string, Chain> = {};
  beforeAll(async () => {
    app = await startUpstreamApp();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-nginx-hop-'));
    // One at a time: each waits out a real idle timeout of 2 s.
    chains['a'] = await idleThroughChain(app, dir, { name: 'lb-shorter', lbSeconds: 2, nginxSeconds: 5, profile: { lb: 2, nginx: 5 } });
    chains['b'] = await idleThroughChain(app, dir, { name: 'nginx-fires', lbSeconds: 5, nginxSeconds: 2, profile: { lb: 2, nginx: 2 } });
    chains['c'] = await idleThroughChain(app, dir, { name: 'lb-fires', lbSeconds: 2, nginxSeconds: 5, profile: { lb: 2, nginx: 2 } });
    chains['d'] = await idleThroughChain(app, dir, { name: 'error-level', lbSeconds: 5, nginxSeconds: 2, profile: { lb: 2, nginx: 2 }, logLevel: 'error' });
    chains['e'] = await idleThroughChain(app, dir, { name: 'no-header', lbSeconds: 5, nginxSeconds: 2, profile: { lb: 2, nginx: 2 }, connectionHeader: false });
    chains['f'] = await idleThroughChain(app, dir, { name: 'renamed', lbSeconds: 5, nginxSeconds: 2, profile: { lb: 2, nginx: 2 }, rotate: 'rename' });
    chains['g'] = await idleThroughChain(app, dir, { name: 'copytruncated', lbSeconds: 5, nginxSeconds: 2, profile: { lb: 2, nginx: 2 }, rotate: 'copytruncate' });
  }, 120_000);
  afterAll(async () => {
    for (const c of Object.values(chains)) await stopChain(c);
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('(a) the balancer\'s timeout shorter than nginx\'s: the balancer is named', () => {
    const v = verdict(chains['a'] as Chain);
    expect(v.id).toBe('timeout.match');
    expect(v.message).toMatch(/matches front-lb idle_timeout 2s$/);
  });

  it("(b) equal in the profile, nginx fires: nginx named, its log line in the evidence, the balancer ruled out by it", () => {
    const c = chains['b'] as Chain;
    const v = verdict(c);
    expect(v.id).toBe('timeout.match');
    expect(v.message).toMatch(/^closed by client side \(fin\) after [123]\.\d\d s without data either way: matches nginx proxy_read_timeout 2s$/);
    const line = v.evidence.find((e) => e.startsWith("nginx's error log: "));
    expect(line).toMatch(/\[info\] \d+#\d+: \*\d+ upstream timed out \(110: Connection timed out\) while proxying upgraded connection, client: 127\.0\.0\.1, .*request: "GET \/ws\?test=nginx-fires HTTP\/1\.1"/);
    expect(line).toContain('(tied to this connection exactly: X-Nginx-Connection ');
    expect(v.evidence).toContain("ruled out: front-lb idle_timeout 2s is not nginx, and nginx's error log says nginx's own timer closed this connection");
    // The line is a finding of its own on the connection, and it is in the capture for view later.
    expect(c.found.map((f) => f.id)).toContain('nginx.timeout');
  });

  it('(c) equal in the profile, the balancer fires: no timeout line while the log is at info, so the hop in front of nginx is named', () => {
    const c = chains['c'] as Chain;
    const v = verdict(c);
    expect(v.id).toBe('timeout.match');
    expect(v.message).toMatch(/matches front-lb idle_timeout 2s$/);
    expect(v.evidence.join('\n')).toMatch(/logs at info \(\d+ info line\(s\) read, the last at \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\) and has no timeout line for this connection/);
    expect(v.evidence.join('\n')).toContain("ruled out: nginx proxy_read_timeout 2s wrote no timeout line for this connection, and nginx's error log is at info");
    expect(c.found.map((f) => f.id)).not.toContain('nginx.timeout');
    expect(fs.readFileSync(c.errorLog, 'utf8')).not.toMatch(/upstream timed out/);
  });

  it('(d) the log at error level only: timeout.ambiguous, and the advice to log at info', () => {
    const c = chains['d'] as Chain;
    const v = verdict(c);
    expect(v.id).toBe('timeout.ambiguous');
    expect(v.evidence.join('\n')).toContain('holds no info-level lines');
    expect(v.fix).toContain(`\`error_log ${c.errorLog} info;\``);
  });

  it('without X-Nginx-Connection the line is tied by request line, client and time, and the evidence says it is not exact', () => {
    const v = verdict(chains['e'] as Chain);
    expect(v.id).toBe('timeout.match');
    expect(v.message).toMatch(/matches nginx proxy_read_timeout 2s$/);
    expect(v.evidence.join('\n')).toMatch(/by request line "GET \/ws\?test=no-header HTTP\/1\.1", client 127\.0\.0\.1, time \(whole seconds\); not exact/);
  });

  it("the log rotated under wstap (rename + nginx reopen, or copytruncate): nginx's line in the new file still names nginx", () => {
    for (const c of [chains['f'], chains['g']] as Chain[]) {
      const v = verdict(c);
      expect(v.id).toBe('timeout.match');
      expect(v.message).toMatch(/matches nginx proxy_read_timeout 2s$/);
      expect(fs.readFileSync(c.errorLog, 'utf8')).toMatch(/upstream timed out/);
    }
  });

  it('the capture holds the lines: view and export judge it the same later, and view --nginx-error-log on the log itself agrees', async () => {
    const c = chains['b'] as Chain;
    await c.wstap.stop();
    const recorded = runWstapSync(['view', '--no-tui', c.wstap.capturePath]);
    expect(recorded.status).toBe(0);
    expect(recorded.stdout).toMatch(/matches nginx proxy_read_timeout 2s/);
    const reread = runWstapSync(['view', '--no-tui', c.wstap.capturePath, '--nginx-error-log', c.errorLog]);
    expect(reread.status).toBe(0);
    expect(reread.stdout).toMatch(/matches nginx proxy_read_timeout 2s/);
    const har = path.join(dir, 'b.har');
    const exported = runWstapSync(['export', c.wstap.capturePath, '-o', har, '--nginx-error-log', c.errorLog]);
    expect(exported.status).toBe(0);
    const entries = (JSON.parse(fs.readFileSync(har, 'utf8')) as { log: { entries: Array<{ _wstap?: { diagnosis?: Array<{ id: string; message: string }> } }> } }).log.entries;
    const diagnosis = entries.flatMap((e) => e._wstap?.diagnosis ?? []);
    expect(diagnosis.find((d) => d.id === 'timeout.match')?.message).toMatch(/matches nginx proxy_read_timeout 2s$/);
    expect(diagnosis.map((d) => d.id)).toContain('nginx.timeout');
  });
});
