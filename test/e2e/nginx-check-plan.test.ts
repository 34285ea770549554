import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HTTP_PREAMBLE, mainPreamble, nginxTest, runNginxCheck, writeNginxFixture, type NginxFixture } from '../support/nginx-fixture.js';
import { runNginx, type Nginx } from '../support/nginx.js';
import { freePort } from '../support/ports.js';
import { selfSignedCertificate, startTlsEchoApp } from '../support/tls-app.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { connectClient, httpGet, ofKind } from '../support/ws-peers.js';
import { captureWhen, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * `nginx-check --plan`: the diff applied with the real `patch -p0` to a copy
 * of the configuration, `nginx -t` passes, the real nginx and the real
 * wstap carry a WebSocket to a `ws` app as the plan says, and `patch -R`
 * gives back the original files byte for byte.
 */

const FILES = ['nginx.conf', 'conf.d/site.conf'];
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function fixtureFor(appPort: number, nginxPort: number): NginxFixture {
  const fixture = writeNginxFixture({
    'nginx.conf': `${mainPreamble()}error_log error.log warn;
http {
    ${HTTP_PREAMBLE}
    map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
    upstream app {
        server 127.0.0.1:${appPort};
        keepalive 4;
    }
    include conf.d/*.conf;
}`,
    'conf.d/site.conf': `server {
    listen 127.0.0.1:${nginxPort};
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_http_version 1.1;

    location / {
        proxy_pass http://app;
    }

    location /ws { proxy_pass http://app/ws; }
}
`,
  });
  cleanups.push(() => fs.rmSync(fixture.dir, { recursive: true, force: true }));
  expect(nginxTest(fixture).ok).toBe(true);
  return fixture;
}

/** A copy of the fixture with `diff` applied (or reversed) by the real patch, in the copy's directory. */
function patch(dir: string, diff: string, reverse = false): { status: number | null; output: string } {
  const r = spawnSync('patch', ['-p0', '--batch', '--no-backup-if-mismatch', ...(reverse ? ['-R'] : [])], { cwd: dir, input: diff, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function copyOf(fixture: NginxFixture): NginxFixture {
  const dir = `${fixture.dir}-patched`;
  fs.cpSync(fixture.dir, dir, { recursive: true });
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { dir, conf: path.join(dir, 'nginx.conf') };
}

/** The `wstap proxy ...` line of the plan, as arguments after `proxy`. */
function proxyArgs(plan: string): string[] {
  const line = plan.split('\n').find((l) => /^#\s+wstap proxy /.test(l));
  if (!line) throw new Error(`no wstap proxy command in the plan:\n${plan}`);
  return line.replace(/^#\s+wstap proxy /, '').split(' ');
}

interface Running {
  app: UpstreamApp;
  wstap: WstapProcess;
  nginx: Nginx;
}

async function planAndRun(extra: string[], listenAt?: (fixture: NginxFixture) => string): Promise<{ fixture: NginxFixture; copy: NginxFixture; plan: string; running: Running }> {
  const app = await startUpstreamApp();
  cleanups.push(() => app.close());
  const nginxPort = await freePort();
  const wstapPort = await freePort();
  const fixture = fixtureFor(app.port, nginxPort);
  const listen = listenAt ? listenAt(fixture) : `127.0.0.1:${wstapPort}`;
  const r = runNginxCheck([fixture.conf, '--path', '/ws', '--plan', '--listen', listen, ...extra]);
  expect(r.status, r.stderr).toBe(0);
  const plan = r.stdout;
  const copy = copyOf(fixture);
  const applied = patch(copy.dir, plan);
  expect(applied.status, applied.output).toBe(0);
  const verdict = nginxTest(copy);
  expect(verdict.ok, `${verdict.output}\n${plan}`).toBe(true);
  const args = proxyArgs(plan);
  expect(args).toEqual(['--listen', listen, '--target', `http://127.0.0.1:${app.port}`]);
  const wstap = await startWstap(args.slice(2), { listen: args[1] });
  cleanups.push(async () => void (await wstap.stop()));
  const nginx = await runNginx(copy.dir, copy.conf, nginxPort);
  cleanups.push(() => nginx.stop());
  return { fixture, copy, plan, running: { app, wstap, nginx } };
}

async function webSocketThrough(running: Running): Promise<Record<string, string | string[] | undefined>> {
  const client = await connectClient(`ws://127.0.0.1:${running.nginx.port}/ws`);
  const { ws, req } = await running.app.nextConnection();
  const received = new Promise<string>((resolve) => client.once('message', (d: Buffer) => resolve(d.toString())));
  ws.send('through wstap');
  expect(await received).toBe('through wstap');
  client.close();
  return req.headers;
}

function expectRestored(fixture: NginxFixture, copy: NginxFixture, plan: string): void {
  const reversed = patch(copy.dir, plan, true);
  expect(reversed.status, reversed.output).toBe(0);
  for (const file of FILES) expect(fs.readFileSync(path.join(copy.dir, file))).toEqual(fs.readFileSync(path.join(fixture.dir, file)));
}

describe('nginx-check --plan', () => {
  it('points only the chosen location at wstap, nginx -t passes, the WebSocket flows, patch -R restores every byte', async () => {
    const { fixture, copy, plan, running } = await planAndRun([]);
    expect(plan).toContain('+upstream wstap_debug {');
    expect(plan).toMatch(/^-    location \/ws \{ proxy_pass http:\/\/app\/ws; \}$/m);
    const headers = await webSocketThrough(running);
    // The app sees what it saw before (the Host nginx sent, the forwarded headers) plus nginx's connection number.
    expect(headers.host).toBe('app');
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers['x-nginx-connection']).toMatch(/^\d+$/);
    const events = await captureWhen(running.wstap, (e) => ofKind(e, 'ws.handshake.request').length > 0);
    const handshake = ofKind(events, 'ws.handshake.request')[0];
    expect(handshake?.url).toBe('/ws');
    expect(handshake?.rawHeaders.some(([name]) => name.toLowerCase() === 'x-nginx-connection')).toBe(true);
    // Plain traffic to other locations still goes straight to the app.
    expect((await httpGet(`http://127.0.0.1:${running.nginx.port}/plain`)).status).toBe(200);
    expect(running.app.requests.map((r) => r.url)).toContain('/plain');
    expect(ofKind(await running.wstap.events(), 'http.request').map((e) => e.url)).not.toContain('/plain');
    // nginx writes its info lines for the re-pointed location.
    expect(plan).toContain('error_log error.log info;');
    expectRestored(fixture, copy, plan);
  });

  it('--whole-upstream points the upstream block at wstap: every location using it goes through wstap', async () => {
    const { fixture, copy, plan, running } = await planAndRun(['--whole-upstream']);
    expect(plan).toMatch(/^\+        server 127\.0\.0\.1:\d+;  # wstap: was server 127\.0\.0\.1:\d+;$/m);
    expect(plan).not.toContain('wstap_debug');
    const headers = await webSocketThrough(running);
    expect(headers['x-nginx-connection']).toMatch(/^\d+$/);
    expect((await httpGet(`http://127.0.0.1:${running.nginx.port}/plain`)).status).toBe(200);
    await captureWhen(running.wstap, (e) => ofKind(e, 'http.request').some((r) => r.url === '/plain'));
    expectRestored(fixture, copy, plan);
  });

  it('--listen unix:PATH: nginx reaches wstap on a unix socket file', async () => {
    const { fixture, copy, plan, running } = await planAndRun([], (f) => `unix:${f.dir}-wstap.sock`);
    expect(plan).toContain(`+    server unix:${fixture.dir}-wstap.sock;`);
    expect(running.wstap.listen).toBe(`unix:${fixture.dir}-wstap.sock`);
    const headers = await webSocketThrough(running);
    expect(headers['x-nginx-connection']).toMatch(/^\d+$/);
    expectRestored(fixture, copy, plan);
  });

  it('an https:// upstream: nginx speaks plain HTTP to wstap, wstap --target https:// to the app', async () => {
    const certificate = selfSignedCertificate();
    cleanups.push(() => certificate.remove());
    const app = await startTlsEchoApp(certificate);
    cleanups.push(() => app.close());
    const nginxPort = await freePort();
    const wstapPort = await freePort();
    const fixture = writeNginxFixture({
      'nginx.conf': `${mainPreamble()}error_log error.log info;
http {
    ${HTTP_PREAMBLE}
    map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
    upstream app { server 127.0.0.1:${app.port}; }
    server {
        listen 127.0.0.1:${nginxPort};
        location /ws {
            proxy_pass https://app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
    }
}
`,
    });
    cleanups.push(() => fs.rmSync(fixture.dir, { recursive: true, force: true }));
    expect(nginxTest(fixture).ok).toBe(true);
    const r = runNginxCheck([fixture.conf, '--path', '/ws', '--plan', '--listen', `127.0.0.1:${wstapPort}`]);
    expect(r.status, r.stderr).toBe(0);
    const copy = copyOf(fixture);
    expect(patch(copy.dir, r.stdout).status).toBe(0);
    expect(nginxTest(copy).ok).toBe(true);
    expect(r.stdout).toContain('+            proxy_pass http://wstap_debug;');
    const args = proxyArgs(r.stdout);
    expect(args).toEqual(['--listen', `127.0.0.1:${wstapPort}`, '--target', `https://127.0.0.1:${app.port}`]);
    const wstap = await startWstap(args.slice(2), { listen: args[1], env: { NODE_EXTRA_CA_CERTS: certificate.certPath } });
    cleanups.push(async () => void (await wstap.stop()));
    const nginx = await runNginx(copy.dir, copy.conf, nginxPort);
    cleanups.push(() => nginx.stop());
    const client = await connectClient(`ws://127.0.0.1:${nginxPort}/ws`);
    const echoed = new Promise<string>((resolve) => client.once('message', (d: Buffer) => resolve(d.toString())));
    client.send('nginx, wstap, tls app');
    expect(await echoed).toBe('nginx, wstap, tls app');
    client.close();
    await captureWhen(wstap, (e) => ofKind(e, 'ws.message').length >= 2);
    const reversed = patch(copy.dir, r.stdout, true);
    expect(reversed.status, reversed.output).toBe(0);
    expect(fs.readFileSync(copy.conf)).toEqual(fs.readFileSync(fixture.conf));
  });

  it('refuses to plan where there is nothing to re-point, with exit 2', () => {
    const fixture = writeNginxFixture({ 'nginx.conf': `${mainPreamble()}http {\n    ${HTTP_PREAMBLE}\n    server { listen 127.0.0.1:8999; location / { return 200; } }\n}\n` });
    cleanups.push(() => fs.rmSync(fixture.dir, { recursive: true, force: true }));
    expect(nginxTest(fixture).ok).toBe(true);
    const r = runNginxCheck([fixture.conf, '--path', '/ws', '--plan', '--listen', '127.0.0.1:8066']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('cannot plan: no WebSocket location to re-point');
  });
});
