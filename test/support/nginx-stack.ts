import { expect } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { startNginx, type Nginx, type NginxOptions } from './nginx.js';
import { startWstap, type WstapProcess } from './wstap-process.js';

/** A real nginx in front of the real wstap CLI, which forwards to `targetPort`: the path of an incident. */
export interface NginxStack {
  nginx: Nginx;
  wstap: WstapProcess;
  stop(): Promise<void>;
}

export async function startNginxStack(targetPort: number, nginxOptions: Omit<NginxOptions, 'upstreamPort'> = {}, wstapArgs: string[] = []): Promise<NginxStack> {
  const wstap = await startWstap(['--target', `http://127.0.0.1:${targetPort}`, ...wstapArgs]);
  const nginx = await startNginx({ upstreamPort: wstap.port, ...nginxOptions });
  return {
    nginx,
    wstap,
    stop: async () => {
      await nginx.stop();
      await wstap.stop();
    },
  };
}

/** Stops nginx, then wstap (SIGINT, exit 0 expected), and returns the capture: everything is on disk once it exits. */
export async function finalCapture(s: NginxStack): Promise<CaptureEvent[]> {
  await s.nginx.stop();
  expect(await s.wstap.stop()).toBe(0);
  return s.wstap.events();
}
