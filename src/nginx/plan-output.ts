import type { LoadedConfig } from './config-ast.js';
import { unifiedDiff } from './plan-diff.js';
import type { RepointPlan } from './plan-repoint.js';

/**
 * The plan as printed: one unified diff over the real files (names relative
 * to the main file's directory, or to `/` when a file lies outside it, so
 * `patch -p0` applies it there and `patch -R` takes it back), then the
 * commands, as `#` lines patch skips over.
 */

export const PLAN_FILE = 'wstap-nginx.diff';

export interface PlanTextOptions {
  /** Extra `wstap proxy` arguments to repeat (e.g. `--profile mattermost`). */
  proxyArgs: string[];
}

export function planText(config: LoadedConfig, plan: RepointPlan, options: PlanTextOptions): string {
  const files = [...plan.edits.keys()].sort();
  const base = files.every((f) => f.startsWith(config.confPrefix)) ? config.confPrefix : '/';
  let diff = '';
  for (const file of files) {
    const text = config.files.get(file)?.text ?? '';
    diff += unifiedDiff(file.slice(base.length), text, plan.edits.get(file) ?? []);
  }
  const dir = base === '/' ? '/' : base.replace(/\/$/, '');
  const proxy = ['wstap', 'proxy', '--listen', plan.listen, '--target', plan.wstapTarget, ...(plan.needsTls ? ['--tls-cert', 'CERT.pem', '--tls-key', 'KEY.pem'] : []), ...options.proxyArgs]
    .map(shellQuote)
    .join(' ');
  const reload = 'nginx -t && nginx -s reload';
  const lines = [
    `# wstap nginx-check --plan: nginx sends the chosen WebSocket locations to wstap on ${plan.listen}, wstap to ${plan.wstapTarget}`,
    ...plan.notes.map((n) => `# note: ${n}`),
    ...(plan.needsTls ? ['# note: nginx keeps speaking https:// to this upstream, so wstap must accept TLS (--tls-cert, --tls-key)'] : []),
    '# 1. start wstap first (nginx must find it listening after the reload):',
    `#      ${proxy}`,
    `# 2. save this output as ${PLAN_FILE}, then apply it:`,
    `#      cd ${shellQuote(dir)} && patch -p0 < ${PLAN_FILE} && ${reload}`,
    '# connections open before a reload stay on their old path (nginx\'s old workers keep them): wstap sees new ones only',
    '# roll back (then stop wstap):',
    `#      cd ${shellQuote(dir)} && patch -R -p0 < ${PLAN_FILE} && ${reload}`,
  ];
  return `${diff}${lines.join('\n')}\n`;
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}
