import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProbeJson } from '../../src/probe/probe-report.js';
import { startNginxStack, type NginxStack } from '../support/nginx-stack.js';
import { startSocatBalancer, type SocatBalancer } from '../support/socat-balancer.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { ofConn, ofKind } from '../support/ws-peers.js';
import { BIN, captureWhen, runWstap, startWstap, type WstapProcess } from '../support/wstap-process.js';
import { freePort } from '../support/ports.js';
import { paneExitStatus, shellQuote, tmuxMissing, TmuxServer } from '../support/tmux.js';
import { makeSelfSignedCertificate } from '../support/tls-certs.js';

/**
 * `wstap probe` on the chain of an incident: a stand-in load balancer
 * (socat -T 2: 2 s both-way idle, then a FIN) in front of real nginx
 * (proxy_read_timeout 4s) in front of wstap (--probe-token) in front of an
 * app that records every WebSocket it accepts and every plain request.
 */

const TOKEN = 'probe-test-token-1';

function writeProfile(dir: string): string {
  const file = path.join(dir, 'lb-nginx.yaml');
  fs.writeFileSync(
    file,
    `name: lb-nginx
description: test profile, socat -T 2 then nginx 4 s in front of wstap
hops:
  - name: lb
    where: client-side
    timeouts:
      - setting: socat-T
        after: 2s
        measures: both-idle
        action: fin
  - name: nginx
    where: client-side
    timeouts:
      - setting: proxy_read_timeout
        after: 4s
        measures: both-idle
        action: fin
`,
  );
  return file;
}

const VARIANT_KEYS = ['clientEnd', 'livedSeconds', 'name', 'proxyEnd'];

function parseJson(stdout: string): ProbeJson {
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const json = JSON.parse(lines[0] as string) as ProbeJson;
  expect(Object.keys(json).sort()).toEqual(['idleTimeoutSeconds', 'variants', 'verdict']);
  for (const v of json.variants) expect(Object.keys(v).sort()).toEqual(VARIANT_KEYS);
  return json;
}

function variant(json: ProbeJson, name: string): ProbeJson['variants'][number] {
  const found = json.variants.find((v) => v.name === name);
  if (!found) throw new Error(`no variant ${name} in ${JSON.stringify(json)}`);
  return found;
}

describe('wstap probe through socat -T 2 -> nginx (proxy_read_timeout 4s) -> wstap --probe-token -> app', () => {
  let app: UpstreamApp;
  let stack: NginxStack;
  let lb: SocatBalancer;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-probe-'));
    app = await startUpstreamApp();
    stack = await startNginxStack(app.port, { proxyReadTimeout: '4s' }, ['--probe-token', TOKEN]);
    lb = await startSocatBalancer(stack.nginx.port, 2);
  });
  afterAll(async () => {
    await lb?.stop();
    await stack?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('finds the shortest idle timeout (2 s) with the silent variant, a 0.5 s client heartbeat survives to --max, and the profile names the balancer', async () => {
    const url = `ws://127.0.0.1:${lb.port}/probe-app`;
    const r = await runWstap(['probe', url, '--interval', '500ms', '--max', '5s', '--profile', writeProfile(dir), '--json']);
    expect(r.status, r.stderr).toBe(0);
    const json = parseJson(r.stdout);
    const silent = variant(json, 'silent');
    expect(silent.clientEnd).toEqual({ kind: 'fin' });
    expect(Math.abs(silent.livedSeconds - 2)).toBeLessThan(1);
    expect(json.idleTimeoutSeconds).not.toBeNull();
    expect(Math.abs((json.idleTimeoutSeconds as number) - 2)).toBeLessThan(1);
    for (const name of ['client-messages', 'client-pings']) {
      const heartbeat = variant(json, name);
      expect(heartbeat.clientEnd).toEqual({ kind: 'open' });
      expect(heartbeat.livedSeconds).toBeGreaterThanOrEqual(4.9);
      // Without --token wstap's end is not asked.
      expect(heartbeat.proxyEnd).toBeNull();
    }
    expect(json.variants.map((v) => v.name)).toEqual(['silent', 'client-messages', 'client-pings']);
    expect(json.verdict).toContain('Cut by lb socat-T 2s (client-side), which sends a FIN when it fires; the probe saw a FIN.');
    expect(json.verdict).toContain('Not nginx proxy_read_timeout 4s: it fires after 4s');
    // No token: these were the app's connections.
    expect(app.upgrades.filter((u) => u === '/probe-app')).toHaveLength(3);
    // Not a terminal: each variant's line on stderr as it ends, no progress line.
    expect(r.stderr).toMatch(/^ {2}silent {11}a FIN after \d\.\d s$/m);
    expect(r.stderr).not.toContain('probing:');
  }, 25_000);

  it("names nginx when its proxy_read_timeout (4 s) is the shortest: a slower balancer (socat -T 10) in front is ruled out", async () => {
    const slowLb = await startSocatBalancer(stack.nginx.port, 10);
    try {
      const profile = path.join(dir, 'slow-lb-nginx.yaml');
      fs.writeFileSync(profile, fs.readFileSync(writeProfile(dir), 'utf8').replace('after: 2s', 'after: 10s').replace('name: lb-nginx', 'name: slow-lb-nginx'));
      const r = await runWstap(['probe', `ws://127.0.0.1:${slowLb.port}/probe-nginx`, '--token', TOKEN, '--interval', '500ms', '--max', '6s', '--profile', profile, '--json']);
      expect(r.status, r.stderr).toBe(0);
      const json = parseJson(r.stdout);
      const silent = variant(json, 'silent');
      expect(silent.clientEnd).toEqual({ kind: 'fin' });
      expect(Math.abs(silent.livedSeconds - 4)).toBeLessThan(1);
      // nginx closed both its sides: wstap's end saw the FIN at the same moment.
      expect(silent.proxyEnd).toMatchObject({ kind: 'fin', side: 'client' });
      expect(json.verdict).toContain('Cut by nginx proxy_read_timeout 4s (client-side)');
      expect(json.verdict).toContain('Not lb socat-T 10s: it fires after 10s');
      expect(variant(json, 'server-pings').clientEnd).toEqual({ kind: 'open' });
    } finally {
      await slowLb.stop();
    }
  }, 25_000);

  it("a tie in the profile (balancer and nginx both 4 s) is broken by nginx's error log: its timeout line for the probe names nginx", async () => {
    const slowLb = await startSocatBalancer(stack.nginx.port, 10);
    try {
      const profile = path.join(dir, 'tie-lb-nginx.yaml');
      fs.writeFileSync(profile, fs.readFileSync(writeProfile(dir), 'utf8').replace('after: 2s', 'after: 4s').replace('name: lb-nginx', 'name: tie-lb-nginx'));
      const url = `ws://127.0.0.1:${slowLb.port}/probe-tie`;
      const common = ['probe', url, '--token', TOKEN, '--interval', '500ms', '--max', '5s', '--profile', profile, '--json'];
      const [blind, withLog] = await Promise.all([runWstap(common), runWstap([...common, '--nginx-error-log', path.join(stack.nginx.dir, 'error.log')])]);
      expect(blind.status, blind.stderr).toBe(0);
      expect(withLog.status, withLog.stderr).toBe(0);
      // Without the log both fit and neither is promoted.
      const tie = parseJson(blind.stdout);
      expect(tie.verdict).toContain('Cut by lb socat-T 4s or nginx proxy_read_timeout 4s: each fits what was seen');
      const named = parseJson(withLog.stdout);
      expect(Math.abs(variant(named, 'silent').livedSeconds - 4)).toBeLessThan(1);
      expect(named.verdict).toContain('Cut by nginx proxy_read_timeout 4s (client-side)');
      expect(named.verdict).toMatch(/nginx's error log: ".*upstream timed out \(110: Connection timed out\) while proxying upgraded connection.*request: "GET \/probe-tie HTTP\/1\.1"/);
    } finally {
      await slowLb.stop();
    }
  }, 25_000);

  it('with --token: wstap answers every variant itself, reports its end of each, records them, and nothing reaches the app', async () => {
    const url = `ws://127.0.0.1:${lb.port}/probe-token`;
    const requestsBefore = app.requests.length;
    const r = await runWstap(['probe', url, '--token', TOKEN, '--interval', '500ms', '--max', '5s', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const json = parseJson(r.stdout);
    expect(json.variants.map((v) => v.name)).toEqual(['silent', 'client-messages', 'client-pings', 'server-messages', 'server-pings']);
    const silent = variant(json, 'silent');
    expect(silent.clientEnd).toEqual({ kind: 'fin' });
    expect(Math.abs(silent.livedSeconds - 2)).toBeLessThan(1);
    // wstap's end saw the balancer's cut as nginx passed it on: a FIN from the client side, at the same time (one clock: same host).
    expect(silent.proxyEnd).toMatchObject({ kind: 'fin', side: 'client' });
    expect(Math.abs((silent.proxyEnd?.afterSeconds as number) - silent.livedSeconds)).toBeLessThan(1);
    for (const name of ['client-messages', 'client-pings', 'server-messages', 'server-pings']) {
      const v = variant(json, name);
      expect(v.clientEnd, name).toEqual({ kind: 'open' });
      // The probe closed it at --max: wstap's end saw its close frame.
      expect(v.proxyEnd, name).toMatchObject({ kind: 'close-frame', side: 'client' });
      expect(v.proxyEnd?.afterSeconds as number, name).toBeGreaterThanOrEqual(4.9);
    }
    expect(app.upgrades.filter((u) => u === '/probe-token')).toEqual([]);
    expect(app.requests.slice(requestsBefore)).toEqual([]);

    // The capture holds the probe connections as any other: the silent one's FIN from the client side, wstap's own frames as the upstream side's.
    const byVariant = (events: Awaited<ReturnType<WstapProcess['events']>>, name: string): number | undefined =>
      ofKind(events, 'ws.handshake.request').find((e) => e.url === '/probe-token' && e.rawHeaders.some(([n, v]) => n.toLowerCase() === 'x-wstap-probe-variant' && v === name))?.conn;
    const events = await captureWhen(stack.wstap, (evs) => ['silent', 'server-messages', 'server-pings', 'client-pings'].every((n) => {
      const conn = byVariant(evs, n);
      return conn !== undefined && ofConn(evs, conn, 'conn.close').length > 0;
    }));
    const silentConn = byVariant(events, 'silent') as number;
    expect(ofConn(events, silentConn, 'ws.handshake.response')[0]).toMatchObject({ statusCode: 101, upgraded: true });
    expect(ofConn(events, silentConn, 'tcp.fin').map((e) => e.side)[0]).toBe('client');
    const upstreamOpcodes = (name: string): number[] => ofConn(events, byVariant(events, name) as number, 'ws.frame').filter((f) => f.side === 'upstream').map((f) => f.opcode);
    expect(upstreamOpcodes('server-messages')).toContain(1);
    expect(upstreamOpcodes('server-pings')).toContain(9);
    // wstap answered the client's pings with pongs.
    expect(upstreamOpcodes('client-pings')).toContain(10);
  }, 25_000);
});

describe('wstap probe straight to wstap (no hop in between)', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  beforeAll(async () => {
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--probe-token', TOKEN]);
  });
  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
  });

  it('holds every variant to --max: no idle timeout, wstap saw each close frame, and the report names no hop', async () => {
    const r = await runWstap(['probe', `ws://127.0.0.1:${wstap.port}/direct`, '--token', TOKEN, '--interval', '200ms', '--max', '1500ms']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}silent {11}still open after 1\.\d s; wstap's end \(#\d+\): a close frame 1000 from the path \(client side\) at 1\.\d s$/m);
    expect(r.stdout).toContain('No idle timeout up to --max (1s500ms): the silent connection was still open.');
    expect(r.stdout).toContain('server-pings (a ping from the server (answered by a pong) every 200ms): kept the connection open until --max');
    expect(app.upgrades).toEqual([]);
  }, 20_000);

  it('tells an RST from a FIN at its own end: a hop that resets the probe after 1 s of silence (and ends its side to wstap with a FIN)', async () => {
    // A stand-in balancer that resets idle clients: relays both ways, and after 1 s with no byte either way sends the client an RST.
    const hop = net.createServer({ allowHalfOpen: true }, (client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: wstap.port, allowHalfOpen: true });
      let timer: NodeJS.Timeout | null = null;
      const rearm = (): void => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          client.resetAndDestroy();
          upstream.end();
        }, 1000);
      };
      for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
        from.on('data', (chunk: Buffer) => {
          rearm();
          to.write(chunk);
        });
        from.on('end', () => to.end());
        from.on('error', () => to.destroy());
      }
      client.on('close', () => timer && clearTimeout(timer));
      rearm();
    });
    await new Promise<void>((resolve) => hop.listen(0, '127.0.0.1', resolve));
    try {
      const port = (hop.address() as net.AddressInfo).port;
      const r = await runWstap(['probe', `ws://127.0.0.1:${port}/rst`, '--token', TOKEN, '--interval', '300ms', '--max', '3s', '--json']);
      expect(r.status, r.stderr).toBe(0);
      const json = parseJson(r.stdout);
      const silent = variant(json, 'silent');
      expect(silent.clientEnd).toEqual({ kind: 'rst' });
      expect(Math.abs(silent.livedSeconds - 1)).toBeLessThan(1);
      expect(silent.proxyEnd).toMatchObject({ kind: 'fin', side: 'client' });
      expect(variant(json, 'client-pings').clientEnd).toEqual({ kind: 'open' });
      expect(json.verdict).toContain('the silent connection was cut with an RST after');
    } finally {
      hop.close();
    }
  }, 20_000);

  it('exits 1 with the handshake failure when nothing listens, and 2 on bad usage', async () => {
    const closed = await freePort();
    const r = await runWstap(['probe', `ws://127.0.0.1:${closed}/`, '--max', '2s', '--json']);
    expect(r.status).toBe(1);
    const json = parseJson(r.stdout);
    expect(variant(json, 'silent')).toMatchObject({ clientEnd: { kind: 'error' }, proxyEnd: null });
    expect(json.idleTimeoutSeconds).toBeNull();
    expect(json.verdict).toBe('Could not measure: the silent connection did not open (an error (ECONNREFUSED)).');
    const usage = await runWstap(['probe', 'http://example.com/ws']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('a WebSocket URL starts with ws:// or wss:// (here: ws://example.com/ws)');
  });
});

describe('wstap probe over wss:// (wstap terminating TLS)', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-probe-tls-'));
    const cert = makeSelfSignedCertificate(dir);
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--probe-token', TOKEN, '--tls-cert', cert.certPath, '--tls-key', cert.keyPath]);
  });
  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an unverified certificate unless --insecure, and then asks wstap\'s end over https', async () => {
    const url = `wss://127.0.0.1:${wstap.port}/tls`;
    const strict = await runWstap(['probe', url, '--token', TOKEN, '--max', '1s', '--json']);
    expect(strict.status).toBe(1);
    expect(parseJson(strict.stdout).verdict).toMatch(/^Could not measure: the silent connection did not open \(an error \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)\)\.$/);
    const insecure = await runWstap(['probe', url, '--token', TOKEN, '--insecure', '--interval', '200ms', '--max', '1s', '--json']);
    expect(insecure.status, insecure.stderr).toBe(0);
    expect(insecure.stderr).toContain(`--insecure: the certificate of ${url} is NOT verified`);
    const json = parseJson(insecure.stdout);
    expect(json.variants).toHaveLength(5);
    for (const v of json.variants) expect(v.proxyEnd, v.name).toMatchObject({ kind: 'close-frame', side: 'client' });
    expect(app.upgrades).toEqual([]);
  }, 20_000);
});

describe('wstap probe on a terminal (tmux)', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  let dir: string;
  let tmux: TmuxServer | null = null;
  const missing = tmuxMissing();
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-probe-tty-'));
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--probe-token', TOKEN]);
  });
  afterAll(async () => {
    await tmux?.kill();
    await wstap?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('shows a progress line while it waits; Ctrl-C reports what is open as stopped and exits 130', async () => {
    if (missing) throw missing;
    const statusFile = path.join(dir, 'status');
    const q = shellQuote;
    const cli = [process.execPath, BIN, 'probe', `ws://127.0.0.1:${wstap.port}/tty`, '--token', TOKEN, '--interval', '200ms'].map(q).join(' ');
    // The pane's shell survives the Ctrl-C it shares with the probe (a trap with a command), to write the probe's exit status.
    const script = ['export TERM=xterm-256color', "trap 'true' INT", cli, `echo $? > ${q(statusFile)}`, 'exec sleep 3600', ''].join('\n');
    tmux = new TmuxServer(dir);
    tmux.start({ width: 160, height: 40, script, scriptFile: path.join(dir, 'run.sh') });
    await tmux.waitForScreen('the progress line', (lines) => lines.some((l) => /^probing: \d+s of at most 10m; 0 ended \(Ctrl-C stops\)$/.test(l)), { timeoutMs: 15_000 });
    // Every variant is open at wstap's end before the interrupt.
    await captureWhen(wstap, (events) => ofKind(events, 'ws.handshake.response').filter((e) => e.upgraded).length >= 5);
    tmux.sendKeys('C-c');
    expect(await paneExitStatus(statusFile, tmux, { timeoutMs: 15_000 })).toBe('130');
    const screen = tmux.capture().join('\n');
    expect(screen).toMatch(/No idle timeout in the \d+\.\d s the probe ran \(stopped before --max\): the silent connection was still open\./);
    expect(screen).toMatch(/ {2}server-pings {5}still open after \d+\.\d s; wstap's end \(#\d+\): a close frame 1000 from the path/);
    expect(screen).not.toMatch(/^probing:/m);
  }, 30_000);
});
