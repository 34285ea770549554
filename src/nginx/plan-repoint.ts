import { expandIncludes, positionText, type ConfigArg, type ConfigDirective, type LoadedConfig } from './config-ast.js';
import { levelOf, type WebSocketTarget } from './check-targets.js';
import { arrayInForce, headerIn } from './location-effective.js';
import { locationLabel, type HttpModel } from './location-model.js';
import { readProxyPass, wstapTargetOf, type ProxyPassTarget } from './location-upstream.js';
import type { TextEdit } from './plan-diff.js';
import { FALLBACK_ERROR_LOG } from './check-finding.js';

/**
 * The re-pointing plan: the edits that put wstap between nginx and the app
 * for the chosen WebSocket locations, and nothing else. Per location:
 * proxy_pass to a new `upstream` holding wstap's address (the URI part
 * kept), `proxy_set_header X-Nginx-Connection $connection;` (nginx's
 * connection number, so a hop verdict can name nginx's log lines) and an
 * `error_log ... info` line (nginx's timeout lines are written at info).
 * Adding a proxy_set_header to a location drops the inherited ones, so the
 * inherited set is copied in; the Host nginx sent ($proxy_host, the old
 * upstream's name) is kept explicitly. With `wholeUpstream`, the `upstream`
 * block's servers are pointed at wstap instead, and the locations keep
 * their proxy_pass.
 */

export interface RepointPlan {
  edits: Map<string, TextEdit[]>;
  /** wstap's --target (from the original upstream) and --listen. */
  wstapTarget: string;
  listen: string;
  /** Things the plan could not do, or the operator must know (one line each). */
  notes: string[];
  /** wstap must accept TLS (nginx keeps speaking https:// to the upstream it was pointed at). */
  needsTls: boolean;
}

export class PlanError extends Error {}

const WSTAP_UPSTREAM = 'wstap_debug';

export interface RepointOptions {
  /** wstap's address as an upstream `server` takes it: `HOST:PORT`, `[V6]:PORT`, `unix:PATH`. */
  listen: string;
  /** Point the `upstream` block at wstap instead of the locations. */
  wholeUpstream: boolean;
  /** nginx's compiled-in error log, for a configuration that names none (null: unknown). */
  defaultErrorLog: string | null;
}

export function planRepoint(config: LoadedConfig, model: HttpModel, targets: readonly WebSocketTarget[], options: RepointOptions): RepointPlan {
  const { listen, wholeUpstream } = options;
  const edits = new Map<string, TextEdit[]>();
  const edit = (file: string, e: TextEdit): void => {
    const list = edits.get(file) ?? [];
    list.push(e);
    edits.set(file, list);
  };
  const notes: string[] = [];
  const chosen: Array<{ t: WebSocketTarget; pass: ConfigDirective; target: ProxyPassTarget }> = [];
  for (const t of targets) {
    const label = locationLabel(t.server, t.location);
    const pass = t.location?.level.directives.find((d) => d.name === 'proxy_pass');
    if (!t.location || t.redirect || !pass) {
      notes.push(`${label}: left alone (${t.redirect ? 'nginx answers it with a redirect' : 'no proxy_pass there'})`);
      continue;
    }
    const reading = readProxyPass(pass.args[0]?.value ?? '', model);
    if (!reading.ok) {
      notes.push(`${label}: left alone (${reading.why})`);
      continue;
    }
    chosen.push({ t, pass, target: reading.target });
  }
  if (chosen.length === 0) throw new PlanError(`no WebSocket location to re-point${notes.length ? `: ${notes.join('; ')}` : ' (name one with --path)'}`);
  const wstapTargets = new Set(chosen.map((c) => wstapTargetOf(c.target)?.target ?? '?'));
  if (wstapTargets.size > 1) {
    throw new PlanError(`the chosen locations proxy to different places (${[...wstapTargets].join(', ')}); one wstap has one --target: narrow them with --path`);
  }
  const first = chosen[0] as (typeof chosen)[number];
  const wstap = wstapTargetOf(first.target);
  if (!wstap) throw new PlanError(`${positionText(first.pass.pos)}: upstream ${first.target.host} has no server line to take wstap's --target from`);
  if (wstap.note) notes.push(wstap.note);
  const serverLine = `server ${listen};`;
  let needsTls = false;
  if (wholeUpstream) {
    const upstream = first.target.upstream;
    if (!upstream || chosen.some((c) => c.target.upstream !== upstream)) {
      throw new PlanError(`--whole-upstream needs the chosen locations to proxy_pass to one upstream block; ${positionText(first.pass.pos)} does not name one`);
    }
    needsTls = chosen.some((c) => c.target.scheme === 'https');
    repointUpstreamBlock(config, upstream, serverLine, edit);
  } else {
    const name = freeUpstreamName(model);
    const serverDirective = first.t.server.level.directive as ConfigDirective;
    edit(serverDirective.pos.file, insertBefore(config, serverDirective, [`upstream ${name} {`, `    ${serverLine}`, '}']));
    for (const c of chosen) {
      const arg = c.pass.args[0] as ConfigArg;
      edit(arg.pos.file, { offset: arg.pos.offset, remove: arg.raw.length, insert: requote(arg, `http://${name}${c.target.uri}`) });
    }
  }
  for (const c of chosen) {
    const location = c.t.location?.level.directive as ConfigDirective;
    edit(location.pos.file, insertInBlock(config, location, evidenceLines(levelOf(c.t), c.target, !wholeUpstream, options.defaultErrorLog ?? FALLBACK_ERROR_LOG)));
  }
  return { edits, wstapTarget: wstap.target, listen, notes, needsTls };
}

/** The directives each re-pointed location gets, with the inherited headers it would otherwise lose. */
function evidenceLines(level: ReturnType<typeof levelOf>, target: ProxyPassTarget, keepHost: boolean, defaultErrorLog: string): string[] {
  const lines: string[] = [];
  const headers = arrayInForce(level, 'proxy_set_header');
  if (headers.level !== level) {
    for (const d of headers.directives) lines.push(`proxy_set_header ${d.args.map((a) => a.raw).join(' ')};  # wstap: inherited from ${positionText(d.pos)}`);
  }
  if (keepHost && !headerIn(headers.directives, 'Host')) lines.push(`proxy_set_header Host ${target.unixPath !== null ? 'localhost' : target.address};  # wstap: the Host nginx sent before ($proxy_host)`);
  lines.push('proxy_set_header X-Nginx-Connection $connection;  # wstap: nginx\'s connection number, for the hop verdicts');
  const logs = arrayInForce(level, 'error_log').directives;
  const atInfo = logs.some((d) => ['debug', 'info'].includes(d.args[1]?.value ?? 'error'));
  if (!atInfo) lines.push(`error_log ${logs[0]?.args[0]?.raw ?? defaultErrorLog} info;  # wstap: nginx's timeout lines are written at info`);
  return lines;
}

function repointUpstreamBlock(config: LoadedConfig, upstream: ConfigDirective, serverLine: string, edit: (file: string, e: TextEdit) => void): void {
  const servers = expandIncludes(upstream.block ?? []).filter((d) => d.name === 'server');
  servers.forEach((d, i) => {
    const text = fileText(config, d.pos.file).slice(d.pos.offset, d.end.offset + 1);
    const commented = `# wstap: was ${text.replace(/\n/g, '\n# ')}`;
    edit(d.pos.file, { offset: d.pos.offset, remove: text.length, insert: i === 0 ? `${serverLine}  ${commented}` : commented });
  });
}

function freeUpstreamName(model: HttpModel): string {
  let name = WSTAP_UPSTREAM;
  for (let n = 2; model.upstreams.has(name); n++) name = `${WSTAP_UPSTREAM}_${n}`;
  return name;
}

function requote(arg: ConfigArg, value: string): string {
  return arg.quoted ? `${arg.raw[0]}${value}${arg.raw[0]}` : value;
}

function fileText(config: LoadedConfig, file: string): string {
  const f = config.files.get(file);
  if (!f) throw new PlanError(`${file}: not among the files read`);
  return f.text;
}

function lineStartOf(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

function indentOf(text: string, offset: number): string {
  const start = lineStartOf(text, offset);
  return /^[ \t]*/.exec(text.slice(start, offset))?.[0] ?? '';
}

/** Lines before a directive: on lines of their own when it starts its line, else inline. */
function insertBefore(config: LoadedConfig, d: ConfigDirective, lines: string[]): TextEdit {
  const text = fileText(config, d.pos.file);
  const start = lineStartOf(text, d.pos.offset);
  if (text.slice(start, d.pos.offset).trim() === '') {
    const indent = indentOf(text, d.pos.offset);
    return { offset: start, remove: 0, insert: lines.map((l) => `${indent}${l}\n`).join('') };
  }
  return { offset: d.pos.offset, remove: 0, insert: `${lines.map((l) => l.trim()).join(' ')} ` };
}

/** Lines first in a block: after its `{` line when the `{` ends its line, else inline after the `{`. */
function insertInBlock(config: LoadedConfig, d: ConfigDirective, lines: string[]): TextEdit {
  const text = fileText(config, d.pos.file);
  const open = d.blockOpen as NonNullable<ConfigDirective['blockOpen']>;
  const lineEnd = text.indexOf('\n', open.offset);
  const rest = text.slice(open.offset + 1, lineEnd === -1 ? text.length : lineEnd);
  if (lineEnd !== -1 && /^\s*(#.*)?$/.test(rest)) {
    const firstChild = d.block?.[0];
    const childIndent = firstChild && firstChild.pos.file === d.pos.file && text.slice(lineStartOf(text, firstChild.pos.offset), firstChild.pos.offset).trim() === '' ? indentOf(text, firstChild.pos.offset) : `${indentOf(text, d.pos.offset)}    `;
    return { offset: lineEnd + 1, remove: 0, insert: lines.map((l) => `${childIndent}${l}\n`).join('') };
  }
  // One-line block: directives inline, without the trailing comments (they would swallow the rest of the line).
  return { offset: open.offset + 1, remove: 0, insert: ` ${lines.map((l) => l.replace(/\s+#.*$/, '')).join(' ')}` };
}
