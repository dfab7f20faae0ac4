import type { JsonWebKey } from 'node:crypto';
import type { Queryable } from '../db/database.js';
import { createSigningKeyStore, type NewSigningKey, type SigningKeyRow } from '../db/signing-keys.js';
import type { Envelope } from '../crypto/envelope.js';
import { generateSigningKey, SIGNING_ALGS, type SigningAlg } from '../crypto/signing-keys.js';

const purpose = (kid: string) => `signing_keys:${kid}`;

/** The envelope purpose of a signing key's private half (also for re-sealing it). */
export const signingKeyPurpose = purpose;

async function sealedKey(envelope: Envelope, alg: SigningAlg): Promise<NewSigningKey> {
  const key = await generateSigningKey(alg);
  return { kid: key.kid, alg: key.alg, publicJwk: key.publicJwk, privateSealed: envelope.seal(JSON.stringify(key.privateJwk), purpose(key.kid)) };
}

/**
 * Fresh keys for `alg`: the ones made ahead (before the key-change lock, so generating an RSA key
 * does not hold it) first, then newly generated ones if a transaction needs more than expected.
 */
function keySupply(envelope: Envelope, ready: readonly NewSigningKey[]) {
  const pool = [...ready];
  return async (alg: SigningAlg): Promise<NewSigningKey> => {
    const index = pool.findIndex((key) => key.alg === alg);
    if (index >= 0) return pool.splice(index, 1)[0]!;
    return sealedKey(envelope, alg);
  };
}

/** Makes `alg` have an active key (the next one promoted, if any) and a next key. Holds the lock. */
async function fillGaps(tx: Queryable, take: (alg: SigningAlg) => Promise<NewSigningKey>, alg: SigningAlg): Promise<SigningKeyRow | undefined> {
  const store = createSigningKeyStore(tx);
  const present = new Set((await store.statusesByAlg()).filter((row) => row.alg === alg).map((row) => row.status));
  let activated: SigningKeyRow | undefined;
  if (!present.has('active')) {
    activated = (await store.promoteNext(alg)) ?? (await store.insert(await take(alg), 'active'));
    present.delete('next');
  }
  if (!present.has('next')) await store.insert(await take(alg), 'next');
  return activated;
}

/**
 * Makes sure every supported algorithm has an active key and a published next key (databases
 * from before next keys get theirs here). Runs in its own transaction under the key-change lock.
 */
export async function ensureSigningKeys(session: Queryable, envelope: Envelope): Promise<string[]> {
  const store = createSigningKeyStore(session);
  const present = new Set((await store.statusesByAlg()).map((row) => `${row.alg}:${row.status}`));
  const missing = SIGNING_ALGS.filter((alg) => !present.has(`${alg}:active`) || !present.has(`${alg}:next`));
  if (missing.length === 0) return [];
  const take = keySupply(envelope, []);
  const created: string[] = [];
  await session.exec('BEGIN');
  try {
    await store.lockChanges();
    const before = new Set((await store.statusesByAlg()).map((row) => `${row.alg}:${row.status}`));
    for (const alg of missing) {
      await fillGaps(session, take, alg);
      for (const status of ['active', 'next'] as const) if (!before.has(`${alg}:${status}`)) created.push(`${alg} ${status}`);
    }
    await session.exec('COMMIT');
  } catch (error) {
    await session.exec('ROLLBACK').catch(() => undefined);
    throw error;
  }
  return created;
}

/**
 * The provider's private JWKS. Active keys come first because oidc-provider signs with the
 * first key matching the algorithm; retired ones follow so their tokens still verify. Next keys
 * are left out: they are published (loadPublicJwks) but must not sign before a rotation.
 */
export async function loadSigningJwks(db: Queryable, envelope: Envelope): Promise<{ keys: JsonWebKey[] }> {
  const rows = await createSigningKeyStore(db).listSigning();
  return {
    keys: rows.map((row) => JSON.parse(envelope.open(row.private_jwk_sealed ?? '', purpose(row.kid)).toString('utf8')) as JsonWebKey),
  };
}

/** The JWKS as published: the provider's keys plus the next key of each algorithm. */
export async function loadPublicJwks(db: Queryable): Promise<{ keys: JsonWebKey[] }> {
  const rows = await createSigningKeyStore(db).listPublished();
  return { keys: rows.map((row) => row.public_jwk) };
}

/** Fresh keys made ahead of a rotation or revocation, one per algorithm given. */
export function prepareSigningKeys(envelope: Envelope, algs: readonly SigningAlg[]): Promise<NewSigningKey[]> {
  return Promise.all(algs.map((alg) => sealedKey(envelope, alg)));
}

/**
 * Key rotation (SPEC §5): per algorithm, the next key (published since the last rotation, so no
 * verifier meets an unknown `kid`) becomes active, a fresh next key is published, and the old
 * active key stays published for `publishForSeconds` (the longest a token it signed can live).
 * Call in a transaction: the key-change lock makes concurrent rotations run one after the other,
 * so there is never a second active key and never a missing next key.
 */
export async function rotateSigningKeys(
  tx: Queryable,
  envelope: Envelope,
  algs: readonly SigningAlg[],
  publishForSeconds: number,
  ready: readonly NewSigningKey[] = [],
): Promise<SigningKeyRow[]> {
  const store = createSigningKeyStore(tx);
  const take = keySupply(envelope, ready);
  await store.lockChanges();
  const activated: SigningKeyRow[] = [];
  for (const alg of algs) {
    await store.retireActive(alg, publishForSeconds);
    const row = await fillGaps(tx, take, alg);
    if (row !== undefined) activated.push(row);
  }
  return activated;
}

export type RevocationOutcome =
  | { readonly outcome: 'not_found' }
  | { readonly outcome: 'already_revoked'; readonly key: SigningKeyRow }
  | { readonly outcome: 'revoked'; readonly key: SigningKeyRow; readonly was: SigningKeyRow['status']; readonly activated: SigningKeyRow | undefined };

/**
 * Emergency revocation: the key leaves the JWKS and the provider at once. Revoking the active key
 * first promotes the next one (and publishes a fresh next), so tokens keep being issued; revoking
 * the next key publishes a fresh one. Call in a transaction.
 */
export async function revokeSigningKey(tx: Queryable, envelope: Envelope, kid: string, ready: readonly NewSigningKey[] = []): Promise<RevocationOutcome> {
  const store = createSigningKeyStore(tx);
  await store.lockChanges();
  const found = await store.findForUpdate(kid);
  if (found === undefined) return { outcome: 'not_found' };
  if (found.status === 'revoked') return { outcome: 'already_revoked', key: found };
  const key = await store.revoke(kid);
  const activated = await fillGaps(tx, keySupply(envelope, ready), found.alg as SigningAlg);
  return { outcome: 'revoked', key, was: found.status, activated };
}
