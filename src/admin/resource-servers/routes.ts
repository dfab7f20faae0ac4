import { listQuery, pageOf } from '../../management/pagination.js';
import { AUTHENTICATED, named, route, WITH_BODY, type PathParam, type RouteTable } from '../route.js';
import { resourceServerResponse } from '../../management/resource-servers/presenter.js';
import { createResourceServerBody, patchResourceServerBody } from '../../management/resource-servers/schema.js';

/** Resource servers: `/admin/v1/resource-servers` (SPEC §5), scope `admin:resource-servers`. */

const ResourceServer = named('ResourceServer', resourceServerResponse);
const ResourceServerPage = named('ResourceServerPage', pageOf(resourceServerResponse), [ResourceServer]);
const ResourceServerCreate = named('ResourceServerCreate', createResourceServerBody);
const ResourceServerPatch = named('ResourceServerPatch', patchResourceServerBody);

const resourceServerId: PathParam = { schema: resourceServerResponse.shape.id, description: 'The resource server’s id.' };

export const resourceServerRoutes: RouteTable = {
  tag: { name: 'Resource servers', description: 'APIs that accept Gatehouse access tokens (RFC 8707 resource indicators). Scope `admin:resource-servers`.' },
  routes: [
    route({
      operationId: 'listResourceServers',
      method: 'get',
      path: '/resource-servers',
      summary: 'List resource servers',
      description: 'Oldest first, the built-in admin API resource server included.',
      scope: 'admin:resource-servers',
      query: listQuery,
      response: { status: 200, description: 'A page of resource servers.', schema: ResourceServerPage },
      errors: [400, ...AUTHENTICATED],
      handler: ({ query }, { resourceServers }) => resourceServers.list(query),
    }),
    route({
      operationId: 'createResourceServer',
      method: 'post',
      path: '/resource-servers',
      summary: 'Create a resource server',
      description: '`encrypt_whole_token` needs an `inner_encryption_jwk`, a public key to encrypt to.',
      scope: 'admin:resource-servers',
      body: {
        schema: ResourceServerCreate,
        required: true,
        example: {
          identifier: 'https://orders.example.com',
          name: 'Orders API',
          scopes: ['orders:read', 'orders:write'],
          access_token_ttl: 900,
          signing_alg: 'ES256',
        },
      },
      response: { status: 201, description: 'The stored resource server.', schema: ResourceServer, location: (server) => `/resource-servers/${server.id}` },
      errors: [...WITH_BODY, 409, ...AUTHENTICATED],
      conflict: 'A resource server with that `identifier` already exists (`errors` points at `#/identifier`).',
      handler: ({ body, caller }, { resourceServers }) => resourceServers.create(body, caller),
    }),
    route({
      operationId: 'readResourceServer',
      method: 'get',
      path: '/resource-servers/{id}',
      summary: 'Read a resource server',
      scope: 'admin:resource-servers',
      params: { id: resourceServerId },
      response: { status: 200, description: 'The resource server.', schema: ResourceServer, etag: true },
      errors: [404, ...AUTHENTICATED],
      handler: ({ params }, { resourceServers }) => resourceServers.get(params.id),
    }),
    route({
      operationId: 'updateResourceServer',
      method: 'patch',
      path: '/resource-servers/{id}',
      summary: 'Update a resource server',
      description: 'Given fields replace the stored ones; `identifier` cannot change. New tokens follow the change; tokens already issued keep theirs.',
      scope: 'admin:resource-servers',
      params: { id: resourceServerId },
      ifMatch: true,
      body: { schema: ResourceServerPatch, required: false },
      response: { status: 200, description: 'The updated resource server.', schema: ResourceServer, etag: true },
      errors: [...WITH_BODY, 404, 409, 412, ...AUTHENTICATED],
      conflict: 'The built-in admin API resource server cannot be changed.',
      handler: ({ params, body, caller, ifMatch }, { resourceServers }) => resourceServers.update(params.id, body, caller, ifMatch),
    }),
    route({
      operationId: 'deleteResourceServer',
      method: 'delete',
      path: '/resource-servers/{id}',
      summary: 'Delete a resource server',
      scope: 'admin:resource-servers',
      params: { id: resourceServerId },
      response: { status: 204, description: 'Deleted.' },
      errors: [404, 409, ...AUTHENTICATED],
      conflict: 'The built-in admin API resource server cannot be deleted, nor one that clients still name in `allowed_resources` (listed in `client_ids`).',
      handler: ({ params, caller }, { resourceServers }) => resourceServers.delete(params.id, caller),
    }),
  ],
};
