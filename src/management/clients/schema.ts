import { z } from 'zod';
import { pageQuery } from '../pagination.js';
import { jwkObject, redirectUri, scopeToken, unique, absoluteUri } from '../schema-common.js';
import { parseDistinguishedName } from '../../oidc/certificate-subject.js';

/** SPEC §9: RFC 8693 token exchange. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** SPEC §12: RFC 8628, the device authorization grant. */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', TOKEN_EXCHANGE_GRANT, DEVICE_CODE_GRANT] as const;
export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 'none'] as const;

/** RFC 8705 §2.1.2: the one certificate subject a `tls_client_auth` client registers. */
export const TLS_SUBJECT_FIELDS = ['tls_client_auth_subject_dn', 'tls_client_auth_san_dns', 'tls_client_auth_san_uri', 'tls_client_auth_san_ip', 'tls_client_auth_san_email'] as const;
export const SECRET_AUTH_METHODS: readonly string[] = ['client_secret_basic', 'client_secret_post'];

const scopeString = z
  .string()
  .max(4000, 'must be at most 4000 characters')
  .refine((value) => value.split(' ').every((s) => scopeToken.safeParse(s).success), 'must be space-separated scope tokens')
  .refine((value) => unique(value.split(' ')), 'must not repeat a scope')
  .meta({ description: 'Space-separated scopes: OpenID scopes and scopes of the allowed resource servers.' });

const jwks = z.strictObject({
  keys: z
    .array(jwkObject)
    .min(1, 'must hold at least one key')
    .max(10, 'at most 10 keys')
    .refine((keys) => keys.every((k) => !['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((m) => m in k)), 'must hold public keys only'),
});

/** RFC 7591 client metadata (the subset SPEC §5 names) plus Gatehouse's own fields. */
const metadataFields = {
  client_name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  grant_types: z
    .array(z.enum(GRANT_TYPES, { error: `must be one of ${GRANT_TYPES.join(', ')}` }))
    .min(1, 'must name at least one grant type')
    .refine(unique, 'must not repeat a grant type'),
  redirect_uris: z.array(redirectUri).max(50, 'at most 50 redirect URIs').refine(unique, 'must not repeat a URI'),
  response_types: z.array(z.enum(['code'], { error: 'only "code" is supported' })).max(1, 'only "code" is supported'),
  token_endpoint_auth_method: z.enum(AUTH_METHODS, { error: `must be one of ${AUTH_METHODS.join(', ')}` }),
  scope: scopeString,
  jwks,
  jwks_uri: z.url({ protocol: /^https$/, error: 'must be an https URL' }).max(2048),
  post_logout_redirect_uris: z.array(redirectUri).max(50, 'at most 50 URIs').refine(unique, 'must not repeat a URI'),
  allowed_resources: z.array(absoluteUri).max(100, 'at most 100 resources').refine(unique, 'must not repeat a resource'),
  require_mfa: z.boolean({ error: 'must be true or false' }),
  first_party: z.boolean({ error: 'must be true or false' }),
  tls_client_auth_subject_dn: z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(1000, 'must be at most 1000 characters')
    .refine((dn) => parseDistinguishedName(dn) !== undefined, 'must be an RFC 4514 distinguished name, e.g. CN=orders,O=Example')
    .meta({ description: 'RFC 8705: the certificate subject, an RFC 4514 DN, compared as a DN (not as text).' }),
  tls_client_auth_san_dns: z.string().trim().min(1).max(253).regex(/^[A-Za-z0-9.-]+$/, 'must be a DNS name').meta({ description: 'RFC 8705: a dNSName SAN of the certificate.' }),
  tls_client_auth_san_uri: z.url({ error: 'must be a URI' }).max(2048).meta({ description: 'RFC 8705: a uniformResourceIdentifier SAN of the certificate (e.g. a SPIFFE ID).' }),
  tls_client_auth_san_ip: z.union([z.ipv4(), z.ipv6()], { error: 'must be an IPv4 or IPv6 address' }).meta({ description: 'RFC 8705: an iPAddress SAN of the certificate.' }),
  tls_client_auth_san_email: z.email({ error: 'must be an email address' }).max(320).meta({ description: 'RFC 8705: an rfc822Name SAN of the certificate.' }),
  tls_client_certificate_bound_access_tokens: z
    .boolean({ error: 'must be true or false' })
    .meta({ description: 'RFC 8705 §3: tokens carry cnf.x5t#S256 of the certificate the client used; a token request without one is refused.' }),
  token_exchange: z
    .strictObject({
      subject_audiences: z.array(absoluteUri).min(1, 'must name at least one resource server').max(100, 'at most 100 resource servers').refine(unique, 'must not repeat a resource server'),
    })
    .meta({ description: 'SPEC §9: the resource servers whose access tokens this client may exchange (RFC 8693) for tokens to its allowed_resources.' }),
  dpop_bound_access_tokens: z
    .boolean({ error: 'must be true or false' })
    .meta({ description: 'RFC 9449 §5.2: every token request must carry a DPoP proof; tokens carry cnf.jkt of its key.' }),
  require_pushed_authorization_requests: z
    .boolean({ error: 'must be true or false' })
    .meta({ description: 'RFC 9126 §6: the client must push its authorization requests to the PAR endpoint; a plain authorization request is refused.' }),
};

/** The whole client as stored: every field resolved, cross-field rules checked. */
export const clientDefinition = z
  .strictObject({
    client_name: metadataFields.client_name.optional(),
    grant_types: metadataFields.grant_types.default(['authorization_code']),
    redirect_uris: metadataFields.redirect_uris.default([]),
    response_types: metadataFields.response_types.optional(),
    token_endpoint_auth_method: metadataFields.token_endpoint_auth_method.default('client_secret_basic'),
    scope: metadataFields.scope.optional(),
    jwks: metadataFields.jwks.optional(),
    jwks_uri: metadataFields.jwks_uri.optional(),
    post_logout_redirect_uris: metadataFields.post_logout_redirect_uris.default([]),
    allowed_resources: metadataFields.allowed_resources.default([]),
    require_mfa: metadataFields.require_mfa.default(false),
    first_party: metadataFields.first_party.default(false),
    tls_client_auth_subject_dn: metadataFields.tls_client_auth_subject_dn.optional(),
    tls_client_auth_san_dns: metadataFields.tls_client_auth_san_dns.optional(),
    tls_client_auth_san_uri: metadataFields.tls_client_auth_san_uri.optional(),
    tls_client_auth_san_ip: metadataFields.tls_client_auth_san_ip.optional(),
    tls_client_auth_san_email: metadataFields.tls_client_auth_san_email.optional(),
    tls_client_certificate_bound_access_tokens: metadataFields.tls_client_certificate_bound_access_tokens.default(false),
    dpop_bound_access_tokens: metadataFields.dpop_bound_access_tokens.default(false),
    require_pushed_authorization_requests: metadataFields.require_pushed_authorization_requests.default(false),
    token_exchange: metadataFields.token_exchange.optional(),
  })
  .superRefine((client, ctx) => {
    const grants = new Set(client.grant_types);
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (grants.has('authorization_code') && client.redirect_uris.length === 0) {
      issue('redirect_uris', 'the authorization_code grant needs at least one redirect URI');
    }
    if (!grants.has('authorization_code') && client.redirect_uris.length > 0) {
      issue('redirect_uris', 'only clients with the authorization_code grant have redirect URIs');
    }
    if (grants.has('refresh_token') && !grants.has('authorization_code') && !grants.has(DEVICE_CODE_GRANT)) {
      issue('grant_types', `refresh_token needs authorization_code or ${DEVICE_CODE_GRANT} (client_credentials clients get no refresh tokens)`);
    }
    if (client.response_types !== undefined && client.response_types.length > 0 !== grants.has('authorization_code')) {
      issue('response_types', 'must be ["code"] exactly when the authorization_code grant is used');
    }
    if (client.token_endpoint_auth_method === 'none' && grants.has('client_credentials')) {
      issue('token_endpoint_auth_method', 'a public client (none) cannot use client_credentials');
    }
    if (client.token_endpoint_auth_method === 'private_key_jwt' && client.jwks === undefined && client.jwks_uri === undefined) {
      issue('jwks', 'private_key_jwt needs jwks or jwks_uri');
    }
    if (client.jwks !== undefined && client.jwks_uri !== undefined) issue('jwks_uri', 'give jwks or jwks_uri, not both');
    if (grants.has(TOKEN_EXCHANGE_GRANT) && client.token_exchange === undefined) {
      issue('token_exchange', 'the token-exchange grant needs token_exchange.subject_audiences: the resource servers whose tokens the client may exchange');
    }
    if (!grants.has(TOKEN_EXCHANGE_GRANT) && client.token_exchange !== undefined) {
      issue('token_exchange', `only clients with the ${TOKEN_EXCHANGE_GRANT} grant have token_exchange`);
    }
    if (grants.has(TOKEN_EXCHANGE_GRANT) && client.token_endpoint_auth_method === 'none') {
      issue('token_endpoint_auth_method', 'a public client (none) cannot exchange tokens');
    }
    const subjects = TLS_SUBJECT_FIELDS.filter((field) => client[field] !== undefined);
    if (client.token_endpoint_auth_method === 'tls_client_auth' && subjects.length !== 1) {
      issue(subjects[1] ?? 'tls_client_auth_subject_dn', `tls_client_auth needs exactly one of ${TLS_SUBJECT_FIELDS.join(', ')}`);
    }
    if (client.token_endpoint_auth_method !== 'tls_client_auth' && subjects.length > 0) issue(subjects[0]!, 'only tls_client_auth clients register a certificate subject');
    if (client.token_endpoint_auth_method === 'self_signed_tls_client_auth' && client.jwks === undefined && client.jwks_uri === undefined) {
      issue('jwks', 'self_signed_tls_client_auth needs jwks or jwks_uri holding the certificate (x5c)');
    }
    // RFC 8705 §2.2.2: the certificate is registered as a key's x5c; without one the client could never authenticate.
    const hasCertificate = (key: Record<string, unknown>) => Array.isArray(key['x5c']) && key['x5c'].length > 0 && key['x5c'].every((c) => typeof c === 'string' && c !== '');
    if (client.token_endpoint_auth_method === 'self_signed_tls_client_auth' && client.jwks !== undefined && !client.jwks.keys.some(hasCertificate)) {
      issue('jwks', 'self_signed_tls_client_auth needs a key whose x5c holds the certificate');
    }
  });

export type ClientDefinition = z.infer<typeof clientDefinition>;

export const createClientBody = clientDefinition;

/** Partial update: given fields replace the stored ones, then the whole is validated like create. */
export const patchClientBody = z.strictObject({
  client_name: metadataFields.client_name.optional(),
  grant_types: metadataFields.grant_types.optional(),
  redirect_uris: metadataFields.redirect_uris.optional(),
  response_types: metadataFields.response_types.optional(),
  token_endpoint_auth_method: metadataFields.token_endpoint_auth_method.optional(),
  scope: metadataFields.scope.nullable().optional(),
  jwks: metadataFields.jwks.nullable().optional(),
  jwks_uri: metadataFields.jwks_uri.nullable().optional(),
  post_logout_redirect_uris: metadataFields.post_logout_redirect_uris.optional(),
  allowed_resources: metadataFields.allowed_resources.optional(),
  require_mfa: metadataFields.require_mfa.optional(),
  first_party: metadataFields.first_party.optional(),
  tls_client_auth_subject_dn: metadataFields.tls_client_auth_subject_dn.nullable().optional(),
  tls_client_auth_san_dns: metadataFields.tls_client_auth_san_dns.nullable().optional(),
  tls_client_auth_san_uri: metadataFields.tls_client_auth_san_uri.nullable().optional(),
  tls_client_auth_san_ip: metadataFields.tls_client_auth_san_ip.nullable().optional(),
  tls_client_auth_san_email: metadataFields.tls_client_auth_san_email.nullable().optional(),
  tls_client_certificate_bound_access_tokens: metadataFields.tls_client_certificate_bound_access_tokens.optional(),
  dpop_bound_access_tokens: metadataFields.dpop_bound_access_tokens.optional(),
  require_pushed_authorization_requests: metadataFields.require_pushed_authorization_requests.optional(),
  token_exchange: metadataFields.token_exchange.nullable().optional(),
});

export type PatchClientBody = z.infer<typeof patchClientBody>;

/** `GET /admin/v1/clients` filters. */
export const clientListQuery = z.object({
  ...pageQuery,
  client_name: z.string().max(200).describe('Only clients whose client_name starts with this (case-sensitive).').optional(),
});
