import net from 'node:net';

/**
 * Two connected loopback sockets through `server` (listening on 127.0.0.1):
 * the near end connected by the test, the far end as `server` accepted it.
 * Both allow half-close, as the relay's sockets do, and swallow errors (the
 * tests reset and destroy them on purpose).
 */
export async function socketPair(server: net.Server): Promise<[net.Socket, net.Socket]> {
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const { port } = server.address() as net.AddressInfo;
  const near = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((resolve) => near.once('connect', resolve));
  const far = await accepted;
  for (const s of [near, far]) s.on('error', () => undefined);
  return [near, far];
}
