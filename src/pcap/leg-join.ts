import type { CaptureEvent, ConnFrontEvent } from '../capture/events.js';
import { headerValue } from '../capture/raw-headers.js';

/** Closed connections are kept this long (packet time) as front-leg candidates, then forgotten (bounded). */
const KEEP_CLOSED_MS = 60_000;
const MAX_KNOWN = 20_000;

interface Known {
  conn: number;
  address: string;
  port: number;
  /** The server port: a back-leg connection's own leg is not its front leg. */
  localPort: number;
  openedAt: number;
  closedAt: number | null;
}

/** Headers through which nginx can name the client's port (`proxy_set_header X-Real-Port $remote_port;`). */
const PORT_HEADERS = ['x-real-port', 'x-client-port'];

/**
 * Joins a back-leg connection (nginx -> app) to the front-leg one (client
 * -> nginx) that carried it, in a capture that holds both: the client
 * address nginx names in the first request, and the time (the front
 * connection must be open when the request is made); exactly when a header
 * also names the client's port. Ambiguity is reported, never resolved by a
 * guess. Fed every event in order; keeps recent connections only.
 */
export class LegJoin {
  readonly #known = new Map<number, Known>();

  /** Notes an event; returns the conn.front event to record after it, if it is a first request naming a client seen in the capture. */
  note(event: CaptureEvent): ConnFrontEvent | null {
    switch (event.kind) {
      case 'conn.open':
        this.#forgetOld(event.t);
        this.#known.set(event.conn, { conn: event.conn, address: event.remoteAddress, port: event.remotePort, localPort: event.localPort, openedAt: event.t, closedAt: null });
        return null;
      case 'conn.close': {
        const known = this.#known.get(event.conn);
        if (known) known.closedAt = event.t;
        return null;
      }
      case 'ws.handshake.request':
        return this.#join(event.conn, event.t, event.rawHeaders);
      case 'http.request':
        return event.exchange === 1 ? this.#join(event.conn, event.t, event.rawHeaders) : null;
      default:
        return null;
    }
  }

  #join(conn: number, t: number, headers: Array<[string, string]>): ConnFrontEvent | null {
    const back = this.#known.get(conn);
    const address = headerValue(headers, 'x-real-ip')?.trim() || headerValue(headers, 'x-forwarded-for')?.split(',')[0]?.trim();
    if (!back || !address) return null;
    const portText = PORT_HEADERS.map((name) => headerValue(headers, name)?.trim()).find((v) => v !== undefined && /^\d{1,5}$/.test(v));
    const port = portText === undefined ? null : Number(portText);
    const candidates = [...this.#known.values()].filter(
      (k) => k.conn !== conn && k.localPort !== back.localPort && k.address === address && (port === null || k.port === port) && k.openedAt <= t && (k.closedAt === null || k.closedAt >= t),
    );
    // No connection from that client in the capture: it holds only this leg; nothing to say.
    if (candidates.length === 0) return null;
    const only = candidates.length === 1 ? (candidates[0] as Known) : null;
    return {
      kind: 'conn.front',
      t,
      conn,
      front: only ? only.conn : null,
      matchedBy: only ? (port === null ? 'address+time' : 'address+port') : null,
      candidates: candidates.length,
      client: port === null ? address : `${address}:${port}`,
    };
  }

  #forgetOld(now: number): void {
    if (this.#known.size < MAX_KNOWN / 2) return;
    for (const [conn, k] of this.#known) {
      if ((k.closedAt !== null && now - k.closedAt > KEEP_CLOSED_MS) || this.#known.size > MAX_KNOWN) this.#known.delete(conn);
    }
  }
}
