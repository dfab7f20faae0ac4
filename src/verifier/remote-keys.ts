import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { VerifierError } from './errors.js';

// The issuer's keys as the verifier fetches them: discovery, then the JWKS, with a timeout,
// single-flight fetches, a doubling backoff after failures and a cooldown on unknown-kid refetches.

/** Discovery documents and key sets are a few KiB; anything near this is not one. */
const MAX_BODY_BYTES = 256 * 1024;

/** The body as text, refused (and the download stopped) once it passes MAX_BODY_BYTES. */
async function readLimited(response: Response, what: string): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > MAX_BODY_BYTES) {
    await response.body?.cancel();
    throw new VerifierError('jwks_unavailable', `${what} is larger than ${MAX_BODY_BYTES} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += (chunk as Uint8Array).byteLength;
    if (size > MAX_BODY_BYTES) throw new VerifierError('jwks_unavailable', `${what} is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function discoverJwksUri(issuer: string): Promise<string> {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (!response.ok) throw new VerifierError('jwks_unavailable', `discovery answered ${response.status}`);
  const metadata = JSON.parse(await readLimited(response, 'discovery')) as { issuer?: unknown; jwks_uri?: unknown };
  if (metadata.issuer !== issuer) throw new VerifierError('jwks_unavailable', 'discovery names another issuer');
  if (typeof metadata.jwks_uri !== 'string') throw new VerifierError('jwks_unavailable', 'discovery has no jwks_uri');
  return metadata.jwks_uri;
}

async function fetchJwks(uri: string): Promise<JWTVerifyGetKey> {
  const response = await fetch(uri, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: 'application/jwk-set+json, application/json' } });
  if (!response.ok) throw new VerifierError('jwks_unavailable', `the JWKS endpoint answered ${response.status}`);
  // createLocalJWKSet refuses anything that is not a key set (JWKSInvalid).
  return createLocalJWKSet(JSON.parse(await readLimited(response, 'the JWKS')) as JSONWebKeySet);
}

const FETCH_TIMEOUT_MS = 5_000;
/** An unknown kid makes the verifier refetch the JWKS (a rotation), at most once per this. */
const REFETCH_COOLDOWN_MS = 5_000;
/** A fetched JWKS is used at most this long before it is fetched again. */
const JWKS_MAX_AGE_MS = 10 * 60_000;

function unavailable(error: unknown): VerifierError {
  return error instanceof VerifierError ? error : new VerifierError('jwks_unavailable', 'the issuer keys could not be fetched', { cause: error });
}

/**
 * Keys fetched from the issuer. One fetch at a time (discovery, then the JWKS), shared by every
 * token waiting for it; after a failure no fetch until the backoff has passed, so a burst of tokens
 * while the issuer is down costs a handful of fetches, not one each (SPEC §3). Time is `Date.now()`.
 */
export function remoteKeyResolver(issuer: string, jwksUri: string | undefined, backoff: { initialMs: number; maxMs: number }): JWTVerifyGetKey {
  let uri = jwksUri;
  let keys: { resolve: JWTVerifyGetKey; fetchedAtMs: number } | undefined;
  let pending: Promise<void> | undefined;
  let lastAttemptMs = Number.NEGATIVE_INFINITY;
  let failure: { count: number; retryAtMs: number; error: VerifierError } | undefined;

  function refresh(): Promise<void> {
    if (pending !== undefined) return pending;
    if (failure !== undefined && Date.now() < failure.retryAtMs) {
      return Promise.reject(new VerifierError('jwks_unavailable', 'the issuer keys could not be fetched; retrying after a backoff', { cause: failure.error }));
    }
    lastAttemptMs = Date.now();
    pending = (async () => {
      uri ??= await discoverJwksUri(issuer);
      keys = { resolve: await fetchJwks(uri), fetchedAtMs: Date.now() };
    })()
      .then(
        () => {
          failure = undefined;
        },
        (error: unknown) => {
          const count = (failure?.count ?? 0) + 1;
          const waitMs = Math.min(backoff.initialMs * 2 ** (count - 1), backoff.maxMs);
          failure = { count, retryAtMs: Date.now() + waitMs, error: unavailable(error) };
          throw failure.error;
        },
      )
      .finally(() => {
        pending = undefined;
      });
    return pending;
  }

  return async (header, token) => {
    if (keys === undefined || Date.now() - keys.fetchedAtMs >= JWKS_MAX_AGE_MS) await refresh();
    try {
      return await keys!.resolve(header, token);
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      // An unknown kid may be a rotation: refetch, unless one ran within the cooldown. A refetch
      // already under way is waited for. Keys fetched before stay in use if the refetch fails.
      if (pending === undefined && Date.now() - lastAttemptMs < REFETCH_COOLDOWN_MS) throw error;
      await refresh();
      return await keys!.resolve(header, token);
    }
  };
}

