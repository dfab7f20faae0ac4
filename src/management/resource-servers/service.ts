import type { Database } from '../../db/database.js';
import { createClientStore } from '../../db/clients.js';
import { createResourceServerStore, type ResourceServerFields, type ResourceServerRow } from '../../db/resource-servers.js';
import type { ResourceServerRegistry } from '../../oidc/resource-server-registry.js';
import { recordAudit, type AuditContext } from '../../audit/audit.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';
import { presentResourceServer, type ResourceServerResponse } from './presenter.js';
import { checkIfMatch } from '../etag.js';
import type { CreateResourceServerBody, PatchResourceServerBody } from './schema.js';
import { Conflict, NotFound, ValidationFailed, type ManagementError } from '../errors.js';

export interface ResourceServerServiceDeps {
  readonly db: Database;
  readonly registry: ResourceServerRegistry;
}

function notFound(): ManagementError {
  return new NotFound('No resource server with that id.');
}

function toFields(row: ResourceServerRow): ResourceServerFields {
  return {
    name: row.name,
    scopes: row.scopes,
    accessTokenTtl: row.access_token_ttl,
    signingAlg: row.signing_alg,
    innerEncryptionJwk: row.inner_encryption_jwk,
    encryptWholeToken: row.encrypt_whole_token,
    tokenFormat: row.token_format,
    requireSenderConstraint: row.require_sender_constraint,
  };
}

/** Resource servers: the admin API and the CLI both go through here (one code path). */
export function createResourceServerService(deps: ResourceServerServiceDeps) {
  const { db, registry } = deps;

  return {
    /** How many there are (the console's overview). */
    count(): Promise<number> {
      return createResourceServerStore(db).count();
    },

    async list(query: { limit: number; cursor?: string | undefined }): Promise<Page<ResourceServerResponse>> {
      const rows = await createResourceServerStore(db).list({ after: decodeCursor(query.cursor), limit: query.limit + 1 });
      return toPage(rows, query.limit, (row) => row.seq, presentResourceServer);
    },

    async get(id: string): Promise<ResourceServerResponse> {
      const row = await createResourceServerStore(db).findById(id);
      if (row === undefined) throw notFound();
      return presentResourceServer(row);
    },

    async create(body: CreateResourceServerBody, audit: AuditContext): Promise<ResourceServerResponse> {
      const row = await db.transaction(async (tx) => {
        const created = await createResourceServerStore(tx).insert(body.identifier, {
          name: body.name,
          scopes: body.scopes,
          accessTokenTtl: body.access_token_ttl,
          signingAlg: body.signing_alg,
          innerEncryptionJwk: body.inner_encryption_jwk,
          encryptWholeToken: body.encrypt_whole_token,
          tokenFormat: body.token_format,
          requireSenderConstraint: body.require_sender_constraint,
        });
        if (created === undefined) {
          throw new Conflict('A resource server with that identifier already exists.', {
            errors: [{ pointer: '#/identifier', detail: 'already registered' }],
          });
        }
        await recordAudit(tx, audit, {
          type: 'resource_server.created',
          target: created.id,
          details: { identifier: created.identifier, scopes: created.scopes, inner_layer: created.inner_encryption_jwk !== null, token_format: created.token_format, require_sender_constraint: created.require_sender_constraint },
        });
        return created;
      });
      registry.invalidate(row.identifier);
      return presentResourceServer(row);
    },

    async update(id: string, patch: PatchResourceServerBody, audit: AuditContext, ifMatch?: string): Promise<ResourceServerResponse> {
      const row = await db.transaction(async (tx) => {
        const store = createResourceServerStore(tx);
        const current = await store.findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        checkIfMatch(ifMatch, presentResourceServer(current));
        if (current.built_in) throw new Conflict('The built-in admin API resource server cannot be changed.');
        const fields = toFields(current);
        const next: ResourceServerFields = {
          name: patch.name ?? fields.name,
          scopes: patch.scopes ?? fields.scopes,
          accessTokenTtl: patch.access_token_ttl ?? fields.accessTokenTtl,
          signingAlg: patch.signing_alg ?? fields.signingAlg,
          innerEncryptionJwk: patch.inner_encryption_jwk === undefined ? fields.innerEncryptionJwk : (patch.inner_encryption_jwk),
          encryptWholeToken: patch.encrypt_whole_token ?? fields.encryptWholeToken,
          tokenFormat: patch.token_format ?? fields.tokenFormat,
          requireSenderConstraint: patch.require_sender_constraint ?? fields.requireSenderConstraint,
        };
        if (next.encryptWholeToken && next.innerEncryptionJwk === null) {
          throw new ValidationFailed('The request body is invalid.', {
            errors: [{ pointer: '#/encrypt_whole_token', detail: 'needs an inner_encryption_jwk to encrypt to' }],
          });
        }
        const updated = await store.update(id, next);
        await recordAudit(tx, audit, { type: 'resource_server.updated', target: id, details: { fields: Object.keys(patch).sort() } });
        return updated;
      });
      registry.invalidate(row.identifier);
      return presentResourceServer(row);
    },

    async delete(id: string, audit: AuditContext): Promise<void> {
      const identifier = await db.transaction(async (tx) => {
        const store = createResourceServerStore(tx);
        const current = await store.findById(id, { forUpdate: true });
        if (current === undefined) throw notFound();
        if (current.built_in) throw new Conflict('The built-in admin API resource server cannot be deleted.');
        const clients = await createClientStore(tx).referencing(current.identifier);
        if (clients.length > 0) {
          throw new Conflict('Clients still name this resource server in allowed_resources.', { clientIds: clients });
        }
        await store.delete(id);
        await recordAudit(tx, audit, { type: 'resource_server.deleted', target: id, details: { identifier: current.identifier } });
        return current.identifier;
      });
      registry.invalidate(identifier);
    },
  };
}

export type ResourceServerService = ReturnType<typeof createResourceServerService>;
