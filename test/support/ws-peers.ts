import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { WebSocket, type ClientOptions } from 'ws';
import { closeEvidenceOf, type CloseEvidence } from '../../src/analysis/close-attribution.js';
import type { CaptureEvent } from '../../src/capture/events.js';

export function connectClient(url: string, options: ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
}

/** Fingerprint of a message sequence: type, length and bytes of each, in order. */
export class MessageDigest {
  readonly #hash = crypto.createHash('sha256');
  count = 0;
  bytes = 0;
  add(data: Buffer, isBinary: boolean): void {
    const head = Buffer.alloc(9);
    head.writeUInt8(isBinary ? 2 : 1, 0);
    head.writeDoubleBE(data.length, 1);
    this.#hash.update(head).update(data);
    this.count++;
    this.bytes += data.length;
  }
  hex(): string {
    return this.#hash.copy().digest('hex');
  }
}

/** Resolves after `count` messages arrived on `ws`, with their digest. */
export function receive(ws: WebSocket, count: number): Promise<MessageDigest> {
  const digest = new MessageDigest();
  return new Promise((resolve) => {
    if (count === 0) resolve(digest);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      digest.add(data, isBinary);
      if (digest.count === count) resolve(digest);
    });
  });
}

/** A deterministic mix of text and binary payloads across the 7/16/64-bit length boundaries. */
export function payloadMix(seed: number): Array<{ data: Buffer; binary: boolean }> {
  const sizes = [0, 1, 2, 125, 126, 127, 1000, 65535, 65536, 70_000, 300_000];
  let state = seed;
  const random = (n: number): Buffer => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      out[i] = state & 0xff;
    }
    return out;
  };
  const messages: Array<{ data: Buffer; binary: boolean }> = [];
  for (const size of sizes) {
    messages.push({ data: random(size), binary: true });
    // Text must be valid UTF-8: base64 of random bytes, multibyte characters mixed in.
    const text = (random(Math.ceil((size * 3) / 4)).toString('base64') + 'é€😀').slice(0, Math.max(0, size));
    messages.push({ data: Buffer.from(text, 'utf8'), binary: false });
  }
  return messages;
}

export function sendAll(ws: WebSocket, messages: Array<{ data: Buffer; binary: boolean }>, fragmentEvery = 0): MessageDigest {
  const digest = new MessageDigest();
  messages.forEach(({ data, binary }, i) => {
    digest.add(data, binary);
    if (fragmentEvery > 0 && i % fragmentEvery === 0 && data.length > 3) {
      // A fragmented message: three frames (ws sends fin=false for the first two).
      const third = Math.floor(data.length / 3);
      ws.send(data.subarray(0, third), { binary, fin: false });
      ws.send(data.subarray(third, 2 * third), { binary, fin: false });
      ws.send(data.subarray(2 * third), { binary, fin: true });
    } else {
      ws.send(data, { binary });
    }
  });
  return digest;
}

export function closedEvent(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
}

export function ofConn<K extends CaptureEvent['kind']>(events: CaptureEvent[], conn: number, kind: K): Array<Extract<CaptureEvent, { kind: K }>> {
  return events.filter((e): e is Extract<CaptureEvent, { kind: K }> => e.kind === kind && 'conn' in e && e.conn === conn);
}

export function ofKind<K extends CaptureEvent['kind']>(events: CaptureEvent[], kind: K): Array<Extract<CaptureEvent, { kind: K }>> {
  return events.filter((e): e is Extract<CaptureEvent, { kind: K }> => e.kind === kind);
}

/**
 * wstap's id of the connection whose request (a WebSocket handshake or a
 * plain HTTP request) has a URL ending in `urlEnd`; undefined while no such
 * request is in `events`. Tests give each connection its own URL ending.
 */
export function connOfUrl(events: CaptureEvent[], urlEnd: string): number | undefined {
  return [...ofKind(events, 'ws.handshake.request'), ...ofKind(events, 'http.request')].find((e) => e.url.endsWith(urlEnd))?.conn;
}

/** The close evidence of one connection, in recording order. */
export function evidenceOf(events: CaptureEvent[], conn: number): CloseEvidence[] {
  return events
    .filter((e) => 'conn' in e && e.conn === conn)
    .map(closeEvidenceOf)
    .filter((e): e is CloseEvidence => e !== null);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A handshake the server (or a hop) did not upgrade: the status and body the client got. */
export function unexpectedResponse(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => reject(new Error('the handshake unexpectedly succeeded')));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', () => undefined);
  });
}

/** A raw WebSocket handshake to wstap (or anything), returning the socket once the 101 has arrived. */
export function rawWebSocket(port: number, path: string, options: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
    socket.on('error', reject);
    socket.on('connect', () =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.removeListener('data', onData);
      if (!head.startsWith('HTTP/1.1 101')) reject(new Error(`not upgraded: ${head.slice(0, 40)}`));
      else resolve(socket);
    };
    socket.on('data', onData);
  });
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A GET and its whole answer. `target` is a URL, or request options (host and
 * port, or a socketPath); an `https:` URL or `protocol: 'https:'` goes over
 * TLS, with `options` (ca, servername, maxHeaderSize, agent...) as given.
 */
export function httpGet(target: string | https.RequestOptions, options: https.RequestOptions = {}): Promise<HttpAnswer> {
  const secure = typeof target === 'string' ? new URL(target).protocol === 'https:' : target.protocol === 'https:';
  const onAnswer = (resolve: (answer: HttpAnswer) => void) => (res: http.IncomingMessage): void => {
    let body = '';
    res.on('data', (d: Buffer) => (body += d.toString()));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
  };
  return new Promise((resolve, reject) => {
    const request =
      typeof target === 'string'
        ? (secure ? https : http).get(target, options, onAnswer(resolve))
        : (secure ? https : http).get({ ...target, ...options }, onAnswer(resolve));
    request.on('error', reject);
  });
}
