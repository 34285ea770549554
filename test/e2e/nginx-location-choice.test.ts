import fs from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSystemSource } from '../../src/nginx/config-files.js';
import { loadConfig } from '../../src/nginx/config-load.js';
import { buildHttpModel, type ServerModel } from '../../src/nginx/location-model.js';
import { normalizeUri, selectLocation } from '../../src/nginx/location-select.js';
import { HTTP_PREAMBLE, mainPreamble, writeNginxFixture, type NginxFixture } from '../support/nginx-fixture.js';
import { runNginx, type Nginx } from '../support/nginx.js';
import { freePort } from '../support/ports.js';

/**
 * Our location choice against real nginx's: every location answers its own
 * marker (`return 200 "name"`), the locations proxying to a closed port
 * answer 502, and a URI one `/` short of a proxying location is answered
 * 301 (auto_redirect). Each URI is requested from nginx and chosen by
 * selectLocation; the two must agree.
 */

let fixture: NginxFixture;
let nginx: Nginx;
let server: ServerModel;

const LOCATIONS = `
    location / { return 200 "root"; }
    location = / { return 200 "exact-root"; }
    location /api/ {
        return 200 "api";
        location /api/v4/ { return 200 "api-v4"; }
        location ~ \\.json$ { return 200 "api-json"; }
    }
    location ^~ /static/ { return 200 "static-noregex"; }
    location ~* \\.(png|jpg)$ { return 200 "images"; }
    location ~ ^/api/v4/websocket { return 200 "ws-regex"; }
    location = /api/v4/websocket/exact { return 200 "ws-exact"; }
    location /chat/ { proxy_pass http://127.0.0.1:9; }
    location /a { return 200 "a"; }
    location /ab { return 200 "ab"; }
    location ~ /ab/c { return 200 "regex-abc"; }
    location ^~ /ab/n/ {
        return 200 "abn-noregex";
        location ~ \\.png$ { return 200 "abn-png"; }
    }
    location /ws {
        return 200 "ws-prefix";
        location ~ ^/ws/(?<room>\\w+)$ { return 200 "ws-room"; }
    }
    location ~ "^/socket\\.io/" { return 200 "socketio"; }
`;

const URIS = [
  '/',
  '/x',
  '/api',
  '/api/',
  '/api/v4/x',
  '/api/v4/x.json',
  '/api/v4/websocket',
  '/api/v4/websocket/exact',
  '/api/v4/websocket/exact/more',
  '/static/a.png',
  '/img/a.PNG',
  '/chat',
  '/chat/x',
  '/a',
  '/ab',
  '/abc',
  '/ab/c',
  '/ab/n/x.png',
  '/ab/n/x.txt',
  '/ws',
  '/ws/lobby',
  '/ws/lobby/x',
  '/socket.io/?EIO=4',
  '/st%61tic/a.png',
  '//api//v4/x',
  '/api/v4/../v5/x.json',
];

beforeAll(async () => {
  const port = await freePort();
  fixture = writeNginxFixture({
    'nginx.conf': `${mainPreamble()}error_log error.log info;\nhttp {\n    ${HTTP_PREAMBLE}\n    server {\n        listen 127.0.0.1:${port};\n${LOCATIONS}\n    }\n}\n`,
  });
  nginx = await runNginx(fixture.dir, fixture.conf, port);
  const model = buildHttpModel(loadConfig(fixture.conf, fileSystemSource()));
  server = model.servers[0] as ServerModel;
});

afterAll(async () => {
  await nginx?.stop();
  fs.rmSync(fixture.dir, { recursive: true, force: true });
});

function request(uri: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: nginx.port, path: uri, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

/** What our choice predicts nginx answers: the marker, 502 for the proxying location, 301 for a redirect. */
function predicted(uri: string): string {
  const choice = selectLocation(server, normalizeUri(uri));
  if (choice.redirect) return '301';
  const marker = choice.location?.level.directives.find((d) => d.name === 'return')?.args[1]?.value;
  if (marker !== undefined) return marker;
  return choice.location?.level.directives.some((d) => d.name === 'proxy_pass') ? '502' : '404';
}

describe('location choice against the real nginx', () => {
  it('agrees with nginx on every URI', async () => {
    const ours: Record<string, string> = {};
    const theirs: Record<string, string> = {};
    for (const uri of URIS) {
      const answer = await request(uri);
      theirs[uri] = answer.status === 200 ? answer.body : String(answer.status);
      ours[uri] = predicted(uri);
    }
    expect(ours).toEqual(theirs);
    // The fixture exercises each rule: make sure nginx's answers are the interesting ones.
    expect(theirs).toMatchObject({
      '/': 'exact-root',
      '/api/v4/x.json': 'api-json',
      '/api/v4/websocket/exact': 'ws-exact',
      '/static/a.png': 'static-noregex',
      '/img/a.PNG': 'images',
      '/chat': '301',
      '/ab/n/x.png': 'abn-png',
      '/ws/lobby': 'ws-room',
      '/st%61tic/a.png': 'static-noregex',
    });
  });

  it('says which rule decided', () => {
    expect(selectLocation(server, '/api/v4/websocket').rule).toBe('the first matching regex location (~ ^/api/v4/websocket)');
    expect(selectLocation(server, '/static/a.png').rule).toBe('longest prefix, ^~ so no regex is tried (^~ /static/)');
    expect(selectLocation(server, '/').rule).toBe('exact match (= /)');
    expect(selectLocation(server, '/chat').rule).toContain('301 to /chat/');
  });
});
