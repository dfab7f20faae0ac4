import type { X509Certificate } from 'node:crypto';
import type { GatewayRouteRow } from '../db/gateway-routes.js';
import { VerifierError } from '../verifier/errors.js';
import { DPOP_ALGS, type PresentedBinding } from '../verifier/sender-binding.js';

/**
 * The gateway's one policy (SPEC §7): given the route a request matched and the credential it
 * carried, allow with identity headers for the upstream, or refuse as RFC 6750 says. The three
 * doors (forward-auth, auth-request, ext-authz) only translate their gateway's conventions into a
 * GatewayRequest and the Decision back into an answer. No I/O of its own: token verification and
 * the person lookup are passed in.
 */

/** Every identity header, always answered (empty when it has no value), so a gateway never forwards a client's own. */
export const IDENTITY_HEADERS = [
  'X-Gatehouse-Subject',
  'X-Gatehouse-Client-Id',
  'X-Gatehouse-Scope',
  'X-Gatehouse-Acr',
  'X-Gatehouse-Username',
  'X-Gatehouse-Email',
  'X-Gatehouse-Name',
  'X-Gatehouse-Roles',
] as const;

export type IdentityHeader = (typeof IDENTITY_HEADERS)[number];

/** The claims of a verified access token the policy reads. */
export interface GatewayToken {
  readonly sub: string;
  readonly client_id: string;
  readonly scope?: string | undefined;
  readonly acr?: string | undefined;
  /** Epoch seconds. */
  readonly exp: number;
  readonly auth_time?: number | undefined;
}

/** A person as the policy needs them, from Gatehouse's own tables (it cannot read `inner`). */
export interface GatewayPerson {
  readonly username: string;
  readonly email: string | null;
  readonly name: string | null;
  readonly roles: readonly string[];
}

/**
 * What the original request holds besides its token (SPEC §8): its DPoP header values, the
 * method and URL a proof must be for, and the client certificate the gateway passed on.
 */
export interface OriginalPresentation {
  readonly dpop: readonly string[] | undefined;
  readonly method: string;
  /** Scheme, host and path as the client addressed them (a proof's `htu`). */
  readonly url: string;
  readonly certificate?: X509Certificate | undefined;
}

export interface GatewayPolicyDeps {
  /**
   * Verifies a token for `audience`, and that `presented` holds what a bound token is bound to
   * (src/verifier/sender-binding.ts); throws on any invalid token, a VerifierError saying why.
   */
  verify(token: string, audience: string, presented?: PresentedBinding): Promise<GatewayToken>;
  /** The person a token's `sub` names, or undefined (a client, or a person disabled or deleted). */
  person(sub: string): Promise<GatewayPerson | undefined>;
  /** The acr that proves a second factor (SPEC §4). */
  readonly mfaAcr: string;
  /**
   * SPEC §7 `upstream_token: "exchange"`: a token for the route's upstream resource server in
   * place of `token`, remembered per `key` (the credential) and route; undefined when none can
   * be minted (the resource server or client is gone).
   */
  upstreamToken(key: string, token: GatewayToken, route: GatewayRouteRow): Promise<string | undefined>;
}

export type Decision =
  /** `upstreamAuthorization`: the Authorization the upstream gets instead of the caller's (exchange routes). */
  | { readonly outcome: 'allow'; readonly headers: Readonly<Record<IdentityHeader, string>>; readonly upstreamAuthorization?: string }
  /**
   * 401 with this WWW-Authenticate challenge. `signIn`: a browser route and no credential at all,
   * so a browser may be sent to sign in instead (the door decides by Accept, SPEC §7).
   */
  | { readonly outcome: 'unauthenticated'; readonly challenge: string; readonly signIn?: 'session' }
  /**
   * 403; `challenge` when scopes are missing (RFC 6750 §3.1 insufficient_scope). `signIn`: a
   * browser session that signed in without the second factor this route needs (step-up).
   */
  | { readonly outcome: 'forbidden'; readonly reason: 'no_route' | 'insufficient_scope' | 'role' | 'mfa' | 'not_a_person' | 'exchange_failed'; readonly challenge?: string; readonly signIn?: 'mfa' };

/** RFC 6750 §3: a quoted-string parameter value (no quote or backslash can appear in ours, but escape anyway). */
function quote(value: string): string {
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

const EMPTY_HEADERS: Readonly<Record<IdentityHeader, string>> = Object.freeze(
  Object.fromEntries(IDENTITY_HEADERS.map((name) => [name, ''])) as Record<IdentityHeader, string>,
);

/** A header value carries no line breaks or control characters, whatever a person's name holds. */
function headerValue(value: string | null | undefined): string {
  // eslint-disable-next-line no-control-regex -- exactly the characters a header value must not carry
  return (value ?? '').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
}

type Scheme = 'Bearer' | 'DPoP';

/** RFC 9449 §7.1: a DPoP challenge names the proof algorithms accepted. */
const DPOP_ALGS_PARAM = `algs=${quote(DPOP_ALGS.join(' '))}`;

function challengeOf(scheme: Scheme, error: string, description: string): string {
  return `${scheme} error=${quote(error)}, error_description=${quote(description)}${scheme === 'DPoP' ? `, ${DPOP_ALGS_PARAM}` : ''}`;
}

/**
 * `authorization` is the original request's Authorization header values (undefined: none). RFC
 * 6750 §2.1 and RFC 9449 §7.1: one `Bearer` or `DPoP` credential; several Authorization headers
 * are a malformed request.
 */
function credentialOf(authorization: readonly string[] | undefined): { token: string; scheme: Scheme } | { challenge: string } {
  if (authorization === undefined || authorization.length === 0) return { challenge: 'Bearer' };
  const malformed = { challenge: 'Bearer error="invalid_request", error_description="one Bearer or DPoP token expected"' };
  if (authorization.length > 1) return malformed;
  const match = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization[0] ?? '');
  if (match === null) return malformed;
  return { token: match[2]!, scheme: match[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer' };
}

/** The binding to check: the DPoP proof only with the DPoP scheme (RFC 9449 §7.2), the certificate always. */
function presentedBinding(scheme: Scheme, presented: OriginalPresentation | undefined): PresentedBinding {
  const certificate = presented?.certificate === undefined ? {} : { certificate: presented.certificate };
  if (scheme !== 'DPoP' || presented === undefined) return certificate;
  // RFC 9449 §4.3 step 1: exactly one DPoP header; anything else fails the proof check.
  const proof = presented.dpop?.length === 1 ? presented.dpop[0]! : '';
  return { ...certificate, dpop: { proof, method: presented.method, url: presented.url } };
}

/** RFC 6750 §3.1 / RFC 9449 §7.1: why a token was refused, as the challenge says it. */
function refusedToken(error: unknown, scheme: Scheme): string {
  if (error instanceof VerifierError && error.code === 'dpop_invalid') return challengeOf('DPoP', 'invalid_dpop_proof', 'the DPoP proof is invalid');
  if (error instanceof VerifierError && error.code === 'binding_mismatch') {
    return challengeOf(error.binding === 'dpop' ? 'DPoP' : scheme, 'invalid_token', 'the access token is bound to a key or certificate this request does not hold');
  }
  // Expired, revoked, malformed or for another audience.
  return challengeOf(scheme, 'invalid_token', 'the access token is invalid');
}

/**
 * `session` is the browser session the request's gateway cookie proves (src/gateway/browser/),
 * looked at only on browser routes and only when no Authorization came: a token always wins.
 */
export async function decide(
  deps: GatewayPolicyDeps,
  route: GatewayRouteRow | undefined,
  authorization: readonly string[] | undefined,
  session?: GatewayToken,
  presented?: OriginalPresentation,
): Promise<Decision> {
  // Deny by default: a request no route covers never reaches an upstream.
  if (route === undefined) return { outcome: 'forbidden', reason: 'no_route' };
  if (route.anonymous) return { outcome: 'allow', headers: EMPTY_HEADERS };
  const audience = route.resource_server;
  if (audience === null) return { outcome: 'forbidden', reason: 'no_route' };

  const viaSession = route.browser_sign_in && authorization === undefined && session !== undefined;
  let token: GatewayToken;
  /** What the upstream token is remembered by: the caller's own credential. */
  let credentialKey: string;
  let scheme: Scheme = 'Bearer';
  if (viaSession) {
    token = session;
    credentialKey = `session:${session.sub}:${session.exp}`;
  } else {
    const credential = credentialOf(authorization);
    if ('challenge' in credential) {
      const signIn = route.browser_sign_in && authorization === undefined ? ({ signIn: 'session' } as const) : {};
      return { outcome: 'unauthenticated', challenge: credential.challenge, ...signIn };
    }
    credentialKey = credential.token;
    scheme = credential.scheme;
    try {
      token = await deps.verify(credential.token, audience, presentedBinding(credential.scheme, presented));
    } catch (error) {
      return { outcome: 'unauthenticated', challenge: refusedToken(error, credential.scheme) };
    }
  }

  // A browser session is the person themselves, with no OAuth scopes: routes gate it by roles and second factor.
  const granted = new Set((token.scope ?? '').split(' ').filter(Boolean));
  const missing = viaSession ? [] : route.required_scopes.filter((scope) => !granted.has(scope));
  if (missing.length > 0) {
    return {
      outcome: 'forbidden',
      reason: 'insufficient_scope',
      challenge: `${challengeOf(scheme, 'insufficient_scope', 'the token lacks a required scope')}, scope=${quote(route.required_scopes.join(' '))}`,
    };
  }

  const isPerson = token.sub !== token.client_id;
  const exchange = route.upstream_token === 'exchange';
  // An exchanged token carries the person's claims in its inner layer: the person must still be there.
  const needsPerson = route.required_roles.length > 0 || route.require_mfa || route.identity_headers === 'trusted' || exchange;
  const person = isPerson && needsPerson ? await deps.person(token.sub) : undefined;
  // A person's token whose person is gone or disabled passes no route that looks at the person.
  if (isPerson && needsPerson && person === undefined) return { outcome: 'forbidden', reason: 'not_a_person' };
  if (route.required_roles.length > 0 || route.require_mfa) {
    if (person === undefined) return { outcome: 'forbidden', reason: 'not_a_person' };
    if (route.required_roles.length > 0 && !route.required_roles.some((role) => person.roles.includes(role))) return { outcome: 'forbidden', reason: 'role' };
    if (route.require_mfa && token.acr !== deps.mfaAcr) return { outcome: 'forbidden', reason: 'mfa', ...(viaSession ? { signIn: 'mfa' as const } : {}) };
  }

  let upstream: { upstreamAuthorization: string } | undefined;
  if (exchange) {
    const minted = await deps.upstreamToken(credentialKey, token, route);
    if (minted === undefined) return { outcome: 'forbidden', reason: 'exchange_failed' };
    upstream = { upstreamAuthorization: `Bearer ${minted}` };
  }

  if (route.identity_headers === 'none') return { outcome: 'allow', headers: EMPTY_HEADERS, ...upstream };
  const headers: Record<IdentityHeader, string> = {
    ...EMPTY_HEADERS,
    'X-Gatehouse-Subject': headerValue(token.sub),
    'X-Gatehouse-Client-Id': headerValue(token.client_id),
    'X-Gatehouse-Scope': headerValue(token.scope),
    'X-Gatehouse-Acr': headerValue(token.acr),
  };
  // Personal data only for routes whose upstream is trusted with it (SPEC §3: none in public claims).
  if (route.identity_headers === 'trusted' && person !== undefined) {
    headers['X-Gatehouse-Username'] = headerValue(person.username);
    headers['X-Gatehouse-Email'] = headerValue(person.email);
    headers['X-Gatehouse-Name'] = headerValue(person.name);
    headers['X-Gatehouse-Roles'] = headerValue(person.roles.join(','));
  }
  return { outcome: 'allow', headers, ...upstream };
}
