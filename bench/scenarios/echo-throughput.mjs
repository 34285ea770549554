// Scenarios (a) bulk and (b) small messages: pipelined WebSocket echo through
// a relay, throughput in the window. Also the WebSocket client helpers the
// other WebSocket scenarios use.
//
// A scenario module exports objects with: id, letter (the issue's scenario),
// title, relays ('shared': the long-lived relay of the suite; 'own': a fresh
// instance per measurement), measure(ctx) -> value (throws on failure),
// describe(value) -> text for the progress line, section(results, cfg) ->
// markdown lines, summary(results, cfg) -> rows for "wstap against the
// baselines" (see bench/report.mjs).
import { measuredIn } from '../relay-processes.mjs';
import WebSocket from 'ws';
import { countWindow, fmtNum, median } from '../util.mjs';

/** One client connection; resolves on 'open'. */
export function openSocket(url, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 20 });
    ws.binaryType = 'nodebuffer';
    const t = setTimeout(() => { ws.terminate(); reject(new Error(`connect timeout (${timeoutMs} ms)`)); }, timeoutMs);
    ws.once('open', () => { clearTimeout(t); resolve(ws); });
    ws.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

// Opened 10 at a time: socat's TCP-LISTEN had a listen backlog of 5 by default.
export async function openSockets(url, count) {
  const all = [];
  for (let i = 0; i < count; i += 10) {
    const n = Math.min(10, count - i);
    all.push(...(await Promise.all(Array.from({ length: n }, () => openSocket(url)))));
  }
  return all;
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
  const elapsed = await countWindow(state, { warmupMs, seconds }, () => {
    for (const ws of sockets) ws.terminate();
  });
  if (state.error) throw state.error;
  if (state.messages === 0) throw new Error('no echo in the window');
  return { bytes: state.bytes, messages: state.messages, seconds: elapsed };
}

/** Median of the numeric values a relay has for a scenario (undefined when none). */
export function medianOf(results, name, id) {
  const v = results[name]?.values?.[id];
  return v && v.length ? median(v) : undefined;
}

/**
 * A scenario whose figure is one number per run, higher is better (throughput):
 * median, min - max, runs, vs node-pipe; target = a share of node-pipe's
 * median (null: none), and the 10x-mitmdump target when mitmTarget is set.
 * run(port, cfg) -> the number.
 */
export function throughputScenario({ id, letter, title, unit, digits, target, mitmTarget, note, run }) {
  return {
    id, letter, title, unit, digits, target, relays: 'shared',
    measure: ({ port, cfg }) => run(port, cfg),
    describe: (v) => v.toFixed(digits),
    section(results) {
      const L = [`## ${title}`, ''];
      if (note) L.push(note, '');
      L.push(`| relay | median ${unit} | min – max | runs | vs node-pipe |`, '|---|---:|---:|---:|---:|');
      const base = medianOf(results, 'node-pipe', id);
      for (const [name, e] of Object.entries(results)) {
        if (!measuredIn(name, id)) continue;
        if (e.status !== 'ok') { L.push(`| ${name} | ${e.status} | | | |`); continue; }
        const v = e.values[id] ?? [];
        const m = v.length ? median(v) : undefined;
        const errs = e.errors[id]?.length ? ` (${e.errors[id].length} failed: ${e.errors[id][0]})` : '';
        L.push(`| ${name} | ${fmtNum(m, digits)} | ${v.length ? `${fmtNum(Math.min(...v), digits)} – ${fmtNum(Math.max(...v), digits)}` : '–'} | ${v.length}${errs} | ${m !== undefined && base ? `${(100 * m / base).toFixed(1)} %` : '–'} |`);
      }
      L.push('');
      // Issue 20: what --metrics (scraped once a second) costs, in the same run.
      const plain = medianOf(results, 'wstap', id);
      const withMetrics = medianOf(results, 'wstap-metrics', id);
      if (plain && withMetrics !== undefined) L.push(`wstap --metrics vs wstap: ${(100 * withMetrics / plain).toFixed(1)} % (medians of the same run)`, '');
      return L;
    },
    summary(results) {
      const w = medianOf(results, 'wstap', id);
      const n = medianOf(results, 'node-pipe', id);
      const m = medianOf(results, 'mitmdump', id);
      const d = medianOf(results, 'direct', id);
      const r = w !== undefined && n ? w / n : undefined;
      const vsMitm = w !== undefined && m ? w / m : undefined;
      // No relay can beat direct: when direct itself is under the 10x, the target is out of reach here, and the row says so.
      const ceiling = d !== undefined && m ? d / m : undefined;
      const outOfReach = mitmTarget && ceiling !== undefined && ceiling < mitmTarget ? ` (out of reach here: direct, no relay at all, is ${ceiling.toFixed(2)}x mitmdump)` : '';
      return [{
        id, letter,
        wstap: w === undefined ? '–' : `${fmtNum(w, digits)} ${unit}`,
        vsNodePipe: r === undefined ? '–' : `${(100 * r).toFixed(1)} %`,
        target: target === null ? 'none (report only)' : `>= ${target * 100} % of node-pipe`,
        met: target === null ? null : r === undefined ? 'not measured' : r >= target ? 'yes' : 'no',
        figure: r === undefined ? '–' : `${(100 * r).toFixed(1)} %`,
        vsMitm: vsMitm === undefined ? undefined : `${vsMitm.toFixed(2)}x`,
        mitmMet: !mitmTarget ? null : vsMitm === undefined ? 'not measured' : vsMitm >= mitmTarget ? `yes (>= ${mitmTarget}x)` : `no (< ${mitmTarget}x)${outOfReach}`,
      }];
    },
  };
}

const echo = (load, value) => async (port, cfg) => value(await echoLoad(port, { ...load, warmupMs: cfg.warmupMs, seconds: cfg.seconds }));

export const echoThroughputScenarios = [
  throughputScenario({ id: 'bulk', letter: 'a', title: '(a) bulk throughput: 1 connection, 64 KiB binary messages both ways (pipelined echo, 1 MiB in flight)', unit: 'MiB/s received in total',
    run: echo({ connections: 1, size: 65536, window: 16 }, (r) => (2 * r.bytes) / 2 ** 20 / r.seconds), digits: 0, target: 0.8, mitmTarget: 10 }),
  throughputScenario({ id: 'small-1', letter: 'b', title: '(b) small messages: 100 B binary, 1 connection (pipelined echo, 256 in flight)', unit: 'echoed messages/s',
    run: echo({ connections: 1, size: 100, window: 256 }, (r) => r.messages / r.seconds), digits: 0, target: 0.7, mitmTarget: 10 }),
  throughputScenario({ id: 'small-100', letter: 'b', title: '(b) small messages: 100 B binary, 100 connections (pipelined echo, 32 in flight each)', unit: 'echoed messages/s',
    run: echo({ connections: 100, size: 100, window: 32 }, (r) => r.messages / r.seconds), digits: 0, target: 0.7, mitmTarget: 10 }),
];
