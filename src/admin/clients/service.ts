import { createClientStore, type ClientRow } from '../../db/clients.js';
import type { Database, Queryable } from '../../db/database.js';
import { createOidcModelStore } from '../../db/oidc-models.js';
import { createResourceServerStore } from '../../db/resource-servers.js';
import { generateClientId, generateClientSecret, type ClientSecretHasher } from '../../crypto/client-secret.js';
import { clientMetadataFromRow, OIDC_SCOPES } from '../../oidc/clients.js';
import { recordAudit, type AuditContext } from '../audit.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';
import { fieldErrors, ProblemError, type FieldError } from '../problem.js';
import { presentClient, withSecret, type ClientResponse, type ClientSecretResponse } from './presenter.js';
import { checkIfMatch } from '../etag.js';
import { clientDefinition, SECRET_AUTH_METHODS, type ClientDefinition, type PatchClientBody } from './schema.js';

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
}

function notFound(): ProblemError {
  return new ProblemError('not_found', 'No client with that client_id.');
}

function invalid(errors: FieldError[]): ProblemError {
  return new ProblemError('validation_failed', 'The request body is invalid.', { errors });
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
  };
}

/** Rules that need the database: resources must exist, scopes must be theirs. */
async function checkAgainstResourceServers(db: Queryable, definition: ClientDefinition): Promise<void> {
  const servers = await createResourceServerStore(db).findByIdentifiers(definition.allowed_resources);
  const known = new Set(servers.map((s) => s.identifier));
  const errors: FieldError[] = [];
  definition.allowed_resources.forEach((identifier, index) => {
    if (!known.has(identifier)) errors.push({ pointer: `#/allowed_resources/${index}`, detail: 'no resource server has this identifier' });
  });
  if (definition.scope !== undefined) {
    const offered = new Set<string>([...OIDC_SCOPES, ...servers.flatMap((s) => s.scopes)]);
    const unknown = definition.scope.split(' ').filter((s) => !offered.has(s));
    if (unknown.length > 0) {
      errors.push({ pointer: '#/scope', detail: `not defined by the allowed resource servers: ${unknown.join(' ')}` });
    }
  }
  if (errors.length > 0) throw invalid(errors);
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
    async list(query: { limit: number; cursor?: string | undefined; client_name?: string | undefined }): Promise<Page<ClientResponse>> {
      const rows = await createClientStore(db).list({ after: decodeCursor(query.cursor), limit: query.limit + 1, namePrefix: query.client_name });
      return toPage(rows, query.limit, (row) => row.seq, presentClient);
    },

    async get(clientId: string): Promise<ClientResponse> {
      const row = await createClientStore(db).find(clientId);
      if (row === undefined) throw notFound();
      return presentClient(row);
    },

    async create(definition: ClientDefinition, audit: AuditContext): Promise<ClientResponse & { client_secret?: string }> {
      const clientId = generateClientId();
      const secret = SECRET_AUTH_METHODS.includes(definition.token_endpoint_auth_method) ? generateClientSecret() : undefined;
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
        // Inside the transaction: a client the provider would refuse is never committed.
        await validateWithProvider(created);
        await recordAudit(tx, audit, {
          type: 'client.created',
          target: clientId,
          details: { grant_types: definition.grant_types, auth_method: definition.token_endpoint_auth_method, allowed_resources: definition.allowed_resources },
        });
        return created;
      });
      return withSecret(presentClient(row), secret);
    },

    async update(clientId: string, patch: PatchClientBody, audit: AuditContext, ifMatch?: string): Promise<ClientResponse & { client_secret?: string }> {
      let secret: string | undefined;
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
        await validateWithProvider(updated);
        await recordAudit(tx, audit, {
          type: 'client.updated',
          target: clientId,
          details: { fields: Object.keys(patch).sort(), secret_issued: secret !== undefined },
        });
        return updated;
      });
      deps.forget?.(clientId);
      return withSecret(presentClient(row), secret);
    },

    /** SPEC §5: the client can no longer authenticate; its grants, codes and refresh tokens go too. */
    async delete(clientId: string, audit: AuditContext): Promise<void> {
      await db.transaction(async (tx) => {
        if (!(await createClientStore(tx).delete(clientId))) throw notFound();
        const revoked = await createOidcModelStore(tx).revokeByClientId(clientId);
        await recordAudit(tx, audit, { type: 'client.deleted', target: clientId, details: { revoked_artifacts: revoked } });
      });
      deps.forget?.(clientId);
    },

    async rotateSecret(clientId: string, audit: AuditContext): Promise<ClientSecretResponse> {
      const secret = generateClientSecret();
      await db.transaction(async (tx) => {
        const store = createClientStore(tx);
        const current = await store.findForUpdate(clientId);
        if (current === undefined) throw notFound();
        if (!SECRET_AUTH_METHODS.includes(current.metadata['token_endpoint_auth_method'] as string)) {
          throw new ProblemError('conflict', 'This client does not authenticate with a secret.');
        }
        await store.update(clientId, { clientSecretHash: hasher.hash(secret) });
        await recordAudit(tx, audit, { type: 'client.secret_rotated', target: clientId });
      });
      deps.forget?.(clientId);
      return { client_id: clientId, client_secret: secret, client_secret_expires_at: 0 };
    },
  };
}

export type ClientService = ReturnType<typeof createClientService>;
