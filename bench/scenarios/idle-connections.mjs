// Scenario (d) many connections: N idle WebSocket connections through a
// FRESH instance of the relay (started for this measurement, so what earlier
// scenarios left in its heap does not hide or inflate the growth): time to
// open them all, and the relay's resident memory per connection =
// (memory holding them - memory idle before) / N, summed over its process tree.
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { nginxWorkerConnections, nofileLimits, startRelay, stopRelay, treeFds, treeMemory, measuredIn } from '../relay-processes.mjs';
import { fmtNum, isRunning, median, sleep, withTimeout } from '../util.mjs';
import { openSocket } from './echo-throughput.mjs';

const WARM_CONNECTIONS = 10; // opened, echoed and closed once before the idle baseline is read
const DESCRIPTOR_RESERVE = 100; // descriptors a relay keeps for its own files (listener, capture, stdio, ...)
const DESCRIPTORS_PER_CONNECTION = 2; // client side + app side

/**
 * N for this machine: the requested count (10,000 by default), capped so a
 * relay holding 2 descriptors per connection stays within the open-files hard
 * limit, which no process here can raise.
 */
export function idleConnectionCount(requested) {
  const { hard } = nofileLimits();
  const cap = Number.isFinite(hard) ? Math.floor((hard - DESCRIPTOR_RESERVE) / DESCRIPTORS_PER_CONNECTION) : Infinity;
  return { connections: Math.min(requested, cap), requested, cap, hard };
}

async function waitUntil(check, timeoutMs, stepMs = 250) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(stepMs);
  }
}

/** Open `count` connections, at most `concurrency` handshakes in flight, stopping at the first failure or at the deadline. */
async function openMany(url, count, concurrency, deadline) {
  const sockets = [];
  let failure = null;
  let launched = 0;
  let inflight = 0;
  let lastOpen = performance.now();
  const t0 = performance.now();
  await new Promise((resolve) => {
    const pump = () => {
      while (!failure && launched < count && inflight < concurrency && Date.now() < deadline) {
        launched++;
        inflight++;
        openSocket(url, Math.min(30000, Math.max(2000, deadline - Date.now()))).then((ws) => {
          sockets.push(ws);
          lastOpen = performance.now();
        }, (err) => {
          failure ??= `${String(err.message ?? err).slice(0, 160)} (after ${sockets.length} open)`;
        }).finally(() => {
          inflight--;
          if (inflight === 0 && (failure || launched >= count || Date.now() >= deadline)) resolve();
          else pump();
        });
      }
      if (inflight === 0) resolve();
    };
    pump();
  });
  if (!failure && sockets.length < count) failure = `time limit reached after ${sockets.length} open`;
  return { sockets, failure, openS: (lastOpen - t0) / 1000 };
}

/** One small message on each socket; resolves with how many echoed within the time limit. */
async function echoEach(sockets, timeoutMs) {
  let echoed = 0;
  let done;
  const all = new Promise((r) => { done = r; });
  const payload = Buffer.from('idle-ok!');
  for (const ws of sockets) {
    ws.once('message', () => { if (++echoed === sockets.length) done(); });
    try { ws.send(payload, { binary: true }); } catch { /* counted as not echoed */ }
  }
  await withTimeout(all, timeoutMs);
  return echoed;
}

async function idleRun({ name, appPort, appPid, tmp, cfg, round, children }) {
  const { connections: N, concurrency, openTimeoutS, settleMs } = cfg.idle;
  let inst = null;
  const clients = []; // every client socket of this run, terminated however the run ends
  try {
    inst = name === 'direct' ? { port: appPort, child: null } : await startRelay(name, appPort, tmp, `idle-${round}`);
    if (inst.child) children.push(inst.child); // stopped by the suite's cleanup too (Ctrl-C)
    const pid = inst.child?.pid;
    const url = `ws://127.0.0.1:${inst.port}/bench`;
    const fdStart = pid ? treeFds(pid) : 0;

    // Warm-up: the first connections pay for lazy initialisation (code paths, pools), not per-connection state.
    const warm = await Promise.all(Array.from({ length: WARM_CONNECTIONS }, () => openSocket(url)));
    clients.push(...warm);
    if ((await echoEach(warm, 10000)) !== warm.length) throw new Error('warm-up echo failed');
    for (const ws of warm) ws.terminate();
    if (pid) await waitUntil(() => treeFds(pid) <= fdStart + 2, 10000);
    await sleep(500);

    const idle = pid ? treeMemory(pid) : null;
    const fdIdle = pid ? treeFds(pid) : 0;
    const appFdIdle = treeFds(appPid);

    const { sockets, failure, openS } = await openMany(url, N, concurrency, Date.now() + openTimeoutS * 1000);
    clients.push(...sockets);
    let closedEarly = 0;
    for (const ws of sockets) {
      ws.on('error', () => {});
      ws.once('close', () => { closedEarly++; });
    }
    await sleep(settleMs);
    const relayAlive = !pid || isRunning(inst.child);
    const held = pid && relayAlive ? treeMemory(pid) : null;
    const opened = sockets.length;
    const stillOpen = opened - closedEarly;
    const echoed = relayAlive ? await echoEach(sockets.filter((ws) => ws.readyState === ws.OPEN), 60000) : 0;

    for (const ws of sockets) { ws.removeAllListeners('close'); ws.terminate(); }
    const tClose = performance.now();
    const drained = await waitUntil(() => (!pid || !isRunning(inst.child) || treeFds(pid) <= fdIdle + 10) && treeFds(appPid) <= appFdIdle + 10, 60000, 500);
    const closeS = (performance.now() - tClose) / 1000;

    let reason = failure;
    if (!relayAlive) reason = `relay exited (${inst.child.exitCode ?? inst.child.signalCode}) ${inst.child.stderrText().slice(-160)}`;
    else if (closedEarly) reason ??= `${closedEarly} closed while idle`;
    else if (echoed < stillOpen) reason ??= `only ${echoed} of ${stillOpen} echoed a message within 60 s`;
    const v = {
      round, target: N, opened, stillOpen, echoed, openS, closeS, drained,
      complete: !reason && opened === N && echoed === N,
      reason,
    };
    if (idle && held) {
      v.idlePss = idle.pss; v.heldPss = held.pss; v.idleRss = idle.rss; v.heldRss = held.rss;
      v.processes = held.processes;
      v.pssPerConn = opened ? (held.pss - idle.pss) / opened : undefined;
      v.rssPerConn = opened ? (held.rss - idle.rss) / opened : undefined;
    }
    return v;
  } finally {
    for (const ws of clients) ws.terminate();
    if (inst?.child) {
      await stopRelay(inst.child);
      children.splice(children.indexOf(inst.child), 1);
      if (inst.capture) fs.rmSync(inst.capture, { force: true });
    }
  }
}

const kb = (bytes) => (bytes === undefined ? undefined : bytes / 1000);
const range = (xs, digits) => (xs.length ? `${fmtNum(Math.min(...xs), digits)} – ${fmtNum(Math.max(...xs), digits)}` : '–');

function complete(results, name) {
  return (results[name]?.values?.idle ?? []).filter((v) => v.complete);
}

function medianPerConn(results, name, field = 'pssPerConn') {
  const xs = complete(results, name).map((v) => v[field]).filter((x) => x !== undefined);
  return xs.length ? median(xs) : undefined;
}

export const idleConnectionsScenario = {
  id: 'idle',
  letter: 'd',
  title: '(d) many connections: N idle WebSocket connections, time to open them and resident memory per connection',
  relays: 'own',
  measure: (ctx) => idleRun(ctx),
  describe: (v) => `${v.opened}/${v.target} open in ${v.openS.toFixed(1)} s${v.pssPerConn !== undefined ? `, ${(v.pssPerConn / 1000).toFixed(1)} KB/conn (Pss)` : ''}${v.reason ? ` [${v.reason}]` : ''}`,
  section(results, cfg) {
    const { connections: N, requested, cap, hard, runs, concurrency, settleMs, openTimeoutS } = cfg.idle;
    const L = [`## ${this.title}`, ''];
    L.push(`N = ${fmtNum(N, 0)}${N < requested ? ` (the issue asks for ${fmtNum(requested, 0)}; capped at floor((${fmtNum(hard, 0)} - ${DESCRIPTOR_RESERVE}) / ${DESCRIPTORS_PER_CONNECTION}) = ${fmtNum(cap, 0)}: the open-files hard limit of every process here is ${fmtNum(hard, 0)} (ulimit -Hn; it cannot be raised without CAP_SYS_RESOURCE), a relay holds ${DESCRIPTORS_PER_CONNECTION} descriptors per connection (client side and app side) and ${DESCRIPTOR_RESERVE} are left for its own files)` : ''}. `
      + `Each measurement starts a fresh instance of the relay (socat, nginx and mitmdump with their soft open-files limit raised to the hard limit; nginx with worker_rlimit_nofile ${fmtNum(hard, 0)} and worker_connections ${fmtNum(nginxWorkerConnections(hard), 0)}, above the limit x 16/15 because nginx starts closing connections when fewer than 1/16 of its slots are free), opens and closes ${WARM_CONNECTIONS} warm-up connections, reads its idle memory, opens N connections to /bench with at most ${concurrency} handshakes in flight (time to open = first connect to last 'open'; limit ${openTimeoutS} s), waits ${settleMs / 1000} s, reads its memory again, then checks that every connection still works (one 8 B message echoed on each) and closes them all, waiting until the relay and the app have let go of them. `
      + `Memory per connection = (held - idle) / N over the relay's process tree (nginx: master + worker; socat: the listener + one fork per connection): "Pss" sums /proc/PID/smaps_rollup Pss (pages shared between processes divided among them: the measure used for the target), "VmRSS" sums /proc/PID/status VmRSS (counts socat's shared pages once per fork). Kernel socket buffers are in neither. 1 KB = 1,000 bytes. Direct has no relay process: time to open only. `
      + `${runs} run${runs === 1 ? '' : 's'} per relay${runs < cfg.runs ? ` (fewer than the ${cfg.runs} of the other scenarios: ${cfg.quick ? 'quick mode' : 'WSTAP_BENCH_IDLE_RUNS'})` : ''}.`);
    L.push('');
    L.push('| relay | median time to open N s | min – max | median KB/conn (Pss) | min – max | median KB/conn (VmRSS) | processes holding N | runs complete | vs node-pipe (Pss) |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    const base = medianPerConn(results, 'node-pipe');
    const notes = [];
    for (const [name, e] of Object.entries(results)) {
      if (!measuredIn(name, 'idle')) continue;
      if (e.status !== 'ok') { L.push(`| ${name} | ${e.status} | | | | | | | |`); continue; }
      const all = e.values.idle ?? [];
      const ok = all.filter((v) => v.complete);
      const pss = ok.map((v) => kb(v.pssPerConn)).filter((x) => x !== undefined);
      const rss = ok.map((v) => kb(v.rssPerConn)).filter((x) => x !== undefined);
      const opens = ok.map((v) => v.openS);
      const m = medianPerConn(results, name);
      const procs = ok.map((v) => v.processes).filter((x) => x !== undefined);
      const errs = e.errors.idle ?? [];
      L.push(`| ${name} | ${opens.length ? fmtNum(median(opens), 1) : '–'} | ${range(opens, 1)} | ${pss.length ? fmtNum(median(pss), 1) : '–'} | ${range(pss, 1)} | ${rss.length ? fmtNum(median(rss), 1) : '–'} | ${procs.length ? fmtNum(median(procs), 0) : '–'} | ${ok.length} of ${all.length + errs.length} | ${m !== undefined && base ? `${(m / base).toFixed(2)}x` : '–'} |`);
      for (const v of all.filter((x) => !x.complete)) {
        notes.push(`- ${name}, round ${v.round + 1}: reached ${fmtNum(v.opened, 0)} of ${fmtNum(v.target, 0)} open in ${v.openS.toFixed(1)} s, ${fmtNum(v.echoed, 0)} echoed; ${v.reason}${v.pssPerConn !== undefined ? `; ${fmtNum(kb(v.pssPerConn), 1)} KB/conn (Pss) over those open` : ''}`);
      }
      for (const err of errs) notes.push(`- ${name}: failed: ${err}`);
      const slow = all.filter((v) => !v.drained);
      if (slow.length) notes.push(`- ${name}: ${slow.length} run(s) where the relay or the app still held connections 60 s after the client closed them all`);
    }
    L.push('');
    if (notes.length) { L.push('Incomplete runs (not in the medians):'); L.push(...notes); L.push(''); }
    return L;
  },
  summary(results) {
    const w = medianPerConn(results, 'wstap');
    const n = medianPerConn(results, 'node-pipe');
    const m = medianPerConn(results, 'mitmdump');
    const reached = (results.wstap?.values?.idle ?? []).filter((v) => !v.complete);
    return [{
      id: 'idle', letter: 'd',
      wstap: w === undefined ? (reached.length ? `reached ${fmtNum(reached[0].opened, 0)} of ${fmtNum(reached[0].target, 0)}` : '–') : `${fmtNum(kb(w), 1)} KB/conn (Pss)`,
      vsNodePipe: n === undefined ? '–' : `node-pipe ${fmtNum(kb(n), 1)} KB/conn`,
      target: '<= 25 KB per idle connection',
      met: w === undefined ? 'not measured' : w <= 25000 ? 'yes' : 'no',
      figure: w === undefined ? '–' : `${fmtNum(kb(w), 1)} KB`,
      vsMitm: w !== undefined && m !== undefined && w > 0 ? `mitmdump ${fmtNum(kb(m), 1)} KB/conn (${(m / w).toFixed(1)}x wstap's)` : undefined,
      mitmMet: null, // the 10x target covers (a) to (c) only
    }];
  },
};
