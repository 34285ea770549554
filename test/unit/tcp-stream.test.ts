import { describe, expect, it } from 'vitest';
import { ACK_GRACE_MS, TcpStream, type StreamSink } from '../../src/pcap/tcp-stream.js';

type Out = { data: string } | { gap: string; offset: number; bytes: number | null } | { fin: number };

function sink(out: Out[]): StreamSink {
  return {
    data: (bytes) => out.push({ data: bytes.toString() }),
    gap: (cause, offset, bytes) => out.push({ gap: cause, offset, bytes }),
    fin: (t) => out.push({ fin: t }),
  };
}

/** A stream whose SYN had sequence number 99: its first byte is 100. */
function started(max?: number): { stream: TcpStream; out: Out[]; s: StreamSink } {
  const stream = new TcpStream(max);
  stream.syn(99);
  const out: Out[] = [];
  return { stream, out, s: sink(out) };
}

const bytes = (text: string): Buffer => Buffer.from(text);
const seg = (stream: TcpStream, s: StreamSink, seq: number, text: string, fin = false, t = 0): void => stream.segment(seq, bytes(text), text.length, fin, t, 1, s);

describe('TcpStream', () => {
  it('in order: each byte once, then the FIN with its own packet time', () => {
    const { stream, out, s } = started();
    seg(stream, s, 100, 'abc');
    seg(stream, s, 103, 'def', true, 42);
    expect(out).toEqual([{ data: 'abc' }, { data: 'def' }, { fin: 42 }]);
    expect(stream.finished).toBe(true);
  });

  it('out of order: held until the hole fills, then delivered in order', () => {
    const { stream, out, s } = started();
    seg(stream, s, 106, 'ghi');
    seg(stream, s, 103, 'def');
    expect(out).toEqual([]);
    seg(stream, s, 100, 'abc');
    expect(out).toEqual([{ data: 'abc' }, { data: 'def' }, { data: 'ghi' }]);
    expect(stream.outOfOrder).toBe(2);
  });

  it('a retransmission is counted, not delivered again; an overlap delivers only its new bytes', () => {
    const { stream, out, s } = started();
    seg(stream, s, 100, 'abcd');
    seg(stream, s, 100, 'abcd');
    seg(stream, s, 102, 'cdEF');
    expect(out).toEqual([{ data: 'abcd' }, { data: 'EF' }]);
    expect(stream.retransmissions).toBe(1);
  });

  it('overlapping segments held out of order are trimmed when drained', () => {
    const { stream, out, s } = started();
    seg(stream, s, 104, 'efgh');
    seg(stream, s, 102, 'cdef');
    seg(stream, s, 100, 'ab');
    expect(out.map((o) => ('data' in o ? o.data : '?')).join('')).toBe('abcdefgh');
  });

  it('a hole the receiver acknowledged past is a gap for certain; what follows is delivered', () => {
    const { stream, out, s } = started();
    seg(stream, s, 100, 'abc');
    seg(stream, s, 110, 'xyz');
    stream.acknowledged(113, 5, 9, s);
    // A capture may hold the data a little after its ACK: not yet a hole.
    expect(out).toEqual([{ data: 'abc' }]);
    stream.tick(5 + ACK_GRACE_MS, s);
    expect(out).toEqual([{ data: 'abc' }, { gap: 'not-captured', offset: 3, bytes: 7 }, { data: 'xyz' }]);
    expect(stream.offset).toBe(13);
  });

  it('data that turns up within the grace after its ACK is no hole', () => {
    const { stream, out, s } = started();
    stream.acknowledged(103, 0, 1, s);
    seg(stream, s, 100, 'abc', false, 50);
    stream.tick(1000, s);
    expect(out).toEqual([{ data: 'abc' }]);
  });

  it('an acknowledgement of the FIN alone is not a missing byte', () => {
    const { stream, out, s } = started();
    seg(stream, s, 100, 'abc', true);
    stream.acknowledged(104, 5, 9, s);
    expect(out).toEqual([{ data: 'abc' }, { fin: 0 }]);
  });

  it('bytes acknowledged that no packet in the capture carried are a gap too', () => {
    const { stream, out, s } = started();
    seg(stream, s, 100, 'abc');
    stream.acknowledged(120, 5, 9, s);
    stream.tick(1000, s);
    seg(stream, s, 120, 'z');
    expect(out).toEqual([{ data: 'abc' }, { gap: 'not-captured', offset: 3, bytes: 17 }, { data: 'z' }]);
  });

  it('the out-of-order buffer is bounded: past it the hole is declared', () => {
    const { stream, out, s } = started(8);
    seg(stream, s, 110, 'ABCDE');
    seg(stream, s, 115, 'FGHIJ');
    expect(out).toEqual([{ gap: 'not-captured', offset: 0, bytes: 10 }, { data: 'ABCDE' }, { data: 'FGHIJ' }]);
  });

  it('a budget shared by streams bounds what they hold together', () => {
    const budget = { bytes: 0, max: 8 };
    const a = new TcpStream(100, budget);
    const b = new TcpStream(100, budget);
    a.syn(99);
    b.syn(99);
    const outA: Out[] = [];
    const outB: Out[] = [];
    seg(a, sink(outA), 110, 'ABCDE');
    seg(b, sink(outB), 110, 'FGHIJ');
    expect(outA).toEqual([]);
    expect(outB).toEqual([{ gap: 'not-captured', offset: 0, bytes: 10 }, { data: 'FGHIJ' }]);
    expect(budget.bytes).toBe(5);
  });

  it('flush at the end: held segments with their holes, then a FIN that came after a hole', () => {
    const { stream, out, s } = started();
    seg(stream, s, 105, 'fgh', true, 77);
    stream.flush(s);
    expect(out).toEqual([{ gap: 'not-captured', offset: 0, bytes: 5 }, { data: 'fgh' }, { fin: 77 }]);
  });

  it('a segment cut by the snap length: its held part, then a snaplen gap for the rest', () => {
    const { stream, out, s } = started();
    stream.segment(100, bytes('abc'), 10, false, 0, 1, s);
    seg(stream, s, 110, 'k');
    expect(out).toEqual([{ data: 'abc' }, { gap: 'snaplen', offset: 3, bytes: 7 }, { data: 'k' }]);
  });

  it('no SYN: the stream starts at the first segment, its beginning declared missing', () => {
    const stream = new TcpStream();
    const out: Out[] = [];
    seg(stream, sink(out), 5000, 'mid');
    expect(out).toEqual([{ gap: 'capture-began', offset: 0, bytes: null }, { data: 'mid' }]);
  });

  it('sequence numbers wrap at 2^32', () => {
    const stream = new TcpStream();
    stream.syn(0xfffffffd);
    const out: Out[] = [];
    const s = sink(out);
    seg(stream, s, 0x00000000, 'cd');
    seg(stream, s, 0xfffffffe, 'ab');
    seg(stream, s, 0xfffffffe, 'ab');
    expect(out).toEqual([{ data: 'ab' }, { data: 'cd' }]);
    expect(stream.retransmissions).toBe(1);
  });
});
