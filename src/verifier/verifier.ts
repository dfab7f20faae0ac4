import { createPrivateKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import {
  compactDecrypt,
  base64url,
  createLocalJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type CompactJWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { BoundedCache } from './lru.js';
import { remoteKeyResolver } from './remote-keys.js';
import { VerifierError } from './errors.js';
import { createSenderBindingChecker, type DpopOptions, type PresentedBinding } from './sender-binding.js';

/** Signature algorithms Gatehouse signs with. `none` and every HMAC algorithm are refused. */
const SIGNING_ALGS = ['ES256', 'EdDSA', 'Ed25519', 'PS256', 'RS256'];
const KEY_MANAGEMENT_ALGS = ['ECDH-ES+A256KW', 'RSA-OAEP-256'];
const CONTENT_ENCRYPTION_ALGS = ['A256GCM'];

export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope?: string;
  auth_time?: number;
  acr?: string;
  /** The encrypted inner layer (compact JWE), when the resource server has an inner key. */
  inner?: string;
  /** RFC 8693 §4.1, SPEC §9: on an exchanged token, the client that acted (earlier ones nested). */
  act?: Actor;
  /** RFC 9449 §6 / RFC 8705 §3: the key (`jkt`) or certificate (`x5t#S256`) the token is bound to. */
  cnf?: { jkt?: string; 'x5t#S256'?: string };
}

/** Who acted on the subject's behalf: a client_id, and whoever acted before it. */
export interface Actor {
  readonly sub: string;
  readonly act?: Actor;
}

/** The decrypted inner layer (SPEC §3). Person fields are present for tokens issued to a person. */
export interface InnerClaims {
  jti: string;
  client_id: string;
  client_name?: string;
  sub?: string;
  preferred_username?: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  roles?: string[];
  amr?: string[];
  sid?: string;
  [claim: string]: unknown;
}

/** Frozen (deeply): the same result may be handed out again for the same token (`cacheMaxAgeSeconds`). */
export interface VerifiedToken {
  readonly claims: AccessTokenClaims;
  /** Undefined when no `innerKey` was given or the token has no inner layer. */
  readonly inner: InnerClaims | undefined;
}

export interface VerifierOptions {
  /** The issuer identifier; discovery and the JWKS are found from it. */
  readonly issuer: string;
  /** The resource server identifier the token must be for. */
  readonly audience: string;
  /** Private JWK object or KeyObject for the inner layer and whole-token encryption. */
  readonly innerKey?: JsonWebKey | KeyObject;
  /** Seconds of clock skew tolerated for `exp`, `nbf` and `iat`. Default 5. */
  readonly clockTolerance?: number;
  /** Skip discovery and use this JWKS URL. */
  readonly jwksUri?: string;
  /** Keys held in-process instead of fetched (Gatehouse's own admin API uses this). */
  readonly jwks?: () => JSONWebKeySet;
  /** Decrypted inner layers remembered per `jti` (bounded LRU; a token is checked for `exp` before its cache entry is used). Default 10 000. */
  readonly innerCacheSize?: number;
  /**
   * Seconds a successful verification is remembered for the exact token string, so a token seen
   * again skips the signature check and decryption. Default 5; 0 turns the cache off.
   * A remembered result is still refused as `token_expired` / `token_not_yet_valid` by the current
   * clock (with `clockTolerance`), never outlives the token's `exp`, and is used only while the
   * token's `kid` still resolves to the very key that verified it: a key removed from (or replaced
   * in) the JWKS the verifier holds is not honoured through the cache. (A fetched JWKS is itself kept
   * until a token names an unknown `kid`, at most once per 5 s, or for 10 minutes; an in-process `jwks`
   * is read on every call.) Failures are not remembered.
   */
  readonly cacheMaxAgeSeconds?: number;
  /** Verifications remembered at most (least recently used forgotten first). Default 10 000; 0 turns the cache off. */
  readonly cacheSize?: number;
  /**
   * Refuse a bare JWS: only an `encrypt_whole_token` JWE (needs `innerKey`) is accepted, for a
   * resource server whose tokens are always encrypted whole. A JWS is refused as `wrong_type`
   * (it is a well-formed token, of the kind this resource server does not take). Default false.
   */
  readonly requireEncryption?: boolean;
  /**
   * While discovery or the JWKS cannot be fetched, the verifier does not ask again until a backoff
   * has passed (tokens meanwhile are `jwks_unavailable`): `initialSeconds` after the first failure,
   * doubling with each further one up to `maxSeconds`. Concurrent tokens share one fetch.
   * Default `{ initialSeconds: 1, maxSeconds: 30 }`.
   */
  readonly fetchBackoff?: FetchBackoff;
  /**
   * Refuse tokens that are neither DPoP- nor certificate-bound (`binding_mismatch`), for a
   * resource server registered with `require_sender_constraint` (SPEC §8). Default false.
   */
  readonly requireSenderConstraint?: boolean;
  /** DPoP proof checks (RFC 9449): the `iat` window and where proof jtis are remembered. */
  readonly dpop?: DpopOptions;
}

/** How long the verifier waits before fetching again after discovery or the JWKS failed. */
export interface FetchBackoff {
  readonly initialSeconds?: number;
  readonly maxSeconds?: number;
}

export interface Verifier {
  /**
   * Verifies a JWS access token, or an `encrypt_whole_token` JWE (needs `innerKey`), and that the
   * request holds what a bound token is bound to: for `cnf.jkt` a DPoP proof for this request and
   * token (`dpop`), for `cnf.x5t#S256` the client certificate (`certificate`). A bound token
   * without them, or a proof with an unbound token, is `binding_mismatch`; a bad proof `dpop_invalid`.
   */
  verify(token: string, presented?: PresentedBinding): Promise<VerifiedToken>;
}

/** A successful verification, remembered for the exact token string. */
interface Remembered {
  readonly result: VerifiedToken;
  /** The signed token's protected header and parts: resolving them again must yield `key`. */
  readonly header: CompactJWSHeaderParameters;
  readonly input: FlattenedJWSInput;
  readonly key: unknown;
  /** Forgotten at the earlier of "verified + cacheMaxAgeSeconds" and the token's `exp`. */
  readonly expiresAtMs: number;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new TypeError(`${name} must be a finite number ≥ 0`);
  return value;
}

/** Freezes a JSON value all the way down, so a caller cannot alter what the cache hands out next. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function toKeyObject(key: JsonWebKey | KeyObject): KeyObject {
  if ('type' in key && (key.type === 'private' || key.type === 'public' || key.type === 'secret')) return key as KeyObject;
  return createPrivateKey({ key: key as JsonWebKey, format: 'jwk' });
}

/** Maps jose's errors to the verifier's stable codes. */
function classify(error: unknown): VerifierError {
  if (error instanceof VerifierError) return error;
  if (error instanceof joseErrors.JWTExpired) return new VerifierError('token_expired', 'token has expired', { cause: error });
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'iss':
        return new VerifierError('wrong_issuer', 'token was issued by another issuer', { cause: error });
      case 'aud':
        return new VerifierError('wrong_audience', 'token is for another audience', { cause: error });
      case 'typ':
        return new VerifierError('wrong_type', 'token is not an at+jwt access token', { cause: error });
      case 'nbf':
      case 'iat':
        // Only a timestamp check says "not yet"; a missing or non-numeric claim is malformed.
        if (error.reason === 'check_failed') return new VerifierError('token_not_yet_valid', 'token is not valid yet', { cause: error });
        return new VerifierError('token_malformed', `token claim ${error.claim} is invalid`, { cause: error });
      default:
        return new VerifierError('token_malformed', `token claim ${error.claim} is invalid`, { cause: error });
    }
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey) return new VerifierError('unknown_key', 'no published key matches the token', { cause: error });
  if (error instanceof joseErrors.JWSSignatureVerificationFailed || error instanceof joseErrors.JOSEAlgNotAllowed) {
    return new VerifierError('signature_invalid', 'token signature is invalid', { cause: error });
  }
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid) {
    return new VerifierError('jwks_unavailable', 'the issuer keys could not be fetched', { cause: error });
  }
  if (error instanceof joseErrors.JWEDecryptionFailed) return new VerifierError('inner_invalid', 'token could not be decrypted', { cause: error });
  if (error instanceof joseErrors.JOSEError) return new VerifierError('token_malformed', 'token is malformed', { cause: error });
  return new VerifierError('token_malformed', 'token is malformed', { cause: error });
}

function keyResolver(options: VerifierOptions, backoff: { initialMs: number; maxMs: number }): JWTVerifyGetKey {
  if (options.jwks !== undefined) {
    const source = options.jwks;
    let seen: JSONWebKeySet | undefined;
    let local: JWTVerifyGetKey | undefined;
    return (header, token) => {
      const current = source();
      if (current !== seen || local === undefined) {
        seen = current;
        local = createLocalJWKSet(current);
      }
      return local(header, token);
    };
  }
  return remoteKeyResolver(options.issuer, options.jwksUri, backoff);
}

/** Whether one base64url segment decodes (as UTF-8) to a JSON object. */
function jsonObjectSegment(segment: string | undefined): boolean {
  if (segment === undefined || !/^[A-Za-z0-9_-]*$/.test(segment)) return false;
  try {
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(base64url.decode(segment)));
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/**
 * A JWS whose protected header or payload is not a JSON object cannot be an access token
 * (RFC 7519 §7.2 steps 3 and 10), whoever signed it: `token_malformed`, before any key is looked up.
 */
function assertWellFormedJws(jws: string): void {
  const [header, payload, signature, ...rest] = jws.split('.');
  if (rest.length > 0 || signature === undefined || !/^[A-Za-z0-9_-]*$/.test(signature)) {
    throw new VerifierError('token_malformed', 'token is not a compact JWS');
  }
  if (!jsonObjectSegment(header)) throw new VerifierError('token_malformed', 'token header is not a JSON object');
  if (!jsonObjectSegment(payload)) throw new VerifierError('token_malformed', 'token payload is not a JSON object');
}

/**
 * Verifies Gatehouse access tokens (SPEC §3).
 *
 * @example
 * const verifier = createVerifier({ issuer: 'https://id.example.com', audience: 'https://orders.example.com', innerKey });
 * const { claims, inner } = await verifier.verify(token);
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const issuer = options.issuer.replace(/\/+$/, '');
  const clockTolerance = options.clockTolerance ?? 5;
  const innerKey = options.innerKey === undefined ? undefined : toKeyObject(options.innerKey);
  const initialSeconds = nonNegative('fetchBackoff.initialSeconds', options.fetchBackoff?.initialSeconds, 1);
  const maxSeconds = nonNegative('fetchBackoff.maxSeconds', options.fetchBackoff?.maxSeconds, Math.max(30, initialSeconds));
  if (maxSeconds < initialSeconds) throw new TypeError('fetchBackoff.maxSeconds must be at least fetchBackoff.initialSeconds');
  const getKey = keyResolver({ ...options, issuer }, { initialMs: initialSeconds * 1000, maxMs: maxSeconds * 1000 });
  const requireEncryption = options.requireEncryption === true;
  if (requireEncryption && innerKey === undefined) throw new TypeError('requireEncryption needs innerKey');
  const innerCache = new BoundedCache<string, { ciphertext: string; inner: InnerClaims }>(options.innerCacheSize ?? 10_000);
  const cacheMaxAgeMs = nonNegative('cacheMaxAgeSeconds', options.cacheMaxAgeSeconds, 5) * 1000;
  const cacheSize = Math.floor(nonNegative('cacheSize', options.cacheSize, 10_000));
  const results = cacheMaxAgeMs > 0 && cacheSize > 0 ? new BoundedCache<string, Remembered>(cacheSize) : undefined;
  const binding = createSenderBindingChecker({ clockTolerance, requireSenderConstraint: options.requireSenderConstraint === true, dpop: options.dpop });

  /** The time checks jose's jwtVerify makes (RFC 7519 §4.1.4, §4.1.5), applied to a remembered result. */
  function checkTimes(claims: AccessTokenClaims, nowMs: number): void {
    const now = Math.floor(nowMs / 1000);
    if (typeof claims.nbf === 'number' && claims.nbf > now + clockTolerance) throw new VerifierError('token_not_yet_valid', 'token is not valid yet');
    if (claims.exp <= now - clockTolerance) throw new VerifierError('token_expired', 'token has expired');
  }

  /** The remembered result when it may still stand in for a fresh verification; undefined to verify afresh. */
  async function recall(entry: Remembered): Promise<VerifiedToken | undefined> {
    const now = Date.now();
    checkTimes(entry.result.claims, now);
    if (now >= entry.expiresAtMs) return undefined;
    let key: unknown;
    try {
      key = await getKey(entry.header, entry.input);
    } catch {
      // The kid no longer resolves (key removed, JWKS unavailable): the full path says why.
      return undefined;
    }
    // A reloaded or changed key set imports its keys anew, so identity means "the same key, still published".
    return key === entry.key ? entry.result : undefined;
  }

  function remember(token: string, result: VerifiedToken, used: { header: CompactJWSHeaderParameters; input: FlattenedJWSInput; key: unknown } | undefined): void {
    if (results === undefined || used === undefined) return;
    const { header, input, key } = used;
    const expiresAtMs = Math.min(Date.now() + cacheMaxAgeMs, result.claims.exp * 1000);
    if (expiresAtMs > Date.now()) results.set(token, { result, header, input, key, expiresAtMs });
  }

  async function decryptInner(claims: AccessTokenClaims): Promise<InnerClaims | undefined> {
    if (innerKey === undefined || claims.inner === undefined) return undefined;
    if (typeof claims.inner !== 'string') throw new VerifierError('inner_invalid', 'inner layer is not a compact JWE');
    const cached = innerCache.get(claims.jti);
    if (cached !== undefined && cached.ciphertext === claims.inner) return cached.inner;
    const { plaintext } = await compactDecrypt(claims.inner, innerKey, {
      keyManagementAlgorithms: KEY_MANAGEMENT_ALGS,
      contentEncryptionAlgorithms: CONTENT_ENCRYPTION_ALGS,
    }).catch((error: unknown) => {
      throw new VerifierError('inner_invalid', 'inner layer could not be decrypted with this key', { cause: error });
    });
    let inner: InnerClaims;
    try {
      inner = JSON.parse(new TextDecoder().decode(plaintext)) as InnerClaims;
    } catch (error) {
      throw new VerifierError('inner_invalid', 'inner layer is not JSON', { cause: error });
    }
    // The inner layer must belong to this very token.
    if (typeof inner !== 'object' || inner === null || inner.jti !== claims.jti) {
      throw new VerifierError('inner_invalid', 'inner jti does not match the token');
    }
    innerCache.set(claims.jti, { ciphertext: claims.inner, inner });
    return inner;
  }

  async function unwrap(token: string): Promise<string> {
    const parts = token.split('.');
    if (parts.length === 3) {
      if (requireEncryption) throw new VerifierError('wrong_type', 'token is not encrypted and this resource server takes only encrypted tokens');
      return token;
    }
    if (parts.length !== 5) throw new VerifierError('token_malformed', 'token is neither a JWS nor a JWE');
    // Five segments without a JWE header are malformed, whether or not we hold a key.
    let enc: unknown;
    try {
      enc = decodeProtectedHeader(token).enc;
    } catch {
      enc = undefined;
    }
    if (typeof enc !== 'string') throw new VerifierError('token_malformed', 'token is neither a JWS nor a JWE');
    if (innerKey === undefined) throw new VerifierError('inner_invalid', 'token is encrypted and no innerKey was given');
    const { plaintext, protectedHeader } = await compactDecrypt(token, innerKey, {
      keyManagementAlgorithms: KEY_MANAGEMENT_ALGS,
      contentEncryptionAlgorithms: CONTENT_ENCRYPTION_ALGS,
    }).catch((error: unknown) => {
      throw new VerifierError('inner_invalid', 'token could not be decrypted with this key', { cause: error });
    });
    // RFC 7519 §5.2: a nested JWT says so with cty "JWT".
    if (typeof protectedHeader.cty !== 'string' || protectedHeader.cty.toUpperCase() !== 'JWT') throw new VerifierError('wrong_type', 'encrypted token does not contain a JWT');
    return new TextDecoder().decode(plaintext);
  }

  /** The token's own checks; a remembered result stands in for them (`cacheMaxAgeSeconds`). */
  async function verifyToken(token: string): Promise<VerifiedToken> {
    if (typeof token !== 'string' || token.length === 0) throw new VerifierError('token_malformed', 'no token');
    const entry = results?.get(token);
    if (entry !== undefined) {
      let recalled: VerifiedToken | undefined;
      try {
        recalled = await recall(entry);
      } finally {
        if (recalled === undefined) results?.delete(token);
      }
      if (recalled !== undefined) return recalled;
    }
    const jws = await unwrap(token);
    assertWellFormedJws(jws);
    // The key the signature was checked with, so a remembered result can be tied to it.
    let used: { header: CompactJWSHeaderParameters; input: FlattenedJWSInput; key: unknown } | undefined;
    const resolve: JWTVerifyGetKey = async (header, input) => {
      const key = await getKey(header, input);
      used = { header, input, key };
      return key;
    };
    const { payload } = await jwtVerify(jws, resolve, {
      issuer,
      audience: options.audience,
      typ: 'at+jwt',
      algorithms: SIGNING_ALGS,
      clockTolerance,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
    });
    const claims = payload as AccessTokenClaims;
    const result: VerifiedToken = deepFreeze({ claims, inner: await decryptInner(claims) });
    remember(token, result, used);
    return result;
  }

  return {
    async verify(token, presented) {
      try {
        const result = await verifyToken(token);
        // Per request, never remembered: the proof and certificate belong to this request.
        await binding.check(token, result.claims, presented);
        return result;
      } catch (error) {
        throw classify(error);
      }
    },
  };
}
