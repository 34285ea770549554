// A load peer for test/load: run as a child process (child_process.fork) so
// that its sockets count against its own open-files limit, not the test
// runner's nor wstap's. Plain JavaScript: the test suite has no TypeScript
// loader for child processes.
//
//   node test/support/load-peer.mjs upstream   the app behind wstap (a ws server)
//   node test/support/load-peer.mjs client     the clients in front of wstap
//
// Controlled over the IPC channel: the parent sends { id, cmd, args }, the
// peer answers { id, ok: true, result } or { id, ok: false, error }.
//
// Every message either side sends or receives goes into a digest of type,
// length and bytes (as MessageDigest in ws-peers.ts), so the two ends can be
// compared without shipping the bytes. In the soak each side also keeps the
// digest after every message it sent: a receiver that got N messages must
// hold exactly the digest of the sender's first N (its prefix).
import crypto from 'node:crypto';
import http from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';

const role = process.argv[2];
if (role !== 'upstream' && role !== 'client') {
  process.stderr.write(`load-peer: role must be upstream or client, got ${role}\n`);
  process.exit(2);
}

class Digest {
  #hash = crypto.createHash('sha256');
  count = 0;
  bytes = 0;
  /** With `keepList`, a short fingerprint per message ("b65536:1f2e3d4c"), to show where two sequences part. */
  list = null;
  constructor(keepList = false) {
    if (keepList) this.list = [];
  }
  add(data, isBinary) {
    const head = Buffer.alloc(9);
    head.writeUInt8(isBinary ? 2 : 1, 0);
    head.writeDoubleBE(data.length, 1);
    this.#hash.update(head).update(data);
    this.count++;
    this.bytes += data.length;
    this.list?.push(`${isBinary ? 'b' : 't'}${data.length}:${crypto.createHash('sha1').update(data).digest('hex').slice(0, 8)}`);
  }
  hex() {
    return this.#hash.copy().digest('hex');
  }
}

/** mulberry32: a small seeded generator, so a failing soak can be replayed. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Payload sizes around the 7-bit (125/126), 16-bit (65535/65536) length
// boundaries and beyond into the 64-bit form; small ones most often.
const SIZES = [0, 1, 2, 7, 100, 125, 126, 127, 1000, 4096, 65535, 65536, 65537, 70_000, 200_000];
const WEIGHTS = [3, 3, 2, 3, 4, 4, 4, 4, 6, 4, 2, 2, 2, 1, 1];
const WEIGHT_TOTAL = WEIGHTS.reduce((a, b) => a + b, 0);
const RANDOM_POOL = crypto.randomBytes(256 * 1024);
const TEXT_POOL = Buffer.from(crypto.randomBytes(192 * 1024).toString('base64'), 'latin1');

function pickSize(random) {
  let r = random() * WEIGHT_TOTAL;
  for (let i = 0; i < SIZES.length; i++) {
    r -= WEIGHTS[i];
    if (r < 0) return SIZES[i];
  }
  return 0;
}

/** A message of one of the boundary sizes: binary from a random pool, or valid UTF-8 text (some multibyte). */
function randomMessage(random) {
  const size = pickSize(random);
  const binary = random() < 0.5;
  const start = Math.floor(random() * (RANDOM_POOL.length - size));
  if (binary) return { data: Buffer.from(RANDOM_POOL.subarray(start, start + size)), binary };
  const ascii = TEXT_POOL.subarray(start % (TEXT_POOL.length - size), (start % (TEXT_POOL.length - size)) + size);
  // Some text messages carry multibyte characters at the end (then slightly longer than `size`).
  const data = size > 0 && random() < 0.3 ? Buffer.concat([ascii, Buffer.from('é€😀', 'utf8')]) : Buffer.from(ascii);
  return { data, binary };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A soak connection still open this long after it opened is reported as stuck. */
const STUCK_AFTER_MS = 45_000;
const rss = () => process.memoryUsage().rss;

// ---------------------------------------------------------------------------
// The soak's per-connection plan, decided by the client and carried in the
// URL so the upstream knows its part. `closer` sends the close of `how`; the
// other side chats until it sees the connection end.

/** How a connection ends; the side named first does it. */
const CLOSE_MODES = [
  'client-close-frame',
  'server-close-frame',
  'client-reset',
  'server-reset',
  'client-destroy',
  'server-destroy',
  'client-end',
  'server-end',
];

function planFor(id, random) {
  const messages = Math.floor(random() * 24);
  // Connections live 1 to 18 s (a few longer, for their quiet spell before the close).
  const lifetimeMs = 1000 + random() * 17_000;
  return {
    id,
    how: CLOSE_MODES[Math.floor(random() * CLOSE_MODES.length)],
    // Messages each side sends before the closer acts (the other keeps going until the end).
    messages,
    // Mean pause between messages.
    gapMs: Math.floor(lifetimeMs / (messages + 1)),
    // Some connections go quiet a while before the close.
    quietMs: random() < 0.25 ? Math.floor(200 + random() * 2000) : 0,
    deflate: random() < 0.25,
    pings: random() < 0.3,
    seed: Math.floor(random() * 2 ** 31),
  };
}

function planToQuery(plan) {
  return new URLSearchParams({
    id: String(plan.id),
    how: plan.how,
    messages: String(plan.messages),
    gapMs: String(plan.gapMs),
    quietMs: String(plan.quietMs),
    pings: plan.pings ? '1' : '0',
    seed: String(plan.seed),
  }).toString();
}

function planFromUrl(url) {
  const q = new URL(url, 'http://x').searchParams;
  return {
    id: Number(q.get('id')),
    how: q.get('how'),
    messages: Number(q.get('messages')),
    gapMs: Number(q.get('gapMs')),
    quietMs: Number(q.get('quietMs')),
    pings: q.get('pings') === '1',
    seed: Number(q.get('seed')),
  };
}

/**
 * One side of a soak connection: sends random messages at random intervals
 * until it has sent `plan.messages` (closer) or until the connection ends
 * (the other side); the closer then goes quiet for `quietMs` and ends the
 * connection its way. Resolves with the side's record once closed; rejects
 * if the connection never opened.
 *
 * Must be called as soon as `ws` exists (a client: right after `new
 * WebSocket`, not after awaiting 'open'): frames that came in the same TCP
 * segment as the 101 are emitted on the next tick after 'open', before any
 * promise continuation, and a listener attached later misses them.
 */
function runSoakSide(ws, plan, side, seedOffset) {
  const random = prng(plan.seed + seedOffset);
  const closer = plan.how.startsWith(side === 'client' ? 'client-' : 'server-');
  const sent = new Digest(true);
  const snapshots = [sent.hex()];
  const received = new Digest(true);
  let pendingWrites = 0;
  let sendErrors = 0;
  /** Messages whose write completed (in order: ws calls back in send order). */
  let written = 0;
  let ended = false;
  let pingsSent = 0;
  let socket = null;
  let openError = null;
  ws.on('message', (data, isBinary) => received.add(data, isBinary));
  ws.on('error', (err) => {
    if (ws.readyState === WebSocket.CONNECTING || (socket === null && ws.readyState === WebSocket.CLOSED)) openError ??= err;
  });
  ws.once('unexpected-response', (_req, res) => {
    openError = new Error(`unexpected response ${res.statusCode}`);
    ws.terminate();
  });
  const opened = new Promise((resolve) => {
    const onOpen = () => {
      socket = ws._socket;
      socket.on('error', () => undefined);
      resolve();
    };
    if (ws.readyState === WebSocket.OPEN) onOpen();
    else ws.once('open', onOpen);
  });

  const closed = new Promise((resolve) => {
    ws.once('close', (code, reason) => {
      ended = true;
      resolve({ code, reason: reason.toString() });
    });
  });
  // A connection lives at most ~20 s by its plan: one still open long after
  // is stuck (something lost its close); end it so the run can report it.
  let stuck = false;
  const watchdog = setTimeout(() => {
    stuck = true;
    ws.terminate();
  }, STUCK_AFTER_MS);
  closed.then(() => clearTimeout(watchdog));
  /** A pause that ends early when the connection does. */
  const pause = (ms) => Promise.race([sleep(ms), closed]);

  const sendOne = () => {
    if (ws.readyState !== WebSocket.OPEN) return false;
    const { data, binary } = randomMessage(random);
    sent.add(data, binary);
    snapshots.push(sent.hex());
    pendingWrites++;
    ws.send(data, { binary }, (err) => {
      pendingWrites--;
      if (err) sendErrors++;
      else written++;
    });
    return true;
  };

  const flushed = async () => {
    while (pendingWrites > 0 && !ended) await pause(5);
  };

  const act = async () => {
    if (closer) {
      for (let i = 0; i < plan.messages && !ended; i++) {
        await pause(random() * 2 * plan.gapMs);
        if (!sendOne()) break;
        if (plan.pings && random() < 0.2 && ws.readyState === WebSocket.OPEN) {
          ws.ping(Buffer.from(`p${pingsSent++}`));
        }
      }
      if (plan.quietMs > 0) await pause(plan.quietMs);
      if (ended) return;
      const how = plan.how.slice(plan.how.indexOf('-') + 1);
      if (how === 'close-frame') {
        ws.close(random() < 0.5 ? 1000 : 4000 + Math.floor(random() * 999), random() < 0.5 ? '' : `bye ${plan.id}`);
      } else if (how === 'reset') {
        socket.resetAndDestroy();
      } else if (how === 'destroy') {
        socket.destroy();
      } else if (how === 'end') {
        // A half-close without a close frame: everything written first, then FIN.
        await flushed();
        if (!ended) socket.end();
      }
    } else {
      // The other side: chat until the connection ends (no count, but not forever).
      for (let i = 0; i < 200 && !ended; i++) {
        await pause(random() * 2 * plan.gapMs);
        if (ended || !sendOne()) break;
        if (plan.pings && random() < 0.2 && ws.readyState === WebSocket.OPEN) ws.ping(Buffer.from(`q${pingsSent++}`));
      }
    }
  };

  return (async () => {
    await Promise.race([opened, closed]);
    if (socket === null) throw openError ?? new Error('closed before it opened');
    const acting = act();
    const { code, reason } = await closed;
    await acting;
    return {
      id: plan.id,
      side,
      how: plan.how,
      stuck,
      code,
      reason,
      // Messages ws accepted for sending (written or queued while OPEN), and
      // the digest after each, for the other side's prefix check.
      sentCount: sent.count,
      sentBytes: sent.bytes,
      sentSnapshots: snapshots,
      sentList: sent.list,
      written,
      sendErrors,
      deflate: Boolean(ws.extensions && ws.extensions.includes('permessage-deflate')),
      receivedCount: received.count,
      receivedBytes: received.bytes,
      receivedDigest: received.hex(),
      receivedList: received.list,
    };
  })();
}

// ---------------------------------------------------------------------------
// upstream

function startUpstream() {
  const sockets = new Set();
  /** Held connections (memory test) by id. */
  const held = new Set();
  const soakRecords = [];
  const floods = [];
  let soakOpen = 0;
  const server = http.createServer((_req, res) => {
    res.writeHead(404);
    res.end();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: true, maxPayload: 64 * 1024 * 1024 });
  wss.on('connection', (ws, req) => {
    ws.on('error', () => undefined);
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/hold') {
      // Memory test: echo each message once, keep the connection until the client closes it.
      held.add(ws);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.once('close', () => held.delete(ws));
    } else if (path === '/flood') {
      const got = new Digest();
      const record = { got, done: null };
      floods.push(record);
      ws.on('message', (data, isBinary) => got.add(data, isBinary));
      ws.once('close', (code) => {
        record.done = { code, count: got.count, bytes: got.bytes, digest: got.hex() };
      });
    } else if (path === '/soak') {
      soakOpen++;
      runSoakSide(ws, planFromUrl(req.url ?? ''), 'server', 7919).then((r) => {
        soakOpen--;
        soakRecords.push(r);
      });
    } else {
      ws.close(4404, 'unknown path');
    }
  });

  return {
    async listen() {
      await new Promise((resolve) => server.listen(0, '127.0.0.1', 1024, resolve));
      return { port: server.address().port };
    },
    async stats() {
      return { held: held.size, sockets: sockets.size, soakOpen, soakDone: soakRecords.length, rss: rss() };
    },
    async floodResult({ index }) {
      const deadline = Date.now() + 60_000;
      while (!floods[index]?.done) {
        if (Date.now() > deadline) throw new Error('flood connection did not close');
        await sleep(20);
      }
      return floods[index].done;
    },
    async soakRecords() {
      return soakRecords.splice(0);
    },
  };
}

// ---------------------------------------------------------------------------
// client

function connect(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
}

function startClient() {
  const held = [];

  /** Runs `task(i)` for i in [0, count) with at most `concurrency` at a time. */
  async function pool(count, concurrency, task) {
    let next = 0;
    const workers = Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++);
    });
    await Promise.all(workers);
  }

  return {
    /** Opens `count` connections to `url` and keeps them; each sends one message and waits for its echo. */
    async open({ url, count, concurrency = 100, message = 64, deflate = false }) {
      const started = Date.now();
      const errors = [];
      await pool(count, concurrency, async () => {
        try {
          const ws = await connect(url, { perMessageDeflate: deflate });
          ws.on('error', () => undefined);
          const echoed = new Promise((resolve) => ws.once('message', resolve));
          // Text over ws's 1 KiB threshold is compressed when permessage-deflate was negotiated.
          ws.send(deflate ? 'x'.repeat(Math.max(message, 2048)) : Buffer.alloc(message, 0x2a));
          await echoed;
          held.push(ws);
        } catch (err) {
          errors.push(String(err.message ?? err));
        }
      });
      return { opened: held.length, errors: errors.slice(0, 5), errorCount: errors.length, ms: Date.now() - started, rss: rss() };
    },
    /** Closes every held connection with a close frame and waits for each to close. */
    async closeAll({ concurrency = 500 } = {}) {
      const started = Date.now();
      const all = held.splice(0);
      const codes = new Map();
      await pool(all.length, concurrency, async (i) => {
        const ws = all[i];
        const done = new Promise((resolve) => ws.once('close', resolve));
        ws.close(1000);
        const code = await done;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      });
      return { closed: all.length, codes: Object.fromEntries(codes), ms: Date.now() - started };
    },
    /**
     * One connection; sends `bytes` in binary messages of `messageSize`, each
     * numbered, as fast as the socket takes them (a window of writes in
     * flight), then closes with 1000.
     */
    async flood({ url, bytes, messageSize, window = 16 }) {
      const ws = await connect(url);
      ws.on('error', () => undefined);
      const sent = new Digest();
      const template = crypto.randomBytes(messageSize);
      const total = Math.ceil(bytes / messageSize);
      const started = Date.now();
      let next = 0;
      await new Promise((resolve, reject) => {
        let inflight = 0;
        const pump = () => {
          while (inflight < window && next < total) {
            const size = Math.min(messageSize, bytes - next * messageSize);
            const data = Buffer.from(template.subarray(0, size));
            data.writeUInt32BE(next, 0);
            sent.add(data, true);
            inflight++;
            next++;
            ws.send(data, { binary: true }, (err) => {
              inflight--;
              if (err) reject(err);
              else if (next === total && inflight === 0) resolve();
              else pump();
            });
          }
        };
        pump();
      });
      const sendMs = Date.now() - started;
      const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
      ws.close(1000, 'flood done');
      const code = await closed;
      return { messages: sent.count, bytes: sent.bytes, digest: sent.hex(), sendMs, code };
    },
    /**
     * The soak: `total` connections, at most `concurrency` open at once, new
     * ones started evenly over `spreadMs`; each follows its plan. Resolves
     * with every connection's client-side record.
     */
    async soak({ url, total, concurrency, spreadMs, seed }) {
      const random = prng(seed);
      const plans = Array.from({ length: total }, (_, id) => planFor(id, random));
      const records = [];
      const failures = [];
      let open = 0;
      let peak = 0;
      const started = Date.now();
      const spacing = spreadMs / total;
      await pool(total, concurrency, async (i) => {
        const plan = plans[i];
        // Start no earlier than its slot: the starts are spread over spreadMs.
        const wait = started + i * spacing - Date.now();
        if (wait > 0) await sleep(wait);
        try {
          const ws = new WebSocket(`${url}?${planToQuery(plan)}`, { perMessageDeflate: plan.deflate });
          const record = runSoakSide(ws, plan, 'client', 104729);
          ws.once('open', () => {
            open++;
            peak = Math.max(peak, open);
            ws.once('close', () => open--);
          });
          records.push(await record);
        } catch (err) {
          failures.push({ id: plan.id, error: String(err.message ?? err) });
        }
      });
      return { records, failures, peakOpen: peak, ms: Date.now() - started, plans };
    },
    async stats() {
      return { held: held.length, rss: rss() };
    },
  };
}

// ---------------------------------------------------------------------------

const api = role === 'upstream' ? startUpstream() : startClient();
process.on('message', async (msg) => {
  const { id, cmd, args } = msg;
  try {
    if (typeof api[cmd] !== 'function') throw new Error(`unknown command ${cmd}`);
    const result = await api[cmd](args ?? {});
    process.send({ id, ok: true, result });
  } catch (err) {
    process.send({ id, ok: false, error: String(err?.stack ?? err) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
