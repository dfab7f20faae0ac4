import { onlyRow, type Queryable } from './database.js';

export interface GatewayRouteRow extends Record<string, unknown> {
  id: string;
  seq: string;
  host: string;
  path_prefix: string;
  methods: string[] | null;
  resource_server: string | null;
  required_scopes: string[];
  required_roles: string[];
  require_mfa: boolean;
  anonymous: boolean;
  browser_sign_in: boolean;
  upstream_token: string;
  upstream_resource_server: string | null;
  identity_headers: string;
  created_at: Date;
  updated_at: Date;
}

export interface GatewayRouteFields {
  readonly host: string;
  readonly pathPrefix: string;
  readonly methods: readonly string[] | null;
  readonly resourceServer: string | null;
  readonly requiredScopes: readonly string[];
  readonly requiredRoles: readonly string[];
  readonly requireMfa: boolean;
  readonly anonymous: boolean;
  readonly browserSignIn: boolean;
  readonly upstreamToken: string;
  readonly upstreamResourceServer: string | null;
  readonly identityHeaders: string;
}

const COLUMNS =
  'id, seq::text AS seq, host, path_prefix, methods, resource_server, required_scopes, required_roles, require_mfa, anonymous, browser_sign_in, upstream_token, upstream_resource_server, identity_headers, created_at, updated_at';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function values(fields: GatewayRouteFields): unknown[] {
  return [
    fields.host,
    fields.pathPrefix,
    fields.methods,
    fields.resourceServer,
    fields.requiredScopes,
    fields.requiredRoles,
    fields.requireMfa,
    fields.anonymous,
    fields.browserSignIn,
    fields.upstreamToken,
    fields.upstreamResourceServer,
    fields.identityHeaders,
  ];
}

function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown }).code === '23505';
}

export function createGatewayRouteStore(db: Queryable) {
  return {
    async findById(id: string, options: { forUpdate?: boolean } = {}): Promise<GatewayRouteRow | undefined> {
      // Ids are UUIDs; anything else cannot exist (and would be a cast error in SQL).
      if (!UUID.test(id)) return undefined;
      const { rows } = await db.query<GatewayRouteRow>(`SELECT ${COLUMNS} FROM gateway_routes WHERE id = $1${options.forUpdate === true ? ' FOR UPDATE' : ''}`, [id]);
      return rows[0];
    },
    /** How many there are, for the console's overview (a count(*): cheap at tens of thousands of rows). */
    async count(): Promise<number> {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM gateway_routes');
      return rows[0]?.n ?? 0;
    },
    async list(page: { after: string | undefined; limit: number }): Promise<GatewayRouteRow[]> {
      // Qualified: a bare `seq` would name the text alias in COLUMNS.
      const { rows } = await db.query<GatewayRouteRow>(`SELECT ${COLUMNS} FROM gateway_routes WHERE seq > $1::bigint ORDER BY gateway_routes.seq LIMIT $2`, [
        page.after ?? '0',
        page.limit,
      ]);
      return rows;
    },
    /** Every route, for the gateway's in-memory route table. */
    async all(): Promise<GatewayRouteRow[]> {
      const { rows } = await db.query<GatewayRouteRow>(`SELECT ${COLUMNS} FROM gateway_routes ORDER BY gateway_routes.seq`);
      return rows;
    },
    /** The hosts with a route that signs browsers in (for the gateway's own client, src/oidc/gateway-client.ts). */
    async browserHosts(): Promise<string[]> {
      const { rows } = await db.query<{ host: string }>('SELECT DISTINCT host FROM gateway_routes WHERE browser_sign_in ORDER BY host');
      return rows.map((row) => row.host);
    },
    /** Undefined when a route with the same host, prefix and methods exists. */
    async insert(fields: GatewayRouteFields): Promise<GatewayRouteRow | undefined> {
      const { rows } = await db.query<GatewayRouteRow>(
        `INSERT INTO gateway_routes (host, path_prefix, methods, resource_server, required_scopes, required_roles, require_mfa, anonymous,
           browser_sign_in, upstream_token, upstream_resource_server, identity_headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING RETURNING ${COLUMNS}`,
        values(fields),
      );
      return rows[0];
    },
    /** Undefined when another route already has the new host, prefix and methods. */
    async update(id: string, fields: GatewayRouteFields): Promise<GatewayRouteRow | undefined> {
      try {
        const result = await db.query<GatewayRouteRow>(
          `UPDATE gateway_routes SET host = $2, path_prefix = $3, methods = $4, resource_server = $5, required_scopes = $6, required_roles = $7,
             require_mfa = $8, anonymous = $9, browser_sign_in = $10, upstream_token = $11, upstream_resource_server = $12, identity_headers = $13,
             updated_at = now()
           WHERE id = $1 RETURNING ${COLUMNS}`,
          [id, ...values(fields)],
        );
        return onlyRow(result);
      } catch (error) {
        if (isUniqueViolation(error)) return undefined;
        throw error;
      }
    },
    async delete(id: string): Promise<void> {
      await db.query('DELETE FROM gateway_routes WHERE id = $1', [id]);
    },
  };
}

export type GatewayRouteStore = ReturnType<typeof createGatewayRouteStore>;
