import { z } from 'zod';
import type { GatewayRouteRow } from '../../db/gateway-routes.js';
import { HTTP_METHODS, IDENTITY_HEADERS, UPSTREAM_TOKENS } from './schema.js';

const timestamp = z.iso.datetime();

/** A gateway route as the admin API shows it (the OpenAPI document's `GatewayRoute`). */
export const gatewayRouteResponse = z
  .object({
    id: z.uuid(),
    host: z.string(),
    path_prefix: z.string(),
    methods: z.array(z.enum(HTTP_METHODS)).nullable().describe('Sorted; null: all methods.'),
    resource_server: z.string().nullable(),
    required_scopes: z.array(z.string()),
    required_roles: z.array(z.string()),
    require_mfa: z.boolean(),
    anonymous: z.boolean(),
    browser_sign_in: z.boolean(),
    upstream_token: z.enum(UPSTREAM_TOKENS),
    upstream_resource_server: z.string().nullable(),
    identity_headers: z.enum(IDENTITY_HEADERS),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .describe('A gateway route (SPEC §7): which requests the gateway lets through, and with which identity.');

export type GatewayRouteResponse = z.infer<typeof gatewayRouteResponse>;

export function presentGatewayRoute(row: GatewayRouteRow): GatewayRouteResponse {
  return {
    id: row.id,
    host: row.host,
    path_prefix: row.path_prefix,
    methods: row.methods as GatewayRouteResponse['methods'],
    resource_server: row.resource_server,
    required_scopes: row.required_scopes,
    required_roles: row.required_roles,
    require_mfa: row.require_mfa,
    anonymous: row.anonymous,
    browser_sign_in: row.browser_sign_in,
    upstream_token: row.upstream_token as GatewayRouteResponse['upstream_token'],
    upstream_resource_server: row.upstream_resource_server,
    identity_headers: row.identity_headers as GatewayRouteResponse['identity_headers'],
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}
