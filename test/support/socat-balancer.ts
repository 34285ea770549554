import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, waitForPort } from './ports.js';

/** A stand-in load balancer: socat with an idle timeout, in front of a loopback port. */
export interface SocatBalancer {
  port: number;
  stop(): Promise<void>;
}

/**
 * `socat -T SECONDS TCP-LISTEN:port,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:target`:
 * each connection forwarded to `targetPort` and closed (a FIN both ways) after
 * SECONDS with no byte in either direction, as a load balancer's idle
 * timeout does. Its own process group, so stop() ends the forked children too.
 */
export async function startSocatBalancer(targetPort: number, idleSeconds: number): Promise<SocatBalancer> {
  const port = await freePort();
  const child: ChildProcess = spawn('socat', ['-T', String(idleSeconds), `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${targetPort}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port),
      exited.then(() => {
        throw new Error(`socat exited before listening (is socat installed? apt-get install -y socat): ${stderr}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    port,
    stop: async () => {
      if (child.exitCode !== null || child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        child.kill('SIGTERM');
      }
      await exited;
    },
  };
}
