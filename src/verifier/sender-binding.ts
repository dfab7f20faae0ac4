import { createHash, type X509Certificate } from 'node:crypto';
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify, type JWK, type JWTHeaderParameters } from 'jose';
import { BoundedCache } from './lru.js';
import { VerifierError } from './errors.js';

/**
 * Sender-constrained tokens at the resource server (SPEC §8): a DPoP proof (RFC 9449 §4.3, §7)
 * for a token with `cnf.jkt`, the client certificate (RFC 8705 §3) for one with `cnf.x5t#S256`.
 */

/** Asymmetric algorithms only (RFC 9449 §4.2): what Gatehouse's token endpoint accepts too. */
export const DPOP_ALGS = ['ES256', 'EdDSA', 'Ed25519', 'PS256', 'RS256'] as const;

/** The request a DPoP proof must be for. */
export interface DpopPresentation {
  /** The `DPoP` request header: one proof JWT. */
  readonly proof: string;
  /** The request method (`htm`). */
  readonly method: string;
  /** The request URL as the client addressed it (`htu`); query and fragment are ignored. */
  readonly url: string;
}

/** What a request presents besides the token. */
export interface PresentedBinding {
  /** The DPoP proof, when the token came with the DPoP scheme. */
  readonly dpop?: DpopPresentation;
  /** The client's TLS certificate (the connection's, or a trusted proxy's header). */
  readonly certificate?: X509Certificate;
}

/**
 * Remembers DPoP proof jtis until they are too old to be accepted. The default is in this
 * process; resource servers with several instances give a shared store (a database or Redis
 * `SET NX EX`) so a proof is accepted once across all of them.
 */
export interface DpopReplayStore {
  /** True the first time `key` is seen before `expiresAtSeconds`, false after. Must be atomic. */
  firstUse(key: string, expiresAtSeconds: number): boolean | Promise<boolean>;
}

export interface DpopOptions {
  /** Seconds a proof's `iat` may lie in the past (or, with clockTolerance, future). Default 300. */
  readonly maxAgeSeconds?: number;
  /** Where proof jtis are remembered. Default: in this process, at most 100 000. */
  readonly replayStore?: DpopReplayStore;
}

interface Confirmation {
  readonly jkt?: unknown;
  readonly 'x5t#S256'?: unknown;
}

function memoryReplayStore(size: number): DpopReplayStore {
  const seen = new BoundedCache<string, number>(size);
  return {
    firstUse(key, expiresAtSeconds) {
      const now = Date.now() / 1000;
      const until = seen.get(key);
      if (until !== undefined && until > now) return false;
      seen.set(key, expiresAtSeconds);
      return true;
    },
  };
}

/** RFC 9449 §4.3 step 9: the URL without query and fragment, as the URL parser normalises it. */
function withoutQuery(url: string): string | undefined {
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  if (parsed === undefined) return undefined;
  parsed.search = '';
  parsed.hash = '';
  return parsed.href;
}

const invalidProof = (message: string, cause?: unknown) => new VerifierError('dpop_invalid', message, { cause, binding: 'dpop' });
const mismatch = (message: string, binding: 'dpop' | 'certificate') => new VerifierError('binding_mismatch', message, { binding });

export interface SenderBindingChecker {
  /** Throws `dpop_invalid` or `binding_mismatch` unless what was presented fits the token's `cnf`. */
  check(token: string, claims: { cnf?: unknown }, presented: PresentedBinding | undefined): Promise<void>;
}

export function createSenderBindingChecker(options: { clockTolerance: number; requireSenderConstraint: boolean; dpop?: DpopOptions | undefined }): SenderBindingChecker {
  const maxAge = options.dpop?.maxAgeSeconds ?? 300;
  if (!Number.isFinite(maxAge) || maxAge <= 0) throw new TypeError('dpop.maxAgeSeconds must be a positive number');
  const replay = options.dpop?.replayStore ?? memoryReplayStore(100_000);

  async function checkProof(token: string, jkt: string, dpop: DpopPresentation): Promise<void> {
    // RFC 9449 §4.3 step 1: exactly one proof (a repeated header arrives joined by a comma).
    if (typeof dpop.proof !== 'string' || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(dpop.proof)) {
      throw invalidProof('the DPoP header is not one proof JWT');
    }
    let header: JWTHeaderParameters;
    let payload: Record<string, unknown>;
    try {
      ({ payload, protectedHeader: header } = await jwtVerify(dpop.proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [...DPOP_ALGS] }));
    } catch (error) {
      throw invalidProof('the DPoP proof is not a valid dpop+jwt signed by the key it carries', error);
    }
    const { jti, htm, htu, iat, ath } = payload;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw invalidProof('the DPoP proof has no usable jti');
    if (htm !== dpop.method) throw invalidProof('the DPoP proof is for another method (htm)');
    const expected = withoutQuery(dpop.url);
    if (typeof htu !== 'string' || expected === undefined || withoutQuery(htu) !== expected) throw invalidProof('the DPoP proof is for another URL (htu)');
    const now = Math.floor(Date.now() / 1000);
    if (typeof iat !== 'number' || iat < now - maxAge - options.clockTolerance || iat > now + options.clockTolerance) {
      throw invalidProof('the DPoP proof is too old or from the future (iat)');
    }
    // RFC 9449 §4.3 step 11: the proof is for this very access token.
    if (ath !== createHash('sha256').update(token).digest('base64url')) throw invalidProof('the DPoP proof is for another access token (ath)');
    const thumbprint = await calculateJwkThumbprint(header.jwk as JWK);
    if (thumbprint !== jkt) throw mismatch('the DPoP proof is signed by another key than the token is bound to', 'dpop');
    // Last, so a proof that fails another check does not use up its jti.
    if (!(await replay.firstUse(`${thumbprint}:${jti}`, iat + maxAge + options.clockTolerance))) throw invalidProof('the DPoP proof was already used');
  }

  return {
    async check(token, claims, presented) {
      const cnf = (typeof claims.cnf === 'object' && claims.cnf !== null ? claims.cnf : {}) as Confirmation;
      const jkt = typeof cnf.jkt === 'string' ? cnf.jkt : undefined;
      const x5t = typeof cnf['x5t#S256'] === 'string' ? cnf['x5t#S256'] : undefined;
      if (options.requireSenderConstraint && jkt === undefined && x5t === undefined) {
        throw mismatch('this resource server takes only DPoP- or certificate-bound tokens', 'dpop');
      }
      if (jkt !== undefined) {
        if (presented?.dpop === undefined) throw mismatch('the token is DPoP-bound: present it with the DPoP scheme and a proof', 'dpop');
        await checkProof(token, jkt, presented.dpop);
      } else if (presented?.dpop !== undefined) {
        throw mismatch('the token is not DPoP-bound: present it with the Bearer scheme', 'dpop');
      }
      if (x5t !== undefined) {
        const certificate = presented?.certificate;
        if (certificate === undefined) throw mismatch('the token is bound to a client certificate and none was presented', 'certificate');
        if (createHash('sha256').update(certificate.raw).digest('base64url') !== x5t) {
          throw mismatch('the token is bound to another client certificate', 'certificate');
        }
      }
    },
  };
}
