import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  listShippedProfiles,
  loadProfileFile,
  parseProfile,
  ProfileError,
  resolveProfile,
  shippedProfilesDir,
} from '../../src/profiles/profile-loader.js';
import type { Profile } from '../../src/profiles/profile.js';

const FILE = 'profiles/x.yaml';
const REPO_PROFILES = resolve(dirname(fileURLToPath(import.meta.url)), '../../profiles');

function errorOf(fn: () => unknown): ProfileError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProfileError);
    return err as ProfileError;
  }
  throw new Error('expected a ProfileError');
}

const parseError = (text: string, file = FILE): ProfileError => errorOf(() => parseProfile(text, file));

/** The lines joined with "\n", so tests can count lines and columns by eye. */
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

/** A valid minimal head for tests that are about what follows it. */
const HEAD = ['name: x', 'description: test profile'];

/** A profile with one hop and one timeout whose `after` is the given text (line 8, column 16). */
const withAfter = (after: string): string =>
  yaml(
    ...HEAD,
    'hops:',
    '  - name: nginx',
    '    where: client-side',
    '    timeouts:',
    '      - setting: proxy_read_timeout',
    `        after: ${after}`,
    '        measures: both-idle',
    '        action: fin',
  );

const FULL = yaml(
  '# a comment first',
  'name: x',
  'description: nginx with its default timeouts in front of the app',
  'hops:',
  '  - name: aws-alb',
  '    where: client-side',
  '    timeouts:',
  '      - setting: idle_timeout.timeout_seconds',
  '        after: 60',
  '        measures: both-idle',
  '        action: unknown',
  '  - name: nginx',
  '    where: upstream-side',
  '    timeouts:',
  '      - setting: proxy_read_timeout',
  '        after: 1m30s',
  '        measures: both-idle',
  '        action: fin',
  '        code: 1006',
  '      - setting: lifetime',
  '        after: 250ms',
  '        measures: lifetime',
  '        action: close-frame',
  '        code: 1001',
  '  - name: app',
  '    where: upstream-side',
  'heartbeat:',
  '  from: upstream',
  '  kind: ws-ping',
  '  interval: 60s',
  '  timeout: 100s',
  'app:',
  '  requires-headers: [X-Forwarded-For, X-Forwarded-Proto]',
  '  keepalive-timeout: 5s',
  'proxy:',
  '  listen: 127.0.0.1:8066',
  '  target: http://127.0.0.1:8065',
);

describe('parseProfile: valid profiles', () => {
  it('turns a full profile into the Profile object', () => {
    const expected: Profile = {
      name: 'x',
      description: 'nginx with its default timeouts in front of the app',
      hops: [
        {
          name: 'aws-alb',
          where: 'client-side',
          timeouts: [{ setting: 'idle_timeout.timeout_seconds', after: 60, measures: 'both-idle', action: 'unknown' }],
        },
        {
          name: 'nginx',
          where: 'upstream-side',
          timeouts: [
            { setting: 'proxy_read_timeout', after: 90, measures: 'both-idle', action: 'fin', code: 1006 },
            { setting: 'lifetime', after: 0.25, measures: 'lifetime', action: 'close-frame', code: 1001 },
          ],
        },
        { name: 'app', where: 'upstream-side', timeouts: [] },
      ],
      heartbeat: { from: 'upstream', kind: 'ws-ping', interval: 60, timeout: 100 },
      app: { requiresHeaders: ['X-Forwarded-For', 'X-Forwarded-Proto'], keepAliveTimeout: 5 },
      proxy: { listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065' },
      source: FILE,
    };
    expect(parseProfile(FULL, FILE)).toStrictEqual(expected);
  });

  it('leaves optional sections out rather than setting them to undefined', () => {
    const p = parseProfile(yaml(...HEAD, 'hops: []'), 'somewhere/else.txt');
    expect(p).toStrictEqual({ name: 'x', description: 'test profile', hops: [], source: 'somewhere/else.txt' });
    expect(Object.keys(p)).toEqual(['name', 'description', 'hops', 'source']);
  });

  it('accepts flow style and a byte-order mark', () => {
    const text = '\uFEFF' + yaml('{name: x, description: d, hops: [{name: h, where: client-side, timeouts: []}],', ' heartbeat: {from: client, kind: app-message, interval: 25}}');
    expect(parseProfile(text, FILE)).toStrictEqual({
      name: 'x',
      description: 'd',
      hops: [{ name: 'h', where: 'client-side', timeouts: [] }],
      heartbeat: { from: 'client', kind: 'app-message', interval: 25 },
      source: FILE,
    });
  });

  it.each([
    ['60', 60],
    ['"60"', 60],
    ['60s', 60],
    ['1m30s', 90],
    ['250ms', 0.25],
    ['1.5', 1.5],
    ['1h', 3600],
  ])('reads the duration %s as %d seconds', (text, seconds) => {
    const p = parseProfile(withAfter(text), FILE);
    expect(p.hops[0]?.timeouts[0]?.after).toBe(seconds);
  });

  it('checks the name against the file name only for NAME.yaml / NAME.yml files', () => {
    expect(parseProfile(yaml(...HEAD, 'hops: []'), 'dir/x.yml').name).toBe('x');
    expect(parseProfile(yaml(...HEAD, 'hops: []'), '<stdin>').name).toBe('x');
  });
});

describe('parseProfile: errors, with file, line and column', () => {
  it('rejects "sixty" at the line and column of the value', () => {
    const err = parseError(withAfter('sixty'));
    expect(err.message).toBe(
      'profiles/x.yaml:8:16: "after" must be a duration (e.g. 60, 60s, 1m30s, 250ms), got "sixty"',
    );
    expect([err.file, err.line, err.column]).toEqual([FILE, 8, 16]);
    expect(err.problem).toBe('"after" must be a duration (e.g. 60, 60s, 1m30s, 250ms), got "sixty"');
  });

  it.each([
    ['0', '"after" must be greater than zero, got 0'],
    ['0s', '"after" must be greater than zero, got "0s"'],
    ['-5', '"after" must be greater than zero, got -5'],
    ['-5s', '"after" must be greater than zero, got "-5s"'],
    ['30s1m', '"after" must be a duration (e.g. 60, 60s, 1m30s, 250ms), got "30s1m"'],
    ['true', '"after" must be a duration (e.g. 60, 60s, 1m30s, 250ms), got true'],
    ['[60]', '"after" must be a duration (e.g. 60, 60s, 1m30s, 250ms), got a list'],
  ])('rejects the duration %s', (text, problem) => {
    expect(parseError(withAfter(text)).message).toBe(`profiles/x.yaml:8:16: ${problem}`);
  });

  it('points at the key when a value is missing', () => {
    expect(parseError(withAfter('')).message).toBe(
      'profiles/x.yaml:8:9: "after" must be a duration (e.g. 60, 60s, 1m30s, 250ms), got nothing',
    );
  });

  it('reports an unknown key at the key, with the nearest valid key', () => {
    const text = yaml(...HEAD, 'hops:', '  - name: nginx', '    where: client-side', '    timout: []');
    const err = parseError(text);
    expect(err.message).toBe('profiles/x.yaml:6:5: unknown key "timout" in a hop (did you mean "timeouts"?)');
    expect([err.line, err.column]).toEqual([6, 5]);
  });

  it('suggests the kebab-case key for underscore and camelCase variants', () => {
    expect(parseError(yaml(...HEAD, 'hops: []', 'app:', '  requires_headers: [Host]')).message).toBe(
      'profiles/x.yaml:5:3: unknown key "requires_headers" in "app" (did you mean "requires-headers"?)',
    );
    expect(parseError(yaml(...HEAD, 'hops: []', 'app:', '  requiresHeaders: [Host]')).problem).toBe(
      'unknown key "requiresHeaders" in "app" (did you mean "requires-headers"?)',
    );
    expect(parseError(yaml('Name: x', 'description: d', 'hops: []')).message).toBe(
      'profiles/x.yaml:1:1: unknown key "Name" at the top level (did you mean "name"?)',
    );
  });

  it('lists the valid keys when none is near', () => {
    expect(parseError(yaml(...HEAD, 'hops: []', 'heartbeat:', '  everyhow: 5s')).message).toBe(
      'profiles/x.yaml:5:3: unknown key "everyhow" in "heartbeat" (expected one of from, kind, interval, timeout)',
    );
  });

  it('reports a missing required key at the map that lacks it', () => {
    expect(parseError(yaml('# leading comment', 'name: x', 'hops: []')).message).toBe(
      'profiles/x.yaml:2:1: missing required key "description"',
    );
    expect(parseError(yaml(...HEAD, 'hops:', '  - name: nginx', '    timeouts: []')).message).toBe(
      'profiles/x.yaml:4:5: missing required key "where" in a hop',
    );
    expect(parseError(withAfter('60').replace('        measures: both-idle\n', '')).message).toBe(
      'profiles/x.yaml:7:9: missing required key "measures" in a timeout',
    );
    expect(parseError(yaml(...HEAD, 'hops: []', 'heartbeat:', '  from: client', '  kind: ws-ping')).message).toBe(
      'profiles/x.yaml:5:3: missing required key "interval" in "heartbeat"',
    );
  });

  it('reports an unknown key before the missing key it probably meant', () => {
    expect(parseError(yaml('nmae: x', 'description: d', 'hops: []')).message).toBe(
      'profiles/x.yaml:1:1: unknown key "nmae" at the top level (did you mean "name"?)',
    );
  });

  it('rejects wrong types', () => {
    const cases: [string, string][] = [
      [yaml(...HEAD, 'hops: nginx'), 'profiles/x.yaml:3:7: "hops" must be a list, got "nginx"'],
      [yaml(...HEAD, 'hops:', '  name: nginx'), 'profiles/x.yaml:4:3: "hops" must be a list, got a map'],
      [yaml('name: [x]', 'description: d', 'hops: []'), 'profiles/x.yaml:1:7: "name" must be a string, got a list'],
      [yaml(...HEAD, 'hops:', '  - nginx'), 'profiles/x.yaml:4:5: each hop must be a map with name, where and timeouts, got "nginx"'],
      [yaml(...HEAD, 'hops: []', 'heartbeat: [60s]'), 'profiles/x.yaml:4:12: "heartbeat" must be a map, got a list'],
      [yaml(...HEAD, 'hops: []', 'app:', '  requires-headers: Host'), 'profiles/x.yaml:5:21: "requires-headers" must be a list, got "Host"'],
      [
        yaml(...HEAD, 'hops: []', 'app:', '  requires-headers: [Host, 5, X Forwarded]'),
        'profiles/x.yaml:5:28: each entry of "requires-headers" must be a string, got 5',
      ],
      [yaml(...HEAD, 'hops: []', 'proxy:', '  listen: 8066'), 'profiles/x.yaml:5:11: "listen" must be a string, got 8066'],
      [yaml(...HEAD, 'hops: []', 'app:', '  keepalive-timeout: 0s'), 'profiles/x.yaml:5:22: "keepalive-timeout" must be greater than zero, got "0s"'],
      [yaml('name: x', 'description:', 'hops: []'), 'profiles/x.yaml:2:1: "description" must be a string, got nothing'],
    ];
    for (const [text, message] of cases) expect(parseError(text).message).toBe(message);
  });

  it('rejects a code that is not an integer or not a close code / HTTP status', () => {
    const withCode = (code: string): string => withAfter('60s') + `        code: ${code}\n`;
    expect(parseError(withCode('1006.5')).message).toBe(
      'profiles/x.yaml:11:15: "code" must be an integer (a close code or an HTTP status), got 1006.5',
    );
    expect(parseError(withCode('"1006"')).problem).toBe(
      '"code" must be an integer (a close code or an HTTP status), got "1006"',
    );
    expect(parseError(withCode('42')).problem).toBe(
      '"code" must be a close code (1000-4999) or an HTTP status (100-599), got 42',
    );
    expect(parseProfile(withCode('504'), FILE).hops[0]?.timeouts[0]?.code).toBe(504);
  });

  it('rejects values outside the enums, suggesting a near one', () => {
    const hop = (where: string): string => yaml(...HEAD, 'hops:', '  - name: nginx', `    where: ${where}`);
    expect(parseError(hop('front')).message).toBe(
      'profiles/x.yaml:5:12: "where" must be one of client-side, upstream-side, got "front"',
    );
    expect(parseError(hop('client_side')).problem).toBe(
      '"where" must be one of client-side, upstream-side, got "client_side" (did you mean "client-side"?)',
    );
    expect(parseError(withAfter('60').replace('both-idle', 'idle')).message).toBe(
      'profiles/x.yaml:9:19: "measures" must be one of both-idle, client-idle, upstream-idle, lifetime, got "idle"',
    );
    expect(parseError(withAfter('60').replace('action: fin', 'action: FIN')).problem).toBe(
      '"action" must be one of fin, rst, close-frame, http-status, unknown, got "FIN" (did you mean "fin"?)',
    );
    expect(parseError(yaml(...HEAD, 'hops: []', 'heartbeat:', '  from: server', '  kind: ping', '  interval: 1s')).message).toBe(
      'profiles/x.yaml:5:9: "from" must be one of client, upstream, got "server"',
    );
  });

  it('reports YAML syntax errors at their position', () => {
    const err = parseError(yaml('name: x', 'description: nginx: in front', 'hops: []'));
    expect(err.message).toBe(
      'profiles/x.yaml:2:14: YAML syntax error: Nested mappings are not allowed in compact mappings',
    );
    expect([err.line, err.column]).toEqual([2, 14]);
    expect(parseError(yaml('name: x', '\tdescription: d', 'hops: []')).message).toBe(
      'profiles/x.yaml:2:1: YAML syntax error: Tabs are not allowed as indentation',
    );
    expect(parseError(yaml('name: "x', 'description: d')).message).toMatch(/^profiles\/x\.yaml:\d+:\d+: YAML syntax error: /);
  });

  it('rejects a second document and aliases', () => {
    expect(parseError(yaml(...HEAD, 'hops: []', '---', 'name: y')).message).toBe(
      'profiles/x.yaml:4:1: a profile is a single YAML document; remove this second one (and its "---")',
    );
    const aliased = yaml(...HEAD, 'hops:', '  - name: a', '    where: &w client-side', '  - name: b', '    where: *w');
    expect(parseError(aliased).message).toBe(
      'profiles/x.yaml:7:12: aliases (*w) are not supported in profiles; write the value out',
    );
  });

  it('rejects names that are not lowercase words', () => {
    expect(parseError(yaml('name: My Nginx', 'description: d', 'hops: []'), '<stdin>').message).toBe(
      '<stdin>:1:7: "name" must be lowercase letters, digits and dashes, starting with a letter or digit, got "My Nginx"',
    );
  });

  it('rejects duplicate hop names and duplicate keys', () => {
    const text = yaml(...HEAD, 'hops:', '  - name: nginx', '    where: client-side', '  - name: nginx', '    where: upstream-side');
    expect(parseError(text).message).toBe('profiles/x.yaml:6:11: hop name "nginx" is used twice (first on line 4)');
    expect(parseError(yaml(...HEAD, 'name: y', 'hops: []')).message).toBe(
      'profiles/x.yaml:3:1: duplicate key "name" at the top level (first on line 1)',
    );
  });

  it('rejects a multi-line description', () => {
    expect(parseError(yaml('name: x', 'description: |', '  one', '  two', 'hops: []')).message).toBe(
      'profiles/x.yaml:2:14: "description" must be one line',
    );
  });

  it('rejects an empty file and a document that is not a map', () => {
    expect(parseError('# only a comment\n').message).toBe(
      'profiles/x.yaml:1:1: a profile must be a map with name, description and hops, got an empty file',
    );
    expect(parseError('- name: x\n').message).toBe(
      'profiles/x.yaml:1:1: a profile must be a map with name, description and hops, got a list',
    );
  });

  it('reports the first problem in document order', () => {
    const text = yaml('name: x', 'description: [d]', 'hops:', '  - name: nginx', '    where: front', 'heartbeat: 5');
    expect(parseError(text).line).toBe(2);
    const later = yaml('name: x', 'description: d', 'hops:', '  - name: nginx', '    where: front', 'heartbeat: 5');
    expect(parseError(later).line).toBe(5);
  });
});

describe('loadProfileFile, resolveProfile, listShippedProfiles', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wstap-profiles-'));
    writeFileSync(join(dir, 'nginx.yaml'), yaml('name: nginx', 'description: n', 'hops: []'));
    writeFileSync(join(dir, 'aws-alb.yaml'), yaml('name: aws-alb', 'description: a', 'hops: []'));
    writeFileSync(join(dir, 'README.md'), '# not a profile\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a file, with the path as its source', () => {
    const file = join(dir, 'nginx.yaml');
    expect(loadProfileFile(file)).toStrictEqual({ name: 'nginx', description: 'n', hops: [], source: file });
  });

  it('turns I/O errors into a ProfileError at 1:1', () => {
    const file = join(dir, 'missing.yaml');
    const err = errorOf(() => loadProfileFile(file));
    expect([err.file, err.line, err.column]).toEqual([file, 1, 1]);
    expect(err.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1:1: cannot read the profile: ENOENT`));
  });

  it('resolves a shipped name (source = the name) and a path (source = the path)', () => {
    expect(resolveProfile('nginx', dir).source).toBe('nginx');
    const path = join(dir, 'aws-alb.yaml');
    expect(resolveProfile(path, dir).source).toBe(path);
  });

  it('lists the shipped names, and the nearest, for an unknown name', () => {
    const err = errorOf(() => resolveProfile('ngnix', dir));
    expect(err.message).toBe(
      'unknown profile "ngnix" (did you mean "nginx"?); shipped profiles: aws-alb, nginx; or give the path of a YAML file',
    );
    expect([err.line, err.column]).toEqual([0, 0]);
    expect(errorOf(() => resolveProfile('zzzzzzzz', dir)).message).toBe(
      'unknown profile "zzzzzzzz"; shipped profiles: aws-alb, nginx; or give the path of a YAML file',
    );
  });

  it('lists the shipped profiles sorted by name', () => {
    expect(listShippedProfiles(dir).map((p) => [p.name, p.source])).toEqual([
      ['aws-alb', 'aws-alb'],
      ['nginx', 'nginx'],
    ]);
  });

  it('finds the shipped profiles in <package root>/profiles', () => {
    expect(shippedProfilesDir()).toBe(REPO_PROFILES);
  });

  it('loads a shipped profile copied under another file name and edited (users copy nginx.yaml to my-site.yaml)', () => {
    const copyDir = mkdtempSync(join(tmpdir(), 'wstap-profile-copy-'));
    try {
      const copy = join(copyDir, 'my-site.yaml');
      const edited = readFileSync(join(REPO_PROFILES, 'nginx.yaml'), 'utf8').replace(/^description: .*$/m, 'description: my site behind nginx');
      writeFileSync(copy, edited);
      const profile = resolveProfile(copy);
      expect(profile.name).toBe('nginx');
      expect(profile.description).toBe('my site behind nginx');
      expect(profile.source).toBe(copy);
      expect(profile.hops).toStrictEqual(resolveProfile('nginx').hops);
    } finally {
      rmSync(copyDir, { recursive: true, force: true });
    }
  });

  it('loads every shipped profile without error', () => {
    const files = readdirSync(REPO_PROFILES).filter((f) => f.endsWith('.yaml'));
    const profiles = listShippedProfiles();
    expect(profiles.map((p) => `${p.name}.yaml`)).toEqual([...files].sort());
    for (const p of profiles) {
      expect(p.source).toBe(p.name);
      expect(resolveProfile(p.name)).toStrictEqual(p);
    }
  });
});
