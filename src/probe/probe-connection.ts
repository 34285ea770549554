import type http from 'node:http';
import type net from 'node:net';
import { WebSocket } from 'ws';
import {
  PROBE_INTERVAL_HEADER,
  PROBE_MODE_HEADER,
  PROBE_RUN_HEADER,
  PROBE_TOKEN_HEADER,
  PROBE_VARIANT_HEADER,
} from '../relay/probe-protocol.js';
import type { ClientEnd, ProbeVariant, VariantOutcome } from './probe-variants.js';

/** Where and how the probe connects: the same for every variant of a run. */
export interface ProbeTarget {
  /** ws:// or wss:// */
  url: string;
  /** --header values, in order (auth, cookies). */
  headers: ReadonlyArray<readonly [string, string]>;
  insecure: boolean;
  /** --token: wstap's end answers (and reports); null: the app answers. */
  token: string | null;
  run: string;
  intervalMs: number;
  maxMs: number;
}

/** How often the probe looks whether ws began closing on its own (a close frame arrived): the resolution of a close frame's time. */
const CLOSING_POLL_MS = 100;
/** A handshake that takes longer than this (or --max, if shorter) is given up as an error. */
const HANDSHAKE_TIMEOUT_MS = 30_000;
/** After --max the probe closes politely; a path that does not let the close finish is cut after this. */
const CLOSE_GRACE_MS = 5_000;

/** The request headers of one variant: the user's, then the probe's (only with a token: the app never sees them). */
export function variantHeaders(target: ProbeTarget, variant: ProbeVariant): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of target.headers) headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  if (target.token !== null) {
    headers[PROBE_TOKEN_HEADER] = target.token;
    headers[PROBE_MODE_HEADER] = variant.serverMode;
    headers[PROBE_INTERVAL_HEADER] = String(target.intervalMs / 1000);
    headers[PROBE_RUN_HEADER] = target.run;
    headers[PROBE_VARIANT_HEADER] = variant.name;
  }
  return headers;
}

/**
 * Runs one variant on a real connection: opens it, sends this variant's
 * traffic every interval, and waits until the path cuts it or --max (or
 * `stop`) comes. The raw socket under ws is watched from the 101 on, so a FIN
 * ('end') and an RST (ECONNRESET) are told apart and timed to the
 * millisecond; a close frame is timed by ws starting to close on its own.
 */
export function runVariant(target: ProbeTarget, variant: ProbeVariant, stop: AbortSignal): Promise<VariantOutcome> {
  return new Promise((resolve) => {
    const startedAt = Date.now();
    let openedAt: number | null = null;
    /** Times of the first sign of each kind of end, epoch ms. */
    const seen: { fin?: number; rst?: number; error?: number; closing?: number } = {};
    let socketError: string | null = null;
    let held = false;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const ws = new WebSocket(target.url, {
      headers: variantHeaders(target, variant),
      rejectUnauthorized: !target.insecure,
      perMessageDeflate: false,
      followRedirects: false,
      handshakeTimeout: Math.min(HANDSHAKE_TIMEOUT_MS, target.maxMs),
    });

    const finish = (clientEnd: ClientEnd, endAt: number): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearInterval(t);
      stop.removeEventListener('abort', holdUntilNow);
      const from = openedAt ?? startedAt;
      resolve({ name: variant.name, opened: openedAt !== null, openedAt: from, livedSeconds: Math.max(0, endAt - from) / 1000, clientEnd, proxy: null });
    };

    /** --max (or the user's Ctrl-C): the connection was still open; closed politely, then cut if the path holds the close. */
    function holdUntilNow(): void {
      if (settled || held) return;
      if (openedAt === null) {
        ws.terminate();
        finish({ kind: 'error', error: 'stopped during the handshake' }, Date.now());
        return;
      }
      held = true;
      const at = Date.now();
      finish({ kind: 'open' }, at);
      ws.close(1000, 'wstap probe: done');
      const force = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
      force.unref();
    }

    ws.on('upgrade', (res: http.IncomingMessage) => {
      // Registered before ws's own listeners (it takes the socket after this event): these fire first.
      const socket = res.socket as net.Socket;
      socket.once('end', () => {
        seen.fin ??= Date.now();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNRESET') seen.rst ??= Date.now();
        else seen.error ??= Date.now();
        socketError ??= err.code ?? err.message;
      });
    });
    ws.on('open', () => {
      openedAt = Date.now();
      let n = 0;
      if (variant.client !== 'nothing') {
        timers.push(
          setInterval(() => {
            n++;
            if (ws.readyState !== WebSocket.OPEN) return;
            if (variant.client === 'message') ws.send(`wstap probe message ${n}`);
            else ws.ping(`wstap probe ping ${n}`);
          }, target.intervalMs),
        );
      }
      timers.push(
        setInterval(() => {
          if (!held && ws.readyState === WebSocket.CLOSING) seen.closing ??= Date.now();
        }, CLOSING_POLL_MS),
      );
      // --max is how long an open connection is held: counted from its 101, like livedSeconds.
      timers.push(setTimeout(holdUntilNow, target.maxMs));
    });
    ws.on('unexpected-response', (req: http.ClientRequest, res: http.IncomingMessage) => {
      finish({ kind: 'http', code: res.statusCode ?? 0, ...(res.statusMessage ? { reason: res.statusMessage } : {}) }, Date.now());
      res.resume();
      req.destroy();
    });
    ws.on('error', (err: NodeJS.ErrnoException) => {
      // Before the 101: the handshake failed (refused, reset, TLS, timeout). After it, a protocol error ws found.
      if (openedAt === null) finish({ kind: 'error', error: err.code ?? err.message }, Date.now());
      else socketError ??= err.code ?? err.message;
    });
    ws.on('close', (code: number, reason: Buffer) => {
      const closedAt = Date.now();
      const endAt = Math.min(closedAt, seen.closing ?? Infinity, seen.fin ?? Infinity, seen.rst ?? Infinity, seen.error ?? Infinity);
      if (openedAt === null) {
        finish({ kind: 'error', error: socketError ?? 'closed during the handshake' }, closedAt);
      } else if (code !== 1006) {
        // A close frame came (1005: one without a code).
        finish({ kind: 'close-frame', ...(code !== 1005 ? { code } : {}), ...(reason.length > 0 ? { reason: reason.toString('utf8') } : {}) }, endAt);
      } else if (seen.rst !== undefined && (seen.fin === undefined || seen.rst < seen.fin)) {
        finish({ kind: 'rst' }, endAt);
      } else if (seen.fin !== undefined) {
        finish({ kind: 'fin' }, endAt);
      } else {
        finish({ kind: 'error', error: socketError ?? 'closed' }, endAt);
      }
    });
    if (stop.aborted) holdUntilNow();
    else stop.addEventListener('abort', holdUntilNow);
  });
}
