import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HarLog } from '../../src/har/har-types.js';
import { finalCapture, startNginxStack, type NginxStack } from '../support/nginx-stack.js';
import { paneExitStatus, shellQuote, tmuxMissing, TmuxServer } from '../support/tmux.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient } from '../support/ws-peers.js';
import { BIN, findingsAfterClose, findingsIn, runWstapSync, type LoggedFinding } from '../support/wstap-process.js';

/**
 * Two hops in front of wstap with the same 2 s both-way idle timeout: a load
 * balancer the profile declares (no such process runs) and the real nginx
 * (proxy_read_timeout 2s), which is what cuts the idle WebSocket. When
 * nothing observed tells the two apart the verdict is timeout.ambiguous and
 * names both; when the profile says the balancer would RST, nginx's FIN
 * picks nginx and the balancer is ruled out in the evidence.
 */

/** A profile with a front balancer (action as given) and nginx, both 2 s both-way idle, both in front of wstap. */
function writeProfile(dir: string, frontAction: string): string {
  const file = path.join(dir, `two-hops-${frontAction}.yaml`);
  fs.writeFileSync(
    file,
    `name: two-hops-${frontAction}
description: test profile, a balancer then nginx in front of wstap
hops:
  - name: front-lb
    where: client-side
    timeouts:
      - setting: idle_timeout
        after: 2s
        measures: both-idle
        action: ${frontAction}
  - name: nginx
    where: client-side
    timeouts:
      - setting: proxy_read_timeout
        after: 2s
        measures: both-idle
        action: fin
`,
  );
  return file;
}

interface Run {
  stack: NginxStack;
  found: LoggedFinding[];
}

/** An idle WebSocket through real nginx (proxy_read_timeout 2s) and wstap with this profile, until nginx cuts it. */
async function idleUntilCut(app: UpstreamApp, dir: string, frontAction: string): Promise<Run> {
  const stack = await startNginxStack(app.port, { proxyReadTimeout: '2s' }, ['--profile', writeProfile(dir, frontAction)]);
  const client = await connectClient(`ws://127.0.0.1:${stack.nginx.port}/ws?test=idle-${frontAction}`);
  // nginx closes with a FIN and no close frame: the browser-side code is 1006.
  expect((await closedEvent(client)).code).toBe(1006);
  const request = await stack.wstap.waitForLog((l) => typeof l.url === 'string' && l.url.endsWith(`test=idle-${frontAction}`));
  // timeout.approaching (a live warning per timeout) may come first: not what this test is about.
  const found = (await findingsAfterClose(stack.wstap, request.conn as number)).filter((f) => f.id !== 'timeout.approaching');
  return { stack, found };
}

describe('two hops in front of wstap with the same 2 s idle timeout, real nginx cuts an idle WebSocket', () => {
  let app: UpstreamApp;
  let dir: string;
  let tie: Run;
  let broken: Run;
  beforeAll(async () => {
    app = await startUpstreamApp();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-ambiguous-'));
    tie = await idleUntilCut(app, dir, 'unknown');
    broken = await idleUntilCut(app, dir, 'rst');
  });
  afterAll(async () => {
    await tie?.stack.stop();
    await broken?.stack.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('nothing observed separates them: timeout.ambiguous names both, what was seen and how to tell them apart; no timeout.match', () => {
    expect(tie.found.map((f) => f.id)).toEqual(['timeout.ambiguous']);
    expect(findingsIn(tie.stack.wstap).map((f) => f.id)).not.toContain('timeout.match');
    const v = tie.found[0] as LoggedFinding;
    expect(v.severity).toBe('warning');
    expect(v.message).toMatch(
      /^closed by client side \(fin\) after client->upstream [123]\.\d\d s, upstream->client [123]\.\d\d s of silence: 2 timeouts fit and nothing observed tells them apart: (front-lb idle_timeout 2s, nginx proxy_read_timeout 2s|nginx proxy_read_timeout 2s, front-lb idle_timeout 2s)$/,
    );
    expect(v.evidence[0]).toMatch(/^first close evidence: client fin at \+[123]\.\d\d s$/);
    expect(v.evidence.filter((e) => e.startsWith('candidate: '))).toEqual([
      expect.stringMatching(/^candidate: (front-lb idle_timeout|nginx proxy_read_timeout) 2s, on the client-side of wstap, counts silence both ways/),
      expect.stringMatching(/^candidate: (front-lb idle_timeout|nginx proxy_read_timeout) 2s, on the client-side of wstap, counts silence both ways/),
    ]);
    expect(v.evidence.join('\n')).toContain('sends a FIN when it fires');
    expect(v.evidence.join('\n')).toContain('what it sends when it fires is not known (action: unknown)');
    expect(v.evidence).toContain(
      'not told apart by: side (the close came from the client side; each sits on that side), action (a FIN fits what each sends; an unknown action fits anything), silence (what each timer counts was within tolerance of its timeout)',
    );
    expect(v.fix).toMatch(/^find out which fired: /);
    expect(v.fix).toContain('"upstream timed out (110: Connection timed out) while proxying upgraded connection"');
    expect(v.fix).toContain('if it was nginx, raise nginx proxy_read_timeout above');
    expect(v.fix).toContain('if it was front-lb, raise front-lb idle_timeout above');
    // The log line the fix points to is really there: nginx wrote it when its timer fired.
    expect(tie.stack.nginx.errorLog()).toMatch(/upstream timed out \(110: Connection timed out\) while proxying upgraded connection/);
  });

  it('the tie reads the same in the live log, view, the HAR (exported without --profile) and the UI detail', async () => {
    const live = tie.found[0] as LoggedFinding;
    await finalCapture(tie.stack);
    const capture = tie.stack.wstap.capturePath;

    const view = runWstapSync(['view', capture, '--no-tui']);
    expect(view.status, view.stderr).toBe(0);
    // view's text lines carry a finding's message and fix (its evidence is in the HAR and the UI detail).
    expect(view.stdout).toContain(`${live.message}; fix: ${live.fix}`);
    expect(view.stdout).not.toMatch(/: matches /);

    const har = path.join(dir, 'tie.har');
    const exported = runWstapSync(['export', capture, '-o', har]);
    expect(exported.status, exported.stderr).toBe(0);
    const doc = JSON.parse(fs.readFileSync(har, 'utf8')) as HarLog;
    const entry = doc.log.entries.find((e) => e.request.url.endsWith('test=idle-unknown'));
    const inHar = entry?._wstap?.diagnosis.filter((f) => f.id !== 'timeout.approaching');
    expect(inHar).toEqual([{ id: live.id, severity: live.severity, message: live.message, evidence: live.evidence, fix: live.fix }]);

    if (tmuxMissing()) throw tmuxMissing();
    const paneDir = fs.mkdtempSync(path.join(dir, 'pane-'));
    const status = path.join(paneDir, 'status');
    const script = [
      'export TERM=xterm-256color',
      [process.execPath, BIN, 'view', capture].map(shellQuote).join(' '),
      `echo "$?" > ${shellQuote(status + '.tmp')} && mv ${shellQuote(status + '.tmp')} ${shellQuote(status)}`,
      'exec sleep 3600',
      '',
    ].join('\n');
    const tmux = new TmuxServer(paneDir);
    try {
      // Wide enough that each candidate's evidence line fits on one screen line.
      tmux.start({ width: 200, height: 60, script, scriptFile: path.join(paneDir, 'run.sh') });
      await tmux.waitForScreen('the recording in the UI', (l) => (l.some((x) => x.includes('end of recording')) ? l : null), { timeoutMs: 10_000 });
      tmux.sendKeys('Enter');
      const detail = (await tmux.waitForScreen('the tie in the detail view', (l) => (l.some((x) => x.includes('timeout.ambiguous')) ? l : null))).join('\n');
      expect(detail).toContain(`[warning] timeout.ambiguous: ${live.message.slice(0, 80)}`);
      for (const candidate of live.evidence.filter((e) => e.startsWith('candidate: '))) {
        expect(detail).toContain(`evidence: ${candidate.slice(0, 120)}`);
      }
      expect(detail).not.toContain('timeout.match');
      tmux.sendKeys('q');
      expect(await paneExitStatus(status, tmux)).toBe('0');
    } finally {
      await tmux.kill();
    }
  });

  it('the front hop would have sent an RST and a FIN came: timeout.match names nginx, the front hop ruled out in the evidence', () => {
    expect(broken.found.map((f) => f.id)).toEqual(['timeout.match']);
    const v = broken.found[0] as LoggedFinding;
    expect(v.message).toMatch(/^closed by client side \(fin\) after [123]\.\d\d s without data either way: matches nginx proxy_read_timeout 2s$/);
    expect(v.evidence).toContain('ruled out: front-lb idle_timeout 2s sends an RST when it fires and a FIN was seen');
    expect(v.fix).toMatch(/raise nginx proxy_read_timeout/);
    expect(v.fix).not.toMatch(/front-lb/);
  });
});
