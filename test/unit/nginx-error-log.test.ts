import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseErrorLogLine, describeZone, type LogTimeZone } from '../../src/nginx/error-log-line.js';
import { errorLogEvent, errorLogText, ErrorLogLineSplitter, MAX_PARTIAL } from '../../src/nginx/error-log-lines.js';
import { readErrorLogFiles, type ErrorLogReadNote } from '../../src/nginx/error-log-file.js';
import type { NginxLogEvent } from '../../src/capture/events.js';

/** Lines in the formats nginx's source writes (ngx_log_error_core + ngx_http_log_error + ngx_http_log_error_handler). */
const UPGRADED_TIMEOUT =
  '2026/12/02 06:44:31 [info] 4711#4711: *12 upstream timed out (110: Connection timed out) while proxying upgraded connection, client: 127.0.0.1, server: , request: "GET /idle?x=1 HTTP/1.1", upstream: "http://127.0.0.1:9502/idle?x=1", host: "127.0.0.1:8080"';
const CONNECT_FAILED =
  '2026/12/02 06:45:00 [error] 4711#4711: *3 connect() failed (111: Connection refused) while connecting to upstream, client: 10.0.0.7, server: chat.example.com, request: "GET /ws HTTP/1.1", upstream: "http://127.0.0.1:8066/ws", host: "chat.example.com"';
const WAITING = '2026/12/02 06:45:01 [info] 4711#4711: *1 client closed connection while waiting for request, client: 127.0.0.1, server: 127.0.0.1:8080';
const NO_CONNECTION = '2026/12/02 06:40:00 [notice] 4710#4710: signal process started';
const UNIX_UPSTREAM =
  '2026/12/02 06:45:02 [error] 4711#4711: *9 upstream prematurely closed connection while reading response header from upstream, client: 127.0.0.1, server: , request: "GET /ws HTTP/1.1", upstream: "http://unix:/tmp/x/wstap.sock:/ws", host: "localhost"';
const TOO_LARGE =
  '2026/12/02 06:45:03 [error] 4711#4711: *5 client intended to send too large body: 2000000 bytes, client: 127.0.0.1, server: _, request: "POST /upload HTTP/1.1", host: "h", referrer: "http://h/page"';

const UTC: LogTimeZone = { kind: 'offset', minutes: 0 };

describe('parseErrorLogLine', () => {
  it("reads nginx's timeout while proxying an upgraded connection: time, level, pid#tid, *connection, errno, action and every tail", () => {
    const line = parseErrorLogLine(UPGRADED_TIMEOUT, UTC);
    expect(line).toEqual({
      time: '2026/12/02 06:44:31',
      at: Date.UTC(2026, 11, 2, 6, 44, 31),
      level: 'info',
      pid: 4711,
      tid: 4711,
      connection: 12,
      message: 'upstream timed out',
      errno: { code: 110, text: 'Connection timed out' },
      action: 'proxying upgraded connection',
      fields: { client: '127.0.0.1', server: '', request: 'GET /idle?x=1 HTTP/1.1', upstream: 'http://127.0.0.1:9502/idle?x=1', host: '127.0.0.1:8080' },
    });
  });

  it('reads lines with and without *connection, client:, request:, upstream: and a referrer', () => {
    expect(parseErrorLogLine(CONNECT_FAILED, UTC)).toMatchObject({ level: 'error', connection: 3, message: 'connect() failed', action: 'connecting to upstream', fields: { client: '10.0.0.7', upstream: 'http://127.0.0.1:8066/ws' } });
    expect(parseErrorLogLine(WAITING, UTC)).toMatchObject({ connection: 1, message: 'client closed connection', action: 'waiting for request', fields: { client: '127.0.0.1', server: '127.0.0.1:8080' } });
    const plain = parseErrorLogLine(NO_CONNECTION, UTC);
    expect(plain).toMatchObject({ level: 'notice', pid: 4710, message: 'signal process started', fields: {} });
    expect(plain).not.toHaveProperty('connection');
    expect(plain).not.toHaveProperty('action');
    expect(parseErrorLogLine(UNIX_UPSTREAM, UTC)?.fields['upstream']).toBe('http://unix:/tmp/x/wstap.sock:/ws');
    expect(parseErrorLogLine(TOO_LARGE, UTC)).toMatchObject({ message: 'client intended to send too large body: 2000000 bytes', fields: { request: 'POST /upload HTTP/1.1', referrer: 'http://h/page' } });
    expect(parseErrorLogLine('2026/12/02 06:40:00 [alert] 4711#4711: 1024 worker_connections are not enough', UTC)).toMatchObject({ level: 'alert', message: '1024 worker_connections are not enough' });
  });

  it('a quoted value holding ", host: " stays whole; a line cut at its end keeps what it has', () => {
    const tricky = '2026/12/02 06:45:04 [error] 1#1: *7 upstream sent too big header while reading response header from upstream, client: 127.0.0.1, server: , request: "GET /a?q=, host: evil HTTP/1.1", upstream: "http://127.0.0.1:1/a", host: "h"';
    expect(parseErrorLogLine(tricky, UTC)?.fields).toEqual({ client: '127.0.0.1', server: '', request: 'GET /a?q=, host: evil HTTP/1.1', upstream: 'http://127.0.0.1:1/a', host: 'h' });
    const cut = parseErrorLogLine(UPGRADED_TIMEOUT.slice(0, UPGRADED_TIMEOUT.indexOf('upstream: "') + 20), UTC);
    expect(cut?.fields['upstream']).toBe('http://12');
    expect(cut?.fields['request']).toBe('GET /idle?x=1 HTTP/1.1');
  });

  it('garbage, other tools\' lines and impossible dates are null, never a throw', () => {
    for (const text of ['', 'hello', 'nginx: [emerg] unknown directive "x"', '2026/12/02 06:45:0 [info] 1#1: x', '2026/13/02 06:45:00 [info] 1#1: x', '2026/12/02 06:45:00 [loud] 1#1: x', '\u0000\u001b[2J']) {
      expect(parseErrorLogLine(text, UTC)).toBeNull();
    }
  });

  it('the time zone is explicit: a fixed offset east of UTC, or the local zone of the reader', () => {
    expect(parseErrorLogLine(NO_CONNECTION, { kind: 'offset', minutes: 60 })?.at).toBe(Date.UTC(2026, 11, 2, 5, 40, 0));
    expect(parseErrorLogLine(NO_CONNECTION)?.at).toBe(new Date(2026, 11, 2, 6, 40, 0).getTime());
    expect(describeZone({ kind: 'offset', minutes: -330 })).toBe('UTC-05:30');
    expect(describeZone({ kind: 'local' })).toMatch(/^local time \(.+\)$/);
  });

  it('the event rebuilds the line as nginx wrote it (for evidence)', () => {
    for (const text of [UPGRADED_TIMEOUT, CONNECT_FAILED, WAITING, NO_CONNECTION, UNIX_UPSTREAM, TOO_LARGE]) {
      const line = parseErrorLogLine(text, UTC);
      expect(line).not.toBeNull();
      expect(errorLogText(errorLogEvent(line!, 'error.log', 0))).toBe(text);
    }
  });
});

describe('ErrorLogLineSplitter', () => {
  it('holds a partial last line until its newline arrives; CRLF and empty lines are tolerated', () => {
    const s = new ErrorLogLineSplitter();
    expect(s.push(`${WAITING}\n${NO_CONNECTION.slice(0, 10)}`)).toEqual([WAITING]);
    expect(s.partial).toBe(NO_CONNECTION.slice(0, 10));
    expect(s.push(`${NO_CONNECTION.slice(10)}\r\n\n`)).toEqual([NO_CONNECTION]);
    expect(s.takePartial()).toBe('');
  });

  it('an endless run without a newline is dropped, counted, and memory stays bounded', () => {
    const s = new ErrorLogLineSplitter();
    s.push('x'.repeat(MAX_PARTIAL + 1));
    expect(s.partial).toBe('');
    expect(s.dropped).toBe(1);
    expect(s.push(`\n${WAITING}\n`)).toEqual([WAITING]);
  });
});

describe('readErrorLogFiles', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-nginx-log-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads a rotated log oldest file first, skips garbage (counted), and parses a last line without its newline', async () => {
    const older = path.join(dir, 'error.log.1');
    const newer = path.join(dir, 'error.log');
    fs.writeFileSync(older, `${NO_CONNECTION}\nnot a line\n${UPGRADED_TIMEOUT}\n`);
    fs.writeFileSync(newer, `${CONNECT_FAILED}\n${WAITING}`);
    const notes: ErrorLogReadNote[] = [];
    const events: NginxLogEvent[] = [];
    for await (const e of readErrorLogFiles([older, newer], UTC, (n) => notes.push(n))) events.push(e);
    expect(events.map((e) => [e.file, e.message])).toEqual([
      [older, 'signal process started'],
      [older, 'upstream timed out'],
      [newer, 'connect() failed'],
      [newer, 'client closed connection'],
    ]);
    // t: the end of the logged second, so a merge by time puts the line after everything of that second.
    expect(events[1]?.t).toBe(Date.UTC(2026, 11, 2, 6, 44, 31) + 999);
    expect(notes).toEqual([
      { file: older, message: "1 line(s) not in nginx's error-log format skipped" },
      { file: newer, message: 'the last line has no newline (cut short, or being written); read as it is' },
    ]);
  });
});
