import { hkdfSync } from 'node:crypto';
import { EncryptJWT, jwtDecrypt, type JWTPayload } from 'jose';

/**
 * Browser cookies of Gatehouse's own sign-ins, sealed: the gateway's on protected hosts (SPEC §7),
 * the console's (SPEC §11) and the account pages' (SPEC §4). Encrypted and authenticated (JWE, `dir` + A256GCM) with a key
 * derived from the cookie-signing secret every instance shares, so no one reads or forges them,
 * and any instance opens what another set. Each is bound to its user (`purpose`: its own key and
 * `typ`), to the host it was set for (`aud`) and to its kind (`typ`): a gateway cookie presented
 * to the console, a cookie copied to another host, or a pending sign-in presented as a session,
 * does not open.
 */

/** A signed-in browser on one protected host. */
export interface BrowserSession {
  readonly sub: string;
  /** The Gatehouse session's uid: the cookie is honoured while that session lives. */
  readonly sid: string;
  readonly acr: string | undefined;
  readonly amr: readonly string[] | undefined;
  readonly authTime: number | undefined;
  /** Epoch seconds; never past the Gatehouse session's own expiry. */
  readonly exp: number;
}

/** A sign-in under way: what the callback needs to finish it (RFC 6749 §10.12 state, RFC 7636 verifier). */
export interface PendingSignIn {
  readonly state: string;
  readonly verifier: string;
  /** Where to send the browser afterwards: a path on the same host. */
  readonly rd: string;
  readonly exp: number;
}

const DECRYPT_OPTIONS = { keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM'] };

export interface SealedCookies {
  sealSession(session: BrowserSession, host: string): Promise<string>;
  openSession(value: string, host: string): Promise<BrowserSession | undefined>;
  sealPending(pending: PendingSignIn, host: string): Promise<string>;
  openPending(value: string, host: string): Promise<PendingSignIn | undefined>;
}

export function createSealedCookies(cookieSecret: Buffer, purpose: 'gateway' | 'console' | 'account' = 'gateway'): SealedCookies {
  // A key of its own (RFC 5869): the signing secret itself never encrypts anything.
  const key = new Uint8Array(hkdfSync('sha256', cookieSecret, new Uint8Array(0), `gatehouse ${purpose} cookies`, 32));
  const SESSION_TYP = `gatehouse-${purpose}-session+jwt`;
  const PENDING_TYP = `gatehouse-${purpose}-signin+jwt`;

  const seal = (payload: JWTPayload, typ: string, host: string, exp: number) =>
    new EncryptJWT(payload).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', typ }).setAudience(host).setExpirationTime(exp).encrypt(key);

  async function open(value: string, typ: string, host: string): Promise<JWTPayload | undefined> {
    try {
      const { payload, protectedHeader } = await jwtDecrypt(value, key, { ...DECRYPT_OPTIONS, audience: host, requiredClaims: ['exp'] });
      return protectedHeader.typ === typ ? payload : undefined;
    } catch {
      // Tampered, expired, for another host, or sealed with a key this deployment no longer has.
      return undefined;
    }
  }

  const str = (value: unknown) => (typeof value === 'string' ? value : undefined);

  return {
    sealSession: (session, host) =>
      seal({ sub: session.sub, sid: session.sid, acr: session.acr, amr: session.amr, auth_time: session.authTime }, SESSION_TYP, host, session.exp),
    async openSession(value, host) {
      const payload = await open(value, SESSION_TYP, host);
      const sub = str(payload?.sub);
      const sid = str(payload?.['sid']);
      if (payload === undefined || sub === undefined || sid === undefined || payload.exp === undefined) return undefined;
      const amr = payload['amr'];
      return {
        sub,
        sid,
        acr: str(payload['acr']),
        amr: Array.isArray(amr) ? amr.filter((v): v is string => typeof v === 'string') : undefined,
        authTime: typeof payload['auth_time'] === 'number' ? payload['auth_time'] : undefined,
        exp: payload.exp,
      };
    },
    sealPending: (pending, host) => seal({ state: pending.state, verifier: pending.verifier, rd: pending.rd }, PENDING_TYP, host, pending.exp),
    async openPending(value, host) {
      const payload = await open(value, PENDING_TYP, host);
      const state = str(payload?.['state']);
      const verifier = str(payload?.['verifier']);
      const rd = str(payload?.['rd']);
      if (payload?.exp === undefined || state === undefined || verifier === undefined || rd === undefined) return undefined;
      return { state, verifier, rd, exp: payload.exp };
    },
  };
}
