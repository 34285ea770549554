import net from 'node:net';
import { waitUntil } from './wait-until.js';

/**
 * One end of a raw TCP connection as a test sees it: every byte received
 * (latin1, so bytes map 1:1 to characters) and how it ended. No HTTP library
 * between the test and the wire.
 */
export class RawEnd {
  received = '';
  ended: 'fin' | 'rst' | null = null;
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => (this.received += d.toString('latin1')));
    socket.on('end', () => (this.ended ??= 'fin'));
    socket.on('error', () => (this.ended ??= 'rst'));
    socket.on('close', () => (this.closed = true));
  }

  write(text: string): void {
    this.socket.write(Buffer.from(text, 'latin1'));
  }

  /** Resolves with everything received once `text` is in it (or `predicate` holds). */
  waitFor(what: string | ((received: string) => boolean), timeoutMs = 15_000): Promise<string> {
    const holds = typeof what === 'string' ? (r: string) => r.includes(what) : what;
    return waitUntil(`raw end to receive ${typeof what === 'string' ? JSON.stringify(what.slice(0, 60)) : 'the expected bytes'}`, () => holds(this.received) && this.received, {
      timeoutMs,
      intervalMs: 20,
      context: () => `received so far: ${JSON.stringify(this.received.slice(-500))}`,
    });
  }

  waitForEnd(timeoutMs = 15_000): Promise<'fin' | 'rst'> {
    return waitUntil('raw end to end', () => this.ended, { timeoutMs, intervalMs: 20 });
  }
}

/** A raw TCP client of 127.0.0.1:port, half-close allowed (a FIN from the far end does not end ours). */
export async function rawClient(port: number): Promise<RawEnd> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return new RawEnd(socket);
}

/** A raw TCP app on 127.0.0.1: every accepted connection, in order, for the test to script. */
export interface RawApp {
  port: number;
  connections: RawEnd[];
  /** The `n`th connection (from 0), once accepted. */
  connection(n: number): Promise<RawEnd>;
  close(): Promise<void>;
}

export async function startRawApp(onConnection?: (end: RawEnd) => void): Promise<RawApp> {
  const connections: RawEnd[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const end = new RawEnd(socket);
    connections.push(end);
    onConnection?.(end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    connection: (n) => waitUntil(`raw app connection #${n}`, () => connections[n], { intervalMs: 20 }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.socket.destroy();
        server.close(() => resolve());
      }),
  };
}
