// npm run bench (first part): frame decoder hot path on this machine. Not part of the tests.
// The relay suite (issue 7) is bench/relays.mjs; bench/index.mjs runs both.
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Sender } from 'ws';
import { FrameDecoder } from '../dist/wire/frame-decoder.js';
import { MessageAssembler } from '../dist/wire/message-assembler.js';

function frames(count, size, masked) {
  const payload = Buffer.alloc(size, 0x61);
  const parts = [];
  for (let i = 0; i < count; i++) {
    parts.push(...Sender.frame(payload, { fin: true, rsv1: false, opcode: 2, mask: masked, readOnly: false }));
  }
  return Buffer.concat(parts);
}

function decode(stream, chunkSize) {
  let seen = 0;
  const assembler = new MessageAssembler({ previewLimit: 256 });
  const decoder = new FrameDecoder({ onFrame: (f) => { seen++; assembler.push(f); }, onError: (e) => { throw new Error(e.message); } }, { previewLimit: 256 });
  const start = performance.now();
  for (let off = 0; off < stream.length; off += chunkSize) decoder.push(stream.subarray(off, off + chunkSize), off);
  return { ms: performance.now() - start, frames: seen };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

console.log(`machine: ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
for (const [label, count, size, masked] of [
  ['1 KiB masked frames (client->server)', 100_000, 1024, true],
  ['100 B masked frames', 500_000, 100, true],
  ['64 KiB unmasked frames (server->client)', 3_000, 65536, false],
]) {
  const stream = frames(count, size, masked);
  const runs = [];
  for (let i = 0; i < 5; i++) runs.push(decode(stream, 65536));
  const ms = median(runs.map((r) => r.ms));
  console.log(`decoder + assembler, ${label}: ${(count / (ms / 1000) / 1e6).toFixed(2)} M frames/s, ${(stream.length / 2 ** 20 / (ms / 1000)).toFixed(0)} MiB/s (median of 5, 64 KiB chunks)`);
}
