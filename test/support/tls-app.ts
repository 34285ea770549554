import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { makeSelfSignedCertificate } from './tls-certs.js';

export interface Certificate {
  key: Buffer;
  cert: Buffer;
  /** The certificate as a PEM file (for NODE_EXTRA_CA_CERTS). */
  certPath: string;
  remove(): void;
}

/** makeSelfSignedCertificate's certificate (for 127.0.0.1 and wstap.test) in a new temp dir, read into memory. */
export function selfSignedCertificate(): Certificate {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-tls-'));
  const { keyPath, certPath } = makeSelfSignedCertificate(dir);
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
