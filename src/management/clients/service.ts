import { setTimeout as delay } from 'node:timers/promises';
import { createClientStore, type ClientRow } from '../../db/clients.js';
import type { Database, Queryable } from '../../db/database.js';
import { createOidcModelStore } from '../../db/oidc-models.js';
import { createResourceServerStore } from '../../db/resource-servers.js';
import { generateClientId, generateClientSecret, type ClientSecretHasher } from '../../crypto/client-secret.js';
import { isNonPublicHost } from '../../oidc/outbound-fetch.js';
import { clientMetadataFromRow, grantableScopes, OIDC_SCOPES, registeredScopes, tokensNotBefore } from '../../oidc/clients.js';
import { missingPrivileges, recordAudit, type AdminContext } from '../../audit/audit.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';
import { presentClient, withSecret, type ClientResponse, type ClientSecretResponse } from './presenter.js';
import { checkIfMatch } from '../etag.js';
import { clientDefinition, SECRET_AUTH_METHODS, TLS_SUBJECT_FIELDS, type ClientDefinition, type PatchClientBody } from './schema.js';
import { Conflict, Forbidden, NotFound, ValidationFailed, fieldErrors, type FieldError, type ManagementError } from '../errors.js';

export interface ClientServiceDeps {
  readonly db: Database;
  readonly hasher: ClientSecretHasher;
  /** oidc-provider's own metadata validation, so the admin API never stores a client the provider would refuse. */
  readonly validateWithProvider: (metadata: Record<string, unknown>) => Promise<void>;
  /**
   * Drops this instance's cached copy once a change has committed, so it takes effect here at
   * once; other instances drop theirs on the database's change notification.
   */
  readonly forget?: (clientId: string) => void;
  /** ALLOW_PRIVATE_JWKS_URI: otherwise a jwks_uri on a loopback, private or link-local host is refused. */
  readonly allowPrivateJwksUri?: boolean;
}

function notFound(): ManagementError {
  return new NotFound('No client with that client_id.');
}

function invalid(errors: FieldError[]): ManagementError {
  return new ValidationFailed('The request body is invalid.', { errors });
}

/** The RFC 7591 fields kept in clients.metadata. */
function metadataOf(definition: ClientDefinition): Record<string, unknown> {
  const grants = new Set(definition.grant_types);
  return {
    grant_types: definition.grant_types,
    response_types: definition.response_types ?? (grants.has('authorization_code') ? ['code'] : []),
    redirect_uris: definition.redirect_uris,
    token_endpoint_auth_method: definition.token_endpoint_auth_method,
    post_logout_redirect_uris: definition.post_logout_redirect_uris,
    ...(definition.scope === undefined ? {} : { scope: definition.scope }),
    ...(definition.jwks === undefined ? {} : { jwks: definition.jwks }),
    ...(definition.jwks_uri === undefined ? {} : { jwks_uri: definition.jwks_uri }),
    ...Object.fromEntries(TLS_SUBJECT_FIELDS.flatMap((field) => (definition[field] === undefined ? [] : [[field, definition[field]]]))),
    ...(definition.tls_client_certificate_bound_access_tokens ? { tls_client_certificate_bound_access_tokens: true } : {}),
    ...(definition.dpop_bound_access_tokens ? { dpop_bound_access_tokens: true } : {}),
    ...(definition.require_pushed_authorization_requests ? { require_pushed_authorization_requests: true } : {}),
    ...(definition.token_exchange === undefined ? {} : { token_exchange: definition.token_exchange }),
  };
}

/**
 * SPEC §2: a jwks_uri is never fetched on a private address. A literal IP or `localhost` is
 * refused here, where the administrator sees why; a name that resolves to one is refused at fetch
 * time (src/oidc/outbound-fetch.ts).
 */
function checkJwksUri(definition: ClientDefinition, allowPrivate: boolean): void {
  if (allowPrivate || definition.jwks_uri === undefined) return;
  if (isNonPublicHost(new URL(definition.jwks_uri).hostname)) {
    throw invalid([
      { pointer: '#/jwks_uri', detail: 'must not be on a loopback, private, link-local or other non-public address (ALLOW_PRIVATE_JWKS_URI allows it)' },
    ]);
  }
}

/** Rules that need the database: resources must exist, scopes must be theirs. */
async function checkAgainstResourceServers(db: Queryable, definition: ClientDefinition): Promise<void> {
  const servers = await createResourceServerStore(db).findByIdentifiers(definition.allowed_resources);
  const known = new Set(servers.map((s) => s.identifier));
  const errors: FieldError[] = [];
  definition.allowed_resources.forEach((identifier, index) => {
    if (!known.has(identifier)) errors.push({ pointer: `#/allowed_resources/${index}`, detail: 'no resource server has this identifier' });
  });
  const subjects = definition.token_exchange?.subject_audiences ?? [];
  if (subjects.length > 0) {
    const subjectServers = new Set((await createResourceServerStore(db).findByIdentifiers(subjects)).map((s) => s.identifier));
    subjects.forEach((identifier, index) => {
      if (!subjectServers.has(identifier)) errors.push({ pointer: `#/token_exchange/subject_audiences/${index}`, detail: 'no resource server has this identifier' });
    });
  }
  if (definition.scope !== undefined) {
    const offered = new Set<string>([...OIDC_SCOPES, ...servers.flatMap((s) => s.scopes)]);
    const unknown = definition.scope.split(' ').filter((s) => !offered.has(s));
    if (unknown.length > 0) {
      errors.push({ pointer: '#/scope', detail: `not defined by the allowed resource servers: ${unknown.join(' ')}` });
    }
  }
  if (errors.length > 0) throw invalid(errors);
}

/** What a client row lets its holder get: the resources, and the scopes across them. */
interface Access {
  readonly resources: string[];
  readonly scopes: string[];
}

/** Access, and the part of it on privileged resource servers (the admin API). */
interface ClientAccess {
  readonly access: Access;
  readonly privileged: { readonly resources: string[]; readonly scopes: string[] };
}

/**
 * What `row` may get, computed exactly as the token path computes it: from the metadata the
 * provider is given (clientMetadataFromRow) through grantableScopes (src/oidc/clients.ts).
 */
async function accessOf(db: Queryable, row: ClientRow): Promise<ClientAccess> {
  const servers = await createResourceServerStore(db).findByIdentifiers(row.allowed_resources);
  const registered = registeredScopes(clientMetadataFromRow(row));
  const oidcScopes = (registered ?? []).filter((s) => (OIDC_SCOPES as readonly string[]).includes(s));
  const scopes = new Set<string>(oidcScopes);
  const privileged = { resources: [] as string[], scopes: new Set<string>() };
  for (const server of servers) {
    const grantable = grantableScopes(registered, server);
    for (const scope of grantable) scopes.add(scope);
    if (server.built_in) {
      privileged.resources.push(server.identifier);
      for (const scope of grantable) privileged.scopes.add(scope);
    }
  }
  return {
    access: { resources: [...row.allowed_resources].sort(), scopes: [...scopes].sort() },
    privileged: { resources: privileged.resources.sort(), scopes: [...privileged.scopes].sort() },
  };
}

/** What `after` has that `before` has not. */
function added(before: Access, after: Access): Access {
  return { resources: after.resources.filter((r) => !before.resources.includes(r)), scopes: after.scopes.filter((s) => !before.scopes.includes(s)) };
}

/**
 * SPEC §5: "creating, changing, rotating the secret of, or deleting a client that may use it
 * [the admin API] needs every scope that client may get". Otherwise a token with `admin:clients`
 * alone could mint itself a client with every admin scope, or take over a stronger one.
 */
function assertMayManage(context: AdminContext, verb: string, ...accesses: ClientAccess[]): void {
  const missing = missingPrivileges(context.privileges, accesses.flatMap((access) => access.privileged.scopes));
  if (missing.length > 0) {
    throw new Forbidden(`To ${verb} a client that may use the admin API, the caller must hold every scope that client may get; this token lacks: ${missing.join(' ')}.`,
    );
  }
}

/**
 * Tokens carry `iat` in whole seconds, and the admin API refuses tokens from the second its
 * client's credentials changed or before (src/oidc/clients.ts). A new credential is handed out
 * only once that second is over, so every token obtained with it is accepted.
 */
async function untilNewCredentialsCount(row: ClientRow): Promise<void> {
  const notBefore = tokensNotBefore(clientMetadataFromRow(row));
  if (notBefore === undefined) return;
  const wait = notBefore * 1000 - Date.now();
  // Bounded: a database clock far ahead of this one must not hold the request for long.
  if (wait > 0) await delay(Math.min(wait, 2_000));
}

function credentialsChanged(before: ClientRow, after: ClientRow): boolean {
  return before.credentials_changed_at?.getTime() !== after.credentials_changed_at?.getTime();
}

/** Clients: the admin API and the CLI both go through here (one code path). */
export function createClientService(deps: ClientServiceDeps) {
  const { db, hasher } = deps;

  async function validateWithProvider(row: ClientRow): Promise<void> {
    try {
      await deps.validateWithProvider(clientMetadataFromRow(row));
    } catch (error) {
      throw invalid([{ pointer: '#', detail: (error as { error_description?: string }).error_description ?? (error as Error).message }]);
    }
  }

  return {
    /** How many there are (the console's overview). */
    count(): Promise<number> {
      return createClientStore(db).count();
    },

    async list(query: { limit: number; cursor?: string | undefined; client_name?: string | undefined }): Promise<Page<ClientResponse>> {
      const rows = await createClientStore(db).list({ after: decodeCursor(query.cursor), limit: query.limit + 1, namePrefix: query.client_name });
      return toPage(rows, query.limit, (row) => row.seq, presentClient);
    },

    async get(clientId: string): Promise<ClientResponse> {
      const row = await createClientStore(db).find(clientId);
      if (row === undefined) throw notFound();
      return presentClient(row);
    },

    async create(definition: ClientDefinition, audit: AdminContext): Promise<ClientResponse & { client_secret?: string }> {
      const clientId = generateClientId();
      const secret = SECRET_AUTH_METHODS.includes(definition.token_endpoint_auth_method) ? generateClientSecret() : undefined;
      checkJwksUri(definition, deps.allowPrivateJwksUri ?? false);
      const row = await db.transaction(async (tx) => {
        await checkAgainstResourceServers(tx, definition);
        const created = await createClientStore(tx).insert({
          clientId,
          clientName: definition.client_name ?? clientId,
          clientSecretHash: secret === undefined ? null : hasher.hash(secret),
          metadata: metadataOf(definition),
          allowedResources: definition.allowed_resources,
          requireMfa: definition.require_mfa,
          firstParty: definition.first_party,
        });
        const access = await accessOf(tx, created);
        assertMayManage(audit, 'create', access);
        // Inside the transaction: a client the provider would refuse is never committed.
        await validateWithProvider(created);
        await recordAudit(tx, audit, {
          type: 'client.created',
          target: clientId,
          details: {
            grant_types: definition.grant_types,
            auth_method: definition.token_endpoint_auth_method,
            allowed_resources: definition.allowed_resources,
            granted: access.access,
          },
        });
        return created;
      });
      return withSecret(presentClient(row), secret);
    },

    async update(clientId: string, patch: PatchClientBody, audit: AdminContext, ifMatch?: string): Promise<ClientResponse & { client_secret?: string }> {
      let secret: string | undefined;
      let waitForCredentials = false;
      const row = await db.transaction(async (tx) => {
        const store = createClientStore(tx);
        const current = await store.findForUpdate(clientId);
        if (current === undefined) throw notFound();
        checkIfMatch(ifMatch, presentClient(current));
        const stored = {
          client_name: current.client_name,
          ...current.metadata,
          allowed_resources: current.allowed_resources,
          require_mfa: current.require_mfa,
          first_party: current.first_party,
        };
        const merged: Record<string, unknown> = { ...stored };
        for (const [key, value] of Object.entries(patch)) {
          if (value === null) delete merged[key];
          else if (value !== undefined) merged[key] = value;
        }
        // A changed grant set re-derives response_types unless the patch names them.
        if (patch.grant_types !== undefined && patch.response_types === undefined) delete merged['response_types'];
        const parsed = clientDefinition.safeParse(merged);
        if (!parsed.success) throw invalid(fieldErrors(parsed.error));
        const definition = parsed.data;
        checkJwksUri(definition, deps.allowPrivateJwksUri ?? false);
        await checkAgainstResourceServers(tx, definition);

        const needsSecret = SECRET_AUTH_METHODS.includes(definition.token_endpoint_auth_method);
        let secretHash: string | null | undefined;
        if (needsSecret && current.client_secret_hash === null) {
          secret = generateClientSecret();
          secretHash = hasher.hash(secret);
        } else if (!needsSecret && current.client_secret_hash !== null) {
          secretHash = null;
        }
        const updated = await store.update(clientId, {
          clientName: definition.client_name ?? current.client_name,
          metadata: metadataOf(definition),
          allowedResources: definition.allowed_resources,
          requireMfa: definition.require_mfa,
          firstParty: definition.first_party,
          ...(secretHash === undefined ? {} : { clientSecretHash: secretHash }),
        });
        if (updated === undefined) throw notFound();
        // SPEC §5: both what the client could get before the change and what it may get after.
        const before = await accessOf(tx, current);
        const after = await accessOf(tx, updated);
        assertMayManage(audit, 'change', before, after);
        await validateWithProvider(updated);
        await recordAudit(tx, audit, {
          type: 'client.updated',
          target: clientId,
          details: {
            fields: Object.keys(patch).sort(),
            secret_issued: secret !== undefined,
            before: before.access,
            after: after.access,
            granted: added(before.access, after.access),
            removed: added(after.access, before.access),
          },
        });
        waitForCredentials = credentialsChanged(current, updated) && after.privileged.resources.length > 0;
        return updated;
      });
      deps.forget?.(clientId);
      if (waitForCredentials) await untilNewCredentialsCount(row);
      return withSecret(presentClient(row), secret);
    },

    /** SPEC §5: the client can no longer authenticate; its grants, codes and refresh tokens go too. */
    async delete(clientId: string, audit: AdminContext): Promise<void> {
      await db.transaction(async (tx) => {
        const store = createClientStore(tx);
        const current = await store.findForUpdate(clientId);
        if (current === undefined) throw notFound();
        const access = await accessOf(tx, current);
        assertMayManage(audit, 'delete', access);
        if (!(await store.delete(clientId))) throw notFound();
        const revoked = await createOidcModelStore(tx).revokeByClientId(clientId);
        await recordAudit(tx, audit, { type: 'client.deleted', target: clientId, details: { revoked_artifacts: revoked, revoked: access.access } });
      });
      deps.forget?.(clientId);
    },

    async rotateSecret(clientId: string, audit: AdminContext): Promise<ClientSecretResponse> {
      const secret = generateClientSecret();
      const { row, privileged } = await db.transaction(async (tx) => {
        const store = createClientStore(tx);
        const current = await store.findForUpdate(clientId);
        if (current === undefined) throw notFound();
        const access = await accessOf(tx, current);
        // Whoever holds the new secret gets everything the client may get.
        assertMayManage(audit, 'rotate the secret of', access);
        if (!SECRET_AUTH_METHODS.includes(current.metadata['token_endpoint_auth_method'] as string)) {
          throw new Conflict('This client does not authenticate with a secret.');
        }
        const updated = await store.update(clientId, { clientSecretHash: hasher.hash(secret) });
        if (updated === undefined) throw notFound();
        await recordAudit(tx, audit, { type: 'client.secret_rotated', target: clientId, details: { granted: access.access } });
        return { row: updated, privileged: access.privileged.resources.length > 0 };
      });
      deps.forget?.(clientId);
      if (privileged) await untilNewCredentialsCount(row);
      return { client_id: clientId, client_secret: secret, client_secret_expires_at: 0 };
    },
  };
}

export type ClientService = ReturnType<typeof createClientService>;
