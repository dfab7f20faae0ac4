import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';

/**
 * The client certificate of a request (SPEC §8), from the one place it can come from:
 * - Gatehouse serves TLS itself (TLS_CERT_FILE): the connection's certificate. Node checks the
 *   chain against TLS_CLIENT_CA_FILE during the handshake (`requestCert`, not rejecting).
 * - Behind a TLS-terminating proxy (TRUST_PROXY and CLIENT_CERT_HEADER): the header the proxy
 *   sets, in the form of that proxy: nginx's `$ssl_client_escaped_cert` (URL-encoded PEM), Envoy's
 *   `x-forwarded-client-cert` (its `Cert="…"` element), or RFC 9440 `Client-Cert` (`:base64 DER:`).
 *   The chain is checked here against TLS_CLIENT_CA_FILE, whatever the proxy verified.
 * The proxy must overwrite the header (the shipped configurations do), or a client could name a
 * certificate it does not hold; config refuses CLIENT_CERT_HEADER without TRUST_PROXY.
 */
export interface ClientCertificate {
  readonly certificate: X509Certificate;
  /** The certificate chains to a CA of TLS_CLIENT_CA_FILE and is within its validity period. */
  readonly chainVerified: boolean;
}

export type ClientCertificateSource = (req: IncomingMessage) => ClientCertificate | undefined;

const MAX_HEADER_LENGTH = 16_384;

/** The PEM certificates of a CA bundle. */
export function parseCertificates(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((block) => new X509Certificate(block));
}

function fromDer(base64: string): X509Certificate | undefined {
  try {
    return new X509Certificate(Buffer.from(base64, 'base64'));
  } catch {
    return undefined;
  }
}

/**
 * Exactly one certificate. Two are what a proxy that appends instead of replacing hands on (Node
 * joins repeated header lines as `client's, proxy's`): the first would be the client's own claim.
 */
function fromPem(pem: string): X509Certificate | undefined {
  try {
    const certificates = parseCertificates(pem);
    return certificates.length === 1 ? certificates[0] : undefined;
  } catch {
    return undefined;
  }
}

function decodeUri(value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/** `value` split at each `separator` that is not inside a double-quoted string (with `\\` escapes). */
function splitOutsideQuotes(value: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i += 1) {
    const char = value[i];
    if (quoted && char === '\\') i += 1;
    else if (char === '"') quoted = !quoted;
    else if (!quoted && char === separator) {
      parts.push(value.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(value.slice(start));
  return parts;
}

/** A header value as the named proxy convention writes it; undefined when malformed. */
export function certificateFromHeader(header: string, value: string): X509Certificate | undefined {
  if (value.length === 0 || value.length > MAX_HEADER_LENGTH) return undefined;
  if (header === 'client-cert') {
    // RFC 9440 §2.2: a Structured Field Byte Sequence, `:base64(DER):`.
    const match = /^:([A-Za-z0-9+/]+={0,2}):$/.exec(value.trim());
    return match === null ? undefined : fromDer(match[1]!);
  }
  if (header === 'x-forwarded-client-cert') {
    // Envoy: `By=…;Hash=…;Cert="<URL-encoded PEM>";Subject="…"`. Several comma-separated elements
    // mean some proxy appended instead of replacing (forward_client_cert_details APPEND_FORWARD),
    // so one of them may be the client's own invention: none is trusted (SANITIZE_SET gives one).
    const elements = splitOutsideQuotes(value, ',');
    if (elements.length !== 1) return undefined;
    const match = /(?:^|;)\s*Cert="([^"]+)"/i.exec(elements[0] ?? '');
    const pem = match === null ? undefined : decodeUri(match[1]!);
    return pem === undefined ? undefined : fromPem(pem);
  }
  // nginx `$ssl_client_escaped_cert` (and the like): URL-encoded PEM.
  const pem = decodeUri(value);
  return pem === undefined ? undefined : fromPem(pem);
}

/** One issuing step to a CA of the bundle, inside both validity periods. */
export function chainsTo(certificate: X509Certificate, cas: readonly X509Certificate[], now = new Date()): boolean {
  const within = (cert: X509Certificate) => new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
  if (!within(certificate)) return false;
  return cas.some((ca) => ca.ca && within(ca) && certificate.checkIssued(ca) && certificate.verify(ca.publicKey));
}

export function createClientCertificateSource(options: { readonly header: string | undefined; readonly cas: () => readonly X509Certificate[] }): ClientCertificateSource {
  // A request asks several times (client authentication, token binding): parsed once.
  const seen = new WeakMap<IncomingMessage, ClientCertificate | null>();
  return (req) => {
    const cached = seen.get(req);
    if (cached !== undefined) return cached ?? undefined;
    let found: ClientCertificate | undefined;
    if (req.socket instanceof TLSSocket) {
      const certificate = req.socket.getPeerX509Certificate();
      // The handshake verified the chain against TLS_CLIENT_CA_FILE (`authorized`).
      if (certificate !== undefined) found = { certificate, chainVerified: req.socket.authorized };
    } else if (options.header !== undefined) {
      const value = req.headers[options.header];
      const certificate = typeof value === 'string' ? certificateFromHeader(options.header, value) : undefined;
      if (certificate !== undefined) found = { certificate, chainVerified: chainsTo(certificate, options.cas()) };
    }
    seen.set(req, found ?? null);
    return found;
  };
}
