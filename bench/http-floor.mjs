// Side measurement for scenario (e), not part of `npm run bench`: what plain
// HTTP proxying costs in Node before wstap records anything. Same load as
// (e) (32 keep-alive connections, POST with a 100 B body echoed, one request
// at a time each) against: the app directly; http-proxy-3 alone (the library
// wstap's HTTP path was built on before issue 17, keep-alive agent, nothing
// recorded; reported missing when it is not installed); a bare Node http
// server + http.request pipe (no http-proxy); wstap as in the suite.
// Run: npm run build && node bench/http-floor.mjs
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, firstLine, freePort, median, stop, waitForPort } from './util.mjs';

const here = fileURLToPath(import.meta.url);
const root = path.resolve(path.dirname(here), '..');
const roleAt = process.argv.indexOf('--role');

if (roleAt >= 0) {
  // A relay process: --role http-proxy-3|node-http APP_PORT
  const role = process.argv[roleAt + 1];
  const appPort = Number(process.argv[roleAt + 2]);
  const agent = new http.Agent({ keepAlive: true });
  let handler;
  if (role === 'http-proxy-3') {
    let createProxyServer;
    try {
      ({ createProxyServer } = await import('http-proxy-3'));
    } catch {
      // No longer a dependency of wstap (issue 17): say so instead of failing.
      process.stdout.write('missing\n');
      process.exit(0);
    }
    const proxy = createProxyServer({ target: `http://127.0.0.1:${appPort}`, agent, xfwd: false });
    handler = (req, res) => proxy.web(req, res);
  } else {
    handler = (req, res) => {
      const up = http.request({ host: '127.0.0.1', port: appPort, method: req.method, path: req.url, headers: req.headers, agent }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    };
  }
  const server = http.createServer({ noDelay: true, keepAliveTimeout: 65_000 }, handler);
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function load(port, seconds) {
  const request = Buffer.from(`POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: 100\r\n\r\n${'x'.repeat(100)}`);
  let done = 0;
  let stopped = false;
  const connection = async () => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    let buffered = '';
    let failed = null;
    socket.on('error', (err) => (failed = err));
    while (!stopped) {
      if (failed) throw failed;
      socket.write(request);
      await new Promise((resolve) => {
        const onData = (d) => {
          buffered += d.toString('latin1');
          const end = buffered.indexOf('\r\n\r\n');
          if (end < 0) return;
          const length = Number(/content-length: *(\d+)/i.exec(buffered.slice(0, end))?.[1]);
          if (buffered.length < end + 4 + length) return;
          buffered = buffered.slice(end + 4 + length);
          socket.off('data', onData);
          resolve();
        };
        socket.on('data', onData);
      });
      done++;
    }
    socket.destroy();
  };
  const all = Array.from({ length: 32 }, connection);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  stopped = true;
  await Promise.all(all);
  return done / seconds;
}

async function main() {
  const app = launch(process.execPath, [path.join(path.dirname(here), 'echo-app.mjs')]);
  const appPort = Number(await firstLine(app, 'app'));
  const children = [app];
  const relays = { direct: appPort };
  for (const role of ['http-proxy-3', 'node-http']) {
    const child = launch(process.execPath, [here, '--role', role, String(appPort)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    children.push(child);
    const line = await firstLine(child, role);
    if (line.trim() === 'missing') console.log(`${role.padEnd(14)} missing (not installed)`);
    else relays[role] = Number(line);
  }
  const wstapPort = await freePort();
  const wstap = launch(process.execPath, [path.join(root, 'bin', 'wstap'), 'proxy', '--target', `http://127.0.0.1:${appPort}`, '--listen', `127.0.0.1:${wstapPort}`,
    '--no-tui', '--log-format', 'json', '--capture', path.join(os.tmpdir(), `wstap-http-floor-${process.pid}.jsonl`), '--force']);
  children.push(wstap);
  await waitForPort(wstapPort, wstap, 'wstap');
  relays.wstap = wstapPort;
  const results = Object.fromEntries(Object.keys(relays).map((k) => [k, []]));
  for (let round = 0; round < 5; round++) {
    for (const [name, port] of Object.entries(relays)) results[name].push(await load(port, 2));
  }
  for (const [name, values] of Object.entries(results)) {
    console.log(`${name.padEnd(14)} ${Math.round(median(values)).toLocaleString('en-US').padStart(8)} requests/s (median of 5 runs of 2 s; ${values.map((v) => Math.round(v)).join(', ')})`);
  }
  await Promise.all(children.map(stop));
}
