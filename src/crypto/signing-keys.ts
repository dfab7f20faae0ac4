import { generateKeyPair, type JsonWebKey } from 'node:crypto';
import { randomIdentifier } from './random-id.js';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

/** Access-token signing algorithms a resource server may choose (SPEC §3). ES256 is the default. */
export const SIGNING_ALGS = ['ES256', 'EdDSA', 'PS256', 'RS256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];
export const DEFAULT_SIGNING_ALG: SigningAlg = 'ES256';

export interface GeneratedKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly privateJwk: JsonWebKey;
  readonly publicJwk: JsonWebKey;
}

async function generatePair(alg: SigningAlg) {
  switch (alg) {
    case 'ES256':
      return generateKeyPairAsync('ec', { namedCurve: 'P-256' });
    case 'EdDSA':
      return generateKeyPairAsync('ed25519');
    case 'PS256':
    case 'RS256':
      // 3072-bit per NIST SP 800-57 for keys used beyond 2030.
      return generateKeyPairAsync('rsa', { modulusLength: 3072 });
  }
}

export async function generateSigningKey(alg: SigningAlg): Promise<GeneratedKey> {
  const { privateKey, publicKey } = await generatePair(alg);
  const kid = randomIdentifier(12);
  const extra = { kid, alg, use: 'sig' };
  return {
    kid,
    alg,
    privateJwk: { ...privateKey.export({ format: 'jwk' }), ...extra },
    publicJwk: { ...publicKey.export({ format: 'jwk' }), ...extra },
  };
}
