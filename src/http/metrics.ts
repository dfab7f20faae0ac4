import type { ParameterizedContext } from 'koa';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PoolStats } from '../db/database.js';

/** Prometheus metrics (SPEC §6). One registry per app, so tests can build several apps. */
export function createMetrics(poolStats: () => PoolStats) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gatehouse_' });

  const requestDuration = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'HTTP request latency by route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const requests = new Counter({
    name: 'gatehouse_http_requests_total',
    help: 'HTTP requests by route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const tokensIssued = new Counter({
    name: 'gatehouse_tokens_issued_total',
    help: 'Access tokens issued at the token endpoint, by grant type and resource server (audience)',
    labelNames: ['grant_type', 'resource_server'] as const,
    registers: [registry],
  });
  const lockouts = new Counter({
    name: 'gatehouse_lockouts_total',
    help: 'Accounts locked by the sign-in throttle',
    registers: [registry],
  });
  const loginOutcomes = new Counter({
    name: 'gatehouse_login_outcomes_total',
    help: 'Sign-in attempts by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'gatehouse_rate_limited_total',
    help: 'Requests refused with 429 by rate limits, by scope (client or ip: token endpoints; page_ip: /auth, interaction pages, end-session)',
    labelNames: ['scope'] as const,
    registers: [registry],
  });
  const gatewayDecisions = new Counter({
    name: 'gatehouse_gateway_decisions_total',
    help: 'Gateway decisions (SPEC §7) by route id and outcome (allow, unauthenticated, forbidden, bad_request)',
    labelNames: ['route', 'outcome'] as const,
    registers: [registry],
  });
  for (const [name, help, pick] of [
    ['gatehouse_db_pool_connections', 'Database connections open', (s: PoolStats) => s.total],
    ['gatehouse_db_pool_idle', 'Database connections idle', (s: PoolStats) => s.idle],
    ['gatehouse_db_pool_waiting', 'Queries waiting for a database connection', (s: PoolStats) => s.waiting],
  ] as const) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(pick(poolStats()));
      },
    });
  }

  return { registry, requestDuration, requests, tokensIssued, loginOutcomes, lockouts, rateLimited, gatewayDecisions };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The route template, never the raw path: ids in paths would explode label cardinality. */
export function routeLabel(ctx: ParameterizedContext): string {
  const matched = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  if (typeof matched === 'string') return matched;
  // Set by middleware that answers for a route before its router sees the request (rate limits).
  const labelled = ctx.state.routeLabel;
  if (typeof labelled === 'string') return labelled;
  const oidcRoute = (ctx as { oidc?: { route?: unknown } }).oidc?.route;
  if (typeof oidcRoute === 'string') return `oidc:${oidcRoute}`;
  if (ctx.path.startsWith('/static/')) return '/static';
  return 'unmatched';
}

/** One finished request in the request metrics, by route template and status. */
export function recordRequest(metrics: Metrics, ctx: ParameterizedContext, seconds: number): void {
  const labels = { method: ctx.method, route: routeLabel(ctx), status: String(ctx.status) };
  metrics.requestDuration.observe(labels, seconds);
  metrics.requests.inc(labels);
}
