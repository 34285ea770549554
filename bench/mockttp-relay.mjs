// The "mockttp" peer relay of bench/relays.mjs: the Node engine behind HTTP
// Toolkit, as a pass-through reverse proxy to the app (plain HTTP and
// WebSocket forwarded to it, nothing mocked), in its own process. mockttp is
// not a dependency of wstap: it comes from bench/peers (npm --prefix
// bench/peers install; not `ci`, which refuses the lock because mockttp names
// an optional dependency the registry does not have). mockttp has no
// listen-address option: it listens on all
// interfaces, on the port given, for as long as the bench runs. Prints its
// port on stdout; exits on SIGTERM or when its parent goes.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const peers = path.join(path.dirname(fileURLToPath(import.meta.url)), 'peers', 'package.json');
const mockttp = createRequire(peers)('mockttp');
const [app, port] = process.argv.slice(2).map(Number);
// recordTraffic off: a pass-through proxy, not a traffic store (HTTP Toolkit's UI would be the recorder).
const server = mockttp.getLocal({ recordTraffic: false });
await server.start(port);
await server.forAnyRequest().thenForwardTo(`http://127.0.0.1:${app}`);
await server.forAnyWebSocket().thenForwardTo(`ws://127.0.0.1:${app}`);
process.stdout.write(`${server.port}\n`);
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
