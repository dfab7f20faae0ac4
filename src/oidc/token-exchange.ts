import type Provider from 'oidc-provider';
import { errors, type Client, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import { checkDpopReplay, checkDpopRequired, checkMtlsCert, validateDpop } from 'oidc-provider/lib/helpers/grants.js';
import type { JWTPayload } from 'jose';
import { recordAudit } from '../audit/audit.js';
import type { Database } from '../db/database.js';
import type { Logger } from 'pino';
import { attachSignIn } from '../tokens/person-claims.js';
import type { Accounts } from './accounts.js';
import { allowedResources } from './clients.js';
import { createReferenceTokens, isReferenceTokenShape } from './reference-tokens.js';

/**
 * RFC 8693 token exchange, SPEC §9: a service holding a person's (or a service's) access token
 * gets a narrower one for the next service, for its own audience, with the person's claims in an
 * inner layer for that service, and a record of who acted (`act`). Registered with the provider's
 * registerGrantType; the policy reads the subject token's claims only (never which parameters a
 * request happens to carry), so a delegated token cannot shed what makes it one.
 */

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const DEFAULT_TTL = 900;
const PARAMETERS = ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'scope', 'resource', 'audience'] as const;

/** RFC 8693 §4.1: the acting party, with the one that acted before it nested. */
export interface Actor {
  readonly sub: string;
  readonly act?: Actor;
}

/** `act` of the token being minted in this request, for extraTokenClaims (provider.ts). */
const actors = new WeakMap<object, Actor>();

export function actorClaim(token: object): { act: Actor } | undefined {
  const act = actors.get(token);
  return act === undefined ? undefined : { act };
}

/** A client's `token_exchange` metadata (SPEC §9): the resource servers whose tokens it may exchange. */
export function subjectAudiences(client: object): string[] | undefined {
  const value = (client as { token_exchange?: { subject_audiences?: unknown } }).token_exchange?.subject_audiences;
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined;
}

/** The subject token's claims this grant reads. */
interface Subject {
  readonly sub: string;
  readonly clientId: string;
  readonly aud: string;
  readonly scope: readonly string[];
  readonly exp: number;
  readonly acr: string | undefined;
  readonly authTime: number | undefined;
  readonly act: Actor | undefined;
}

function actorOf(value: unknown, depth = 0): Actor | undefined {
  if (typeof value !== 'object' || value === null || depth > 16) return undefined;
  const { sub, act } = value as { sub?: unknown; act?: unknown };
  if (typeof sub !== 'string') return undefined;
  const inner = act === undefined ? undefined : actorOf(act, depth + 1);
  return inner === undefined ? { sub } : { sub, act: inner };
}

/** Every client that acted in the chain, the most recent first. */
function chainOf(act: Actor | undefined): string[] {
  const chain: string[] = [];
  for (let current = act; current !== undefined; current = current.act) chain.push(current.sub);
  return chain;
}

function subjectFromJwt(payload: JWTPayload): Subject | undefined {
  const { sub, exp } = payload;
  const clientId = payload['client_id'];
  const aud = payload.aud;
  if (typeof sub !== 'string' || typeof exp !== 'number' || typeof clientId !== 'string' || typeof aud !== 'string') return undefined;
  const scope = typeof payload['scope'] === 'string' ? payload['scope'].split(' ').filter(Boolean) : [];
  return {
    sub,
    clientId,
    aud,
    scope,
    exp,
    acr: typeof payload['acr'] === 'string' ? payload['acr'] : undefined,
    authTime: typeof payload['auth_time'] === 'number' ? payload['auth_time'] : undefined,
    act: payload['act'] === undefined ? undefined : actorOf(payload['act']),
  };
}

export interface TokenExchangeDeps {
  readonly db: Database;
  readonly logger: Logger;
  readonly accounts: Accounts;
  /** Opens and verifies one of Gatehouse's own JWT access tokens (./jwt-introspection.ts). */
  readonly verifyOwnToken: (token: string) => Promise<JWTPayload | undefined>;
  /** The same checks /token makes for a target resource server (./resource-indicators.ts). */
  readonly resourceServerInfo: (ctx: KoaContextWithOIDC, resource: string, client: Client) => Promise<ResourceServer>;
}

const invalidGrant = (description: string) => new errors.InvalidGrant(description);

export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  const references = createReferenceTokens(() => provider);

  async function subjectOf(token: string): Promise<Subject | undefined> {
    if (isReferenceTokenShape(token)) {
      const found = await references.find(token);
      if (found === undefined || found.aud.length !== 1) return undefined;
      return { sub: found.sub, clientId: found.client_id, aud: found.aud[0]!, scope: (found.scope ?? '').split(' ').filter(Boolean), exp: found.exp, acr: found.acr, authTime: found.auth_time, act: undefined };
    }
    const payload = await deps.verifyOwnToken(token);
    return payload === undefined ? undefined : subjectFromJwt(payload);
  }

  /** A person (enabled), a service (a client that still exists), or neither: the subject is gone. */
  async function subjectKind(ctx: KoaContextWithOIDC, sub: string): Promise<'person' | 'service' | undefined> {
    const person = await deps.accounts.load(ctx, sub).catch(() => undefined);
    if (person !== undefined) return person.disabled ? undefined : 'person';
    return (await provider.Client.find(sub)) === undefined ? undefined : 'service';
  }

  provider.registerGrantType(
    TOKEN_EXCHANGE_GRANT,
    async function tokenExchange(ctx) {
      const oidc = ctx.oidc as KoaContextWithOIDC['oidc'];
      const client = oidc.client!;
      const params = oidc.params as Record<string, unknown>;
      const audiences = subjectAudiences(client);
      // SPEC §9: a client exchanges only the tokens of resource servers it was given.
      if (audiences === undefined || audiences.length === 0) throw new errors.UnauthorizedClient('this client may not exchange tokens: it has no token_exchange.subject_audiences');

      const subjectToken = params['subject_token'];
      if (typeof subjectToken !== 'string' || subjectToken === '') throw new errors.InvalidRequest('missing required parameter subject_token');
      if (params['subject_token_type'] !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
      if (params['requested_token_type'] !== undefined && params['requested_token_type'] !== ACCESS_TOKEN_TYPE) {
        throw new errors.InvalidRequest(`requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
      }
      // RFC 8693 §2.1: the target is named by `resource`; Gatehouse's targets are resource servers.
      if (params['audience'] !== undefined) throw new errors.InvalidTarget('name the target with resource, not audience');

      const subject = await subjectOf(subjectToken);
      if (subject === undefined) throw invalidGrant('subject_token is not an active access token from this issuer');
      const now = Math.floor(Date.now() / 1000);
      if (subject.exp <= now) throw invalidGrant('subject_token has expired');
      if (!audiences.includes(subject.aud)) throw invalidGrant('this client may not exchange tokens for that audience');

      // The actor, when named, is the caller itself (RFC 8693 §4.1: act.sub names who acts now).
      const actorToken = params['actor_token'];
      if (actorToken !== undefined) {
        if (params['actor_token_type'] !== ACCESS_TOKEN_TYPE) throw new errors.InvalidRequest(`actor_token_type must be ${ACCESS_TOKEN_TYPE}`);
        const actor = typeof actorToken === 'string' ? await subjectOf(actorToken) : undefined;
        if (actor === undefined || actor.exp <= now || actor.clientId !== client.clientId || actor.sub !== client.clientId) {
          throw invalidGrant('actor_token must be an active access token of the calling client itself');
        }
      }

      // Everyone in the chain must still stand: the subject's client and every earlier actor.
      for (const clientId of new Set([subject.clientId, ...chainOf(subject.act)])) {
        if ((await provider.Client.find(clientId)) === undefined) throw invalidGrant('a client in the delegation chain no longer exists');
      }
      const kind = await subjectKind(ctx, subject.sub);
      if (kind === undefined) throw invalidGrant('the token’s subject no longer exists or is disabled');

      const resource = params['resource'] ?? (allowedResources(client).length === 1 ? allowedResources(client)[0] : undefined);
      if (typeof resource !== 'string') throw new errors.InvalidTarget('resource is required: name the one resource server the token is for');
      // allowed_resources, the server's scopes for this client, require_sender_constraint.
      const info = await deps.resourceServerInfo(ctx, resource, client);

      // Scopes only narrow: requested ∩ subject's ∩ target's ∩ client's.
      const available = new Set(info.scope?.split(' ').filter((s) => subject.scope.includes(s)));
      const requested = typeof params['scope'] === 'string' ? params['scope'].split(' ').filter(Boolean) : undefined;
      const refused = (requested ?? []).filter((s) => !available.has(s));
      if (refused.length > 0) throw new errors.InvalidScope('a requested scope is wider than the subject token, the target or this client allows', refused.join(' '));
      const scope = (requested ?? [...available]).join(' ') || undefined;

      // sub stays the subject's (a person, or the service the chain started with); client_id is the
      // caller's. A JWT access token is not stored and consults no grant: its grantId and gty only
      // name where it came from.
      // An opaque (reference) token is introspected by the provider, which wants its grant to
      // exist: a grant of just the exchanged scope for the target (no session ever uses it, and
      // it lapses with the Grant TTL).
      let grantId = 'token-exchange';
      if (info.accessTokenFormat === 'opaque') {
        const grant = new provider.Grant({ accountId: subject.sub, clientId: client.clientId });
        grant.addResourceScope(resource, scope ?? '');
        grantId = await grant.save();
      }
      const token = new provider.AccessToken({ client, accountId: subject.sub, scope, grantId, gty: 'token_exchange' });
      // Never later than the subject token (RFC 8693 §2.2.1 leaves the lifetime to the server).
      const lifetime = Math.max(1, Math.min(info.accessTokenTTL ?? DEFAULT_TTL, subject.exp - now));
      token.resourceServer = new provider.ResourceServer(resource, { ...info, accessTokenTTL: lifetime });
      (token as { expiresIn?: number }).expiresIn = lifetime;
      // Pinned to the `now` the lifetime was cut at: stamped at save (after more awaits) a second
      // boundary in between would put exp one second past the subject token's.
      Object.assign(token, { iat: now, exp: now + lifetime });
      const act: Actor = subject.act === undefined ? { sub: client.clientId } : { sub: client.clientId, act: subject.act };
      actors.set(token, act);
      if (kind === 'person') attachSignIn(token, { ...(subject.acr === undefined ? {} : { acr: subject.acr }), ...(subject.authTime === undefined ? {} : { authTime: subject.authTime }) });

      // Bound to the caller's own key or certificate when it uses one, as /token binds.
      const cert = checkMtlsCert(provider, ctx);
      if (cert !== undefined) token.setThumbprint('x5t', cert as string);
      const dPoP = await validateDpop(provider, ctx);
      if (dPoP !== undefined) {
        await checkDpopReplay(provider, ctx, dPoP, client.clientId);
        token.setThumbprint('jkt', dPoP.thumbprint);
      }
      checkDpopRequired(provider, ctx, dPoP);

      ctx.oidc.entity('AccessToken', token);
      const value = await token.save();
      const chain = chainOf(act);
      await recordAudit(deps.db, { actor: client.clientId, clientIp: ctx.ip || null, requestId: (ctx.state as { requestId?: string }).requestId ?? null, logger: deps.logger }, {
        type: 'token.exchanged',
        target: resource,
        details: { subject: subject.sub, subject_client_id: subject.clientId, subject_audience: subject.aud, actor_chain: chain, scope: scope ?? null },
      });

      // RFC 8693 §2.2.1: issued_token_type always; no refresh token.
      ctx.body = {
        access_token: value,
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: token.tokenType,
        expires_in: token.expiration,
        ...(scope === undefined ? {} : { scope }),
      };
    },
    [...PARAMETERS],
    ['resource'],
  );
}
