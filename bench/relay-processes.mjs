// The relays of the suite: which ones, how each is started on 127.0.0.1 in its
// own process in front of the echo app, how it is stopped (with any processes
// it forked), and what /proc says about its process tree (memory, descriptors).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { firstLine, freePort, isRunning, launch, sleep, stop, waitForPort } from './util.mjs';

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(benchDir, '..');

export const RELAYS = [
  { name: 'direct', binary: null },
  { name: 'node-pipe', binary: null },
  { name: 'socat', binary: 'socat', install: 'apt-get install -y socat' },
  { name: 'nginx', binary: 'nginx', install: 'apt-get install -y nginx' },
  { name: 'wstap', binary: null },
  { name: 'wstap-metrics', binary: null },
  { name: 'mitmdump', binary: 'mitmdump', install: 'apt-get install -y mitmproxy' },
  // A peer baseline for (b) and (e) only (issue 17); not one of wstap's dependencies.
  { name: 'mockttp', module: path.join(benchDir, 'peers', 'node_modules', 'mockttp', 'package.json'), install: 'npm --prefix bench/peers install', scenarios: ['small-1', 'small-100', 'http'] },
];

/** Whether a relay is measured in a scenario (a peer may be a baseline for some only). */
export const measuredIn = (name, scenarioId) => RELAYS.find((r) => r.name === name)?.scenarios?.includes(scenarioId) ?? true;

/** Whether a relay can run here: its binary on PATH, or its module installed. */
export const isInstalled = (relay) => (relay.binary ? hasCommand(relay.binary) : relay.module ? fs.existsSync(relay.module) : true);

export const hasCommand = (name) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;

/** This process's open-files limits ({ soft, hard }; Infinity for unlimited), from /proc/self/limits. */
export function nofileLimits(pid = 'self') {
  const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const [soft, hard] = line.slice('Max open files'.length).trim().split(/\s+/).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
  return { soft, hard };
}

/**
 * nginx's worker_connections for an open-files limit: it counts client and
 * upstream connections alike (2 per proxied connection), allocates that many
 * slots at start, and starts closing connections ("worker_connections are not
 * enough, reusing connections") once fewer than 1/16 of them are free; so it
 * is set above limit x 16/15, and the descriptor limit is what binds.
 */
export function nginxWorkerConnections(files) {
  return Math.ceil((files * 16) / 15) + 64;
}

/**
 * Run a non-Node relay with its soft open-files limit raised to the hard
 * limit (Node does this for itself at start; socat, nginx and Python do not).
 * `exec` keeps the pid, so the child is the relay itself.
 */
function launchRaised(cmd, args, opts) {
  const { hard } = nofileLimits();
  const limit = Number.isFinite(hard) ? String(hard) : 'unlimited';
  return launch('sh', ['-c', 'ulimit -S -n "$0" 2>/dev/null; exec "$@"', limit, cmd, ...args], opts);
}

/**
 * Start one relay in front of the app. `tag` keeps the files of several
 * instances of the same relay apart (the idle-connections scenario starts a
 * fresh instance per measurement next to the long-lived one).
 * Returns { port, child, capture? }; direct has no child.
 */
export async function startRelay(name, appPort, tmp, tag = 'main') {
  switch (name) {
    case 'direct':
      return { port: appPort, child: null };
    case 'node-pipe': {
      const child = launch(process.execPath, [path.join(benchDir, 'node-pipe.mjs'), String(appPort)]);
      const port = Number(await firstLine(child, 'node-pipe'));
      return { port, child };
    }
    case 'socat': {
      const port = await freePort();
      // backlog=1024: socat's listen backlog is 5 by default, too short for many connections opened at once.
      // nodelay: as wstap, nginx and node-pipe (Nagle would add ~1 ms at 1,000 messages/s).
      const child = launchRaised('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,backlog=1024,nodelay`, `TCP:127.0.0.1:${appPort},nodelay`]);
      await waitForPort(port, child, 'socat');
      return { port, child };
    }
    case 'nginx': {
      const dir = fs.mkdtempSync(path.join(tmp, `nginx-${tag}-`));
      const port = await freePort();
      const { hard } = nofileLimits();
      const files = Number.isFinite(hard) ? hard : 65536;
      // worker_connections: see nginxWorkerConnections. Plain HTTP keeps its
      // upstream connections (keepalive + an empty Connection header, as the
      // nginx manual recommends); WebSocket requests still get "upgrade".
      const conf = `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
worker_rlimit_nofile ${files};
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections ${nginxWorkerConnections(files)}; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream app { server 127.0.0.1:${appPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 300s;
    }
  }
}
`;
      fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
      const bin = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p)) ?? 'nginx';
      const child = launchRaised(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log'), '-g', 'daemon off;']);
      child.stderrText = () => { try { return fs.readFileSync(path.join(dir, 'error.log'), 'utf8'); } catch { return ''; } };
      await waitForPort(port, child, 'nginx');
      return { port, child };
    }
    case 'wstap':
    case 'wstap-alt':
    case 'wstap-metrics': {
      // wstap-metrics (issue 20): the same with --metrics, scraped once a second (a busy Prometheus; 15 s is usual).
      const metrics = name === 'wstap-metrics' ? await freePort() : null;
      const capture = path.join(tmp, `${name}-capture-${tag}.jsonl`);
      const nodeArgs = (process.env.WSTAP_NODE_ARGS ?? '').split(' ').filter(Boolean);
      // A port chosen here, not read from the log: WSTAP_ARGS may raise the log level past the listen line.
      const port = await freePort();
      // wstap-alt: another build (WSTAP_ALT_ROOT, a checkout with dist/ built), for A/B runs in one process tree of rounds.
      const home = name === 'wstap-alt' ? altRoot() : root;
      const child = launch(process.execPath, [...nodeArgs, path.join(home, 'bin', 'wstap'), 'proxy', '--target', `http://127.0.0.1:${appPort}`,
        '--listen', `127.0.0.1:${port}`, '--no-tui', '--log-format', 'json', '--capture', capture, '--force',
        // WSTAP_METRICS_ARGS: more options for wstap-metrics alone (e.g. --metrics-no-process).
        ...(metrics ? ['--metrics', `127.0.0.1:${metrics}`, ...(process.env.WSTAP_METRICS_ARGS ?? '').split(' ').filter(Boolean)] : []),
        ...(process.env.WSTAP_ARGS ?? '').split(' ').filter(Boolean)]);
      await waitForPort(port, child, name);
      if (metrics) scrapeWhileRunning(child, metrics);
      return { port, child, capture };
    }
    case 'mitmdump': {
      const port = await freePort();
      const child = launchRaised('mitmdump', ['--mode', `reverse:http://127.0.0.1:${appPort}`, '--listen-host', '127.0.0.1', '--listen-port', String(port), '-q'],
        { env: { ...process.env, HOME: path.join(tmp, 'mitm-home') } });
      await waitForPort(port, child, 'mitmdump', 60000);
      return { port, child };
    }
    case 'mockttp': {
      const port = await freePort();
      const child = launch(process.execPath, [path.join(benchDir, 'mockttp-relay.mjs'), String(appPort), String(port)]);
      await firstLine(child, 'mockttp');
      return { port, child };
    }
    default:
      throw new Error(`unknown relay ${name}`);
  }
}

function altRoot() {
  const alt = process.env.WSTAP_ALT_ROOT;
  if (!alt || !fs.existsSync(path.join(alt, 'dist', 'cli', 'main.js'))) throw new Error('wstap-alt needs WSTAP_ALT_ROOT: a checkout of wstap with dist/ built');
  return path.resolve(alt);
}

/** GET /metrics once a second until the relay exits; the bytes are read and dropped, failures ignored. */
function scrapeWhileRunning(child, port) {
  const timer = setInterval(() => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => res.resume()).on('error', () => {});
  }, 1000);
  timer.unref();
  child.once('exit', () => clearInterval(timer));
}

// ---------------------------------------------------------------- /proc

/** pid -> parent pid for every process (Linux has no /proc/PID/task/TID/children here). */
function parentMap() {
  const parents = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch { /* exited meanwhile */ }
  }
  return parents;
}

/** The pid and all its descendants (nginx master + worker, socat + one fork per connection). */
export function processTree(pid) {
  const children = new Map();
  for (const [p, pp] of parentMap()) {
    if (!children.has(pp)) children.set(pp, []);
    children.get(pp).push(p);
  }
  const out = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop();
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

function kbField(text, field) {
  const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * Memory of a process tree in bytes: pss = sum of Pss (smaps_rollup: shared
 * pages divided among the processes that share them, so socat's 10,000 forks
 * do not count their common pages 10,000 times), rss = sum of VmRSS.
 */
export function treeMemory(pid) {
  let pss = 0;
  let rss = 0;
  let processes = 0;
  for (const p of processTree(pid)) {
    try {
      const status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
      const rollup = fs.readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      rss += kbField(status, 'VmRSS');
      pss += kbField(rollup, 'Pss');
      processes++;
    } catch { /* exited meanwhile */ }
  }
  return { pss, rss, processes };
}

/** Open descriptors summed over the process tree. */
export function treeFds(pid) {
  let n = 0;
  for (const p of processTree(pid)) {
    try { n += fs.readdirSync(`/proc/${p}/fd`).length; } catch { /* exited meanwhile */ }
  }
  return n;
}

function startTime(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch { return null; }
}

/**
 * Stop a relay and whatever it forked: socat's per-connection forks outlive a
 * stopped parent until their sockets close. Forks are signalled by pid, and
 * only while /proc still shows the same process (same start time).
 */
export async function stopRelay(child) {
  if (!child) return;
  const forks = isRunning(child) ? processTree(child.pid).filter((p) => p !== child.pid).map((p) => ({ p, t: startTime(p) })) : [];
  await stop(child);
  const signal = (sig) => { for (const { p, t } of forks) if (t !== null && startTime(p) === t) { try { process.kill(p, sig); } catch { /* gone */ } } };
  if (!forks.length) return;
  signal('SIGTERM');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && forks.some(({ p, t }) => startTime(p) === t)) await sleep(100);
  signal('SIGKILL');
}
