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
