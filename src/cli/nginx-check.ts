import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { printable } from '../analysis/printable.js';
import { ConfigError, type LoadedConfig } from '../nginx/config-ast.js';
import { dumpSource, fileSystemSource } from '../nginx/config-files.js';
import { loadConfig } from '../nginx/config-load.js';
import type { CheckContext } from '../nginx/check-finding.js';
import { reportExitCode, reportJson, reportText } from '../nginx/check-report.js';
import { checkConfig } from '../nginx/check-run.js';
import { buildHttpModel, type HttpModel } from '../nginx/location-model.js';
import { planText } from '../nginx/plan-output.js';
import { PlanError, planRepoint } from '../nginx/plan-repoint.js';
import { parseArgsStrict, parseListen } from './option-values.js';
import { profileFromOption } from './profile-option.js';
import { UsageError } from './usage-error.js';

export const NGINX_CHECK_HELP = `Usage: wstap nginx-check [FILE | -] [options]

Reads the nginx configuration (FILE, default /etc/nginx/nginx.conf, every
include followed; "-" reads the output of nginx -T) and names, at their file
and line, the settings that break WebSockets in the locations that carry them.

Options:
  --path URI            a WebSocket path (repeatable): check the location nginx
                        chooses for it in each server. Without it: locations
                        with an Upgrade header, or whose path looks like one
  --profile NAME|FILE   the app's heartbeat (for nginx.read-timeout) and the
                        headers it needs (wstap profiles lists the shipped ones)
  --nginx-version V     the nginx the configuration runs on [nginx -V, if found;
                        its compiled-in error log is used too]
  -p, --prefix DIR      where a relative FILE is (nginx -p); includes are
                        relative to FILE's directory, as in nginx
  --json                the locations and findings as JSON
  --plan                print a unified diff that puts wstap in front of the
                        app for the chosen locations (patch -p0 applies it,
                        patch -R takes it back), then the wstap and rollback
                        commands; needs --listen
  --listen HOST:PORT|unix:PATH
                        with --plan: where wstap will listen
  --whole-upstream      with --plan: point the whole upstream block at wstap
                        instead of the chosen locations only
  -h, --help            this help

Each finding: FILE:LINE:COL SEVERITY ID MESSAGE [server, location], the fix on
the next line. Exit status: 0 nothing at warning or above (with --plan: the
plan was printed, the findings go to stderr); 1 something is; 2 bad usage, a
configuration that cannot be read (its position is given), or no plan possible.
`;

export async function runNginxCheck(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    path: { type: 'string', multiple: true },
    profile: { type: 'string' },
    'nginx-version': { type: 'string' },
    prefix: { type: 'string', short: 'p' },
    json: { type: 'boolean' },
    plan: { type: 'boolean' },
    listen: { type: 'string' },
    'whole-upstream': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(NGINX_CHECK_HELP);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}" (one configuration file, or - for nginx -T output)`);
  const paths = (values.path as string[] | undefined) ?? [];
  for (const p of paths) if (!p.startsWith('/')) throw new UsageError(`--path "${p}" is not a URI path (it starts with "/", e.g. /api/v4/websocket)`);
  if (values.plan && typeof values.listen !== 'string') throw new UsageError('--plan needs --listen HOST:PORT (where wstap will listen, e.g. 127.0.0.1:8066)');
  if (!values.plan && (values.listen !== undefined || values['whole-upstream'])) throw new UsageError('--listen and --whole-upstream go with --plan');
  const listen = typeof values.listen === 'string' ? listenText(values.listen) : null;
  const profile = await profileFromOption(values.profile);
  const installed = installedNginx();
  const context: CheckContext = {
    heartbeat: profile?.heartbeat ? { from: profile.heartbeat.from, interval: profile.heartbeat.interval, profile: profile.name } : null,
    requiredHeaders: profile?.app?.requiresHeaders ?? [],
    nginxVersion: typeof values['nginx-version'] === 'string' ? values['nginx-version'] : installed.version,
    defaultErrorLog: installed.errorLog,
  };
  const file = positionals[0] ?? '/etc/nginx/nginx.conf';
  let config: LoadedConfig;
  let model: HttpModel;
  try {
    if (file === '-' && process.stdin.isTTY) throw new UsageError('- reads the output of nginx -T from a pipe: nginx -T 2>/dev/null | wstap nginx-check -');
    config = file === '-' ? loadDump(fs.readFileSync(0, 'utf8')) : loadConfig(path.resolve(typeof values.prefix === 'string' ? values.prefix : process.cwd(), file), fileSystemSource());
    model = buildHttpModel(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`wstap: ${printable(err.message, 2000)} (nginx would refuse this configuration)\n`);
      return 2;
    }
    if (err instanceof DumpError) {
      process.stderr.write(`wstap: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const report = checkConfig(model, paths, context);
  if (values.plan && listen !== null) {
    try {
      const plan = planRepoint(config, model, report.targets, { listen, wholeUpstream: values['whole-upstream'] === true, defaultErrorLog: context.defaultErrorLog });
      process.stdout.write(planText(config, plan, { proxyArgs: typeof values.profile === 'string' ? ['--profile', values.profile] : [] }));
    } catch (err) {
      if (!(err instanceof PlanError)) throw err;
      process.stderr.write(`wstap: cannot plan: ${printable(err.message, 2000)}\n`);
      return 2;
    }
    process.stderr.write(reportText(report, (t) => printable(t, 2000)));
    return 0;
  }
  process.stdout.write(values.json ? `${JSON.stringify(reportJson(report), null, 2)}\n` : reportText(report, (t) => printable(t, 2000)));
  return reportExitCode(report);
}

class DumpError extends Error {}

function loadDump(text: string): LoadedConfig {
  let dump;
  try {
    dump = dumpSource(text);
  } catch (err) {
    throw new DumpError(`standard input: ${(err as Error).message}`);
  }
  return loadConfig(dump.mainFile, dump.source);
}

/** `--listen` as an nginx upstream `server` address: `HOST:PORT`, `[V6]:PORT` or `unix:PATH`. */
function listenText(value: string): string {
  const endpoint = parseListen(value);
  if (endpoint.kind === 'unix') return `unix:${endpoint.path}`;
  return endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

/**
 * The installed nginx, if there is one: its version and compiled-in error
 * log (`nginx -V` writes "nginx version: nginx/1.22.1" and the configure
 * arguments, --error-log-path among them, to stderr).
 */
function installedNginx(): { version: string | null; errorLog: string | null } {
  const run = spawnSync('nginx', ['-V'], { encoding: 'utf8', timeout: 5000 });
  const text = `${run.stderr ?? ''}${run.stdout ?? ''}`;
  return {
    version: /nginx version: nginx\/(\d+\.\d+\.\d+)/.exec(text)?.[1] ?? null,
    errorLog: /--error-log-path=(\S+)/.exec(text)?.[1] ?? null,
  };
}
