import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HarLog } from '../../src/har/har-types.js';
import { finalCapture, startNginxStack, type NginxStack } from '../support/nginx-stack.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { connectClient } from '../support/ws-peers.js';
import { findingsIn, runWstapSync, type LoggedFinding } from '../support/wstap-process.js';

/**
 * The capture remembers how to judge it: `wstap proxy --timeout ...` records
 * the context in session.start, and view / export of the capture (and view
 * of the HAR) give the live proxy's verdict without being told again.
 * nginx's proxy_read_timeout 1s closes an idle WebSocket for real.
 */
describe('a capture judged later with the context it recorded', () => {
  let app: UpstreamApp;
  let s: NginxStack;
  let dir: string;
  let capture: string;
  let live: LoggedFinding;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-ctx-e2e-'));
    app = await startUpstreamApp();
    s = await startNginxStack(app.port, { proxyReadTimeout: '1s' }, ['--timeout', 'nginx.proxy_read_timeout=1s']);
    const client = await connectClient(`ws://127.0.0.1:${s.nginx.port}/ws?test=idle`);
    await app.nextConnection();
    await new Promise<void>((resolve) => client.once('close', () => resolve()));
    await s.wstap.waitForLog((l) => (l as unknown as { finding?: LoggedFinding }).finding?.id === 'timeout.match', 30_000);
    await finalCapture(s);
    capture = s.wstap.capturePath;
    live = findingsIn(s.wstap).find((f) => f.id === 'timeout.match') as LoggedFinding;
  }, 60_000);
  afterAll(async () => {
    await s?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the proxy logged timeout.match and recorded the flags in session.start', () => {
    expect(live.message).toMatch(/matches nginx proxy_read_timeout 1s/);
    const start = JSON.parse(fs.readFileSync(capture, 'utf8').split('\n')[1] as string) as { kind: string; diagnosis?: unknown };
    expect(start.kind).toBe('session.start');
    expect(start.diagnosis).toMatchObject({ version: 1, profile: null, timeoutFlags: ['nginx.proxy_read_timeout=1s'], context: { timeouts: [{ hop: 'nginx', setting: 'proxy_read_timeout', seconds: 1 }] } });
  });

  it('view --no-tui without --timeout gives the same timeout.match', () => {
    const r = runWstapSync(['view', capture, '--no-tui']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(live.message);
    expect(r.stderr).not.toMatch(/judging with/);
  });

  it('export without --timeout writes it into the HAR, which view reads back to the same verdict', () => {
    const har = path.join(dir, 'x.har');
    const r = runWstapSync(['export', capture, '-o', har]);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(fs.readFileSync(har, 'utf8')) as HarLog;
    expect(doc.log._wstap?.diagnosisContext?.timeoutFlags).toEqual(['nginx.proxy_read_timeout=1s']);
    const ws = doc.log.entries.find((e) => e._resourceType === 'websocket');
    expect(ws?._wstap?.diagnosis.find((f) => f.id === 'timeout.match')?.message).toBe(live.message);
    const v = runWstapSync(['view', har, '--no-tui']);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toContain(live.message);
  });

  it('--timeout given to view or export overrides the capture\'s, and says so', () => {
    const said = "judging with --timeout other=5s instead of the capture's --timeout nginx.proxy_read_timeout=1s";
    const v = runWstapSync(['view', capture, '--no-tui', '--timeout', 'other=5s']);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stderr).toContain(said);
    expect(v.stdout).not.toContain(live.message);
    expect(v.stdout).toMatch(/matches no known timeout/);
    const har = path.join(dir, 'other.har');
    const e = runWstapSync(['export', capture, '-o', har, '--timeout', 'other=5s']);
    expect(e.status, e.stderr).toBe(0);
    expect(e.stderr).toContain(said);
    const doc = JSON.parse(fs.readFileSync(har, 'utf8')) as HarLog;
    expect(doc.log._wstap?.diagnosisContext?.timeoutFlags).toEqual(['other=5s']);
  });

  it('view --follow of the capture judges with it too', () => {
    const r = runWstapSync(['view', '--follow', capture, '--no-tui']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(live.message);
  });

  it('an older capture (session.start without the context) reads as before', () => {
    const old = path.join(dir, 'old.jsonl');
    const lines = fs.readFileSync(capture, 'utf8').split('\n');
    const start = JSON.parse(lines[1] as string) as Record<string, unknown>;
    delete start['diagnosis'];
    lines[1] = JSON.stringify(start);
    fs.writeFileSync(old, lines.join('\n'));
    const plain = runWstapSync(['view', old, '--no-tui']);
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/closed by client/);
    expect(plain.stdout).not.toMatch(/timeout/);
    expect(plain.stderr).not.toMatch(/judging with/);
    const told = runWstapSync(['view', old, '--no-tui', '--timeout', 'nginx.proxy_read_timeout=1s']);
    expect(told.stdout).toContain(live.message);
    expect(told.stderr).not.toMatch(/judging with/);
    const har = path.join(dir, 'old.har');
    expect(runWstapSync(['export', old, '-o', har]).status).toBe(0);
    expect((JSON.parse(fs.readFileSync(har, 'utf8')) as HarLog).log._wstap).toBeUndefined();
  });
});

const FAST_PROFILE = `name: fast
description: nginx with a 1 s proxy_read_timeout (test)
hops:
  - name: nginx
    where: client-side
    timeouts:
      - setting: proxy_read_timeout
        after: 1s
        measures: both-idle
        action: fin
`;

describe('a capture made with --profile FILE', () => {
  let app: UpstreamApp;
  let s: NginxStack;
  let dir: string;
  let profile: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-ctx-profile-e2e-'));
    profile = path.join(dir, 'fast.yaml');
    fs.writeFileSync(profile, FAST_PROFILE);
    app = await startUpstreamApp();
    s = await startNginxStack(app.port, { proxyReadTimeout: '1s' }, ['--profile', profile]);
  });
  afterAll(async () => {
    await s?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('records the profile with its file; view names it when --profile there replaces it', async () => {
    const client = await connectClient(`ws://127.0.0.1:${s.nginx.port}/ws?test=idle`);
    await app.nextConnection();
    await new Promise<void>((resolve) => client.once('close', () => resolve()));
    await s.wstap.waitForLog((l) => (l as unknown as { finding?: LoggedFinding }).finding?.id === 'timeout.match', 30_000);
    await finalCapture(s);
    const live = findingsIn(s.wstap).find((f) => f.id === 'timeout.match') as LoggedFinding;
    const capture = s.wstap.capturePath;
    const start = JSON.parse(fs.readFileSync(capture, 'utf8').split('\n')[1] as string) as { diagnosis?: { profile?: unknown } };
    expect(start.diagnosis?.profile).toEqual({ name: 'fast', source: profile });

    const same = runWstapSync(['view', capture, '--no-tui']);
    expect(same.stdout).toContain(live.message);
    const other = runWstapSync(['view', capture, '--no-tui', '--profile', 'nginx']);
    expect(other.status, other.stderr).toBe(0);
    expect(other.stderr).toContain(`judging with --profile nginx (shipped) instead of the capture's --profile fast (${profile})`);
    expect(other.stdout).not.toContain(live.message);
  });
});
