import type { Queryable } from '../db/database.js';
import { createGatewayRouteStore, type GatewayRouteRow } from '../db/gateway-routes.js';
import { createLookupCache } from '../oidc/lookup-cache.js';

/**
 * The gateway's routes (SPEC §7) as the hot path needs them: every route in memory, sorted most
 * specific first, so a decision is a scan with no query. Kept honest like the resource-server
 * cache: every committed change is announced (migrations/0011) and drops the table, which is
 * never older than CACHE_TTL_MS and not cached at all while notifications are not known to flow.
 */
export const ROUTE_TABLE_TTL_MS = 3_000;

export interface RouteRequest {
  /** The Host the client asked for, with its port when it named one. */
  readonly host: string;
  /** The request path, without the query. */
  readonly path: string;
  readonly method: string;
}

interface CompiledRoute {
  readonly row: GatewayRouteRow;
  /** Exact host without a port, or the suffix ('.example.com') of a wildcard. */
  readonly hostName: string;
  readonly port: string | undefined;
  readonly wildcard: boolean;
  readonly methods: ReadonlySet<string> | undefined;
}

function splitPort(host: string): { name: string; port: string | undefined } {
  const colon = host.lastIndexOf(':');
  // An IPv6 literal ('[::1]') has colons of its own; its port follows the ']'.
  if (colon < 0 || host.lastIndexOf(']') > colon) return { name: host, port: undefined };
  return { name: host.slice(0, colon), port: host.slice(colon + 1) };
}

function compile(row: GatewayRouteRow): CompiledRoute {
  const { name, port } = splitPort(row.host);
  const wildcard = name.startsWith('*.');
  return { row, hostName: wildcard ? name.slice(1) : name, port, wildcard, methods: row.methods === null ? undefined : new Set(row.methods) };
}

/**
 * Specificity, most specific first: an exact host beats a wildcard (a longer wildcard suffix beats a
 * shorter one), a host with a port beats one without, then the longest path prefix, then a route
 * naming methods beats one for all methods.
 */
function bySpecificity(a: CompiledRoute, b: CompiledRoute): number {
  if (a.wildcard !== b.wildcard) return a.wildcard ? 1 : -1;
  if (a.hostName.length !== b.hostName.length) return b.hostName.length - a.hostName.length;
  if ((a.port === undefined) !== (b.port === undefined)) return a.port === undefined ? 1 : -1;
  if (a.row.path_prefix.length !== b.row.path_prefix.length) return b.row.path_prefix.length - a.row.path_prefix.length;
  if ((a.methods === undefined) !== (b.methods === undefined)) return a.methods === undefined ? 1 : -1;
  return 0;
}

/** `/api` covers `/api` and `/api/x`, never `/apix`; `/` and `/api/` cover what starts with them. */
function coversPath(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.endsWith('/') || path[prefix.length] === '/';
}

function coversHost(route: CompiledRoute, name: string, port: string | undefined): boolean {
  if (route.port !== undefined && route.port !== port) return false;
  // A wildcard covers subdomains only, not the bare domain: '*.example.com' is not 'example.com'.
  return route.wildcard ? name.endsWith(route.hostName) && name.length > route.hostName.length : name === route.hostName;
}

export type RouteMatcher = (request: RouteRequest) => GatewayRouteRow | undefined;

/** The most specific route for a request, or undefined: no route, no entry (deny). */
export function buildRouteMatcher(rows: readonly GatewayRouteRow[]): RouteMatcher {
  const routes = rows.map(compile).sort(bySpecificity);
  return (request) => {
    // Host names are case-insensitive and may carry a trailing dot (RFC 1034 absolute form).
    const { name: rawName, port } = splitPort(request.host.trim().toLowerCase());
    const name = rawName.endsWith('.') ? rawName.slice(0, -1) : rawName;
    const method = request.method.toUpperCase();
    for (const route of routes) {
      if (!coversHost(route, name, port)) continue;
      if (!coversPath(route.row.path_prefix, request.path)) continue;
      if (route.methods !== undefined && !route.methods.has(method)) continue;
      return route.row;
    }
    return undefined;
  };
}

export interface RouteTable {
  match(request: RouteRequest): Promise<GatewayRouteRow | undefined>;
  /** Drops the table after a change; the next request loads it again. */
  invalidate(): void;
}

export function createRouteTable(db: Queryable, options: { isLive: () => boolean; ttlMs?: number; now?: () => number }): RouteTable {
  const store = createGatewayRouteStore(db);
  const cache = createLookupCache<RouteMatcher>({
    ttlMs: options.ttlMs ?? ROUTE_TABLE_TTL_MS,
    maxEntries: 1,
    isLive: options.isLive,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const load = async (): Promise<RouteMatcher> => buildRouteMatcher(await store.all());
  return {
    async match(request) {
      const matcher = await cache.get('', load);
      return matcher?.(request);
    },
    invalidate: () => cache.clear(),
  };
}
