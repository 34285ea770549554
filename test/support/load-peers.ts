import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';

const PEER_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'load-peer.mjs');

/** A load peer (test/support/load-peer.mjs) in its own process: its sockets count against its own open-files limit. */
export interface LoadPeer {
  pid: number;
  call<T = unknown>(cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

interface Reply {
  id?: number;
  ok?: boolean;
  result?: unknown;
  error?: string;
  ready?: boolean;
}

export async function startLoadPeer(role: 'upstream' | 'client'): Promise<LoadPeer> {
  const child: ChildProcess = fork(PEER_SCRIPT, [role], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // The peers hold thousands of ws objects and their digests: give the heap room.
    execArgv: ['--max-old-space-size=4096'],
    serialization: 'advanced',
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true;
      for (const p of pending.values()) p.reject(new Error(`load peer (${role}) exited: code ${code}, signal ${signal}`));
      pending.clear();
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const onMessage = (m: Reply): void => {
      if (m.ready) {
        child.off('message', onMessage);
        resolve();
      }
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`load peer (${role}) exited before it was ready: code ${code}`)));
  });
  child.on('message', (m: Reply) => {
    if (m.id === undefined) return;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.result);
    else p.reject(new Error(`load peer (${role}): ${m.error}`));
  });
  return {
    pid: child.pid ?? -1,
    call: <T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> => {
      if (exited) return Promise.reject(new Error(`load peer (${role}) is gone`));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`load peer (${role}): ${cmd} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ id, cmd, args });
      });
    },
    stop: async () => {
      if (!exited) child.kill('SIGKILL');
      await exit;
    },
  };
}

// --- /proc readings of another process (Linux) ---------------------------

function statusField(pid: number, field: string): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Resident set size in bytes (VmRSS). */
export function rssOf(pid: number): number {
  return statusField(pid, 'VmRSS');
}

/** Peak resident set size in bytes since start or the last resetPeakRss (VmHWM). */
export function peakRssOf(pid: number): number {
  return statusField(pid, 'VmHWM');
}

/** Resets VmHWM to the current RSS (writing 5 to clear_refs; needs only ptrace rights over the process). */
export function resetPeakRss(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Open file descriptors of the process. */
export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** What the open descriptors are (socket:[...], pipe:[...], a path), for a failure message. */
export function fdKinds(pid: number): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const kind = /^(\w+):/.exec(target)?.[1] ?? (target.startsWith('anon_inode') ? target : 'file');
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

/** The hard open-files limit of the process (its soft limit is raised to this by Node at start). */
export function openFilesHardLimit(pid: number): number {
  const limits = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  if (!m) throw new Error(`no open-files limit in /proc/${pid}/limits`);
  return m[2] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[2]);
}

/** Samples RSS every `everyMs` until stopped; the highest sample and the count. */
export function sampleRss(pid: number, everyMs = 50): { stop(): { peak: number; samples: number } } {
  let peak = 0;
  let samples = 0;
  const take = (): void => {
    try {
      peak = Math.max(peak, rssOf(pid));
      samples++;
    } catch {
      // The process is gone; the caller notices elsewhere.
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return { peak, samples };
    },
  };
}

/**
 * Runs `methods` in order through the inspector of a process started with
 * `node --inspect=127.0.0.1:0` (its URL from the "Debugger listening on
 * ws://..." line) and returns the last result.
 */
async function inspect(inspectorUrl: string, methods: Array<[string, Record<string, unknown>?]>): Promise<Record<string, unknown>> {
  const ws = new WebSocket(inspectorUrl);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let nextId = 1;
  const call = (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const onMessage = (data: Buffer): void => {
        const reply = JSON.parse(data.toString()) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
        if (reply.id !== id) return;
        ws.off('message', onMessage);
        if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
        else resolve(reply.result ?? {});
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    let result: Record<string, unknown> = {};
    for (const [method, params] of methods) result = await call(method, params);
    return result;
  } finally {
    // Closed before the answer is used: a session still attached would hold up the process's exit.
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.close();
    await closed;
  }
}

/** Evaluates `expression` (its value JSON-serialisable) in the inspected process. */
export async function evaluateIn(inspectorUrl: string, expression: string, timeoutMs = 15_000): Promise<unknown> {
  const result = await within(
    inspect(inspectorUrl, [['Runtime.evaluate', { expression: `JSON.stringify(${expression})`, returnByValue: true }]]),
    timeoutMs,
    `an evaluation through the inspector at ${inspectorUrl}`,
  );
  return JSON.parse((result.result as { value: string }).value) as unknown;
}

/**
 * The inspected process's memory after a full garbage collection: live JS
 * heap and Buffer memory, which RSS cannot show since neither V8 nor malloc
 * hands every freed page back at once.
 */
export async function memoryAfterGc(inspectorUrl: string, timeoutMs = 15_000): Promise<NodeJS.MemoryUsage> {
  const result = await within(
    inspect(inspectorUrl, [['HeapProfiler.collectGarbage'], ['Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true }]]),
    timeoutMs,
    `a GC and process.memoryUsage() through the inspector at ${inspectorUrl}`,
  );
  return JSON.parse((result.result as { value: string }).value) as NodeJS.MemoryUsage;
}

/** For a failure message: the TCP sockets a process still holds, through its inspector, with their stream states. */
export function openSocketsIn(inspectorUrl: string): Promise<unknown> {
  return evaluateIn(
    inspectorUrl,
    `process._getActiveHandles().filter((h) => h.constructor.name === 'Socket' && h.remotePort !== undefined).slice(0, 20).map((h) => ({
      local: h.localPort, remote: h.remotePort, destroyed: h.destroyed, readableEnded: h.readableEnded, writableEnded: h.writableEnded,
      writableFinished: h.writableFinished, writableLength: h.writableLength, bytesRead: h.bytesRead, bytesWritten: h.bytesWritten }))`,
  ).catch((err: unknown) => `(could not ask: ${String(err)})`);
}

/** `promise`, or an error naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The inspector's address from its stderr line. */
export function inspectorUrlIn(stderr: string): string | null {
  return /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1] ?? null;
}

/**
 * Deletes a passed run's capture and its temporary directory (startWstap's
 * own): load runs write hundreds of MiB. A failing test never gets here and
 * leaves its capture for a look.
 */
export function removeCapture(capturePath: string): void {
  const dir = path.dirname(capturePath);
  if (path.basename(dir).startsWith('wstap-run-')) fs.rmSync(dir, { recursive: true, force: true });
}

export const MiB = 1024 * 1024;
export const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

/** Polls `check` every 100 ms until it holds; rejects naming `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
