// Generates a large capture (default 1 GiB: many WebSocket connections open at
// once, frames and messages interleaved) and exports it to HAR, reporting the
// export's peak resident memory. Usage: node bench/export-memory.mjs [MiB]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const targetBytes = Number(process.argv[2] ?? 1024) * 1024 * 1024;
const dir = path.join(root, 'bench', '.tmp');
fs.mkdirSync(dir, { recursive: true });
const capture = path.join(dir, 'big-capture.jsonl');
const har = path.join(dir, 'big-capture.har');
fs.rmSync(har, { force: true });

const CONNS = 200;
const t0 = Date.now() - 3_600_000;
const fd = fs.openSync(capture, 'w', 0o600);
let written = 0;
let batch = [];
const out = (event) => {
  batch.push(JSON.stringify(event));
  if (batch.length >= 5000) flush();
};
const flush = () => {
  const text = batch.join('\n') + '\n';
  fs.writeSync(fd, text);
  written += Buffer.byteLength(text);
  batch = [];
};
fs.writeSync(fd, JSON.stringify({ format: 'wstap-capture', version: 1, createdBy: 'bench' }) + '\n');
out({ kind: 'session.start', t: t0, version: 'bench', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 1, previewLimit: 256 });
for (let c = 1; c <= CONNS; c++) {
  out({ kind: 'conn.open', t: t0 + c, conn: c, mode: 'http', remoteAddress: '127.0.0.1', remotePort: 40000 + c, localPort: 8066 });
  out({ kind: 'ws.handshake.request', t: t0 + c + 0.1, conn: c, method: 'GET', url: `/api/v4/websocket?connection_id=${c}`, httpVersion: '1.1', headLength: 400, rawHeaders: [['Host', 'chat.example.com'], ['Upgrade', 'websocket'], ['Connection', 'upgrade'], ['Cookie', 'MMAUTHTOKEN=secret']] });
  out({ kind: 'ws.handshake.response', t: t0 + c + 2, conn: c, statusCode: 101, reason: 'Switching Protocols', httpVersion: '1.1', headLength: 129, rawHeaders: [['Upgrade', 'websocket']], upgraded: true, deflate: null, waitMs: 1.9 });
}
const preview = Buffer.from('{"event":"posted","data":{"channel_id":"abcdefghijklmnopqrstuvwxyz","message":"' + 'lorem ipsum '.repeat(12) + '"}}').toString('base64');
let i = 0;
let t = t0 + 1000;
while (written < targetBytes) {
  const conn = (i % CONNS) + 1;
  const side = i % 3 === 0 ? 'client' : 'upstream';
  t += 0.05;
  out({ kind: 'ws.frame', t, conn, side, index: i, offset: i * 260, opcode: 1, fin: true, rsv1: false, rsv2: false, rsv3: false, masked: side === 'client', length: 240, preview, previewTruncated: false });
  out({ kind: 'ws.message', t, tEnd: t, conn, side, opcode: 1, firstFrame: i, frames: 1, wireLength: 240, compressed: false, size: 240, preview, previewTruncated: false });
  i++;
}
for (let c = 1; c <= CONNS; c++) {
  const idle = { client: 10, upstream: 10 };
  out({ kind: 'tcp.fin', t: t + c, conn: c, side: 'client', idle });
  out({ kind: 'tcp.fin', t: t + c + 1, conn: c, side: 'upstream', idle });
  out({ kind: 'conn.close', t: t + c + 2, conn: c, bytes: { fromClient: 1, fromUpstream: 1 } });
}
flush();
fs.closeSync(fd);
const size = fs.statSync(capture).size;
console.log(`capture: ${(size / 2 ** 20).toFixed(0)} MiB, ${i} frames + ${i} messages on ${CONNS} connections open at once`);

const started = Date.now();
const run = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, ...(process.env.HEAP_MB ? [`--max-old-space-size=${process.env.HEAP_MB}`] : []), path.join(root, 'bin', 'wstap'), 'export', capture, '-o', har], { encoding: 'utf8' });
const lines = run.stderr.trim().split('\n');
const peakKiB = Number(lines.at(-1));
console.log(lines.slice(0, -1).filter((l) => !/% read/.test(l) || Math.random() < 0.2).join('\n'));
console.log(`export: exit ${run.status}, ${((Date.now() - started) / 1000).toFixed(1)} s, HAR ${(fs.statSync(har).size / 2 ** 20).toFixed(0)} MiB, peak RSS ${(peakKiB / 1024).toFixed(0)} MiB`);
if (!process.env.KEEP) fs.rmSync(capture, { force: true });
fs.rmSync(har, { force: true });
