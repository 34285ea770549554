import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attributionOf, ConnectionTracker, type ConnectionSummary } from '../../src/analysis/connection-tracker.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { readPacketCaptureEvents } from '../../src/pcap/packet-capture-reader.js';
import { closeBody, frame } from '../support/frame-fixtures.js';
import { HANDSHAKE_REQUEST, HANDSHAKE_RESPONSE, TCP, TcpConversation, pcapFile, pcapngFile, type BuiltPacket, type PcapOptions } from '../support/pcap-builder.js';
import { ofKind } from '../support/ws-peers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-pcap-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let fileNumber = 0;

async function eventsOf(file: Buffer, serverPorts: number[] = []): Promise<{ events: CaptureEvent[]; notes: string[] }> {
  const p = path.join(dir, `${++fileNumber}.pcap`);
  fs.writeFileSync(p, file);
  const events: CaptureEvent[] = [];
  const notes: string[] = [];
  for await (const event of readPacketCaptureEvents([p], { serverPorts, note: (n) => notes.push(n) })) events.push(event);
  return { events, notes };
}

function fold(events: CaptureEvent[]): ConnectionSummary[] {
  const tracker = new ConnectionTracker();
  for (const e of events) tracker.apply(e);
  return [...tracker.closed, ...tracker.live];
}

const client = { address: '127.0.0.1', port: 51000 };
const server = { address: '127.0.0.1', port: 8065 };
const mask = new Uint8Array([1, 2, 3, 4]);

/** A WebSocket conversation: handshake, a message each way, a close frame from `closer` answered, FINs. */
function webSocketConversation(closer: 'client' | 'server' = 'client', segmentSize = 1400): TcpConversation {
  const c = new TcpConversation(client, server);
  c.handshake();
  c.send('client', HANDSHAKE_REQUEST, segmentSize);
  c.at(2).send('server', HANDSHAKE_RESPONSE, segmentSize);
  c.at(10).send('client', frame({ opcode: 1, payload: Buffer.from('hello from the client'), mask }), segmentSize);
  c.at(10).send('server', frame({ opcode: 1, payload: Buffer.from('hello from the app, a little longer') }), segmentSize);
  const other = closer === 'client' ? 'server' : 'client';
  const masked = (side: 'client' | 'server'): Uint8Array | false => (side === 'client' ? mask : false);
  c.at(1000).send(closer, frame({ opcode: 8, payload: closeBody(1000, 'bye'), mask: masked(closer) }), segmentSize);
  c.at(1).send(other, frame({ opcode: 8, payload: closeBody(1000, 'bye'), mask: masked(other) }), segmentSize);
  c.at(1).fin('server');
  c.at(1).fin('client');
  c.ack('server');
  return c;
}

const frames = (events: CaptureEvent[]): Array<[string, number, number, number]> => ofKind(events, 'ws.frame').map((f) => [f.side, f.index, f.opcode, f.length]);

describe('a WebSocket connection from a synthetic capture', () => {
  it('gives the events a live session records, in order, with who closed first', async () => {
    const c = webSocketConversation('client');
    const { events } = await eventsOf(pcapFile(c.packets));
    expect(events[0]).toMatchObject({ kind: 'session.start', t: c.packets[0]?.t });
    expect(events.at(-1)).toMatchObject({ kind: 'session.end', reason: 'end of the packet capture' });
    expect(events.filter((e) => 'conn' in e).map((e) => e.kind)).toEqual([
      'conn.open',
      'ws.handshake.request',
      'ws.handshake.response',
      'ws.frame',
      'ws.message',
      'ws.frame',
      'ws.message',
      'ws.frame',
      'ws.frame',
      'tcp.fin',
      'tcp.fin',
      'conn.close',
    ]);
    expect(events[1]).toMatchObject({ kind: 'conn.open', remoteAddress: '127.0.0.1', remotePort: 51000, localPort: 8065 });
    expect(ofKind(events, 'ws.handshake.request')[0]).toMatchObject({ url: '/ws?pcap=1', headLength: HANDSHAKE_REQUEST.length });
    expect(ofKind(events, 'ws.handshake.response')[0]).toMatchObject({ statusCode: 101, upgraded: true, waitMs: 2.1 });
    expect(frames(events)).toEqual([
      ['client', 0, 1, 21],
      ['upstream', 0, 1, 35],
      ['client', 1, 8, 5],
      ['upstream', 1, 8, 5],
    ]);
    expect(Buffer.from(ofKind(events, 'ws.message')[0]?.preview ?? '', 'base64').toString()).toBe('hello from the client');
    expect(ofKind(events, 'tcp.fin').map((e) => e.side)).toEqual(['upstream', 'client']);
    // Counted as live (the byte relay counts every byte, heads included; see fault-matrix.test.ts).
    expect(ofKind(events, 'conn.close')[0]).toMatchObject({ bytes: { fromClient: HANDSHAKE_REQUEST.length + 27 + 11, fromUpstream: HANDSHAKE_RESPONSE.length + 37 + 7 } });
    const [summary] = fold(events);
    expect(attributionOf(summary as ConnectionSummary)).toMatchObject({ closedBy: 'client', first: { kind: 'close-frame', side: 'client', code: 1000 } });
  });

  it('reordered, repeated and overlapping segments give the same frames and verdict', async () => {
    const c = webSocketConversation('server', 9);
    const reference = await eventsOf(pcapFile(c.packets));
    // Swap neighbours, send some twice, and add overlapping copies (the first half of the next segment again).
    const shuffled: BuiltPacket[] = [];
    const ps = c.packets;
    for (let i = 0; i < ps.length; i++) {
      const here = ps[i] as BuiltPacket;
      const next = ps[i + 1];
      if (i > 3 && i % 3 === 0 && next && ps.indexOf(next) === i + 1) {
        shuffled.push({ ...next, t: here.t }, here, here);
        i++;
      } else shuffled.push(here);
    }
    const { events } = await eventsOf(pcapFile(shuffled));
    expect(frames(events)).toEqual(frames(reference.events));
    expect(ofKind(events, 'tcp.gap')).toEqual([]);
    expect(attributionOf(fold(events)[0] as ConnectionSummary)).toMatchObject({ closedBy: 'upstream' });
  });

  it('a hole inside one frame payload: the next frame starts where that one ends, so decoding resumes there', async () => {
    const c = new TcpConversation(client, server);
    c.handshake();
    c.send('client', HANDSHAKE_REQUEST);
    c.send('server', HANDSHAKE_RESPONSE);
    const lost = c.send('server', frame({ opcode: 2, payload: Buffer.alloc(3000, 7) }), 1000);
    c.send('server', frame({ opcode: 1, payload: Buffer.from('after the hole') }));
    c.send('client', frame({ opcode: 1, payload: Buffer.from('still decoded'), mask }));
    c.at(300).ack('client');
    c.fin('client');
    c.fin('server');
    const { events } = await eventsOf(pcapFile(c.packets.filter((p) => p !== lost[1])));
    expect(ofKind(events, 'tcp.gap')).toEqual([expect.objectContaining({ side: 'upstream', cause: 'not-captured', offset: HANDSHAKE_RESPONSE.length + 1000, bytes: 1000, decoding: 'resumed' })]);
    // The app's frames wait behind the hole until it is certain (the client acknowledged past it).
    expect(frames(events)).toEqual([
      ['client', 0, 1, 13],
      ['upstream', 0, 2, 3000],
      ['upstream', 1, 1, 14],
    ]);
    const after = ofKind(events, 'ws.message').find((m) => m.side === 'upstream' && m.firstFrame === 1);
    expect(Buffer.from(after?.preview ?? '', 'base64').toString()).toBe('after the hole');
    // No close frame can hide inside a frame: the verdict is not withheld.
    expect(fold(events)[0]?.missing).toBeNull();
  });

  it('a hole across a frame boundary: that side is not decoded further (no cut frame), the other side is', async () => {
    const c = new TcpConversation(client, server);
    c.handshake();
    c.send('client', HANDSHAKE_REQUEST);
    c.send('server', HANDSHAKE_RESPONSE);
    // Two frames in one write, cut into 500-byte segments: the second segment holds the end of one and the start of the other.
    const lost = c.send('server', Buffer.concat([frame({ opcode: 2, payload: Buffer.alloc(700, 7) }), frame({ opcode: 1, payload: Buffer.alloc(600, 0x61) })]), 500);
    c.send('client', frame({ opcode: 1, payload: Buffer.from('still decoded'), mask }));
    c.at(300).ack('client');
    c.fin('client');
    c.fin('server');
    const { events } = await eventsOf(pcapFile(c.packets.filter((p) => p !== lost[1])));
    expect(ofKind(events, 'tcp.gap')).toEqual([expect.objectContaining({ side: 'upstream', bytes: 500, decoding: 'stopped' })]);
    expect(frames(events)).toEqual([['client', 0, 1, 13]]);
    expect(ofKind(events, 'ws.frame.cut')).toEqual([]);
    expect(ofKind(events, 'conn.close')).toHaveLength(1);
    expect(fold(events)[0]?.missing).not.toBeNull();
  });

  it('a hole before a FIN found only at the end of the capture: the gap, the FIN, and the close', async () => {
    const c = webSocketConversation('client');
    // Packet 8: the client's close frame.
    const { events } = await eventsOf(pcapFile(c.packets.filter((_, i) => i !== 7)));
    expect(ofKind(events, 'tcp.gap')).toEqual([expect.objectContaining({ side: 'client', cause: 'not-captured', bytes: 11, packet: 8 })]);
    expect(ofKind(events, 'tcp.fin').map((e) => e.side).sort()).toEqual(['client', 'upstream']);
    expect(ofKind(events, 'conn.close')).toHaveLength(1);
    // The client's close frame was in the hole: who closed first is not judged.
    expect(attributionOf(fold(events)[0] as ConnectionSummary)).toMatchObject({ closedBy: null, undecided: expect.stringMatching(/not in the capture/) });
  });

  it('a snap length that cuts payloads: snaplen gaps instead of garbage frames, and a note', async () => {
    const c = webSocketConversation('client');
    const { events, notes } = await eventsOf(pcapFile(c.packets, { snapLength: 120 }));
    const gaps = ofKind(events, 'tcp.gap');
    expect(gaps.length).toBeGreaterThan(0);
    expect(gaps.every((g) => g.cause === 'snaplen')).toBe(true);
    expect(ofKind(events, 'ws.protocol-error')).toEqual([]);
    expect(notes.some((n) => /cut by the capture's snap length.*-s 0/.test(n))).toBe(true);
    // The FINs are in the headers, which the snap length kept: who ended TCP is still known.
    expect(ofKind(events, 'tcp.fin').map((e) => e.side)).toEqual(['upstream', 'client']);
  });

  for (const [name, options] of [
    ['nanosecond pcap', { nano: true }],
    ['big-endian pcap', { bigEndian: true }],
    ['Linux cooked v2', { link: 'sll2' }],
    ['Linux cooked v1', { link: 'sll' }],
    ['VLAN-tagged Ethernet', { link: 'ethernet-vlan' }],
    ['BSD loopback', { link: 'null' }],
    ['raw IP', { link: 'raw' }],
  ] as Array<[string, PcapOptions]>) {
    it(`${name}: the same frames`, async () => {
      const c = webSocketConversation('client');
      const { events } = await eventsOf(pcapFile(c.packets, options));
      expect(frames(events)).toHaveLength(4);
      expect(ofKind(events, 'conn.close')).toHaveLength(1);
    });
  }
});

describe('hostile packets', () => {
  it('random bytes flipped in the packets (headers and payloads) never stop the reading, and it ends with session.end', async () => {
    const c = webSocketConversation('client', 40);
    const clean = pcapFile(c.packets);
    let state = 42;
    const random = (n: number): number => {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      return state % n;
    };
    for (let round = 0; round < 60; round++) {
      const file = Buffer.from(clean);
      // Record headers (16 bytes before each packet) are left alone: a damaged length is refused, as tested elsewhere.
      const spans: Array<[number, number]> = [];
      for (let o = 24; o < file.length; ) {
        const length = file.readUInt32LE(o + 8);
        spans.push([o + 16, length]);
        o += 16 + length;
      }
      for (let k = 0; k < 20; k++) {
        const [start, length] = spans[random(spans.length)] as [number, number];
        file[start + random(length)] = random(256);
      }
      const { events, notes } = await eventsOf(file);
      expect(events.at(-1)?.kind).toBe('session.end');
      // Containment is the last resort: garbage is decoded or skipped without a fault of ours.
      expect(notes.filter((n) => /internal fault/.test(n))).toEqual([]);
    }
  });
});

describe('the files of a tcpdump ring (-C/-W)', () => {
  it('are read in the order of their first packets, a connection running on from one file into the next', async () => {
    const c = webSocketConversation('client');
    const one = await eventsOf(pcapFile(c.packets));
    const later = path.join(dir, 'ring0.pcap');
    const earlier = path.join(dir, 'ring1.pcap');
    fs.writeFileSync(later, pcapFile(c.packets.slice(9)));
    fs.writeFileSync(earlier, pcapFile(c.packets.slice(0, 9)));
    const events: CaptureEvent[] = [];
    const notes: string[] = [];
    for await (const e of readPacketCaptureEvents([later, earlier], { serverPorts: [], note: (n) => notes.push(n) })) events.push(e);
    const body = (list: CaptureEvent[]): string[] => list.filter((e) => 'conn' in e).map((e) => JSON.stringify(e));
    expect(body(events)).toEqual(body(one.events));
    expect(notes[0]).toBe(`read in the order of their first packets: ${earlier}, ${later}`);
  });
});

describe('what only packets show', () => {
  it('pcapng with two interfaces (IPv6 on cooked v2, IPv4 on VLAN Ethernet) and a drop count', async () => {
    const a = webSocketConversation('client');
    const b = new TcpConversation({ address: 'fd00::7', port: 52000 }, { address: 'fd00::1', port: 8065 }, 1_700_000_000_050);
    b.handshake();
    b.send('client', HANDSHAKE_REQUEST);
    b.send('server', HANDSHAKE_RESPONSE);
    b.rst('server');
    const merged = [...a.packets.map((packet) => ({ iface: 0, packet })), ...b.packets.map((packet) => ({ iface: 1, packet }))].sort((x, y) => x.packet.t - y.packet.t);
    const { events, notes } = await eventsOf(pcapngFile([{ link: 'ethernet-vlan' }, { link: 'sll2', resolutionDigits: 9 }], merged, [0, 3]));
    const opens = ofKind(events, 'conn.open');
    expect(opens.map((o) => o.remoteAddress).sort()).toEqual(['127.0.0.1', 'fd00::7']);
    const v6 = opens.find((o) => o.remoteAddress === 'fd00::7')?.conn;
    expect(ofKind(events, 'tcp.rst')).toEqual([expect.objectContaining({ conn: v6, side: 'upstream' })]);
    expect(ofKind(events, 'capture.gap')).toEqual([expect.objectContaining({ code: 'packets-dropped', lostEvents: 3 })]);
    expect(notes.some((n) => /interface 1: 3 packets were dropped/.test(n))).toBe(true);
  });

  it('a connection open before the capture began: --port names the server; without it the guess is said', async () => {
    const c = webSocketConversation('server');
    const tail = c.packets.slice(8);
    const named = await eventsOf(pcapFile(tail), [8065]);
    expect(ofKind(named.events, 'conn.open')[0]).toMatchObject({ remotePort: 51000, localPort: 8065 });
    expect(ofKind(named.events, 'tcp.gap')[0]).toMatchObject({ cause: 'capture-began', bytes: null });
    expect(ofKind(named.events, 'tcp.fin').map((e) => e.side)).toEqual(['upstream', 'client']);
    expect(named.notes.some((n) => /was open before the capture began/.test(n))).toBe(false);
    const guessed = await eventsOf(pcapFile(tail));
    expect(guessed.notes.some((n) => /open before the capture began \(no SYN\): taking port 8065 \(the lower\) as the server's; name the server port with --port/.test(n))).toBe(true);
    // Another port named: the connection is not read at all.
    expect(ofKind((await eventsOf(pcapFile(c.packets), [9999])).events, 'conn.open')).toEqual([]);
  });

  it('a connection that is not HTTP (TLS on the front leg) is read as TCP only: open, FIN, RST, bytes, close', async () => {
    const c = new TcpConversation({ address: '198.51.100.9', port: 61000 }, { address: '10.0.0.1', port: 443 });
    c.handshake();
    c.send('client', Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]));
    c.send('server', Buffer.from([0x16, 0x03, 0x03, 0x00, 0x02, 9, 9]));
    c.at(50).rst('client');
    const { events, notes } = await eventsOf(pcapFile(c.packets));
    expect(events.filter((e) => 'conn' in e).map((e) => e.kind)).toEqual(['conn.open', 'tcp.rst', 'conn.close']);
    expect(ofKind(events, 'conn.open')[0]).toMatchObject({ mode: 'tcp', remoteAddress: '198.51.100.9', localPort: 443 });
    expect(ofKind(events, 'conn.close')[0]?.bytes).toEqual({ fromClient: 10, fromUpstream: 7 });
    expect(notes.some((n) => /#1: the first bytes are a TLS handshake \(the front leg\?\): read as TCP only/.test(n))).toBe(true);
    expect(attributionOf(fold(events)[0] as ConnectionSummary)).toMatchObject({ closedBy: 'client', first: { kind: 'rst' } });
  });

  it('a zero window (the app not reading) and retransmissions before an RST', async () => {
    const c = new TcpConversation(client, server);
    c.handshake();
    c.send('client', HANDSHAKE_REQUEST);
    c.send('server', HANDSHAKE_RESPONSE);
    c.at(5).ack('server', 0);
    const probe = c.send('client', frame({ opcode: 1, payload: Buffer.from('x'), mask }));
    c.at(200).raw('client', (probe[0] as BuiltPacket).ip.readUInt32BE(24), frame({ opcode: 1, payload: Buffer.from('x'), mask }));
    c.at(400).raw('client', (probe[0] as BuiltPacket).ip.readUInt32BE(24), frame({ opcode: 1, payload: Buffer.from('x'), mask }));
    c.at(100).rst('server');
    const { events } = await eventsOf(pcapFile(c.packets));
    expect(ofKind(events, 'tcp.zero-window')).toEqual([expect.objectContaining({ side: 'upstream', reopened: false, probes: 3 })]);
    const window = ofKind(events, 'tcp.zero-window')[0];
    expect((window?.t ?? 0) - (window?.since ?? 0)).toBeCloseTo(700.4, 1);
    expect(ofKind(events, 'tcp.rst')[0]).toMatchObject({ side: 'upstream', retransmissionsBefore: { client: 2, upstream: 0 } });
  });
});

describe('plain HTTP and refused handshakes', () => {
  it('keep-alive exchanges (Content-Length, chunked) become http.request/http.response pairs', async () => {
    const c = new TcpConversation(client, server);
    c.handshake();
    c.send('client', 'POST /api/a HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello');
    c.at(3).send('server', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    c.at(1).send('client', 'GET /api/b HTTP/1.1\r\nHost: app\r\n\r\n');
    c.at(4).send('server', 'HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno!\r\n0\r\n\r\n', 20);
    c.fin('client');
    c.fin('server');
    const { events } = await eventsOf(pcapFile(c.packets));
    expect(ofKind(events, 'http.request').map((e) => [e.exchange, e.method, e.url])).toEqual([
      [1, 'POST', '/api/a'],
      [2, 'GET', '/api/b'],
    ]);
    expect(ofKind(events, 'http.response').map((e) => [e.exchange, e.statusCode, e.requestBodyBytes, e.responseBodyBytes, e.complete])).toEqual([
      [1, 200, 5, 2, true],
      [2, 404, 0, 3, true],
    ]);
    expect(ofKind(events, 'http.response')[0]?.ttfbMs).toBeCloseTo(3.1, 3);
  });

  it('a refused handshake: the answer and the start of its body, as the live relay records them', async () => {
    const c = new TcpConversation(client, server);
    c.handshake();
    c.send('client', HANDSHAKE_REQUEST);
    c.send('server', 'HTTP/1.1 403 Forbidden\r\nContent-Length: 19\r\n\r\nOrigin not allowed\n');
    c.fin('server');
    c.fin('client');
    const { events } = await eventsOf(pcapFile(c.packets));
    expect(ofKind(events, 'ws.handshake.response')[0]).toMatchObject({ statusCode: 403, upgraded: false });
    expect(Buffer.from(ofKind(events, 'ws.handshake.body')[0]?.preview ?? '', 'base64').toString()).toBe('Origin not allowed\n');
  });

  it('a request the app leaves unanswered before its FIN: http.error UPSTREAM_CLOSED, as the live relay records it', async () => {
    const c = new TcpConversation(client, server);
    c.handshake();
    c.send('client', 'GET /slow HTTP/1.1\r\nHost: app\r\n\r\n');
    c.at(5).fin('server');
    c.fin('client');
    const { events } = await eventsOf(pcapFile(c.packets));
    expect(ofKind(events, 'http.error')).toEqual([expect.objectContaining({ exchange: 1, stage: 'response', code: 'UPSTREAM_CLOSED', answeredStatus: null })]);
    expect(ofKind(events, 'http.error')[0]?.message).toMatch(/upstream closed the connection \(FIN\) 5(\.\d+)? ms after request 1 arrived/);
  });

  it("a hole in the app's answer: that side is not parsed further; the answer is recorded incomplete and nothing after it is claimed unanswered", async () => {
    const c = new TcpConversation(client, server);
    c.handshake();
    c.send('client', 'GET /a HTTP/1.1\r\nHost: app\r\n\r\nGET /b HTTP/1.1\r\nHost: app\r\n\r\n');
    const lost = c.send('server', `HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n${'x'.repeat(3000)}`, 1000);
    c.at(300).ack('client');
    c.fin('client');
    c.fin('server');
    const { events } = await eventsOf(pcapFile(c.packets.filter((p) => p !== lost[1])));
    expect(ofKind(events, 'tcp.gap')).toEqual([expect.objectContaining({ side: 'upstream', bytes: 1000, decoding: 'stopped' })]);
    expect(ofKind(events, 'http.request').map((e) => e.exchange)).toEqual([1, 2]);
    expect(ofKind(events, 'http.response').map((e) => [e.exchange, e.statusCode, e.complete])).toEqual([[1, 200, false]]);
    // Exchange 2's answer may have been behind the hole: no error is invented for it.
    expect(ofKind(events, 'http.error')).toEqual([]);
    expect(ofKind(events, 'conn.close')).toHaveLength(1);
  });

  it('the capture ends with an exchange open: nothing is recorded as cut short or unanswered, and no close is invented', async () => {
    const c = new TcpConversation(client, server);
    c.handshake();
    c.send('client', 'GET /a HTTP/1.1\r\nHost: app\r\n\r\nGET /b HTTP/1.1\r\nHost: app\r\n\r\n');
    c.at(2).send('server', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello');
    c.ack('client');
    const { events } = await eventsOf(pcapFile(c.packets));
    expect(ofKind(events, 'http.request')).toHaveLength(2);
    expect(ofKind(events, 'http.response')).toEqual([]);
    expect(ofKind(events, 'http.error')).toEqual([]);
    expect(ofKind(events, 'conn.close')).toEqual([]);
  });

  it('an RST flag with data still in flight: the data first, then the reset, then the close', async () => {
    const c = new TcpConversation(client, server);
    c.handshake();
    c.send('client', HANDSHAKE_REQUEST);
    c.send('server', HANDSHAKE_RESPONSE);
    c.raw('client', c.nextSeq('client') + 0, frame({ opcode: 1, payload: Buffer.from('late'), mask }), TCP.PSH | TCP.ACK);
    c.rst('server');
    const { events } = await eventsOf(pcapFile(c.packets));
    expect(events.filter((e) => 'conn' in e).map((e) => e.kind).slice(-4)).toEqual(['ws.frame', 'ws.message', 'tcp.rst', 'conn.close']);
    expect(attributionOf(fold(events)[0] as ConnectionSummary)).toMatchObject({ closedBy: 'upstream', first: { kind: 'rst' } });
  });
});
