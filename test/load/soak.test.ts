import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attributeClose, closeEvidenceOf, type CloseActor, type CloseEvidence } from '../../src/analysis/close-attribution.js';
import { readCaptureEvents } from '../../src/capture/capture-reader.js';
import {
  fdCount,
  fdKinds,
  inspectorUrlIn,
  memoryAfterGc,
  MiB,
  mib,
  openSocketsIn,
  removeCapture,
  rssOf,
  sampleRss,
  startLoadPeer,
  waitFor,
  within,
  type LoadPeer,
} from '../support/load-peers.js';
import { sleep } from '../support/ws-peers.js';
import { startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Issue 6, item 5: a soak. Connections open, chat both ways (random sizes
 * across the 7/16/64-bit length boundaries, text and binary, some pings,
 * a quarter with permessage-deflate) and end in every way a connection can
 * end: a close frame from either side, a reset (RST) from either side, a
 * plain destroy, a half-close (FIN without a close frame), some after a
 * quiet spell. Afterwards: the endpoints got what was sent, the capture
 * accounts for every connection with who closed it, wstap holds no more
 * descriptors than before and its memory went back.
 */

const CONNECTIONS = 1000;
const DURATION_MS = 60_000;
/** Connections start evenly over this; each lives 1-18 s (load-peer.mjs), so the last ones end around DURATION_MS. */
const SPREAD_MS = DURATION_MS - 12_000;
/** Connections open at once, at most (the pool; ~180-200 are open at the busiest, each living 1-20 s). */
const CONCURRENCY = 250;
/** Replay a failed run with WSTAP_SOAK_SEED=<the seed it logged>. */
const SEED = process.env.WSTAP_SOAK_SEED ? Number(process.env.WSTAP_SOAK_SEED) : Math.floor(Math.random() * 2 ** 31);
/** How long wstap is given, once the traffic is over, for its RSS to come back. */
const SETTLE_MS = 20_000;
/**
 * RSS once the traffic is over may exceed RSS at the start (after the
 * warm-up) by this much. Measured: idle ~70 MiB, start ~115 MiB, peak
 * ~135 MiB, end 0-22 MiB above the start at once, lower a few seconds later
 * when V8 shrinks its heap. RSS never quite returns: malloc keeps freed
 * pages (the warm-up alone leaves ~45 MiB above idle), so the leak check
 * proper is the live memory below.
 */
const RSS_RETURN_TOLERANCE = 32 * MiB;
/**
 * Live memory (JS heap plus Buffers, after a full GC through the inspector)
 * at the end may exceed its start by this much. Measured +0.4-0.7 MiB; a
 * leak of 4 KiB per connection would exceed it.
 */
const LIVE_MEMORY_TOLERANCE = 4 * MiB;

interface SideRecord {
  id: number;
  side: 'client' | 'server';
  how: string;
  /** Still open 45 s after it opened (its plan ends it within ~20 s): ended by the peer's watchdog. */
  stuck: boolean;
  code: number;
  reason: string;
  sentCount: number;
  sentBytes: number;
  sentSnapshots: string[];
  /** Per message sent: type, length and a hash prefix. */
  sentList: string[];
  /** Messages whose write completed. */
  written: number;
  sendErrors: number;
  deflate: boolean;
  receivedCount: number;
  receivedBytes: number;
  receivedDigest: string;
  receivedList: string[];
}

interface SoakResult {
  records: SideRecord[];
  failures: Array<{ id: number; error: string }>;
  peakOpen: number;
  ms: number;
}

/**
 * What must have arrived, by the way the connection ended:
 * - a close handshake: every message sent before it (ws queues the close
 *   frame behind them, and the other side sends nothing after answering);
 * - a FIN without a close frame: every message written before it. ws accepts
 *   a message while OPEN but with permessage-deflate writes it only once
 *   compressed; a FIN from the other side can come in between, and then the
 *   message is never written (its send calls back with an error);
 * - a reset or destroy: any prefix of what was sent.
 * Whatever arrived must be the first messages sent, in order, byte for byte.
 */
function compare(sender: SideRecord, receiver: SideRecord): string | null {
  const n = receiver.receivedCount;
  const sent = sender.sentSnapshots.length - 1;
  if (n > sent) return `got ${n} messages, only ${sent} were sent`;
  if (receiver.receivedDigest !== sender.sentSnapshots[n]) {
    const at = receiver.receivedList.findIndex((m, i) => m !== sender.sentList[i]);
    return (
      `the ${n} messages received are not the first ${n} sent (deflate ${sender.deflate}); first difference at message ${at}: ` +
      `sent ${JSON.stringify(sender.sentList.slice(Math.max(0, at - 2), at + 3))}, received ${JSON.stringify(receiver.receivedList.slice(Math.max(0, at - 2), at + 3))}`
    );
  }
  if (sender.how.endsWith('-close-frame') && n !== sent) return `got ${n} of ${sent} messages though the close handshake completed (deflate ${sender.deflate})`;
  if (sender.how.endsWith('-end') && n < sender.written) {
    return `got ${n} of the ${sender.written} messages written (${sent} accepted) before the FIN (deflate ${sender.deflate})`;
  }
  return null;
}


describe('soak', () => {
  let upstream: LoadPeer;
  let client: LoadPeer;
  let wstap: WstapProcess;

  beforeAll(async () => {
    [upstream, client] = await Promise.all([startLoadPeer('upstream'), startLoadPeer('client')]);
    const { port } = await upstream.call<{ port: number }>('listen');
    // The inspector (loopback, a free port) only to ask for a GC and the live heap at the start and the end.
    wstap = await startWstap(['--target', `http://127.0.0.1:${port}`], { nodeArgs: ['--inspect=127.0.0.1:0'] });
  });
  afterAll(async () => {
    await wstap?.stop('SIGKILL');
    await client?.stop();
    await upstream?.stop();
  });

  it(`${CONNECTIONS} connections over ${DURATION_MS / 1000} s, ending every way: endpoints byte-exact, every connection closed and attributed in the capture, descriptors back, memory back near its start`, async () => {
    await sleep(500);
    const inspector = inspectorUrlIn(wstap.stderr());
    if (!inspector) throw new Error(`no inspector address in wstap's stderr:\n${wstap.stderr()}`);
    const fdsBefore = fdCount(wstap.pid);
    const rssIdle = rssOf(wstap.pid);
    // Warm-up: code compiled, buffer pools made, and the tracker's list of
    // closed connections (the last 1000 are kept by design) filled, as it is
    // at the end. This is the start the end is compared with.
    await client.call('open', { url: `ws://127.0.0.1:${wstap.port}/hold`, count: 1000, concurrency: 50 });
    await client.call('open', { url: `ws://127.0.0.1:${wstap.port}/hold`, count: 20, concurrency: 10, deflate: true });
    await client.call('closeAll');
    await waitFor('the warm-up connections to close', () => fdCount(wstap.pid) === fdsBefore, 10_000);
    await sleep(1000);
    const rssStart = rssOf(wstap.pid);
    const heapStart = await memoryAfterGc(inspector);
    const sampler = sampleRss(wstap.pid, 100);

    console.log(`[load] soak: seed ${SEED} (replay with WSTAP_SOAK_SEED=${SEED})`);
    const soak = await client.call<SoakResult>(
      'soak',
      { url: `ws://127.0.0.1:${wstap.port}/soak`, total: CONNECTIONS, concurrency: CONCURRENCY, spreadMs: SPREAD_MS, seed: SEED },
      DURATION_MS + 60_000,
    );
    await waitFor('the upstream to see every connection end', async () => (await upstream.call<{ soakOpen: number }>('stats', {}, 5_000)).soakOpen === 0, 30_000);
    const serverRecords = await upstream.call<SideRecord[]>('soakRecords');
    await waitFor('wstap to let go of every connection', () => fdCount(wstap.pid) <= fdsBefore, 30_000).catch(() => undefined);
    const fdsAfter = fdCount(wstap.pid);
    // Checked before anything else: a socket wstap never closes also holds up its graceful stop.
    if (fdsAfter !== fdsBefore) {
      const held = JSON.stringify(await openSocketsIn(inspector));
      expect(fdsAfter, `descriptors ${JSON.stringify(fdKinds(wstap.pid))}; sockets still held: ${held}`).toBe(fdsBefore);
    }
    const { peak: rssPeak } = sampler.stop();
    // Give it a moment: V8 shrinks its heap a few seconds after the traffic stops.
    const settleStarted = Date.now();
    await waitFor('RSS to come back', () => rssOf(wstap.pid) < rssStart + RSS_RETURN_TOLERANCE, SETTLE_MS).catch(() => undefined);
    const settledMs = Date.now() - settleStarted;
    const rssEnd = rssOf(wstap.pid);
    const heapEnd = await memoryAfterGc(inspector);

    // The endpoints.
    expect(soak.failures).toEqual([]);
    expect(soak.records).toHaveLength(CONNECTIONS);
    expect(serverRecords).toHaveLength(CONNECTIONS);
    const servers = new Map(serverRecords.map((r) => [r.id, r]));
    const problems: string[] = [];
    let messages = 0;
    let bytes = 0;
    const modes = new Map<string, number>();
    for (const c of soak.records) {
      const s = servers.get(c.id);
      if (!s) {
        problems.push(`#${c.id}: the upstream never saw it`);
        continue;
      }
      modes.set(c.how, (modes.get(c.how) ?? 0) + 1);
      messages += c.receivedCount + s.receivedCount;
      bytes += c.receivedBytes + s.receivedBytes;
      if (c.stuck || s.stuck) problems.push(`#${c.id} (${c.how}): still open 45 s after it opened (client ${c.stuck}, upstream ${s.stuck})`);
      const up = compare(c, s);
      if (up) problems.push(`#${c.id} (${c.how}) client -> upstream: ${up}`);
      const down = compare(s, c);
      if (down) problems.push(`#${c.id} (${c.how}) upstream -> client: ${down}`);
      if (c.how.endsWith('close-frame') && (c.code === 1006 || s.code === 1006)) problems.push(`#${c.id} (${c.how}): no close handshake (codes ${c.code}/${s.code})`);
    }

    // The capture: every connection opened, upgraded, closed, and who closed it.
    expect(await within(wstap.stop(), 30_000, 'wstap to stop on SIGINT')).toBe(0);
    const idOf = new Map<number, number>();
    const evidence = new Map<number, CloseEvidence[]>();
    const closedBy = new Map<number, CloseActor | null>();
    let dropped = -1;
    let opens = 0;
    for await (const e of readCaptureEvents(wstap.capturePath)) {
      if (e.kind === 'session.end') dropped = e.droppedEvents;
      if (!('conn' in e)) continue;
      if (e.kind === 'conn.open') opens++;
      else if (e.kind === 'ws.handshake.request') {
        const id = new URL(e.url, 'http://x').searchParams.get('id');
        if (id !== null) idOf.set(e.conn, Number(id));
      } else if (e.kind === 'conn.close') {
        closedBy.set(e.conn, attributeClose(evidence.get(e.conn) ?? []).closedBy);
        evidence.delete(e.conn);
      } else {
        const ev = closeEvidenceOf(e);
        if (ev) {
          const list = evidence.get(e.conn) ?? [];
          list.push(ev);
          evidence.set(e.conn, list);
        }
      }
    }
    expect(dropped).toBe(0);
    // Every connection of the session (the warm-up's too) closed, each with someone who closed it.
    expect(closedBy.size).toBe(opens);
    expect([...closedBy].filter(([, by]) => by === null)).toEqual([]);
    const soakConns = [...idOf];
    expect(soakConns).toHaveLength(CONNECTIONS);
    const howOf = new Map(soak.records.map((r) => [r.id, r.how]));
    const attributed = new Map<string, number>();
    for (const [conn, id] of soakConns) {
      const how = howOf.get(id) ?? '?';
      if (!closedBy.has(conn)) {
        problems.push(`#${id} (wstap #${conn}, ${how}): no conn.close in the capture`);
        continue;
      }
      const by = closedBy.get(conn) ?? null;
      attributed.set(`${how} -> ${by}`, (attributed.get(`${how} -> ${by}`) ?? 0) + 1);
      const expected: CloseActor = how.startsWith('client-') ? 'client' : 'upstream';
      if (by !== expected) problems.push(`#${id} (wstap #${conn}, ${how}): closedBy ${by}, expected ${expected}`);
    }

    console.log(
      `[load] soak: ${CONNECTIONS} connections in ${(soak.ms / 1000).toFixed(1)} s (at most ${soak.peakOpen} open at once), ` +
        `${messages} messages and ${mib(bytes)} of payload delivered; ends: ${JSON.stringify(Object.fromEntries(modes))}`,
    );
    console.log(`[load] soak: closedBy per way of ending: ${JSON.stringify(Object.fromEntries(attributed))}`);
    console.log(
      `[load] soak: wstap descriptors ${fdsBefore} before, ${fdsAfter} after; RSS idle ${mib(rssIdle)}, start (after warm-up) ${mib(rssStart)}, ` +
        `peak ${mib(rssPeak)}, end ${mib(rssEnd)} ${settledMs} ms after the traffic (tolerance +${mib(RSS_RETURN_TOLERANCE)}); ` +
        `after a full GC: JS heap ${mib(heapStart.heapUsed)} -> ${mib(heapEnd.heapUsed)}, buffers ${mib(heapStart.arrayBuffers)} -> ${mib(heapEnd.arrayBuffers)} ` +
        `(tolerance +${mib(LIVE_MEMORY_TOLERANCE)})`,
    );
    expect(problems.slice(0, 20)).toEqual([]);
    expect(modes.size).toBe(8);
    expect(rssEnd).toBeLessThan(rssStart + RSS_RETURN_TOLERANCE);
    expect(heapEnd.heapUsed + heapEnd.arrayBuffers).toBeLessThan(heapStart.heapUsed + heapStart.arrayBuffers + LIVE_MEMORY_TOLERANCE);
    removeCapture(wstap.capturePath);
  });
});
