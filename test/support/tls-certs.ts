import { execFileSync } from 'node:child_process';
import path from 'node:path';

export interface TestCertificate {
  certPath: string;
  keyPath: string;
  /** The names the certificate is valid for (its subjectAltName). */
  names: string[];
}

/**
 * A self-signed certificate and key made by openssl for one test run, valid
 * for 127.0.0.1 and `dnsName`: a peer can trust it by itself (nginx's
 * proxy_ssl_trusted_certificate, Node's `ca`) and check the name.
 */
export function makeSelfSignedCertificate(dir: string, dnsName = 'wstap.test'): TestCertificate {
  const certPath = path.join(dir, 'cert.pem');
  const keyPath = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', `subjectAltName=IP:127.0.0.1,DNS:${dnsName}`,
    '-keyout', keyPath, '-out', certPath,
  ], { stdio: 'ignore' });
  return { certPath, keyPath, names: ['127.0.0.1', dnsName] };
}
