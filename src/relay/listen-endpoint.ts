import fs from 'node:fs';
import net from 'node:net';

/** Where wstap listens: a TCP address or a unix socket file (what nginx's `proxy_pass http://unix:PATH:` reaches). */
export type ListenEndpoint = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** The longest unix socket path the kernel takes (sun_path is 108 bytes with its NUL); libuv would silently cut a longer one. */
export const MAX_UNIX_PATH_BYTES = 107;

/** A unix socket file is created readable and writable by its owner and group (nginx's workers run in a group one can share), nobody else. */
export const UNIX_SOCKET_MODE = 0o660;

/**
 * A socket file wstap will not listen on: another process still answers on
 * it (`WSTAP_SOCKET_IN_USE`), or the path is something other than a socket
 * (`WSTAP_NOT_A_SOCKET`), which wstap never deletes.
 */
export class ListenPathError extends Error {
  constructor(
    readonly code: 'WSTAP_SOCKET_IN_USE' | 'WSTAP_NOT_A_SOCKET',
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'ListenPathError';
  }
}

/** How the endpoint is written in logs, the capture's `session.start` and the UI's header line. */
export function endpointText(endpoint: ListenEndpoint): string {
  if (endpoint.kind === 'unix') return `unix:${endpoint.path}`;
  return net.isIPv6(endpoint.host) ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

/**
 * Starts `server` listening on `endpoint` and resolves with the endpoint as
 * bound (port 0 resolved). A unix socket path is taken over only when it is
 * free or a stale socket (nobody accepts on it, as after a crash); see
 * clearStaleSocket. Closing the server removes the socket file (libuv unlinks
 * it), so a graceful stop leaves nothing behind.
 */
export async function listenOn(server: net.Server, endpoint: ListenEndpoint): Promise<ListenEndpoint> {
  if (endpoint.kind === 'unix') await clearStaleSocket(endpoint.path);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const listening = (): void => {
      server.removeListener('error', reject);
      const address = server.address();
      resolve(
        endpoint.kind === 'unix' || address === null || typeof address === 'string'
          ? endpoint
          : { kind: 'tcp', host: address.address, port: address.port },
      );
    };
    if (endpoint.kind === 'tcp') {
      server.listen(endpoint.port, endpoint.host, listening);
      return;
    }
    // The mode is set through the umask, not by chmod after listening: between
    // bind and chmod the file would carry 0777 minus the user's umask (anyone
    // may connect under umask 0), and a connection made then outlives the
    // chmod. Node binds synchronously inside listen() (checked by
    // test/e2e/listen-endpoints.test.ts), so the umask is ours for that call
    // only and restored before any other code of this process runs.
    const previous = process.umask(0o777 & ~UNIX_SOCKET_MODE);
    try {
      server.listen(endpoint.path, listening);
    } finally {
      process.umask(previous);
    }
  });
}

/**
 * Makes `path` free for a new socket, or refuses. Nothing there: fine. A
 * socket nobody accepts on (connect says ECONNREFUSED: its process died
 * without removing it): removed. A socket that answers: another process
 * (maybe another wstap) serves it, refused. Anything else (a regular file, a
 * directory, a link): refused and left alone, since wstap deletes only what
 * is provably a dead socket.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!stat.isSocket()) {
    throw new ListenPathError('WSTAP_NOT_A_SOCKET', path, `${path} exists and is not a socket; wstap will not replace it (remove it yourself or choose another path)`);
  }
  const answer = await probeSocket(path);
  if (answer === 'listening') {
    throw new ListenPathError('WSTAP_SOCKET_IN_USE', path, `another process is listening on ${path}; stop it or choose another path`);
  }
  if (answer === 'refused') {
    try {
      fs.unlinkSync(path);
    } catch (err) {
      // Removed in between (another wstap cleaning up the same stale socket): the path is free all the same.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/** Connects to a unix socket once: does a process accept on it? */
function probeSocket(path: string): Promise<'listening' | 'refused' | 'gone'> {
  return new Promise((resolve, reject) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve('listening');
    });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      probe.destroy();
      if (err.code === 'ECONNREFUSED') resolve('refused');
      else if (err.code === 'ENOENT') resolve('gone');
      else reject(err);
    });
  });
}

