import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditEventResponse } from '../../management/audit-events/presenter.js';
import { auditEventQuery, type AuditEventQuery } from '../../management/audit-events/schema.js';
import type { AuditEventService } from '../../management/audit-events/service.js';
import { MAX_LIMIT } from '../../management/pagination.js';
import { parseOrThrow } from '../../management/errors.js';
import { EXIT, type Command, type Output } from '../command.js';
import { withServices } from '../context.js';
import { given } from '../input.js';

const DEFAULT_TAIL = 20;
const POLL_INTERVAL_MS = 2_000;
/**
 * An event's id is taken when its transaction inserts it, so a slow transaction can commit an
 * event after a newer one is already shown. Each poll looks back this far (by occurred_at, the
 * transaction's start) for events not yet shown, so such late commits are printed, not lost.
 */
const LATE_COMMIT_WINDOW_MS = 10_000;

function printEvent(output: Output, event: AuditEventResponse): void {
  if (output.json) {
    output.out(`${JSON.stringify(event)}\n`);
    return;
  }
  const columns = [event.occurred_at, event.type.padEnd(24), (event.actor ?? '-').padEnd(22), (event.target ?? '-').padEnd(36), event.outcome];
  output.out(`${columns.join('  ')}\n`);
}

/** What `--follow` has shown, to print each newer event once, in id order. */
interface Shown {
  /** Events at or below this id were older than the first page: never printed. */
  readonly floor: bigint;
  readonly ids: Map<string, number>;
  newestAt: number | undefined;
}

async function newerEvents(events: AuditEventService, filters: AuditEventQuery, shown: Shown): Promise<AuditEventResponse[]> {
  const lookBack = shown.newestAt === undefined ? undefined : shown.newestAt - LATE_COMMIT_WINDOW_MS;
  const given = filters.since === undefined ? undefined : Date.parse(filters.since);
  const since = lookBack === undefined ? given : given === undefined ? lookBack : Math.max(lookBack, given);
  const found: AuditEventResponse[] = [];
  let cursor: string | undefined;
  do {
    const page = await events.list({ ...filters, since: since === undefined ? undefined : new Date(since).toISOString(), limit: MAX_LIMIT, cursor });
    for (const event of page.items) {
      if (BigInt(event.id) > shown.floor && !shown.ids.has(event.id)) found.push(event);
    }
    const oldest = page.items.at(-1);
    cursor = oldest !== undefined && BigInt(oldest.id) <= shown.floor ? undefined : (page.next_cursor ?? undefined);
  } while (cursor !== undefined);
  return found.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
}

function remember(shown: Shown, event: AuditEventResponse): void {
  const at = Date.parse(event.occurred_at);
  shown.ids.set(event.id, at);
  if (shown.newestAt === undefined || at > shown.newestAt) shown.newestAt = at;
}

function forgetOld(shown: Shown): void {
  if (shown.newestAt === undefined) return;
  const horizon = shown.newestAt - 2 * LATE_COMMIT_WINDOW_MS;
  for (const [id, at] of shown.ids) if (at < horizon) shown.ids.delete(id);
}

export const auditCommands: readonly Command[] = [
  {
    path: ['audit', 'tail'],
    summary: 'show the newest audit events; --follow waits for more',
    description: [
      'Prints the newest audit events (GET /admin/v1/audit-events), one line each: time, type, actor, target, outcome; the newest last, as tail does. With --json, one JSON object per line (JSON Lines), with every field including details.',
      `With --follow, checks for newer events every ${POLL_INTERVAL_MS / 1000} s and prints them as they come, until interrupted (Ctrl-C or SIGTERM; exit code 0).`,
    ],
    options: {
      type: { type: 'string', value: 'TYPE', field: 'type', help: 'only events of this type, e.g. client.created, user.disabled, key.rotated, login.failure' },
      actor: { type: 'string', value: 'ACTOR', field: 'actor', help: 'only events by this actor (an admin client_id, cli, a user id)' },
      target: { type: 'string', value: 'TARGET', field: 'target', help: 'only events about this client_id, user or resource server id, or kid' },
      since: { type: 'string', value: 'TIME', field: 'since', help: 'only events at or after this ISO 8601 time, e.g. 2026-01-31T00:00:00Z' },
      limit: { type: 'string', value: 'N', field: 'limit', help: `how many of the newest events to show first (default ${DEFAULT_TAIL}, at most ${MAX_LIMIT})` },
      follow: { type: 'boolean', help: 'keep printing newer events until interrupted' },
    },
    examples: ['gatehouse audit tail', 'gatehouse audit tail --type login.failure --limit 100', 'gatehouse audit tail --follow --json | jq .type'],
    async run(invocation) {
      const { output } = invocation;
      const filters: Record<string, string> = { limit: invocation.string('limit') ?? String(DEFAULT_TAIL) };
      for (const name of ['type', 'actor', 'target', 'since']) given(filters, name, invocation.string(name));
      const query = parseOrThrow(auditEventQuery, filters, 'input');

      // Installed before the database opens, so an early Ctrl-C still ends the command cleanly.
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      if (invocation.flag('follow')) {
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      }
      try {
        await withServices(output, async ({ services }) => {
          const first = await services.auditEvents.list(query);
          const newestFirst = first.items;
          for (const event of [...newestFirst].reverse()) printEvent(output, event);
          if (!invocation.flag('follow')) return;

          const oldest = newestFirst.at(-1);
          const shown: Shown = { floor: first.next_cursor !== null && oldest !== undefined ? BigInt(oldest.id) - 1n : 0n, ids: new Map(), newestAt: undefined };
          for (const event of newestFirst) remember(shown, event);
          while (!stop.signal.aborted) {
            try {
              await sleep(POLL_INTERVAL_MS, undefined, { signal: stop.signal });
            } catch {
              break; // interrupted
            }
            for (const event of await newerEvents(services.auditEvents, query, shown)) {
              printEvent(output, event);
              remember(shown, event);
            }
            forgetOld(shown);
          }
        });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      return EXIT.ok;
    },
  },
];
