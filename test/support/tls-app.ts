import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';

export interface Certificate {
  key: Buffer;
  cert: Buffer;
  /** The certificate as a PEM file (for NODE_EXTRA_CA_CERTS). */
  certPath: string;
  remove(): void;
}

/** A self-signed certificate for 127.0.0.1 (CN and IP SAN), made by openssl in a new temp dir, valid one day. */
export function selfSignedCertificate(): Certificate {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-tls-'));
  const keyPath = path.join(dir, 'key.pem');
  const certPath = path.join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', keyPath, '-out', certPath,
  ], { stdio: 'ignore' });
  return {
    key: fs.readFileSync(keyPath),
    cert: fs.readFileSync(certPath),
    certPath,
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TlsEchoApp {
  port: number;
  close(): Promise<void>;
}

/** A wss:// (and https://) app: `ws` over Node's https server, echoing every message; plain requests get 200 "tls app". */
export async function startTlsEchoApp(certificate: Certificate): Promise<TlsEchoApp> {
  const server = https.createServer({ key: certificate.key, cert: certificate.cert }, (_req, res) => res.end('tls app'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
