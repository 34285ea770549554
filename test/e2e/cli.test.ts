import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaptureFile } from '../../src/capture/capture-reader.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { BIN, startWstap } from '../support/wstap-process.js';
import { closedEvent, connectClient, ofKind, sleep } from '../support/ws-peers.js';

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Sends raw bytes to a port and resolves with everything received until the peer closes. */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.write(request);
  });
}

describe('command line', () => {
  it('--help and --version', () => {
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('wstap proxy --target URL');
    expect(help.stdout).toContain('wstap demo');
    const proxyHelp = run(['proxy', '--help']);
    expect(proxyHelp.status).toBe(0);
    expect(proxyHelp.stdout).toContain('--capture FILE');
    const version = run(['--version']);
    expect(version.status).toBe(0);
    const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(BIN), '..', 'package.json'), 'utf8')) as { version: string };
    expect(version.stdout.trim()).toBe(pkg.version);
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['an unknown flag', ['proxy', '--target', 'http://127.0.0.1:1', '--bogus'], /Unknown option '--bogus'/],
    ['an unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['a missing target', ['proxy'], /--target is required/],
    ['a bad target scheme', ['proxy', '--target', 'ftp://127.0.0.1:21'], /scheme ftp: is not one of/],
    ['a target with a path', ['proxy', '--target', 'http://127.0.0.1:80/app'], /a path or query is not supported/],
    ['a bad listen address', ['proxy', '--target', 'http://127.0.0.1:1', '--listen', 'nowhere'], /--listen "nowhere" is not HOST:PORT/],
    ['a negative preview size', ['proxy', '--target', 'http://127.0.0.1:1', '--preview-bytes=-1'], /--preview-bytes "-1"/],
    ['a bad drain time', ['proxy', '--target', 'http://127.0.0.1:1', '--drain', 'soon'], /--drain "soon" is not a non-negative number/],
    ['a bad log format', ['proxy', '--target', 'http://127.0.0.1:1', '--log-format', 'xml'], /--log-format "xml" is not one of auto, pretty, json/],
    ['a stray argument', ['proxy', '--target', 'http://127.0.0.1:1', 'extra'], /unexpected argument "extra"/],
  ];
  for (const [what, args, message] of bad) {
    it(`exits 2 with one clear line on ${what}`, () => {
      const r = run(args);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    });
  }

  it('refuses to overwrite an existing capture without --force, as --help says', () => {
    // The help entry of --capture, up to the next option: it must say what the command does.
    const help = run(['proxy', '--help']).stdout;
    const entry = /^ {2}--capture FILE[^\n]*\n(?: {4,}[^\n]*\n)*/m.exec(help)?.[0] ?? '';
    expect(entry).not.toBe('');
    expect(entry).not.toMatch(/append/i);
    expect(entry).toMatch(/new file/);
    expect(entry).toMatch(/existing FILE is refused without --force/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-cli-'));
    const file = path.join(dir, 'old.jsonl');
    fs.writeFileSync(file, 'precious evidence\n');
    const r = run(['proxy', '--target', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--capture', file, '--no-tui', '--log-format', 'json']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`capture file ${file} already exists; choose another name or pass --force to overwrite it`);
    expect(fs.readFileSync(file, 'utf8')).toBe('precious evidence\n');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--har without --capture and without the UI: the HAR is written and the temporary capture deleted', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-cli-tmp-'));
    const har = path.join(tmp, 'out.har');
    const child = spawn(process.execPath, [BIN, 'proxy', '--target', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--no-tui', '--log-format', 'json', '--har', har], {
      env: { ...process.env, TMPDIR: tmp },
    });
    let stderr = '';
    const listening = new Promise<void>((resolve) =>
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes('"listen"')) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await listening;
    // The temporary capture exists while the session runs...
    expect(fs.readdirSync(tmp).filter((f) => f.startsWith('wstap-'))).toHaveLength(1);
    child.kill('SIGINT');
    expect(await exited, stderr).toBe(0);
    // ...and is gone once the HAR is written.
    expect(JSON.parse(fs.readFileSync(har, 'utf8'))).toMatchObject({ log: { version: '1.2' } });
    expect(fs.readdirSync(tmp)).toEqual(['out.har']);
    expect(stderr).not.toContain('capture kept at');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('exits 2 when the listen port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'proxy', '--target', 'http://127.0.0.1:1', '--listen', `127.0.0.1:${port}`, '--log-format', 'json']);
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (status) => resolve({ status, stderr }));
    });
    blocker.close();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('the port is in use');
  });
});

describe('profiles on the command line', () => {
  it('wstap profiles lists the shipped ones with their timeouts', () => {
    const r = run(['profiles']);
    expect(r.status).toBe(0);
    for (const name of ['generic', 'nginx', 'mattermost', 'aws-alb', 'cloudflare', 'haproxy', 'socketio']) {
      expect(r.stdout).toMatch(new RegExp(`^${name} +\\S`, 'm'));
    }
    expect(r.stdout).toContain('nginx proxy_read_timeout 60s');
    expect(r.stdout).toContain('upstream pings every 60s');
    // The Mattermost race is called out; Socket.IO's 25 s ping beats nginx's 60 s.
    expect(r.stdout).toMatch(/^mattermost .*\n.*\n +warning: the heartbeat \(upstream pings every 60s\) is not more frequent than nginx proxy_read_timeout 60s/m);
    expect(r.stdout).not.toMatch(/^socketio .*\n.*\n +warning/m);
  });

  it('an invalid profile stops wstap before it starts: exit 2, file, line and column, nothing listening', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-profile-'));
    const file = path.join(dir, 'mine.yaml');
    fs.writeFileSync(file, 'name: mine\ndescription: test\nhops:\n  - name: nginx\n    where: client-side\n    timeouts:\n      - setting: proxy_read_timeout\n        after: sixty\n        measures: both-idle\n        action: fin\n');
    const r = run(['proxy', '--target', 'http://127.0.0.1:9', '--profile', file, '--no-tui']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`wstap: --profile: ${file}:8:16: "after" must be a duration (e.g. 60, 60s, 1m30s, 250ms), got "sixty" (see wstap --help)`);
    fs.writeFileSync(file, 'name: mine\ndescription: test\nhops: []\nheartbeat:\n  from: upstream\n  kind: ws-ping\n  intervall: 60s\n');
    const typo = run(['proxy', '--target', 'http://127.0.0.1:9', '--profile', file]);
    expect(typo.status).toBe(2);
    expect(typo.stderr).toContain(`${file}:7:3: unknown key "intervall" in \"heartbeat\" (did you mean "interval"?)`);
    const unknown = run(['proxy', '--target', 'http://127.0.0.1:9', '--profile', 'ngnix']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown profile "ngnix" (did you mean "nginx"?)');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('the proxy is never an open forward proxy', () => {
  let app: UpstreamApp;
  beforeAll(async () => {
    app = await startUpstreamApp();
  });
  afterAll(async () => app?.close());

  it('answers CONNECT with 405, sends absolute-form and foreign-Host requests to the target', async () => {
    const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`]);
    const connect = await rawExchange(wstap.port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expect(connect).toMatch(/^HTTP\/1\.1 405 /);

    const absolute = await rawExchange(
      wstap.port,
      'GET http://example.com/steal?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n',
    );
    expect(absolute).toMatch(/^HTTP\/1\.1 200 /);
    const hostTrick = await rawExchange(wstap.port, 'GET /other HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n');
    expect(hostTrick).toMatch(/^HTTP\/1\.1 200 /);
    // Both reached our app, the only target there is, with their request targets as sent (bytes unchanged).
    expect(app.requests.map((r) => r.url)).toEqual(expect.arrayContaining(['http://example.com/steal?x=1', '/other']));
    expect(await wstap.stop()).toBe(0);
    const all = await wstap.events();
    expect(ofKind(all, 'http.rejected')[0]).toMatchObject({ method: 'CONNECT', statusCode: 405 });
  });
});

describe('plain HTTP connections have close evidence too', () => {
  let app: UpstreamApp;
  beforeAll(async () => {
    app = await startUpstreamApp();
  });
  afterAll(async () => app?.close());

  it('a keep-alive connection the client closes after 300 ms: client fin with its silence, closed by client', async () => {
    const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`]);
    const socket = net.connect({ host: '127.0.0.1', port: wstap.port });
    const response = new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (d: Buffer) => {
        data += d.toString('latin1');
        if (data.includes('\r\n\r\n')) resolve(data);
      });
    });
    socket.write('GET /keep HTTP/1.1\r\nHost: app\r\n\r\n');
    expect(await response).toMatch(/^HTTP\/1\.1 200 /);
    await sleep(300);
    socket.end();
    await wstap.waitForLog((l) => /^#1 closed by client \(client fin\)/.test(l.msg));
    expect(await wstap.stop()).toBe(0);
    const events = (await wstap.events()).filter((e) => 'conn' in e && e.conn === 1);
    // The client's FIN first, then the app's answer to it: the connection to the app is this connection's own.
    const fin = ofKind(events, 'tcp.fin');
    expect(fin.map((f) => f.side)).toEqual(['client', 'upstream']);
    // Silence measured from the last byte each way, not from the connection's opening.
    expect(fin[0]!.idle.client).toBeGreaterThanOrEqual(250);
    expect(fin[0]!.idle.upstream).toBeGreaterThanOrEqual(250);
    expect(fin[0]!.idle.upstream).toBeLessThan(fin[0]!.idle.client + 50);
    expect(events.at(-1)?.kind).toBe('conn.close');
    socket.destroy();
  });
});

describe('large request heads', () => {
  let app: UpstreamApp;
  beforeAll(async () => {
    app = await startUpstreamApp();
  });
  afterAll(async () => app?.close());

  it('passes a 40 KiB request head (over the 16 KiB Node default) on to the app', async () => {
    const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`]);
    const big = 'x'.repeat(40 * 1024);
    const answer = await rawExchange(wstap.port, `GET /big HTTP/1.1\r\nHost: app\r\nX-Big: ${big}\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(app.requests.find((r) => r.url === '/big')?.headers['x-big']).toBe(big);
    expect(await wstap.stop()).toBe(0);
  });
});

describe('shutdown', () => {
  let app: UpstreamApp;
  beforeAll(async () => {
    app = await startUpstreamApp();
  });
  afterAll(async () => app?.close());

  it('SIGINT with a live connection: exits 0 within 2 s, ends it as closed by wstap, capture complete and 0600', async () => {
    const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`]);
    const client = await connectClient(`ws://127.0.0.1:${wstap.port}/ws?test=shutdown`);
    await app.nextConnection();
    client.send('still here');
    await sleep(100);
    const clientClosed = closedEvent(client);
    const started = Date.now();
    expect(await wstap.stop('SIGINT')).toBe(0);
    expect(Date.now() - started).toBeLessThan(2000);
    await clientClosed;

    expect(fs.statSync(wstap.capturePath).mode & 0o777).toBe(0o600);
    const all = await readCaptureFile(wstap.capturePath);
    expect(all[0]?.kind).toBe('session.start');
    expect(all.at(-1)?.kind).toBe('session.end');
    const conn = ofKind(all, 'ws.handshake.request')[0]?.conn;
    expect(ofKind(all, 'proxy.close').find((e) => e.conn === conn)?.reason).toBe('shutdown');
    expect(ofKind(all, 'conn.close').some((e) => e.conn === conn)).toBe(true);
    expect(ofKind(all, 'ws.message').some((m) => m.conn === conn && Buffer.from(m.preview, 'base64').toString() === 'still here')).toBe(true);
  });

  it('--drain waits for live connections to finish by themselves', async () => {
    const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--drain', '10']);
    const client = await connectClient(`ws://127.0.0.1:${wstap.port}/ws?test=drain`);
    await app.nextConnection();
    const stopped = wstap.stop('SIGTERM');
    await wstap.waitForLog((l) => /waiting up to 10 s for 1 connection/.test(l.msg));
    // New connections are refused while draining.
    await expect(connectClient(`ws://127.0.0.1:${wstap.port}/ws?test=late`)).rejects.toThrow();
    client.close(1000, 'finished');
    expect(await stopped).toBe(0);
    const all = await wstap.events();
    expect(ofKind(all, 'proxy.close')).toHaveLength(0);
    const conn = ofKind(all, 'ws.handshake.request')[0]?.conn;
    expect(ofKind(all, 'ws.frame').find((f) => f.conn === conn && f.opcode === 8)?.closeReason).toBe('finished');
  });
});

describe('raw TCP mode', () => {
  let echo: net.Server;
  let echoPort: number;
  beforeAll(async () => {
    // Echoes, and after the client's FIN sends a last line and FINs itself.
    echo = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (d: Buffer) => socket.write(d));
      socket.on('end', () => socket.end('bye after your FIN\n'));
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as net.AddressInfo).port;
  });
  afterAll(async () => new Promise<void>((r) => echo.close(() => r())));

  it('relays bytes both ways and keeps the half-close', async () => {
    const wstap = await startWstap(['--tcp', '--target', `127.0.0.1:${echoPort}`]);
    const received = await new Promise<string>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: wstap.port, allowHalfOpen: true });
      let data = '';
      socket.on('data', (d: Buffer) => {
        data += d.toString();
        if (data === 'ping-1\n') socket.end();
      });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
      socket.write('ping-1\n');
    });
    expect(received).toBe('ping-1\nbye after your FIN\n');
    expect(await wstap.stop()).toBe(0);
    const all = await wstap.events();
    expect(ofKind(all, 'conn.open')[0]?.mode).toBe('tcp');
    const evidence = all.filter((e) => e.kind === 'tcp.fin').map((e) => (e.kind === 'tcp.fin' ? e.side : ''));
    expect(evidence).toEqual(['client', 'upstream']);
    expect(ofKind(all, 'conn.close')[0]?.bytes).toEqual({ fromClient: 7, fromUpstream: 26 });
  });

  it('an unreachable upstream is mirrored to the client as a reset', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const wstap = await startWstap(['--tcp', '--target', `127.0.0.1:${deadPort}`]);
    const outcome = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: wstap.port });
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      socket.on('end', () => resolve('fin'));
    });
    expect(outcome).toBe('ECONNRESET');
    expect(await wstap.stop()).toBe(0);
    const all = await wstap.events();
    expect(ofKind(all, 'tcp.error')[0]).toMatchObject({ side: 'upstream', code: 'ECONNREFUSED' });
  });
});

describe('wstap demo', () => {
  it('the guided tour runs on its own, with no nginx, and gives every verdict with its evidence', () => {
    const r = spawnSync(process.execPath, [BIN, 'demo', '--log-format', 'json'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('What wstap saw:');
    // One block per scenario: the connection line, what it is meant to show, then wstap's conclusions.
    const block = (label: string): string => {
      const m = new RegExp(`^  #\\d+ ${label} .*\\n(?: {5}.*\\n)*`, 'm').exec(r.stdout);
      return m ? m[0] : '';
    };
    expect(block('chatty')).toMatch(/-> 101, frames \d+ up \/ \d+ down, ping rtt [\d.]+ ms/);
    expect(block('chatty')).toMatch(/closed by client: client close-frame 1000 "bye"/);
    expect(block('idle')).toMatch(/closed by client: client fin after 2\.\d\d s of both-way silence/);
    expect(block('idle')).toMatch(/timeout\.match: closed by client side \(fin\) after 2\.\d\d s without data either way: matches demo-hop idle_timeout 2s/);
    // Two hops with the same timer: the simulated nginx's log line (or its absence) names the one that cut it.
    expect(block('idle')).toMatch(/ruled out: nginx proxy_read_timeout 2s wrote no timeout line for this connection, and nginx's error log is at info/);
    expect(block('nginx-timeout')).toMatch(/timeout\.match: closed by client side \(fin\) after 2\.\d\d s without data either way: matches nginx proxy_read_timeout 2s/);
    expect(block('nginx-timeout')).toMatch(/ruled out: demo-hop idle_timeout 2s is not nginx, and nginx's error log says nginx's own timer closed this connection/);
    expect(block('nginx-timeout')).toMatch(/nginx\.timeout: nginx closed the upgraded connection by its own timer/);
    expect(block('server-close')).toMatch(/closed by upstream: upstream close-frame 1001 "server going away"/);
    expect(block('reset')).toMatch(/closed by upstream: upstream rst/);
    expect(block('no-upgrade')).toMatch(/-> 426 \(as plain HTTP\)/);
    expect(block('no-upgrade')).toMatch(/handshake\.missing-upgrade: a WebSocket handshake reached the app without "Upgrade: websocket"/);
    expect(block('no-upgrade')).toMatch(/handshake\.not-upgraded: the app answered 426 Upgrade Required/);
    expect(block('slow-heartbeat')).toMatch(/timeout\.match: .* matches demo-hop idle_timeout 2s/);
    expect(block('slow-heartbeat')).toMatch(/heartbeat\.slower-than-timeout: pings from the upstream came every 2\.\d\d s on average, not more often than demo-hop idle_timeout 2s/);
    for (const label of ['chatty', 'idle', 'nginx-timeout', 'server-close', 'reset', 'no-upgrade', 'slow-heartbeat', 'http']) {
      expect(block(label), label).toMatch(/\n {5}scenario: \S/);
    }
    // The plain exchange is in the table; an answered 200 is not a notable event, so it has no log line at info.
    expect(block('http')).toMatch(/ GET \/\S*demo=http\S* -> 200\n/);
    const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
    expect(lines.some((l) => /closed by/.test(l.msg))).toBe(true);
    expect(lines.some((l) => /-> 200/.test(l.msg))).toBe(false);
  });
});
