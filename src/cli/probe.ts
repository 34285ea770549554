import { formatDuration } from '../analysis/countdown.js';
import { parseDuration, TimeoutSpecError } from '../profiles/hop-timeout.js';
import { runProbe } from '../probe/probe-runner.js';
import { variantLine, probeJson, probeText } from '../probe/probe-report.js';
import { probeNginxEvidence } from '../probe/probe-nginx-evidence.js';
import { buildProbeVerdict } from '../probe/probe-verdict.js';
import type { VariantOutcome } from '../probe/probe-variants.js';
import { parseArgsStrict } from './option-values.js';
import { nginxLogLines } from './nginx-log-option.js';
import { knownTimeouts, profileFromOption } from './profile-option.js';
import { UsageError } from './usage-error.js';

export const PROBE_HELP = `Usage: wstap probe URL [options]

Measures the path to URL (ws:// or wss://): its effective idle timeout, which
kinds of traffic keep a WebSocket open, and, with --profile, the hop that cuts
it. Opens one connection per variant, in parallel, and holds each until it is
cut or --max passes:
  silent            nothing either way
  client-messages   a small message from the probe every --interval
  client-pings      a ping from the probe every --interval
with --token also (wstap's end sends, on the probe's request):
  server-messages   a message from wstap every --interval
  server-pings      a ping from wstap every --interval

Options:
  --header 'Name: value'  a request header (auth, cookies); repeatable
  --insecure            do not verify a wss:// server's TLS certificate
  --interval DURATION   how often the traffic variants send (e.g. 500ms, 5s) [5s]
  --max DURATION        how long to hold a connection that is not cut   [10m]
  --token TOKEN         the --probe-token of the wstap behind the path: wstap
                        answers the probe itself (the app sees nothing) and
                        reports what its end saw of each connection
  --profile NAME|FILE   the path's hops (wstap profiles): names the one that cut
  --timeout NAME=DUR[:MEASURE]
                        a hop's timeout, as for wstap proxy; repeatable
  --nginx-error-log FILE
                        nginx's error log (repeatable, oldest first; readable
                        where the probe runs): its timeout line for the silent
                        connection names nginx, its absence in a log at info
                        level rules nginx out. nginx's times are read in this
                        process's time zone (set TZ to nginx's)
  --json                print one JSON object instead of the report
  -h, --help            this help

Without --token the connections reach the app: client-messages sends it text
messages ("wstap probe message N").

While it waits, a progress line is shown on stderr when stderr is a terminal;
otherwise each variant's line is written to stderr as it ends.

Exit status: 0 measured (the silent connection opened); 1 could not measure
(the handshake failed: HTTP status or error); 2 bad usage; 130 interrupted
(Ctrl-C: connections still open are reported as open).
`;

const DEFAULT_INTERVAL = '5s';
const DEFAULT_MAX = '10m';

export async function runProbeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    header: { type: 'string', multiple: true },
    insecure: { type: 'boolean' },
    interval: { type: 'string' },
    max: { type: 'string' },
    token: { type: 'string' },
    profile: { type: 'string' },
    timeout: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    'nginx-error-log': { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(PROBE_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('probe needs a URL (e.g. wstap probe wss://example.com/ws)');
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  const url = probeUrl(positionals[0] as string);
  const headers = (Array.isArray(values.header) ? values.header : []).map((h) => parseHeader(String(h)));
  const intervalSeconds = durationOption('--interval', values.interval, DEFAULT_INTERVAL);
  const maxSeconds = durationOption('--max', values.max, DEFAULT_MAX);
  if (intervalSeconds < 0.05) throw new UsageError('--interval must be at least 50ms');
  const token = typeof values.token === 'string' ? values.token : null;
  if (token !== null && !/^[\x21-\x7e]{8,}$/.test(token)) throw new UsageError('--token is the proxy\'s --probe-token: at least 8 printable ASCII characters, no spaces');
  const profile = await profileFromOption(values.profile);
  const hops = knownTimeouts(profile, values.timeout);
  const readLog = nginxLogLines(values['nginx-error-log'], (note) => process.stderr.write(`wstap: ${note}\n`));
  const startedAt = Date.now();
  if (values.insecure && url.startsWith('wss:')) process.stderr.write(`wstap: --insecure: the certificate of ${url} is NOT verified\n`);

  const stop = new AbortController();
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = new ProgressLine(maxSeconds);
  try {
    const result = await runProbe({
      url,
      headers,
      insecure: values.insecure === true,
      token,
      intervalMs: intervalSeconds * 1000,
      maxMs: maxSeconds * 1000,
      stop: stop.signal,
      onVariantEnd: (o) => progress.ended(o),
    });
    progress.done();
    const silent = result.outcomes.find((o) => o.name === 'silent');
    const target = new URL(url);
    const log = readLog ? probeNginxEvidence(await readLog(startedAt - 60_000), silent, `GET ${target.pathname}${target.search}`, hops) : null;
    if (log?.note) process.stderr.write(`wstap: ${log.note}\n`);
    const verdict = buildProbeVerdict({ outcomes: result.outcomes, maxSeconds, stopped: interrupted, intervalSeconds, withToken: token !== null, hops, ...(log ? { evidence: log.evidence } : {}) });
    process.stdout.write(values.json ? `${JSON.stringify(probeJson(result.outcomes, verdict, result.reportError))}\n` : probeText(url, result.outcomes, verdict, result.reportError));
    if (interrupted) return 130;
    return result.outcomes.find((o) => o.name === 'silent')?.opened ? 0 : 1;
  } finally {
    progress.done();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function probeUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`"${text}" is not a URL (e.g. wss://example.com/ws)`);
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') throw new UsageError(`"${text}": a WebSocket URL starts with ws:// or wss:// (here: ${url.protocol === 'https:' ? 'wss' : 'ws'}://${url.host}${url.pathname}${url.search})`);
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new UsageError(`"${text}": the URL must start with ws:// or wss://`);
  return url.href;
}

/** `Name: value`, as curl's -H takes it. */
function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon).trim();
  const value = colon < 0 ? '' : text.slice(colon + 1).trim();
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new UsageError(`--header "${text}" is not "Name: value"`);
  if (/[\r\n\0]/.test(value)) throw new UsageError(`--header "${name}": the value may not contain line breaks`);
  return [name, value];
}

function durationOption(flag: string, value: unknown, fallback: string): number {
  const text = typeof value === 'string' ? value : fallback;
  try {
    return parseDuration(text);
  } catch (err) {
    if (err instanceof TimeoutSpecError) throw new UsageError(`${flag}: ${err.message}`);
    throw err;
  }
}

/**
 * On a terminal: one line on stderr, rewritten every second (elapsed, what
 * is still open), with each variant's line printed above it as it ends.
 * Elsewhere (a pipe, a CI log): only the variants' lines as they end.
 */
class ProgressLine {
  readonly #tty = process.stderr.isTTY === true;
  readonly #startedAt = Date.now();
  readonly #ended: string[] = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(readonly maxSeconds: number) {
    if (this.#tty) {
      this.#timer = setInterval(() => this.#draw(), 1000);
      this.#timer.unref();
      this.#draw();
    }
  }

  ended(o: VariantOutcome): void {
    this.#ended.push(o.name);
    if (this.#tty) process.stderr.write(`\r\x1b[K${variantLine(o)}\n`);
    else process.stderr.write(`${variantLine(o)}\n`);
    if (this.#tty) this.#draw();
  }

  done(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#timer && this.#tty) process.stderr.write('\r\x1b[K');
    this.#timer = null;
  }

  #draw(): void {
    const elapsed = Math.round((Date.now() - this.#startedAt) / 1000);
    process.stderr.write(`\r\x1b[Kprobing: ${formatDuration(elapsed) || '0s'} of at most ${formatDuration(this.maxSeconds)}; ${this.#ended.length} ended (Ctrl-C stops)`);
  }
}
