import { pageOf } from '../../management/pagination.js';
import { AUTHENTICATED, named, route, type RouteTable } from '../route.js';
import { auditEventResponse } from '../../management/audit-events/presenter.js';
import { auditEventQuery } from '../../management/audit-events/schema.js';

/** The audit trail: `/admin/v1/audit-events` (SPEC §5), scope `admin:audit`. Read-only: no route changes or deletes an event. */

const AuditEvent = named('AuditEvent', auditEventResponse);
const AuditEventPage = named('AuditEventPage', pageOf(auditEventResponse), [AuditEvent]);

export const auditEventRoutes: RouteTable = {
  tag: { name: 'Audit', description: 'The append-only audit trail. Scope `admin:audit`.' },
  routes: [
    route({
      operationId: 'listAuditEvents',
      method: 'get',
      path: '/audit-events',
      summary: 'List audit events',
      description: 'Newest first. Every change made through the admin API or the CLI is recorded, and so are sign-in and second-factor events.',
      scope: 'admin:audit',
      query: auditEventQuery,
      response: { status: 200, description: 'A page of audit events.', schema: AuditEventPage },
      errors: [400, ...AUTHENTICATED],
      handler: ({ query }, { auditEvents }) => auditEvents.list(query),
    }),
  ],
};
