import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { attributeClose } from '../../src/analysis/close-attribution.js';
import type { CaptureEvent, Side } from '../../src/capture/events.js';
import { readPacketCaptureEvents } from '../../src/pcap/packet-capture-reader.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { finalCapture, startNginxStack, type NginxStack } from '../support/nginx-stack.js';
import { startTcpdump, tshark, type Tcpdump } from '../support/tcpdump.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { runWstapSync } from '../support/wstap-process.js';
import { closedEvent, connectClient, connOfUrl, evidenceOf, ofConn, ofKind, receive, unexpectedResponse } from '../support/ws-peers.js';

/**
 * The zero-intrusion promise: a tcpdump capture of the traffic gives the
 * events, frame counts and close verdicts wstap records live for the same
 * traffic, and agrees with tshark's own reading of the packets.
 *
 * client -> nginx -> wstap (live) -> app, with `tcpdump -i any` on both
 * legs: nginx->wstap (the very connection wstap observes) and wstap->app
 * (the leg an admin would capture without wstap, byte for byte the same).
 */

const SCENARIOS = ['close-frame', 'fin', 'rst', 'refused'] as const;
type Scenario = (typeof SCENARIOS)[number];

async function pcapEvents(file: string, ports: number[]): Promise<CaptureEvent[]> {
  const events: CaptureEvent[] = [];
  for await (const e of readPacketCaptureEvents([file], { serverPorts: ports, note: () => undefined })) events.push(e);
  return events;
}

function framesBySide(events: CaptureEvent[], conn: number): Record<Side, number> {
  const frames = ofConn(events, conn, 'ws.frame');
  return { client: frames.filter((f) => f.side === 'client').length, upstream: frames.filter((f) => f.side === 'upstream').length };
}

function firstEvidence(events: CaptureEvent[], conn: number): { side: string; kind: string } | null {
  const first = attributeClose(evidenceOf(events, conn)).first;
  return first ? { side: first.side, kind: first.kind } : null;
}

/** What tshark reads on one leg: per client port, frames per direction and the first FIN/RST with its sender. */
function tsharkReading(file: string, serverPort: number): Map<number, { frames: Record<Side, number>; firstClose: { side: Side; kind: 'fin' | 'rst' } | null }> {
  const byClient = new Map<number, { frames: Record<Side, number>; firstClose: { side: Side; kind: 'fin' | 'rst' } | null }>();
  const entry = (port: number): { frames: Record<Side, number>; firstClose: { side: Side; kind: 'fin' | 'rst' } | null } => {
    let e = byClient.get(port);
    if (!e) byClient.set(port, (e = { frames: { client: 0, upstream: 0 }, firstClose: null }));
    return e;
  };
  const decodeAs = [`tcp.port==${serverPort},http`];
  for (const [src, dst, opcodes = ''] of tshark(file, `websocket && tcp.port==${serverPort}`, ['tcp.srcport', 'tcp.dstport', 'websocket.opcode'], decodeAs)) {
    const side: Side = Number(src) === serverPort ? 'upstream' : 'client';
    entry(Number(side === 'client' ? src : dst)).frames[side] += opcodes.split(',').filter((o) => o !== '').length;
  }
  for (const [src, dst, fin, rst] of tshark(file, `tcp.port==${serverPort} && (tcp.flags.fin==1 || tcp.flags.reset==1)`, ['tcp.srcport', 'tcp.dstport', 'tcp.flags.fin', 'tcp.flags.reset'])) {
    const side: Side = Number(src) === serverPort ? 'upstream' : 'client';
    const e = entry(Number(side === 'client' ? src : dst));
    e.firstClose ??= { side, kind: rst === '1' || rst === 'True' ? 'rst' : fin === '1' || fin === 'True' ? 'fin' : 'fin' };
  }
  return byClient;
}

describe('a tcpdump capture agrees with the live proxy and with tshark', () => {
  let app: UpstreamApp;
  let s: NginxStack;
  let dump: Tcpdump;
  let dir: string;
  let live: CaptureEvent[];
  let front: CaptureEvent[];
  let back: CaptureEvent[];
  let tcpdumpStatistics = '';
  const url = (scenario: Scenario): string => `/ws?pcap=${scenario}`;

  /** One run of every scenario through a fresh stack, tcpdump on both legs: tcpdump's statistics line. */
  async function captureScenarios(): Promise<string> {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-pcap-e2e-'));
    // The app refuses the handshake of the `refused` scenario (ws answers 401).
    app = await startUpstreamApp({ verifyClient: (info: { req: { url?: string } }) => !info.req.url?.includes('refused') });
    s = await startNginxStack(app.port);
    // -i any: what an admin runs on a host; it writes Linux cooked v2 frames.
    dump = await startTcpdump(path.join(dir, 'legs.pcap'), [s.wstap.port, app.port], { iface: 'any' });

    const base = `ws://127.0.0.1:${s.nginx.port}`;
    for (const scenario of ['close-frame', 'fin', 'rst'] as const) {
      const client = await connectClient(`${base}${url(scenario)}`);
      const { ws: server } = await app.nextConnection();
      const atServer = receive(server, 3);
      for (const text of ['one', 'two', 'three']) client.send(text);
      await atServer;
      const atClient = receive(client, 2);
      server.send('four');
      server.send(Buffer.alloc(70_000, 5));
      await atClient;
      const closed = closedEvent(client);
      if (scenario === 'close-frame') client.close(1000, 'done');
      // The app ends TCP without a close frame: a FIN, or an RST.
      const socket = (server as unknown as { _socket: net.Socket })._socket;
      if (scenario === 'fin') socket.end();
      if (scenario === 'rst') socket.resetAndDestroy();
      await closed;
      closeQuietly(server);
    }
    expect((await unexpectedResponse(`${base}${url('refused')}`)).status).toBe(401);

    // Every connection closed on both legs, in the file, before tcpdump stops.
    const closedIn = async (port: number): Promise<number> => ofKind(await pcapEvents(dump.file, [port]), 'conn.close').length;
    await waitUntilAsync(async () => (await closedIn(app.port)) >= SCENARIOS.length && (await closedIn(s.wstap.port)) >= SCENARIOS.length);
    return dump.stop();
  }

  beforeAll(async () => {
    // Agreement needs every packet: on a machine busy enough that the kernel drops some for tcpdump, the run is repeated (at most twice more).
    for (let attempt = 1; ; attempt++) {
      tcpdumpStatistics = await captureScenarios();
      if (/ 0 packets dropped by kernel/.test(tcpdumpStatistics) || attempt === 3) break;
      console.log(`tcpdump dropped packets (${tcpdumpStatistics}); capturing again (attempt ${attempt + 1} of 3)`);
      await s.stop();
      await app.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(tcpdumpStatistics).toMatch(/ 0 packets dropped by kernel/);
    live = await finalCapture(s);
    front = await pcapEvents(dump.file, [s.wstap.port]);
    back = await pcapEvents(dump.file, [app.port]);
  }, 300_000);
  afterAll(async () => {
    await s?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const scenario of SCENARIOS) {
    it(`${scenario}: the same handshake, frames per direction and first close evidence as live`, () => {
      const liveConn = connOfUrl(live, url(scenario)) as number;
      expect(liveConn).toBeDefined();
      const facts = (events: CaptureEvent[], conn: number) => ({
        status: ofConn(events, conn, 'ws.handshake.response')[0]?.statusCode,
        frames: framesBySide(events, conn),
        messages: ofConn(events, conn, 'ws.message').length,
        first: firstEvidence(events, conn),
        closedBy: attributeClose(evidenceOf(events, conn)).closedBy,
      });
      const expected = facts(live, liveConn);
      expect(expected.status).toBe(scenario === 'refused' ? 401 : 101);
      // The leg the live proxy's upstream side is: the same bytes, the same evidence.
      const backConn = connOfUrl(back, url(scenario));
      expect(backConn).toBeDefined();
      expect(facts(back, backConn as number)).toEqual(expected);
      expect(ofKind(back, 'tcp.gap'), tcpdumpStatistics).toEqual([]);
      // The nginx->wstap leg is the connection wstap itself observed: the same bytes. Its close
      // evidence is the same too, except where two hops race: after the app's 401 and FIN, nginx
      // (its answer complete) may send its FIN to wstap before wstap has passed the app's FIN on.
      const frontConn = connOfUrl(front, url(scenario));
      expect(frontConn).toBeDefined();
      const got = facts(front, frontConn as number);
      if (scenario === 'refused') {
        expect({ ...got, first: null, closedBy: null }).toEqual({ ...expected, first: null, closedBy: null });
        expect(got.first?.kind).toBe('fin');
      } else expect(got).toEqual(expected);
      expect(ofKind(front, 'tcp.gap'), tcpdumpStatistics).toEqual([]);
    });
  }

  it('matches tshark on each leg: frames per direction and the first FIN or RST with its sender', () => {
    for (const [port, events] of [
      [s.wstap.port, front],
      [app.port, back],
    ] as const) {
      const reading = tsharkReading(dump.file, port);
      for (const scenario of SCENARIOS) {
        const conn = connOfUrl(events, url(scenario)) as number;
        const open = ofConn(events, conn, 'conn.open')[0];
        const theirs = reading.get(open?.remotePort ?? -1);
        expect(theirs, `${scenario} on port ${port}`).toBeDefined();
        expect(framesBySide(events, conn), `${scenario} on port ${port}`).toEqual(theirs?.frames);
        const tcpFirst = evidenceOf(events, conn).find((e) => e.kind === 'fin' || e.kind === 'rst');
        expect({ side: tcpFirst?.side, kind: tcpFirst?.kind }, `${scenario} on port ${port}`).toEqual(theirs?.firstClose);
      }
    }
  });

  it('wstap view FILE.pcap prints the verdicts the live proxy logged; export writes a valid HAR', () => {
    const view = runWstapSync(['view', '--no-tui', dump.file, '--port', String(app.port)]);
    expect(view.status, view.stderr).toBe(0);
    expect(view.stdout).toMatch(/packet capture \(pcap\), decoded by wstap/);
    const closing = (scenario: Scenario): string | undefined => {
      const conn = connOfUrl(back, url(scenario));
      return view.stdout.split('\n').find((l) => l.includes(`#${conn} closed by`));
    };
    expect(closing('close-frame')).toMatch(/closed by client \(client close-frame 1000 "done"\)/);
    expect(closing('fin')).toMatch(/closed by upstream \(upstream fin\)/);
    expect(closing('rst')).toMatch(/closed by upstream \(upstream rst\)/);
    expect(view.stdout).toMatch(/4 connection\(s\) closed/);

    const har = path.join(dir, 'legs.har');
    const exported = runWstapSync(['export', dump.file, '--port', String(app.port), '-o', har]);
    expect(exported.status, exported.stderr).toBe(0);
    const document = JSON.parse(fs.readFileSync(har, 'utf8')) as { log: { entries: Array<{ request: { url: string }; _webSocketMessages?: unknown[] }> } };
    expect(harSchemaErrors(document)).toEqual([]);
    const entry = document.log.entries.find((e) => e.request.url.endsWith(url('close-frame')));
    expect(entry?._webSocketMessages).toHaveLength(5);
  });

  it('the same capture converted to pcapng (editcap) gives the same events', () => {
    const ng = path.join(dir, 'legs.pcapng');
    const convert = spawnSync('editcap', ['-F', 'pcapng', dump.file, ng], { encoding: 'utf8' });
    expect(convert.status, convert.stderr).toBe(0);
    return pcapEvents(ng, [app.port]).then((events) => {
      const strip = (list: CaptureEvent[]): string[] => list.filter((e) => e.kind !== 'session.start').map((e) => JSON.stringify(e));
      expect(strip(events)).toEqual(strip(back));
    });
  });
});

function closeQuietly(ws: WebSocket): void {
  try {
    ws.terminate();
  } catch {
    // Already gone.
  }
}

/** Polls an asynchronous condition (reading the growing capture) until it holds. */
async function waitUntilAsync(probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`the capture did not hold every close within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
