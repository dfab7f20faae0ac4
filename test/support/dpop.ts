import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

/** A client's DPoP key pair (RFC 9449 §4), made with jose. */
export interface DpopKey {
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  readonly alg: string;
  /** RFC 7638 thumbprint of the public key: what a bound token's `cnf.jkt` must be. */
  readonly thumbprint: string;
}

export async function dpopKey(alg = 'ES256'): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk, alg, thumbprint: await calculateJwkThumbprint(publicJwk) };
}

/** RFC 9449 §4.2 `ath`: the access token's SHA-256, base64url. */
export const accessTokenHash = (token: string) => createHash('sha256').update(token).digest('base64url');

export interface ProofClaims {
  readonly nonce?: string;
  /** The access token the proof goes with (sets `ath`). */
  readonly accessToken?: string;
  readonly iat?: number;
  readonly jti?: string;
  readonly typ?: string;
  readonly extra?: Record<string, unknown>;
}

/** A DPoP proof JWT (RFC 9449 §4.2) for `method` `url`, signed with `key`; each call a fresh `jti`. */
export function dpopProof(key: DpopKey, method: string, url: string, claims: ProofClaims = {}): Promise<string> {
  return new SignJWT({
    htm: method,
    htu: url,
    jti: claims.jti ?? randomUUID(),
    ...(claims.nonce === undefined ? {} : { nonce: claims.nonce }),
    ...(claims.accessToken === undefined ? {} : { ath: accessTokenHash(claims.accessToken) }),
    ...claims.extra,
  })
    .setProtectedHeader({ alg: key.alg, typ: claims.typ ?? 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt(claims.iat ?? Math.floor(Date.now() / 1000))
    .sign(key.privateKey);
}

/**
 * A DPoP-bound client-credentials token from Gatehouse's token endpoint (HTTP Basic), answering
 * the nonce challenge as RFC 9449 §8 says: the first proof has no nonce, the retry the one given.
 */
export async function dpopClientCredentials(
  server: { readonly url: string; readonly issuer: string },
  client: { readonly client_id: string; readonly client_secret?: string | undefined },
  key: DpopKey,
  params: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const request = async (nonce: string | undefined) => {
    const response = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret ?? '')}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
        dpop: await dpopProof(key, 'POST', `${server.issuer}/token`, nonce === undefined ? {} : { nonce }),
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown>, nonce: response.headers.get('dpop-nonce') };
  };
  const first = await request(undefined);
  if (first.status !== 400 || first.body['error'] !== 'use_dpop_nonce' || first.nonce === null) return first;
  return request(first.nonce);
}
