import type { AuditEventRow } from '../../db/audit-events.js';

export function presentAuditEvent(row: AuditEventRow) {
  return {
    id: row.id,
    occurred_at: row.occurred_at.toISOString(),
    type: row.type,
    actor: row.actor,
    target: row.target,
    client_ip: row.client_ip,
    request_id: row.request_id,
    outcome: row.outcome,
    details: row.details,
  };
}

export type AuditEventResponse = ReturnType<typeof presentAuditEvent>;
