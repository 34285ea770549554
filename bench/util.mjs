import { performance } from 'node:perf_hooks';
// Helpers shared by the benchmarks (bench/relays.mjs, bench/relay-processes.mjs, bench/tui-overhead.mjs,
// bench/scenarios/*.mjs, bench/report.mjs): numbers, ports, child processes.
import { spawn } from 'node:child_process';
import net from 'node:net';

export function envNumber(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${raw}: not a positive number`);
  return n;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves when `promise` does or after `ms`, whichever is first; the timer does not outlive it (a pending sleep would keep the process alive). */
export function withTimeout(promise, ms) {
  let timer;
  return Promise.race([promise, new Promise((r) => { timer = setTimeout(r, ms); })]).finally(() => clearTimeout(timer));
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return undefined;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted, p) {
  if (!sorted.length) return undefined;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function fmtNum(v, digits) {
  return v === undefined || v === null || Number.isNaN(v) ? '–' : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port, child, what, timeoutMs = 15000) {
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

export function launch(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let stderr = '';
  child.stderr.on('data', (d) => { if (stderr.length < 20000) stderr += d.toString(); });
  child.stderrText = () => stderr;
  return child;
}

export function firstLine(child, what) {
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

export const isRunning = (child) => !!child && child.exitCode === null && child.signalCode === null;

export async function stop(child) {
  if (!isRunning(child)) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/**
 * The measurement window of a load that runs on its own: warm up, count for
 * `seconds` (state.counting), then stop it (state.stopped, `close()`) and
 * let the last replies drain. Returns the window's length in seconds.
 */
export async function countWindow(state, { warmupMs, seconds, window }, close) {
  await sleep(warmupMs);
  window?.start();
  state.counting = true;
  const t0 = performance.now();
  await sleep(seconds * 1000);
  state.counting = false;
  const elapsed = (performance.now() - t0) / 1000;
  window?.end();
  state.stopped = true;
  close();
  await sleep(100);
  return elapsed;
}
