// The "node-pipe" baseline relay of bench/relays.mjs: net.createServer +
// net.connect, pipe both ways, allowHalfOpen, noDelay on both sockets (as
// wstap and nginx: Nagle would add ~1 ms to scenario (c)), in its own process. Prints its
// port on stdout; exits on SIGTERM (SIGINT's default) or when its parent goes.
import net from 'node:net';

const upstream = Number(process.argv[2]);
const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const up = net.connect({ host: '127.0.0.1', port: upstream, allowHalfOpen: true, noDelay: true });
  client.pipe(up);
  up.pipe(client);
  client.on('error', () => up.destroy());
  up.on('error', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
