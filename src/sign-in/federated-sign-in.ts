import { createHash, randomBytes } from 'node:crypto';
import { secondFactorRequired } from '../accounts/mfa-policy.js';
import type { PasswordHasher } from '../accounts/passwords.js';
import { mixesScripts, normalizeUsername, USERNAME_PATTERN, usernameSkeleton } from '../accounts/usernames.js';
import { recordAudit } from '../audit/audit.js';
import type { Envelope } from '../crypto/envelope.js';
import type { Database, Queryable } from '../db/database.js';
import { createCodeAttemptStore } from '../db/code-attempts.js';
import { createIdentityProviderStore, createUserIdentityStore, type IdentityProviderRow, type RoleMapping } from '../db/identity-providers.js';
import { createUserStore, type UserRow } from '../db/users.js';
import { UpstreamError, type PendingFederation, type UpstreamIdentity, type UpstreamProvider, type Upstreams } from '../federation/upstream.js';
import { auditContextOf, type SecondFactorAttempt, type SignInRequest } from './attempt.js';
import { accountKey } from './throttle.js';
import type { EnabledProviders } from '../federation/enabled-providers.js';

/**
 * Sign-in through an upstream OpenID provider (SPEC §10). A person is found by (provider,
 * upstream `sub`); else linked by email, only when the upstream says `email_verified` and the
 * provider allows it; else created, only where allowed; else refused. Role mappings are applied
 * on creation, or on every sign-in with `sync: "every_login"` (a mapped role the upstream no
 * longer grants is removed; roles given otherwise stay). A local second factor still applies
 * unless the upstream proved one and the provider is trusted for it. Every outcome is audited.
 */

export interface FederationChoice {
  readonly id: string;
  readonly name: string;
}

export type FederatedOutcome =
  | { readonly kind: 'signed_in'; readonly accountId: string; readonly amr: readonly string[]; readonly mfa: boolean }
  /** The local second factor (or its enrollment) completes the sign-in. */
  | { readonly kind: 'second_factor_required'; readonly attempt: SecondFactorAttempt }
  /** Shown to the person as is; the audit log has the reason. */
  | { readonly kind: 'refused'; readonly message: string };

export interface FederatedSignIn {
  /** The enabled providers, for the login page's buttons. */
  choices(): Promise<FederationChoice[]>;
  /** The enabled provider a `login_hint` email's domain maps to. */
  providerForHint(loginHint: unknown): Promise<string | undefined>;
  /** Undefined when the provider is unknown or disabled; throws UpstreamError when it cannot be reached (audited). */
  begin(providerId: string, request: SignInRequest, loginHint?: string): Promise<{ url: URL; pending: PendingFederation } | undefined>;
  /** A callback refused before the upstream was asked (not this browser's, expired, replayed): audited. */
  refusedCallback(providerId: string, reason: string, request: SignInRequest): Promise<void>;
  complete(
    input: { readonly pending: PendingFederation; readonly callbackUrl: URL; readonly clientId: unknown; readonly clientRequiresMfa: boolean; readonly acrValues: unknown; readonly interactionExpiresAt: number },
    request: SignInRequest,
  ): Promise<FederatedOutcome>;
}

/** RFC 8176 methods that, beside `pwd`, make a second factor; `mfa` says so outright. */
const SECOND_FACTOR_METHODS = new Set(['otp', 'hwk', 'swk', 'sms', 'tel', 'fpt', 'face', 'iris', 'retina', 'vbm', 'sc', 'pop', 'pin', 'user', 'bio', 'kba', 'geo', 'wia', 'mca']);

export function upstreamProvedMfa(amr: unknown): boolean {
  if (!Array.isArray(amr)) return false;
  const methods = new Set(amr.filter((m): m is string => typeof m === 'string'));
  if (methods.has('mfa')) return true;
  return [...methods].some((m) => SECOND_FACTOR_METHODS.has(m)) && methods.size >= 2;
}

function claimString(claims: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const value = claims[name];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** The roles `mappings` give for these claims (a claim equal to, or an array containing, the value). */
export function mappedRoles(mappings: readonly RoleMapping[], claims: Readonly<Record<string, unknown>>): string[] {
  const roles = new Set<string>();
  for (const { claim, value, role } of mappings) {
    const actual = claims[claim];
    if (actual === value || (Array.isArray(actual) && actual.includes(value))) roles.add(role);
  }
  return [...roles].sort();
}

/**
 * Every upstream claim the provider's mappings read: one the ID token leaves out is asked of
 * userinfo. Role mapping claims too, or `sync: "every_login"` would take away every mapped role
 * of a person whose upstream gives groups at userinfo only.
 */
function claimsRead(row: IdentityProviderRow): string[] {
  const { username = 'preferred_username', email = 'email', name = 'name' } = row.claim_mappings;
  return [...new Set([username, email, name, ...row.role_mappings.map((mapping) => mapping.claim)])];
}

const REFUSED = {
  noAccount: 'There is no account for you here yet. Ask an administrator to create one, then sign in again.',
  disabled: 'This account is disabled. Ask an administrator.',
  ambiguous: 'Your email address belongs to more than one account here. Ask an administrator to link your account.',
  taken: 'Your account could not be created: its username is taken. Ask an administrator.',
  failed: 'The sign-in at your organisation’s identity provider did not succeed. Go back to the application and start again.',
} as const;

export function createFederatedSignIn(deps: {
  readonly db: Database;
  readonly envelope: Envelope;
  readonly passwords: PasswordHasher;
  readonly upstreams: Upstreams;
  /** The enabled providers, cached (the login page's buttons, login_hint domains). */
  readonly enabledProviders: EnabledProviders;
}): FederatedSignIn {
  const { db, enabledProviders } = deps;
  const providers = createIdentityProviderStore(db);

  function upstreamOf(row: IdentityProviderRow): UpstreamProvider {
    return {
      id: row.id,
      issuer: row.issuer,
      clientId: row.client_id,
      clientSecret: row.client_secret_sealed === null ? undefined : deps.envelope.open(row.client_secret_sealed, `identity_providers:${row.id}`).toString('utf8'),
      scopes: row.scopes,
      version: row.updated_at.toISOString(),
    };
  }

  async function enabledRow(id: string): Promise<IdentityProviderRow | undefined> {
    const row = await providers.findById(id);
    return row?.enabled === true ? row : undefined;
  }

  /** A username for a new person: the mapped claim, else the email, else one made from the subject. */
  function usernameCandidates(row: IdentityProviderRow, identity: UpstreamIdentity, email: string | undefined): string[] {
    const suffix = createHash('sha256').update(`${row.id}\0${identity.sub}`).digest('hex').slice(0, 6);
    const wanted = claimString(identity.claims, row.claim_mappings.username ?? 'preferred_username') ?? email;
    // The rules an administrator's usernames follow (src/management/users): the pattern, one script.
    const valid = wanted !== undefined && USERNAME_PATTERN.test(wanted) && wanted.length <= 57 && !mixesScripts(wanted) ? wanted : undefined;
    return valid === undefined ? [`fed-${suffix}`] : [valid, `${valid}-${suffix}`];
  }

  async function createPerson(tx: Queryable, row: IdentityProviderRow, identity: UpstreamIdentity, profile: Profile, roles: string[]): Promise<UserRow | undefined> {
    const users = createUserStore(tx);
    // Never used to sign in: a federated person has no password until an administrator sets one.
    const unusable = await deps.passwords.hash(randomBytes(32).toString('base64url'));
    for (const username of usernameCandidates(row, identity, profile.email)) {
      const created = await users.insert(
        {
          username,
          usernameNormalized: normalizeUsername(username),
          email: profile.email ?? null,
          emailVerified: profile.email !== undefined && profile.emailVerified,
          name: profile.name ?? null,
          roles,
          disabled: false,
          mfaRequired: false,
        },
        unusable,
        usernameSkeleton(username),
      );
      if (created !== undefined) return created;
    }
    return undefined;
  }

  interface Profile {
    readonly email: string | undefined;
    readonly emailVerified: boolean;
    readonly name: string | undefined;
  }

  /** The person this upstream identity is, linked or created now; a refusal message otherwise. */
  async function personFor(tx: Queryable, row: IdentityProviderRow, identity: UpstreamIdentity, audit: ReturnType<typeof auditContextOf>): Promise<{ user: UserRow } | { refused: string; reason: string }> {
    const users = createUserStore(tx);
    const identities = createUserIdentityStore(tx);
    const profile: Profile = {
      email: claimString(identity.claims, row.claim_mappings.email ?? 'email')?.toLowerCase(),
      emailVerified: identity.claims['email_verified'] === true || identity.claims['email_verified'] === 'true',
      name: claimString(identity.claims, row.claim_mappings.name ?? 'name'),
    };
    const roles = mappedRoles(row.role_mappings, identity.claims);

    const linked = await identities.find(row.id, identity.sub);
    if (linked !== undefined) {
      const user = await users.findById(linked.user_id, { forUpdate: true });
      if (user === undefined) return { refused: REFUSED.noAccount, reason: 'linked person is gone' };
      let current = user;
      if (row.sync === 'every_login') current = await syncRoles(tx, user, linked.mapped_roles, roles);
      await identities.touch(row.id, identity.sub, { email: profile.email ?? null, mappedRoles: row.sync === 'every_login' ? roles : linked.mapped_roles });
      return { user: current };
    }

    if (row.link_by_verified_email && profile.email !== undefined && profile.emailVerified) {
      const matches = await users.findByEmail(profile.email, { forUpdate: true });
      if (matches.length > 1) return { refused: REFUSED.ambiguous, reason: 'several people have that email' };
      const match = matches[0];
      if (match !== undefined) {
        const current = row.sync === 'every_login' ? await syncRoles(tx, match, [], roles) : match;
        if ((await identities.link({ providerId: row.id, subject: identity.sub, userId: match.id, email: profile.email, mappedRoles: row.sync === 'every_login' ? roles : [] })) === undefined) {
          return { refused: REFUSED.ambiguous, reason: 'that person is linked to another identity at this provider' };
        }
        await recordAudit(tx, audit, { type: 'user.identity_linked', target: match.id, details: { provider_id: row.id, by: 'verified_email' } });
        return { user: current };
      }
    }

    if (!row.create_users) return { refused: REFUSED.noAccount, reason: 'no linked person and create_users is off' };
    const created = await createPerson(tx, row, identity, profile, roles);
    if (created === undefined) return { refused: REFUSED.taken, reason: 'username taken' };
    await identities.link({ providerId: row.id, subject: identity.sub, userId: created.id, email: profile.email ?? null, mappedRoles: roles });
    await recordAudit(tx, audit, { type: 'user.created', target: created.id, details: { provider_id: row.id, username: created.username, roles } });
    return { user: created };
  }

  /** Roles the mappings gave before are replaced by the ones they give now; the rest stay. */
  async function syncRoles(tx: Queryable, user: UserRow, before: readonly string[], now: readonly string[]): Promise<UserRow> {
    const next = [...new Set([...user.roles.filter((role) => !before.includes(role)), ...now])].sort();
    if (next.join(' ') === [...user.roles].sort().join(' ')) return user;
    return createUserStore(tx).update(
      user.id,
      {
        username: user.username,
        usernameNormalized: user.username_normalized,
        email: user.email,
        emailVerified: user.email_verified,
        name: user.name,
        roles: next,
        disabled: user.disabled,
        mfaRequired: user.mfa_required,
      },
      user.username_skeleton,
    );
  }

  function auditFailure(request: SignInRequest, providerId: string, reason: string): Promise<void> {
    return recordAudit(db, auditContextOf(request, null), { type: 'login.failure', target: 'unknown', outcome: 'failure', details: { provider_id: providerId, method: 'federated', reason } });
  }

  return {
    async choices() {
      return (await enabledProviders.list()).map((provider) => ({ id: provider.id, name: provider.name }));
    },

    async providerForHint(loginHint) {
      if (typeof loginHint !== 'string') return undefined;
      const at = loginHint.lastIndexOf('@');
      if (at < 1) return undefined;
      const domain = loginHint.slice(at + 1).toLowerCase();
      return (await enabledProviders.list()).find((provider) => provider.emailDomains.includes(domain))?.id;
    },

    async begin(providerId, request, loginHint) {
      const row = await enabledRow(providerId);
      if (row === undefined) {
        await auditFailure(request, providerId, 'the identity provider is unknown or disabled');
        return undefined;
      }
      try {
        return await deps.upstreams.begin(upstreamOf(row), { loginHint });
      } catch (error) {
        if (error instanceof UpstreamError) await auditFailure(request, providerId, error.message);
        throw error;
      }
    },

    refusedCallback: (providerId, reason, request) => auditFailure(request, providerId, reason),

    async complete(input, request) {
      const row = await enabledRow(input.pending.providerId);
      const failed = async (reason: string): Promise<FederatedOutcome> => {
        await auditFailure(request, input.pending.providerId, reason);
        return { kind: 'refused', message: REFUSED.failed };
      };
      if (row === undefined) return failed('the identity provider is unknown or disabled');
      let identity: UpstreamIdentity;
      try {
        identity = await deps.upstreams.complete(upstreamOf(row), input.pending, input.callbackUrl, claimsRead(row));
      } catch (error) {
        if (error instanceof UpstreamError) return failed(error.message);
        throw error;
      }

      const audit = auditContextOf(request, null);
      type Decided = { refused: string; reason: string } | { attempt: SecondFactorAttempt } | { person: UserRow; upstreamMfa: boolean };
      const outcome = await db.transaction(async (tx): Promise<Decided> => {
        const found = await personFor(tx, row, identity, audit);
        if ('refused' in found) return found;
        const person = found.user;
        if (person.disabled) return { refused: REFUSED.disabled, reason: 'the person is disabled' };
        const upstreamMfa = row.trust_upstream_mfa && upstreamProvedMfa(identity.claims['amr']);
        const needsSecondFactor = secondFactorRequired({
          userRequiresMfa: person.mfa_required,
          clientRequiresMfa: input.clientRequiresMfa,
          acrValues: input.acrValues,
          enrolled: person.mfa_enrolled,
        });
        await recordAudit(tx, auditContextOf(request, person.id), {
          type: 'login.success',
          target: person.id,
          details: { client_id: input.clientId, method: 'federated', provider_id: row.id, upstream_mfa: upstreamMfa },
        });
        if (needsSecondFactor && !upstreamMfa) {
          const attemptId = randomBytes(16).toString('base64url');
          await createCodeAttemptStore(tx).open(attemptId, person.id, Math.max(60, input.interactionExpiresAt - Math.floor(Date.now() / 1000)) + 60);
          const attempt: SecondFactorAttempt = {
            accountId: person.id,
            username: person.username,
            normalized: person.username_normalized,
            subject: accountKey(person.username_normalized),
            attemptId,
            federated: true,
          };
          return { attempt };
        }
        return { person, upstreamMfa };
      });
      if ('refused' in outcome) {
        await auditFailure(request, row.id, outcome.reason);
        return { kind: 'refused', message: outcome.refused };
      }
      if ('attempt' in outcome) return { kind: 'second_factor_required', attempt: outcome.attempt };
      return { kind: 'signed_in', accountId: outcome.person.id, amr: outcome.upstreamMfa ? ['fed', 'mfa'] : ['fed'], mfa: outcome.upstreamMfa };
    },
  };
}
