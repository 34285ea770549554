import fs from 'node:fs';

/**
 * The demo's simulated nginx error log: what a real nginx at
 * `error_log FILE info;` writes, in its format (see nginx/error-log-line.ts),
 * so `wstap demo` can show a hop named from a log line without an nginx.
 * It starts with the info lines any nginx at info writes (so its silence
 * about a connection is evidence), and gets nginx's timeout line when the
 * simulated nginx's timer cuts a connection.
 */
export class SimulatedNginxLog {
  readonly path: string;
  readonly #pid = 4242;
  #connection = 1;

  constructor(path: string) {
    this.path = path;
  }

  /** nginx's own start, and a probe connection closed at once, as any nginx at info logs them. */
  start(): void {
    this.#write('notice', null, 'start worker process 4242');
    this.#write('info', this.#connection++, 'client closed connection while waiting for request, client: 127.0.0.1, server: 127.0.0.1:8080');
  }

  /** The number the next proxied connection gets: the `$connection` nginx puts in X-Nginx-Connection. */
  nextConnection(): number {
    return this.#connection++;
  }

  /** nginx's proxy_read_timeout fired on connection `n` (written before nginx closes it, as nginx does). */
  timedOut(n: number, request: string, upstream: string, host: string): void {
    this.#write(
      'info',
      n,
      `upstream timed out (110: Connection timed out) while proxying upgraded connection, client: 127.0.0.1, server: demo, request: "${request}", upstream: "${upstream}", host: "${host}"`,
    );
  }

  #write(level: string, connection: number | null, text: string): void {
    fs.appendFileSync(this.path, `${nginxTime(new Date())} [${level}] ${this.#pid}#${this.#pid}: ${connection !== null ? `*${connection} ` : ''}${text}\n`);
  }
}

/** nginx's error-log time: local, whole seconds. */
function nginxTime(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
