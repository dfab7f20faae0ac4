import type { JsonWebKey } from 'node:crypto';
import type { Queryable } from '../db/database.js';
import { createSigningKeyStore, type SigningKeyRow } from '../db/signing-keys.js';
import type { Envelope } from '../crypto/envelope.js';
import { generateSigningKey, SIGNING_ALGS, type SigningAlg } from '../crypto/signing-keys.js';

const purpose = (kid: string) => `signing_keys:${kid}`;

/** Makes sure every supported algorithm has an active key. Call under the start-up lock. */
export async function ensureSigningKeys(db: Queryable, envelope: Envelope): Promise<string[]> {
  const store = createSigningKeyStore(db);
  const active = new Set(await store.activeAlgs());
  const created: string[] = [];
  for (const alg of SIGNING_ALGS) {
    if (active.has(alg)) continue;
    const key = await generateSigningKey(alg);
    await store.insertActive({
      kid: key.kid,
      alg: key.alg,
      publicJwk: key.publicJwk,
      privateSealed: envelope.seal(JSON.stringify(key.privateJwk), purpose(key.kid)),
    });
    created.push(`${alg} ${key.kid}`);
  }
  return created;
}

/**
 * The provider's private JWKS. Active keys come first because oidc-provider signs with the
 * first key matching the algorithm; retired ones follow so their tokens still verify.
 */
export async function loadSigningJwks(db: Queryable, envelope: Envelope): Promise<{ keys: JsonWebKey[] }> {
  const rows = await createSigningKeyStore(db).listPublished();
  return {
    keys: rows.map((row) => JSON.parse(envelope.open(row.private_jwk_sealed ?? '', purpose(row.kid)).toString('utf8')) as JsonWebKey),
  };
}

/** The public half of what loadSigningJwks returns, in the same order. */
export async function loadPublicJwks(db: Queryable): Promise<{ keys: JsonWebKey[] }> {
  const rows = await createSigningKeyStore(db).listPublished();
  return { keys: rows.map((row) => row.public_jwk) };
}

/**
 * Key rotation (SPEC §5): a new active key per algorithm; the old one stays published for
 * `publishForSeconds` (the longest a token it signed can live), then drops out of the JWKS.
 * Call in a transaction, so a concurrent rotation waits on the unique active-key index.
 */
export async function rotateSigningKeys(
  db: Queryable,
  envelope: Envelope,
  algs: readonly SigningAlg[],
  publishForSeconds: number,
): Promise<SigningKeyRow[]> {
  const store = createSigningKeyStore(db);
  const created: SigningKeyRow[] = [];
  for (const alg of algs) {
    const key = await generateSigningKey(alg);
    await store.retireActive(alg, publishForSeconds);
    created.push(
      await store.insertActive({
        kid: key.kid,
        alg: key.alg,
        publicJwk: key.publicJwk,
        privateSealed: envelope.seal(JSON.stringify(key.privateJwk), purpose(key.kid)),
      }),
    );
  }
  return created;
}
