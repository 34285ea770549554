// npm run bench:tui: what the live terminal UI costs the relay. Not part of the tests.
//
// Requirement measured: with 5,000 open connections and frames flowing, the
// relay's throughput with the UI on stays within 10 % of --no-tui.
//
// Setup, per run (a fresh set of processes each time):
//   - upstream: a `ws` echo server (perMessageDeflate off) in a CHILD process
//     (bench/echo-app.mjs), so it does not share an event loop
//     with the load generator;
//   - wstap: `bin/wstap proxy` in a child process, either
//       no-tui: `--no-tui`, log lines to a file, or
//       tui:    the full-screen UI on a real terminal: a private tmux server
//               (`tmux -L wstap-bench-<pid>`, 160x50), the pane's shell `exec`s
//               node so the pane pid is wstap's pid; `script` is the fallback
//               when tmux is missing. Log lines go to --log-file;
//     both with `--timeout nginx.proxy_read_timeout=60` (countdowns computed)
//     and `--capture <tmp>/x.jsonl --force` (the UI mode would make a capture
//     anyway, so both modes write one);
//   - load generator: this process. It opens CONNECTIONS background WebSocket
//     connections through wstap (BATCH at a time), each sending a 64 B text
//     message every 1-2 s (uniform, random phase; the upstream echoes it), so
//     frames flow both ways and every row of the UI keeps changing; plus
//     MEASURE connections in a tight ping-pong loop (1 KiB binary, wait for the
//     echo, send again). After WARMUP_S the window of WINDOW_S starts.
//
// Throughput = echoed 1 KiB messages per second summed over the measure
// connections inside the window (each one crossed wstap twice). The loop keeps
// one message in flight per connection, like interactive traffic, so it sees
// both the CPU the UI takes and any time a redraw holds wstap's event loop
// (every frame waits for it): the strict reading of "throughput". Also reported:
// background echoes delivered per second, round-trip p50/p99 of the measure
// loop, wstap's CPU % (from /proc/<pid>/stat, 100 % = one core) and RSS
// (VmRSS at the end of the window, VmHWM peak), plus the CPU of the other
// processes and of the whole machine.
//
// Modes alternate in ABBA order (no-tui, tui, tui, no-tui, no-tui, tui, ...),
// RUNS times each, because throughput on a shared VM drifts over a session (it
// fell by about 10 % per pair in trials, in both modes); medians are reported,
// their ratio tui / no-tui, and the ratio within each pair. The result is
// printed as markdown and written to bench/TUI-OVERHEAD.md, with the first
// three lines of the tmux pane (captured right after a window, traffic still
// flowing) as proof that the UI really showed the open connections (its
// "closed 1" is the bench's own readiness probe, a plain TCP connect).
//
// Caveat printed with the result: on a machine with few cores the load
// generator, the upstream, wstap and (tui mode) tmux share them, and wstap's
// JavaScript runs on one thread that is close to a full core under this load,
// so whatever CPU the UI takes on that thread comes out of relay throughput.
//
// Environment: CONNECTIONS (5000), WINDOW_S (10), RUNS (3), WARMUP_S (3),
// MEASURE (8), BATCH (200); OTHER_LIMIT (10) and RETRIES (2): a run during
// which processes outside the benchmark used more than OTHER_LIMIT % CPU is
// repeated up to RETRIES times (the machine may be shared); TERMINAL (tmux or
// script: force the UI host); WSTAP_NODE_ARGS (extra node flags for wstap
// alone, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to see where its time goes).
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { hasCommand } from './relay-processes.mjs';
import { freePort, sleep } from './util.mjs';

const here = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(here), '..');

await main();

// ---------------------------------------------------------------- parameters
function envNumber(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${raw}: not a number`);
  return n;
}

async function main() {
  const P = {
    connections: envNumber('CONNECTIONS', 5000),
    windowS: envNumber('WINDOW_S', 10),
    runs: Math.max(1, Math.round(envNumber('RUNS', 3))),
    warmupS: envNumber('WARMUP_S', 3),
    measure: Math.max(1, Math.round(envNumber('MEASURE', 8))),
    batch: Math.max(1, Math.round(envNumber('BATCH', 200))),
    otherLimit: envNumber('OTHER_LIMIT', 10),
    retries: Math.round(envNumber('RETRIES', 2)),
    bgBytes: 64,
    bgMinMs: 1000,
    bgMaxMs: 2000,
    measureBytes: 1024,
    cols: 160,
    rows: 50,
  };
  const terminal = process.env.TERMINAL || (hasCommand('tmux') ? 'tmux' : hasCommand('script') ? 'script' : null);
  if (!terminal) throw new Error('neither tmux nor script is installed: cannot give wstap a terminal');
  if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) throw new Error('not built: run `npm run build` first');

  const cores = os.cpus().length;
  const machine = `${cores} cores (${os.cpus()[0]?.model?.trim() ?? 'unknown cpu'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${os.type()} ${os.release()}`;
  const nofile = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim();
  console.log(`machine: ${machine}; ulimit -n ${nofile}`);
  if (Number(nofile) < P.connections * 2 + 200) console.log(`warning: ulimit -n ${nofile} is low for ${P.connections} connections (wstap needs two sockets each)`);
  console.log(`parameters: ${P.connections} background connections (64 B text every 1-2 s each, echoed), ${P.measure} measure connections (1 KiB binary ping-pong), warm-up ${P.warmupS} s, window ${P.windowS} s, ${P.runs} runs per mode in ABBA order; UI host: ${terminal} ${P.cols}x${P.rows}`);
  if (cores <= 2) console.log(`note: only ${cores} cores: the load generator, the upstream, wstap and the terminal (tmux) all compete for them`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `wstap-bench-${process.pid}-`));
  const cleanup = installCleanup(tmp);

  const results = [];
  let proof = null;
  let discarded = 0;
  try {
    for (let i = 0; i < P.runs; i++) {
      // ABBA order (no-tui, tui, tui, no-tui, ...): a slow drift of the machine
      // over the session does not always favour the mode that runs first.
      for (const mode of i % 2 === 0 ? ['no-tui', 'tui'] : ['tui', 'no-tui']) {
        // A run that other processes disturbed (shared machine) is repeated, up to RETRIES times; the least disturbed attempt counts.
        let r = null;
        for (let attempt = 0; attempt <= P.retries; attempt++) {
          const candidate = await oneRun({ mode, run: i + 1, P, tmp, terminal, cleanup });
          if (!r || candidate.otherCpu < r.otherCpu) r = candidate;
          if (candidate.otherCpu <= P.otherLimit) break;
          if (attempt < P.retries) {
            discarded++;
            console.log(`repeating run ${i + 1} ${mode}: other processes used ${candidate.otherCpu.toFixed(0)} % CPU (limit ${P.otherLimit} %)`);
          }
        }
        results.push(r);
        if (r.pane && !proof) proof = r.pane;
        console.log(
          `run ${i + 1} ${mode.padEnd(6)}: ${fmt(r.msgPerS, 0)} msg/s (${fmt(r.mibPerS, 2)} MiB/s each way), rtt p50 ${fmt(r.p50, 2)} ms p99 ${fmt(r.p99, 2)} ms, ` +
            `background ${fmt(r.bgPerS, 0)} echoes/s of ${fmt(r.bgSentPerS, 0)} sent/s, wstap CPU ${fmt(r.wstapCpu, 0)} % RSS ${fmt(r.rssMiB, 0)} MiB (peak ${fmt(r.hwmMiB, 0)}), ` +
            `upstream ${fmt(r.upCpu, 0)} %, generator ${fmt(r.genCpu, 0)} %${r.tmuxCpu === null ? '' : `, tmux ${fmt(r.tmuxCpu, 0)} %`}, other processes ${fmt(r.otherCpu, 0)} %, machine busy ${fmt(r.busy, 0)} %, open ${r.open}`,
        );
      }
    }
  } finally {
    cleanup.all();
  }

  const by = (mode) => results.filter((r) => r.mode === mode);
  const med = (mode, key) => median(by(mode).map((r) => r[key]).filter((v) => v !== null));
  const ratio = (med('tui', 'msgPerS') / med('no-tui', 'msgPerS')) * 100;
  const pairRatios = [];
  for (let i = 1; i <= P.runs; i++) {
    const a = results.find((r) => r.mode === 'no-tui' && r.run === i);
    const b = results.find((r) => r.mode === 'tui' && r.run === i);
    if (a && b) pairRatios.push((b.msgPerS / a.msgPerS) * 100);
  }
  const verdict = ratio >= 90 ? 'within 10 %: requirement met' : 'MORE than 10 % slower: requirement not met';

  const row = (label, key, digits, unit = '', ratio = true) => {
    const a = med('no-tui', key);
    const b = med('tui', key);
    const rel = a && ratio ? `${fmt((b / a) * 100, 1)} %` : '';
    return `| ${label} | ${fmt(a, digits)}${unit} | ${fmt(b, digits)}${unit} | ${rel} |`;
  };
  const lines = [];
  lines.push('# TUI overhead: relay throughput with the UI on vs --no-tui');
  lines.push('');
  lines.push(`Generated by \`npm run bench:tui\` (bench/tui-overhead.mjs) on ${new Date().toISOString()}.`);
  lines.push('');
  lines.push(`- machine: ${machine}; ulimit -n ${nofile}`);
  lines.push(`- load: ${P.connections} background WebSocket connections through wstap, each sending a ${P.bgBytes} B text message every ${P.bgMinMs / 1000}-${P.bgMaxMs / 1000} s (random phase) that the upstream echoes; ` +
    `${P.measure} measure connections in a tight ping-pong loop (${P.measureBytes} B binary, wait for the echo, repeat); warm-up ${P.warmupS} s, window ${P.windowS} s; ${P.runs} runs per mode in ABBA order (no-tui, tui, tui, no-tui, ...), medians shown`);
  lines.push(`- wstap: \`proxy --target ws://127.0.0.1:<upstream> --listen 127.0.0.1:<free port> --timeout nginx.proxy_read_timeout=60 --capture <tmp>/x.jsonl --force\` ` +
    `plus \`--no-tui\` (log lines to a file) or the UI in ${terminal === 'tmux' ? `a private tmux server, ${P.cols}x${P.rows}` : `\`script\`, ${P.cols}x${P.rows}`} (\`--log-file <tmp>\`)`);
  lines.push('- upstream: `ws` echo server, perMessageDeflate off, in its own process; the load generator is the bench process');
  lines.push(`- caveat: ${cores} cores shared by the load generator, the upstream, wstap${terminal === 'tmux' ? ' and tmux (which renders the UI)' : ''}; wstap's JavaScript runs on one thread, close to a full core under this load (see its CPU below), so what the UI takes on that thread comes out of relay throughput`);
  lines.push('');
  lines.push('| median | --no-tui | UI on | UI / no-tui |');
  lines.push('|---|---:|---:|---:|');
  lines.push(row('throughput, 1 KiB echoes/s (measure connections)', 'msgPerS', 0));
  lines.push(row('throughput, MiB/s each way', 'mibPerS', 2));
  lines.push(row('round trip p50, ms', 'p50', 2));
  lines.push(row('round trip p99, ms', 'p99', 2));
  lines.push(row('background echoes delivered/s', 'bgPerS', 0));
  lines.push(row('wstap CPU % (100 = one core)', 'wstapCpu', 0));
  lines.push(row('wstap RSS at end of window, MiB', 'rssMiB', 0));
  lines.push(row('wstap peak RSS, MiB', 'hwmMiB', 0));
  lines.push(row('upstream CPU %', 'upCpu', 0));
  lines.push(row('load generator CPU %', 'genCpu', 0));
  if (terminal === 'tmux') lines.push(`| tmux server CPU % | – | ${fmt(med('tui', 'tmuxCpu'), 0)} | |`);
  lines.push(row('other processes on the machine, CPU %', 'otherCpu', 0, '', false));
  lines.push(row('whole machine busy %', 'busy', 0, '', false));
  lines.push(row('open connections (UI title / open client sockets)', 'open', 0));
  lines.push('');
  lines.push(`Runs repeated because other processes used more than ${P.otherLimit} % CPU during the window: ${discarded} (at most ${P.retries} repeats per run; the least disturbed attempt counts).`);
  lines.push('');
  lines.push(`**Throughput with the UI on: ${fmt(ratio, 1)} % of --no-tui (${verdict}).** Per run pair: ${pairRatios.map((v) => `${fmt(v, 1)} %`).join(', ')}.`);
  lines.push('');
  lines.push('Every run:');
  lines.push('');
  lines.push('| run | mode | echoes/s | p50 ms | p99 ms | max ms | background/s | wstap CPU % | RSS MiB | other processes CPU % | open |');
  lines.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    lines.push(`| ${r.run} | ${r.mode} | ${fmt(r.msgPerS, 0)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.maxRtt, 1)} | ${fmt(r.bgPerS, 0)} | ${fmt(r.wstapCpu, 0)} | ${fmt(r.rssMiB, 0)} | ${fmt(r.otherCpu, 0)} | ${r.open} |`);
  }
  if (proof) {
    lines.push('');
    lines.push('First three lines of the UI (tmux capture-pane, right after a measuring window):');
    lines.push('');
    lines.push('```');
    lines.push(...proof.slice(0, 3).map((l) => l.trimEnd()));
    lines.push('```');
  }
  const text = lines.join('\n') + '\n';
  console.log('');
  console.log(text);
  fs.writeFileSync(path.join(root, 'bench', 'TUI-OVERHEAD.md'), text);
  console.log('written to bench/TUI-OVERHEAD.md');
}

// ---------------------------------------------------------------- one run
async function oneRun({ mode, run, P, tmp, terminal, cleanup }) {
  const dir = fs.mkdtempSync(path.join(tmp, `${mode}-${run}-`));
  const upstream = await startUpstream(cleanup);
  const port = await freePort();
  const args = [
    ...nodeArgsForWstap(),
    path.join(root, 'bin', 'wstap'), 'proxy',
    '--target', `ws://127.0.0.1:${upstream.port}`,
    '--listen', `127.0.0.1:${port}`,
    '--timeout', 'nginx.proxy_read_timeout=60',
    '--capture', path.join(dir, 'x.jsonl'), '--force',
  ];
  let wstap;
  if (mode === 'no-tui') wstap = startPlain([...args, '--no-tui'], dir, cleanup);
  else if (terminal === 'tmux') wstap = await startInTmux([...args, '--log-file', path.join(dir, 'wstap.log')], dir, P, cleanup);
  else wstap = await startInScript([...args, '--log-file', path.join(dir, 'wstap.log')], dir, P, cleanup);

  const sockets = [];
  try {
    await waitListening(port, wstap, dir);
    // Open the background connections, BATCH at a time.
    const url = `ws://127.0.0.1:${port}`;
    const bg = { sent: 0, received: 0, counting: false, stopped: false, sentInWindow: 0 };
    const payloadFor = (i, n) => `{"bg":${i},"n":${n},"pad":"`.padEnd(P.bgBytes - 2, 'x') + '"}';
    for (let start = 0; start < P.connections; start += P.batch) {
      const batch = [];
      for (let i = start; i < Math.min(P.connections, start + P.batch); i++) batch.push(openSocket(`${url}/bg/${i}`));
      const opened = await Promise.all(batch);
      for (const [k, ws] of opened.entries()) {
        const id = start + k;
        sockets.push(ws);
        let n = 0;
        ws.on('message', () => {
          if (bg.counting) bg.received++;
        });
        const tick = () => {
          if (bg.stopped || ws.readyState !== WebSocket.OPEN) return;
          ws.send(payloadFor(id, n++));
          if (bg.counting) bg.sentInWindow++;
          bg.sent++;
          ws.timer = setTimeout(tick, P.bgMinMs + Math.random() * (P.bgMaxMs - P.bgMinMs));
        };
        ws.timer = setTimeout(tick, Math.random() * P.bgMaxMs);
      }
    }
    // The measure connections: a tight ping-pong each.
    const meas = { count: 0, counting: false, stopped: false, rtts: [] };
    const payload = Buffer.alloc(P.measureBytes, 0x5a);
    const measureSockets = await Promise.all(Array.from({ length: P.measure }, (_, i) => openSocket(`${url}/measure/${i}`)));
    for (const ws of measureSockets) {
      sockets.push(ws);
      let sentAt = 0;
      ws.on('message', () => {
        if (meas.counting) {
          meas.count++;
          meas.rtts.push(performance.now() - sentAt);
        }
        if (meas.stopped) return;
        sentAt = performance.now();
        ws.send(payload, { binary: true });
      });
      sentAt = performance.now();
      ws.send(payload, { binary: true });
    }
    await sleep(P.warmupS * 1000);

    // The window.
    const pids = { wstap: wstap.pid, upstream: upstream.child.pid, tmux: wstap.tmuxPid ?? null };
    const ours = new Set([process.pid, ...Object.values(pids).filter(Boolean)]);
    const before = { cpu: cpuTicks(pids), gen: process.cpuUsage(), sys: systemTicks(), others: otherTicks(ours), t: performance.now() };
    meas.counting = true;
    bg.counting = true;
    await sleep(P.windowS * 1000);
    meas.counting = false;
    bg.counting = false;
    const after = { cpu: cpuTicks(pids), gen: process.cpuUsage(), sys: systemTicks(), others: otherTicks(ours), t: performance.now() };
    const mem = memory(wstap.pid);
    const seconds = (after.t - before.t) / 1000;
    const hz = 100; // USER_HZ: /proc/<pid>/stat counts in 1/100 s on Linux
    const pct = (key) => (before.cpu[key] === null || after.cpu[key] === null ? null : ((after.cpu[key] - before.cpu[key]) / hz / seconds) * 100);
    const genUs = after.gen.user + after.gen.system - before.gen.user - before.gen.system;
    const sysTotal = after.sys.total - before.sys.total;
    let otherTicksUsed = 0;
    for (const [pid, ticks] of after.others) otherTicksUsed += ticks - (before.others.get(pid) ?? 0);
    const otherCpu = (otherTicksUsed / hz / seconds) * 100;
    const busy = sysTotal > 0 ? (1 - (after.sys.idle - before.sys.idle) / sysTotal) * 100 : null;

    let pane = null;
    let open = null;
    if (mode === 'tui' && wstap.capture) {
      pane = wstap.capture();
      const m = /\bopen (\d+)/.exec(pane.join('\n'));
      open = m ? Number(m[1]) : null;
      if (open === null || open < P.connections) console.log(`warning: the UI shows open ${open ?? '?'}, expected ${P.connections + P.measure}`);
    } else {
      open = sockets.filter((s) => s.readyState === WebSocket.OPEN).length;
    }

    const rtts = meas.rtts.sort((a, b) => a - b);
    return {
      mode,
      run,
      msgPerS: meas.count / seconds,
      mibPerS: (meas.count * P.measureBytes) / 2 ** 20 / seconds,
      p50: rtts.length ? rtts[Math.floor(rtts.length * 0.5)] : null,
      p99: rtts.length ? rtts[Math.floor(rtts.length * 0.99)] : null,
      maxRtt: rtts.length ? rtts[rtts.length - 1] : null,
      bgPerS: bg.received / seconds,
      bgSentPerS: bg.sentInWindow / seconds,
      wstapCpu: pct('wstap'),
      upCpu: pct('upstream'),
      tmuxCpu: mode === 'tui' && pids.tmux ? pct('tmux') : null,
      genCpu: genUs / 1e4 / seconds,
      busy,
      otherCpu,
      rssMiB: mem.rss,
      hwmMiB: mem.hwm,
      open,
      pane,
    };
  } finally {
    // Stop the traffic, close the clients, then wstap and the upstream.
    for (const ws of sockets) {
      clearTimeout(ws.timer);
      ws.removeAllListeners('message');
      ws.terminate();
    }
    await wstap.stop();
    upstream.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    await sleep(1000);
  }
}

function openSocket(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 30_000 });
    ws.once('open', () => {
      ws.removeAllListeners('error');
      ws.on('error', () => {});
      resolve(ws);
    });
    ws.once('error', (err) => reject(new Error(`${url}: ${err.message}`)));
  });
}

// ---------------------------------------------------------------- processes
function installCleanup(tmp) {
  const live = new Set();
  const all = () => {
    for (const item of live) {
      try {
        item();
      } catch {
        // already gone
      }
    }
    live.clear();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = (sig) => {
    console.error(`\n${sig}: cleaning up`);
    all();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', all);
  return {
    all,
    /** Registers a synchronous killer; returns a function that unregisters it. */
    add(kill) {
      live.add(kill);
      return () => live.delete(kill);
    },
  };
}

async function startUpstream(cleanup) {
  const child = spawn(process.execPath, [path.join(path.dirname(here), 'echo-app.mjs')], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const forget = cleanup.add(() => child.kill('SIGKILL'));
  const port = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d) => {
      text += d;
      if (text.includes('\n')) resolve(Number(text.trim()));
    });
    child.once('exit', (code) => reject(new Error(`upstream exited (${code}) before listening`)));
  });
  child.stdout.resume();
  return {
    port,
    child,
    stop() {
      child.kill('SIGKILL');
      forget();
    },
  };
}

function startPlain(args, dir, cleanup) {
  const out = fs.openSync(path.join(dir, 'wstap.out'), 'w');
  const child = spawn(process.execPath, args, { stdio: ['ignore', out, out], cwd: dir });
  fs.closeSync(out);
  const forget = cleanup.add(() => child.kill('SIGKILL'));
  let exited = false;
  const exitedP = new Promise((resolve) => child.once('exit', () => ((exited = true), resolve())));
  return {
    pid: child.pid,
    alive: () => !exited,
    diagnostics: () => readTail(path.join(dir, 'wstap.out')),
    async stop() {
      if (!exited) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exitedP;
      clearTimeout(t);
      forget();
    },
  };
}

async function startInTmux(args, dir, P, cleanup) {
  const socket = `wstap-bench-${process.pid}`;
  const tmux = (...a) => execFileSync('tmux', ['-L', socket, ...a], { encoding: 'utf8' });
  const command = `exec env NCURSES_NO_UTF8_ACS=1 ${[process.execPath, ...args].map(shq).join(' ')} 2>>${shq(path.join(dir, 'wstap.err'))}`;
  let pid = null;
  const forget = cleanup.add(() => {
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    spawnSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
  });
  execFileSync('tmux', ['-u', '-L', socket, '-f', '/dev/null', 'new-session', '-d', '-s', 'bench', '-x', String(P.cols), '-y', String(P.rows), '-c', dir, command, ';', 'set-option', '-t', 'bench', 'remain-on-exit', 'on'], { stdio: 'ignore' });
  pid = Number(tmux('list-panes', '-t', 'bench', '-F', '#{pane_pid}').trim());
  // The pane's shell execs node: wait until it has.
  for (let i = 0; i < 100 && !readCmdline(pid).includes('wstap'); i++) await sleep(50);
  if (!readCmdline(pid).includes('wstap')) throw new Error(`tmux pane ${pid} is not wstap: "${readCmdline(pid)}"; pane: ${tmux('capture-pane', '-p', '-t', 'bench')}`);
  const tmuxPid = Number(tmux('display-message', '-p', '#{pid}').trim());
  const isAlive = () => {
    try {
      return tmux('list-panes', '-t', 'bench', '-F', '#{pane_dead}').trim() === '0';
    } catch {
      return false;
    }
  };
  return {
    pid,
    tmuxPid,
    alive: isAlive,
    capture: () => tmux('capture-pane', '-p', '-t', 'bench').split('\n'),
    diagnostics: () => {
      let pane = '';
      try {
        pane = tmux('capture-pane', '-p', '-t', 'bench');
      } catch {
        // server gone
      }
      return `${pane}\n${readTail(path.join(dir, 'wstap.err'))}\n${readTail(path.join(dir, 'wstap.log'))}`;
    },
    async stop() {
      if (isAlive()) process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 10_000;
      while (isAlive() && Date.now() < deadline) await sleep(100);
      if (isAlive()) process.kill(pid, 'SIGKILL');
      spawnSync('tmux', ['-L', socket, 'kill-server'], { stdio: 'ignore' });
      forget();
    },
  };
}

async function startInScript(args, dir, P, cleanup) {
  // util-linux script: a pseudo-terminal without a multiplexer. The pty gets its
  // size from stty; its output goes to /dev/null (nobody renders it).
  const command = `stty cols ${P.cols} rows ${P.rows}; exec env NCURSES_NO_UTF8_ACS=1 ${[process.execPath, ...args].map(shq).join(' ')} 2>>${shq(path.join(dir, 'wstap.err'))}`;
  const devnull = fs.openSync('/dev/null', 'w');
  const child = spawn('script', ['-qfc', command, '/dev/null'], { stdio: ['pipe', devnull, devnull], cwd: dir });
  fs.closeSync(devnull);
  const forget = cleanup.add(() => child.kill('SIGKILL'));
  let exited = false;
  const exitedP = new Promise((resolve) => child.once('exit', () => ((exited = true), resolve())));
  let pid = null;
  for (let i = 0; i < 100 && pid === null; i++) {
    await sleep(50);
    const kids = childrenOf(child.pid);
    for (const k of kids) if (readCmdline(k).includes('wstap')) pid = k;
  }
  if (pid === null) throw new Error('could not find wstap under script');
  const forgetNode = cleanup.add(() => process.kill(pid, 'SIGKILL'));
  return {
    pid,
    alive: () => !exited && fs.existsSync(`/proc/${pid}`),
    capture: null,
    diagnostics: () => `${readTail(path.join(dir, 'wstap.err'))}\n${readTail(path.join(dir, 'wstap.log'))}`,
    async stop() {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exitedP;
      clearTimeout(t);
      forget();
      forgetNode();
    },
  };
}

async function waitListening(port, proc, dir) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (!proc.alive()) break;
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`wstap did not start listening on ${port} (${dir}):\n${proc.diagnostics()}`);
}

// ---------------------------------------------------------------- /proc
function cpuTicks(pids) {
  const out = {};
  for (const [key, pid] of Object.entries(pids)) {
    out[key] = null;
    if (!pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[key] = Number(fields[11]) + Number(fields[12]); // utime + stime
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * utime + stime of every user process outside the benchmark (one that started
 * during the window counts whole). Kernel threads are left out: under this load
 * they mostly move our own loopback traffic (ksoftirqd).
 */
function otherTicks(ours) {
  const out = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (ours.has(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[6]) & 0x200000) continue; // PF_KTHREAD
      out.set(pid, Number(fields[11]) + Number(fields[12]));
    } catch {
      // gone
    }
  }
  return out;
}

function systemTicks() {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  return { total: v.reduce((a, b) => a + b, 0), idle: v[3] + (v[4] ?? 0) };
}

function memory(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
    return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
  } catch {
    return { rss: null, hwm: null };
  }
}

function childrenOf(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function readCmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------- helpers
/** WSTAP_NODE_ARGS: extra node flags for wstap only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof". */
function nodeArgsForWstap() {
  return (process.env.WSTAP_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
}

function shq(s) {
  return `'${String(s).replaceAll("'", `'\\''`)}'`;
}

function readTail(file) {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-2000);
  } catch {
    return '';
  }
}

function median(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function fmt(v, digits) {
  return v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits);
}
