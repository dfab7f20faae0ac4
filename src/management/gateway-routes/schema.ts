import { z } from 'zod';
import { absoluteUri, scopeToken, unique } from '../schema-common.js';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'] as const;
export const UPSTREAM_TOKENS = ['pass', 'exchange'] as const;
export const IDENTITY_HEADERS = ['public', 'trusted', 'none'] as const;

/** A DNS label (RFC 1123): 1 to 63 letters, digits and inner hyphens. */
function isLabel(label: string): boolean {
  return /^[a-z0-9-]{1,63}$/.test(label) && !label.startsWith('-') && !label.endsWith('-');
}

/** A DNS name (labels of letters, digits and hyphens), optionally `*.`-prefixed and with a port. */
function isRouteHost(value: string): boolean {
  let rest = value;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    const port = rest.slice(colon + 1);
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65_535) return false;
    rest = rest.slice(0, colon);
  }
  if (rest.startsWith('*.')) rest = rest.slice(2);
  const labels = rest.split('.');
  return rest.length <= 253 && labels.every(isLabel);
}

const host = z
  .string({ error: 'must be a host name' })
  .trim()
  .toLowerCase()
  .max(260, 'must be at most 260 characters')
  .refine(isRouteHost, 'must be a host name (e.g. api.example.com or api.example.com:8443), optionally with a leading "*." wildcard')
  .meta({ description: 'The request’s host: exact (optionally with `:port`), or `*.example.com` for any subdomain. An exact host beats a wildcard.' });

const pathPrefix = z
  .string({ error: 'must be a path' })
  .max(1024, 'must be at most 1024 characters')
  .regex(/^\/[^\s?#]*$/, 'must start with "/" and hold no spaces, "?" or "#"')
  .meta({ description: 'Matches this path and everything below it on a segment boundary: `/api` matches `/api` and `/api/x`, not `/apix`. The longest prefix wins.' });

const methods = z
  .array(z.enum(HTTP_METHODS, { error: `must be one of ${HTTP_METHODS.join(', ')} (uppercase)` }))
  .min(1, 'must name at least one method (null means all)')
  .nullable()
  .meta({ description: 'The methods this route covers; null: all.' });

const roleName = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'a role is 1 to 128 of A-Z a-z 0-9 . _ : -');

const fields = {
  host,
  path_prefix: pathPrefix,
  methods,
  resource_server: absoluteUri.nullable().meta({ description: 'The identifier of the resource server whose tokens this route accepts (the audience); null only for an anonymous route.' }),
  required_scopes: z.array(scopeToken).max(100, 'at most 100 scopes').refine(unique, 'scopes must be unique').meta({ description: 'Scopes of `resource_server`, all needed.' }),
  required_roles: z.array(roleName).max(100, 'at most 100 roles').refine(unique, 'roles must be unique').meta({ description: 'A person needs one of these roles.' }),
  require_mfa: z.boolean({ error: 'must be true or false' }),
  anonymous: z.boolean({ error: 'must be true or false' }).meta({ description: 'Let requests through without identity.' }),
  browser_sign_in: z.boolean({ error: 'must be true or false' }),
  upstream_token: z.enum(UPSTREAM_TOKENS, { error: `must be one of ${UPSTREAM_TOKENS.join(', ')}` }),
  upstream_resource_server: absoluteUri.nullable().meta({ description: 'With `upstream_token: "exchange"`: the resource server the exchanged token is for (default: `resource_server`).' }),
  identity_headers: z.enum(IDENTITY_HEADERS, { error: `must be one of ${IDENTITY_HEADERS.join(', ')}` }),
};

export const createGatewayRouteBody = z.strictObject({
  host: fields.host,
  path_prefix: fields.path_prefix,
  methods: fields.methods.default(null),
  resource_server: fields.resource_server.default(null),
  required_scopes: fields.required_scopes.default([]),
  required_roles: fields.required_roles.default([]),
  require_mfa: fields.require_mfa.default(false),
  anonymous: fields.anonymous.default(false),
  browser_sign_in: fields.browser_sign_in.default(false),
  upstream_token: fields.upstream_token.default('pass'),
  upstream_resource_server: fields.upstream_resource_server.default(null),
  identity_headers: fields.identity_headers.default('public'),
});

/** Partial update: given fields replace the stored ones; the result is checked as a whole. */
export const patchGatewayRouteBody = z.strictObject({
  host: fields.host.optional(),
  path_prefix: fields.path_prefix.optional(),
  methods: fields.methods.optional(),
  resource_server: fields.resource_server.optional(),
  required_scopes: fields.required_scopes.optional(),
  required_roles: fields.required_roles.optional(),
  require_mfa: fields.require_mfa.optional(),
  anonymous: fields.anonymous.optional(),
  browser_sign_in: fields.browser_sign_in.optional(),
  upstream_token: fields.upstream_token.optional(),
  upstream_resource_server: fields.upstream_resource_server.optional(),
  identity_headers: fields.identity_headers.optional(),
});

export type CreateGatewayRouteBody = z.infer<typeof createGatewayRouteBody>;
export type PatchGatewayRouteBody = z.infer<typeof patchGatewayRouteBody>;
