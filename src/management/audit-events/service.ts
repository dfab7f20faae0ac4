import type { Queryable } from '../../db/database.js';
import { createAuditEventStore } from '../../db/audit-events.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';
import { presentAuditEvent, type AuditEventResponse } from './presenter.js';
import type { AuditEventQuery } from './schema.js';

/** The audit trail is append-only: this service reads it; changes write it in their own transactions. */
export function createAuditEventService(deps: { db: Queryable }) {
  return {
    async list(query: AuditEventQuery): Promise<Page<AuditEventResponse>> {
      const rows = await createAuditEventStore(deps.db).list({
        type: query.type,
        since: query.since === undefined ? undefined : new Date(query.since),
        actor: query.actor,
        target: query.target,
        before: decodeCursor(query.cursor),
        limit: query.limit + 1,
      });
      return toPage(rows, query.limit, (row) => row.id, presentAuditEvent);
    },
  };
}

export type AuditEventService = ReturnType<typeof createAuditEventService>;
