import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { NginxFinding } from '../../src/nginx/check-finding.js';
import { nginxBinary } from '../support/nginx.js';
import { BIN } from '../support/wstap-process.js';
import { HTTP_PREAMBLE, mainPreamble, nginxDump, nginxTest, runNginxCheck, writeNginxFixture, type NginxFixture } from '../support/nginx-fixture.js';

/**
 * `wstap nginx-check` on configurations written here, each one checked with
 * the real `nginx -t` first: every finding triggered by a fixture nginx
 * accepts, and absent from the fixed one; `nginx -T` output as input; a
 * syntax error nginx refuses too.
 */

const fixtures: NginxFixture[] = [];
afterAll(() => {
  for (const f of fixtures) fs.rmSync(f.dir, { recursive: true, force: true });
});

const GOOD_LOCATION = `
        proxy_pass http://app;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_read_timeout 300s;`;

interface SiteParts {
  main?: string;
  http?: string;
  map?: string;
  upstream?: string;
  server?: string;
  location?: string;
  locationName?: string;
  extraFiles?: Record<string, string>;
}

/** A main file with an http block including conf.d/*.conf, which holds one server with one location. */
function site(parts: SiteParts = {}): NginxFixture {
  const fixture = writeNginxFixture({
    'nginx.conf': `${mainPreamble()}${parts.main ?? 'error_log error.log info;'}
http {
    ${HTTP_PREAMBLE}
    ${parts.map ?? "map $http_upgrade $connection_upgrade { default upgrade; '' ''; }"}
    upstream app {
        ${parts.upstream ?? 'server 127.0.0.1:9;'}
    }
    ${parts.http ?? ''}
    include conf.d/*.conf;
}
`,
    'conf.d/site.conf': `server {
    listen 127.0.0.1:8999;
    server_name ws.test;
    ${parts.server ?? ''}
    location ${parts.locationName ?? '/ws'} {${parts.location ?? GOOD_LOCATION}
    }
}
`,
    ...parts.extraFiles,
  });
  fixtures.push(fixture);
  const verdict = nginxTest(fixture);
  if (!verdict.ok) throw new Error(`nginx -t refused the fixture: ${verdict.output}`);
  return fixture;
}

interface Checked {
  status: number | null;
  findings: NginxFinding[];
  locations: Array<{ location: string | null; why: string; line: number | null }>;
}

function check(fixture: NginxFixture, args: string[] = [], input?: string): Checked {
  const r = runNginxCheck([input === undefined ? fixture.conf : '-', '--json', '--nginx-version', '1.22.1', ...args], input);
  if (r.status === 2) throw new Error(`nginx-check exit 2: ${r.stderr}`);
  const json = JSON.parse(r.stdout) as { findings: NginxFinding[]; locations: Checked['locations'] };
  return { status: r.status, findings: json.findings, locations: json.locations };
}

const ids = (c: Checked): string[] => c.findings.map((f) => f.id);
const siteConf = (f: NginxFixture): string => path.join(f.dir, 'conf.d/site.conf');

/** The 1-based line of the first occurrence of `needle` in a file. */
function lineOf(file: string, needle: string): number {
  const index = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(needle));
  if (index === -1) throw new Error(`${needle} is not in ${file}`);
  return index + 1;
}

function profileFile(fixture: NginxFixture, yaml: string): string {
  const file = path.join(fixture.dir, 'profile.yaml');
  fs.writeFileSync(file, yaml);
  return file;
}

describe('wstap nginx-check findings', () => {
  it('a configuration with nothing wrong exits 0 and names the location it checked and why', () => {
    // A location whose path looks like a WebSocket one but does not proxy is not taken for one.
    const c = check(site({ server: 'location /websocket-docs/ { root html; }' }));
    expect(c.findings.filter((f) => f.severity !== 'info')).toEqual([]);
    expect(c.status).toBe(0);
    expect(c.locations).toEqual([expect.objectContaining({ location: '/ws', why: expect.stringContaining('sets an Upgrade header') })]);
  });

  it('nginx.http-version: missing (nginx before 1.29.7) or 1.0; absent with 1.1 or on 1.29.7 without it', () => {
    const missing = site({ location: GOOD_LOCATION.replace('proxy_http_version 1.1;', '') });
    const c = check(missing);
    expect(c.status).toBe(1);
    expect(c.findings).toContainEqual(expect.objectContaining({ id: 'nginx.http-version', severity: 'error', file: siteConf(missing), line: lineOf(siteConf(missing), 'proxy_pass') }));
    expect(ids(check(site({ location: GOOD_LOCATION.replace('1.1', '1.0') })))).toContain('nginx.http-version');
    expect(ids(check(missing, ['--nginx-version', '1.29.7']))).not.toContain('nginx.http-version');
    expect(ids(check(site()))).not.toContain('nginx.http-version');
  });

  it('nginx.missing-upgrade-header and nginx.missing-connection-header', () => {
    const c = check(site({ location: GOOD_LOCATION.replace('proxy_set_header Upgrade $http_upgrade;', '').replace('$connection_upgrade', '"keep-alive"') }));
    expect(ids(c)).toEqual(expect.arrayContaining(['nginx.missing-upgrade-header', 'nginx.missing-connection-header']));
    const literal = check(site({ location: GOOD_LOCATION.replace('$connection_upgrade', '"upgrade"') }));
    expect(ids(literal)).not.toContain('nginx.missing-connection-header');
  });

  it('nginx.header-inheritance: headers set at server level, dropped by the location\'s own proxy_set_header', () => {
    const server = 'proxy_set_header Upgrade $http_upgrade;\n    proxy_set_header Connection $connection_upgrade;';
    const location = '\n        proxy_pass http://app;\n        proxy_http_version 1.1;\n        proxy_set_header Host $host;\n        proxy_read_timeout 300s;';
    const f = site({ server, location });
    const c = check(f);
    const inheritance = c.findings.find((x) => x.id === 'nginx.header-inheritance');
    expect(inheritance).toMatchObject({ severity: 'error', file: siteConf(f), line: lineOf(siteConf(f), 'proxy_set_header Host'), col: 9 });
    expect(inheritance?.message).toContain(`Upgrade (${siteConf(f)}:4:5) and Connection (${siteConf(f)}:5:5)`);
    expect(ids(c)).not.toContain('nginx.missing-upgrade-header');
    // Without the location's own proxy_set_header, the server's are inherited.
    expect(ids(check(site({ server, location: location.replace('proxy_set_header Host $host;', '') })))).not.toContain('nginx.header-inheritance');
  });

  it('nginx.keepalive-connection-close: the map sends "close" to an upstream kept alive', () => {
    const map = "map $http_upgrade $connection_upgrade {\n        default upgrade;\n        '' close;\n    }";
    const f = site({ map, upstream: 'server 127.0.0.1:9;\n        keepalive 8;' });
    const c = check(f);
    expect(c.findings).toContainEqual(expect.objectContaining({ id: 'nginx.keepalive-connection-close', severity: 'warning', file: f.conf, line: lineOf(f.conf, "'' close;") }));
    expect(ids(check(site({ map })))).not.toContain('nginx.keepalive-connection-close');
    expect(ids(check(site({ upstream: 'server 127.0.0.1:9;\n        keepalive 8;' })))).not.toContain('nginx.keepalive-connection-close');
  });

  it('nginx.read-timeout: against the profile\'s heartbeat (a race when equal, an error when shorter)', () => {
    const defaults = check(site({ location: GOOD_LOCATION.replace('proxy_read_timeout 300s;', '') }), ['--profile', 'mattermost']);
    expect(defaults.findings).toContainEqual(expect.objectContaining({ id: 'nginx.read-timeout', severity: 'warning' }));
    const short = site({ location: GOOD_LOCATION.replace('300s', '30s') });
    const shorter = check(short, ['--profile', 'mattermost']);
    expect(shorter.findings).toContainEqual(expect.objectContaining({ id: 'nginx.read-timeout', severity: 'error', line: lineOf(siteConf(short), 'proxy_read_timeout') }));
    expect(ids(check(site(), ['--profile', 'mattermost']))).not.toContain('nginx.read-timeout');
    expect(ids(check(site({ location: GOOD_LOCATION.replace('proxy_read_timeout 300s;', '') })))).not.toContain('nginx.read-timeout');
  });

  it('nginx.send-timeout: a send timeout shorter than the read timeout (info)', () => {
    const c = check(site({ location: `${GOOD_LOCATION}\n        proxy_send_timeout 5s;` }));
    expect(c.findings).toContainEqual(expect.objectContaining({ id: 'nginx.send-timeout', severity: 'info' }));
    expect(c.status).toBe(0);
    expect(ids(check(site()))).not.toContain('nginx.send-timeout');
  });

  it('nginx.error-log-level: the error log in force is above info', () => {
    const f = site({ main: 'error_log error.log warn;' });
    expect(check(f).findings).toContainEqual(expect.objectContaining({ id: 'nginx.error-log-level', severity: 'info', file: f.conf, line: lineOf(f.conf, 'error_log') }));
    expect(ids(check(site()))).not.toContain('nginx.error-log-level');
    // The location's own error_log is the one in force.
    expect(ids(check(site({ main: 'error_log error.log warn;', location: `${GOOD_LOCATION}\n        error_log error.log info;` })))).not.toContain('nginx.error-log-level');
  });

  it('nginx.missing-required-header: headers the profile says the app needs', () => {
    const f = site();
    const profile = profileFile(
      f,
      'name: app\ndescription: needs forwarded headers\nhops: []\napp:\n  requires-headers: [Host, X-Forwarded-For, X-Forwarded-Proto]\n',
    );
    const c = check(f, ['--profile', profile]);
    expect(c.findings.filter((x) => x.id === 'nginx.missing-required-header').map((x) => x.message.split(',')[0])).toEqual([
      'the profile says the app needs Host',
      'the profile says the app needs X-Forwarded-For',
      'the profile says the app needs X-Forwarded-Proto',
    ]);
    const headers = '\n        proxy_set_header Host $host;\n        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n        proxy_set_header X-Forwarded-Proto $scheme;';
    const fixed = site({ location: `${GOOD_LOCATION}${headers}` });
    expect(ids(check(fixed, ['--profile', profileFile(fixed, fs.readFileSync(profile, 'utf8'))]))).not.toContain('nginx.missing-required-header');
  });

  it('nginx.no-proxy-pass and nginx.handshake-redirect for a --path', () => {
    const f = site({ locationName: '/ws/', http: '', server: 'location /static/ { root html; }' });
    const c = check(f, ['--path', '/ws', '--path', '/static/x']);
    expect(c.findings).toContainEqual(expect.objectContaining({ id: 'nginx.handshake-redirect', severity: 'error', file: siteConf(f), line: lineOf(siteConf(f), 'location /ws/') }));
    expect(c.findings).toContainEqual(expect.objectContaining({ id: 'nginx.no-proxy-pass', severity: 'error', file: siteConf(f), line: lineOf(siteConf(f), 'location /static/') }));
    expect(ids(check(f, ['--path', '/ws/']))).toEqual([]);
  });

  it('nginx.location-uncertain: a regex only PCRE can read (info)', () => {
    const f = site({ server: 'location ~ ^/ws(?>x) { return 404; }' });
    expect(check(f, ['--path', '/ws']).findings).toContainEqual(expect.objectContaining({ id: 'nginx.location-uncertain', severity: 'info' }));
  });

  it('nginx.worker-shutdown-timeout: reloads close WebSocket connections when it expires (info)', () => {
    const f = site({ main: 'error_log error.log info;\nworker_shutdown_timeout 10s;' });
    expect(check(f).findings).toContainEqual(expect.objectContaining({ id: 'nginx.worker-shutdown-timeout', severity: 'info', file: f.conf, line: lineOf(f.conf, 'worker_shutdown_timeout') }));
    expect(ids(check(site()))).not.toContain('nginx.worker-shutdown-timeout');
  });

  it('without --path and without any Upgrade header, every proxying location is checked', () => {
    const f = site({ locationName: '/', location: '\n        proxy_pass http://app;' });
    const c = check(f);
    expect(c.locations).toEqual([expect.objectContaining({ location: '/', why: expect.stringContaining('no location sets an Upgrade header') })]);
    expect(ids(c)).toEqual(expect.arrayContaining(['nginx.http-version', 'nginx.missing-upgrade-header', 'nginx.missing-connection-header']));
  });
});

describe('wstap nginx-check input', () => {
  it('reads nginx -T output on stdin with the same findings as the files themselves', () => {
    const f = site({ main: 'error_log error.log warn;', location: GOOD_LOCATION.replace('proxy_http_version 1.1;', '').replace('proxy_set_header Upgrade $http_upgrade;', '') });
    const fromFiles = check(f);
    const fromDump = check(f, [], nginxDump(f));
    expect(fromDump.findings).toEqual(fromFiles.findings);
    expect(ids(fromDump)).toEqual(expect.arrayContaining(['nginx.http-version', 'nginx.missing-upgrade-header', 'nginx.error-log-level']));
  });

  it('plans the same patch from nginx -T output as from the files', () => {
    const f = site({ location: GOOD_LOCATION.replace('proxy_http_version 1.1;', '') });
    const args = ['--path', '/ws', '--plan', '--listen', '127.0.0.1:8066'];
    const fromFiles = runNginxCheck([f.conf, ...args]);
    const fromDump = runNginxCheck(['-', ...args], nginxDump(f));
    expect(fromFiles.status).toBe(0);
    expect(fromDump.stdout).toBe(fromFiles.stdout);
    expect(fromFiles.stdout).toContain('+++ conf.d/site.conf');
  });

  it('refuses a configuration with a syntax error with one line giving its position, as nginx -t does', () => {
    const f = writeNginxFixture({
      'nginx.conf': `${mainPreamble()}http {\n    ${HTTP_PREAMBLE}\n    include conf.d/*.conf;\n}\n`,
      'conf.d/site.conf': 'server {\n    listen 127.0.0.1:8999;\n    location /ws {\n        proxy_pass http://127.0.0.1:9\n    }\n}\n',
    });
    fixtures.push(f);
    const nginx = nginxTest(f);
    expect(nginx.ok).toBe(false);
    expect(nginx.output).toContain(`unexpected "}" in ${siteConf(f)}:5`);
    const r = runNginxCheck([f.conf]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`wstap: ${siteConf(f)}:5:5: unexpected "}" (nginx would refuse this configuration)\n`);
  });

  it('-p PREFIX: a relative FILE is found there; includes stay relative to the file\'s directory, as nginx -t -p resolves them', () => {
    const f = site();
    const other = writeNginxFixture({ 'conf.d/site.conf': 'this would not parse {' });
    fixtures.push(other);
    // nginx itself, given another prefix, still reads conf.d/ next to the main file.
    const r = spawnSync(nginxBinary(), ['-t', '-p', other.dir, '-c', f.conf, '-e', path.join(other.dir, 'error.log')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const c = runNginxCheck(['-p', f.dir, 'nginx.conf', '--json']);
    expect(c.status, c.stderr).toBe(0);
    expect((JSON.parse(c.stdout) as { locations: Array<{ file: string }> }).locations.map((l) => l.file)).toEqual([siteConf(f)]);
  });

  it('accepts the syntax nginx accepts and refuses what it refuses (quotes, escapes, ${var}, comments, braces in a regex)', () => {
    const tricky = `
    location ~ "^/ws/(?<room>[a-z]{2,8})$" {   # braces in a regex need quotes
        set $x "a;b{c}";
        set $y 'it\\'s';
        set $z \\;plain#not-a-comment;
        add_header X-Room "\${room}-$x";
        if ($http_upgrade = "websocket") { return 418; }
        proxy_pass http://app;
    }`;
    const ok = site({ server: tricky });
    const c = runNginxCheck([ok.conf, '--json', '--path', '/ws/lobby']);
    expect(c.status, c.stderr).not.toBe(2);
    expect((JSON.parse(c.stdout) as { locations: Array<{ location: string }> }).locations.map((l) => l.location)).toEqual(['~ ^/ws/(?<room>[a-z]{2,8})$']);
    // Unquoted, the { of {2,8} ends the word and opens a block: nginx refuses it, so do we.
    const bad = writeNginxFixture({
      'nginx.conf': `${mainPreamble()}http {\n    ${HTTP_PREAMBLE}\n    server {\n        listen 127.0.0.1:8999;\n        location ~ ^/ws/[a-z]{2,8}$ { return 200; }\n    }\n}\n`,
    });
    fixtures.push(bad);
    const nginx = nginxTest(bad);
    expect(nginx.ok).toBe(false);
    const r = runNginxCheck([bad.conf]);
    expect(r.status).toBe(2);
    // The same problem nginx names, at the line nginx names.
    const line = lineOf(bad.conf, 'location ~');
    expect(nginx.output).toContain(`unknown directive "2,8}$" in ${bad.conf}:${line}`);
    expect(r.stderr).toContain(`${bad.conf}:${line}:31: unknown directive "2,8}$"`);
  });

  it('exit 2 for a missing file, a bad option, --plan without --listen, or stdin that is not nginx -T output', () => {
    expect(runNginxCheck(['/nonexistent/nginx.conf']).stderr).toContain('open() "/nonexistent/nginx.conf" failed (No such file or directory)');
    expect(runNginxCheck(['/nonexistent/nginx.conf']).status).toBe(2);
    expect(runNginxCheck(['--bogus']).status).toBe(2);
    expect(runNginxCheck(['x.conf', '--plan']).stderr).toContain('--plan needs --listen');
    expect(runNginxCheck(['x.conf', '--path', 'ws']).status).toBe(2);
    const notDump = runNginxCheck(['-'], 'events {}\n');
    expect([notDump.status, notDump.stderr]).toEqual([2, expect.stringContaining('not the output of nginx -T')]);
  });

  it('--help describes the options', () => {
    const r = runNginxCheck(['--help']);
    expect(r.status).toBe(0);
    for (const option of ['--path', '--profile', '--json', '--plan', '--listen', '--whole-upstream', '--prefix']) expect(r.stdout).toContain(option);
    expect(spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' }).stdout).toContain('wstap nginx-check [FILE|-]');
  });
});
