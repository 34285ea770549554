// npm run bench (second part): wstap next to other relays, same run, same app.
// Issue 7. Not part of the tests. Writes bench/RESULTS.md.
//
// Files: this entry (configuration, rounds, progress); bench/util.mjs
// (helpers); bench/relay-processes.mjs (starting/stopping relays, /proc
// memory and descriptors); bench/node-pipe.mjs, bench/echo-app.mjs (child
// processes); bench/scenarios/*.mjs (one per scenario: measurement and its
// report section); bench/report.mjs (RESULTS.md).
//
// Processes (all on 127.0.0.1, free ports, started by this file):
//   - app: bench/echo-app.mjs in a CHILD process: a `ws` echo server
//     (perMessageDeflate off) that also echoes plain HTTP request bodies;
//   - relays under test, each its own process, forwarding to the app. For the
//     'shared' scenarios one instance of each is started once and kept for
//     the whole suite; the idle-connections scenario starts a fresh instance
//     per measurement (and stops it, with any forks, afterwards):
//       direct     no relay: the load generator talks to the app
//       node-pipe  bench/node-pipe.mjs: net.createServer + net.connect, pipe
//                  both ways, allowHalfOpen, noDelay
//       socat      TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr,fork,backlog=1024,nodelay TCP:127.0.0.1:APP,nodelay
//       nginx      alone, as the WebSocket and HTTP reverse proxy (temp prefix
//                  and conf; worker_connections = open-files hard limit)
//       wstap      bin/wstap proxy --no-tui --log-format json --capture FILE
//                  (decoder on, capture on: the defaults)
//       mitmdump   --mode reverse:http://127.0.0.1:APP -q
//       mockttp    bench/mockttp-relay.mjs: mockttp 4.6.5 (HTTP Toolkit's
//                  engine) forwarding HTTP and WebSocket to the app; from
//                  bench/peers (npm --prefix bench/peers install); in (b) and (e) only
//     socat, nginx and mitmdump run with their soft open-files limit raised
//     to the hard limit (sh -c 'ulimit -S -n HARD; exec ...'); Node raises
//     its own. A relay whose binary (or module) is missing is reported as missing, not
//     dropped; one that fails a measurement is reported with the error.
//   - load generator: this process.
//
// Scenarios (ids for WSTAP_BENCH_SCENARIOS; fresh connections per
// measurement, warm-up first):
//   bulk       (a) one connection, 64 KiB binary messages, pipelined echo with
//              at most 16 messages (1 MiB) in flight: every byte crosses the
//              relay both ways; MiB/s received in total = (bytes the app
//              received + bytes the client received) / s = 2 x echoed bytes / s.
//   small-1 / small-100
//              (b) 100 B binary messages over 1 / 100 connections, pipelined
//              echo with a window per connection (256 for 1 connection, 32
//              each for 100): backpressure is the window; result = echoed
//              messages per second (each crossed the relay twice).
//   latency    (c) one connection, a 100 B binary message every 1 ms on an
//              absolute schedule (a worker thread's Atomics.wait clock wakes
//              the load generator, which sends whatever is due; messages sent
//              >= 1 ms after their due time are counted as late), the app
//              echoes; round trip per message (id in the payload); p50, p99,
//              max over the window. Added latency = relay - direct in the same
//              round, median over the rounds.
//   http       (e) plain HTTP: 32 keep-alive connections, POST with a 100 B
//              body echoed, one request at a time per connection; requests/s.
//   idle       (d) N idle WebSocket connections through a fresh relay
//              instance: time to open them (100 handshakes in flight) and the
//              relay's memory per connection ((held - idle) / N, Pss and VmRSS
//              summed over its process tree), then one echo on each to check
//              they all work. N = min(WSTAP_BENCH_IDLE_CONNECTIONS (10,000),
//              floor((open-files hard limit - 100) / 2)).
// Letters a-e select scenarios too (b = small-1 and small-100).
//
// Order: RUNS rounds; in each round every scenario is measured on every relay
// (relay order rotates per round), so slow drift of a shared VM spreads over
// all relays; within a round the scenarios run in the order listed above
// (idle last), idle only in the first IDLE_RUNS rounds. The report lists them (a) to (e). Medians, min-max,
// ratios of medians; a full run takes about 17 minutes on 2 cores.
//
// Environment: WSTAP_BENCH_QUICK=1 (2 runs, 1 s windows, 1 idle run: about
// 3 minutes), WSTAP_BENCH_RUNS, WSTAP_BENCH_SECONDS, WSTAP_BENCH_RELAYS
// (comma list, e.g. "node-pipe,wstap"), WSTAP_BENCH_SCENARIOS (comma list of
// scenario ids or letters, e.g. "latency,http" or "c,e"), WSTAP_BENCH_IDLE_RUNS
// (runs of the idle scenario; default: as many as RUNS), WSTAP_BENCH_IDLE_CONNECTIONS
// (N before the descriptor cap; 10,000), WSTAP_BENCH_OUT (where the report
// goes; bench/RESULTS.md by default), WSTAP_NODE_ARGS (node flags for wstap
// alone, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"), WSTAP_ARGS (more wstap
// options, for experiments, e.g. "--log-level warn"; the report says so),
// WSTAP_METRICS_ARGS (more options for wstap-metrics alone, e.g.
// --metrics-no-process).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { RELAYS, isInstalled, measuredIn, startRelay, stopRelay } from './relay-processes.mjs';
import { report } from './report.mjs';
import { echoThroughputScenarios } from './scenarios/echo-throughput.mjs';
import { httpKeepAliveScenario } from './scenarios/http-keepalive.mjs';
import { idleConnectionCount, idleConnectionsScenario } from './scenarios/idle-connections.mjs';
import { latencyScenario } from './scenarios/latency.mjs';
import { envNumber, firstLine, isRunning, launch } from './util.mjs';

const here = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(here), '..');

// Run order within a round; 'idle' last (it starts and stops its own relay instances). The report sorts by letter.
const SCENARIOS = [...echoThroughputScenarios, latencyScenario, httpKeepAliveScenario, idleConnectionsScenario];

function selectScenarios(filter) {
  if (!filter) return SCENARIOS;
  const wanted = filter.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = wanted.filter((w) => !SCENARIOS.some((s) => s.id === w || s.letter === w));
  if (unknown.length) throw new Error(`WSTAP_BENCH_SCENARIOS: unknown ${unknown.join(', ')} (ids: ${SCENARIOS.map((s) => s.id).join(', ')}; or letters a-e)`);
  return SCENARIOS.filter((s) => wanted.includes(s.id) || wanted.includes(s.letter));
}

async function main() {
  const quick = process.env.WSTAP_BENCH_QUICK === '1';
  const runs = Math.round(envNumber('WSTAP_BENCH_RUNS', quick ? 2 : 5));
  const seconds = envNumber('WSTAP_BENCH_SECONDS', quick ? 1 : 3);
  const warmupMs = quick ? 200 : 500;
  const only = process.env.WSTAP_BENCH_RELAYS ? process.env.WSTAP_BENCH_RELAYS.split(',').map((s) => s.trim()) : null;
  const scenarioFilter = process.env.WSTAP_BENCH_SCENARIOS || null;
  const scenarios = selectScenarios(scenarioFilter);
  const idle = {
    ...idleConnectionCount(Math.round(envNumber('WSTAP_BENCH_IDLE_CONNECTIONS', 10000))),
    runs: Math.min(runs, Math.round(envNumber('WSTAP_BENCH_IDLE_RUNS', quick ? 1 : runs))),
    concurrency: 100,
    openTimeoutS: 120,
    settleMs: quick ? 1000 : 2000,
  };
  const cfg = { quick, runs, seconds, warmupMs, scenarioFilter, idle };
  if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) throw new Error('not built: run `npm run build` first');

  const started = performance.now();
  const date = new Date().toISOString();
  const cpus = os.cpus();
  const machine = `${cpus.length} cores (${cpus[0]?.model?.trim() ?? 'unknown cpu'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, node ${process.version}, ${os.type()} ${os.release()}`;
  console.log(`machine: ${machine}`);
  console.log(`${runs} runs per scenario and relay, ${seconds} s window after ${warmupMs} ms warm-up${quick ? ' (WSTAP_BENCH_QUICK)' : ''}; scenarios: ${scenarios.map((s) => s.id).join(', ')}`);
  if (scenarios.includes(idleConnectionsScenario)) console.log(`idle connections: N = ${idle.connections} (requested ${idle.requested}, descriptor cap ${idle.cap} from hard limit ${idle.hard}), ${idle.runs} run(s)`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `wstap-relays-${process.pid}-`));
  const children = [];
  const cleanup = async () => { await Promise.all(children.map(stopRelay)); fs.rmSync(tmp, { recursive: true, force: true }); };
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)); });

  const results = {}; // relay -> { status, port, child, values: {scenario: []}, errors: {scenario: []} }
  try {
    const app = launch(process.execPath, [path.join(path.dirname(here), 'echo-app.mjs')]);
    children.push(app);
    const appPort = Number(await firstLine(app, 'app'));
    const needShared = scenarios.some((s) => s.relays === 'shared');

    const available = [];
    const live = [];
    for (const relay of RELAYS) {
      if (only && !only.includes(relay.name)) continue;
      const entry = { status: 'ok', values: {}, errors: {} };
      results[relay.name] = entry;
      if (!isInstalled(relay)) {
        entry.status = `missing (not installed: ${relay.install})`;
        console.log(`${relay.name}: ${entry.status}`);
        continue;
      }
      available.push(relay.name);
      if (!needShared) continue;
      try {
        const r = await startRelay(relay.name, appPort, tmp);
        if (r.child) children.push(r.child);
        Object.assign(entry, { port: r.port, child: r.child, capture: r.capture });
        live.push(relay.name);
        console.log(`${relay.name}: listening on 127.0.0.1:${r.port}`);
      } catch (err) {
        entry.status = `failed to start: ${String(err.message).split('\n')[0].slice(0, 200)}`;
        console.log(`${relay.name}: ${entry.status}`);
      }
    }

    for (let round = 0; round < runs; round++) {
      for (const sc of scenarios) {
        const own = sc.relays === 'own';
        if (own && round >= idle.runs) continue;
        const pool = (own ? available.filter((n) => results[n].status === 'ok') : live).filter((n) => measuredIn(n, sc.id));
        const order = pool.map((_, i) => pool[(i + round) % pool.length]);
        const line = [];
        for (const name of order) {
          const entry = results[name];
          (entry.values[sc.id] ??= []);
          try {
            if (!own && entry.child && !isRunning(entry.child)) throw new Error(`${name} is no longer running`);
            const v = await sc.measure({ name, port: entry.port, appPort, appPid: app.pid, tmp, cfg, round, children });
            entry.values[sc.id].push(v);
            line.push(`${name} ${sc.describe(v)}`);
          } catch (err) {
            (entry.errors[sc.id] ??= []).push(String(err.message ?? err).split('\n')[0].slice(0, 200));
            line.push(`${name} error (${String(err.message ?? err).split('\n')[0].slice(0, 80)})`);
          }
          if (own) console.log(`run ${round + 1}/${idle.runs} ${sc.id}: ${line.at(-1)}`);
        }
        if (!own) console.log(`run ${round + 1}/${runs} ${sc.id}: ${line.join(', ')}`);
      }
    }
    for (const name of live) {
      const c = results[name].capture;
      if (c && fs.existsSync(c)) results[name].captureBytes = fs.statSync(c).size;
    }
    if (!isRunning(app)) throw new Error(`the echo app exited (${app.exitCode ?? app.signalCode}): ${app.stderrText().slice(-300)}`);
  } finally {
    await cleanup();
  }

  const totalS = (performance.now() - started) / 1000;
  const inReportOrder = [...scenarios].sort((x, y) => x.letter.localeCompare(y.letter)); // (a) to (e); stable within a letter
  const md = report({ results, scenarios: inReportOrder, cfg, machine, date, totalS });
  const out = process.env.WSTAP_BENCH_OUT || path.join(root, 'bench', 'RESULTS.md');
  fs.writeFileSync(out, md);
  console.log('');
  console.log(md);
  console.log(`wrote ${path.relative(process.cwd(), out) || out} (${totalS.toFixed(0)} s)`);
}

await main();
