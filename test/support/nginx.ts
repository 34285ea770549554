import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './ports.js';

export interface NginxOptions {
  /** Where nginx forwards (wstap's port on 127.0.0.1)... */
  upstreamPort?: number;
  /** ...or any address of an upstream `server` line, e.g. `unix:/tmp/x/wstap.sock`. */
  upstreamServer?: string;
  /** How nginx talks to wstap: `https` for proxy_pass https:// (put proxy_ssl_* directives in locationExtra). */
  upstreamScheme?: 'http' | 'https';
  /** Extra directives inside the `wstap` upstream block, e.g. `keepalive 4;` (nginx reuses its connections to wstap). */
  upstreamExtra?: string;
  /** proxy_pass's whole argument instead of the `wstap` upstream block, e.g. `http://unix:/tmp/x/wstap.sock:`. */
  proxyPass?: string;
  /** Extra directives inside `location /`, replacing the default WebSocket headers when `websocketHeaders` is false. */
  locationExtra?: string;
  websocketHeaders?: boolean;
  proxyReadTimeout?: string;
  httpVersion?: '1.0' | '1.1';
  /** Where nginx writes its error log (default: error.log in its temp dir) and from which level (default info). */
  errorLog?: { path?: string; level?: 'info' | 'notice' | 'warn' | 'error' };
}

export interface Nginx {
  port: number;
  dir: string;
  errorLog(): string;
  /** nginx -s reopen: nginx reopens its log files (what logrotate's postrotate does). */
  reopenLogs(): void;
  stop(): Promise<void>;
}

export function nginxBinary(): string {
  for (const candidate of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) {
    if (fs.existsSync(candidate)) return candidate;
  }
  const which = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  throw new Error('nginx is not installed: the e2e tests need a real nginx (apt-get install -y nginx; .ci/run does it)');
}

/** A real nginx in the foreground, its own prefix in a temp dir, on a free loopback port. */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-nginx-'));
  const port = await freePort();
  const websocketHeaders = options.websocketHeaders ?? true;
  const upstreamServer = options.upstreamServer ?? (options.upstreamPort !== undefined ? `127.0.0.1:${options.upstreamPort}` : undefined);
  if (upstreamServer === undefined && options.proxyPass === undefined) throw new Error('startNginx: upstreamPort, upstreamServer or proxyPass is required');
  const errorLog = options.errorLog?.path ?? path.join(dir, 'error.log');
  const conf = `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
error_log ${errorLog} ${options.errorLog?.level ?? 'info'};
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  ${upstreamServer !== undefined ? `upstream wstap { server ${upstreamServer}; ${options.upstreamExtra ?? ''} }` : ''}
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass ${options.proxyPass ?? `${options.upstreamScheme ?? 'http'}://wstap`};
      proxy_http_version ${options.httpVersion ?? '1.1'};
      ${websocketHeaders ? 'proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection $connection_upgrade;' : ''}
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout ${options.proxyReadTimeout ?? '60s'};
      ${options.locationExtra ?? ''}
    }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  return runNginx(dir, path.join(dir, 'nginx.conf'), port, { removeDir: true, errorLog });
}

/**
 * A real nginx in the foreground on a configuration file already written
 * (prefix `dir`, so relative pid and log paths land there), once `port`
 * accepts connections. nginx -t runs first: a refused configuration fails
 * here with nginx's own words. The configuration must say `daemon off;`
 * (nginx is a child of the test). `removeDir`: delete `dir` when stopped.
 */
export async function runNginx(dir: string, confPath: string, port: number, options: { removeDir?: boolean; errorLog?: string } = {}): Promise<Nginx> {
  const conf = readIf(confPath);
  const errorLog = options.errorLog ?? path.join(dir, 'error.log');
  // nginx's own check first: a configuration it refuses fails here with its words.
  const check = spawnSync(nginxBinary(), ['-t', '-q', '-p', dir, '-c', confPath, '-e', errorLog], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t refused the configuration: ${check.stderr}\n${conf}`);
  const child: ChildProcess = spawn(nginxBinary(), ['-p', dir, '-c', confPath, '-e', errorLog], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await Promise.race([
      waitForPort(port),
      exited.then((code) => {
        throw new Error(`nginx exited with ${code}: ${stderr}\n${readIf(errorLog)}`);
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    port,
    dir,
    errorLog: () => readIf(errorLog),
    reopenLogs: () => child.kill('SIGUSR1'),
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGQUIT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      if (options.removeDir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readIf(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
