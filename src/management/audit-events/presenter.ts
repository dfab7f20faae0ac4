import { z } from 'zod';
import type { AuditEventRow } from '../../db/audit-events.js';

/** An audit event as the admin API shows it (the OpenAPI document's `AuditEvent`); `presentAuditEvent` is typed by it. */
export const auditEventResponse = z
  .object({
    id: z.string().regex(/^\d+$/).describe('Increasing with time; decimal digits.'),
    occurred_at: z.iso.datetime(),
    type: z.string().describe('What happened, e.g. `client.created`, `user.disabled`, `key.rotated`, `login.failure`.'),
    actor: z.string().nullable().describe('Who did it: the admin client’s client_id, `cli`, or the person for sign-in events; null when unknown.'),
    target: z.string().nullable().describe('What it was done to: a client_id, a resource server or user id, a kid.'),
    client_ip: z.string().nullable(),
    request_id: z.string().nullable().describe('The X-Request-Id of the request that made the change.'),
    outcome: z.enum(['success', 'failure']),
    details: z.record(z.string(), z.unknown()).describe('Small, type-specific facts about the change; never a secret.'),
  })
  .describe('One recorded event: an admin change, a sign-in or a second-factor event.');

export type AuditEventResponse = z.infer<typeof auditEventResponse>;

export function presentAuditEvent(row: AuditEventRow): AuditEventResponse {
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
