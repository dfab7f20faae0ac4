import type Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { AuditEventService } from '../../management/audit-events/service.js';
import { auditEventQuery, type AuditEventQuery } from '../../management/audit-events/schema.js';
import { ValidationFailed } from '../../management/errors.js';
import { DEFAULT_LIMIT } from '../../management/pagination.js';
import { CONSOLE_PATH } from '../../oidc/console-client.js';
import type { ConsoleAreaModule, ConsoleKit } from '../routes.js';

/**
 * SPEC §11, the console's audit area: `<ISSUER>/console/audit` lists the audit trail newest
 * first through the same service and query schema as `GET /admin/v1/audit-events`, with keyset
 * paging ("Older events" carries the cursor and the filters). The filter form is a GET: it
 * reads and changes nothing, so it needs no CSRF token, and a filtered page can be bookmarked.
 */

const FIELDS = ['type', 'actor', 'target', 'since'] as const;
type Field = (typeof FIELDS)[number];
const PARAMS = [...FIELDS, 'limit', 'cursor'] as const;

/** A `datetime-local` value (no seconds, no offset) as the RFC 3339 date-time the schema wants, read as UTC. */
export function normalizeSince(value: string): string {
  const text = value.trim();
  // What a datetime-local control sends: minutes, or seconds with an optional fraction.
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(text)) return `${text}:00Z`;
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/.test(text) || /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,3}$/.test(text)) return `${text}Z`;
  return text;
}

interface Parsed {
  /** What the form shows again: the values as given. */
  readonly values: Record<Field, string>;
  readonly query?: AuditEventQuery;
  readonly fieldErrors: Partial<Record<Field, string>>;
  readonly formErrors: string[];
}

/** The page's query string as the admin API's audit query; a value given twice or one the schema refuses is a field error. */
function parseQuery(raw: ParameterizedContext['query']): Parsed {
  const values = { type: '', actor: '', target: '', since: '' };
  const input: Record<string, string> = {};
  const fieldErrors: Partial<Record<Field, string>> = {};
  const formErrors: string[] = [];
  for (const name of PARAMS) {
    const value = raw[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      if ((FIELDS as readonly string[]).includes(name)) fieldErrors[name as Field] = 'given more than once';
      else formErrors.push(`${name} was given more than once.`);
      continue;
    }
    if (name !== 'limit' && name !== 'cursor') values[name] = value;
    // An empty field of the form is no filter.
    if (value.trim() === '') continue;
    input[name] = name === 'since' ? normalizeSince(value) : value;
  }
  if (Object.keys(fieldErrors).length > 0 || formErrors.length > 0) return { values, fieldErrors, formErrors };
  const result = auditEventQuery.safeParse(input);
  if (result.success) return { values, query: result.data, fieldErrors, formErrors };
  for (const issue of result.error.issues) {
    const name = issue.path[0];
    if (typeof name === 'string' && (FIELDS as readonly string[]).includes(name)) fieldErrors[name as Field] ??= issue.message;
    else formErrors.push(name === 'cursor' ? 'The “Older events” link is not valid; start again from the newest events.' : issue.message);
  }
  return { values, fieldErrors, formErrors };
}

/** The link to the next page: the same filters (as the schema read them), the same page size, the cursor. */
function olderHref(base: string, query: AuditEventQuery, cursor: string): string {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const value = query[name];
    if (value !== undefined) params.set(name, value);
  }
  if (query.limit !== DEFAULT_LIMIT) params.set('limit', String(query.limit));
  params.set('cursor', cursor);
  return `${base}?${params.toString()}`;
}

export function auditArea(deps: { auditEvents: AuditEventService }): ConsoleAreaModule {
  return {
    id: 'audit',
    register(router: Router, kit: ConsoleKit) {
      const pageUrl = `${kit.consoleUrl}/audit`;
      router.get(`${CONSOLE_PATH}/audit`, kit.requireArea('audit'), async function listAuditEvents(ctx) {
        const parsed = parseQuery(ctx.query);
        const common = { title: 'Audit events', action: pageUrl, values: parsed.values, fieldErrors: parsed.fieldErrors };
        const invalid = (formErrors: string[]) => kit.render(ctx, 'console-audit', { ...common, formErrors, events: [], older: undefined }, 400);
        if (parsed.query === undefined) return invalid(parsed.formErrors);
        const query = parsed.query;
        const page = await deps.auditEvents.list(query).catch((error: unknown) => {
          // A cursor this server did not make (decodeCursor refuses it before any query).
          if (error instanceof ValidationFailed) return undefined;
          throw error;
        });
        if (page === undefined) return invalid(['The “Older events” link is not valid; start again from the newest events.']);
        const events = page.items.map((event) => ({ ...event, detailsJson: JSON.stringify(event.details), detailCount: Object.keys(event.details).length }));
        const older = page.next_cursor === null ? undefined : olderHref(pageUrl, query, page.next_cursor);
        const filtered = FIELDS.some((name) => query[name] !== undefined);
        kit.render(ctx, 'console-audit', { ...common, formErrors: [], events, older, filtered, paged: query.cursor !== undefined });
      });
    },
  };
}
