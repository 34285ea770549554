import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HttpConversation, type ConversationSide, type ExchangeHandlers } from '../../src/wire/http-exchange-pairing.js';

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Every fact a conversation reports, as short comparable lines (times left out unless asked). */
function recorder(): { handlers: ExchangeHandlers; facts: string[]; opaque: Record<ConversationSide, string> } {
  const facts: string[] = [];
  const opaque: Record<ConversationSide, string> = { client: '', upstream: '' };
  let body = '';
  const handlers: ExchangeHandlers = {
    request: (n, head, _t, upgrade) => facts.push(`req ${n} ${head.method} ${head.target}${upgrade ? ' upgrade' : ''} ${JSON.stringify(head.rawHeaders)}`),
    requestEnd: (n, b) => facts.push(`req-end ${n} ${b}`),
    interim: (n, head) => facts.push(`interim ${n} ${head.statusCode}`),
    response: (n, head) => {
      body = '';
      facts.push(`res ${n} ${head.statusCode} ${JSON.stringify(head.rawHeaders)}`);
    },
    responseBody: (_n, data) => {
      body += data.toString('latin1');
    },
    responseEnd: (n, b) => facts.push(`res-end ${n} ${b} wire=${JSON.stringify(body)}`),
    anomaly: (a) => facts.push(`anomaly ${a.side} ${a.exchange} ${a.code} @${a.offset}`),
    switched: (n) => facts.push(`switched ${n}`),
    opaque: (side, data) => {
      opaque[side] += data.toString('latin1');
    },
  };
  return { handlers, facts, opaque };
}

/** Feeds the client's then the upstream's bytes, each cut at the given sizes (the last repeats). */
function converse(client: string, upstream: string, cut: number[] = [1 << 30], end = false) {
  const r = recorder();
  const conversation = new HttpConversation(r.handlers);
  feed(conversation, 'client', bytes(client), cut);
  feed(conversation, 'upstream', bytes(upstream), cut);
  if (end) conversation.finish('upstream', 1);
  return { ...r, conversation };
}

function feed(conversation: HttpConversation, side: ConversationSide, data: Buffer, cut: number[]): void {
  let at = 0;
  let i = 0;
  while (at < data.length) {
    const size = Math.max(1, cut[Math.min(i++, cut.length - 1)] ?? 1);
    conversation.push(side, data.subarray(at, at + size), at);
    at += size;
  }
}

const PIPELINED =
  'GET /a HTTP/1.1\r\nhOsT: example\r\nX-Dup: 1\r\nX-Dup: 2\r\nx-weird:   spaced  \r\n\r\n' +
  'POST /b HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n' +
  'PUT /c HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello';
const ANSWERS =
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' +
  'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;name="v"\r\nmade\r\n0\r\nServer-Timing: x;dur=1\r\n\r\n' +
  'HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n';

describe('HTTP conversation (passive, both directions)', () => {
  it('numbers pipelined requests, matches answers in order and frames Content-Length, chunked with extensions and trailers, and 204', () => {
    const { facts } = converse(PIPELINED, ANSWERS);
    expect(facts).toEqual([
      'req 1 GET /a [["hOsT","example"],["X-Dup","1"],["X-Dup","2"],["x-weird","spaced"]]',
      'req-end 1 0',
      'req 2 POST /b [["Host","example"],["Transfer-Encoding","chunked"]]',
      'req-end 2 3',
      'req 3 PUT /c [["Content-Length","5"]]',
      'req-end 3 5',
      'res 1 200 [["Content-Length","2"]]',
      'res-end 1 2 wire="ok"',
      'res 2 201 [["Transfer-Encoding","chunked"]]',
      'res-end 2 4 wire="4;name=\\"v\\"\\r\\nmade\\r\\n0\\r\\nServer-Timing: x;dur=1\\r\\n\\r\\n"',
      'res 3 204 [["Content-Length","99"]]',
      'res-end 3 0 wire=""',
    ]);
  });

  it('reports the same facts however the bytes are cut', () => {
    const whole = converse(PIPELINED, ANSWERS).facts;
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }), (cut) => {
        expect(converse(PIPELINED, ANSWERS, cut).facts).toEqual(whole);
      }),
      { numRuns: 200 },
    );
  });

  it('reads no body after HEAD or 304 whatever the headers say, and goes on with the next answer', () => {
    const { facts } = converse(
      'HEAD /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\nGET /z HTTP/1.1\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz',
    );
    expect(facts.filter((f) => f.startsWith('res'))).toEqual([
      'res 1 200 [["Content-Length","10"]]',
      'res-end 1 0 wire=""',
      'res 2 304 [["Content-Length","10"]]',
      'res-end 2 0 wire=""',
      'res 3 200 [["Content-Length","1"]]',
      'res-end 3 1 wire="z"',
    ]);
  });

  it('keeps 100 Continue and 103 apart from the final answer of the same exchange', () => {
    const { facts } = converse(
      'POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc',
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    );
    expect(facts.slice(2)).toEqual(['interim 1 100', 'interim 1 103', 'res 1 200 [["Content-Length","0"]]', 'res-end 1 0 wire=""']);
  });

  it('reads an answer without length until the upstream closes', () => {
    const { facts, conversation } = converse('GET / HTTP/1.0\r\n\r\n', 'HTTP/1.0 200 OK\r\n\r\nall of it');
    expect(facts.at(-1)).toBe('res 1 200 []');
    expect(conversation.answering).toBe(1);
    expect(conversation.finish('upstream', 5)).toBe('between-messages');
    expect(facts.at(-1)).toBe('res-end 1 9 wire="all of it"');
  });

  it('records CL+TE and frames by Transfer-Encoding; conflicting lengths stop parsing the rest of that side', () => {
    const te = converse('POST /s HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nGET /n HTTP/1.1\r\n\r\n', '');
    expect(te.facts).toEqual([
      'req 1 POST /s [["Content-Length","4"],["Transfer-Encoding","chunked"]]',
      'anomaly client 1 CL_AND_TE @0',
      'req-end 1 1',
      'req 2 GET /n []',
      'req-end 2 0',
    ]);
    const cl = converse('POST /s HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcdeGET / HTTP/1.1\r\n\r\n', '');
    expect(cl.facts).toEqual(['req 1 POST /s [["Content-Length","4"],["Content-Length","5"]]', 'anomaly client 1 CONFLICTING_CONTENT_LENGTH @0']);
    expect(cl.opaque.client).toBe('abcdeGET / HTTP/1.1\r\n\r\n');
  });

  it('after a 101 hands both sides over as opaque, the client bytes held behind the upgrade request included', () => {
    const { facts, opaque } = converse(
      'GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00early',
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi',
      [7],
    );
    expect(facts).toEqual([
      'req 1 GET /ws upgrade [["Connection","Upgrade"],["Upgrade","websocket"]]',
      'req-end 1 0',
      'res 1 101 [["Upgrade","websocket"],["Connection","Upgrade"]]',
      'switched 1',
      'res-end 1 0 wire=""',
    ]);
    expect(opaque).toEqual({ client: '\x81\x00early', upstream: '\x81\x02hi' });
  });

  it('after a refused upgrade parses the held bytes as the next request (keep-alive)', () => {
    const { facts, opaque } = converse(
      'GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nGET /next HTTP/1.1\r\n\r\n',
      'HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
    );
    expect(facts).toContain('req 2 GET /next []');
    expect(facts.at(-1)).toBe('res-end 2 0 wire=""');
    expect(opaque).toEqual({ client: '', upstream: '' });
  });

  it('a head it cannot parse, or an answer nobody asked for, is an anomaly and the rest of that side is opaque', () => {
    const bad = converse('GET / HTTP/1.1\r\n\r\nNOT HTTP AT ALL\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\nmore');
    expect(bad.facts).toContain('anomaly client null HEAD_REJECTED @18');
    expect(bad.facts).toContain('anomaly upstream null RESPONSE_WITHOUT_REQUEST @38');
    expect(bad.opaque.upstream).toBe('more');
  });

  it('says where a side stopped: between messages, in a head, in a body', () => {
    expect(converse('GET / HTTP/1.1\r\n', '').conversation.finish('client', 1)).toBe('in-head');
    expect(converse('PUT / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab', '').conversation.finish('client', 1)).toBe('in-body');
    const waiting = converse('GET / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    expect(waiting.conversation.finish('upstream', 1)).toBe('between-messages');
    expect(waiting.conversation.unanswered).toEqual([2]);
  });

  it('says where each request head began, where an incomplete one began, and which answers are still owed', () => {
    const offsets: number[] = [];
    const r = recorder();
    const conversation = new HttpConversation({ ...r.handlers, request: (_n, _head, _t, _upgrade, offset) => offsets.push(offset) });
    const first = 'GET /1 HTTP/1.1\r\n\r\n';
    const second = 'POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc';
    conversation.push('client', bytes(`${first}\r\n${second}GET /3 HT`), 0);
    expect(offsets).toEqual([0, first.length + 2]);
    expect(conversation.requestHeadStart).toBe(first.length + 2 + second.length);
    expect([conversation.unansweredCount, conversation.oldestUnanswered, conversation.answering]).toEqual([2, 1, null]);
    conversation.push('client', bytes('TP/1.1\r\n\r\n'), 0);
    expect(conversation.requestHeadStart).toBeNull();
    expect(conversation.unansweredCount).toBe(3);
    conversation.push('upstream', bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no'), 0);
    expect([conversation.unansweredCount, conversation.oldestUnanswered, conversation.answering]).toEqual([2, 2, 1]);
    conversation.push('upstream', bytes('k'), 0);
    expect(conversation.answering).toBeNull();
  });
});
