import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nginxBinary } from './nginx.js';
import { BIN } from './wstap-process.js';

/**
 * nginx configurations written by a test into a temp dir (the nginx prefix,
 * so pid, logs and temp files stay there) and nginx's own verdict on them.
 */

export interface NginxFixture {
  dir: string;
  /** The main file's absolute path. */
  conf: string;
}

/** The main-level lines every fixture needs to pass `nginx -t` and run as a child: prefix-relative pid and logs. */
export function mainPreamble(): string {
  return `${process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;\nworker_processes 1;\npid nginx.pid;\nevents { worker_connections 64; }\n`;
}

/** http-level lines that keep nginx's temp files in the prefix. */
export const HTTP_PREAMBLE = 'access_log off; client_body_temp_path client_body; proxy_temp_path proxy; fastcgi_temp_path fastcgi; uwsgi_temp_path uwsgi; scgi_temp_path scgi;';

/** Writes `files` (relative path -> text) into a new temp dir; `main` names the main file. */
export function writeNginxFixture(files: Record<string, string>, main = 'nginx.conf'): NginxFixture {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-nginx-check-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return { dir, conf: path.join(dir, main) };
}

/** `nginx -t` on the fixture: whether nginx accepts it, and what it said. */
export function nginxTest(fixture: NginxFixture): { ok: boolean; output: string } {
  const r = spawnSync(nginxBinary(), ['-t', '-p', fixture.dir, '-c', fixture.conf, '-e', path.join(fixture.dir, 'error.log')], { encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, output: `${r.stderr}${r.stdout}` };
}

/** `nginx -T` on the fixture: every file nginx read, under its `# configuration file PATH:` header. */
export function nginxDump(fixture: NginxFixture): string {
  const r = spawnSync(nginxBinary(), ['-T', '-q', '-p', fixture.dir, '-c', fixture.conf, '-e', path.join(fixture.dir, 'error.log')], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`nginx -T failed: ${r.stderr}`);
  return r.stdout;
}

/** `wstap nginx-check ARGS` run to its end, with input on stdin when given. */
export function runNginxCheck(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'nginx-check', ...args], { encoding: 'utf8', timeout: 30_000, ...(input !== undefined ? { input } : {}) });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
