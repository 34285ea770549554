import { describe, it, expect } from 'vitest';
import {
  formatByteSize,
  isLoopback,
  parseByteSize,
  parseChoice,
  parseListen,
  parseNonNegativeInteger,
  parseNonNegativeNumber,
} from '../../src/cli/option-values.js';
import { listenAddressText } from '../../src/cli/proxy-session.js';
import { UsageError } from '../../src/cli/usage-error.js';
import { parseTarget, TargetError } from '../../src/relay/target.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

function usageError(fn: () => unknown): UsageError {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(UsageError);
  expect((e as UsageError).exitCode).toBe(2);
  return e as UsageError;
}

function targetError(fn: () => unknown): TargetError {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(TargetError);
  expect((e as TargetError).code).toBe('WSTAP_BAD_TARGET');
  return e as TargetError;
}

describe('parseListen', () => {
  it('takes a bare port as loopback', () => {
    expect(parseListen('8066')).toStrictEqual({ kind: 'tcp', host: '127.0.0.1', port: 8066 });
    expect(parseListen('0')).toStrictEqual({ kind: 'tcp', host: '127.0.0.1', port: 0 });
  });

  it('takes HOST:PORT', () => {
    expect(parseListen('0.0.0.0:8066')).toStrictEqual({ kind: 'tcp', host: '0.0.0.0', port: 8066 });
    expect(parseListen('localhost:65535')).toStrictEqual({ kind: 'tcp', host: 'localhost', port: 65535 });
  });

  it('takes [V6]:PORT without the brackets in the host', () => {
    expect(parseListen('[::1]:80')).toStrictEqual({ kind: 'tcp', host: '::1', port: 80 });
    expect(parseListen('[::]:8066')).toStrictEqual({ kind: 'tcp', host: '::', port: 8066 });
  });

  it('refuses bad values with a UsageError quoting them', () => {
    for (const bad of ['', 'abc', ':80', 'host:', 'host:port', '65536', 'host:70000', '::1:80', '[::1]', '[::1]80', 'host:80:90', '-1', '80.5']) {
      const e = usageError(() => parseListen(bad));
      expect(e.message).toBe(`--listen "${bad}" is not HOST:PORT or unix:PATH (e.g. 127.0.0.1:8066)`);
    }
  });

  it('takes unix:PATH, absolute or relative', () => {
    expect(parseListen('unix:/run/wstap/wstap.sock')).toStrictEqual({ kind: 'unix', path: '/run/wstap/wstap.sock' });
    expect(parseListen('unix:wstap.sock')).toStrictEqual({ kind: 'unix', path: 'wstap.sock' });
  });

  it('refuses unix: without a path, and a path longer than a socket address holds (libuv would cut it short)', () => {
    expect(usageError(() => parseListen('unix:')).message).toBe('--listen "unix:" names no socket file (e.g. unix:/run/wstap/wstap.sock)');
    const longest = `/${'a'.repeat(106)}`;
    expect(parseListen(`unix:${longest}`)).toStrictEqual({ kind: 'unix', path: longest });
    expect(usageError(() => parseListen(`unix:${longest}b`)).message).toBe(`--listen "unix:${longest}b": a unix socket path may have at most 107 bytes, this one has 108`);
  });
});

describe('listenAddressText', () => {
  it('writes TCP as HOST:PORT, a unix socket as unix:PATH, and TLS as https:// (http mode) or tls: (--tcp)', () => {
    expect(listenAddressText({ kind: 'tcp', host: '127.0.0.1', port: 8066 }, 'http', false)).toBe('127.0.0.1:8066');
    expect(listenAddressText({ kind: 'tcp', host: '::1', port: 8066 }, 'http', false)).toBe('[::1]:8066');
    expect(listenAddressText({ kind: 'unix', path: '/run/w.sock' }, 'tcp', false)).toBe('unix:/run/w.sock');
    expect(listenAddressText({ kind: 'tcp', host: '127.0.0.1', port: 8443 }, 'http', true)).toBe('https://127.0.0.1:8443');
    expect(listenAddressText({ kind: 'unix', path: '/run/w.sock' }, 'http', true)).toBe('https://unix:/run/w.sock');
    expect(listenAddressText({ kind: 'tcp', host: '127.0.0.1', port: 8443 }, 'tcp', true)).toBe('tls:127.0.0.1:8443');
  });
});

describe('isLoopback', () => {
  it('is true for 127.x, ::1 and localhost', () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('127.1.2.3')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('localhost')).toBe(true);
    // The same addresses written otherwise.
    expect(isLoopback('0:0:0:0:0:0:0:1')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.1')).toBe(true);
  });

  it('is false for wildcard, private, public addresses and other names', () => {
    expect(isLoopback('0.0.0.0')).toBe(false);
    expect(isLoopback('::')).toBe(false);
    expect(isLoopback('10.0.0.1')).toBe(false);
    expect(isLoopback('192.168.1.1')).toBe(false);
    expect(isLoopback('128.0.0.1')).toBe(false);
    expect(isLoopback('example.com')).toBe(false);
    expect(isLoopback('127.example.com')).toBe(false);
    expect(isLoopback('::ffff:10.0.0.1')).toBe(false);
  });
});

describe('parseNonNegativeNumber / parseNonNegativeInteger', () => {
  it('accepts non-negative numbers', () => {
    expect(parseNonNegativeNumber('--idle', '0')).toBe(0);
    expect(parseNonNegativeNumber('--idle', '2.5')).toBe(2.5);
    expect(parseNonNegativeNumber('--idle', '1e3')).toBe(1000);
  });

  it('refuses negative, empty, non-numeric and infinite values, naming the flag', () => {
    for (const bad of ['-1', '', '  ', 'abc', 'Infinity', 'NaN', '5s']) {
      const e = usageError(() => parseNonNegativeNumber('--idle', bad));
      expect(e.message).toBe(`--idle "${bad}" is not a non-negative number`);
    }
  });

  it('accepts whole numbers only for integers', () => {
    expect(parseNonNegativeInteger('--preview', '64')).toBe(64);
    expect(parseNonNegativeInteger('--preview', '0')).toBe(0);
    const e = usageError(() => parseNonNegativeInteger('--preview', '1.5'));
    expect(e.message).toBe('--preview "1.5" is not a whole number');
    expect(usageError(() => parseNonNegativeInteger('--preview', '-3')).message).toBe('--preview "-3" is not a non-negative number');
  });
});

describe('parseByteSize / formatByteSize', () => {
  it('reads plain bytes and K, M, G, T as powers of 1024, with or without B/iB, any case', () => {
    expect(parseByteSize('--rotate', '65536')).toBe(65536);
    expect(parseByteSize('--rotate', '512K')).toBe(512 * 1024);
    expect(parseByteSize('--rotate', '10M')).toBe(10 * 1024 * 1024);
    expect(parseByteSize('--rotate', '1G')).toBe(1024 ** 3);
    expect(parseByteSize('--rotate', '2t')).toBe(2 * 1024 ** 4);
    expect(parseByteSize('--rotate', '64KiB')).toBe(65536);
    expect(parseByteSize('--rotate', '64kb')).toBe(65536);
    expect(parseByteSize('--rotate', '1.5G')).toBe(1.5 * 1024 ** 3);
    expect(parseByteSize('--min-free', '0')).toBe(0);
  });

  it('refuses what is not a size with a UsageError naming the flag', () => {
    for (const bad of ['', 'M', '-1M', '10X', '1e6', '10 MB extra', '0x10']) {
      expect(usageError(() => parseByteSize('--rotate', bad)).message).toBe(`--rotate "${bad}" is not a size (bytes, or with K, M, G: e.g. 512K, 10M, 1G)`);
    }
  });

  it('formats sizes for log lines', () => {
    expect(formatByteSize(812)).toBe('812 B');
    expect(formatByteSize(65536)).toBe('64.0 KiB');
    expect(formatByteSize(1.25 * 1024 ** 3)).toBe('1.3 GiB');
    expect(formatByteSize(3 * 1024 ** 2)).toBe('3.0 MiB');
  });
});

describe('parseChoice', () => {
  const levels = ['info', 'debug', 'warn'] as const;

  it('returns a listed choice', () => {
    expect(parseChoice('--log-level', 'debug', levels)).toBe('debug');
  });

  it('refuses anything else, listing the choices', () => {
    expect(usageError(() => parseChoice('--log-level', 'verbose', levels)).message).toBe('--log-level "verbose" is not one of info, debug, warn');
    expect(usageError(() => parseChoice('--log-level', 'INFO', levels)).message).toContain('is not one of');
  });
});

describe('parseTarget (http mode)', () => {
  it('parses http with an explicit port', () => {
    expect(parseTarget('http://127.0.0.1:8065', 'http')).toStrictEqual({
      href: 'http://127.0.0.1:8065',
      protocol: 'http:',
      host: '127.0.0.1',
      port: 8065,
      tls: false,
      httpBase: 'http://127.0.0.1:8065',
    });
  });

  it('defaults http to port 80 and https to 443', () => {
    expect(parseTarget('http://app.internal', 'http')).toMatchObject({ port: 80, tls: false, href: 'http://app.internal:80' });
    expect(parseTarget('https://app.internal', 'http')).toStrictEqual({
      href: 'https://app.internal:443',
      protocol: 'https:',
      host: 'app.internal',
      port: 443,
      tls: true,
      httpBase: 'https://app.internal:443',
    });
  });

  it('accepts a trailing slash', () => {
    expect(parseTarget('http://127.0.0.1:8065/', 'http').href).toBe('http://127.0.0.1:8065');
  });

  it('forwards ws as http', () => {
    expect(parseTarget('ws://127.0.0.1:8065', 'http')).toStrictEqual({
      href: 'http://127.0.0.1:8065',
      protocol: 'http:',
      host: '127.0.0.1',
      port: 8065,
      tls: false,
      httpBase: 'http://127.0.0.1:8065',
    });
    expect(parseTarget('ws://app', 'http')).toMatchObject({ port: 80, protocol: 'http:', tls: false });
  });

  it('forwards wss as https with TLS', () => {
    expect(parseTarget('wss://chat.example.com', 'http')).toStrictEqual({
      href: 'https://chat.example.com:443',
      protocol: 'https:',
      host: 'chat.example.com',
      port: 443,
      tls: true,
      httpBase: 'https://chat.example.com:443',
    });
    expect(parseTarget('wss://chat.example.com:8443', 'http')).toMatchObject({ port: 8443, tls: true, httpBase: 'https://chat.example.com:8443' });
  });

  it('takes a host without scheme as http', () => {
    expect(parseTarget('127.0.0.1:8065', 'http')).toMatchObject({ href: 'http://127.0.0.1:8065', protocol: 'http:', port: 8065, tls: false });
    expect(parseTarget('localhost', 'http')).toMatchObject({ host: 'localhost', port: 80 });
  });

  it('keeps IPv6 hosts bare and brackets them in URLs', () => {
    expect(parseTarget('http://[::1]:8065', 'http')).toStrictEqual({
      href: 'http://[::1]:8065',
      protocol: 'http:',
      host: '::1',
      port: 8065,
      tls: false,
      httpBase: 'http://[::1]:8065',
    });
    expect(parseTarget('wss://[2001:db8::1]', 'http')).toMatchObject({ host: '2001:db8::1', port: 443, httpBase: 'https://[2001:db8::1]:443' });
    expect(parseTarget('[::1]:9000', 'http')).toMatchObject({ host: '::1', port: 9000 });
  });

  it('refuses a path, query or fragment', () => {
    for (const bad of ['http://127.0.0.1:8065/api', 'ws://h/ws', 'http://h?x=1', 'http://h/#frag']) {
      expect(targetError(() => parseTarget(bad, 'http')).message).toContain('a path or query is not supported');
    }
  });

  it('refuses credentials', () => {
    expect(targetError(() => parseTarget('http://user:secret@h:80', 'http')).message).toContain('credentials in the target are not supported');
    expect(targetError(() => parseTarget('https://user@h', 'http')).message).toContain('credentials');
  });

  it('refuses other schemes', () => {
    expect(targetError(() => parseTarget('ftp://h:21', 'http')).message).toBe('target "ftp://h:21": scheme ftp: is not one of http, https, ws, wss, tcp');
  });

  it('refuses tcp:// without --tcp', () => {
    expect(targetError(() => parseTarget('tcp://h:5432', 'http')).message).toBe('target "tcp://h:5432": tcp:// targets need --tcp');
  });

  it('refuses text that is not a URL', () => {
    expect(targetError(() => parseTarget('http://', 'http')).message).toContain('is not a URL');
    expect(targetError(() => parseTarget('h:99999', 'http')).message).toContain('is not a URL');
  });
});

describe('parseTarget (unix socket)', () => {
  it('takes unix:/path as an app on a unix socket, in both modes', () => {
    expect(parseTarget('unix:/run/app/app.sock', 'http')).toStrictEqual({
      href: 'unix:/run/app/app.sock',
      protocol: 'http:',
      host: 'localhost',
      port: 80,
      tls: false,
      httpBase: 'http://localhost:80',
      socketPath: '/run/app/app.sock',
    });
    expect(parseTarget('unix:/run/app/app.sock', 'tcp')).toMatchObject({ href: 'unix:/run/app/app.sock', protocol: 'tcp:', socketPath: '/run/app/app.sock' });
  });

  it("allows nginx's trailing colon and resolves a relative path from the working directory", () => {
    expect(parseTarget('unix:/run/app.sock:', 'http').socketPath).toBe('/run/app.sock');
    expect(parseTarget('unix:app.sock', 'http')).toMatchObject({ href: `unix:${process.cwd()}/app.sock`, socketPath: `${process.cwd()}/app.sock` });
  });

  it('refuses an empty path', () => {
    expect(targetError(() => parseTarget('unix:', 'http')).message).toBe('target "unix:": a socket path is required (e.g. unix:/run/app.sock)');
  });
});

describe('parseTarget (tcp mode)', () => {
  it('takes host:port as tcp', () => {
    expect(parseTarget('127.0.0.1:5432', 'tcp')).toStrictEqual({
      href: 'tcp://127.0.0.1:5432',
      protocol: 'tcp:',
      host: '127.0.0.1',
      port: 5432,
      tls: false,
      httpBase: 'http://127.0.0.1:5432',
    });
  });

  it('takes tcp://host:port', () => {
    expect(parseTarget('tcp://db.internal:5432', 'tcp')).toMatchObject({ href: 'tcp://db.internal:5432', protocol: 'tcp:', host: 'db.internal', port: 5432, tls: false });
    expect(parseTarget('tcp://[::1]:5432', 'tcp')).toMatchObject({ href: 'tcp://[::1]:5432', host: '::1', port: 5432 });
  });

  it('requires a port', () => {
    expect(targetError(() => parseTarget('db.internal', 'tcp')).message).toBe('target "db.internal": a port is required');
    expect(targetError(() => parseTarget('tcp://db.internal', 'tcp')).message).toContain('a port is required');
  });

  it('refuses ws:// and wss:// with --tcp', () => {
    expect(targetError(() => parseTarget('ws://h:80', 'tcp')).message).toBe('target "ws://h:80": --tcp takes host:port or tcp://host:port');
    expect(targetError(() => parseTarget('wss://h:443', 'tcp')).message).toContain('--tcp takes host:port');
  });

  it('refuses a path on a tcp target', () => {
    expect(targetError(() => parseTarget('tcp://h:5432/db', 'tcp')).message).toContain('a path or query is not supported');
  });
});

describe('parseTarget port 0', () => {
  it('is refused: there is nothing to connect to', () => {
    expect(() => parseTarget('ws://127.0.0.1:0', 'http')).toThrow(/a port is required/);
  });
});
