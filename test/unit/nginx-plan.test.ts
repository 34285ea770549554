import { describe, expect, it } from 'vitest';
import { versionAtLeast } from '../../src/nginx/check-finding.js';
import { parseConfigText } from '../../src/nginx/config-parser.js';
import { loadConfig } from '../../src/nginx/config-load.js';
import { formatNginxTime, parseNginxTime } from '../../src/nginx/location-effective.js';
import { buildHttpModel, type HttpModel } from '../../src/nginx/location-model.js';
import { normalizeUri } from '../../src/nginx/location-select.js';
import { readProxyPass, wstapTargetOf } from '../../src/nginx/location-upstream.js';
import { applyEdits, unifiedDiff } from '../../src/nginx/plan-diff.js';
import { chooseWebSocketTargets } from '../../src/nginx/check-targets.js';
import { PlanError, planRepoint } from '../../src/nginx/plan-repoint.js';
import type { LoadedConfig } from '../../src/nginx/config-ast.js';

const MAIN = '/etc/nginx/nginx.conf';

function configOf(text: string): LoadedConfig {
  parseConfigText(text, MAIN);
  return loadConfig(MAIN, { read: () => ({ text }), glob: () => [] });
}

function modelOf(text: string): HttpModel {
  return buildHttpModel(configOf(text));
}

/** The plan's edits applied to the main file. */
function planned(text: string, paths: string[], defaultErrorLog: string | null = null): string {
  const config = configOf(text);
  const model = buildHttpModel(config);
  const plan = planRepoint(config, model, chooseWebSocketTargets(model, paths), { listen: '127.0.0.1:8066', wholeUpstream: false, defaultErrorLog });
  return applyEdits(text, plan.edits.get(MAIN) ?? []);
}

describe('unified diff of text edits', () => {
  const text = 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n';

  it('inserts whole lines as pure additions with three lines of context', () => {
    const offset = text.indexOf('e');
    expect(unifiedDiff('x.conf', text, [{ offset, remove: 0, insert: 'new1\nnew2\n' }])).toBe(
      '--- x.conf\n+++ x.conf\n@@ -2,6 +2,8 @@\n b\n c\n d\n+new1\n+new2\n e\n f\n g\n',
    );
  });

  it('replaces part of a line as a changed line, and merges hunks whose context touches', () => {
    const diff = unifiedDiff('x.conf', text, [
      { offset: text.indexOf('b'), remove: 1, insert: 'B' },
      { offset: text.indexOf('h'), remove: 1, insert: 'H' },
    ]);
    expect(diff).toBe('--- x.conf\n+++ x.conf\n@@ -1,11 +1,11 @@\n a\n-b\n+B\n c\n d\n e\n f\n g\n-h\n+H\n i\n j\n k\n');
  });

  it('keeps separate hunks apart, counting the new side\'s shift', () => {
    const long = Array.from({ length: 30 }, (_, i) => `l${i}\n`).join('');
    const diff = unifiedDiff('x', long, [
      { offset: 0, remove: 0, insert: 'top\n' },
      { offset: long.indexOf('l20'), remove: 3, insert: 'L20' },
    ]);
    expect(diff).toBe('--- x\n+++ x\n@@ -1,3 +1,4 @@\n+top\n l0\n l1\n l2\n@@ -18,7 +19,7 @@\n l17\n l18\n l19\n-l20\n+L20\n l21\n l22\n l23\n');
  });

  it('marks a last line without a line feed', () => {
    expect(unifiedDiff('x', 'a\nb', [{ offset: 2, remove: 1, insert: 'B' }])).toBe('--- x\n+++ x\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+B\n\\ No newline at end of file\n');
  });

  it('applies edits in offset order, edits at one offset in the order made; no edits, no diff', () => {
    expect(applyEdits('abc', [{ offset: 1, remove: 0, insert: 'X' }, { offset: 1, remove: 0, insert: 'Y' }, { offset: 0, remove: 1, insert: '' }])).toBe('XYbc');
    expect(unifiedDiff('x', text, [])).toBe('');
    expect(unifiedDiff('x', text, [{ offset: 0, remove: 1, insert: 'a' }])).toBe('');
  });
});

describe('where a proxy_pass goes, and wstap\'s --target for it', () => {
  const model = modelOf(
    'http {\n  upstream app { server 10.0.0.5:8065 weight=2; server 10.0.0.6:8065; }\n  upstream sock { server unix:/run/app.sock; }\n  upstream plain { server app.internal; }\n}\n',
  );
  const target = (value: string): string | undefined => {
    const r = readProxyPass(value, model);
    return r.ok ? wstapTargetOf(r.target)?.target : `not: ${r.why}`;
  };

  it.each([
    ['http://app', 'http://10.0.0.5:8065'],
    ['https://app/api/', 'https://10.0.0.5:8065'],
    ['http://sock', 'unix:/run/app.sock'],
    ['http://plain', 'http://app.internal:80'],
    ['https://plain', 'https://app.internal:443'],
    ['http://127.0.0.1:8065/ws', 'http://127.0.0.1:8065'],
    ['https://backend.example:8443', 'https://backend.example:8443'],
    ['http://unix:/run/mm.sock:/api/', 'unix:/run/mm.sock'],
    ['http://[::1]:8065', 'http://[::1]:8065'],
  ])('%s -> %s', (value, expected) => {
    expect(target(value)).toBe(expected);
  });

  it('keeps the URI part and says when there is more than one server or variables', () => {
    const r = readProxyPass('http://unix:/run/mm.sock:/api/', model);
    expect(r.ok && [r.target.address, r.target.uri]).toEqual(['unix:/run/mm.sock:', '/api/']);
    const app = readProxyPass('http://app', model);
    expect(app.ok && wstapTargetOf(app.target)?.note).toBe('upstream app has 2 servers; wstap forwards to the first one only');
    expect(target('http://$backend')).toContain('uses variables');
  });
});

describe('values', () => {
  it('reads nginx times', () => {
    expect([parseNginxTime('60'), parseNginxTime('60s'), parseNginxTime('1m30s'), parseNginxTime('1h 30m'), parseNginxTime('500ms'), parseNginxTime('x')]).toEqual([60, 60, 90, 5400, 0.5, null]);
    expect([formatNginxTime(120), formatNginxTime(0.25)]).toEqual(['120s', '250ms']);
  });

  it('compares versions', () => {
    expect([versionAtLeast('1.29.7', [1, 29, 7]), versionAtLeast('1.30.0', [1, 29, 7]), versionAtLeast('1.22.1', [1, 29, 7])]).toEqual([true, true, false]);
  });

  it('normalises a URI as nginx does before matching', () => {
    expect(normalizeUri('/a//b/./c/../d?x=1')).toBe('/a/b/d');
    expect(normalizeUri('/st%61tic/')).toBe('/static/');
    expect(normalizeUri('/a/..')).toBe('/');
  });
});

describe('the re-pointing plan', () => {
  it('puts the upstream before the server and the evidence lines first in a multi-line location, indented like its directives', () => {
    const text = 'http {\n  server {\n    location /ws {\n      proxy_pass http://127.0.0.1:8065/ws;\n      proxy_set_header Upgrade $http_upgrade;\n    }\n  }\n}\n';
    expect(planned(text, ['/ws'], 'stderr')).toBe(
      'http {\n  upstream wstap_debug {\n      server 127.0.0.1:8066;\n  }\n  server {\n    location /ws {\n' +
        "      proxy_set_header Host 127.0.0.1:8065;  # wstap: the Host nginx sent before ($proxy_host)\n" +
        "      proxy_set_header X-Nginx-Connection $connection;  # wstap: nginx's connection number, for the hop verdicts\n" +
        "      error_log stderr info;  # wstap: nginx's timeout lines are written at info\n" +
        '      proxy_pass http://wstap_debug/ws;\n      proxy_set_header Upgrade $http_upgrade;\n    }\n  }\n}\n',
    );
  });

  it('leaves the error log alone where it is already at info, and picks a free upstream name', () => {
    const text = 'error_log x.log info;\nhttp { upstream wstap_debug { server 1.2.3.4:1; } server { location /ws { proxy_pass http://10.0.0.1:80; proxy_set_header Host $host; } } }\n';
    const out = planned(text, ['/ws']);
    expect(out).not.toContain('error_log x.log info; proxy_set_header');
    expect(out).toContain('upstream wstap_debug_2 { server 127.0.0.1:8066; } server {');
    expect(out).toContain('location /ws { proxy_set_header X-Nginx-Connection $connection; proxy_pass http://wstap_debug_2; proxy_set_header Host $host; }');
  });

  it('refuses locations that go to different places, and a proxy_pass with variables', () => {
    const two = 'http { server { location /a { proxy_pass http://10.0.0.1:1; } location /b { proxy_pass http://10.0.0.2:1; } } }\n';
    expect(() => planned(two, ['/a', '/b'])).toThrow(PlanError);
    expect(() => planned(two, ['/a', '/b'])).toThrow('proxy to different places (http://10.0.0.1:1, http://10.0.0.2:1)');
    expect(() => planned('http { server { location /ws { proxy_pass http://$b; } } }\n', ['/ws'])).toThrow('uses variables');
  });
});
