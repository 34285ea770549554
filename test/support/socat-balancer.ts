import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, waitForPort } from './ports.js';

/** A stand-in load balancer in front of nginx: socat with a both-way idle timeout (-T), closing both sides with a FIN when it fires. */
export interface SocatBalancer {
  port: number;
  stop(): Promise<void>;
}

export async function startSocatBalancer(targetPort: number, idleSeconds: number): Promise<SocatBalancer> {
  const port = await freePort();
  const child: ChildProcess = spawn('socat', ['-T', String(idleSeconds), `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${targetPort}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      waitForPort(port),
      exited.then(() => {
        throw new Error(`socat exited before listening on ${port}: ${stderr}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
