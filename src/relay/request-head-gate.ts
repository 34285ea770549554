import type net from 'node:net';
import { HttpHeadParser, strictRequestHeadProblem, type HttpRequestHead } from '../wire/http-head-parser.js';
import type { ConnectionContext } from './connection-context.js';

/** The largest request head accepted, as large as nginx's large_client_header_buffers go. */
export const MAX_REQUEST_HEAD_BYTES = 64 * 1024;
export const DEFAULT_HEAD_TIMEOUT_MS = 60_000;

/** A chunk as it arrived, with when. */
export interface ArrivedChunk {
  chunk: Buffer;
  t: number;
}

/** The first request head of a connection, complete, and every byte read so far (the head and whatever followed it), in order. */
export interface HeldRequest {
  head: HttpRequestHead;
  chunks: ArrivedChunk[];
}

export interface RequestHeadGateHandlers {
  /** The head is complete and may go on: the socket is paused with the gate's listeners gone; the caller forwards `held.chunks` first. */
  passed(held: HeldRequest): void;
}

interface Answer {
  status: number;
  reason: string;
  why: string;
  extraHeaders?: string;
}

/**
 * Holds a connection's first request head until it is complete, and no
 * longer: a head over MAX_REQUEST_HEAD_BYTES is answered 431, one not
 * complete within `headTimeoutMs` (slowloris) 408, bytes that are not an
 * HTTP request (or one a strict server refuses: strictRequestHeadProblem) 400, and CONNECT 405 (wstap forwards to its one target, it is
 * no tunnel). Each is recorded as `http.rejected`, and nothing of it reaches
 * the app, which is never even dialed. Later heads on the connection are
 * neither refused nor answered: they stream, parsed from a copy; with
 * --probe-token each is held until complete (later-request-gate.ts), only so
 * that one carrying X-Wstap-Probe never reaches the app, and otherwise goes
 * on unchanged whatever its size or shape.
 */
export function holdRequestHead(ctx: ConnectionContext, socket: net.Socket, headTimeoutMs: number, handlers: RequestHeadGateHandlers): void {
  const parser = new HttpHeadParser('request', { maxHeadBytes: MAX_REQUEST_HEAD_BYTES });
  const chunks: ArrivedChunk[] = [];
  let done = false;
  const timer = headTimeoutMs > 0 ? setTimeout(() => reject({ status: 408, reason: 'Request Timeout', why: 'request head not complete in time (--head-timeout)' }), headTimeoutMs) : null;

  const stop = (): void => {
    done = true;
    if (timer) clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    socket.removeListener('error', onError);
  };

  const reject = (answer: Answer, method = '', url = ''): void => {
    if (done) return;
    stop();
    const line = method ? { method, url } : startLine(chunks);
    ctx.record({ kind: 'http.rejected', t: ctx.now(), conn: ctx.id, method: line.method, url: line.url, statusCode: answer.status, reason: answer.why });
    // Errors after this point (the client resets while reading the answer) have nobody to tell.
    socket.on('error', () => socket.destroy());
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const body = `wstap: ${answer.why}\n`;
    socket.end(
      `HTTP/1.1 ${answer.status} ${answer.reason}\r\n${answer.extraHeaders ?? ''}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      // Then close without waiting for the client's FIN: a slowloris client may never send one.
      () => socket.destroy(),
    );
  };

  const onData = (chunk: Buffer): void => {
    if (done) return;
    const t = ctx.now();
    ctx.lastByteAt.client = t;
    chunks.push({ chunk, t });
    const result = parser.push(chunk);
    if (result.state === 'incomplete') return;
    if (result.state === 'error') {
      if (result.code === 'HEAD_TOO_LARGE') reject({ status: 431, reason: 'Request Header Fields Too Large', why: `request head over ${MAX_REQUEST_HEAD_BYTES / 1024} KiB` });
      else reject({ status: 400, reason: 'Bad Request', why: `not a valid HTTP request (${result.message})` });
      return;
    }
    const head = result.head;
    // Held to a strict server's rules: what nginx or Node would refuse never reaches the app through wstap either.
    const problem = strictRequestHeadProblem(head);
    if (problem !== null) {
      reject({ status: 400, reason: 'Bad Request', why: `not a valid HTTP request (${problem})` }, head.method, head.target);
      return;
    }
    if (head.method === 'CONNECT') {
      reject(
        { status: 405, reason: 'Method Not Allowed', why: 'CONNECT is not supported; wstap only forwards to its configured target', extraHeaders: 'Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n' },
        head.method,
        head.target,
      );
      return;
    }
    stop();
    socket.pause();
    handlers.passed({ head, chunks });
  };
  // The client gave up before its head was complete: its FIN is evidence, and wstap closes its side too.
  const onEnd = (): void => {
    if (done) return;
    stop();
    ctx.recordFin('client');
    socket.on('error', () => socket.destroy());
    socket.end();
  };
  const onError = (err: NodeJS.ErrnoException): void => {
    if (done) return;
    stop();
    ctx.recordSocketError('client', err);
    socket.destroy();
  };

  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
  // Destroyed by wstap (a graceful stop): the deadline goes with it.
  socket.once('close', () => {
    if (!done) stop();
  });
}

/** The method and target of a head that was refused, when its first line says them. */
function startLine(chunks: readonly ArrivedChunk[]): { method: string; url: string } {
  const first = chunks[0]?.chunk.subarray(0, 2100).toString('latin1') ?? '';
  const line = /^([A-Z]{1,20}) (\S{1,2048}) HTTP\//.exec(first);
  return { method: line?.[1] ?? '', url: line?.[2] ?? '' };
}
