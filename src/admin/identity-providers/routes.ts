import { listQuery, pageOf } from '../../management/pagination.js';
import { AUTHENTICATED, named, route, WITH_BODY, type PathParam, type RouteTable } from '../route.js';
import { identityProviderResponse } from '../../management/identity-providers/presenter.js';
import { createIdentityProviderBody, patchIdentityProviderBody } from '../../management/identity-providers/schema.js';

/** Upstream identity providers: `/admin/v1/identity-providers` (SPEC §10), scope `admin:identity-providers`. */

const IdentityProvider = named('IdentityProvider', identityProviderResponse);
const IdentityProviderPage = named('IdentityProviderPage', pageOf(identityProviderResponse), [IdentityProvider]);
const IdentityProviderCreate = named('IdentityProviderCreate', createIdentityProviderBody);
const IdentityProviderPatch = named('IdentityProviderPatch', patchIdentityProviderBody);

const identityProviderId: PathParam = { schema: identityProviderResponse.shape.id, description: 'The identity provider’s id.' };

const CHECKS =
  'The `issuer` is https (http only on loopback) without query or fragment, and not on a private address unless ALLOW_PRIVATE_JWKS_URI is set; `scopes` include `openid`; `client_secret` is write-only (responses say `client_secret_set`).';
const DOMAIN_TAKEN = 'An `email_domains` entry is already a domain of another enabled provider (`errors` points at it).';

export const identityProviderRoutes: RouteTable = {
  tag: {
    name: 'Identity providers',
    description:
      'Upstream OpenID providers people sign in with (corporate SSO, SPEC §10). Register each one’s `redirect_uri` at the upstream. Scope `admin:identity-providers`.',
  },
  routes: [
    route({
      operationId: 'listIdentityProviders',
      method: 'get',
      path: '/identity-providers',
      summary: 'List identity providers',
      description: 'Oldest first. Never shows a client secret.',
      scope: 'admin:identity-providers',
      query: listQuery,
      response: { status: 200, description: 'A page of identity providers.', schema: IdentityProviderPage },
      errors: [400, ...AUTHENTICATED],
      handler: ({ query }, { identityProviders }) => identityProviders.list(query),
    }),
    route({
      operationId: 'createIdentityProvider',
      method: 'post',
      path: '/identity-providers',
      summary: 'Create an identity provider',
      description: CHECKS,
      scope: 'admin:identity-providers',
      body: {
        schema: IdentityProviderCreate,
        required: true,
        example: {
          name: 'Example Corp SSO',
          issuer: 'https://login.example.com',
          client_id: 'gatehouse',
          client_secret: 'upstream-client-secret',
          email_domains: ['example.com'],
          link_by_verified_email: true,
          role_mappings: [{ claim: 'groups', value: 'billing-admins', role: 'billing:admin' }],
        },
      },
      response: { status: 201, description: 'The stored identity provider.', schema: IdentityProvider, location: (stored) => `/identity-providers/${stored.id}` },
      errors: [...WITH_BODY, 409, ...AUTHENTICATED],
      conflict: DOMAIN_TAKEN,
      handler: ({ body, caller }, { identityProviders }) => identityProviders.create(body, caller),
    }),
    route({
      operationId: 'readIdentityProvider',
      method: 'get',
      path: '/identity-providers/{id}',
      summary: 'Read an identity provider',
      scope: 'admin:identity-providers',
      params: { id: identityProviderId },
      response: { status: 200, description: 'The identity provider.', schema: IdentityProvider, etag: true },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params }, { identityProviders }) => identityProviders.get(params.id),
    }),
    route({
      operationId: 'updateIdentityProvider',
      method: 'patch',
      path: '/identity-providers/{id}',
      summary: 'Update an identity provider',
      description: `Given fields replace the stored ones; \`client_secret\` replaces the stored secret and \`null\` removes it. ${CHECKS}`,
      scope: 'admin:identity-providers',
      params: { id: identityProviderId },
      ifMatch: true,
      body: { schema: IdentityProviderPatch, required: false },
      response: { status: 200, description: 'The updated identity provider.', schema: IdentityProvider, etag: true },
      errors: [...WITH_BODY, 404, 409, 412, ...AUTHENTICATED],
      conflict: DOMAIN_TAKEN,
      handler: ({ params, body, caller, ifMatch }, { identityProviders }) => identityProviders.update(params.id, body, caller, ifMatch),
    }),
    route({
      operationId: 'deleteIdentityProvider',
      method: 'delete',
      path: '/identity-providers/{id}',
      summary: 'Delete an identity provider',
      description: 'People linked through it keep their accounts; their identities at it are unlinked.',
      scope: 'admin:identity-providers',
      params: { id: identityProviderId },
      response: { status: 204, description: 'Deleted.' },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params, caller }, { identityProviders }) => identityProviders.delete(params.id, caller),
    }),
  ],
};
