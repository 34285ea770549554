import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { readCaptureFile } from '../../src/capture/capture-reader.js';
import { ProxySession } from '../../src/cli/proxy-session.js';
import { parseTarget } from '../../src/relay/target.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient, ofConn, ofKind } from '../support/ws-peers.js';

/**
 * Faults in the session-wide part (the fold, a display listening to events)
 * are kept where they belong: a fault about one connection's event stops
 * observing that connection only; a display that throws is dropped, and no
 * connection loses its observation for it. The session in this process, on
 * real sockets, with a real app behind it.
 */

interface Run {
  session: ProxySession;
  app: UpstreamApp;
  capturePath: string;
  logs: Array<{ level: number; msg: string }>;
}

async function start(): Promise<Run> {
  const app = await startUpstreamApp();
  const capturePath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-session-fault-')), 'capture.jsonl');
  const logs: Run['logs'] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  const session = await ProxySession.start({
    mode: 'http',
    listen: { kind: 'tcp', host: '127.0.0.1', port: 0 },
    target: parseTarget(`http://127.0.0.1:${app.port}`, 'http'),
    insecure: false,
    previewLimit: 256,
    capturePath,
    overwriteCapture: false,
    logger: pino({ level: 'info' }, sink),
    drainSeconds: 0,
  });
  return { session, app, capturePath, logs };
}

/** One connection through the session: `count` echoed messages, then a clean close. */
async function echoConnection(run: Run, count: number): Promise<void> {
  const upstreamSide = run.app.nextConnection();
  const ws = await connectClient(`ws://${run.session.address}/c`);
  const { ws: upstream } = await upstreamSide;
  upstream.on('message', (data: Buffer, isBinary: boolean) => upstream.send(data, { binary: isBinary }));
  const echoed: string[] = [];
  const all = new Promise<void>((resolve) =>
    ws.on('message', (d: Buffer) => {
      echoed.push(d.toString());
      if (echoed.length === count) resolve();
    }),
  );
  const sent = Array.from({ length: count }, (_, i) => `message ${i} ${'x'.repeat(i * 37)}`);
  for (const m of sent) ws.send(m);
  await all;
  expect(echoed).toEqual(sent);
  const closed = closedEvent(ws);
  ws.close(1000);
  expect((await closed).code).toBe(1000);
}

async function stopAndRead(run: Run): Promise<CaptureEvent[]> {
  await run.session.stop('test');
  await run.app.close();
  return readCaptureFile(run.capturePath);
}

describe('faults in the session-wide part', () => {
  let run: Run | undefined;
  afterEach(async () => {
    await run?.session.stop('test');
    await run?.app.close();
    run = undefined;
  });

  it('a display that throws is dropped after one error line; every connection is still recorded in full', async () => {
    run = await start();
    let calls = 0;
    run.session.onEvent((event) => {
      calls++;
      if (event.kind === 'ws.frame') throw new Error('display bug');
    });
    await Promise.all([echoConnection(run, 5), echoConnection(run, 5)]);
    const callsAfter = calls;
    const events = await stopAndRead(run);
    expect(calls).toBe(callsAfter);
    expect(run.logs.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([
      'internal fault in a display while showing ws.frame: it gets no more events; relaying and recording continue',
    ]);
    expect(ofKind(events, 'observer.fault')).toEqual([]);
    for (const conn of [1, 2]) {
      expect(ofConn(events, conn, 'ws.message')).toHaveLength(10);
      expect(ofConn(events, conn, 'conn.close')).toHaveLength(1);
    }
  });

  it('the fold failing on one event of one connection stops observing that connection alone', async () => {
    run = await start();
    const tracker = run.session.tracker;
    const apply = tracker.apply.bind(tracker);
    tracker.apply = (event) => {
      if (event.kind === 'ws.message' && event.conn === 1 && event.side === 'upstream') throw new TypeError('fold bug');
      return apply(event);
    };
    await echoConnection(run, 5);
    await echoConnection(run, 5);
    const events = await stopAndRead(run);
    const faults = ofKind(events, 'observer.fault');
    expect(faults).toEqual([expect.objectContaining({ conn: 1, where: 'record ws.message', message: 'fold bug' })]);
    expect(run.logs.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([expect.stringMatching(/^#1 observation stopped: internal fault in wstap's record ws\.message: fold bug; relaying continues/)]);
    expect(ofConn(events, 1, 'conn.close')).toHaveLength(1);
    expect(ofConn(events, 2, 'ws.message')).toHaveLength(10);
    expect(ofConn(events, 2, 'observer.fault')).toEqual([]);
  });
});
