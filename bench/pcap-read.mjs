// Generates a large tcpdump-style capture (default 1 GiB, classic pcap,
// Ethernet: many WebSocket connections open at once, their segments
// interleaved, some out of order) and reads it the way `wstap view` does
// (the packet capture reader, then the fold), reporting the reader's speed
// and peak resident memory, then `wstap view --no-tui` itself.
// Usage: node bench/pcap-read.mjs [MiB]   (npm run build first)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'bench', '.tmp');
const file = path.join(dir, 'big.pcap');

if (process.argv[2] === '--read') {
  const { readPacketCaptureEvents } = await import(path.join(root, 'dist', 'pcap', 'packet-capture-reader.js'));
  const { ConnectionTracker } = await import(path.join(root, 'dist', 'analysis', 'connection-tracker.js'));
  const tracker = new ConnectionTracker();
  const counts = {};
  let peakHeap = 0;
  let n = 0;
  const started = process.hrtime.bigint();
  const cpuBase = process.cpuUsage();
  for await (const event of readPacketCaptureEvents([file], { serverPorts: [8065], note: (m) => console.error(`note: ${m}`) })) {
    counts[event.kind] = (counts[event.kind] ?? 0) + 1;
    tracker.apply(event);
    if (++n % 100_000 === 0) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuBase);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const size = fs.statSync(file).size;
  // The machine may be shared: MiB per CPU second says what the reader costs, MiB per wall second what it got.
  console.log(JSON.stringify({ seconds, cpuSeconds, mibPerSecond: size / 2 ** 20 / seconds, mibPerCpuSecond: size / 2 ** 20 / cpuSeconds, peakHeapMiB: peakHeap / 2 ** 20, maxRssMiB: process.resourceUsage().maxRSS / 1024, events: counts }));
  process.exit(0);
}

const targetBytes = Number(process.argv[2] ?? 1024) * 2 ** 20;
fs.mkdirSync(dir, { recursive: true });
const CONNS = 200;
const fd = fs.openSync(file, 'w', 0o600);
let written = 0;
let chunks = [];
let pending = 0;
const write = (buf) => {
  chunks.push(buf);
  pending += buf.length;
  if (pending >= 8 * 2 ** 20) flush();
};
const flush = () => {
  const all = Buffer.concat(chunks, pending);
  fs.writeSync(fd, all);
  written += all.length;
  chunks = [];
  pending = 0;
};
const header = Buffer.alloc(24);
header.writeUInt32LE(0xa1b2c3d4, 0);
header.writeUInt16LE(2, 4);
header.writeUInt16LE(4, 6);
header.writeUInt32LE(262144, 16);
header.writeUInt32LE(1, 20);
write(header);

let t = Date.now() - 3_600_000;
function packet(src, dst, seq, ack, flags, payload) {
  const frame = Buffer.alloc(16 + 14 + 20 + 20 + payload.length);
  const seconds = Math.floor(t / 1000);
  frame.writeUInt32LE(seconds, 0);
  frame.writeUInt32LE(Math.round((t - seconds * 1000) * 1000), 4);
  frame.writeUInt32LE(frame.length - 16, 8);
  frame.writeUInt32LE(frame.length - 16, 12);
  frame.writeUInt16BE(0x0800, 16 + 12);
  const ip = 30;
  frame[ip] = 0x45;
  frame.writeUInt16BE(40 + payload.length, ip + 2);
  frame[ip + 8] = 64;
  frame[ip + 9] = 6;
  frame.writeUInt32BE(0x7f000001, ip + 12);
  frame.writeUInt32BE(0x7f000001, ip + 16);
  const tcp = 50;
  frame.writeUInt16BE(src, tcp);
  frame.writeUInt16BE(dst, tcp + 2);
  frame.writeUInt32BE(seq >>> 0, tcp + 4);
  frame.writeUInt32BE(ack >>> 0, tcp + 8);
  frame[tcp + 12] = 0x50;
  frame[tcp + 13] = flags;
  frame.writeUInt16BE(65535, tcp + 14);
  payload.copy(frame, 70);
  t += 0.003;
  return frame;
}
const request = Buffer.from('GET /api/v4/websocket HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
const response = Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
// A server text frame of 1396 bytes (4-byte header + 1392 payload, one segment) and a masked client frame of 206 bytes.
const serverFrame = Buffer.concat([Buffer.from([0x81, 126, 0x05, 0x70]), Buffer.alloc(1392, 0x61)]);
const clientFrame = Buffer.concat([Buffer.from([0x81, 0x80 | 120, 1, 2, 3, 4]), Buffer.alloc(120, 0x62)]);
const conns = [];
let nextPort = 20000;
function open() {
  const c = { port: nextPort++, cseq: 1000, sseq: 900000, sent: 0 };
  write(packet(c.port, 8065, c.cseq - 1, 0, 0x02, Buffer.alloc(0)));
  write(packet(8065, c.port, c.sseq - 1, c.cseq, 0x12, Buffer.alloc(0)));
  write(packet(c.port, 8065, c.cseq, c.sseq, 0x18, request));
  c.cseq += request.length;
  write(packet(8065, c.port, c.sseq, c.cseq, 0x18, response));
  c.sseq += response.length;
  return c;
}
function close(c) {
  write(packet(8065, c.port, c.sseq, c.cseq, 0x11, Buffer.alloc(0)));
  write(packet(c.port, 8065, c.cseq, c.sseq + 1, 0x11, Buffer.alloc(0)));
}
for (let i = 0; i < CONNS; i++) conns.push(open());
let frames = 0;
let opened = CONNS;
while (written + pending < targetBytes) {
  for (let i = 0; i < conns.length; i++) {
    const c = conns[i];
    if (c.sent % 10 === 9) {
      write(packet(c.port, 8065, c.cseq, c.sseq, 0x18, clientFrame));
      c.cseq += clientFrame.length;
    } else if (c.sent % 50 === 20) {
      // Two segments swapped: reassembly holds one and puts them back in order.
      const a = packet(8065, c.port, c.sseq, c.cseq, 0x18, serverFrame);
      const b = packet(8065, c.port, c.sseq + serverFrame.length, c.cseq, 0x18, serverFrame);
      write(b);
      write(a);
      c.sseq += 2 * serverFrame.length;
      frames++;
    } else {
      write(packet(8065, c.port, c.sseq, c.cseq, 0x18, serverFrame));
      c.sseq += serverFrame.length;
    }
    frames++;
    // Connections come and go: each lives for 2000 frames.
    if (++c.sent === 2000) {
      close(c);
      conns[i] = open();
      opened++;
    }
  }
}
for (const c of conns) close(c);
flush();
fs.closeSync(fd);
const size = fs.statSync(file).size;
console.log(`capture: ${(size / 2 ** 20).toFixed(0)} MiB, ${frames} frames on ${opened} connections (${CONNS} open at once)`);

const reader = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--read'], { encoding: 'utf8' });
console.log(`reader + fold: ${reader.stdout.trim()}${reader.status === 0 ? '' : `\n${reader.stderr}`}`);
const started = Date.now();
const view = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, path.join(root, 'bin', 'wstap'), 'view', '--no-tui', file, '--port', '8065'], { encoding: 'utf8', maxBuffer: 2 ** 30 });
const peakKiB = Number(view.stderr.trim().split('\n').at(-1));
console.log(`wstap view --no-tui: exit ${view.status}, ${((Date.now() - started) / 1000).toFixed(1)} s, ${view.stdout.split('\n').length} lines, peak RSS ${(peakKiB / 1024).toFixed(0)} MiB`);
if (!process.env.KEEP) fs.rmSync(file, { force: true });
