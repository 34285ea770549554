// npm run build && node bench/metrics-overhead.mjs (issue 20): what `proxy --metrics`
// costs the relay.
// Not part of the tests.
//
// Two wstap processes in front of the same echo app, one plain, one with
// --metrics scraped once a second (a busy Prometheus; 15 s is usual). In
// each round, MESSAGES 100 B binary messages are echoed through each, over
// 1 connection (256 in flight) and over 100 (32 in flight each), as
// scenario (b) of bench/relays.mjs (small-1, small-100); measured per round
// and relay: echoed messages per second, and wstap's own CPU time (utime +
// stime of its process, /proc) per echoed message, and that of its main
// thread alone (the event loop; /proc schedstat, in ns). By default both relays
// are loaded at the same time (paired), so whatever else the machine runs
// hits both alike; WSTAP_BENCH_PAIRED=0 loads them one after the other, in
// alternating order. On a shared machine throughput swings widely from
// round to round (paired, each relay gets about half of it); CPU per
// message moves much less, and is the figure to read. Then, in this process, the
// view alone: ns per event of MetricsView.apply over the events one such
// message makes (a frame and a message each way).
//
// Environment: WSTAP_BENCH_RUNS (rounds, default 8), WSTAP_BENCH_MESSAGES
// (per round and relay, default 100,000), WSTAP_BENCH_CONNECTIONS (the
// connection counts measured, comma-separated, default 1,100),
// WSTAP_BENCH_PAIRED (1 by default; 0: one relay at a time),
// WSTAP_BENCH_VIEW_ONLY=1 (only the in-process figure: steadier than the
// relays' on a busy machine), WSTAP_NODE_ARGS (node flags for both wstap
// processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"), WSTAP_METRICS_ARGS
// (more options for the --metrics one, e.g. --metrics-no-process).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startRelay, stopRelay } from './relay-processes.mjs';
import { openSockets } from './scenarios/echo-throughput.mjs';
import { envNumber, firstLine, launch, median } from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const TICK_S = 0.01; // USER_HZ is 100 on Linux

/**
 * CPU seconds of the relay's main thread (its event loop: what bounds its
 * throughput), from the scheduler's own count in ns (/proc/PID/task/PID/schedstat);
 * null where the kernel has no schedstat.
 */
function mainThreadSeconds(pid) {
  try {
    return Number(fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
  } catch {
    return null;
  }
}

function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_S;
}

/** Messages in flight per connection, as scenario (b): 256 on one connection, 32 each on many. */
const windowFor = (connections) => (connections === 1 ? 256 : 32);

/**
 * Exactly `count` echoed messages over `connections` connections (count split
 * evenly) through each of `relays` ({ name, port, pid }), all at the same
 * time: per relay, wall seconds and its CPU seconds.
 */
async function echoRound(relays, count, connections) {
  const payload = Buffer.alloc(100, 0x62);
  const window = windowFor(connections);
  const each = Math.ceil(count / connections);
  const loads = await Promise.all(relays.map(async (r) => ({ ...r, sockets: await openSockets(`ws://127.0.0.1:${r.port}/bench`, connections) })));
  // Warm-up: the JIT and the connections settle first.
  await Promise.all(loads.flatMap((l) => l.sockets.map((ws) => pump(ws, payload, Math.ceil(5000 / connections), window))));
  const results = {};
  await Promise.all(
    loads.map(async (l) => {
      const cpu0 = cpuSeconds(l.pid);
      const main0 = mainThreadSeconds(l.pid);
      const t0 = performance.now();
      await Promise.all(l.sockets.map((ws) => pump(ws, payload, each, window)));
      const main1 = mainThreadSeconds(l.pid);
      results[l.name] = { wall: (performance.now() - t0) / 1000, cpu: cpuSeconds(l.pid) - cpu0, main: main0 === null || main1 === null ? null : main1 - main0, count: each * connections };
    }),
  );
  for (const l of loads) for (const ws of l.sockets) ws.terminate();
  return results;
}

function pump(ws, payload, count, window) {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let received = 0;
    const more = () => {
      while (sent < count && sent - received < window) {
        sent++;
        ws.send(payload, { binary: true });
      }
    };
    const onMessage = () => {
      received++;
      if (received === count) {
        ws.off('message', onMessage);
        resolve();
      } else more();
    };
    ws.on('message', onMessage);
    ws.once('error', reject);
    more();
  });
}

/** ns per event of the view alone, over the events of echoed 100 B messages (frame + message each way). */
async function viewCost() {
  const { ConnectionTracker } = await import(path.join(root, 'dist/analysis/connection-tracker.js'));
  const { findingsAt } = await import(path.join(root, 'dist/analysis/connection-findings.js'));
  const { EMPTY_DIAGNOSIS_CONTEXT } = await import(path.join(root, 'dist/analysis/connection-diagnosis.js'));
  const { MetricsView } = await import(path.join(root, 'dist/metrics/metrics-view.js'));
  const events = [{ kind: 'conn.open', t: 1, conn: 1, mode: 'http', remoteAddress: '127.0.0.1', remotePort: 1, localPort: 2 }];
  for (let i = 0; i < 200_000; i++) {
    const t = 2 + i;
    for (const side of ['client', 'upstream']) {
      events.push({ kind: 'ws.frame', t, conn: 1, side, index: i, offset: i * 106, opcode: 2, fin: true, rsv1: false, rsv2: false, rsv3: false, masked: side === 'client', length: 100, preview: '', previewTruncated: false });
      events.push({ kind: 'ws.message', t, conn: 1, side, opcode: 2, tEnd: t, firstFrame: i, frames: 1, wireLength: 100, compressed: false, size: 100, preview: '', previewTruncated: false });
    }
  }
  const run = (withView) => {
    const tracker = new ConnectionTracker();
    const view = new MetricsView({ processMetrics: false });
    const t0 = performance.now();
    for (const e of events) {
      const summary = tracker.apply(e);
      const findings = findingsAt(e, summary, EMPTY_DIAGNOSIS_CONTEXT);
      if (withView) view.apply(e, summary, findings);
    }
    return ((performance.now() - t0) * 1e6) / events.length;
  };
  const without = [];
  const withView = [];
  for (let i = 0; i < 15; i++) {
    without.push(run(false));
    withView.push(run(true));
  }
  return { without: median(without), with: median(withView), events: events.length };
}

async function main() {
  if (process.env.WSTAP_BENCH_VIEW_ONLY === '1') return printViewCost();
  const runs = Math.round(envNumber('WSTAP_BENCH_RUNS', 8));
  const count = Math.round(envNumber('WSTAP_BENCH_MESSAGES', 100_000));
  const connectionCounts = (process.env.WSTAP_BENCH_CONNECTIONS ?? '1,100').split(',').map((n) => Math.round(Number(n)));
  if (connectionCounts.some((n) => !(n >= 1))) throw new Error(`WSTAP_BENCH_CONNECTIONS "${process.env.WSTAP_BENCH_CONNECTIONS}": give connection counts, e.g. 1,100`);
  const summary = [];
  const paired = process.env.WSTAP_BENCH_PAIRED !== '0';
  if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) throw new Error('not built: run `npm run build` first');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `wstap-metrics-bench-${process.pid}-`));
  const app = launch(process.execPath, [path.join(here, 'echo-app.mjs')]);
  const appPort = Number(await firstLine(app, 'app'));
  const relays = {};
  try {
    for (const name of ['wstap', 'wstap-metrics']) relays[name] = await startRelay(name, appPort, tmp);
    for (const connections of connectionCounts) {
      const results = { wstap: [], 'wstap-metrics': [] };
      console.log(`${connections} connection${connections === 1 ? '' : 's'}, ${windowFor(connections)} in flight each, ${paired ? 'both relays at once' : 'one relay at a time'}:`);
      for (let round = 0; round < runs; round++) {
        const order = round % 2 === 0 ? ['wstap', 'wstap-metrics'] : ['wstap-metrics', 'wstap'];
        const target = (name) => ({ name, port: relays[name].port, pid: relays[name].child.pid });
        const measured = paired ? await echoRound(order.map(target), count, connections) : {};
        if (!paired) for (const name of order) Object.assign(measured, await echoRound([target(name)], count, connections));
        const line = [];
        for (const name of order) {
          const r = measured[name];
          results[name].push(r);
          line.push(`${name} ${(r.count / r.wall).toFixed(0)} msg/s, ${((r.cpu / r.count) * 1e6).toFixed(2)} µs CPU/msg${r.main === null ? '' : ` (main thread ${((r.main / r.count) * 1e6).toFixed(2)})`}`);
        }
        console.log(`  round ${round + 1}/${runs}: ${line.join('; ')}`);
      }
      const rate = (name) => median(results[name].map((r) => r.count / r.wall));
      const cpu = (name) => median(results[name].map((r) => (r.cpu / r.count) * 1e6));
      const label = `${connections} connection${connections === 1 ? '' : 's'}`;
      summary.push(`${label}: echoed messages/s (median of ${runs}): wstap ${rate('wstap').toFixed(0)}, with --metrics ${rate('wstap-metrics').toFixed(0)} (${((100 * rate('wstap-metrics')) / rate('wstap')).toFixed(1)} %)`);
      summary.push(`${label}: wstap CPU per echoed message (median of ${runs}): ${cpu('wstap').toFixed(2)} µs, with --metrics ${cpu('wstap-metrics').toFixed(2)} µs (${((100 * cpu('wstap-metrics')) / cpu('wstap')).toFixed(1)} %)`);
      // CPU time is read in 10 ms ticks: over all rounds together the rounding matters least.
      const overall = (name) => (results[name].reduce((a, r) => a + r.cpu, 0) / results[name].reduce((a, r) => a + r.count, 0)) * 1e6;
      summary.push(`${label}: wstap CPU per echoed message (all ${runs} rounds together): ${overall('wstap').toFixed(2)} µs, with --metrics ${overall('wstap-metrics').toFixed(2)} µs (${((100 * overall('wstap-metrics')) / overall('wstap')).toFixed(1)} %)`);
      // The main thread alone: capture writes (libuv's pool) and V8's GC helpers run on other threads, and swing with the disk and the machine's load.
      if (results.wstap.every((r) => r.main !== null) && results['wstap-metrics'].every((r) => r.main !== null)) {
        const main = (name) => (results[name].reduce((a, r) => a + r.main, 0) / results[name].reduce((a, r) => a + r.count, 0)) * 1e6;
        summary.push(`${label}: wstap main-thread CPU per echoed message (all ${runs} rounds together): ${main('wstap').toFixed(2)} µs, with --metrics ${main('wstap-metrics').toFixed(2)} µs (${((100 * main('wstap-metrics')) / main('wstap')).toFixed(1)} %)`);
      }
    }
    console.log('');
    for (const line of summary) console.log(line);
  } finally {
    for (const r of Object.values(relays)) await stopRelay(r.child);
    await stopRelay(app);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  await printViewCost();
}

async function printViewCost() {
  const v = await viewCost();
  console.log(`the fold alone (tracker + findingsAt) ${v.without.toFixed(0)} ns/event; with MetricsView.apply ${v.with.toFixed(0)} ns/event (+${(v.with - v.without).toFixed(0)} ns; ${v.events} events, median of 15, interleaved)`);
}

await main();
