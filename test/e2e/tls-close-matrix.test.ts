import { execFileSync } from 'node:child_process';
import type net from 'node:net';
import type tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attributeClose, type CloseEvidence } from '../../src/analysis/close-attribution.js';
import { closeBody, frame } from '../support/frame-fixtures.js';
import { selfSignedCertificate, type Certificate } from '../support/tls-app.js';
import { startRawUpgradeServer, type RawUpgradeServer } from '../support/upstream-app.js';
import { evidenceOf, ofConn, ofKind, rawWebSocket } from '../support/ws-peers.js';
import { captureOfClosed, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Every way a connection can end, from each side, through https:// and
 * wss:// targets (WebSocket upgrades) and --tcp to a TLS target, next to the
 * same rows on plain TCP: each end sees what it would have seen directly,
 * and the capture holds the same evidence (issue 14).
 *
 * The app answers the handshake itself and is driven by hand over a TLS (or
 * plain) socket with the TCP socket under it at hand; the client is a raw
 * socket. Both allow half-open connections. "Socket error" is, on the client
 * side, `ss -K` killing wstap's client socket (the kernel's ECONNABORTED, as
 * an admin's `ss -K` would; needs root, as the tests run here), and on the
 * upstream side the same on wstap's upstream TCP socket, plus, for TLS
 * targets, a corrupt TLS record from the app (wstap's TLS layer fails with an
 * ERR_SSL_* code).
 */

/** One end of a connection as the test drives it: the bytes that came, and how it ended. */
class Peer {
  #unread = Buffer.alloc(0);
  #waiters: Array<() => void> = [];
  ended = false;
  closed = false;
  error: string | null = null;

  constructor(
    readonly name: string,
    /** Bytes go here: the TLS socket of a TLS app, else the TCP socket. */
    readonly socket: net.Socket,
    readonly tcp: net.Socket,
  ) {
    socket.on('data', (d: Buffer) => {
      this.#unread = Buffer.concat([this.#unread, d]);
      this.#wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#wake();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.error ??= e.code ?? e.message;
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) {
        throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms (ended ${this.ended}, error ${this.error}, closed ${this.closed}, ${this.#unread.length} bytes unread)`);
      }
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  /** Exactly these bytes come next. */
  async receives(bytes: Buffer): Promise<void> {
    await this.until(`${bytes.length} bytes`, () => this.#unread.length >= bytes.length || this.closed);
    const got = this.#unread.subarray(0, bytes.length);
    this.#unread = this.#unread.subarray(bytes.length);
    expect(got.toString('hex'), `${this.name} received`).toBe(bytes.toString('hex'));
  }

  /** A FIN came (and nothing else went wrong). */
  async sawFin(): Promise<void> {
    await this.until('FIN', () => this.ended || this.error !== null);
    expect({ ended: this.ended, error: this.error }, `${this.name}'s end`).toEqual({ ended: true, error: null });
  }

  /** How the connection failed: the error code, or 'FIN' / 'closed' if it ended without one. */
  async failure(): Promise<string> {
    await this.until('error', () => this.error !== null || this.closed);
    return this.error ?? (this.ended ? 'FIN' : 'closed');
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }
}

const MASK = new Uint8Array([0x11, 0x22, 0x33, 0x44]);
const clientFrame = (opcode: number, payload: Buffer | string): Buffer => frame({ opcode, payload: Buffer.from(payload), mask: MASK });
const serverFrame = (opcode: number, payload: Buffer | string): Buffer => frame({ opcode, payload: Buffer.from(payload) });

/** Kills one established TCP socket with the kernel's SOCK_DESTROY: its owner reads ECONNABORTED, its peer gets an RST. */
function killSocket(localPort: number, remotePort: number): void {
  const out = execFileSync('ss', ['-K', '-t', 'src', `127.0.0.1:${localPort}`, 'dst', `127.0.0.1:${remotePort}`], { encoding: 'utf8' });
  expect(out.split('\n').filter((l) => l.startsWith('ESTAB')), `ss -K killed one socket:\n${out}`).toHaveLength(1);
}

interface Connection {
  client: Peer;
  app: Peer;
  conn: number;
}

interface Scene {
  wstap: WstapProcess;
  appPort: number;
}

interface CloseCase {
  name: string;
  /** Only where the app speaks TLS. */
  tlsOnly?: boolean;
  /** Ends the connection and checks what each end saw. */
  act(c: Connection, scene: Scene): Promise<void>;
  /** The close evidence in the capture, in order (`side kind [code]`); `decodes`: wstap reads WebSocket frames (not --tcp). */
  evidence(decodes: boolean): Array<string | RegExp>;
  /** The evidence after the first may come in any order (two peers answering at once). */
  laterInAnyOrder?: boolean;
  closedBy: 'client' | 'upstream' | 'proxy';
}

const CASES: CloseCase[] = [
  {
    name: 'client close frame (1000), answered, then FINs',
    async act({ client, app }) {
      const close = clientFrame(8, closeBody(1000, 'bye'));
      client.write(close);
      await app.receives(close);
      const answer = serverFrame(8, closeBody(1000, 'bye'));
      app.write(answer);
      await client.receives(answer);
      client.socket.end();
      await app.sawFin();
      app.socket.end();
      await client.sawFin();
    },
    evidence: (decodes) => (decodes ? ['client close-frame 1000', 'upstream close-frame 1000', 'client fin', 'upstream fin'] : ['client fin', 'upstream fin']),
    closedBy: 'client',
  },
  {
    name: 'upstream close frame (1001), answered, then FINs',
    async act({ client, app }) {
      const close = serverFrame(8, closeBody(1001, 'going away'));
      app.write(close);
      await client.receives(close);
      const answer = clientFrame(8, closeBody(1001, ''));
      client.write(answer);
      await app.receives(answer);
      app.socket.end();
      await client.sawFin();
      client.socket.end();
      await app.sawFin();
    },
    evidence: (decodes) => (decodes ? ['upstream close-frame 1001', 'client close-frame 1001', 'upstream fin', 'client fin'] : ['upstream fin', 'client fin']),
    closedBy: 'upstream',
  },
  {
    name: 'client FIN: the app sees it and still gets to send',
    async act({ client, app }) {
      client.socket.end();
      await app.sawFin();
      const late = serverFrame(1, 'after your FIN');
      app.write(late);
      await client.receives(late);
      app.socket.end();
      await client.sawFin();
    },
    evidence: () => ['client fin', 'upstream fin'],
    closedBy: 'client',
  },
  {
    name: 'upstream FIN: the client sees it and still gets to send',
    async act({ client, app }) {
      app.socket.end();
      await client.sawFin();
      const late = clientFrame(1, 'after your FIN');
      client.write(late);
      await app.receives(late);
      client.socket.end();
      await app.sawFin();
    },
    evidence: () => ['upstream fin', 'client fin'],
    closedBy: 'upstream',
  },
  {
    name: 'client RST: the app gets ECONNRESET',
    async act({ client, app }) {
      client.tcp.resetAndDestroy();
      expect(await app.failure()).toBe('ECONNRESET');
    },
    evidence: () => ['client rst'],
    closedBy: 'client',
  },
  {
    name: 'upstream RST: the client gets ECONNRESET',
    async act({ client, app }) {
      app.tcp.resetAndDestroy();
      expect(await client.failure()).toBe('ECONNRESET');
    },
    evidence: () => ['upstream rst'],
    closedBy: 'upstream',
  },
  {
    name: "client socket error (ss -K on wstap's client socket: ECONNABORTED): passed on to the app as an RST",
    async act({ client, app }, { wstap }) {
      killSocket(wstap.port, client.tcp.localPort ?? 0);
      expect(await app.failure()).toBe('ECONNRESET');
      expect(await client.failure()).toBe('ECONNRESET');
    },
    evidence: () => ['client error ECONNABORTED'],
    closedBy: 'client',
  },
  {
    name: "upstream socket error (ss -K on wstap's upstream TCP socket: ECONNABORTED): passed on to the client as an RST",
    async act({ client, app }, { appPort }) {
      killSocket(app.tcp.remotePort ?? 0, appPort);
      expect(await client.failure()).toBe('ECONNRESET');
      expect(await app.failure()).toBe('ECONNRESET');
    },
    evidence: () => ['upstream error ECONNABORTED'],
    closedBy: 'upstream',
  },
  {
    name: 'upstream socket error (a corrupt TLS record from the app): passed on to the client as an RST',
    tlsOnly: true,
    async act({ client, app }) {
      // An application-data record header and 32 bytes no key can decrypt, under the app's TLS layer.
      app.tcp.write(Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20]), Buffer.alloc(32, 0x5a)]));
      expect(await client.failure()).toBe('ECONNRESET');
      // wstap's TLS layer gives up on the connection: the app sees it end.
      await app.until('close', () => app.ended || app.closed || app.error !== null);
    },
    evidence: () => [/^upstream error ERR_SSL_/],
    closedBy: 'upstream',
  },
];

/** wstap's own shutdown, run last: both ends get a FIN, the capture says wstap closed it. */
const SHUTDOWN: CloseCase = {
  name: 'wstap stops (SIGINT): both ends get a FIN',
  async act({ client, app }, { wstap }) {
    const exited = wstap.stop('SIGINT');
    await client.sawFin();
    await app.sawFin();
    client.socket.end();
    app.socket.end();
    expect(await exited).toBe(0);
  },
  // The peers answer wstap's FINs with theirs, in whichever order they get them.
  evidence: () => ['proxy fin', 'client fin', 'upstream fin'],
  laterInAnyOrder: true,
  closedBy: 'proxy',
};

interface TargetKind {
  name: string;
  tls: boolean;
  /** The TLS version the app allows at most (and so speaks): half-close is kept under both. */
  tlsVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** wstap decodes WebSocket frames (an upgrade), or only relays bytes (--tcp). */
  decodes: boolean;
  args(port: number): string[];
}

const TARGETS: TargetKind[] = [
  { name: 'http:// upgrade (plain TCP: the reference)', tls: false, decodes: true, args: (p) => ['--target', `http://127.0.0.1:${p}`] },
  { name: 'https:// upgrade', tls: true, tlsVersion: 'TLSv1.3', decodes: true, args: (p) => ['--target', `https://127.0.0.1:${p}`, '--insecure'] },
  { name: 'wss:// upgrade', tls: true, tlsVersion: 'TLSv1.3', decodes: true, args: (p) => ['--target', `wss://127.0.0.1:${p}`, '--insecure'] },
  { name: 'wss:// upgrade to a TLS 1.2 app', tls: true, tlsVersion: 'TLSv1.2', decodes: true, args: (p) => ['--target', `wss://127.0.0.1:${p}`, '--insecure'] },
  { name: '--tcp (plain TCP: the reference)', tls: false, decodes: false, args: (p) => ['--tcp', '--target', `127.0.0.1:${p}`] },
  { name: '--tcp to a TLS target', tls: true, tlsVersion: 'TLSv1.3', decodes: false, args: (p) => ['--tcp', '--target', `https://127.0.0.1:${p}`, '--insecure'] },
];

function describeEvidence(e: CloseEvidence): string {
  if (e.kind === 'close-frame') return `${e.side} close-frame ${e.code ?? ''}`.trim();
  if (e.kind === 'error') return `${e.side} error ${e.error ?? ''}`.trim();
  return `${e.side} ${e.kind}`;
}

let certificate: Certificate;
beforeAll(() => {
  certificate = selfSignedCertificate();
});
afterAll(() => certificate?.remove());

describe.each(TARGETS)('close matrix through $name', (target) => {
  let app: RawUpgradeServer;
  let wstap: WstapProcess;
  const upgraded: Array<{ socket: net.Socket; tcp: net.Socket }> = [];
  const waiting: Array<(side: { socket: net.Socket; tcp: net.Socket }) => void> = [];

  beforeAll(async () => {
    app = await startRawUpgradeServer(
      (socket, tcp) => {
        const side = { socket, tcp };
        const waiter = waiting.shift();
        if (waiter) waiter(side);
        else upgraded.push(side);
      },
      undefined,
      target.tls ? { tls: { key: certificate.key, cert: certificate.cert, ...(target.tlsVersion ? { maxVersion: target.tlsVersion } : {}) } } : {},
    );
    wstap = await startWstap(target.args(app.port));
  });
  afterAll(async () => {
    await wstap?.stop('SIGKILL');
    await app?.close();
  });

  const nextApp = (): Promise<{ socket: net.Socket; tcp: net.Socket }> =>
    new Promise((resolve) => {
      const ready = upgraded.shift();
      if (ready) resolve(ready);
      else waiting.push(resolve);
    });

  /** A new connection through wstap, with one message each way: wstap is up and relaying. */
  async function open(tag: string): Promise<Connection> {
    const socket = await rawWebSocket(wstap.port, `/ws?case=${encodeURIComponent(tag)}`, { allowHalfOpen: true });
    socket.removeAllListeners('error');
    const client = new Peer('client', socket, socket);
    const appSide = await nextApp();
    const appPeer = new Peer('app', appSide.socket, appSide.tcp);
    if (target.tls) expect((appSide.socket as tls.TLSSocket).getProtocol()).toBe(target.tlsVersion);
    const opened = await wstap.waitForLog((l) => l.remote === `127.0.0.1:${socket.localPort}`);
    const hello = clientFrame(1, `hello ${tag}`);
    client.write(hello);
    await appPeer.receives(hello);
    const hi = serverFrame(1, `hi ${tag}`);
    appPeer.write(hi);
    await client.receives(hi);
    return { client, app: appPeer, conn: opened.conn as number };
  }

  const cases = [...CASES.filter((c) => target.tls || !c.tlsOnly), SHUTDOWN];
  it.each(cases)('$name', async (closeCase) => {
    const connection = await open(closeCase.name.split(':')[0] ?? closeCase.name);
    await closeCase.act(connection, { wstap, appPort: app.port });
    const { events } = await captureOfClosed(wstap, connection.conn, 10_000);
    const evidence = evidenceOf(events, connection.conn);
    const expected = closeCase.evidence(target.decodes).map((e) => (typeof e === 'string' ? e : expect.stringMatching(e)));
    const recorded = evidence.map(describeEvidence);
    if (closeCase.laterInAnyOrder) expect([recorded[0], ...recorded.slice(1).sort()]).toEqual([expected[0], ...expected.slice(1).sort()]);
    else expect(recorded).toEqual(expected);
    expect(attributeClose(evidence).closedBy).toBe(closeCase.closedBy);
    expect(ofConn(events, connection.conn, 'conn.close')).toHaveLength(1);
    if (closeCase === SHUTDOWN) {
      expect(ofKind(events, 'session.end')).toHaveLength(1);
    } else {
      await wstap.waitForLog((l) => l.conn === connection.conn && new RegExp(`^#${connection.conn} closed by ${closeCase.closedBy}`).test(l.msg));
    }
    expect(wstap.stderr()).not.toMatch(/ERR_INVALID_HANDLE_TYPE|uncaught/i);
  });
});
