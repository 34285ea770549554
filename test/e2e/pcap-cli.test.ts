import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { closeBody, frame } from '../support/frame-fixtures.js';
import { HANDSHAKE_REQUEST, HANDSHAKE_RESPONSE, TcpConversation, pcapFile, pcapngFile } from '../support/pcap-builder.js';
import { runWstapSync } from '../support/wstap-process.js';

/** The real CLI on synthetic packet captures: what a user sees for good, damaged and mixed input. */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-pcap-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function conversation(): TcpConversation {
  const c = new TcpConversation({ address: '10.1.0.5', port: 41000 }, { address: '10.1.0.9', port: 8065 });
  c.handshake();
  c.send('client', HANDSHAKE_REQUEST);
  c.send('server', HANDSHAKE_RESPONSE);
  c.at(5).send('server', frame({ opcode: 1, payload: Buffer.from('hi') }));
  c.at(30_000).send('server', frame({ opcode: 8, payload: closeBody(1001, 'going away') }));
  c.send('client', frame({ opcode: 8, payload: closeBody(1001, ''), mask: new Uint8Array([9, 9, 9, 9]) }));
  c.fin('server');
  c.fin('client');
  return c;
}

function write(name: string, data: Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, data);
  return file;
}

describe('wstap view / export with a packet capture', () => {
  it('view prints the open, the handshake and the verdict, and a summary of what was read', () => {
    const file = write('ok.pcap', pcapFile(conversation().packets));
    const run = runWstapSync(['view', '--no-tui', file]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/#1 open from 10\.1\.0\.5:41000/);
    expect(run.stdout).toMatch(/#1 GET \/ws\?pcap=1 HTTP\/1\.1 upgrade: websocket/);
    expect(run.stdout).toMatch(/#1 closed by upstream \(upstream close-frame 1001 "going away"\)/);
    expect(run.stderr).toMatch(/wstap: \d+ TCP segments read, 1 connections \(0 still open at the capture's end\)/);
  });

  it('export writes FILE.har beside FILE.pcap by default', () => {
    const file = write('named.pcap', pcapFile(conversation().packets));
    const run = runWstapSync(['export', file]);
    expect(run.status, run.stderr).toBe(0);
    const har = JSON.parse(fs.readFileSync(path.join(dir, 'named.har'), 'utf8')) as { log: { entries: Array<{ _webSocketMessages?: unknown[] }> } };
    expect(har.log.entries[0]?._webSocketMessages).toHaveLength(1);
  });

  it('dropped packets (pcapng statistics) are said, in the lines and on stderr', () => {
    const file = write('drops.pcapng', pcapngFile([{ link: 'ethernet' }], conversation().packets.map((packet) => ({ iface: 0, packet })), [12]));
    const run = runWstapSync(['view', '--no-tui', file]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/capture gap: the packet capture dropped 12 packets/);
    expect(run.stderr).toMatch(/interface 0: 12 packets were dropped by the capture/);
  });

  it('a file cut short is read to its last whole packet, and said', () => {
    const whole = pcapFile(conversation().packets);
    const file = write('cut.pcap', whole.subarray(0, whole.length - 10));
    const run = runWstapSync(['view', '--no-tui', file]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/cut\.pcap ends in the middle of a packet record \(\d+ bytes\)/);
  });

  it('a damaged file: one line naming the file and the byte, exit 2', () => {
    const damaged = pcapFile(conversation().packets);
    damaged.writeUInt32LE(0x7fffffff, 24 + 8);
    const file = write('damaged.pcap', damaged);
    const run = runWstapSync(['view', '--no-tui', file]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`wstap: ${file}: packet record 1 claims 2147483647 bytes: the file is damaged (at byte 24)`);
  });

  it('bad --port values and --port with a wstap capture are refused before anything is read', () => {
    const file = write('ports.pcap', pcapFile(conversation().packets));
    const zero = runWstapSync(['view', '--no-tui', file, '--port', '0']);
    expect(zero.status).not.toBe(0);
    expect(zero.stderr).toMatch(/--port "0" is not a TCP port \(1-65535\)/);
    const jsonl = write('capture.jsonl', Buffer.from('{"format":"wstap-capture","version":1,"createdBy":"test"}\n'));
    const withPort = runWstapSync(['view', '--no-tui', jsonl, '--port', '8065']);
    expect(withPort.status).not.toBe(0);
    expect(withPort.stderr).toMatch(/--port is for packet captures/);
    const mixed = runWstapSync(['view', '--no-tui', file, jsonl]);
    expect(mixed.status).not.toBe(0);
    expect(mixed.stderr).toMatch(/capture\.jsonl is not a pcap or pcapng file: packet captures are read alone/);
  });
});
