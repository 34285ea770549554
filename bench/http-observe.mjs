// npm run build && node bench/http-observe.mjs (issue 17): what observing one
// plain HTTP exchange costs in-process, on the real path (HttpTap through
// ConnectionContext into ProxySession.record: capture line, fold, findings,
// log line), with no sockets: the part of scenario (e)'s CPU per request that
// is wstap's own. Not part of the tests or of `npm run bench`.
//
// The exchange is (e)'s: a POST with a 100 B body and its echoed answer, on
// keep-alive connections of EXCHANGES_PER_CONNECTION exchanges each. The
// capture goes to a file in the temporary directory, the log to /dev/null
// (JSON, at WSTAP_LOG_LEVEL, default info). Environment: WSTAP_BENCH_RUNS
// (rounds, default 7), WSTAP_BENCH_EXCHANGES (per round, default 200000),
// WSTAP_BENCH_NO_CAPTURE=1 (no capture file).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ProxySession } from '../dist/cli/proxy-session.js';
import { createLogger } from '../dist/log.js';
import { ConnectionContext } from '../dist/relay/connection-context.js';
import { HttpTap } from '../dist/relay/http-tap.js';
import { parseTarget } from '../dist/relay/target.js';
import { envNumber, median } from './util.mjs';

const EXCHANGES_PER_CONNECTION = 100;
const body = 'x'.repeat(100);
const request = Buffer.from(`POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8066\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 'latin1');
const response = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nDate: Wed, 02 Dec 2026 13:32:33 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 'latin1');

const runs = Math.round(envNumber('WSTAP_BENCH_RUNS', 7));
const exchanges = Math.round(envNumber('WSTAP_BENCH_EXCHANGES', 200_000));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-http-observe-'));
const logFd = fs.openSync('/dev/null', 'w');
const logger = createLogger({ level: process.env.WSTAP_LOG_LEVEL ?? 'info', format: 'json', fd: logFd });
const session = await ProxySession.start({
  mode: 'http',
  listen: { kind: 'tcp', host: '127.0.0.1', port: 0 },
  target: parseTarget('http://127.0.0.1:9', 'http'),
  insecure: false,
  previewLimit: 256,
  capturePath: process.env.WSTAP_BENCH_NO_CAPTURE === '1' ? null : path.join(tmp, 'capture.jsonl'),
  overwriteCapture: true,
  minFreeBytes: 0,
  logger,
  drainSeconds: 0,
});

let conn = 0;
function round() {
  const t0 = performance.now();
  for (let done = 0; done < exchanges; done += EXCHANGES_PER_CONNECTION) {
    const ctx = new ConnectionContext(++conn, session.clock, session);
    session.record({ kind: 'conn.open', t: ctx.openedAt, conn: ctx.id, mode: 'http', remoteAddress: '127.0.0.1', remotePort: 40000, localPort: 8066 });
    const tap = new HttpTap(ctx, { previewLimit: 256 });
    for (let i = 0; i < EXCHANGES_PER_CONNECTION; i++) {
      let t = ctx.now();
      tap.observe('client', request, t, ctx.lastByteAt.client);
      ctx.lastByteAt.client = t;
      t = ctx.now();
      tap.observe('upstream', response, t, ctx.lastByteAt.upstream);
      ctx.lastByteAt.upstream = t;
    }
    ctx.recordFin('client');
    ctx.recordFin('upstream');
    ctx.recordClose();
  }
  return ((performance.now() - t0) * 1000) / exchanges;
}

const results = [];
for (let r = 0; r < runs; r++) {
  results.push(round());
  // Let the capture's and the log's writes go out between rounds, as the event loop would under load.
  await new Promise((resolve) => setTimeout(resolve, 200));
  console.log(`round ${r + 1}: ${results.at(-1).toFixed(2)} µs per exchange`);
}
console.log(`median ${median(results).toFixed(2)} µs per exchange observed (${exchanges} exchanges a round, ${runs} rounds)`);
await session.stop('signal');
fs.rmSync(tmp, { recursive: true, force: true });
