import crypto from 'node:crypto';
import type { WebSocket } from 'ws';
import type { UpstreamApp } from './upstream-app.js';
import { closedEvent, connectClient, MessageDigest, sleep } from './ws-peers.js';

/** A client whose every message the app echoes; digests of what went and what came back. */
export class EchoClient {
  readonly sent = new MessageDigest();
  readonly received = new MessageDigest();
  #seed: number;

  private constructor(
    readonly ws: WebSocket,
    readonly url: string,
    seed: number,
  ) {
    this.#seed = seed;
    ws.on('message', (data: Buffer, isBinary: boolean) => this.received.add(data, isBinary));
  }

  static async open(port: number, url: string, seed: number): Promise<EchoClient> {
    return new EchoClient(await connectClient(`ws://127.0.0.1:${port}${url}`), url, seed);
  }

  /** Sends `count` messages (text and binary, 0..3000 bytes) and waits for all their echoes. */
  async round(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const bytes = crypto.createHash('sha256').update(`${this.#seed++}`).digest().readUInt16BE(0) % 3000;
      const binary = i % 2 === 0;
      const data = binary ? crypto.randomBytes(bytes) : Buffer.from(crypto.randomBytes(bytes).toString('base64').slice(0, bytes) + 'é€');
      this.sent.add(data, binary);
      this.ws.send(data, { binary });
    }
    const deadline = Date.now() + 10_000;
    while (this.received.count < this.sent.count) {
      if (Date.now() > deadline) throw new Error(`${this.url}: ${this.received.count} of ${this.sent.count} echoes after 10 s`);
      await sleep(10);
    }
  }

  /**
   * Rounds of `messages` echoes, 20 ms apart, until `until` settles or
   * `maxRounds` have gone; then `until`'s outcome. The traffic that makes
   * wstap write its capture until it says something (a log line) about it.
   */
  async roundsUntil<T>(until: Promise<T>, messages: number, maxRounds: number): Promise<T> {
    let settled = false;
    void until.then(() => (settled = true), () => undefined);
    for (let i = 0; i < maxRounds && !settled; i++) {
      await this.round(messages);
      await sleep(20);
    }
    return until;
  }

  async close(): Promise<void> {
    const closed = closedEvent(this.ws);
    this.ws.close(1000, 'done');
    await closed;
  }
}

export function echoEverything(app: UpstreamApp): void {
  void (async () => {
    for (;;) {
      const { ws } = await app.nextConnection();
      ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
    }
  })();
}

