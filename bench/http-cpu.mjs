// npm run build && node bench/http-cpu.mjs (issue 17): what one plain HTTP
// exchange costs each relay in CPU time. Not part of the tests.
//
// Scenario (e) of bench/relays.mjs (32 keep-alive connections, POST with a
// 100 B body echoed), through node-pipe, nginx and wstap (the same command
// line as in relays.mjs), in alternating rounds. Per round and relay:
// requests per second, and the CPU time (utime + stime, /proc, summed over
// the relay's process tree) per request over the counting window. On a
// 2-core machine the load generator, the app and the relay share the CPUs,
// so throughput moves with whatever else runs; CPU per request moves much
// less, and says what the relay itself spends.
//
// Environment: WSTAP_BENCH_RUNS (rounds, default 6), WSTAP_BENCH_SECONDS
// (window, default 3), WSTAP_BENCH_RELAYS (default node-pipe,nginx,wstap; wstap-alt
// is the build at WSTAP_ALT_ROOT, for an A/B of two builds in the same rounds),
// WSTAP_ARGS (more wstap options, as in relays.mjs).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { processTree, startRelay, stopRelay } from './relay-processes.mjs';
import { httpLoad } from './scenarios/http-keepalive.mjs';
import { envNumber, firstLine, launch, median } from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const TICK_S = 0.01; // USER_HZ is 100 on Linux

function treeCpuSeconds(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // A process that ended between the listing and the read.
    }
  }
  return ticks * TICK_S;
}

async function main() {
  const runs = Math.round(envNumber('WSTAP_BENCH_RUNS', 6));
  const seconds = envNumber('WSTAP_BENCH_SECONDS', 3);
  const names = (process.env.WSTAP_BENCH_RELAYS ?? 'node-pipe,nginx,wstap').split(',').map((s) => s.trim()).filter(Boolean);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `wstap-http-cpu-${process.pid}-`));
  const app = launch(process.execPath, [path.join(here, 'echo-app.mjs')]);
  const relays = {};
  try {
    const appPort = Number(await firstLine(app, 'app'));
    for (const name of names) relays[name] = await startRelay(name, appPort, tmp);
    const results = Object.fromEntries(names.map((n) => [n, []]));
    for (let round = 0; round < runs; round++) {
      const order = names.map((_, i) => names[(i + round) % names.length]);
      const line = [];
      for (const name of order) {
        const { port, child } = relays[name];
        let cpu0 = 0;
        let t0 = 0;
        let cpu = 0;
        let wall = 0;
        const window = {
          start: () => {
            cpu0 = treeCpuSeconds(child.pid);
            t0 = performance.now();
          },
          end: () => {
            wall = (performance.now() - t0) / 1000;
            cpu = treeCpuSeconds(child.pid) - cpu0;
          },
        };
        const rate = await httpLoad(port, { warmupMs: 500, seconds, window });
        const requests = rate * wall;
        results[name].push({ rate, cpuPerRequestUs: (cpu / requests) * 1e6, cpuShare: cpu / wall });
        line.push(`${name} ${rate.toFixed(0)} req/s, ${((cpu / requests) * 1e6).toFixed(1)} µs CPU/req`);
      }
      console.log(`round ${round + 1}: ${line.join('; ')}`);
    }
    const base = names.includes('node-pipe') ? 'node-pipe' : names[0];
    const med = (name, key) => median(results[name].map((r) => r[key]));
    console.log(`\nmedians over ${runs} rounds of ${seconds} s (vs ${base}):`);
    console.log('| relay | requests/s | vs ' + base + ' | CPU µs per request | vs ' + base + ' | CPU share of one core |');
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const name of names) {
      const rate = med(name, 'rate');
      const cpu = med(name, 'cpuPerRequestUs');
      console.log(`| ${name} | ${rate.toFixed(0)} | ${((100 * rate) / med(base, 'rate')).toFixed(1)} % | ${cpu.toFixed(1)} | ${((100 * cpu) / med(base, 'cpuPerRequestUs')).toFixed(1)} % | ${(100 * med(name, 'cpuShare')).toFixed(0)} % |`);
    }
  } finally {
    await Promise.all(Object.values(relays).map((r) => stopRelay(r.child)));
    await stopRelay(app);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
