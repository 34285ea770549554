// Scenario (c) added latency: request/response over one WebSocket connection
// at a fixed rate (1,000 messages a second), round-trip p50/p99/max, and the
// latency a relay adds = its figure minus direct's figure in the same round.
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { measuredIn } from '../relay-processes.mjs';
import { fmtNum, median, percentile, sleep, withTimeout } from '../util.mjs';
import { openSocket } from './echo-throughput.mjs';

const SIZE = 100; // bytes per message; the first 4 carry the message id
const PERIOD_MS = 1; // one message every PERIOD_MS: 1,000 messages a second

const CLOCK = `
const { parentPort, workerData } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const cell = new Int32Array(new SharedArrayBuffer(4));
const start = workerData.t0Abs - performance.timeOrigin;
for (let i = 0; i < workerData.total; i++) {
  const wait = start + i * workerData.period - performance.now();
  if (wait > 0) Atomics.wait(cell, 0, 0, wait);
  parentPort.postMessage(i);
}
`;

/**
 * One connection; message i is due at t0 + i * PERIOD_MS (absolute schedule,
 * so timer drift does not lower the rate). Each clock tick sends every message
 * that is due; one sent a whole period or more after its due time counts as
 * late (this thread was busy). Round trip = echo arrival - the moment it
 * was actually sent.
 */
async function latencyRun(port, { warmupMs, seconds }) {
  const ws = await openSocket(`ws://127.0.0.1:${port}/bench`);
  const warmup = Math.ceil(warmupMs / PERIOD_MS);
  const total = warmup + Math.ceil((seconds * 1000) / PERIOD_MS);
  const sentAt = new Float64Array(total);
  const rtt = new Float64Array(total).fill(NaN);
  let received = 0;
  let error = null;
  let allEchoed = null;
  let finished = false;
  ws.on('message', (data) => {
    const now = performance.now();
    const id = data.readUInt32LE(0);
    if (id < total && Number.isNaN(rtt[id])) { rtt[id] = now - sentAt[id]; received++; }
    if (received === total) allEchoed?.();
  });
  ws.on('error', (e) => { error ??= e; });
  ws.on('close', () => { if (!finished) error ??= new Error('connection closed during the measurement'); allEchoed?.(); });

  let late = 0;
  let next = 0;
  const t0 = performance.now() + 20;
  // The clock: a worker thread sleeps to each due time with Atomics.wait
  // (sub-millisecond, no busy loop) and wakes this thread with a message;
  // setTimeout here would fire up to 2 ms late (libuv timers count whole ms).
  const clock = new Worker(CLOCK, { eval: true, workerData: { t0Abs: performance.timeOrigin + t0, period: PERIOD_MS, total } });
  await new Promise((resolve, reject) => {
    clock.on('error', reject);
    clock.on('exit', () => resolve()); // after its last tick; a shortfall then shows as missing echoes
    clock.on('message', () => {
      while (next < total && !error) {
        const due = t0 + next * PERIOD_MS;
        const now = performance.now();
        if (now < due) break;
        if (next >= warmup && now - due >= PERIOD_MS) late++;
        const msg = Buffer.alloc(SIZE, 0x6c);
        msg.writeUInt32LE(next, 0);
        sentAt[next] = now;
        ws.send(msg, { binary: true });
        next++;
      }
      if (next >= total || error) resolve();
    });
  }).finally(() => clock.terminate());
  const elapsedS = (performance.now() - (t0 + warmup * PERIOD_MS)) / 1000;
  if (received < total && !error) {
    await withTimeout(new Promise((r) => { allEchoed = r; }), 5000);
  }
  finished = true;
  ws.terminate();
  await sleep(50);
  if (error) throw error;
  const window = Array.from(rtt.subarray(warmup));
  const lost = window.filter(Number.isNaN).length;
  if (lost) throw new Error(`${lost} of ${window.length} echoes missing 5 s after the last send`);
  window.sort((a, b) => a - b);
  return { p50: percentile(window, 50), p99: percentile(window, 99), max: window[window.length - 1], samples: window.length, late, rate: window.length / elapsedS };
}

/** Per relay, per round: the relay's figure minus direct's figure of the same round; median over the rounds. */
function addedMedian(results, name, field) {
  const direct = results.direct?.values?.latency ?? [];
  const diffs = [];
  for (const v of results[name]?.values?.latency ?? []) {
    const d = direct.find((x) => x.round === v.round);
    if (d) diffs.push(v[field] - d[field]);
  }
  return diffs.length ? { median: median(diffs), min: Math.min(...diffs), max: Math.max(...diffs), n: diffs.length } : undefined;
}

const ms = (v, digits = 3) => (v === undefined ? '–' : fmtNum(v, digits));

export const latencyScenario = {
  id: 'latency',
  letter: 'c',
  title: `(c) added latency: 1 connection, ${SIZE} B binary request/response at a fixed ${1000 / PERIOD_MS} messages/s, round trip`,
  relays: 'shared',
  async measure({ port, cfg, round }) {
    return { round, ...(await latencyRun(port, cfg)) };
  },
  describe: (v) => `p50 ${v.p50.toFixed(3)} p99 ${v.p99.toFixed(3)} ms${v.late ? ` (${v.late} late)` : ''}`,
  section(results) {
    const L = [`## ${this.title}`, ''];
    L.push(`Message i is due at start + i ms (absolute schedule from performance.now()); a worker thread sleeps to each due time (Atomics.wait, sub-millisecond, no busy loop; Node timers count whole milliseconds) and wakes the load generator, which sends every message that is due, so the rate holds when it falls behind; the app echoes; round trip = echo arrival - actual send time, matched by an id in the payload. Per run: p50, p99 and max over the window (warm-up excluded), about ${1000 / PERIOD_MS} samples a second. Added = the relay's figure minus direct's figure in the same round, then the median over the rounds. "late" = messages sent a whole period (1 ms) or more after their due time (the load generator's thread was busy or not scheduled), summed over the runs. The load generator, the app and the relay share the machine's cores, so the figures include scheduling noise. Every relay sets TCP_NODELAY, as the \`ws\` app and client do (node-pipe \`noDelay\`, socat \`nodelay\`, nginx \`tcp_nodelay\` by default, wstap itself); mitmdump as it comes.`);
    L.push('');
    L.push('| relay | median p50 ms | median p99 ms | p99 min – max | median max ms | added p50 ms | added p99 ms | added p99 min – max | runs | late | added p99 - node-pipe\'s |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    const baseAdded = addedMedian(results, 'node-pipe', 'p99');
    for (const [name, e] of Object.entries(results)) {
      if (!measuredIn(name, 'latency')) continue;
      if (e.status !== 'ok') { L.push(`| ${name} | ${e.status} | | | | | | | | | |`); continue; }
      const v = e.values.latency ?? [];
      const p99s = v.map((x) => x.p99);
      const a50 = name === 'direct' ? undefined : addedMedian(results, name, 'p50');
      const a99 = name === 'direct' ? undefined : addedMedian(results, name, 'p99');
      const errs = e.errors.latency?.length ? ` (${e.errors.latency.length} failed: ${e.errors.latency[0]})` : '';
      const late = v.reduce((s, x) => s + x.late, 0);
      const vsBase = a99 && baseAdded && name !== 'node-pipe' ? `${a99.median - baseAdded.median >= 0 ? '+' : ''}${ms(a99.median - baseAdded.median)} ms` : name === 'node-pipe' && a99 ? '0' : '–';
      L.push(`| ${name} | ${ms(median(v.map((x) => x.p50)))} | ${ms(median(p99s))} | ${v.length ? `${ms(Math.min(...p99s))} – ${ms(Math.max(...p99s))}` : '–'} | ${ms(median(v.map((x) => x.max)))} | ${name === 'direct' ? '(reference)' : ms(a50?.median)} | ${name === 'direct' ? '(reference)' : ms(a99?.median)} | ${a99 ? `${ms(a99.min)} – ${ms(a99.max)}` : '–'} | ${v.length}${errs} | ${v.length ? late : '–'} | ${vsBase} |`);
    }
    L.push('');
    return L;
  },
  summary(results) {
    const w = addedMedian(results, 'wstap', 'p99');
    const n = addedMedian(results, 'node-pipe', 'p99');
    const m = addedMedian(results, 'mitmdump', 'p99');
    let vsMitm;
    let mitmMet = 'not measured';
    if (w && m) {
      if (w.median > 0) { vsMitm = `${(m.median / w.median).toFixed(1)}x`; mitmMet = m.median / w.median >= 10 ? 'yes' : 'no'; }
      else { vsMitm = `mitmdump adds ${ms(m.median)} ms, wstap ${ms(w.median)} ms (within noise)`; mitmMet = m.median > 0 ? 'yes' : 'no'; }
    }
    return [{
      id: 'latency', letter: 'c',
      wstap: w ? `adds ${ms(w.median)} ms at p99` : '–',
      vsNodePipe: n ? `node-pipe adds ${ms(n.median)} ms` : '–',
      target: 'added p99 < 1 ms',
      met: w ? (w.median < 1 ? 'yes' : 'no') : 'not measured',
      figure: w ? `${ms(w.median)} ms` : '–',
      vsMitm,
      mitmMet,
    }];
  },
};
