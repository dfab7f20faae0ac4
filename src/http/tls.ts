import type { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { SecureContextOptions } from 'node:tls';
import type { Config } from '../config.js';
import { createClientCertificateSource, parseCertificates, type ClientCertificateSource } from './client-certificate.js';

/**
 * SPEC §8 TLS material, read at start-up and again on SIGHUP (certificates renewed on disk are
 * picked up without a restart; connections already open keep theirs): the server's own
 * certificate and key (TLS_CERT_FILE, TLS_KEY_FILE) and the CAs client certificates must chain
 * to (TLS_CLIENT_CA_FILE). A reload that fails (a half-written file) keeps what was loaded.
 */
export interface TlsMaterial {
  /** Options for https.createServer / setSecureContext; undefined when Gatehouse serves plain HTTP. */
  serverOptions(): SecureContextOptions | undefined;
  /** Whether a client certificate is asked for in the handshake (a CA bundle is configured). */
  readonly requestsClientCertificates: boolean;
  /** The request's client certificate, from the connection or a trusted proxy's header. */
  readonly clientCertificate: ClientCertificateSource;
  /** Re-reads every file; rejects (keeping the old material) when one cannot be read or parsed. */
  reload(): Promise<void>;
}

export async function loadTlsMaterial(config: Pick<Config, 'tls' | 'tlsClientCaFile' | 'clientCertHeader'>): Promise<TlsMaterial> {
  let server: SecureContextOptions | undefined;
  let cas: readonly X509Certificate[] = [];

  async function read(): Promise<void> {
    const caPem = config.tlsClientCaFile === undefined ? undefined : await readFile(config.tlsClientCaFile, 'utf8');
    const nextCas = caPem === undefined ? [] : parseCertificates(caPem);
    if (caPem !== undefined && nextCas.length === 0) throw new Error(`TLS_CLIENT_CA_FILE (${config.tlsClientCaFile}) holds no PEM certificate`);
    let next: SecureContextOptions | undefined;
    if (config.tls !== undefined) {
      const [cert, key] = await Promise.all([readFile(config.tls.certFile), readFile(config.tls.keyFile)]);
      next = { cert, key, ...(caPem === undefined ? {} : { ca: caPem }) };
    }
    server = next;
    cas = nextCas;
  }
  await read();

  return {
    serverOptions: () => server,
    requestsClientCertificates: config.tlsClientCaFile !== undefined,
    clientCertificate: createClientCertificateSource({ header: config.clientCertHeader, cas: () => cas }),
    reload: read,
  };
}
