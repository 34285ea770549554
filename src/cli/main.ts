import { UsageError } from './usage-error.js';
import { VERSION } from './version.js';

const HELP = `wstap ${VERSION}: an intercepting WebSocket debugging proxy

Put it between nginx (or any proxy) and your app during an incident: it
relays every byte unchanged and records handshakes, frames, pings and who
closed each connection first, and why.

Usage:
  wstap proxy --target URL [--listen [HOST:]PORT] [--capture FILE] [options]
  wstap export CAPTURE.jsonl [-o FILE.har]
                             the capture as a HAR file for DevTools and vendors
  wstap view FILE            what happened to each connection, from a capture or a HAR
  wstap view --follow CAPTURE  the live UI over a capture another wstap is writing
  wstap probe URL            measure a path's idle timeout and which hop cuts it
  wstap demo                 a self-contained tour on free loopback ports
  wstap profiles             the shipped profiles (hops' timeouts, app heartbeats)
  wstap nginx-check [FILE|-] what in the nginx configuration breaks WebSockets, at
                             its file and line; --plan: the patch that puts wstap in
  wstap --help | --version

Run \`wstap COMMAND --help\` for a command's options.
`;

type Command = (args: string[]) => Promise<number>;
/** Each command's module is loaded only when it runs: a proxy carries no export, view or demo code in its heap. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  proxy: async () => (await import('./proxy.js')).runProxy,
  demo: async () => (await import('./demo.js')).runDemo,
  probe: async () => (await import('./probe.js')).runProbeCommand,
  export: async () => (await import('./export.js')).runExport,
  view: async () => (await import('./view.js')).runView,
  profiles: async () => (await import('./profile-option.js')).runProfiles,
  'nginx-check': async () => (await import('./nginx-check.js')).runNginxCheck,
};

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(HELP);
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (!load) {
    throw new UsageError(first.startsWith('-') ? `unknown option ${first}` : `unknown command "${first}"`);
  }
  return (await load())(rest);
}

/**
 * Once the command is done, the process ends within this long even if
 * something still holds the event loop: a log write out to a pipe nobody
 * reads (a stalled log reader, a paused pager) never returns, and wstap
 * stopped by SIGTERM must not hang on it (test/e2e/log-backpressure.test.ts).
 */
const EXIT_GRACE_MS = 2000;

function exitAfterGrace(): void {
  setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    exitAfterGrace();
  },
  (err: unknown) => {
    exitAfterGrace();
    if (err instanceof UsageError) {
      process.stderr.write(`wstap: ${err.message} (see wstap --help)\n`);
      process.exitCode = err.exitCode;
      return;
    }
    process.stderr.write(`wstap: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
