import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import type { NginxOptions } from '../support/nginx.js';
import { startNginxStack, type NginxStack } from '../support/nginx-stack.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient, ofKind, sleep } from '../support/ws-peers.js';
import { BIN, findingsAfterClose, type LogLine, type LoggedFinding } from '../support/wstap-process.js';

/**
 * The heartbeat checks, each with the heartbeat problem made by real peers
 * through a real nginx: an app heartbeat slower than nginx's
 * proxy_read_timeout, a client that does not answer pings, a pong that comes
 * back from the side that sent the ping.
 */

type Finding = LoggedFinding;

/** nginx -> wstap (with this test's profile) -> the app; the profile's directory goes with it. */
interface Stack extends NginxStack {
  dir: string;
}

/** A profile file for this test: nginx in front with the given timeout, the app's heartbeat. */
function writeProfile(dir: string, name: string, readTimeout: string, heartbeat: string): string {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(
    file,
    `name: ${name}
description: test profile
hops:
  - name: nginx
    where: client-side
    timeouts:
      - setting: proxy_read_timeout
        after: ${readTimeout}
        measures: both-idle
        action: fin
heartbeat:
${heartbeat}
`,
  );
  return file;
}

async function stack(appPort: number, profile: { readTimeout: string; heartbeat: string }, nginxOptions: Omit<NginxOptions, 'upstreamPort'> = {}): Promise<Stack> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-heartbeat-'));
  const file = writeProfile(dir, 'test-heartbeat', profile.readTimeout, profile.heartbeat);
  const started = await startNginxStack(appPort, nginxOptions, ['--profile', file]);
  return {
    ...started,
    dir,
    stop: async () => {
      await started.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function findingOf(line: LogLine): Finding | null {
  return (line as unknown as { finding?: Finding }).finding ?? null;
}

/** The findings for the handshake whose URL ends with `tag`, once its connection has closed. */
async function closedConnFindings(s: Stack, tag: string): Promise<{ conn: number; found: Finding[] }> {
  const request = await s.wstap.waitForLog((l) => typeof l.url === 'string' && l.url.endsWith(tag));
  const conn = request.conn as number;
  return { conn, found: await findingsAfterClose(s.wstap, conn) };
}

/** Every `ws` connection the app accepts pings on this timer until it closes. */
function pingEvery(app: UpstreamApp, ms: number): void {
  void (async () => {
    for (;;) {
      const { ws } = await app.nextConnection();
      let n = 0;
      const timer = setInterval(() => ws.ping(`hb-${n++}`), ms);
      ws.once('close', () => clearInterval(timer));
    }
  })();
}

describe('an app heartbeat slower than nginx proxy_read_timeout', () => {
  let app: UpstreamApp;
  let s: Stack;
  beforeAll(async () => {
    app = await startUpstreamApp();
    pingEvery(app, 3000);
    s = await stack(app.port, { readTimeout: '2s', heartbeat: '  from: upstream\n  kind: ws-ping\n  interval: 3s\n  timeout: 10s' }, { proxyReadTimeout: '2s' });
  });
  afterAll(async () => {
    await s?.stop();
    await app?.close();
  });

  it('is called out at start, from the profile alone', () => {
    const setup = s.wstap.logs.map(findingOf).find((f) => f?.id === 'heartbeat.slower-than-timeout');
    expect(setup?.message).toBe(
      'the heartbeat (upstream pings every 3s) is not more frequent than nginx proxy_read_timeout 2s: a connection with nothing else to send is cut before the next heartbeat, or races it',
    );
    expect(setup?.fix).toBe('send the heartbeat more often than every 2s, or raise nginx proxy_read_timeout above the heartbeat interval');
  });

  it('a quiet connection is cut by nginx before the first ping: the verdict names the timeout, the heartbeat finding names the cause', async () => {
    const client = await connectClient(`ws://127.0.0.1:${s.nginx.port}/ws?test=slow-heartbeat`);
    expect((await closedEvent(client)).code).toBe(1006);
    // timeout.approaching may come first, when a once-a-second check falls within the last 0.4 s: not what this test is about.
    const found = (await closedConnFindings(s, 'test=slow-heartbeat')).found.filter((f) => f.id !== 'timeout.approaching');
    expect(found.map((f) => f.id)).toEqual(['timeout.match', 'heartbeat.slower-than-timeout']);
    expect(found[0]?.message).toMatch(/^closed by client side \(fin\) after [12]\.\d\d s without data either way: matches nginx proxy_read_timeout 2s$/);
    const heartbeat = found[1] as Finding;
    expect(heartbeat.severity).toBe('warning');
    expect(heartbeat.message).toBe("the app's heartbeat (per the profile: upstream pings every 3s) is not more frequent than nginx proxy_read_timeout 2s, which closed this connection");
    expect(heartbeat.evidence).toEqual([
      'profile heartbeat: upstream pings every 3s',
      'the close matched nginx proxy_read_timeout 2s (timeout.match)',
      expect.stringMatching(/^no ping from the upstream in the [12]\.\d\d s after the upgrade$/),
    ]);
  });
});

describe('a client that does not answer the app\'s pings', () => {
  let app: UpstreamApp;
  let s: Stack;
  beforeAll(async () => {
    app = await startUpstreamApp();
    pingEvery(app, 150);
    s = await stack(app.port, { readTimeout: '60s', heartbeat: '  from: upstream\n  kind: ws-ping\n  interval: 150ms\n  timeout: 400ms' });
  });
  afterAll(async () => {
    await s?.stop();
    await app?.close();
  });

  async function session(tag: string, autoPong: boolean): Promise<{ conn: number; found: Finding[] }> {
    const client: WebSocket = await connectClient(`ws://127.0.0.1:${s.nginx.port}/ws?test=${tag}`, { autoPong });
    let pings = 0;
    client.on('ping', () => pings++);
    while (pings < 8) await sleep(50);
    client.close(1000, 'done');
    await closedEvent(client);
    return closedConnFindings(s, `test=${tag}`);
  }

  it('is reported with the count, the wait the profile allows, and who should answer', async () => {
    const found = (await session('no-pong', false)).found.filter((f) => f.id.startsWith('heartbeat.'));
    expect(found.map((f) => f.id)).toEqual(['heartbeat.unanswered']);
    const f = found[0] as Finding;
    const m = /^(\d+) of (\d+) ping\(s\) from the upstream got no pong from the client$/.exec(f.message);
    expect(m, f.message).not.toBeNull();
    // The pings of the last 400 ms before the close are still within their wait.
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(4);
    expect(Number(m?.[2])).toBeGreaterThanOrEqual(8);
    expect(f.evidence[1]).toBe('0 answered');
    expect(f.evidence[2]).toMatch(/^\d+ still waiting at the close, the oldest for \d+\.\d\d s \(a pong is expected within the profile's heartbeat timeout, 400ms\)$/);
    expect(f.fix).toMatch(/^the client side does not answer the app's pings/);

    // The HAR export judges the same capture the same way.
    const har = path.join(s.dir, 'session.har');
    await s.nginx.stop();
    expect(await s.wstap.stop()).toBe(0);
    const r = spawnSync(process.execPath, [BIN, 'export', s.wstap.capturePath, '-o', har, '--profile', path.join(s.dir, 'test-heartbeat.yaml')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const entries = (JSON.parse(fs.readFileSync(har, 'utf8')) as { log: { entries: Array<{ request: { url: string }; _wstap: { diagnosis: Finding[] } }> } }).log.entries;
    const entry = entries.find((e) => e.request.url.endsWith('test=no-pong'));
    expect(entry?._wstap.diagnosis.find((d) => d.id === 'heartbeat.unanswered')?.message).toBe(f.message);
  });

  it('a client that answers gets no heartbeat finding (same app, same pings)', async () => {
    // Runs on a fresh stack: the one above was stopped to export.
    await s.stop();
    s = await stack(app.port, { readTimeout: '60s', heartbeat: '  from: upstream\n  kind: ws-ping\n  interval: 150ms\n  timeout: 400ms' });
    const { conn, found } = await session('pong', true);
    expect(found.filter((f) => f.id.startsWith('heartbeat.'))).toEqual([]);
    const events = await (async () => {
      await s.nginx.stop();
      await s.wstap.stop();
      return s.wstap.events();
    })();
    const pongs = ofKind(events, 'ws.frame').filter((e) => e.conn === conn && e.opcode === 10 && e.side === 'client');
    expect(pongs.length).toBeGreaterThanOrEqual(8);
  });
});

describe('a pong from the side that sent the ping', () => {
  let app: UpstreamApp;
  let s: Stack;
  beforeAll(async () => {
    // The app does not answer pings, and the client "answers" its own.
    app = await startUpstreamApp({ autoPong: false });
    s = await stack(app.port, { readTimeout: '60s', heartbeat: '  from: client\n  kind: ws-ping\n  interval: 30s' });
  });
  afterAll(async () => {
    await s?.stop();
    await app?.close();
  });

  it('is named for what it is: the pong travelled the ping\'s way', async () => {
    const client = await connectClient(`ws://127.0.0.1:${s.nginx.port}/ws?test=own-pong`);
    client.ping('probe-1');
    await sleep(100);
    client.pong('probe-1');
    await sleep(100);
    client.close(1000, 'done');
    await closedEvent(client);
    const found = (await closedConnFindings(s, 'test=own-pong')).found.filter((f) => f.id.startsWith('heartbeat.'));
    expect(found.map((f) => f.id)).toEqual(['heartbeat.same-direction-pong']);
    expect(found[0]?.message).toBe(
      "1 pong(s) from the client carry the data of the client's own ping(s): they travelled the way the ping did, so the upstream, which received the ping, did not send them",
    );
    expect(found[0]?.evidence[0]).toMatch(/^1 pong\(s\) from the client matching an outstanding client ping; first at \+0\.\d\d s after the upgrade$/);
  });
});

describe('what the profile says the heartbeat does, against what the connection shows', () => {
  let app: UpstreamApp;
  let s: Stack;
  beforeAll(async () => {
    app = await startUpstreamApp({ autoPong: false });
    // Each connection's pings come at the pace its URL asks for (?ping=MS; 0: none).
    void (async () => {
      for (;;) {
        const { ws, req } = await app.nextConnection();
        const every = Number(new URL(req.url ?? '/', 'http://app').searchParams.get('ping') ?? 0);
        let n = 0;
        const timer = every > 0 ? setInterval(() => ws.ping(`hb-${n++}`), every) : undefined;
        ws.once('close', () => clearInterval(timer));
      }
    })();
    // The profile: the app pings every 2 s and waits 150 ms for the pong.
    s = await stack(app.port, { readTimeout: '60s', heartbeat: '  from: upstream\n  kind: ws-ping\n  interval: 2s\n  timeout: 150ms' });
  });
  afterAll(async () => {
    await s?.stop();
    await app?.close();
  });

  /** Opens `tag` through nginx, lets `script` run, closes with 1000 after `openMs`, returns its findings. */
  async function connection(tag: string, ping: number, openMs: number, script: (ws: WebSocket) => void = () => undefined): Promise<Finding[]> {
    const ws = await connectClient(`ws://127.0.0.1:${s.nginx.port}/ws?test=${tag}&ping=${ping}`, { autoPong: false });
    script(ws);
    await sleep(openMs);
    const closed = closedEvent(ws);
    ws.close(1000, 'done');
    await closed;
    return (await closedConnFindings(s, `test=${tag}&ping=${ping}`)).found;
  }

  it('each disagreement is named; a routine close (1000) gets no "no timeout matched" line', async () => {
    const [missing, faster, late, mismatched, unsolicited] = await Promise.all([
      connection('missing', 0, 3300),
      connection('faster', 300, 1300, (ws) => ws.on('ping', (data: Buffer) => ws.pong(data))),
      connection('late', 300, 1300, (ws) => ws.on('ping', (data: Buffer) => setTimeout(() => ws.pong(data), 250))),
      connection('mismatched', 300, 1300, (ws) => ws.on('ping', () => ws.pong('not-your-data'))),
      connection('unsolicited', 0, 500, (ws) => {
        ws.pong('beat-1');
        setTimeout(() => ws.pong('beat-2'), 100);
      }),
    ]);
    const byId = (found: Finding[], id: string): Finding | undefined => found.find((f) => f.id === id);

    expect(byId(missing, 'heartbeat.missing')?.message).toMatch(/^no ping from the upstream in \d\.\d\d s; the profile says the upstream pings every 2s$/);

    expect(byId(faster, 'heartbeat.interval-differs')?.message).toMatch(/^pings from the upstream come every 0\.\d\d s on average; the profile says every 2s$/);
    expect(faster.filter((f) => f.id.startsWith('heartbeat.')).map((f) => f.id)).toEqual(['heartbeat.interval-differs']);

    expect(byId(late, 'heartbeat.late-pong')?.message).toMatch(/^the slowest pong to the upstream's pings took 0\.\d\d s, longer than the 150ms the pinger waits \(per the profile\)$/);

    expect(byId(mismatched, 'heartbeat.pong-mismatch')?.message).toMatch(/^\d+ pong\(s\) from the client do not carry the data of the ping they answer/);
    expect(byId(mismatched, 'heartbeat.unanswered')?.message).toMatch(/^\d+ of \d+ ping\(s\) from the upstream got no pong from the client$/);

    const oneWay = byId(unsolicited, 'heartbeat.unsolicited-pong');
    expect(oneWay?.severity).toBe('info');
    expect(oneWay?.message).toBe('2 pong(s) from the client answered no ping: a one-way heartbeat, which RFC 6455 5.5.3 allows');

    // The client closed each with 1000, a routine end: "no known timeout" helps nobody there, so it stays out of
    // the default log (it is at debug; the close line has the numbers, the HAR and the detail view the finding).
    for (const found of [missing, faster, late, mismatched, unsolicited]) expect(found.map((f) => f.id)).not.toContain('timeout.none');
    const closeLine = s.wstap.logs.find((l) => typeof l.msg === 'string' && / closed by client \(client close-frame 1000 "done"\) after /.test(l.msg));
    expect(closeLine?.msg).toMatch(/ after \d\.\d\d s; silent before: client->upstream \d\.\d\d s, upstream->client \d\.\d\d s/);
  });
});
