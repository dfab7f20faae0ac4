import { pageOf } from '../../management/pagination.js';
import { AUTHENTICATED, named, route, WITH_BODY, type PathParam, type RouteTable } from '../route.js';
import { clientResponse, clientSecretResponse, clientWithSecretResponse } from '../../management/clients/presenter.js';
import { clientListQuery, createClientBody, patchClientBody } from '../../management/clients/schema.js';

/** Clients: `/admin/v1/clients` (SPEC §5), scope `admin:clients`. */

const Client = named('Client', clientResponse);
const ClientWithSecret = named('ClientWithSecret', clientWithSecretResponse);
const ClientSecret = named('ClientSecret', clientSecretResponse);
const ClientPage = named('ClientPage', pageOf(clientResponse), [Client]);
const ClientCreate = named('ClientCreate', createClientBody);
const ClientPatch = named('ClientPatch', patchClientBody);

const clientId: PathParam = { schema: clientResponse.shape.client_id, description: 'The client’s client_id.' };

const PRIVILEGED =
  'A client whose `allowed_resources` include the admin API (`<issuer>/admin`) is privileged: creating, changing, rotating the secret of or deleting it needs a token holding every admin scope that client may get (before and after a change), `403` otherwise. Without a `scope`, such a client gets no admin scope.';

export const clientRoutes: RouteTable = {
  tag: { name: 'Clients', description: 'OAuth 2.0 clients (RFC 7591 metadata). Scope `admin:clients`.' },
  routes: [
    route({
      operationId: 'listClients',
      method: 'get',
      path: '/clients',
      summary: 'List clients',
      description: 'Oldest first. Never shows a secret.',
      scope: 'admin:clients',
      query: clientListQuery,
      response: { status: 200, description: 'A page of clients.', schema: ClientPage },
      errors: [400, ...AUTHENTICATED],
      handler: ({ query }, { clients }) => clients.list(query),
    }),
    route({
      operationId: 'createClient',
      method: 'post',
      path: '/clients',
      summary: 'Create a client',
      description: `The body is RFC 7591 client metadata plus \`allowed_resources\`, \`require_mfa\` and \`first_party\`. Every resource in \`allowed_resources\` must exist, and \`scope\` may name only OpenID scopes and scopes of those resource servers. A client with a secret-based \`token_endpoint_auth_method\` gets its \`client_secret\` in this response only. ${PRIVILEGED}`,
      scope: 'admin:clients',
      body: {
        schema: ClientCreate,
        required: true,
        example: {
          client_name: 'Orders worker',
          grant_types: ['client_credentials'],
          token_endpoint_auth_method: 'client_secret_basic',
          scope: 'orders:read orders:write',
          allowed_resources: ['https://orders.example.com'],
        },
      },
      response: {
        status: 201,
        description: 'The stored client, with its secret this once.',
        schema: ClientWithSecret,
        location: (client) => `/clients/${encodeURIComponent(client.client_id)}`,
      },
      errors: [...WITH_BODY, ...AUTHENTICATED],
      handler: ({ body, caller }, { clients }) => clients.create(body, caller),
    }),
    route({
      operationId: 'readClient',
      method: 'get',
      path: '/clients/{client_id}',
      summary: 'Read a client',
      scope: 'admin:clients',
      params: { client_id: clientId },
      response: { status: 200, description: 'The client (never its secret).', schema: Client, etag: true },
      errors: [400, 404, ...AUTHENTICATED],
      handler: ({ params }, { clients }) => clients.get(params.client_id),
    }),
    route({
      operationId: 'updateClient',
      method: 'patch',
      path: '/clients/{client_id}',
      summary: 'Update a client',
      description: `Given fields replace the stored ones (\`null\` removes \`scope\`, \`jwks\` or \`jwks_uri\`); the result is validated like a create. A switch to a secret-based authentication method issues a secret, shown in this response only; a switch away from one removes it. ${PRIVILEGED}`,
      scope: 'admin:clients',
      params: { client_id: clientId },
      ifMatch: true,
      body: { schema: ClientPatch, required: false },
      response: { status: 200, description: 'The updated client, with a secret if this change issued one.', schema: ClientWithSecret, etag: true },
      errors: [...WITH_BODY, 404, 412, ...AUTHENTICATED],
      handler: ({ params, body, caller, ifMatch }, { clients }) => clients.update(params.client_id, body, caller, ifMatch),
    }),
    route({
      operationId: 'deleteClient',
      method: 'delete',
      path: '/clients/{client_id}',
      summary: 'Delete a client',
      description: `The client can no longer authenticate; its grants, codes and refresh tokens are revoked, and the admin API refuses its access tokens within seconds. ${PRIVILEGED}`,
      scope: 'admin:clients',
      params: { client_id: clientId },
      response: { status: 204, description: 'Deleted.' },
      errors: [400, 404, ...AUTHENTICATED],
      handler: ({ params, caller }, { clients }) => clients.delete(params.client_id, caller),
    }),
    route({
      operationId: 'rotateClientSecret',
      method: 'post',
      path: '/clients/{client_id}/secret',
      summary: 'Rotate a client’s secret',
      description: `Issues a new secret, shown in this response only; the old one stops working at once, and the admin API refuses access tokens issued before the rotation within seconds (for an admin client the response waits for the next whole second, so tokens obtained with the new secret are told apart by \`iat\`). No body is needed. ${PRIVILEGED}`,
      scope: 'admin:clients',
      params: { client_id: clientId },
      response: { status: 200, description: 'The new secret.', schema: ClientSecret },
      errors: [...WITH_BODY, 404, 409, ...AUTHENTICATED],
      conflict: 'The client does not authenticate with a secret (`private_key_jwt` or `none`).',
      handler: ({ params, caller }, { clients }) => clients.rotateSecret(params.client_id, caller),
    }),
  ],
};
