// npm run bench (second part): wstap next to other relays, same run, same app.
// Issue 7, first increment. Not part of the tests. Writes bench/RESULTS.md.
//
// Processes (all on 127.0.0.1, free ports, started by this file):
//   - app: a `ws` echo server (perMessageDeflate off) in a CHILD process
//     (this file with --role app);
//   - relays under test, each its own process, all started once and kept for
//     the whole suite, each forwarding to the app:
//       direct     no relay: the load generator talks to the app
//       node-pipe  net.createServer + net.connect, pipe both ways, allowHalfOpen
//                  (this file with --role pipe, a child process)
//       socat      TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:APP
//       nginx      alone, as the WebSocket reverse proxy (temp prefix and conf)
//       wstap      bin/wstap proxy --no-tui --log-format json --capture FILE
//                  (decoder on, capture on: the defaults)
//       mitmdump   --mode reverse:http://127.0.0.1:APP -q
//     A relay whose binary is missing is reported as missing, not dropped.
//   - load generator: this process.
//
// Scenarios (fresh connections per measurement, WARMUP_S warm-up first):
//   bulk    one connection, 64 KiB binary messages, pipelined echo with at most
//           16 messages (1 MiB) in flight: every byte crosses the relay both
//           ways; MiB/s received in total = (bytes the app received + bytes
//           the client received) / s = 2 x echoed bytes / s.
//   small-1 / small-100
//           100 B binary messages over 1 / 100 connections, pipelined echo with
//           a window per connection (256 for 1 connection, 32 each for 100):
//           backpressure is the window; result = echoed messages per second
//           (each crossed the relay twice).
//
// Order: RUNS rounds; in each round every scenario is measured on every relay
// (relay order rotates per round), so slow drift of a shared VM spreads over
// all relays. Medians, min-max, ratios of medians.
//
// Environment: WSTAP_BENCH_QUICK=1 (2 runs, 1 s windows), WSTAP_BENCH_RUNS,
// WSTAP_BENCH_SECONDS, WSTAP_BENCH_RELAYS (comma list, e.g. "node-pipe,wstap"),
// WSTAP_BENCH_OUT (where the report goes; bench/RESULTS.md by default),
// WSTAP_NODE_ARGS (node flags for wstap alone, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const here = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(here), '..');

const roleIndex = process.argv.indexOf('--role');
const role = roleIndex >= 0 ? process.argv[roleIndex + 1] : null;

// ---------------------------------------------------------------- helpers
function envNumber(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${raw}: not a positive number`);
  return n;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hasCommand = (name) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, child, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}: ${child.stderrText?.().slice(-500) ?? ''}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${what} did not listen on ${port} within ${timeoutMs} ms: ${child?.stderrText?.().slice(-500) ?? ''}`);
}

function launch(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let stderr = '';
  child.stderr.on('data', (d) => { if (stderr.length < 20000) stderr += d.toString(); });
  child.stderrText = () => stderr;
  return child;
}

function firstLine(child, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl).trim());
    });
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready: ${child.stderrText()}`)));
  });
}

async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

// ---------------------------------------------------------------- relays
async function startRelay(name, appPort, tmp) {
  switch (name) {
    case 'direct':
      return { port: appPort, child: null };
    case 'node-pipe': {
      const child = launch(process.execPath, [here, '--role', 'pipe', String(appPort)]);
      const port = Number(await firstLine(child, 'node-pipe'));
      return { port, child };
    }
    case 'socat': {
      const port = await freePort();
      const child = launch('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${appPort}`]);
      await waitForPort(port, child, 'socat');
      return { port, child };
    }
    case 'nginx': {
      const dir = fs.mkdtempSync(path.join(tmp, 'nginx-'));
      const port = await freePort();
      const conf = `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream app { server 127.0.0.1:${appPort}; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 60s;
    }
  }
}
`;
      fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
      const bin = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p)) ?? 'nginx';
      const child = launch(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log'), '-g', 'daemon off;']);
      child.stderrText = () => { try { return fs.readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch { return ''; } };
      await waitForPort(port, child, 'nginx');
      return { port, child };
    }
    case 'wstap': {
      const capture = path.join(tmp, 'wstap-capture.jsonl');
      const nodeArgs = (process.env.WSTAP_NODE_ARGS ?? '').split(' ').filter(Boolean);
      const child = launch(process.execPath, [...nodeArgs, path.join(root, 'bin', 'wstap'), 'proxy', '--target', `http://127.0.0.1:${appPort}`,
        '--listen', '127.0.0.1:0', '--no-tui', '--log-format', 'json', '--capture', capture, '--force']);
      const port = await new Promise((resolve, reject) => {
        let buf = '';
        const onData = (d) => {
          buf += d.toString();
          for (const line of buf.split('\n')) {
            try {
              const j = JSON.parse(line);
              if (typeof j.listen === 'string') { child.stderr.off('data', onData); resolve(Number(j.listen.split(':').pop())); return; }
            } catch { /* partial or non-JSON line */ }
          }
        };
        child.stderr.on('data', onData);
        child.once('exit', (code) => reject(new Error(`wstap exited (${code}): ${child.stderrText()}`)));
        setTimeout(() => reject(new Error(`wstap not ready after 15 s: ${child.stderrText()}`)), 15000);
      });
      await waitForPort(port, child, 'wstap');
      return { port, child, capture };
    }
    case 'mitmdump': {
      const port = await freePort();
      const child = launch('mitmdump', ['--mode', `reverse:http://127.0.0.1:${appPort}`, '--listen-host', '127.0.0.1', '--listen-port', String(port), '-q'],
        { env: { ...process.env, HOME: path.join(tmp, 'mitm-home') } });
      await waitForPort(port, child, 'mitmdump', 60000);
      return { port, child };
    }
    default:
      throw new Error(`unknown relay ${name}`);
  }
}

const RELAYS = [
  { name: 'direct', binary: null },
  { name: 'node-pipe', binary: null },
  { name: 'socat', binary: 'socat', install: 'apt-get install -y socat' },
  { name: 'nginx', binary: 'nginx', install: 'apt-get install -y nginx' },
  { name: 'wstap', binary: null },
  { name: 'mitmdump', binary: 'mitmdump', install: 'apt-get install -y mitmproxy' },
];

// ---------------------------------------------------------------- load
// Opened 10 at a time: socat's TCP-LISTEN has a listen backlog of 5 by default.
async function openSockets(url, count) {
  const all = [];
  for (let i = 0; i < count; i += 10) all.push(...(await openBatch(url, Math.min(10, count - i))));
  return all;
}

function openBatch(url, count) {
  return Promise.all(Array.from({ length: count }, () => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 20 });
    ws.binaryType = 'nodebuffer';
    const t = setTimeout(() => { ws.terminate(); reject(new Error('connect timeout')); }, 10000);
    ws.once('open', () => { clearTimeout(t); resolve(ws); });
    ws.once('error', (e) => { clearTimeout(t); reject(e); });
  })));
}

/** Pipelined echo over `connections` sockets, `window` messages in flight each. Returns { bytes, messages, seconds } counted in the window. */
async function echoLoad(port, { connections, size, window, warmupMs, seconds }) {
  const sockets = await openSockets(`ws://127.0.0.1:${port}/bench`, connections);
  const payload = Buffer.alloc(size, 0x62);
  const state = { counting: false, messages: 0, bytes: 0, error: null, stopped: false };
  for (const ws of sockets) {
    let inflight = 0;
    const pump = () => {
      while (!state.stopped && inflight < window) { inflight++; ws.send(payload, { binary: true }); }
    };
    ws.on('message', (data) => {
      inflight--;
      if (state.counting) { state.messages++; state.bytes += data.length; }
      pump();
    });
    ws.on('error', (e) => { state.error ??= e; });
    ws.on('close', () => { if (!state.stopped) state.error ??= new Error('connection closed during the measurement'); });
    pump();
  }
  await sleep(warmupMs);
  state.counting = true;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  state.counting = false;
  const elapsed = (performance.now() - t0) / 1000;
  state.stopped = true;
  for (const ws of sockets) ws.terminate();
  await sleep(100);
  if (state.error) throw state.error;
  if (state.messages === 0) throw new Error('no echo in the window');
  return { bytes: state.bytes, messages: state.messages, seconds: elapsed };
}

const SCENARIOS = [
  { id: 'bulk', title: '(a) bulk throughput: 1 connection, 64 KiB binary messages both ways (pipelined echo, 1 MiB in flight)', unit: 'MiB/s received in total',
    load: { connections: 1, size: 65536, window: 16 }, value: (r) => (2 * r.bytes) / 2 ** 20 / r.seconds, digits: 0, target: 0.8 },
  { id: 'small-1', title: '(b) small messages: 100 B binary, 1 connection (pipelined echo, 256 in flight)', unit: 'echoed messages/s',
    load: { connections: 1, size: 100, window: 256 }, value: (r) => r.messages / r.seconds, digits: 0, target: 0.7 },
  { id: 'small-100', title: '(b) small messages: 100 B binary, 100 connections (pipelined echo, 32 in flight each)', unit: 'echoed messages/s',
    load: { connections: 100, size: 100, window: 32 }, value: (r) => r.messages / r.seconds, digits: 0, target: 0.7 },
];

// ---------------------------------------------------------------- main
async function main() {
  const quick = process.env.WSTAP_BENCH_QUICK === '1';
  const runs = Math.round(envNumber('WSTAP_BENCH_RUNS', quick ? 2 : 5));
  const seconds = envNumber('WSTAP_BENCH_SECONDS', quick ? 1 : 3);
  const warmupMs = quick ? 200 : 500;
  const only = process.env.WSTAP_BENCH_RELAYS ? process.env.WSTAP_BENCH_RELAYS.split(',').map((s) => s.trim()) : null;
  if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) throw new Error('not built: run `npm run build` first');

  const started = performance.now();
  const date = new Date().toISOString();
  const cpus = os.cpus();
  const machine = `${cpus.length} cores (${cpus[0]?.model?.trim() ?? 'unknown cpu'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, node ${process.version}, ${os.type()} ${os.release()}`;
  console.log(`machine: ${machine}`);
  console.log(`${runs} runs per scenario and relay, ${seconds} s window after ${warmupMs} ms warm-up${quick ? ' (WSTAP_BENCH_QUICK)' : ''}`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `wstap-relays-${process.pid}-`));
  const children = [];
  const cleanup = async () => { await Promise.all(children.map(stop)); fs.rmSync(tmp, { recursive: true, force: true }); };
  process.once('SIGINT', () => { cleanup().finally(() => process.exit(130)); });

  const results = {}; // relay -> { status, versions, values: {scenario: []}, errors: {scenario: []} }
  try {
    const app = launch(process.execPath, [path.join(path.dirname(here), 'echo-app.mjs')]);
    children.push(app);
    const appPort = Number(await firstLine(app, 'app'));

    const live = [];
    for (const relay of RELAYS) {
      if (only && !only.includes(relay.name)) continue;
      const entry = { status: 'ok', values: {}, errors: {} };
      results[relay.name] = entry;
      if (relay.binary && !hasCommand(relay.binary)) {
        entry.status = `missing (not installed: ${relay.install})`;
        console.log(`${relay.name}: ${entry.status}`);
        continue;
      }
      try {
        const r = await startRelay(relay.name, appPort, tmp);
        if (r.child) children.push(r.child);
        entry.port = r.port;
        entry.child = r.child;
        entry.capture = r.capture;
        live.push(relay.name);
        console.log(`${relay.name}: listening on 127.0.0.1:${r.port}`);
      } catch (err) {
        entry.status = `failed to start: ${String(err.message).split('\n')[0].slice(0, 200)}`;
        console.log(`${relay.name}: ${entry.status}`);
      }
    }

    for (let round = 0; round < runs; round++) {
      const order = live.map((_, i) => live[(i + round) % live.length]);
      for (const sc of SCENARIOS) {
        const line = [];
        for (const name of order) {
          const entry = results[name];
          (entry.values[sc.id] ??= []);
          try {
            if (entry.child && (entry.child.exitCode !== null || entry.child.signalCode !== null)) throw new Error(`${name} is no longer running`);
            const r = await echoLoad(entry.port, { ...sc.load, warmupMs, seconds });
            const v = sc.value(r);
            entry.values[sc.id].push(v);
            line.push(`${name} ${v.toFixed(sc.digits)}`);
          } catch (err) {
            (entry.errors[sc.id] ??= []).push(String(err.message ?? err).slice(0, 200));
            line.push(`${name} error`);
          }
        }
        console.log(`run ${round + 1}/${runs} ${sc.id}: ${line.join(', ')}`);
      }
    }
    for (const name of live) {
      const c = results[name].capture;
      if (c && fs.existsSync(c)) results[name].captureBytes = fs.statSync(c).size;
    }
  } finally {
    await cleanup();
  }

  const totalS = (performance.now() - started) / 1000;
  const md = report({ results, machine, date, runs, seconds, warmupMs, quick, totalS });
  const out = process.env.WSTAP_BENCH_OUT || path.join(root, 'bench', 'RESULTS.md');
  fs.writeFileSync(out, md);
  console.log('');
  console.log(md);
  console.log(`wrote ${path.relative(process.cwd(), out) || out} (${totalS.toFixed(0)} s)`);
}

function fmtNum(v, digits) {
  return v === undefined || v === null || Number.isNaN(v) ? '–' : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function report({ results, machine, date, runs, seconds, warmupMs, quick, totalS }) {
  const L = [];
  const med = (name, id) => { const v = results[name]?.values?.[id]; return v && v.length ? median(v) : undefined; };
  L.push('# wstap relay benchmark (issue 7, first increment)');
  L.push('');
  L.push('Generated by `npm run bench` (bench/relays.mjs). Numbers are from one run on one machine; compare ratios, not absolutes.');
  L.push('');
  L.push(`- machine: ${machine}`);
  L.push(`- date: ${date}`);
  L.push(`- runs: ${runs} per scenario and relay, ${seconds} s window after ${warmupMs} ms warm-up, relays interleaved within each round${quick ? ' **(quick mode: not for comparison)**' : ''}; whole relay suite took ${totalS.toFixed(0)} s`);
  L.push('- app: `ws` echo server (perMessageDeflate off) in its own process; load generator: the bench process (one Node thread); every relay in its own process');
  L.push('- relays: direct (no relay); node-pipe (net.createServer + net.connect, pipe both ways, allowHalfOpen, child process); socat (`TCP-LISTEN:…,fork`); nginx alone (proxy_http_version 1.1, Upgrade/Connection headers, 1 worker, access_log off); wstap (`proxy --no-tui --log-format json --capture FILE`, decoder and capture on); mitmdump (`--mode reverse:http://… -q`)');
  L.push(`- caveat: ${os.cpus().length} cores shared by the load generator, the app and the relay; the load generator and the app are Node processes too, so "direct" is bounded by them, not by the network`);
  L.push('');
  const status = Object.entries(results).filter(([, e]) => e.status !== 'ok');
  if (status.length) {
    L.push('Not measured:');
    for (const [name, e] of status) L.push(`- ${name}: ${e.status}`);
    L.push('');
  }
  for (const sc of SCENARIOS) {
    L.push(`## ${sc.title}`);
    L.push('');
    L.push(`| relay | median ${sc.unit} | min – max | runs | vs node-pipe |`);
    L.push('|---|---:|---:|---:|---:|');
    const base = med('node-pipe', sc.id);
    for (const [name, e] of Object.entries(results)) {
      if (e.status !== 'ok') { L.push(`| ${name} | ${e.status} | | | |`); continue; }
      const v = e.values[sc.id] ?? [];
      const m = v.length ? median(v) : undefined;
      const errs = e.errors[sc.id]?.length ? ` (${e.errors[sc.id].length} failed: ${e.errors[sc.id][0]})` : '';
      L.push(`| ${name} | ${fmtNum(m, sc.digits)} | ${v.length ? `${fmtNum(Math.min(...v), sc.digits)} – ${fmtNum(Math.max(...v), sc.digits)}` : '–'} | ${v.length}${errs} | ${m !== undefined && base ? `${(100 * m / base).toFixed(1)} %` : '–'} |`);
    }
    L.push('');
  }
  L.push('## wstap against the baselines (ratio of medians, same run)');
  L.push('');
  L.push('| scenario | wstap / node-pipe | wstap / mitmdump | target (vs node-pipe) | met |');
  L.push('|---|---:|---:|---:|---|');
  const verdicts = [];
  for (const sc of SCENARIOS) {
    const w = med('wstap', sc.id);
    const n = med('node-pipe', sc.id);
    const m = med('mitmdump', sc.id);
    const r = w !== undefined && n ? w / n : undefined;
    const met = r === undefined ? 'not measured' : r >= sc.target ? 'yes' : 'no';
    verdicts.push({ sc, r, met });
    L.push(`| ${sc.id} | ${r === undefined ? '–' : `${(100 * r).toFixed(1)} %`} | ${w !== undefined && m ? `${(w / m).toFixed(2)}x` : results.mitmdump?.status !== 'ok' ? (results.mitmdump?.status ?? 'not run') : '–'} | >= ${sc.target * 100} % | ${met} |`);
  }
  L.push('');
  const a = verdicts.find((v) => v.sc.id === 'bulk');
  const b = verdicts.filter((v) => v.sc.id.startsWith('small'));
  const bMet = b.every((v) => v.met === 'yes') ? 'met' : b.some((v) => v.met === 'not measured') ? 'not measured' : 'NOT met';
  L.push(`**Issue 7 targets: (a) bulk throughput >= 80 % of the Node pipe relay: ${a.met === 'yes' ? 'met' : a.met === 'no' ? 'NOT met' : 'not measured'} in this run (${a.r === undefined ? '–' : `${(100 * a.r).toFixed(1)} %`}); (b) small messages >= 70 % of the Node pipe relay: ${bMet} in this run (${b.map((v) => `${v.sc.id} ${v.r === undefined ? '–' : `${(100 * v.r).toFixed(1)} %`}`).join(', ')}).**`);
  L.push('');
  if (results.wstap?.captureBytes !== undefined) L.push(`wstap's capture file reached ${(results.wstap.captureBytes / 2 ** 20).toFixed(1)} MiB over the suite.`);
  L.push('');
  return L.join('\n');
}

// ---------------------------------------------------------------- entry (last: the constants above must be initialised)
if (role === 'pipe') {
  const upstream = Number(process.argv[roleIndex + 2]);
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const up = net.connect({ host: '127.0.0.1', port: upstream, allowHalfOpen: true });
    client.pipe(up);
    up.pipe(client);
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  process.on('SIGTERM', () => process.exit(0));
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}
