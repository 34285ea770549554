import { describe, expect, it } from 'vitest';
import { ConfigError, expandIncludes, type ConfigDirective } from '../../src/nginx/config-ast.js';
import { splitConfigDump } from '../../src/nginx/config-dump.js';
import { matchesPath, matchesSegment, sortPaths } from '../../src/nginx/config-glob.js';
import { loadConfig, type ConfigSource } from '../../src/nginx/config-load.js';
import { parseConfigText } from '../../src/nginx/config-parser.js';

const FILE = '/etc/nginx/nginx.conf';

function errorOf(text: string): ConfigError {
  try {
    parseConfigText(text, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected a ConfigError for: ${text}`);
}

function only(text: string): ConfigDirective {
  const [d] = parseConfigText(text, FILE);
  if (!d) throw new Error('no directive');
  return d;
}

const values = (d: ConfigDirective): string[] => d.args.map((a) => a.value);

/** A ConfigSource over files held in memory (the file system's is config-files.ts, tested end to end). */
function memorySource(files: Record<string, string>): ConfigSource {
  return {
    read: (p) => (p in files ? { text: files[p] as string } : { error: 'No such file or directory' }),
    glob: (pattern) => sortPaths(Object.keys(files).filter((p) => matchesPath(p, pattern))),
  };
}

describe('nginx configuration parser', () => {
  it('gives every directive and word its file, line and column', () => {
    const [http] = parseConfigText('http {\n  server {\n    listen 127.0.0.1:80;\n  }\n}\n', FILE);
    const server = http?.block?.[0];
    const listen = server?.block?.[0];
    expect(http?.pos).toMatchObject({ file: FILE, line: 1, col: 1 });
    expect(server?.pos).toMatchObject({ line: 2, col: 3 });
    expect(listen?.pos).toMatchObject({ line: 3, col: 5 });
    expect(listen?.args[0]?.pos).toMatchObject({ line: 3, col: 12 });
    expect(listen?.end).toMatchObject({ line: 3, col: 24 });
    expect(server?.end).toMatchObject({ line: 4, col: 3 });
  });

  it('reads quotes and escapes as nginx does', () => {
    const d = only('return 200 "a\\"b\\tc\\n" \'x y\' \\;z plain\\q;');
    expect(values(d)).toEqual(['200', 'a"b\tc\n', 'x y', '\\;z', 'plain\\q']); // \; keeps its backslash (only \" \' \\ lose it)
    expect(d.args[1]).toMatchObject({ quoted: true, raw: '"a\\"b\\tc\\n"' });
    expect(d.args[2]?.raw).toBe("'x y'");
  });

  it('keeps # and } inside a word, and ${var} does not open a block', () => {
    expect(values(only('proxy_pass http://x#y;'))).toEqual(['http://x#y']);
    expect(values(only('set $a b};'))).toEqual(['$a', 'b}']);
    expect(values(only('set $a ${b}c;'))).toEqual(['$a', '${b}c']);
    const [a, b] = parseConfigText('a 1; # comment ; {\nb 2;', FILE);
    expect([a?.name, b?.name, b?.pos.line]).toEqual(['a', 'b', 2]);
  });

  it('reads an if condition with its parentheses as nginx splits it', () => {
    const d = only('if ($a = "b") { return 403; }');
    expect(values(d)).toEqual(['($a', '=', 'b', ')']);
    expect(d.block?.[0]?.name).toBe('return');
  });

  it('reads map entries, an empty quoted key included', () => {
    const d = only("map $http_upgrade $connection_upgrade {\n  default upgrade;\n  '' close;\n}");
    expect(d.block?.map((e) => [e.name, values(e)])).toEqual([
      ['default', ['upgrade']],
      ['', ['close']],
    ]);
  });

  it('skips a *_by_lua_block as Lua (strings, tables, comments, long brackets) to its matching brace', () => {
    const text = [
      'location /ws {',
      '    access_by_lua_block {',
      "        local t = { a = \"}\", b = '{' } -- a } in a comment",
      '        --[[ a long } comment',
      '        ]] local s = [==[ } ]==]',
      '        if t.a then ngx.say("x;y") end',
      '    }',
      '    proxy_pass http://app;',
      '}',
    ].join('\n');
    const location = only(text);
    expect(location.block?.map((d) => [d.name, d.end.line])).toEqual([
      ['access_by_lua_block', 7],
      ['proxy_pass', 8],
    ]);
  });

  it.each([
    ['a "b"c;', 1, 6, 'unexpected "c"'],
    ['http {\n  server {\n    listen 80\n  }\n}\n', 4, 3, 'unexpected "}"'],
    ['http {\n  server {\n  }\n', 4, 1, 'unexpected end of file, expecting "}"'],
    ['events {}\n}\n', 2, 1, 'unexpected "}"'],
    ['events {}\n;\n', 2, 1, 'unexpected ";"'],
    ['worker_processes 1', 1, 19, 'unexpected end of file, expecting ";" or "}"'],
    ['return 200 "never closed;\n', 2, 1, 'a " is never closed'],
    ['map $a $b { x { } }', 1, 15, 'unexpected "{"'],
    ['location ~ ^/a{2}$ { }', 1, 16, 'unknown directive "2}$" (a location regex with { or } must be quoted)'],
    ['http {\n  proxy-pass x;\n}', 2, 3, 'unknown directive "proxy-pass"'],
  ])('refuses %j at %i:%i', (text, line, col, message) => {
    const err = errorOf(text);
    expect([err.line, err.col]).toEqual([line, col]);
    expect(err.message).toContain(message);
    expect(err.message.startsWith(`${FILE}:${line}:${col}: `)).toBe(true);
  });
});

describe('includes', () => {
  it('follows globs relative to the main file\'s directory, sorted, hidden files and directories left out', () => {
    const config = loadConfig(
      FILE,
      memorySource({
        [FILE]: 'http {\n  include conf.d/*.conf;\n  include /etc/nginx/none/*.conf;\n}\n',
        '/etc/nginx/conf.d/b.conf': 'server { listen 2; }\n',
        '/etc/nginx/conf.d/a.conf': 'server { listen 1; include snippets/ws.conf; }\n',
        '/etc/nginx/conf.d/.hidden.conf': 'server { listen 3; }\n',
        '/etc/nginx/conf.d/sub/c.conf': 'server { listen 4; }\n',
        '/etc/nginx/snippets/ws.conf': 'proxy_http_version 1.1;\n',
      }),
    );
    const http = config.directives[0];
    const servers = expandIncludes(http?.block ?? []);
    expect(servers.map((s) => s.block?.[0]?.args[0]?.value)).toEqual(['1', '2']);
    const nested = expandIncludes(servers[0]?.block ?? []);
    expect(nested[1]).toMatchObject({ name: 'proxy_http_version', pos: { file: '/etc/nginx/snippets/ws.conf', line: 1, col: 1 } });
    expect([...config.files.keys()]).toEqual([FILE, '/etc/nginx/conf.d/a.conf', '/etc/nginx/snippets/ws.conf', '/etc/nginx/conf.d/b.conf']);
  });

  it('refuses a missing plain include at the include\'s position, and an include loop', () => {
    const missing = (() => {
      try {
        loadConfig(FILE, memorySource({ [FILE]: 'events {}\n  include missing.conf;\n' }));
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('expected an error');
    })();
    expect(missing.message).toBe(`${FILE}:2:11: open() "/etc/nginx/missing.conf" failed (No such file or directory)`);
    expect(() => loadConfig(FILE, memorySource({ [FILE]: 'include nginx.conf;\n' }))).toThrow(/nested deeper than/);
  });

  it('reads a file included in a map block as entries, not directives', () => {
    const config = loadConfig(FILE, memorySource({ [FILE]: 'http {\n  map $http_upgrade $c {\n    include map.d/*.map;\n  }\n}\n', '/etc/nginx/map.d/ws.map': "default upgrade;\n'' '';\n~^web-socket$ upgrade;\n" }));
    const map = config.directives[0]?.block?.[0];
    expect(expandIncludes(map?.block ?? []).map((e) => e.name)).toEqual(['default', '', '~^web-socket$']);
  });

  it('parses an included file on its own: its braces must balance there', () => {
    expect(() => loadConfig(FILE, memorySource({ [FILE]: 'http {\n include a.conf;\n}\n', '/etc/nginx/a.conf': 'server {\n' }))).toThrow(
      '/etc/nginx/a.conf:2:1: unexpected end of file, expecting "}"',
    );
  });
});

describe('glob patterns', () => {
  it('match as glob(3) does', () => {
    expect(matchesSegment('a.conf', '*.conf')).toBe(true);
    expect(matchesSegment('.a.conf', '*.conf')).toBe(false);
    expect(matchesSegment('.a.conf', '.*.conf')).toBe(true);
    expect(matchesSegment('x1', 'x[0-9]')).toBe(true);
    expect(matchesSegment('xa', 'x[!0-9]')).toBe(true);
    expect(matchesSegment('ab', 'a?')).toBe(true);
    expect(matchesPath('/etc/nginx/sites/a', '/etc/nginx/*/a')).toBe(true);
    expect(matchesPath('/etc/nginx/sites/x/a', '/etc/nginx/*/a')).toBe(false);
    expect(sortPaths(['/b', '/B', '/a'])).toEqual(['/B', '/a', '/b']);
  });
});

describe('nginx -T output', () => {
  it('splits on the headers, each file byte for byte (nginx adds one line feed after each)', () => {
    const a = 'events {}\nhttp { include /x/b.conf; }\n';
    const b = 'server { listen 1; }';
    const dump = `# configuration file /x/a.conf:\n${a}\n# configuration file /x/b.conf:\n${b}\n`;
    expect(splitConfigDump(`nginx: the configuration file /x/a.conf syntax is ok\n${dump}`)).toEqual([
      { path: '/x/a.conf', text: a, dumpLine: 3 },
      { path: '/x/b.conf', text: b, dumpLine: 7 },
    ]);
    expect(() => splitConfigDump('events {}\n')).toThrow(/not the output of nginx -T/);
  });
});
