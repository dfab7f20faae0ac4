import { z } from 'zod';
import { pageQuery } from '../pagination.js';

/** `GET /admin/v1/audit-events` filters (SPEC §5), newest first. */
export const auditEventQuery = z.object({
  ...pageQuery,
  type: z.string().trim().min(1).max(100).describe('Only events of this type, e.g. `client.created`.').optional(),
  since: z.iso
    .datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z' })
    .describe('Only events at or after this time (RFC 3339 date-time).')
    .optional(),
  actor: z.string().trim().min(1).max(200).describe('Only events by this actor (an admin client_id, `cli`, or a person’s id).').optional(),
  target: z.string().trim().min(1).max(200).describe('Only events about this target (a client_id, a resource server or user id, a kid).').optional(),
});

export type AuditEventQuery = z.infer<typeof auditEventQuery>;
