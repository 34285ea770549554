// The app behind every relay in the benchmarks: a `ws` echo server in its own
// process (so it never shares an event loop with the load or the relay). It
// prints its port on stdout and exits on SIGTERM or when its parent goes.
// Plain HTTP requests (not upgrades) are echoed too, for the relay suite's
// keep-alive scenario: 200 with the request body, Content-Length, keep-alive.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
    res.end(body);
  });
});
// Relays keep idle upstream connections for minutes between scenarios: do not close them under their feet after 5 s.
server.keepAliveTimeout = 300_000;
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false, maxPayload: 1 << 20 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
