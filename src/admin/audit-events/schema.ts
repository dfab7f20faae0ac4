import { z } from 'zod';
import { pageQuery } from '../pagination.js';

/** `GET /admin/v1/audit-events` filters (SPEC §5), newest first. */
export const auditEventQuery = z.object({
  ...pageQuery,
  type: z.string().trim().min(1).max(100).optional(),
  since: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-01-31T00:00:00Z' }).optional(),
  actor: z.string().trim().min(1).max(200).optional(),
  target: z.string().trim().min(1).max(200).optional(),
});

export type AuditEventQuery = z.infer<typeof auditEventQuery>;
