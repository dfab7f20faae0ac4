import { jsonParam, onlyRow, type Queryable } from './database.js';

/** SPEC §10: an upstream OpenID provider (migrations/0015). */
export interface IdentityProviderRow extends Record<string, unknown> {
  id: string;
  seq: string;
  name: string;
  issuer: string;
  client_id: string;
  client_secret_sealed: string | null;
  scopes: string[];
  email_domains: string[];
  create_users: boolean;
  link_by_verified_email: boolean;
  claim_mappings: ClaimMappings;
  role_mappings: RoleMapping[];
  sync: 'on_create' | 'every_login';
  trust_upstream_mfa: boolean;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

/** Upstream claim names for Gatehouse's fields (defaults: preferred_username, email, name). */
export interface ClaimMappings {
  readonly username?: string;
  readonly email?: string;
  readonly name?: string;
}

/** A person whose upstream claim `claim` is (or, for an array, contains) `value` gets `role`. */
export interface RoleMapping {
  readonly claim: string;
  readonly value: string;
  readonly role: string;
}

export interface IdentityProviderFields {
  readonly name: string;
  readonly issuer: string;
  readonly clientId: string;
  /** Sealed by the caller (src/crypto/envelope.ts) with purpose `identity_providers:<id>`. */
  readonly clientSecretSealed: string | null;
  readonly scopes: readonly string[];
  readonly emailDomains: readonly string[];
  readonly createUsers: boolean;
  readonly linkByVerifiedEmail: boolean;
  readonly claimMappings: ClaimMappings;
  readonly roleMappings: readonly RoleMapping[];
  readonly sync: 'on_create' | 'every_login';
  readonly trustUpstreamMfa: boolean;
  readonly enabled: boolean;
}

export interface UserIdentityRow extends Record<string, unknown> {
  provider_id: string;
  subject: string;
  user_id: string;
  email: string | null;
  mapped_roles: string[];
  linked_at: Date;
  last_login_at: Date | null;
}

/** An identity with its provider's name, as the admin API lists a person's identities. */
export interface LinkedIdentityRow extends UserIdentityRow {
  provider_name: string;
}

const COLUMNS =
  'id, seq::text AS seq, name, issuer, client_id, client_secret_sealed, scopes, email_domains, create_users, link_by_verified_email, claim_mappings, role_mappings, sync, trust_upstream_mfa, enabled, created_at, updated_at';
const IDENTITY_COLUMNS = 'provider_id, subject, user_id, email, mapped_roles, linked_at, last_login_at';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function values(fields: IdentityProviderFields): unknown[] {
  return [
    fields.name,
    fields.issuer,
    fields.clientId,
    fields.clientSecretSealed,
    fields.scopes,
    fields.emailDomains,
    fields.createUsers,
    fields.linkByVerifiedEmail,
    jsonParam(fields.claimMappings),
    jsonParam(fields.roleMappings),
    fields.sync,
    fields.trustUpstreamMfa,
    fields.enabled,
  ];
}

export function createIdentityProviderStore(db: Queryable) {
  return {
    async findById(id: string, options: { forUpdate?: boolean } = {}): Promise<IdentityProviderRow | undefined> {
      // Ids are UUIDs; anything else cannot exist (and would be a cast error in SQL).
      if (!UUID.test(id)) return undefined;
      const { rows } = await db.query<IdentityProviderRow>(`SELECT ${COLUMNS} FROM identity_providers WHERE id = $1${options.forUpdate === true ? ' FOR UPDATE' : ''}`, [id]);
      return rows[0];
    },
    /** How many there are, for the console's overview (a count(*): cheap at tens of thousands of rows). */
    async count(): Promise<number> {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM identity_providers');
      return rows[0]?.n ?? 0;
    },
    async list(page: { after: string | undefined; limit: number }): Promise<IdentityProviderRow[]> {
      // Qualified: a bare `seq` would name the text alias in COLUMNS.
      const { rows } = await db.query<IdentityProviderRow>(`SELECT ${COLUMNS} FROM identity_providers WHERE seq > $1::bigint ORDER BY identity_providers.seq LIMIT $2`, [
        page.after ?? '0',
        page.limit,
      ]);
      return rows;
    },
    /** The providers the login page offers, in creation order. */
    async enabled(): Promise<IdentityProviderRow[]> {
      const { rows } = await db.query<IdentityProviderRow>(`SELECT ${COLUMNS} FROM identity_providers WHERE enabled ORDER BY identity_providers.seq`);
      return rows;
    },
    /** `id` is chosen by the caller: the sealed secret's purpose names it. */
    async insert(id: string, fields: IdentityProviderFields): Promise<IdentityProviderRow> {
      const result = await db.query<IdentityProviderRow>(
        `INSERT INTO identity_providers (id, name, issuer, client_id, client_secret_sealed, scopes, email_domains, create_users, link_by_verified_email,
           claim_mappings, role_mappings, sync, trust_upstream_mfa, enabled)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING ${COLUMNS}`,
        [id, ...values(fields)],
      );
      return onlyRow(result);
    },
    async update(id: string, fields: IdentityProviderFields): Promise<IdentityProviderRow> {
      const result = await db.query<IdentityProviderRow>(
        `UPDATE identity_providers SET name = $2, issuer = $3, client_id = $4, client_secret_sealed = $5, scopes = $6, email_domains = $7, create_users = $8,
           link_by_verified_email = $9, claim_mappings = $10, role_mappings = $11, sync = $12, trust_upstream_mfa = $13, enabled = $14, updated_at = now()
         WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, ...values(fields)],
      );
      return onlyRow(result);
    },
    async delete(id: string): Promise<void> {
      await db.query('DELETE FROM identity_providers WHERE id = $1', [id]);
    },
  };
}

export function createUserIdentityStore(db: Queryable) {
  return {
    async find(providerId: string, subject: string): Promise<UserIdentityRow | undefined> {
      const { rows } = await db.query<UserIdentityRow>(`SELECT ${IDENTITY_COLUMNS} FROM user_identities WHERE provider_id = $1 AND subject = $2`, [providerId, subject]);
      return rows[0];
    },
    async forUser(userId: string): Promise<UserIdentityRow[]> {
      if (!UUID.test(userId)) return [];
      const { rows } = await db.query<UserIdentityRow>(`SELECT ${IDENTITY_COLUMNS} FROM user_identities WHERE user_id = $1 ORDER BY linked_at`, [userId]);
      return rows;
    },
    /** The identities of these people, with their providers' names: oldest link first. */
    async forUsers(userIds: readonly string[]): Promise<LinkedIdentityRow[]> {
      const ids = userIds.filter((id) => UUID.test(id));
      if (ids.length === 0) return [];
      const { rows } = await db.query<LinkedIdentityRow>(
        `SELECT ${IDENTITY_COLUMNS.split(', ').map((column) => `i.${column}`).join(', ')}, p.name AS provider_name
           FROM user_identities i JOIN identity_providers p ON p.id = i.provider_id
          WHERE i.user_id = ANY($1::uuid[]) ORDER BY i.linked_at, p.seq`,
        [ids],
      );
      return rows;
    },
    /** Undefined when the person already has an identity at this provider, or this one is linked to someone. */
    async link(identity: { providerId: string; subject: string; userId: string; email: string | null; mappedRoles: readonly string[] }): Promise<UserIdentityRow | undefined> {
      const { rows } = await db.query<UserIdentityRow>(
        `INSERT INTO user_identities (provider_id, subject, user_id, email, mapped_roles, last_login_at) VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT DO NOTHING RETURNING ${IDENTITY_COLUMNS}`,
        [identity.providerId, identity.subject, identity.userId, identity.email, identity.mappedRoles],
      );
      return rows[0];
    },
    async touch(providerId: string, subject: string, fields: { email: string | null; mappedRoles: readonly string[] }): Promise<void> {
      await db.query('UPDATE user_identities SET email = $3, mapped_roles = $4, last_login_at = now() WHERE provider_id = $1 AND subject = $2', [
        providerId,
        subject,
        fields.email,
        fields.mappedRoles,
      ]);
    },
    /** True when there was such an identity. */
    async unlink(userId: string, providerId: string): Promise<boolean> {
      if (!UUID.test(userId) || !UUID.test(providerId)) return false;
      const { rowCount } = await db.query('DELETE FROM user_identities WHERE user_id = $1 AND provider_id = $2', [userId, providerId]);
      return rowCount > 0;
    },
  };
}

export type IdentityProviderStore = ReturnType<typeof createIdentityProviderStore>;
export type UserIdentityStore = ReturnType<typeof createUserIdentityStore>;
