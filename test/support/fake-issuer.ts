import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompactEncrypt, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTHeaderParameters } from 'jose';

/** A signing key the fake issuer may publish. */
export interface SigningKey {
  readonly alg: 'ES256' | 'EdDSA' | 'PS256' | 'RS256';
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

/** A resource server's key pair for the inner layer and whole-token encryption. */
export interface EncryptionKey {
  readonly alg: 'ECDH-ES+A256KW' | 'RSA-OAEP-256';
  readonly kid: string;
  readonly publicKey: CryptoKey;
  readonly privateKey: CryptoKey;
  /** The private key as a plain JWK object, the way a resource server keeps it in config. */
  readonly privateJwk: JWK;
}

export async function createSigningKey(alg: SigningKey['alg'], kid = `sig-${alg}-${randomUUID()}`): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export async function createEncryptionKey(
  alg: EncryptionKey['alg'] = 'ECDH-ES+A256KW',
  crv?: 'P-256' | 'X25519',
  kid = `enc-${randomUUID()}`,
): Promise<EncryptionKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(crv === undefined ? {} : { crv }) });
  return { alg, kid, publicKey, privateKey, privateJwk: { ...(await exportJWK(privateKey)), kid } };
}

/** Encrypts `plaintext` to a resource server key: compact JWE, `enc` A256GCM. */
export async function encryptTo(key: EncryptionKey, plaintext: string, header: Record<string, unknown> = {}): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({ alg: key.alg, enc: 'A256GCM', kid: key.kid, ...header })
    .encrypt(key.publicKey);
}

export type DiscoveryBehaviour = 'ok' | 'unavailable' | 'html' | 'other-issuer';

export interface MintOptions {
  /** Merged over the defaults; a claim set to `undefined` is left out. */
  readonly claims?: Record<string, unknown>;
  /** Merged over `{ alg, kid, typ: 'at+jwt' }`; a parameter set to `undefined` is left out. */
  readonly header?: Record<string, unknown>;
  /** Inner layer plaintext, encrypted to `innerTo` (SPEC §3); defaults carry the outer `jti`. */
  readonly inner?: Record<string, unknown>;
  readonly innerTo?: EncryptionKey;
}

/**
 * A stand-in for Gatehouse's discovery and JWKS endpoints on loopback, counting fetches,
 * so the verifier is tested against HTTP without the real server.
 */
export interface FakeIssuer {
  readonly issuer: string;
  readonly port: number;
  readonly counts: { discovery: number; jwks: number };
  /** The keys `/jwks` publishes; replace to rotate. */
  published: SigningKey[];
  discovery: DiscoveryBehaviour;
  jwksStatus: number;
  /** Extra bytes of padding in the JWKS document (a valid but oversized key set). */
  jwksPaddingBytes: number;
  /** A signed access token (RFC 9068) from `key`, for `audience`. */
  mint(key: SigningKey, audience: string, options?: MintOptions): Promise<string>;
  /** Stops listening: connections to the port are refused. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

function withoutUndefined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined));
}

export async function startFakeIssuer(published: SigningKey[]): Promise<FakeIssuer> {
  let port = 0;
  const state = {
    counts: { discovery: 0, jwks: 0 },
    published,
    discovery: 'ok' as DiscoveryBehaviour,
    jwksStatus: 200,
    jwksPaddingBytes: 0,
  };
  const issuerUrl = () => `http://127.0.0.1:${port}`;

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    if (req.url === '/.well-known/openid-configuration') {
      state.counts.discovery += 1;
      switch (state.discovery) {
        case 'unavailable':
          return send(503, '{"error":"temporarily_unavailable"}');
        case 'html':
          return send(200, '<html><body>proxy error</body></html>', 'text/html');
        case 'other-issuer':
          return send(200, JSON.stringify({ issuer: 'https://elsewhere.example', jwks_uri: `${issuerUrl()}/jwks` }));
        case 'ok':
          return send(200, JSON.stringify({ issuer: issuerUrl(), jwks_uri: `${issuerUrl()}/jwks` }));
      }
    }
    if (req.url === '/jwks') {
      state.counts.jwks += 1;
      if (state.jwksStatus !== 200) return send(state.jwksStatus, '{"error":"temporarily_unavailable"}');
      const padding = state.jwksPaddingBytes > 0 ? { padding: 'x'.repeat(state.jwksPaddingBytes) } : {};
      return send(200, JSON.stringify({ keys: state.published.map((key) => key.publicJwk), ...padding }), 'application/jwk-set+json');
    }
    return send(404, '{}');
  };

  const server = createServer(handle);
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  await listen();

  return {
    get issuer() {
      return issuerUrl();
    },
    get port() {
      return port;
    },
    counts: state.counts,
    get published() {
      return state.published;
    },
    set published(keys) {
      state.published = keys;
    },
    get discovery() {
      return state.discovery;
    },
    set discovery(behaviour) {
      state.discovery = behaviour;
    },
    get jwksStatus() {
      return state.jwksStatus;
    },
    set jwksStatus(status) {
      state.jwksStatus = status;
    },
    get jwksPaddingBytes() {
      return state.jwksPaddingBytes;
    },
    set jwksPaddingBytes(bytes) {
      state.jwksPaddingBytes = bytes;
    },
    async mint(key, audience, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      const jti = typeof options.claims?.['jti'] === 'string' ? options.claims['jti'] : randomUUID();
      const claims: Record<string, unknown> = {
        iss: issuerUrl(),
        sub: 'user-7f3a',
        aud: audience,
        iat: now,
        exp: now + 300,
        jti,
        client_id: 'orders-web',
        scope: 'orders:read',
        ...options.claims,
      };
      if (options.innerTo !== undefined) {
        const inner = { jti, client_id: 'orders-web', client_name: 'Orders web', ...options.inner };
        claims['inner'] = await encryptTo(options.innerTo, JSON.stringify(inner));
      }
      const header = withoutUndefined({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...options.header }) as JWTHeaderParameters;
      return new SignJWT(withoutUndefined(claims)).setProtectedHeader(header).sign(key.privateKey);
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
    start: listen,
  };
}
