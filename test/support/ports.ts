import { spawn } from 'node:child_process';
import net from 'node:net';

/** A port that was free a moment ago on 127.0.0.1 (the OS picks it). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once something accepts TCP connections on the port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface UnansweredListener {
  port: number;
  close(): Promise<void>;
}

/**
 * A loopback port where a TCP connect never completes: a listener (perl,
 * since a Node server accepts everything) with a backlog of 1 that never
 * accepts, its queue filled first, so the kernel leaves further SYNs
 * unanswered. Checked: a probe connect must still be pending after 300 ms.
 */
export async function startUnansweredListener(): Promise<UnansweredListener> {
  const child = spawn(
    'perl',
    ['-MIO::Socket::INET', '-e', '$| = 1; my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0, Listen => 1) or die "listen: $!"; print $s->sockport, "\\n"; sleep 3600;'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  const held: net.Socket[] = [];
  const close = async (): Promise<void> => {
    for (const s of held) s.destroy();
    child.kill();
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
  };
  for (let i = 0; i < 10; i++) {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    held.push(socket);
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 300);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) {
      socket.destroy();
      return { port, close };
    }
  }
  await close();
  throw new Error(`the listener on 127.0.0.1:${port} kept accepting connections: no way to leave a connect unanswered here`);
}
