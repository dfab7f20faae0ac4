import { randomUUID } from 'node:crypto';
import type { Envelope } from '../../crypto/envelope.js';
import type { Database, Queryable } from '../../db/database.js';
import { createIdentityProviderStore, type IdentityProviderFields, type IdentityProviderRow } from '../../db/identity-providers.js';
import { isNonPublicHost } from '../../oidc/outbound-fetch.js';
import { missingPrivileges, recordAudit, type AdminContext } from '../../audit/audit.js';
import { adminScopesOpenedBy } from '../admin-scopes.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';
import { checkIfMatch } from '../etag.js';
import { Conflict, Forbidden, NotFound, ValidationFailed, type FieldError, type ManagementError } from '../errors.js';
import { presentIdentityProvider, type IdentityProviderResponse } from './presenter.js';
import type { CreateIdentityProviderBody, PatchIdentityProviderBody } from './schema.js';

export interface IdentityProviderServiceDeps {
  readonly db: Database;
  /** Seals the upstream client secret (purpose `identity_providers:<id>`, as `master-key rewrap` expects). */
  readonly envelope: Envelope;
  /** Gatehouse's issuer: the redirect URI the upstream is told about is under it. */
  readonly issuer: string;
  /** ALLOW_PRIVATE_JWKS_URI: otherwise an issuer on a loopback, private or link-local host is refused. */
  readonly allowPrivateIssuer: boolean;
  /** After a committed change: drops this instance's cached list at once (the others follow the change feed). */
  readonly providersChanged?: () => void;
}

/** The body fields, stored alike in the row: what an update compares and the audit trail shows. */
type Settings = Omit<CreateIdentityProviderBody, 'client_secret'>;

function notFound(): ManagementError {
  return new NotFound('No identity provider with that id.');
}

export function secretPurpose(id: string): string {
  return `identity_providers:${id}`;
}

function settingsOf(row: IdentityProviderRow): Settings {
  return {
    name: row.name,
    issuer: row.issuer,
    client_id: row.client_id,
    scopes: row.scopes,
    email_domains: row.email_domains,
    create_users: row.create_users,
    link_by_verified_email: row.link_by_verified_email,
    claim_mappings: row.claim_mappings,
    role_mappings: row.role_mappings,
    sync: row.sync,
    trust_upstream_mfa: row.trust_upstream_mfa,
    enabled: row.enabled,
  };
}

function fieldsOf(settings: Settings, clientSecretSealed: string | null): IdentityProviderFields {
  return {
    name: settings.name,
    issuer: settings.issuer,
    clientId: settings.client_id,
    clientSecretSealed,
    scopes: settings.scopes,
    emailDomains: settings.email_domains,
    createUsers: settings.create_users,
    linkByVerifiedEmail: settings.link_by_verified_email,
    claimMappings: settings.claim_mappings,
    roleMappings: settings.role_mappings,
    sync: settings.sync,
    trustUpstreamMfa: settings.trust_upstream_mfa,
    enabled: settings.enabled,
  };
}

/**
 * What a provider must be beyond each field's shape. SPEC §2's rule for fetched URLs: Gatehouse
 * reads the issuer's discovery document and JWKS, so a literal private address or `localhost` is
 * refused here, where the administrator sees why (a name resolving to one is refused at fetch time).
 */
function checkIssuer(settings: Settings, allowPrivate: boolean): void {
  if (allowPrivate || !isNonPublicHost(new URL(settings.issuer).hostname)) return;
  throw new ValidationFailed('The request body is invalid.', {
    errors: [{ pointer: '#/issuer', detail: 'must not be on a loopback, private, link-local or other non-public address (ALLOW_PRIVATE_JWKS_URI allows it)' }],
  });
}

/** A login_hint's domain must lead to one provider: an enabled provider's domains are its own. */
async function checkEmailDomains(db: Queryable, id: string, settings: Settings): Promise<void> {
  if (!settings.enabled || settings.email_domains.length === 0) return;
  const taken = new Map<string, string>();
  for (const other of await createIdentityProviderStore(db).enabled()) {
    if (other.id !== id) for (const domain of other.email_domains) taken.set(domain, other.name);
  }
  const errors: FieldError[] = settings.email_domains.flatMap((domain, index) => {
    const owner = taken.get(domain);
    return owner === undefined ? [] : [{ pointer: `#/email_domains/${index}`, detail: `already a domain of the enabled provider "${owner}"` }];
  });
  if (errors.length > 0) throw new Conflict('Another enabled identity provider has one of these email domains.', { errors });
}

/** Upstream identity providers (SPEC §10): the admin API and the CLI both go through here. */
/**
 * Role mappings that hand out console roles (SPEC §11) make whoever controls the upstream claim
 * as strong as the admin scopes those roles stand for: setting them up needs those scopes, or a
 * holder of `admin:identity-providers` alone could map their own upstream account to `gatehouse:admin`.
 */
function assertMayMapRoles(context: AdminContext, ...mappingSets: readonly (readonly { readonly role: string }[])[]): void {
  const missing = missingPrivileges(context.privileges, adminScopesOpenedBy(mappingSets.flat().map((mapping) => mapping.role)));
  if (missing.length > 0) {
    throw new Forbidden(`To set up a provider whose role mappings grant admin console roles, the caller must hold every admin scope those roles stand for; it lacks: ${missing.join(' ')}.`);
  }
}

export function createIdentityProviderService(deps: IdentityProviderServiceDeps) {
  const { db, envelope, issuer } = deps;
  const present = (row: IdentityProviderRow) => presentIdentityProvider(row, issuer);

  return {
    /** How many there are (the console's overview). */
    count(): Promise<number> {
      return createIdentityProviderStore(db).count();
    },

    async list(query: { limit: number; cursor?: string | undefined }): Promise<Page<IdentityProviderResponse>> {
      const rows = await createIdentityProviderStore(db).list({ after: decodeCursor(query.cursor), limit: query.limit + 1 });
      return toPage(rows, query.limit, (row) => row.seq, present);
    },

    async get(id: string): Promise<IdentityProviderResponse> {
      const row = await createIdentityProviderStore(db).findById(id);
      if (row === undefined) throw notFound();
      return present(row);
    },

    async create(body: CreateIdentityProviderBody, audit: AdminContext): Promise<IdentityProviderResponse> {
      const { client_secret: clientSecret, ...settings } = body;
      checkIssuer(settings, deps.allowPrivateIssuer);
      assertMayMapRoles(audit, settings.role_mappings);
      // Chosen here, not by the database: the sealed secret's purpose names the row it belongs to.
      const id = randomUUID();
      const sealed = clientSecret === null ? null : envelope.seal(clientSecret, secretPurpose(id));
      const row = await db.transaction(async (tx) => {
        await checkEmailDomains(tx, id, settings);
        const created = await createIdentityProviderStore(tx).insert(id, fieldsOf(settings, sealed));
        await recordAudit(tx, audit, {
          type: 'identity_provider.created',
          target: id,
          details: {
            name: created.name,
            issuer: created.issuer,
            client_id: created.client_id,
            client_secret_set: sealed !== null,
            scopes: created.scopes,
            email_domains: created.email_domains,
            create_users: created.create_users,
            link_by_verified_email: created.link_by_verified_email,
            trust_upstream_mfa: created.trust_upstream_mfa,
            enabled: created.enabled,
          },
        });
        return created;
      });
      deps.providersChanged?.();
      return present(row);
    },

    async update(id: string, patch: PatchIdentityProviderBody, audit: AdminContext, ifMatch?: string): Promise<IdentityProviderResponse> {
      const { client_secret: clientSecret, ...changes } = patch;
      const updated = await db.transaction(async (tx) => {
        const store = createIdentityProviderStore(tx);
        const current = await store.findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        checkIfMatch(ifMatch, present(current));
        const before = settingsOf(current);
        const merged: Settings = { ...before };
        for (const [key, value] of Object.entries(changes)) {
          if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
        }
        checkIssuer(merged, deps.allowPrivateIssuer);
        assertMayMapRoles(audit, before.role_mappings, merged.role_mappings);
        await checkEmailDomains(tx, id, merged);
        const sealed = clientSecret === undefined ? current.client_secret_sealed : clientSecret === null ? null : envelope.seal(clientSecret, secretPurpose(id));
        const updated = await store.update(id, fieldsOf(merged, sealed));
        const after = settingsOf(updated);
        // What changed, old and new; of the secret only that it was replaced or removed.
        const changed = Object.fromEntries(
          (Object.keys(after) as (keyof Settings)[])
            .filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]))
            .map((key) => [key, { from: before[key], to: after[key] }]),
        );
        const secret = clientSecret === undefined ? {} : { client_secret: clientSecret === null ? 'removed' : 'replaced' };
        await recordAudit(tx, audit, { type: 'identity_provider.updated', target: id, details: { changes: changed, ...secret } });
        return present(updated);
      });
      deps.providersChanged?.();
      return updated;
    },

    /** The provider's links to people go with it (they keep their accounts). */
    async delete(id: string, audit: AdminContext): Promise<void> {
      await db.transaction(async (tx) => {
        const store = createIdentityProviderStore(tx);
        const current = await store.findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        await store.delete(id);
        await recordAudit(tx, audit, { type: 'identity_provider.deleted', target: id, details: { name: current.name, issuer: current.issuer } });
      });
      deps.providersChanged?.();
    },
  };
}

export type IdentityProviderService = ReturnType<typeof createIdentityProviderService>;
